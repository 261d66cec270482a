#!/usr/bin/env python3
"""How ALS starts and how many CG steps it takes, decided on validation data rather than on the test split.

peers.py als scores on its test split; choosing defaults there would tune on the test. This script carves
a validation split (20 %, by a seeded hash) out of peers.py's *training* file and, on it, trains implicit
itself with each combination of start (its own uniform [0, 0.01) draw, or standard normal) and CG steps
(2 or 3), over several seeds, then Duet with its defaults. Duet's defaults (normal start, 2 steps) come
from this comparison. It fails when Duet's mean is below the best implicit combination's by more than
--tolerance.

    python3 ../shared/bench/peers.py als --duet .build/release/duet                      # Last.fm split
    ~/.cache/duet-peers-venv/bin/python bench/als-validate.py --split /tmp/duet-peers/als
"""
import argparse, hashlib, json, os, statistics, sys

p = argparse.ArgumentParser()
p.add_argument("--duet", default=".build/release/duet")
p.add_argument("--split", default="/tmp/duet-peers/als", help="folder with peers.py's train.tsv")
p.add_argument("--seeds", default="1,2,3,4,5")
p.add_argument("--tolerance", type=float, default=0.001)
a = p.parse_args()
source = os.path.join(a.split, "train.tsv")
if not os.path.exists(source):
    sys.exit(f"no {source}: run `python3 ../shared/bench/peers.py als --duet {a.duet}` first")
try:
    import numpy as np, scipy.sparse as sp, threadpoolctl
    from implicit.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k
except ImportError as error:
    sys.exit(f"{error}: run this with ~/.cache/duet-peers-venv/bin/python (peers.py als creates it)")
threadpoolctl.threadpool_limits(1, "blas")
from als_common import HYPER, duet_ndcg, matrices, rows as read_rows

rows = read_rows(source)
fit_rows, valid_rows = [], []
for r in rows:
    h = int.from_bytes(hashlib.sha256(f"valid:{r[0]}:{r[1]}".encode()).digest()[:8], "little") / 2**64
    (valid_rows if h < 0.2 else fit_rows).append(r)
work = os.path.join(a.split, "validation")
os.makedirs(work, exist_ok=True)
fit_path, valid_path = os.path.join(work, "train.tsv"), os.path.join(work, "test.tsv")
for path, data in ((fit_path, fit_rows), (valid_path, valid_rows)):
    with open(path, "w") as out:
        out.write("".join("\t".join(r) + "\n" for r in data))

fit, valid = matrices(rows, fit_rows, valid_rows)


def implicit_ndcg(seed, start, cg_steps):
    model = AlternatingLeastSquares(**HYPER, random_state=seed, num_threads=1)
    model.cg_steps = cg_steps
    if start == "normal":  # fit() keeps factors that are already set
        rng = np.random.default_rng(seed)
        model.user_factors = rng.standard_normal((fit.shape[0], HYPER["factors"])).astype(np.float32)
        model.item_factors = rng.standard_normal((fit.shape[1], HYPER["factors"])).astype(np.float32)
    model.fit(fit, show_progress=False)
    return float(ranking_metrics_at_k(model, fit, valid, K=10, show_progress=False, num_threads=1)["ndcg"])



seeds = [int(s) for s in a.seeds.split(",")]
print(f"validation split of {source}: {len(fit_rows)} fit, {len(valid_rows)} held out; NDCG@10 over seeds {seeds}")
means = {}
for start in ("uniform", "normal"):
    for cg_steps in (3, 2):
        scores = [implicit_ndcg(s, start, cg_steps) for s in seeds]
        means[f"implicit {start} cg{cg_steps}"] = statistics.mean(scores)
        print(f"  implicit, {start:7s} start, {cg_steps} CG steps: mean {statistics.mean(scores):.4f}  "
              + " ".join(f"{x:.4f}" for x in scores))
scores = [duet_ndcg(a.duet, fit_path, valid_path, s) for s in seeds]
means["duet defaults"] = statistics.mean(scores)
print(f"  duet, defaults:                      mean {statistics.mean(scores):.4f}  " + " ".join(f"{x:.4f}" for x in scores))
best = max((v, k) for k, v in means.items() if k.startswith("implicit"))
ok = means["duet defaults"] >= best[0] - a.tolerance
print(json.dumps({"means": means, "best_implicit": best[1], "ok": ok}))
sys.exit(0 if ok else 1)
