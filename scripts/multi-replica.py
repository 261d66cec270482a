#!/usr/bin/env python3
"""Three `duet serve` replicas on one PostgreSQL registry and event log, loopback only, bounded.

Under load spread across the replicas: 20 promotions/rollbacks (propagation time to every replica,
non-2xx responses, responses mixing bundles), one replica killed with SIGKILL and restarted (it
must rejoin at the current generation), a PostgreSQL restart mid-load (replicas keep serving;
acknowledged events must all be found afterwards), and an experiment whose analysis reads the
exposures written by all three replicas.

Usage: python3 scripts/multi-replica.py [--duet .build/release/duet]
"""
import argparse, json, os, random, signal, statistics, subprocess, sys, tempfile, threading, time, urllib.request

p = argparse.ArgumentParser()
p.add_argument("--duet", default=".build/release/duet")
p.add_argument("--pg-port", type=int, default=55433)
a = p.parse_args()
DUET = os.path.abspath(a.duet)
WORK = tempfile.mkdtemp(prefix="duet-replicas-")
HOME = os.path.join(WORK, "home")            # the shared bundle folder every replica mounts
BASE = random.randint(21000, 38000)
PORTS = [BASE, BASE + 1, BASE + 2]


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
sh("psql", "-h", "127.0.0.1", "-p", str(a.pg_port), "-U", "postgres", "-q", "-c", "CREATE DATABASE duet")
REGISTRY = url.rsplit("/", 1)[0] + "/duet"
env = dict(os.environ, DUET_HOME=HOME, DUET_REGISTRY=REGISTRY)
print(f"work {WORK}\nregistry {REGISTRY}\nreplicas on {PORTS}")


def duet(*args, check=True):
    return sh(DUET, *args, env=env, check=check)


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
print(f"bundle A {A[:12]} (items t…), bundle B {B[:12]} (items bt…)")

replicas = {}


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

# 1. Twenty changes; after each, how long until every replica serves the new generation.
propagation = []
for i in range(20):
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
        print(f"  replicas {sorted(pending)} missed generation {generation} within 10 s")
    time.sleep(0.2)
propagation.sort()
print(f"propagation over 20 changes × 3 replicas: p50 {statistics.median(propagation) * 1000:.0f} ms, max {propagation[-1] * 1000:.0f} ms "
      f"({sum(1 for t in propagation if t <= 2)} of {len(propagation)} within 2 s)")

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
print(f"replica {victim} killed with SIGKILL and restarted: serves generation {ready(victim)} (current {current})")
paused.discard(victim)

# 3. PostgreSQL restart mid-load, with ingestion: count acknowledged events, then find them.
acked = {"events": 0, "failed": 0}


def ingest():
    batch = 0
    while not stop.is_set() and batch < 400:
        port = PORTS[batch % 3]
        events = [{"user": "ingest", "item": f"i{batch}-{k}", "kind": "play", "timestamp": 1767225600} for k in range(50)]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/events", data=json.dumps(events).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                if r.status == 202:
                    acked["events"] += 50
                    batch += 1
        except Exception:
            acked["failed"] += 1          # not acknowledged: the client retries the same batch
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
found = int(sh("psql", "-h", "127.0.0.1", "-p", str(a.pg_port), "-U", "postgres", "-d", "duet", "-tA", "-c",
               "SELECT count(*) FROM events WHERE user_id = 'ingest'").strip())
print(f"PostgreSQL restart mid-load ({'ok' if restart.returncode == 0 else restart.stderr.strip()}): "
      f"recommendations kept answering; events acknowledged {acked['events']}, found {found}, "
      f"unacknowledged attempts retried {acked['failed']}")

# 4. An experiment across the replicas; its analysis reads every replica's exposures.
duet("lab", "experiment", "create", "--id", "replicas", "--hypothesis", "three replicas, one experiment", "--control", B,
     "--treatment", A, "--success", "plays_per_user")
duet("lab", "experiment", "start", "replicas")
time.sleep(1.5)
stop.set()
for t in threads:
    t.join()
time.sleep(1.0)   # exposure writers flush every 50 ms
duet("lab", "experiment", "stop", "replicas")
analysis = json.loads(duet("lab", "analyze", "replicas", "--json"))
by_replica = sh("psql", "-h", "127.0.0.1", "-p", str(a.pg_port), "-U", "postgres", "-d", "duet", "-tA", "-c",
                "SELECT context, count(*) FROM exposures WHERE experiments LIKE '%\"replicas\"%' GROUP BY context ORDER BY context").strip()
print(f"experiment analysis: {sum(arm['exposures'] for arm in analysis['arms'])} exposures, "
      f"{sum(arm['users'] for arm in analysis['arms'])} users; exposures per replica: {by_replica.replace(chr(10), ', ')}")

print(f"load: {stats['requests']} recommendation responses ({stats['by_port']}), {stats['non2xx']} non-2xx, "
      f"{stats['mixed']} mixing bundles, {stats['transport']} transport errors")
for process in replicas.values():
    process.send_signal(signal.SIGTERM)
for process in replicas.values():
    process.wait(timeout=20)
subprocess.run(["su", "postgres", "-c", f"{PG_CTL} -D {pg_data} -m fast stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
ok = stats["non2xx"] == 0 and stats["mixed"] == 0 and acked["events"] <= found and propagation[-1] <= 2
print("RESULT", "ok" if ok else "FAILED")
sys.exit(0 if ok else 1)
