#!/usr/bin/env bash
# Browser test of the review dashboard: runs `duet demo --keep`, starts `duet lab dashboard`, loads
# every page in headless Chromium, checks what it shows, and saves a screenshot of each page.
# Usage: scripts/browser-test.sh [screenshot folder, default /tmp/duet-dashboard-shots]
set -euo pipefail
cd "$(dirname "$0")/.."
SHOTS=${1:-/tmp/duet-dashboard-shots}
DUET=${DUET:-.build/release/duet}
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "browser test: chromium is not installed (apt-get install -y chromium)"; exit 1; }
[ -x "$DUET" ] || swift build -c release
WORK=$(mktemp -d /tmp/duet-browser.XXXXXX)
PORT=$((20000 + RANDOM % 20000))
mkdir -p "$SHOTS"

"$DUET" demo --home "$WORK/home" --keep --port "$PORT" --listeners 1500 > "$WORK/demo.log" 2>&1
SERVE=$(grep -o 'Stop the server with: kill [0-9]*' "$WORK/demo.log" | grep -o '[0-9]*$')
"$DUET" lab dashboard --home "$WORK/home" --port $((PORT + 1)) > "$WORK/dashboard.log" 2>&1 &
DASHBOARD=$!
trap 'kill $DASHBOARD $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$((PORT + 1))/" >/dev/null && break; sleep 0.1; done

GENERATION=$("$DUET" lab history --home "$WORK/home" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["generation"])')
failures=0
check() { # page, text that must appear in the rendered DOM
  local page=$1 expected=$2 name
  name=$(echo "$page" | tr '/' '_' | sed 's/^_*$/overview/; s/^_//')
  dom=$("$CHROMIUM" --headless --no-sandbox --disable-gpu --dump-dom "http://127.0.0.1:$((PORT + 1))/$page" 2>/dev/null)
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1600 \
    --screenshot="$SHOTS/$name.png" "http://127.0.0.1:$((PORT + 1))/$page" >/dev/null 2>&1
  if grep -q -- "$expected" <<<"$dom"; then
    echo "ok   /$page shows '$expected' ($SHOTS/$name.png)"
  else
    echo "FAIL /$page does not show '$expected'"
    failures=$((failures + 1))
  fi
}
check "" "id=\"generation\">$GENERATION<"
check "models" "candidate-als-48"
check "history" "rehearsing the runbook"
check "evaluations" "ndcg@10"
check "experiments" "broken-treatment"
check "experiments/als-48-vs-8" "Recommendation: ship"
check "experiments/broken-treatment" "served by fallback"
check "decisions" "demo-reviewer"
check "incidents" "Incidents"
echo "$((9 - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
