#!/usr/bin/env bash
# Disk full, honestly: runs `duet serve` with its home (event log and spill folder included) on a
# small tmpfs, fills the tmpfs, and checks that
#   - ingest answers 503 or 507 naming the problem (never 500, never a hang) and counts the failure;
#   - recommendations keep answering 200 from memory;
#   - once space returns, ingest answers 202 again by itself, without a restart;
#   - every acknowledged event is in the log afterwards and no refused batch is.
# Needs root to mount; elsewhere it says why and exits 0 only when DUET_ALLOW_SKIP=1.
# Usage: scripts/disk-full.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DUET=${DUET:-.build/release/duet}
[ -x "$DUET" ] || swift build -c release
source scripts/lib/common.sh
WORK=$(mktemp -d /tmp/duet-disk-full.XXXXXX)
mkdir -p "$WORK/home"
if ! mount -t tmpfs -o size=24m duet-disk-full "$WORK/home" 2>"$WORK/mount.err"; then
  echo "disk full: skipped, cannot mount a tmpfs here ($(cat "$WORK/mount.err"); it needs root)"
  [ "${DUET_ALLOW_SKIP:-0}" = 1 ] && exit 0 || exit 1
fi
PORT=$(free_port)
export DUET_HOME="$WORK/home"
SERVE=
cleanup() { [ -n "$SERVE" ] && kill "$SERVE" 2>/dev/null; wait 2>/dev/null; umount "$WORK/home" 2>/dev/null || true; }
trap cleanup EXIT
small_home "$WORK"

"$DUET" serve --port "$PORT" --ingest-timeout 3 > "$WORK/serve.log" 2>&1 &
SERVE=$!
wait_ready "$PORT"

python3 - "$PORT" "$WORK/home" "$WORK/ids" <<'PY'
import json, os, sys, time, urllib.request, urllib.error
port, home, ids_path = sys.argv[1], sys.argv[2], sys.argv[3]
base = f"http://127.0.0.1:{port}"
acked, refused = [], []

def post(batch):
    events = [{"user": f"u{i % 300}", "item": f"full-{batch}-{i}", "timestamp": 1767225600} for i in range(500)]
    request = urllib.request.Request(f"{base}/v1/events", data=json.dumps(events).encode(), headers={"Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            status, body, retry = response.status, response.read().decode(), None
    except urllib.error.HTTPError as error:
        status, body, retry = error.code, error.read().decode(), error.headers.get("Retry-After")
    elapsed = time.monotonic() - started
    (acked if status == 202 else refused).append(batch)
    return status, body, retry, elapsed

def recommend():
    with urllib.request.urlopen(f"{base}/v1/users/u1/recommendations?n=5", timeout=10) as response:
        return response.status

def metric(name):
    text = urllib.request.urlopen(f"{base}/metrics").read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))

failures = []
def check(condition, message):
    print(("ok: " if condition else "FAILED: ") + message)
    if not condition: failures.append(message)

batch = 0
for _ in range(3):
    status, *_ = post(batch); batch += 1
    check(status == 202, f"before the disk fills, a batch is acknowledged ({status})")

# Fill the tmpfs to the last byte.
# Unbuffered: a buffered file would raise ENOSPC again when it closes.
filler = os.path.join(home, "filler")
fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
for chunk in (65536, 512):
    try:
        while True: os.write(fd, b"\0" * chunk)
    except OSError: pass
os.close(fd)
print(f"filled: {os.statvfs(home).f_bavail} blocks free")

statuses = []
for _ in range(40):
    status, body, retry, elapsed = post(batch); batch += 1
    statuses.append(status)
    if status != 202:
        check(status in (503, 507), f"a full disk answers 503 or 507, got {status}: {body[:160]}")
        check(retry is not None, "with Retry-After")
        check(elapsed < 10, f"within the ingest deadline ({elapsed:.1f} s)")
        break
check(any(s != 202 for s in statuses), f"ingest noticed the full disk within 40 batches of 500 events ({statuses})")
check(500 not in statuses, "never a 500")
check(recommend() == 200, "recommendations still answer 200 while the disk is full")
check(metric("duet_ingest_store_failures_total") >= 1, "the failure is counted in duet_ingest_store_failures_total")

os.remove(filler)
recovered = None
for attempt in range(30):
    status, *_ = post(batch); batch += 1
    if status == 202:
        recovered = attempt; break
    time.sleep(1)
check(recovered is not None, f"once space returns, ingest acknowledges again without a restart (after {recovered} retries)")
check(recommend() == 200, "recommendations still answer 200")
open(ids_path, "w").write(json.dumps({"acked": acked, "refused": refused}))
sys.exit(1 if failures else 0)
PY
kill $SERVE; wait $SERVE 2>/dev/null || true
SERVE=

# Every acknowledged batch is stored whole, and no refused batch left a row.
python3 - "$WORK/home/events.sqlite" "$WORK/ids" <<'PY'
import collections, json, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
ids = json.load(open(sys.argv[2]))
stored = collections.Counter(item.split("-")[1] for (item,) in db.execute("SELECT item FROM events WHERE item LIKE 'full-%'"))
bad = [b for b in ids["acked"] if stored.get(str(b)) != 500] + [b for b in ids["refused"] if str(b) in stored]
print(f"disk full: {len(ids['acked'])} batches acknowledged and stored whole, {len(ids['refused'])} refused and absent" if not bad
      else f"disk full: FAILED, batches stored wrongly: {bad[:10]}")
sys.exit(1 if bad else 0)
PY
cleanup; trap - EXIT
rm -rf "$WORK"
