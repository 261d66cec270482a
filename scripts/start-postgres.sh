#!/usr/bin/env bash
# Starts a throwaway PostgreSQL on loopback in a temporary data folder and prints its URL on the
# last line. Installs Debian's postgresql if needed. Stop it with: pg_ctl -D <folder> stop
# (the folder is printed too). Usage: scripts/start-postgres.sh [port, default 55432] [--tls]
# With --tls the server also speaks TLS with a certificate for "localhost" signed by a throwaway CA
# made with openssl; the URL then asks for verify-full against that CA, and a second, unrelated CA
# is left beside it as wrong-ca.pem for tests that must see a wrong CA refused.
set -euo pipefail
PORT=${1:-55432}
TLS=${2:-}
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
OPTIONS="-p $PORT -k $DATA -c listen_addresses=127.0.0.1 -c fsync=on"
if [ "$TLS" = --tls ]; then
  command -v openssl >/dev/null || { apt-get update >/dev/null; apt-get install -y --no-install-recommends openssl >/dev/null; }
  CERTS=$DATA/tls
  mkdir -p "$CERTS"
  for ca in ca wrong-ca; do
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=Duet test $ca" -keyout "$CERTS/$ca.key" -out "$CERTS/$ca.pem" 2>/dev/null
  done
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$CERTS/server.key" -out "$CERTS/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost\n' > "$CERTS/san.ext"
  openssl x509 -req -in "$CERTS/server.csr" -CA "$CERTS/ca.pem" -CAkey "$CERTS/ca.key" -CAcreateserial -days 2 \
    -extfile "$CERTS/san.ext" -out "$CERTS/server.pem" 2>/dev/null
  chown -R postgres "$CERTS"
  chmod 600 "$CERTS/server.key"
  # The URL names localhost, which may resolve to ::1 first: listen on every loopback address.
  OPTIONS="-p $PORT -k $DATA -c listen_addresses=localhost -c fsync=on -c ssl=on -c ssl_cert_file=$CERTS/server.pem -c ssl_key_file=$CERTS/server.key"
fi
# A server that does not come up says why (its log), not only that it failed.
run "$BIN/pg_ctl -D $DATA/data -o '$OPTIONS' -l $DATA/log -w start >/dev/null" || { echo "pg_ctl start failed; server log:" >&2; cat "$DATA/log" >&2; exit 1; }
echo "postgres data folder: $DATA/data (stop: su postgres -c '$BIN/pg_ctl -D $DATA/data stop')" >&2
if [ "$TLS" = --tls ]; then
  # The certificate names localhost only, so verify-full must connect by that name.
  echo "postgres://postgres@localhost:$PORT/postgres?sslmode=verify-full&sslrootcert=$CERTS/ca.pem"
else
  echo "postgres://postgres@127.0.0.1:$PORT/postgres"
fi
