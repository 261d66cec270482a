#!/usr/bin/env bash
# A million items × 64 (issue 20): the HNSW build on 2 threads against hnswlib's on the same rows,
# the time from opening a saved index to its first answer, the resident memory of a Serve holding
# two published million-item indexes, and the time to swap one of them while requests run.
# Usage: bench/million.sh [ITEMS]  (default 1000000; needs a release build and python3 with venv)
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS=${1:-1000000}
export DUET=${DUET:-$PWD/.build/release/duet}
[ -x "$DUET" ] || { echo "build first: swift build -c release" >&2; exit 2; }
source scripts/lib/common.sh
WORK=$(mktemp -d /tmp/duet-million.XXXXXX)
export DUET_HOME=$WORK/home
SERVE_PID=
trap '[ -n "$SERVE_PID" ] && kill $SERVE_PID 2>/dev/null; rm -rf "$WORK"' EXIT
VENV=${VENV:-$HOME/.cache/duet-million-venv}
if ! "$VENV/bin/python" -c 'import numpy, hnswlib' 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q numpy hnswlib==0.8.0
fi
PY=$VENV/bin/python
M=16; EFC=100; DIM=64

echo "== rows: $ITEMS × $DIM, drawn as peers.py ann draws them (1,000 centres, noise 0.5, unit length)"
"$PY" - "$WORK" "$ITEMS" "$DIM" "$M" "$EFC" > "$WORK/hnswlib.json" <<'PY_END'
import json, sys, time
import numpy as np, hnswlib
work, n, dim, m, efc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rng = np.random.default_rng(0)
c = rng.standard_normal((1000, dim)).astype(np.float32)
x = (c[rng.integers(0, 1000, n)] + 0.5 * rng.standard_normal((n, dim))).astype(np.float32)
q = (c[rng.integers(0, 1000, 1000)] + 0.5 * rng.standard_normal((1000, dim))).astype(np.float32)
x /= np.linalg.norm(x, axis=1, keepdims=True); q /= np.linalg.norm(q, axis=1, keepdims=True)
x.astype("<f4").tofile(f"{work}/X.f32"); q.astype("<f4").tofile(f"{work}/Q.f32")
with open(f"{work}/ids.txt", "w") as f:
    f.write("\n".join(f"i{i}" for i in range(n)) + "\n")
p = hnswlib.Index(space="cosine", dim=dim); p.init_index(max_elements=n, M=m, ef_construction=efc, random_seed=1)
p.set_num_threads(2)
t = time.perf_counter(); p.add_items(x); build = time.perf_counter() - t
print(json.dumps({"hnswlib_build_seconds": build}))
PY_END
HNSWLIB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["hnswlib_build_seconds"])' "$WORK/hnswlib.json")

echo "== build on 2 threads (m $M, efConstruction $EFC)"
"$DUET" bench ann --vectors "$WORK/X.f32" --queries "$WORK/Q.f32" --dim $DIM --m $M --ef-construction $EFC --metric cosine \
  --threads 2 --ef 64 --results-prefix "$WORK/duet" --index "$WORK/duet.hnsw" --json > "$WORK/duet-build.json"
DUET_BUILD=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["build_seconds"])' "$WORK/duet-build.json")
python3 -c 'import sys; d, h = float(sys.argv[1]), float(sys.argv[2]); print(f"build: duet {d:.1f} s, hnswlib {h:.1f} s (both 2 threads): ratio duet/hnswlib {d/h:.2f}")' "$DUET_BUILD" "$HNSWLIB"

