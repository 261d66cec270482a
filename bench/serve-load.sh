#!/usr/bin/env bash
# Serve under load, loopback only, bounded in time. Reports:
#   1. recommendation vs /livez throughput and p50/p99 on the same server (≥ 100k items × 64
#      factors), with wrk and Serve sharing the machine's cores, and what answered the lists;
#   2. 50 promotions/rollbacks under load: non-2xx, responses whose items do not belong to the
#      bundle they name, and swap latency (registry change → first response from the new bundle);
#   3. acknowledged events/s over HTTP in batches of 100;
#   4. kill -9 of duet serve during ingest: acknowledged events found afterwards.
# Exits non-zero on any non-2xx, any response mixing bundles, or an acknowledged event not stored
# exactly once. `--short` (for CI) uses a 24k-track world and 10 swaps.
# Usage: bench/serve-load.sh [seconds per wrk run, default 15] [--short]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-15}
SHORT=${2:-}
if [ "$SHORT" = --short ]; then USERS=3000; TRACKS=24000; EVENTS=200000; SWAPS=10; else USERS=20000; TRACKS=160000; EVENTS=2000000; SWAPS=50; fi
FAILED=()
DUET=${DUET:-.build/release/duet}
WORK=${WORK:-$(mktemp -d /tmp/duet-serve-load.XXXXXX)}
PORT=${PORT:-$((20000 + RANDOM % 20000))}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
[ -x "$DUET" ] || swift build -c release
export DUET_HOME="$WORK/home"
# The person the promotions and rollbacks below name (the CLI refuses to act for nobody).
export DUET_USER=${DUET_USER:-serve-load}
echo "working in $WORK, port $PORT"

