#!/usr/bin/env bash
# PostgreSQL frozen, then stopped and restarted, under load. Serve runs on its own throwaway
# PostgreSQL while one client asks for recommendations and another ingests batches with unique ids:
#   1. the server is frozen (SIGSTOP: connections hang, nothing is refused),
#   2. then stopped hard (pg_ctl -m immediate) and started again.
# Checks: recommendations answer 200 throughout; ingest answers 202 or 503 with Retry-After within
# the ingest deadline, never 500, never a hang; ingest recovers by itself; every acknowledged id is
# stored exactly once; every exposure Serve answered with is stored exactly once (spilled and
# replayed). Exits non-zero on any broken promise.
# Usage: scripts/pg-restart.sh [seconds of each fault, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
FAULT=${1:-5}
DUET=${DUET:-.build/release/duet}
[ -x "$DUET" ] || swift build -c release --traits Postgres
source scripts/lib/common.sh
WORK=$(mktemp -d /tmp/duet-pg-restart.XXXXXX)
PG_OUT=$(bash scripts/start-postgres.sh 56432 2>&1)
URL=$(echo "$PG_OUT" | tail -1)
DATA=$(echo "$PG_OUT" | sed -n 's/^postgres data folder: \(.*\) (stop.*/\1/p')
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pg() { su postgres -s /bin/sh -c "$BIN/pg_ctl -D $DATA $*" >/dev/null; }
postmaster() { head -1 "$DATA/postmaster.pid"; }
SERVE=
cleanup() {
  [ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null
  pkill -CONT -u postgres 2>/dev/null || true
  pg "-m immediate stop" 2>/dev/null || true
}
trap cleanup EXIT
export DUET_HOME="$WORK/home" DUET_REGISTRY="$URL"
"$DUET" lab migrate >/dev/null
small_home "$WORK"
PORT=$(free_port)
INGEST_TIMEOUT=2
"$DUET" serve --port "$PORT" --poll-interval 0.2 --ingest-timeout $INGEST_TIMEOUT > "$WORK/serve.log" 2>&1 &
SERVE=$!
wait_ready "$PORT"

python3 - "$PORT" "$WORK" "$FAULT" "$INGEST_TIMEOUT" "$DATA" "$BIN" <<'PY'
import json, os, subprocess, sys, threading, time, urllib.request, urllib.error
port, work, fault, deadline, data, pgbin = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
base = f"http://127.0.0.1:{port}"
stop = threading.Event()
phase = ["before"]
rec = {"ok": 0, "bad": [], "request_ids": []}
ingest = {"acked": [], "refused": [], "statuses": {}, "slowest": 0.0, "no_retry_after": 0, "recovered_after_restart": False}

def recommend_loop():
    user = 0
    while not stop.is_set():
        user += 1
        try:
            with urllib.request.urlopen(f"{base}/v1/users/u{user % 300}/recommendations?n=5", timeout=10) as r:
                rec["ok"] += 1
                rec["request_ids"].append(json.load(r)["requestId"])
        except Exception as error:
            rec["bad"].append(f"{phase[0]}: {error}")
        time.sleep(0.005)

def ingest_loop():
    # Each batch is retried under its Idempotency-Key until acknowledged, as a careful client does.
    batch, acknowledged = 0, True
    while not stop.is_set():
        if acknowledged:
            batch += 1
            ids = [f"pg-{batch}-{i}" for i in range(50)]
            body = json.dumps([{"user": f"u{i}", "item": item, "timestamp": 1767225600} for i, item in enumerate(ids)]).encode()
        request = urllib.request.Request(f"{base}/v1/events", data=body,
                                         headers={"Content-Type": "application/json", "Idempotency-Key": f"pg-restart-{batch}"})
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                status, retry = r.status, "n/a"
        except urllib.error.HTTPError as error:
            status, retry = error.code, error.headers.get("Retry-After")
        except Exception as error:
            status, retry = f"no answer ({error})", None
        elapsed = time.monotonic() - started
        ingest["slowest"] = max(ingest["slowest"], elapsed)
        key = f"{phase[0]} {status}"
        ingest["statuses"][key] = ingest["statuses"].get(key, 0) + 1
        acknowledged = status == 202
        if acknowledged:
            ingest["acked"].extend(ids)
            if phase[0] == "after restart": ingest["recovered_after_restart"] = True
        else:
            ingest["refused"].extend(ids)
            if status == 503 and not retry: ingest["no_retry_after"] += 1
            time.sleep(0.2)

threads = [threading.Thread(target=recommend_loop), threading.Thread(target=ingest_loop)]
for t in threads: t.start()
time.sleep(2)
pids = open(os.path.join(data, "postmaster.pid")).readline().strip()
children = subprocess.run(["pgrep", "-P", pids], capture_output=True, text=True).stdout.split()
phase[0] = "frozen"
subprocess.run(["kill", "-STOP", pids, *children])
time.sleep(fault)
subprocess.run(["kill", "-CONT", pids, *children])
phase[0] = "thawed"
time.sleep(2)
phase[0] = "stopped"
subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", f"{pgbin}/pg_ctl -D {data} -m immediate stop"], check=True, capture_output=True)
time.sleep(fault)
# restart, not start: it reuses the port and options of the previous run (postmaster.opts).
subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c", f"{pgbin}/pg_ctl -D {data} -l {data}/../log -w restart"], check=True, capture_output=True)
phase[0] = "after restart"
for _ in range(300):
    if ingest["recovered_after_restart"]: break
    time.sleep(0.1)
time.sleep(2)
stop.set()
for t in threads: t.join()
json.dump({"rec": rec, "ingest": ingest}, open(os.path.join(work, "result.json"), "w"))
print(f"recommendations: {rec['ok']} answered 200, {len(rec['bad'])} failed")
print(f"ingest by phase and status: {ingest['statuses']}; slowest answer {ingest['slowest']:.2f} s")
PY

# Let spilled exposures replay, then stop Serve gracefully (it drains its queue on the way out).
for _ in $(seq 60); do
  spilled=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^duet_exposures_spilled_total /{print $2}')
  replayed=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^duet_exposures_replayed_total /{print $2}')
  [ "${spilled:-0}" = "${replayed:-0}" ] && break
  sleep 1
done
echo "exposures spilled ${spilled:-0}, replayed ${replayed:-0}"
kill -TERM $SERVE; wait $SERVE 2>/dev/null || true
SERVE=

psql "$URL" -qAt -c "SELECT item FROM events WHERE item LIKE 'pg-%'" > "$WORK/stored-events.txt"
psql "$URL" -qAt -c "SELECT request_id FROM exposures" > "$WORK/stored-exposures.txt"
python3 - "$WORK" "$INGEST_TIMEOUT" <<'PY'
import collections, json, os, sys
work, deadline = sys.argv[1], float(sys.argv[2])
result = json.load(open(os.path.join(work, "result.json")))
rec, ingest = result["rec"], result["ingest"]
events = collections.Counter(open(os.path.join(work, "stored-events.txt")).read().split())
exposures = collections.Counter(open(os.path.join(work, "stored-exposures.txt")).read().split())
failures = []
def check(ok, message):
    print(("ok: " if ok else "FAILED: ") + message)
    if not ok: failures.append(message)
check(not rec["bad"], f"recommendations answered 200 throughout ({rec['ok']} answered, {len(rec['bad'])} failed: {rec['bad'][:3]})")
statuses = ingest["statuses"]
check(all(k.rsplit(" ", 1)[1] in ("202", "503") for k in statuses), f"ingest answered only 202 or 503 ({statuses})")
check(any(k.startswith("frozen 503") for k in statuses), "a frozen server gave 503")
check(any(k.startswith("stopped 503") for k in statuses), "a stopped server gave 503")
check(ingest["no_retry_after"] == 0, "every 503 carried Retry-After")
check(ingest["slowest"] < deadline + 3, f"every ingest answer came within the deadline ({ingest['slowest']:.2f} s, deadline {deadline} s)")
check(ingest["recovered_after_restart"], "ingest acknowledged again after the restart, without restarting Serve")
missing = [i for i in ingest["acked"] if events[i] == 0]
check(not missing, f"every acknowledged id is stored ({len(ingest['acked'])} acknowledged, {len(missing)} missing)")
dups = [i for i, n in events.items() if n > 1]
check(not dups, f"no id is stored twice ({len(dups)} duplicated)")
late = {i for i in ingest["refused"] if i in set(ingest["acked"])}
print(f"note: {len(ingest['refused'])} ids were refused with 503 at least once and retried under their key; "
      f"{len(late)} of them were acknowledged on a retry, each stored once")
lost = [r for r in rec["request_ids"] if exposures[r] == 0]
check(not lost, f"every answered recommendation's exposure is stored ({len(rec['request_ids'])} answered, {len(lost)} missing)")
twice = [r for r, n in exposures.items() if n > 1]
check(not twice, f"no exposure is stored twice ({len(twice)})")
sys.exit(1 if failures else 0)
PY
rm -rf "$WORK"
