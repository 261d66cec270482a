#!/usr/bin/env bash
# Browser test of the review dashboard: runs `duet demo --keep`, starts `duet lab dashboard` with an
# admin token and two reviewers with their own sign-in tokens, and drives it in headless Chromium with
# Playwright for Python (scripts/browser-test.py): sign in, every page, a review by two people (comment,
# objection, resolution, two approvals), the decision, a promotion, sign out, and no token in a URL.
# Playwright comes from PyPI into a private venv; it drives Debian's chromium (no browser download).
# Usage: scripts/browser-test.sh [screenshot folder, default /tmp/duet-dashboard-shots]
set -euo pipefail
cd "$(dirname "$0")/.."
SHOTS=${1:-/tmp/duet-dashboard-shots}
DUET=${DUET:-.build/release/duet}
VENV=${DUET_PLAYWRIGHT_VENV:-$HOME/.cache/duet-playwright-venv}
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || { echo "browser test: chromium is not installed (apt-get install -y chromium)"; exit 1; }
[ -x "$DUET" ] || swift build -c release
if ! "$VENV/bin/python" -c 'import playwright' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet 'playwright>=1.40,<2'
fi
source scripts/lib/common.sh
WORK=$(mktemp -d /tmp/duet-browser.XXXXXX)
PORT=$(free_port)
DASHBOARD_PORT=$(free_port)
mkdir -p "$SHOTS"
TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')

"$DUET" demo --home "$WORK/home" --keep --port "$PORT" --listeners 1500 > "$WORK/demo.log" 2>&1
SERVE=$(grep -o 'Stop the server with: kill [0-9]*' "$WORK/demo.log" | grep -o '[0-9]*$')
RITA=$("$DUET" lab people add rita --team search --contact rita@example.com --token --home "$WORK/home" | sed -n 's/^sign-in token (shown once): //p')
SAM=$("$DUET" lab people add sam --team recs --contact sam@example.com --token --home "$WORK/home" | sed -n 's/^sign-in token (shown once): //p')
[ -n "$RITA" ] && [ -n "$SAM" ] || { echo "FAIL no sign-in tokens were printed"; exit 1; }
DUET_ADMIN_TOKEN="$TOKEN" "$DUET" lab dashboard --home "$WORK/home" --port "$DASHBOARD_PORT" > "$WORK/dashboard.log" 2>&1 &
DASHBOARD=$!
trap 'kill $DASHBOARD $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$DASHBOARD_PORT/login" && break; sleep 0.1; done

# Two `duet lab analyze` runs, separate processes, at the same frozen position: the same bytes.
# Serve is stopped first (it drains its exposures on SIGTERM), so nothing moves the log in between.
kill "$SERVE" 2>/dev/null || true
for _ in $(seq 100); do kill -0 "$SERVE" 2>/dev/null || break; sleep 0.1; done
"$DUET" lab analyze als-48-vs-8 --home "$WORK/home" > "$WORK/analyze-1.txt"
cp "$(ls -t "$WORK"/home/analyses/als-48-vs-8-phase1-*.json | head -1)" "$WORK/analysis-1.json"
"$DUET" lab analyze als-48-vs-8 --home "$WORK/home" > "$WORK/analyze-2.txt"
cp "$(ls -t "$WORK"/home/analyses/als-48-vs-8-phase1-*.json | head -1)" "$WORK/analysis-2.json"
if cmp -s "$WORK/analysis-1.json" "$WORK/analysis-2.json" && [ "$(grep -o 'analysis [0-9a-f]*' "$WORK/analyze-1.txt")" = "$(grep -o 'analysis [0-9a-f]*' "$WORK/analyze-2.txt")" ]; then
  echo "ok   two analyses at the same frozen position are the same bytes ($(grep -o 'analysis [0-9a-f]*' "$WORK/analyze-1.txt" | cut -c1-25)…)"
else
  echo "FAIL two analyses at the same frozen position differ"; diff "$WORK/analysis-1.json" "$WORK/analysis-2.json" | head -20; exit 1
fi

# The demo ends on a refresh of the baseline; the browser promotes the A/B test's treatment, whose
# evaluation and decision rest on the baseline, so production goes back to it first.
"$DUET" lab rollback --home "$WORK/home" --as ana --reason "browser test: back to the production the A/B test ran against" > /dev/null
GENERATION=$("$DUET" lab history --home "$WORK/home" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[-1]["generation"])')
CHROMIUM="$CHROMIUM" "$VENV/bin/python" scripts/browser-test.py "http://127.0.0.1:$DASHBOARD_PORT" "$TOKEN" "$GENERATION" "$SHOTS" "$RITA" "$SAM"
for secret in "$TOKEN" "$RITA" "$SAM"; do
  if grep -q -- "$secret" "$WORK/dashboard.log"; then echo "FAIL the dashboard logged a sign-in token"; exit 1; fi
done
# The review the browser recorded, as the CLI reads it back.
"$DUET" lab review show broken-treatment --home "$WORK/home"
echo "browser test: screenshots in $SHOTS"