echo "== saved index: open (map + header, levels and upper links checked) to first answer, in a fresh process, page cache dropped when allowed"
sync; (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null && echo "(page cache dropped)" || echo "(page cache not dropped: the file may be cached)"
"$DUET" bench index-load --index "$WORK/duet.hnsw"

echo "== Serve holding two published $ITEMS-item indexes"
small_home "$WORK"
# Three artefacts (an artefact belongs to one name): items/a and items/b served, and the one items/a
# swaps to, built beforehand so the swap measures Serve alone. Lighter settings: these measure memory and swaps.
build_index() {
  "$DUET" lab index build "$1" --vectors "$WORK/X.f32" --ids "$WORK/ids.txt" --dim $DIM --m "$2" --ef-construction 64 --threads 2 \
    --as check-setup --json | python3 -c 'import json,sys; d = json.load(sys.stdin); m = d["manifest"]; print(d["id"]); print("%s (m %s): built in %.1f s, recall@10 %.3f" % (m["name"], m["parameters"]["m"], d["seconds"], m["quality"]["recallAt10"]), file=sys.stderr)'
}
A_ID=$(build_index items/a 12); B_ID=$(build_index items/b 10); NEXT_ID=$(build_index items/a 8)
"$DUET" lab index publish items/a "$A_ID" --reason "million check" --as check-setup >/dev/null
"$DUET" lab index publish items/b "$B_ID" --reason "million check" --as check-setup >/dev/null
B_ID=$NEXT_ID
PORT=$(free_port)
START=$(date +%s.%N)
"$DUET" serve --port "$PORT" --poll-interval 0.05 > "$WORK/serve.log" 2>&1 &
SERVE_PID=$!
wait_ready "$PORT"
for _ in $(seq 600); do
  [ "$(curl -sf "http://127.0.0.1:$PORT/v1/similar/items/b/items/i1?n=1" -o /dev/null -w '%{http_code}')" = 200 ] && \
  [ "$(curl -sf "http://127.0.0.1:$PORT/v1/similar/items/a/items/i1?n=1" -o /dev/null -w '%{http_code}')" = 200 ] && break
  sleep 0.1
done
python3 -c 'import sys,time; print(f"start to both indexes answering: {time.time() - float(sys.argv[1]):.1f} s (graphs read in by verified 16 KiB chunks as searches reach them)")' "$START"
echo "Serve resident memory at the first answers: $(( $(awk '/VmRSS/ {print $2}' /proc/$SERVE_PID/status) / 1024 )) MiB"
grep -o "index 'items/.' artefact [0-9a-f]* answering after .*verified)" "$WORK/serve.log" || true
ls -l "$DUET_HOME"/indexes/*/index.hnsw | awk '{s += $5} END {printf "graph files of the three artefacts on disk: %.0f MiB\n", s / 1048576}'
for _ in $(seq 600); do [ "$(grep -c "index 'items/.' artefact [0-9a-f]* verified whole in the background" "$WORK/serve.log")" -ge 2 ] && break; sleep 0.1; done
grep -o "index 'items/.' artefact [0-9a-f]* verified whole in the background[^\"]*" "$WORK/serve.log" || echo "background verification not finished within 60 s"
echo "Serve resident memory with both verified whole: $(( $(awk '/VmRSS/ {print $2}' /proc/$SERVE_PID/status) / 1024 )) MiB"

echo "== swap items/a to another artefact while requests run"
python3 - "$PORT" "$B_ID" "$DUET" "$ITEMS" <<'PY_END'
import json, subprocess, sys, threading, time, urllib.request
port, artefact, duet, items = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
base = f"http://127.0.0.1:{port}"
stop = threading.Event(); latencies = {"before": [], "during": []}; errors = []; phase = ["before"]
def load(worker):
    i = worker
    while not stop.is_set():
        i += 7919
        url = f"{base}/v1/similar/items/{'ab'[i % 2]}/items/i{i % items}?n=10"
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                r.read()
                if r.status != 200: errors.append(r.status)
        except Exception as e:
            errors.append(str(e)[:80])
        latencies[phase[0]].append(time.perf_counter() - t)
threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
for t in threads: t.start()
time.sleep(3)
phase[0] = "during"
t0 = time.perf_counter()
subprocess.run([duet, "lab", "index", "publish", "items/a", artefact, "--reason", "swap under load", "--as", "check-setup"], check=True,
               stdout=subprocess.DEVNULL)
committed = time.perf_counter()
swapped = None
while time.perf_counter() - committed < 60:
    answer = json.load(urllib.request.urlopen(f"{base}/v1/similar/items/a/items/i1?n=1"))
    if answer["artefact"] == artefact and answer["generation"] == 2:
        swapped = time.perf_counter(); break
    time.sleep(0.02)
time.sleep(1)
stop.set()
for t in threads: t.join()
def pct(xs, p): xs = sorted(xs); return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000 if xs else float("nan")
if swapped is None: sys.exit("items/a never answered from the new artefact within 60 s")
print(f"swap: publish committed → items/a answering from the new artefact in {swapped - committed:.2f} s "
      f"(the publish command itself took {committed - t0:.2f} s, verifying the artefact first; "
      f"Serve keeps the old artefact answering until the new one is verified whole)")
for name in ("before", "during"):
    xs = latencies[name]
    print(f"similar-item requests {name} the swap: {len(xs)}, p50 {pct(xs, .5):.2f} ms, p99 {pct(xs, .99):.2f} ms")
print(f"errors: {len(errors)} {errors[:3]}")
sys.exit(1 if errors else 0)
PY_END
echo "Serve resident memory after the swap: $(( $(awk '/VmRSS/ {print $2}' /proc/$SERVE_PID/status) / 1024 )) MiB"
