#!/usr/bin/env python3
"""Three `duet serve` replicas on one PostgreSQL registry and event log, loopback only, bounded.

Under load spread across the replicas: 20 promotions/rollbacks (propagation time to every replica,
non-2xx responses, responses mixing bundles), one replica killed with SIGKILL and restarted (it
must rejoin at the current generation), a PostgreSQL restart mid-load (replicas keep serving;
acknowledged events must all be found afterwards), and an experiment whose analysis reads the
exposures written by all three replicas.

Usage: python3 scripts/multi-replica.py [--duet .build/release/duet]
"""
import argparse, atexit, json, os, random, signal, statistics, subprocess, sys, tempfile, threading, time, urllib.request, urllib.parse

p = argparse.ArgumentParser()
p.add_argument("--duet", default=".build/release/duet")
p.add_argument("--pg-port", type=int, default=55433)
p.add_argument("--changes", type=int, default=20, help="promotions and rollbacks under load")
a = p.parse_args()
failures = []


def check(ok, message):
    """Every line this script prints about a promise is also asserted."""
    print(("ok: " if ok else "FAILED: ") + message)
    if not ok:
        failures.append(message)

DUET = os.path.abspath(a.duet)
WORK = tempfile.mkdtemp(prefix="duet-replicas-")
HOME = os.path.join(WORK, "home")            # the shared bundle folder every replica mounts


