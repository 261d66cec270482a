#!/usr/bin/env bash
# Proves every 202 from POST /v1/events follows an fsync of the data it acknowledges: runs
# `duet serve` under strace, posts batches one at a time, and checks in the trace that before each
# 202 is written to the socket, the event log was written and then fsynced (fsync/fdatasync on
# events.sqlite*) after that write. With `synchronous = OFF` or `NORMAL` (WAL) this fails: no sync
# comes between a commit's write and its 202. Exits non-zero on any unsynced acknowledgement.
# Usage: scripts/fsync-trace.sh [batches, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
BATCHES=${1:-20}
DUET=${DUET:-.build/release/duet}
command -v strace >/dev/null || { echo "fsync trace: strace is needed (apt-get install -y strace)"; exit 1; }
[ -x "$DUET" ] || swift build -c release
source scripts/lib/common.sh
WORK=$(mktemp -d /tmp/duet-fsync-trace.XXXXXX)
PORT=$(free_port)
export DUET_HOME="$WORK/home"
small_home "$WORK"

strace -f -qq -y -yy -s 48 -e signal=none -o "$WORK/trace.txt" \
  -e trace=write,pwrite64,writev,pwritev,pwritev2,sendmsg,sendto,fsync,fdatasync,sync_file_range \
  "$DUET" serve --port "$PORT" > "$WORK/serve.log" 2>&1 &
TRACED=$!
trap 'pkill -P $TRACED 2>/dev/null; kill $TRACED 2>/dev/null || true' EXIT
wait_ready "$PORT"
if ! grep -q . "$WORK/trace.txt"; then echo "fsync trace: strace recorded nothing (ptrace not permitted here?)"; exit 1; fi

python3 - "$PORT" "$BATCHES" <<'PY'
import json, sys, urllib.request
port, batches = sys.argv[1], int(sys.argv[2])
for batch in range(batches):
    events = [{"user": f"u{batch}", "item": f"fsync-{batch}-{i}", "timestamp": 1767225600} for i in range(10)]
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=json.dumps(events).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 202, response.status
PY
# Stop Serve itself; strace ends with its tracee (a signalled strace would detach and leave it running).
kill "$(pgrep -P $TRACED)"; wait $TRACED 2>/dev/null || true
trap - EXIT

python3 - "$WORK/trace.txt" "$BATCHES" <<'PY'
import re, sys
path, batches = sys.argv[1], int(sys.argv[2])
# Lines in completion order; a call split by another thread's is joined back on "resumed".
pending, calls = {}, []
for line in open(path, errors="replace"):
    # strace pads the pid column: split on the run of spaces, whatever the pid's width.
    pid, rest = line.split(None, 1)
    if "<unfinished ...>" in rest:
        pending[pid] = rest.split("<unfinished ...>")[0]
        continue
    resumed = re.match(r"<\.\.\. (\w+) resumed>(.*)", rest)
    if resumed:
        rest = pending.pop(pid, resumed.group(1) + "(") + resumed.group(2)
    calls.append(rest)
log_write = re.compile(r"^(write|pwrite64|writev|pwritev2?)\(\d+</[^>]*events\.sqlite[^>]*>")
log_sync = re.compile(r"^(fsync|fdatasync|sync_file_range)\(\d+</[^>]*events\.sqlite[^>]*>")
accepted = re.compile(r"^(write|writev|sendmsg|sendto)\(\d+<TCP.*HTTP/1\.1 202")
written = synced = False
acks = unsynced = 0
for call in calls:
    if log_write.match(call):
        written, synced = True, False
    elif log_sync.match(call) and written:
        synced = True
    elif accepted.match(call):
        acks += 1
        if not (written and synced):
            unsynced += 1
            print(f"202 number {acks} was written with {'no log write' if not written else 'no fsync'} since the previous one: {call[:100]}")
        written = synced = False
print(f"fsync trace: {acks} acknowledgements traced, {unsynced} not preceded by a write and an fsync of the event log")
if acks != batches:
    sys.exit(f"fsync trace: expected {batches} acknowledgements in the trace, found {acks}")
sys.exit(1 if unsynced else 0)
PY
rm -rf "$WORK"
