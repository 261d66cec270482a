#!/usr/bin/env bash
# Kills `duet lab promote` / `duet lab rollback` with SIGKILL at random points until ROUNDS runs
# were really killed (exit status 137, not a run that had already finished), and after each one
# checks that the registry is consistent: production names a complete bundle whose checksums
# verify, the models marked production are exactly the alias, and the history runs 1…n without
# gaps, each change starting where the previous one ended. Half the kills land at random times,
# half when the command writes its result (after its commit, before it exits); each is classed by
# whether the generation moved. Both kinds must occur. Runs on the home's
# SQLite registry, or on PostgreSQL when a URL is given.
# Usage: scripts/promote-crash.sh [rounds, default 50] [postgres admin URL]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-50}
PG_ADMIN=${2:-}
DUET=${DUET:-.build/release/duet}
[ -x "$DUET" ] || swift build -c release --traits Postgres
WORK=$(mktemp -d /tmp/duet-promote-crash.XXXXXX)
export DUET_HOME="$WORK/home"
if [ -n "$PG_ADMIN" ]; then
  db=duet_crash_$RANDOM$RANDOM
  psql "$PG_ADMIN" -qAt -c "CREATE DATABASE $db" >/dev/null
  export DUET_REGISTRY="${PG_ADMIN%/*}/$db"
fi

"$DUET" world generate --out "$WORK/world" --users 400 --tracks 1000 --events 20000 --json >/dev/null
"$DUET" import world "$WORK/world" --json >/dev/null
bundle() { "$DUET" lab train --register --name "$1" --factors 8 --iterations 2 --seed "$2" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bundle"])'; }
A=$(bundle crash-a 1)
B=$(bundle crash-b 2)
"$DUET" lab promote "$A" --as promote-crash --override --reason setup >/dev/null

# Prints the number of generations; fails on any inconsistency.
check() {
  if [ -n "$PG_ADMIN" ]; then
    psql "$DUET_REGISTRY" -qAt -F '|' -c "SELECT generation, from_model, to_model FROM production_history ORDER BY generation" > "$WORK/history"
    psql "$DUET_REGISTRY" -qAt -c "SELECT id FROM models WHERE status = 'production'" > "$WORK/production"
    echo ok > "$WORK/integrity"
  else
    sqlite3_dump() { python3 -c "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); [print('|'.join('' if v is None else str(v) for v in row)) for row in db.execute(sys.argv[2])]" "$DUET_HOME/registry.sqlite" "$1"; }
    sqlite3_dump "PRAGMA integrity_check" > "$WORK/integrity"
    sqlite3_dump "SELECT generation, from_model, to_model FROM production_history ORDER BY generation" > "$WORK/history"
    sqlite3_dump "SELECT id FROM models WHERE status = 'production'" > "$WORK/production"
  fi
  python3 - "$WORK" <<'PY'
import sys
work = sys.argv[1]
assert open(f"{work}/integrity").read().strip() == "ok", "integrity check failed"
rows = [line.split("|") for line in open(f"{work}/history").read().splitlines() if line]
for index, (generation, source, target) in enumerate(rows):
    assert int(generation) == index + 1, f"generation {generation} at position {index + 1}"
    if index > 0:
        assert source == rows[index - 1][2], f"generation {generation} starts from {source}, not {rows[index - 1][2]}"
production = open(f"{work}/production").read().split()
assert production == [rows[-1][2]], f"models marked production {production} vs alias {rows[-1][2]}"
print(len(rows))
PY
}

# How long a promotion takes here, to spread the random kills over its life.
for _ in 1 2 3; do
  python3 scripts/lib/kill-at.py time "$DUET" lab promote "$B" --as promote-crash --override --reason timing >> "$WORK/timing"
  python3 scripts/lib/kill-at.py time "$DUET" lab rollback --as promote-crash --reason timing >> "$WORK/timing"
done
COMMIT_MS=$(sort -n "$WORK/timing" | sed -n 3p)
generations=$(check)

before=0; after=0; finished=0; round=0
while { [ $((before + after)) -lt "$ROUNDS" ] || [ "$before" -eq 0 ] || [ "$after" -eq 0 ]; } && [ "$round" -lt $((ROUNDS * 10)) ]; do
  round=$((round + 1))
  # Odd rounds: a kill anywhere from start-up to past the usual output, which mostly lands before
  # the commit. Even rounds: the kill lands when the command writes its result, after its commit.
  if [ $((round % 2)) -eq 1 ]; then
    when=$(python3 -c "import random; print(random.uniform(0, 1.3 * $COMMIT_MS))")
  else
    when=output
  fi
  if [ $((round % 4)) -lt 2 ]; then
    outcome=$(python3 scripts/lib/kill-at.py "$when" "$DUET" lab promote "$B" --as promote-crash --override --reason "round $round")
  else
    outcome=$(python3 scripts/lib/kill-at.py "$when" "$DUET" lab rollback --as promote-crash --reason "round $round")
  fi
  now=$(check)
  "$DUET" lab verify production >/dev/null
  if [ "$outcome" = killed ]; then
    if [ "$now" -gt "$generations" ]; then after=$((after + 1)); else before=$((before + 1)); fi
  else
    finished=$((finished + 1))
  fi
  generations=$now
done
echo "promote-crash ($([ -n "$PG_ADMIN" ] && echo PostgreSQL || echo SQLite)): $round runs (a normal run commits and prints after ${COMMIT_MS} ms); killed with SIGKILL before the commit $before, after it $after; $finished finished first. After every one the registry was consistent ($generations generations) and production verified."
[ $((before + after)) -ge "$ROUNDS" ] && [ "$before" -gt 0 ] && [ "$after" -gt 0 ] || { echo "promote-crash: FAILED to land $ROUNDS kills of both kinds"; exit 1; }
rm -rf "$WORK"