# Two bundles of over 100k items (the long tail of 160k tracks is never played) with disjoint
# item ids: A's are t…, B's are bt…, so any response can be checked against the bundle it names.
"$DUET" world generate --out "$WORK/world" --users $USERS --tracks $TRACKS --events $EVENTS --json >/dev/null
awk -F'\t' 'BEGIN{OFS="\t"} NR==1{print; next} {$2="b"$2; print}' "$WORK/world/events.tsv" > "$WORK/events-b.tsv"
A_SNAP=$("$DUET" import world "$WORK/world" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot"]["hash"])')
B_SNAP=$("$DUET" import csv "$WORK/events-b.tsv" --user-col user --item-col item --weight-col weight --time-col timestamp --kind-col kind --json \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["snapshot"]["hash"])')
train() { "$DUET" lab train --snapshot "$1" --register --name "$2" --factors 64 --iterations 8 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bundle"])'; }
A=$(train "$A_SNAP" load-a)
B=$(train "$B_SNAP" load-b)
"$DUET" lab promote "$A" --as serve-load --override --reason "load benchmark setup" >/dev/null
# One replica: it switches on sight, so the swap latency below is load, verify and swap, not the cutover delay.
"$DUET" lab cutover --delay 0 >/dev/null
ITEMS=$(python3 -c "import json,sys; print(json.load(open('$DUET_HOME/bundles/$A/manifest.json'))['counts']['items'])")
echo "bundle A $A ($ITEMS items t…), bundle B $B (items bt…)"

"$DUET" serve --port "$PORT" --poll-interval 0.05 > "$WORK/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/readyz" >/dev/null && break; sleep 0.1; done

cat > "$WORK/recommend.lua" <<'EOF'
-- Random known users; counts non-2xx and responses whose items do not match the bundle named.
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  bad = 0; wrong = 0; seen_a = 0; seen_b = 0
  bundle_b = os.getenv("BUNDLE_B")
  users = tonumber(os.getenv("USERS"))
  math.randomseed(os.time() + math.random(1000))
end
function request()
  return wrk.format("GET", "/v1/users/u" .. math.random(0, users - 1) .. "/recommendations?n=20")
end
function response(status, headers, body)
  if status < 200 or status > 299 then bad = bad + 1; return end
  local named_b = string.find(body, bundle_b, 1, true) ~= nil
  if named_b then seen_b = seen_b + 1 else seen_a = seen_a + 1 end
  for id in string.gmatch(body, '"id":"([^"]+)"') do
    local is_b = string.sub(id, 1, 2) == "bt"
    if is_b ~= named_b then wrong = wrong + 1; break end
  end
end
function done(summary, latency, requests)
  local b, w, sa, sb = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    b = b + t:get("bad"); w = w + t:get("wrong"); sa = sa + t:get("seen_a"); sb = sb + t:get("seen_b")
  end
  io.write(string.format("CHECK non2xx=%d mismatched=%d from_a=%d from_b=%d\n", b + summary.errors.status, w, sa, sb))
end
EOF

# Throughput runs use a script that only picks users: parsing every body in Lua would cost the
# load generator (which shares the two cores) more for this endpoint than for /livez.
cat > "$WORK/users.lua" <<EOF
math.randomseed(os.time())
function request()
  return wrk.format("GET", "/v1/users/u" .. math.random(0, $((USERS - 1))) .. "/recommendations?n=20")
end
EOF

report() { # name, wrk output file
  python3 - "$1" "$2" <<'EOF'
import re, sys
name, path = sys.argv[1], sys.argv[2]
text = open(path).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
def ms(label):
    m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)" % label, text)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
print(f"{name}: {rps:.0f} requests/s, p50 {ms('50'):.2f} ms, p99 {ms('99'):.2f} ms")
open(path + ".rps", "w").write(str(rps))
EOF
}

echo
echo "== 1. throughput, 64 connections, ${DURATION}s each, same server"
# Warm-up, not reported: first touches of the bundle's pages and of the exposure table.
wrk -t2 -c64 -d3s -s "$WORK/users.lua" "http://127.0.0.1:$PORT" > /dev/null
wrk -t2 -c64 -d3s "http://127.0.0.1:$PORT/livez" > /dev/null
wrk -t2 -c64 -d"${DURATION}s" --latency -s "$WORK/users.lua" "http://127.0.0.1:$PORT" > "$WORK/recommend.txt"
wrk -t2 -c64 -d"${DURATION}s" --latency "http://127.0.0.1:$PORT/livez" > "$WORK/livez.txt"
report "recommendations" "$WORK/recommend.txt"
report "livez" "$WORK/livez.txt"
for run in recommend livez; do
  echo "$run: $(grep -E 'Non-2xx' "$WORK/$run.txt" || echo '0 non-2xx'), $(grep -E 'Socket errors' "$WORK/$run.txt" || echo 'no socket errors')"
  if grep -qE 'Non-2xx|Socket errors' "$WORK/$run.txt"; then FAILED+=("$run: non-2xx or socket errors"); fi
done
python3 -c "print('throughput ratio recommendations/livez: %.3f' % (float(open('$WORK/recommend.txt.rps').read()) / float(open('$WORK/livez.txt.rps').read())))"
echo "recommendations by what answered them (exact = proven by the length-ordered scan):"
curl -sf "http://127.0.0.1:$PORT/metrics" | grep '^duet_recommendations_total' | sed 's/^/  /'

echo
echo "== 1b. shadowing 10% of requests with bundle B: its cost in p99, against runs without it on either side"
"$DUET" lab people add "$DUET_USER" --team bench --contact bench@example.com >/dev/null
registry_version() { curl -sf "http://127.0.0.1:$PORT/readyz" | python3 -c 'import json,sys; print(json.load(sys.stdin)["registryVersion"])'; }
await_change() { local before=$1; for _ in $(seq 100); do [ "$(registry_version)" != "$before" ] && return; sleep 0.1; done; FAILED+=("Serve did not pick up the shadow change"); }
before=$(registry_version)
SHADOW=$("$DUET" lab shadow start "$B" --share 0.1 --id bench-shadow | sed -n 's/^shadow \([^ ]*\) started.*/\1/p')
await_change "$before"
wrk -t2 -c64 -d"${DURATION}s" --latency -s "$WORK/users.lua" "http://127.0.0.1:$PORT" > "$WORK/shadow.txt"
before=$(registry_version)
"$DUET" lab shadow stop "$SHADOW" >/dev/null
await_change "$before"
wrk -t2 -c64 -d"${DURATION}s" --latency -s "$WORK/users.lua" "http://127.0.0.1:$PORT" > "$WORK/recommend-after.txt"
report "recommendations, no shadow (before)" "$WORK/recommend.txt"
report "recommendations, 10% shadowed" "$WORK/shadow.txt"
report "recommendations, no shadow (after)" "$WORK/recommend-after.txt"
if grep -qE 'Non-2xx|Socket errors' "$WORK/shadow.txt"; then FAILED+=("shadow run: non-2xx or socket errors"); fi
python3 - "$WORK" <<'EOF'
import re, sys
work = sys.argv[1]
def p99(name):
    m = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", open(f"{work}/{name}.txt").read())
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
base = (p99("recommend") + p99("recommend-after")) / 2
print(f"shadow cost: p99 {p99('shadow'):.2f} ms with 10% shadowed vs {base:.2f} ms without (mean of before and after): ratio {p99('shadow') / base:.2f}")
EOF
LOGGED=$(curl -sf "http://127.0.0.1:$PORT/metrics" | sed -n 's/^duet_shadow_lists_logged_total \([0-9]*\).*/\1/p')
DROPPED=$(curl -sf "http://127.0.0.1:$PORT/metrics" | sed -n 's/^duet_shadow_lists_dropped_total \([0-9]*\).*/\1/p')
echo "shadow lists logged: ${LOGGED:-0}, dropped: ${DROPPED:-0}"
[ "${LOGGED:-0}" -gt 0 ] || FAILED+=("no shadow list was logged")

echo
echo "== 2. $SWAPS promotions and rollbacks under load"
USERS=$USERS BUNDLE_B=$B wrk -t2 -c64 -d120s --latency -s "$WORK/recommend.lua" "http://127.0.0.1:$PORT" > "$WORK/swap.txt" &
WRK=$!
sleep 1
python3 - "$DUET" "$A" "$B" "$PORT" "$SWAPS" <<'EOF' | tee "$WORK/swaps.txt"
import json, subprocess, sys, time, urllib.request, statistics
duet, a, b, port, swaps = sys.argv[1:]
def generation():
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz") as r:
        return json.load(r)["generation"]
latencies = []
for i in range(int(swaps)):
    target = b if i % 2 == 0 else a
    if i % 2 == 0:
        args = [duet, "lab", "promote", target, "--override", "--reason", f"swap {i}", "--json"]
    else:
        args = [duet, "lab", "rollback", "--reason", f"swap {i}", "--json"]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    changed = time.monotonic()
    gen = json.loads(out.stdout)["generation"]
    while generation() != gen:
        time.sleep(0.002)
    latencies.append((time.monotonic() - changed) * 1000)
    time.sleep(0.2)
latencies.sort()
print(f"swap latency over {len(latencies)} changes: p50 {statistics.median(latencies):.1f} ms, max {latencies[-1]:.1f} ms (registry commit → Serve answering from the new bundle)")
EOF
kill -INT $WRK 2>/dev/null || true
wait $WRK 2>/dev/null || true
report "recommendations during swaps" "$WORK/swap.txt"
grep CHECK "$WORK/swap.txt"
grep -q "CHECK non2xx=0 mismatched=0 " "$WORK/swap.txt" || FAILED+=("swaps: non-2xx or responses mixing bundles")
if grep -qE 'Socket errors' "$WORK/swap.txt"; then FAILED+=("swaps: socket errors"); fi

echo
echo "== 3. ingest: batches of 100 events"
python3 - "$WORK/events.json" <<'EOF'
import json, sys
events = [{"user": f"u{i}", "item": f"t{i}", "kind": "play", "weight": 1, "timestamp": 1767225600 + i} for i in range(100)]
open(sys.argv[1], "w").write(json.dumps(events))
EOF
cat > "$WORK/ingest.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("$WORK/events.json"):read("*a")
EOF
wrk -t2 -c16 -d"${DURATION}s" --latency -s "$WORK/ingest.lua" "http://127.0.0.1:$PORT/v1/events" > "$WORK/ingest.txt"
report "event batches" "$WORK/ingest.txt"
python3 -c "print('acknowledged events/s: %.0f' % (float(open('$WORK/ingest.txt.rps').read()) * 100))"
if grep -E "Non-2xx|Socket errors" "$WORK/ingest.txt"; then FAILED+=("ingest: non-2xx or socket errors"); else echo "0 non-2xx"; fi

echo
echo "== 4. kill -9 during ingest"
python3 - "$PORT" "$WORK/acked.txt" <<'EOF' &
import json, sys, time, urllib.request
port, path = sys.argv[1], sys.argv[2]
out = open(path, "w")
for batch in range(100000):
    events = [{"user": "crash", "item": f"c{batch}-{i}", "kind": "play", "timestamp": 1767225600} for i in range(100)]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=json.dumps(events).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            if r.status == 202:
                out.write("\n".join(e["item"] for e in events) + "\n"); out.flush()
    except Exception:
        break
EOF
CLIENT=$!
sleep 2
kill -9 $SERVE
wait $CLIENT 2>/dev/null || true
python3 - "$DUET_HOME/events.sqlite" "$WORK/acked.txt" <<'EOF' || FAILED+=("kill -9: an acknowledged event is missing or stored twice")
import collections, sqlite3, sys
stored = collections.Counter(item for (item,) in sqlite3.connect(sys.argv[1]).execute("select item from events where user = 'crash'"))
acked = open(sys.argv[2]).read().split()
missing = [i for i in acked if stored[i] == 0]
twice = [i for i, n in stored.items() if n > 1]
print(f"acknowledged before kill -9: {len(acked)}; stored: {sum(stored.values())}; acknowledged but missing: {len(missing)}; stored twice: {len(twice)}")
sys.exit(1 if missing or twice or not acked else 0)
EOF
trap - EXIT
if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'serve-load: FAILED: %s\n' "${FAILED[@]}"; echo "work folder $WORK"; exit 1
fi
echo "serve-load: ok (0 non-2xx, 0 mixed, every acknowledged event stored once)"
rm -rf "$WORK"