def free_run(count):
    """Consecutive ports below Linux's ephemeral range (32768+), where no client socket takes one
    between our check and a replica's (re)start; each checked free by binding it."""
    import socket
    for _ in range(200):
        base = random.randint(20000, 32000 - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
            return list(range(base, base + count))
        except OSError:
            continue
    sys.exit("no run of free ports found")


PORTS = free_run(3)


def sh(*args, capture=True, env=None, check=True):
    out = subprocess.run(list(args), capture_output=capture, text=True, env=env, timeout=300)
    if check and out.returncode != 0:
        sys.exit(f"failed: {' '.join(args)}\n{out.stdout}\n{out.stderr}")
    return out.stdout


# PostgreSQL on loopback, in a temporary folder.
url = sh("bash", "scripts/start-postgres.sh", str(a.pg_port)).strip().splitlines()[-1]
pg_bin = sorted(d for d in os.listdir("/usr/lib/postgresql"))[-1]
PG_CTL = f"/usr/lib/postgresql/{pg_bin}/bin/pg_ctl"
pg_data = subprocess.run(["bash", "-c", f"ls -dt /tmp/duet-pg.*/data | head -1"], capture_output=True, text=True).stdout.strip()
# start-postgres.sh moves to the next free port when this one is taken.
a.pg_port = urllib.parse.urlparse(url).port
replicas = {}


def stop_everything():
    """However the script ends, no replica or PostgreSQL outlives it."""
    for process in replicas.values():
        if process.poll() is None:
            process.kill()
    subprocess.run(["su", "postgres", "-c", f"{PG_CTL} -D {pg_data} -m immediate stop"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


atexit.register(stop_everything)
sh("psql", "-h", "127.0.0.1", "-p", str(a.pg_port), "-U", "postgres", "-q", "-c", "CREATE DATABASE duet")
REGISTRY = url.rsplit("/", 1)[0] + "/duet"
# The person every registry change names (the CLI refuses to act for nobody).
env = dict(os.environ, DUET_HOME=HOME, DUET_REGISTRY=REGISTRY, DUET_USER="multi-replica")
print(f"work {WORK}\nregistry {REGISTRY}\nreplicas on {PORTS}")


def duet(*args, check=True):
    return sh(DUET, *args, env=env, check=check)


# The Lab sets the schema up; Serve never migrates.
duet("lab", "migrate")

# Two bundles with disjoint item ids (t… and bt…), so a response can be checked against its bundle.
duet("world", "generate", "--out", f"{WORK}/world", "--users", "3000", "--tracks", "8000", "--events", "120000", "--json")
with open(f"{WORK}/world/events.tsv") as src, open(f"{WORK}/events-b.tsv", "w") as dst:
    for n, line in enumerate(src):
        fields = line.rstrip("\n").split("\t")
        if n > 0:
            fields[1] = "b" + fields[1]
        dst.write("\t".join(fields) + "\n")
snap_a = json.loads(duet("import", "world", f"{WORK}/world", "--json"))["snapshot"]["hash"]
snap_b = json.loads(duet("import", "csv", f"{WORK}/events-b.tsv", "--user-col", "user", "--item-col", "item", "--weight-col", "weight",
                         "--time-col", "timestamp", "--kind-col", "kind", "--json"))["snapshot"]["hash"]
A = json.loads(duet("lab", "train", "--snapshot", snap_a, "--register", "--name", "replica-a", "--factors", "16", "--iterations", "4", "--json"))["bundle"]
B = json.loads(duet("lab", "train", "--snapshot", snap_b, "--register", "--name", "replica-b", "--factors", "16", "--iterations", "4", "--json"))["bundle"]
duet("lab", "promote", A, "--override", "--reason", "replica test setup")
# Replicas poll every 0.1 s: a change goes live 0.5 s after it is written, on every replica at once.
# The delay must cover a poll plus loading and verifying the bundle under this load; on 2 cores
# saturated by three replicas, PostgreSQL and the load below, that takes up to ~300 ms (printed below).
CUTOVER_MS = 500
duet("lab", "cutover", "--delay", f"{CUTOVER_MS}ms")
print(f"bundle A {A[:12]} (items t…), bundle B {B[:12]} (items bt…)")


def start(port):
    log = open(f"{WORK}/serve-{port}.log", "a")
    replicas[port] = subprocess.Popen([DUET, "serve", "--port", str(port), "--poll-interval", "0.1"], env=env, stdout=log, stderr=log)


def get(port, path, timeout=2):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, json.load(r)


def ready(port):
    try:
        return get(port, "/readyz")[1].get("generation")
    except Exception:
        return None


for port in PORTS:
    start(port)
for port in PORTS:
    for _ in range(100):
        if ready(port) == 1:
            break
        time.sleep(0.1)
if any(ready(port) != 1 for port in PORTS):
    sys.exit(f"replicas did not start at generation 1: {[ready(port) for port in PORTS]}; logs in {WORK}")

stats = {"requests": 0, "non2xx": 0, "mixed": 0, "transport": 0, "by_port": {p: 0 for p in PORTS}}
lock = threading.Lock()
stop = threading.Event()
paused = set()


def load(worker):
    rng = random.Random(worker)
    while not stop.is_set():
        port = PORTS[rng.randrange(3)]
        if port in paused:
            continue
        user = f"u{rng.randrange(3000)}"
        try:
            status, body = get(port, f"/v1/users/{user}/recommendations?n=10&context=replica-{port}")
            named_b = body["bundle"] == B
            mixed = any(item["id"].startswith("bt") != named_b for item in body["items"])
            with lock:
                stats["requests"] += 1
                stats["by_port"][port] += 1
                stats["mixed"] += int(mixed)
        except urllib.error.HTTPError:
            with lock:
                stats["non2xx"] += 1
        except Exception:
            if port not in paused:
                with lock:
                    stats["transport"] += 1


threads = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(6)]
for t in threads:
    t.start()

# 1. Changes under load; after each, how long until every replica serves the new generation.
propagation = []
missed = []
spreads = []
late = []
for i in range(a.changes):
    args = ["lab", "promote", B, "--override", "--reason", f"change {i}", "--json"] if i % 2 == 0 else ["lab", "rollback", "--reason", f"change {i}", "--json"]
    generation = json.loads(duet(*args))["generation"]
    changed = time.monotonic()
    pending = set(PORTS)
    while pending and time.monotonic() - changed < 10:
        for port in list(pending):
            if ready(port) == generation:
                propagation.append(time.monotonic() - changed)
                pending.discard(port)
        time.sleep(0.005)
    if pending:
        missed.append((generation, sorted(pending)))
    else:
        # Each replica's own record of when it switched: the spread of one cutover.
        states = [get(port, "/readyz")[1] for port in PORTS]
        switched = [s.get("activatedAt") for s in states if s.get("generation") == generation]
        if len(switched) == len(PORTS) and all(switched):
            spreads.append(max(switched) - min(switched))
        late += [s.get("lateByMs", 0) for s in states if s.get("lateByMs", 0) > 5]
    time.sleep(0.2)
propagation.sort()
check(not missed, f"every replica reached every one of {a.changes} generations within 10 s (missed: {missed})")
check(bool(propagation) and propagation[-1] <= 2, f"propagation over {a.changes} changes × 3 replicas: p50 {statistics.median(propagation or [0]) * 1000:.0f} ms, "
      f"max {max(propagation, default=0) * 1000:.0f} ms (bound 2 s; {CUTOVER_MS} ms of it is the cutover delay)")
loads = []
for port in PORTS:
    with open(f"{WORK}/serve-{port}.log") as log:
        loads += [int(line.split("loaded and verified in ")[1].split(" ms")[0]) for line in log if "loaded and verified in " in line]
loads.sort()
print(f"bundle load and verify on the replicas under this load: {len(loads)} loads, p50 {statistics.median(loads or [0]):.0f} ms, "
      f"max {max(loads, default=0)} ms (the cutover delay is {CUTOVER_MS} ms)")
spreads.sort()
check(len(spreads) == a.changes and spreads[-1] <= 20,
      f"cutover spread (first to last replica switching) over {len(spreads)} changes: p50 {statistics.median(spreads or [0]):.0f} ms, "
      f"max {max(spreads, default=0)} ms (bound 20 ms); late swaps: {len(late)}")

# 2. SIGKILL one replica, restart it: it must come back at the current generation.
victim = PORTS[2]
paused.add(victim)
replicas[victim].send_signal(signal.SIGKILL)
replicas[victim].wait()
current = json.loads(duet("lab", "promote", B, "--override", "--reason", "while a replica is down", "--json"))["generation"]
start(victim)
for _ in range(100):
    if ready(victim) == current:
        break
    time.sleep(0.1)
rejoined = ready(victim)
check(rejoined == current, f"replica {victim} killed with SIGKILL and restarted serves generation {rejoined} (current {current})")
paused.discard(victim)

# 3. PostgreSQL restart mid-load, with ingestion: every acknowledged event id must be stored, once.
acked = {"events": 0, "failed": 0, "ids": [], "retried": set()}


def ingest():
    batch = 0
    while not stop.is_set() and batch < 400:
        port = PORTS[batch % 3]
        events = [{"user": "ingest", "item": f"i{batch}-{k}", "kind": "play", "timestamp": 1767225600} for k in range(50)]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=json.dumps(events).encode(),
                                         headers={"Content-Type": "application/json", "Idempotency-Key": f"replicas-{batch}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                if r.status == 202:
                    acked["events"] += 50
                    acked["ids"].extend(e["item"] for e in events)
                    batch += 1
        except Exception:
            acked["failed"] += 1          # not acknowledged: the client retries the same batch
            acked["retried"].add(batch)
            time.sleep(0.05)


ingester = threading.Thread(target=ingest, daemon=True)
ingester.start()
time.sleep(0.5)
before = dict(stats)
# -l keeps the new postmaster off our pipes (it would otherwise hold them open forever).
restart = subprocess.run(["su", "postgres", "-c", f"{PG_CTL} -D {pg_data} -l {pg_data}/../log -m fast -w restart"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, timeout=60)
time.sleep(1.0)
ingester.join(timeout=60)
stored_ids = sh("psql", "-h", "127.0.0.1", "-p", str(a.pg_port), "-U", "postgres", "-d", "duet", "-tA", "-c",
                "SELECT item FROM events WHERE user_id = 'ingest'").split()
stored = {}
for item in stored_ids:
    stored[item] = stored.get(item, 0) + 1
check(restart.returncode == 0, f"PostgreSQL restarted mid-load ({restart.stderr.strip() or 'pg_ctl restart ok'})")
check(not ingester.is_alive(), "the ingesting client finished its 400 batches after the restart")
missing = [i for i in acked["ids"] if i not in stored]
check(not missing, f"acknowledged ids ⊆ stored ids: {len(acked['ids'])} acknowledged, {len(missing)} missing")
# A batch retried under its Idempotency-Key (on another replica, even) is stored once.
twice = [i for i, n in stored.items() if n > 1]
check(not twice, f"no id is stored twice, {len(acked['retried'])} batches retried under their key included ({len(twice)} stored twice)")

# 4. An experiment across the replicas; its analysis reads every replica's exposures.
duet("lab", "experiment", "create", "--id", "replicas", "--hypothesis", "three replicas, one experiment", "--control", B,
     "--treatment", A, "--success", "plays_per_user")
duet("lab", "experiment", "start", "replicas")
time.sleep(1.5)
stop.set()
for t in threads:
    t.join()
time.sleep(1.0)   # exposure writers flush every few ms


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return sum(float(line.split()[-1]) for line in r.read().decode().splitlines() if line.startswith(name + " "))


# Exposures a replica spilled while PostgreSQL was away are replayed every few seconds: wait for it.
# A batch stuck on a dead connection is spilled after Serve's 10 s store timeout, then replayed.
waited = time.monotonic()
while time.monotonic() - waited < 40:
    behind = {p: metric(p, "duet_exposure_queue_depth") + metric(p, "duet_exposures_spilled_total")
              - metric(p, "duet_exposures_replayed_total") for p in PORTS}
    if all(n <= 0 for n in behind.values()):
        break
    time.sleep(0.5)
check(all(n <= 0 for n in behind.values()), f"every exposure reached the log, spilled ones replayed ({time.monotonic() - waited:.1f} s; still behind per replica: {behind})")
duet("lab", "experiment", "stop", "replicas")
analysis = json.loads(duet("lab", "analyze", "replicas", "--json"))
by_replica = sh("psql", "-h", "127.0.0.1", "-p", str(a.pg_port), "-U", "postgres", "-d", "duet", "-tA", "-c",
                "SELECT context, count(*) FROM exposures WHERE experiments LIKE '%\"replicas\"%' GROUP BY context ORDER BY context").strip()
contexts = [line.split("|")[0] for line in by_replica.splitlines()]
check(sorted(contexts) == sorted(f"replica-{p}" for p in PORTS),
      f"experiment analysis: {sum(arm['exposures'] for arm in analysis['arms'])} exposures, "
      f"{sum(arm['users'] for arm in analysis['arms'])} users, from every replica: {by_replica.replace(chr(10), ', ')}")

check(stats["non2xx"] == 0 and stats["mixed"] == 0 and stats["transport"] == 0,
      f"load: {stats['requests']} recommendation responses ({stats['by_port']}), {stats['non2xx']} non-2xx, "
      f"{stats['mixed']} mixing bundles, {stats['transport']} transport errors")
for process in replicas.values():
    process.send_signal(signal.SIGTERM)
for process in replicas.values():
    process.wait(timeout=20)
subprocess.run(["su", "postgres", "-c", f"{PG_CTL} -D {pg_data} -m fast stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
print("RESULT", "ok" if not failures else f"FAILED ({len(failures)}): " + "; ".join(failures))
sys.exit(0 if not failures else 1)
