#!/usr/bin/env bash
# The "Duet from Python" example as a test: exports a bundle's factors and its split, lets implicit's
# ranking_metrics_at_k score them, and fails unless precision, MAP, NDCG and AUC agree with
# `duet lab compare` to 1e-6. numpy, scipy and implicit come from PyPI into a private venv.
# Uses Last.fm from ../shared when present, otherwise a generated world (and says so).
# Usage: scripts/python-example.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DUET=${DUET:-.build/release/duet}
VENV=${DUET_PYTHON_VENV:-$HOME/.cache/duet-python-venv}
[ -x "$DUET" ] || swift build -c release
"$VENV/bin/python" -c 'import numpy, scipy, implicit' 2>/dev/null || {
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'numpy<3' 'scipy<2' 'implicit>=0.7,<0.8'
}
WORK=$(mktemp -d /tmp/duet-python-example.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export DUET_HOME="$WORK/home"
source scripts/lib/common.sh
import_lastfm_or_world "python example" "$WORK" 2000 3000 60000
split=$("$DUET" lab split --snapshot latest --test-fraction 0.2 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
bundle=$("$DUET" lab train --split "$split" --algo als --factors 32 --iterations 10 --no-index --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bundle"])')
"$DUET" lab export factors "$bundle" --out "$WORK/factors" >/dev/null
"$DUET" lab export snapshot --split "$split" --out "$WORK/split" >/dev/null
"$DUET" lab compare "$bundle" popularity --json > "$WORK/duet.json"
echo "python example on $data: bundle ${bundle:0:12}, split $split"
OPENBLAS_NUM_THREADS=1 "$VENV/bin/python" examples/ndcg_with_implicit.py --factors "$WORK/factors" --split "$WORK/split" --duet "$WORK/duet.json"
