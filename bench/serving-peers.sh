#!/usr/bin/env bash
# Duet's Serve against the service a team would otherwise write (bench/python_peer.py: Starlette on
# uvicorn, 2 workers, numpy) serving the same production bundle. First both must answer the same
# lists item for item for a sample of users (known, unknown, with exclusions): any difference that
# is not a float near-tie fails the run. Then wrk (2 threads, 64 connections, SECONDS each, every
# known user in a shuffled order, n=20) in three rounds of: Duet recommendations, Duet /livez, Duet /livez through the
# recommendations' Lua request function (the same client work), Duet recommendations for unknown
# users (no scan), Duet recommendations from a Serve that scans per request, Python recommendations. Serve's CPU time per request comes from /proc.
# Prints each run, the medians and the ratios (goals: Duet/Python ≥ 5, recommendations/livez ≥ 0.8),
# and Serve's own p99 for the recommendation route from its /metrics histogram (goal ≤ 2 ms).
# Duet writes every exposure durably meanwhile; the Python peer logs nothing.
# Serve answers known users from lists it precomputes when the bundle loads; a second Serve with
# --precomputed-lists-mb 0 scans per request, and its rounds are reported beside (it must answer the same lists).
# Uses Last.fm from ../shared when present, otherwise a generated world (and says so).
# Usage: bench/serving-peers.sh [SECONDS per run, default 10 | --lists-only (CI: the agreement check alone)]
set -euo pipefail
cd "$(dirname "$0")/.."
LISTS_ONLY=false
if [ "${1:-}" = --lists-only ]; then LISTS_ONLY=true; shift; fi
SECONDS_PER_RUN=${1:-10}
[[ "$SECONDS_PER_RUN" =~ ^[1-9][0-9]*$ ]] || { echo "seconds per run must be a whole number ≥ 1, not '$SECONDS_PER_RUN'" >&2; exit 2; }
export DUET=${DUET:-$PWD/.build/release/duet}
[ -x "$DUET" ] || { echo "build first: swift build -c release" >&2; exit 2; }
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install -y wrk" >&2; exit 2; }
source scripts/lib/common.sh
VENV=${VENV:-$HOME/.cache/duet-serving-peer-venv}
if ! "$VENV/bin/python" -c 'import numpy, starlette, uvicorn, uvloop, httptools' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'numpy<3' 'starlette<1' 'uvicorn[standard]<1'
fi
WORK=$(mktemp -d /tmp/duet-serving-peers.XXXXXX)
export DUET_HOME=$WORK/home DUET_USER=serving-peers
DUET_PID= PEER_PID= SCAN_PID=
trap '[ -n "$DUET_PID" ] && kill $DUET_PID 2>/dev/null; [ -n "$SCAN_PID" ] && kill $SCAN_PID 2>/dev/null; [ -n "$PEER_PID" ] && kill $PEER_PID 2>/dev/null; rm -rf "$WORK"' EXIT

