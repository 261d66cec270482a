# Shared by the check scripts: a small promoted home, and waiting for a server. Source it.

# small_home WORK: a world of 300 users, an 8-factor model promoted to production and its item graph
# published as the index tracks/similar, in $DUET_HOME.
small_home() {
  "$DUET" world generate --out "$1/world" --users 300 --tracks 800 --events 15000 --json >/dev/null
  "$DUET" import world "$1/world" --json >/dev/null
  local model
  model=$("$DUET" lab train --register --name small --factors 8 --iterations 2 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["bundle"])')
  "$DUET" lab promote "$model" --as check-setup --override --reason "check setup" >/dev/null
  # A published similarity index, so /v1/similar/{index}/items/{item} has something to answer from.
  "$DUET" lab people add check-setup --team platform --contact ops@example.com >/dev/null
  "$DUET" lab index build tracks/similar --bundle "$model" --m 8 --ef-construction 40 --publish --reason "check setup" --as check-setup --json >/dev/null
}

# wait_ready PORT: until /readyz answers 200, at most 20 s.
wait_ready() {
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.1; done
  echo "Serve on port $1 did not become ready" >&2
  return 1
}

# free_port: a port nothing listens on.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# import_lastfm_or_world WHO WORK USERS TRACKS EVENTS: Last.fm from ../shared into $DUET_HOME when it is
# there, otherwise a generated world of that size (saying so, naming WHO); sets `data` to which it was.
import_lastfm_or_world() {
  local lastfm=../shared/data/lastfm-hetrec2011
  if [ -d "$lastfm" ]; then
    "$DUET" import lastfm "$lastfm" --json >/dev/null
    data="Last.fm"
  else
    echo "$1: $lastfm is absent; using a generated world instead"
    "$DUET" world generate --out "$2/world" --users "$3" --tracks "$4" --events "$5" --json >/dev/null
    "$DUET" import world "$2/world" --json >/dev/null
    data="a generated world"
  fi
}
