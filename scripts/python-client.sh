#!/usr/bin/env bash
# The Python client (clients/python) installed with pip and tested: its unit tests against a scripted
# server, then its live tests against a real `duet serve` with two keys (one rate-limited), including
# the check that every route, parameter and field it knows agrees with the live /openapi.json.
# Usage: scripts/python-client.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DUET=${DUET:-.build/release/duet}
VENV=${DUET_PYTHON_VENV:-$HOME/.cache/duet-python-venv}
[ -x "$DUET" ] || swift build -c release
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import pytest' 2>/dev/null || "$VENV/bin/pip" install --quiet 'pytest>=7,<9'
# A fresh install from the repository, as a user would: the tests import the installed package.
"$VENV/bin/pip" install --quiet --force-reinstall --no-deps ./clients/python
source scripts/lib/common.sh
WORK=$(mktemp -d /tmp/duet-python-client.XXXXXX)
export DUET_HOME="$WORK/home"
small_home "$WORK"
FULL=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
SLOW=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
cat > "$WORK/keys.json" <<JSON_END
{"keys": [{"name": "client-tests", "roles": ["read", "ingest", "metrics"], "secret": "$FULL"},
          {"name": "slow-reader", "roles": ["read"], "secret": "$SLOW", "rate": {"perSecond": 1, "burst": 1}}]}
JSON_END
PORT=$(free_port)
"$DUET" serve --port "$PORT" --keys-file "$WORK/keys.json" > "$WORK/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true; rm -rf "$WORK"' EXIT
wait_ready "$PORT"
cd "$WORK"
DUET_URL="http://127.0.0.1:$PORT" DUET_API_KEY="$FULL" DUET_SLOW_KEY="$SLOW" DUET_LIVE_REQUIRED=1 \
  "$VENV/bin/python" -m pytest -q -p no:cacheprovider "$OLDPWD/clients/python/tests" || {
    echo "python client: tests failed; serve log:"; tail -20 "$WORK/serve.log"; exit 1; }
kill -0 $SERVE || { echo "python client: duet serve died"; exit 1; }
echo "python client: unit and live tests passed"
