#!/usr/bin/env bash
# Fuzzes Serve's HTTP API with Schemathesis, driven by the /openapi.json the live server serves, with
# every check on. Exits non-zero on any failure. Schemathesis comes from PyPI into a private venv.
# Usage: scripts/api-fuzz.sh [seconds of fuzzing, default 120]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_BUDGET=${1:-120}
DUET=${DUET:-.build/release/duet}
VENV=${DUET_FUZZ_VENV:-$HOME/.cache/duet-schemathesis-venv}
[ -x "$DUET" ] || swift build -c release
if [ ! -x "$VENV/bin/schemathesis" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'schemathesis>=4,<5'
fi
"$VENV/bin/python" -c 'import prometheus_client' 2>/dev/null || "$VENV/bin/pip" install --quiet 'prometheus_client>=0.17,<1'
source scripts/lib/common.sh
WORK=$(mktemp -d /tmp/duet-api-fuzz.XXXXXX)
PORT=$(free_port)
KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
export DUET_HOME="$WORK/home"
small_home "$WORK"

DUET_API_KEY="$KEY" "$DUET" serve --port "$PORT" > "$WORK/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
wait_ready "$PORT"

status=0
# One worker: with two, Hypothesis describes its filters through ast.parse on both threads at once,
# and CPython 3.11 then fails inside Schemathesis itself ("SystemError: AST constructor recursion
# depth mismatch"), an error in the fuzzer that is not a finding about the API.
"$VENV/bin/schemathesis" --config-file scripts/schemathesis.toml run "http://127.0.0.1:$PORT/openapi.json" --checks all \
  -H "Authorization: Bearer $KEY" --max-time "$SECONDS_BUDGET" --workers 1 --seed "${DUET_FUZZ_SEED:-15}" \
  --request-timeout 10 --report junit --report-dir "$WORK/report" || status=$?
kill -0 $SERVE 2>/dev/null || { echo "api fuzz: duet serve died; its log:"; tail -20 "$WORK/serve.log"; exit 1; }
if grep -q 'level=critical\|"level":"critical"\|Fatal error' "$WORK/serve.log"; then echo "api fuzz: serve logged a crash"; exit 1; fi
# After the fuzzing, /metrics as Prometheus' reference parser reads it, conventions checked.
"$VENV/bin/python" scripts/metrics-check.py "http://127.0.0.1:$PORT/metrics" || { echo "api fuzz: /metrics breaks the conventions"; exit 1; }
[ "$status" -eq 0 ] || { echo "api fuzz: Schemathesis reported failures (exit $status); work folder $WORK"; exit "$status"; }
echo "api fuzz: 0 failures in ${SECONDS_BUDGET}s; serve alive"
rm -rf "$WORK"
