#!/usr/bin/env bash
# Starts a throwaway PostgreSQL on loopback in a temporary data folder and prints its URL on the
# last line. Installs Debian's postgresql if needed. Stop it with: pg_ctl -D <folder> stop
# (the folder is printed too). Usage: scripts/start-postgres.sh [port, default 55432]
set -euo pipefail
PORT=${1:-55432}
set -- "$PORT"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends postgresql >/dev/null
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
# A port already taken (e.g. by an earlier run's server) moves us to the next free one.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 50); do port_busy "$PORT" || break; PORT=$((PORT + 1)); done
port_busy "$PORT" && { echo "no free port near $1" >&2; exit 1; }
DATA=$(mktemp -d /tmp/duet-pg.XXXXXX)
chown -R postgres "$DATA"
run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
run "$BIN/initdb -D $DATA/data -U postgres --auth=trust >/dev/null"
run "$BIN/pg_ctl -D $DATA/data -o '-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=on' -l $DATA/log -w start >/dev/null"
echo "postgres data folder: $DATA/data (stop: su postgres -c '$BIN/pg_ctl -D $DATA/data stop')" >&2
echo "postgres://postgres@127.0.0.1:$PORT/postgres"