import_lastfm_or_world "serving peers" "$WORK" 3000 20000 200000
BUNDLE=$("$DUET" lab train --register --name serving-peers --factors 64 --iterations 15 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bundle"])')
"$DUET" lab promote "$BUNDLE" --override --reason "serving peer benchmark" >/dev/null
FOLDER=$DUET_HOME/bundles/$BUNDLE
python3 -c 'import json,sys; m = json.load(open(sys.argv[1])); c = m["counts"]
print("bundle %s on %s: %d users, %d items, %d factors" % (sys.argv[2][:12], sys.argv[3], c["users"], c["items"], m["dimension"]))' "$FOLDER/manifest.json" "$BUNDLE" "$data"

DUET_PORT=$(free_port)
"$DUET" serve --port "$DUET_PORT" > "$WORK/serve.log" 2>&1 &
DUET_PID=$!
SCAN_PORT=$(free_port)
"$DUET" serve --port "$SCAN_PORT" --precomputed-lists-mb 0 > "$WORK/serve-scan.log" 2>&1 &
SCAN_PID=$!
PEER_PORT=$(free_port)
OPENBLAS_NUM_THREADS=1 PEER_BUNDLE=$FOLDER "$VENV/bin/uvicorn" --workers 2 --port "$PEER_PORT" --log-level warning --no-access-log \
  --app-dir bench python_peer:app > "$WORK/peer.log" 2>&1 &
PEER_PID=$!
wait_ready "$DUET_PORT"
wait_ready "$SCAN_PORT"
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$PEER_PORT/livez" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$PEER_PORT/livez" >/dev/null || { cat "$WORK/peer.log"; echo "the Python peer did not start" >&2; exit 1; }

echo "== the same lists, item for item"
python3 - "$DUET_PORT" "$PEER_PORT" "$FOLDER/users.ids" "$SCAN_PORT" <<'PY_END'
import json, random, sys, urllib.parse, urllib.request
duet, peer, ids, scan = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().split(), sys.argv[4]
rng = random.Random(7)
def get(port, user, query):
    url = f"http://127.0.0.1:{port}/v1/users/{urllib.parse.quote(user, safe='')}/recommendations?{query}"
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.load(r)
cases = [(u, "n=20") for u in rng.sample(ids, min(400, len(ids)))] + [(f"nobody-{i}", "n=20") for i in range(20)]
exact = ties = 0; problems = []
for i, (user, query) in enumerate(cases):
    if i % 8 == 0 and not user.startswith("nobody"):
        first = [x["id"] for x in get(duet, user, "n=3")["items"]]
        query += "&exclude=" + ",".join(urllib.parse.quote(t, safe="") for t in first)
    a, b = get(duet, user, query), get(peer, user, query)
    ia, ib = [x["id"] for x in a["items"]], [x["id"] for x in b["items"]]
    # Precomputed lists against the scan: the same items and scores, bit for bit.
    s = get(scan, user, query)
    if [(x["id"], x["score"]) for x in s["items"]] != [(x["id"], x["score"]) for x in a["items"]] or s.get("fallback") != a.get("fallback"):
        problems.append(("precomputed != scan", user, query, ia[:5], [x["id"] for x in s["items"]][:5])); continue
    if ia == ib and a.get("fallback") == b.get("fallback"):
        exact += 1; continue
    # Scores are float32 sums in another order: a difference only where both lists hold equal scores is a near-tie.
    sa, sb = [x["score"] for x in a["items"]], [x["score"] for x in b["items"]]
    if len(ia) == len(ib) and a.get("fallback") == b.get("fallback") and all(
            x == y or abs(p - q) <= 1e-5 * max(1.0, abs(p)) for x, y, p, q in zip(ia, ib, sa, sb)):
        ties += 1; continue
    problems.append((user, query, ia[:5], ib[:5], a.get("fallback"), b.get("fallback")))
print(f"{len(cases)} lists compared: {exact} identical, {ties} differing only inside float near-ties, {len(problems)} different")
for p in problems[:5]: print("  different:", p)
sys.exit(1 if problems else 0)
PY_END
$LISTS_ONLY && exit 0

# Requests are formatted once per wrk thread, in init (after wrk sets the Host header), one per
# user in a shuffled order, and then replayed in turn: wrk.format and string building per request
# cost client CPU, which wrk takes from the same two cores Serve runs on.
cat > "$WORK/users.lua" <<'EOF'
local users, requests, turn = {}, {}, 0
for line in io.lines(os.getenv("USERS_FILE")) do table.insert(users, line) end
init = function(args)
  for i = #users, 2, -1 do
    local j = math.random(i)
    users[i], users[j] = users[j], users[i]
  end
  for i = 1, #users do
    requests[i] = wrk.format("GET", "/v1/users/" .. users[i] .. "/recommendations?n=20")
  end
end
request = function()
  turn = turn % #requests + 1
  return requests[turn]
end
EOF
# The same client work per request (the same Lua, each user in turn), asking /livez: the floor with wrk's
# own cost held equal, since wrk shares the two cores with Serve.
sed 's|"/v1/users/" .. users\[i\] .. "/recommendations?n=20"|"/livez?u=" .. users[i]|' \
  "$WORK/users.lua" > "$WORK/livez.lua"
grep -q '/livez?u=' "$WORK/livez.lua" || { echo "could not derive livez.lua" >&2; exit 1; }
# Users the bundle does not know: the same route, exposure and JSON with a popularity list instead
# of the scan, so the gap to /livez splits into the scan and everything else.
sed 's|"/v1/users/" .. users\[i\] .. "/recommendations?n=20"|"/v1/users/nobody-" .. math.random(1000000) .. "/recommendations?n=20"|' \
  "$WORK/users.lua" > "$WORK/unknown.lua"
grep -q 'nobody-' "$WORK/unknown.lua" || { echo "could not derive unknown.lua" >&2; exit 1; }
metric_snapshot() { curl -sf "http://127.0.0.1:$DUET_PORT/metrics" > "$1"; }
run() {  # run LABEL PORT PATH|lua
  local out=$WORK/wrk-$1-$RANDOM.txt
  # Serve's CPU time over the run (utime + stime, in clock ticks), for its cost per request.
  local before=0 after=0 pid=
  [ "$2" = "$DUET_PORT" ] && pid=$DUET_PID
  [ "$2" = "$SCAN_PORT" ] && pid=$SCAN_PID
  [ -n "$pid" ] && before=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  if [ "$3" = lua ] || [ "$3" = livez-lua ] || [ "$3" = unknown-lua ]; then
    local script=$WORK/users.lua
    [ "$3" = livez-lua ] && script=$WORK/livez.lua
    [ "$3" = unknown-lua ] && script=$WORK/unknown.lua
    USERS_FILE=$FOLDER/users.ids wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency -s "$script" "http://127.0.0.1:$2" > "$out"
  else
    wrk -t2 -c64 -d"${SECONDS_PER_RUN}s" --latency "http://127.0.0.1:$2$3" > "$out"
  fi
  [ -n "$pid" ] && after=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  python3 - "$1" "$out" "$((after - before))" "$(getconf CLK_TCK)" >> "$WORK/runs.jsonl" <<'PY_END'
import json, re, sys
text = open(sys.argv[2]).read()
ticks, per_second = int(sys.argv[3]), int(sys.argv[4])
total = re.search(r"(\d+) requests in", text)
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
def ms(v, unit): return float(v) * {"us": 1e-3, "ms": 1, "s": 1e3}[unit]
p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", text)
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
errors = re.search(r"Socket errors: (.*)", text)
cpu = round(ticks / per_second / int(total.group(1)) * 1e6, 1) if ticks and total else None
print(json.dumps({"run": sys.argv[1], "rps": rps, "p99_ms": ms(*p99.groups()) if p99 else None, "server_cpu_us": cpu,
                  "non2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(1) if errors else ""}))
PY_END
  tail -1 "$WORK/runs.jsonl"
}
echo "== wrk -t2 -c64, ${SECONDS_PER_RUN} s per run, three rounds"
for round in 1 2 3; do
  metric_snapshot "$WORK/metrics-before-$round"
  run duet-recommendations "$DUET_PORT" lua
  metric_snapshot "$WORK/metrics-after-$round"
  run duet-livez "$DUET_PORT" /livez
  run duet-livez-lua "$DUET_PORT" livez-lua
  run duet-unknown-users "$DUET_PORT" unknown-lua
  run duet-recommendations-scan "$SCAN_PORT" lua
  run python-recommendations "$PEER_PORT" lua
done

python3 - "$WORK" <<'PY_END'
import json, re, statistics, sys
work = sys.argv[1]
runs = [json.loads(l) for l in open(f"{work}/runs.jsonl")]
def series(name): return [r["rps"] for r in runs if r["run"] == name]
duet, livez, peer = series("duet-recommendations"), series("duet-livez"), series("python-recommendations")
livez_lua, unknown, scanned = series("duet-livez-lua"), series("duet-unknown-users"), series("duet-recommendations-scan")
def cpu(name): return [r["server_cpu_us"] for r in runs if r["run"] == name]
def buckets(path):
    out = {}
    for line in open(path):
        m = re.match(r'http_server_request_duration_seconds_bucket\{(.*)\} (\S+)', line)
        if m and "recommendations" in m.group(1):
            le = re.search(r'le="([^"]+)"', m.group(1)).group(1)
            out[float("inf") if le == "+Inf" else float(le)] = out.get(float("inf") if le == "+Inf" else float(le), 0) + float(m.group(2))
    return out
p99s = []
for number in (1, 2, 3):
    before, after = buckets(f"{work}/metrics-before-{number}"), buckets(f"{work}/metrics-after-{number}")
    diff = sorted((le, after[le] - before.get(le, 0)) for le in after)
    total = diff[-1][1] if diff else 0
    p99s.append(next((le for le, count in diff if total and count >= 0.99 * total), float("nan")) * 1000)
# Buckets bound a quantile from above: the p99 lies at or below the first bucket holding 99% of requests.
summary = {
    "duet_rps": duet, "duet_livez_rps": livez, "python_rps": peer,
    "ratio_vs_python": [round(d / p, 2) for d, p in zip(duet, peer)],
    "rec_over_livez": [round(d / l, 2) for d, l in zip(duet, livez)],
    "duet_livez_same_client_rps": livez_lua,
    "rec_over_livez_same_client": [round(d / l, 2) for d, l in zip(duet, livez_lua)],
    "duet_unknown_users_rps": unknown,
    "unknown_users_over_livez": [round(u / l, 2) for u, l in zip(unknown, livez)],
    "duet_scan_rps": scanned,
    "scan_over_livez": [round(d / l, 2) for d, l in zip(scanned, livez)],
    "scan_ratio_vs_python": [round(d / p, 2) for d, p in zip(scanned, peer)],
    "duet_server_cpu_us_per_request": {"recommendations": cpu("duet-recommendations"), "livez": cpu("duet-livez"),
                                       "livez_same_client": cpu("duet-livez-lua"), "unknown_users": cpu("duet-unknown-users"),
                                       "recommendations_scan": cpu("duet-recommendations-scan")},
    "duet_server_p99_ms_upper_bound": p99s,
    "duet_wrk_p99_ms": [r["p99_ms"] for r in runs if r["run"] == "duet-recommendations"],
    "python_wrk_p99_ms": [r["p99_ms"] for r in runs if r["run"] == "python-recommendations"],
    "non2xx": sum(r["non2xx"] for r in runs),
}
summary["median_ratio_vs_python"] = statistics.median(summary["ratio_vs_python"])
summary["median_rec_over_livez"] = statistics.median(summary["rec_over_livez"])
summary["median_rec_over_livez_same_client"] = statistics.median(summary["rec_over_livez_same_client"])
summary["median_unknown_users_over_livez"] = statistics.median(summary["unknown_users_over_livez"])
summary["median_scan_over_livez"] = statistics.median(summary["scan_over_livez"])
summary["median_scan_ratio_vs_python"] = statistics.median(summary["scan_ratio_vs_python"])
rec_cpu, livez_cpu = statistics.median(cpu("duet-recommendations")), statistics.median(cpu("duet-livez"))
summary["median_server_p99_ms"] = statistics.median(p99s)
print(json.dumps(summary, indent=1))
print(f"median: Duet {statistics.median(duet):.0f} req/s, Python {statistics.median(peer):.0f} req/s: {summary['median_ratio_vs_python']:.2f}x (goal 5); "
      f"recommendations/livez {summary['median_rec_over_livez']:.2f} (goal 0.8); Serve's own p99 ≤ {summary['median_server_p99_ms']:.2f} ms (goal 2; its histogram bucket)")
print(f"with wrk's per-request work held equal (livez through the same Lua call): {summary['median_rec_over_livez_same_client']:.2f}; "
      f"Serve's CPU per request: recommendations {rec_cpu:.0f} µs, livez {livez_cpu:.0f} µs")
print(f"unknown users (same route, exposure and JSON; a popularity list, no scan): {summary['median_unknown_users_over_livez']:.2f} of livez, "
      f"{statistics.median(cpu('duet-unknown-users')):.0f} µs of Serve's CPU per request")
print(f"known users scanned per request (--precomputed-lists-mb 0): {summary['median_scan_over_livez']:.2f} of livez, "
      f"{summary['median_scan_ratio_vs_python']:.2f}x Python, {statistics.median(cpu('duet-recommendations-scan')):.0f} µs of Serve's CPU per request")
sys.exit(1 if summary["non2xx"] else 0)
PY_END
