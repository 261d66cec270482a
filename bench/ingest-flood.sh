#!/usr/bin/env bash
# Overload: floods POST /v1/events with 4 MiB bodies on 200 connections while recommendations run,
# and reports Serve's peak RSS against its stated bound, the recommendation p99 during the flood,
# and the share of ingest answered 503. Exits non-zero when the peak RSS passes the bound or any
# recommendation fails. A benchmark, not a timed test: run it on an otherwise idle machine.
# Bound, every term set by a setting: RSS before the flood + 3 × --max-ingest-bytes (a body is held
# as the collected buffer and the decoded batch, about twice its size for long ids) + the event
# log's page caches (64 MiB for the writer, 8 MiB for each of up to 5 readers) + the exposure
# queue (50,000 exposures of about 1 KiB) + 1 MiB per flooding connection (the chunks NIO has read
# of a body being received, or drained after a 503, before backpressure stops it).
# Usage: bench/ingest-flood.sh [seconds, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-20}
DUET=${DUET:-.build/release/duet}
MAX_INGEST_BYTES=${MAX_INGEST_BYTES:-$((32 << 20))}
BODY=$((4 << 20))
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 1; }
[ -x "$DUET" ] || swift build -c release
source scripts/lib/common.sh
WORK=$(mktemp -d /tmp/duet-ingest-flood.XXXXXX)
export DUET_HOME="$WORK/home"
small_home "$WORK"
PORT=$(free_port)
"$DUET" serve --port "$PORT" --max-ingest-bytes "$MAX_INGEST_BYTES" --max-body-bytes "$BODY" > "$WORK/serve.log" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null || true' EXIT
wait_ready "$PORT"

# A valid batch just under 4 MiB: at most 9,000 events with long ids.
python3 - "$WORK/body.json" "$BODY" <<'PY'
import json, sys
path, limit = sys.argv[1], int(sys.argv[2])
events, size = [], 2
while True:
    n = len(events)  # ids stay within Serve's 256 characters
    event = {"user": f"flood{n % 500}", "item": "flood-" + "x" * 230 + str(n), "requestId": "r" + "y" * 200 + str(n), "timestamp": 1767225600}
    line = len(json.dumps(event)) + 2
    if size + line >= limit or len(events) == 9000: break
    events.append(event); size += line
open(path, "w").write(json.dumps(events))
print(f"flood body: {len(events)} events, {size} bytes")
PY
cat > "$WORK/flood.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("$WORK/body.json"):read("*a")
LUA
cat >> "$WORK/flood.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) accepted = 0; shed = 0; other = 0 end
function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 elseif status == 503 then shed = shed + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local a, s, o = 0, 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); s = s + t:get("shed"); o = o + t:get("other") end
  io.write(string.format("INGEST accepted=%d shed=%d other=%d errors=%d\n", a, s, o,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
cat > "$WORK/users.lua" <<'LUA'
math.randomseed(os.time())
function request() return wrk.format("GET", "/v1/users/u" .. math.random(0, 299) .. "/recommendations?n=20") end
LUA

BASE_KB=$(awk '/^VmRSS/{print $2}' "/proc/$SERVE/status")
CONNECTIONS=${FLOOD_CONNECTIONS:-200}
BOUND_KB=$((BASE_KB + 3 * MAX_INGEST_BYTES / 1024 + 65536 + 5 * 8192 + 50000 + CONNECTIONS * 1024))
python3 - "$SERVE" "$WORK/peak" <<'PY' &
import sys, time
pid, out = sys.argv[1], sys.argv[2]
peak = 0
try:
    while True:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS"): peak = max(peak, int(line.split()[1]))
        open(out, "w").write(str(peak))
        time.sleep(0.02)
except FileNotFoundError:
    pass
PY
SAMPLER=$!
wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 30s -s "$WORK/flood.lua" "http://127.0.0.1:$PORT/v1/events" > "$WORK/flood.txt" 2>&1 &
FLOOD=$!
sleep 1
wrk -t1 -c16 -d"$((DURATION - 2))s" --latency -s "$WORK/users.lua" "http://127.0.0.1:$PORT" > "$WORK/recommend.txt" 2>&1
wait $FLOOD || true
sleep 0.5
kill $SAMPLER 2>/dev/null || true
PEAK_KB=$(cat "$WORK/peak")
HWM_KB=$(awk '/^VmHWM/{print $2}' "/proc/$SERVE/status")

python3 - "$WORK" "$BASE_KB" "$PEAK_KB" "$HWM_KB" "$BOUND_KB" "$MAX_INGEST_BYTES" "$CONNECTIONS" <<'PY'
import re, sys
work, base, peak, hwm, bound, budget, connections = sys.argv[1], *map(int, sys.argv[2:])
recommend = open(f"{work}/recommend.txt").read()
flood = open(f"{work}/flood.txt").read()
def ms(label):
    m = re.search(r"\s%s%%\s+([\d.]+)(us|ms|s)\b" % label, recommend)
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
requests = int(re.search(r"(\d+) requests in", recommend).group(1))
non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", recommend)) else 0
socket = re.search(r"Socket errors: (.*)", recommend)
ingest = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", re.search(r"INGEST (.*)", flood).group(1)))
answered = ingest["accepted"] + ingest["shed"] + ingest["other"]
print(f"serve RSS: {base / 1024:.0f} MiB before, peak {max(peak, hwm) / 1024:.0f} MiB during the flood; bound {bound / 1024:.0f} MiB "
      f"(before + 3 × {budget >> 20} MiB of bodies in flight + 104 MiB of page caches + 49 MiB of exposure queue + {connections} connections × 1 MiB)")
print(f"recommendations during the flood: {requests} requests, p50 {ms('50'):.2f} ms, p99 {ms('99'):.2f} ms, {non2xx} non-2xx"
      + (f", socket errors {socket.group(1)}" if socket else ""))
print(f"ingest: {answered} bodies answered: {ingest['accepted']} stored (202), {ingest['shed']} shed (503), {ingest['other']} other; "
      f"share of 503 {ingest['shed'] / max(answered, 1):.1%}; connection errors {ingest['errors']}")
failed = []
if max(peak, hwm) > bound: failed.append("peak RSS over the bound")
if non2xx or socket: failed.append("recommendations failed during the flood")
if ingest["other"]: failed.append("ingest answered something other than 202 or 503")
print("ingest flood: " + ("FAILED: " + "; ".join(failed) if failed else "ok"))
sys.exit(1 if failed else 0)
PY
