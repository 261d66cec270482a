#!/usr/bin/env bash
# End to end on PostgreSQL, through the real binary: the Lab migrates and applies Serve's grants,
# `duet serve` runs under that role, the database refuses that role's writes, and Serve refuses to
# start on a database the Lab has not migrated. Exits non-zero on any broken promise.
# Usage: scripts/serve-role-check.sh DUET_BINARY POSTGRES_ADMIN_URL
set -euo pipefail
DUET=${1:?usage: serve-role-check.sh DUET_BINARY POSTGRES_ADMIN_URL}
ADMIN=${2:?usage: serve-role-check.sh DUET_BINARY POSTGRES_ADMIN_URL}
WORK=$(mktemp -d /tmp/duet-role.XXXXXX)
SERVE_PID=
cleanup() { [ -n "$SERVE_PID" ] && kill "$SERVE_PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
fail() { echo "serve-role-check: FAIL: $*" >&2; exit 1; }

base=${ADMIN%/*}
suffix=$RANDOM$RANDOM
db=duet_role_$suffix
fresh=duet_fresh_$suffix
role=duet_serve_$suffix
psql "$ADMIN" -qAt -c "CREATE DATABASE $db" -c "CREATE DATABASE $fresh" >/dev/null
LAB="$base/$db"
hostport=${base#postgres://}; hostport=${hostport#*@}
SERVE_URL="postgres://$role@$hostport/$db"

"$DUET" lab migrate --home "$WORK/home" --registry "$LAB"
"$DUET" lab grants --home "$WORK/home" --registry "$LAB" --role "$role" --apply

# The role's writes are refused by the database itself.
for sql in "UPDATE serving_state SET version = version + 1" "DELETE FROM production_history" \
           "INSERT INTO models (id, name, kind, snapshot, created_at, status) VALUES ('x','x','als','s',0,'candidate')" \
           "UPDATE events SET weight = 0" "DELETE FROM exposures"; do
  if out=$(psql "$SERVE_URL" -qAt -v ON_ERROR_STOP=1 -c "$sql" 2>&1); then fail "role $role was allowed: $sql"; fi
  echo "$out" | grep -q "permission denied" || fail "expected 'permission denied' for '$sql', got: $out"
done
psql "$SERVE_URL" -qAt -v ON_ERROR_STOP=1 -c "SELECT version FROM serving_state" >/dev/null || fail "role cannot read serving_state"
echo "serve-role-check: the database refuses Serve's role every write it tried"

# Serve under that role: it starts, answers, and its event appends land.
port=$((20000 + RANDOM % 20000))
"$DUET" serve --home "$WORK/home" --serve-registry "$SERVE_URL" --port "$port" >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/livez" >/dev/null 2>&1 && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$port/livez" >/dev/null || { cat "$WORK/serve.log"; fail "serve did not start under role $role"; }
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/v1/events" \
  -H 'content-type: application/json' -d '[{"user":"u1","item":"t1","kind":"play","weight":1,"timestamp":1700000000000}]')
[ "$code" = 202 ] || fail "POST /v1/events under role $role answered $code"
# A batch under an Idempotency-Key, sent twice: the role may record the key, and the batch lands once.
for _ in 1 2; do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$port/v1/events" -H 'Idempotency-Key: role-check-1' \
    -H 'content-type: application/json' -d '[{"user":"u1","item":"t2","kind":"play","weight":1,"timestamp":1700000000000}]')
  [ "$code" = 202 ] || fail "a keyed POST /v1/events under role $role answered $code"
done
stored=$(psql "$LAB" -qAt -c "SELECT count(*) FROM events WHERE user_id = 'u1'")
[ "$stored" = 2 ] || fail "expected the plain event and the keyed batch once each, found $stored rows"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true; SERVE_PID=
echo "serve-role-check: duet serve runs under $role and its appends land"

# Serve never migrates: on a database the Lab has not set up it refuses, naming the command.
if "$DUET" serve --home "$WORK/home" --serve-registry "$base/$fresh" --port "$port" >"$WORK/fresh.log" 2>&1; then
  fail "serve started on an unmigrated database"
fi
grep -q "duet lab migrate" "$WORK/fresh.log" || { cat "$WORK/fresh.log"; fail "the refusal does not name 'duet lab migrate'"; }
tables=$(psql "$base/$fresh" -qAt -c "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
[ "$tables" = 0 ] || fail "serve created $tables table(s) in the unmigrated database"
echo "serve-role-check: serve refuses an unmigrated schema and creates nothing: ok"
