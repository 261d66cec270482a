#!/usr/bin/env python3
"""ALS quality against implicit over several seeds, on the split and hyperparameters of peers.py als.

peers.py trains each side once with seed 42, so its NDCG@10 comparison is one draw per side; which
local optimum ALS reaches depends on the draw. This script trains both with each seed (implicit with
its own defaults, Duet with its own: a standard-normal start and two CG steps, chosen on validation
data by bench/als-validate.py) and compares the means. It fails when Duet's mean NDCG@10 is below
implicit's by more than --tolerance.

    python3 ../shared/bench/peers.py als --duet .build/release/duet   # makes the split and the venv
    ~/.cache/duet-peers-venv/bin/python bench/als-seeds.py --duet .build/release/duet
"""
import argparse, json, os, statistics, sys

p = argparse.ArgumentParser()
p.add_argument("--duet", default=".build/release/duet")
p.add_argument("--split", default="/tmp/duet-peers/als", help="folder with peers.py's train.tsv and test.tsv")
p.add_argument("--seeds", default="1,2,3,4,5,42")
p.add_argument("--tolerance", type=float, default=0.001)
a = p.parse_args()
train_path, test_path = (os.path.join(a.split, name) for name in ("train.tsv", "test.tsv"))
if not (os.path.exists(train_path) and os.path.exists(test_path)):
    sys.exit(f"no split in {a.split}: run `python3 ../shared/bench/peers.py als --duet {a.duet}` first")
try:
    import numpy as np, scipy.sparse as sp, threadpoolctl
    from implicit.als import AlternatingLeastSquares
    from implicit.evaluation import ranking_metrics_at_k
except ImportError as error:
    sys.exit(f"{error}: run this with ~/.cache/duet-peers-venv/bin/python (peers.py als creates it)")
threadpoolctl.threadpool_limits(1, "blas")
from als_common import HYPER, duet_ndcg, matrices, rows

train_rows, test_rows = rows(train_path), rows(test_path)
train, test = matrices(train_rows + test_rows, train_rows, test_rows)


def implicit_ndcg(seed):
    model = AlternatingLeastSquares(**HYPER, random_state=seed, num_threads=1)
    model.fit(train, show_progress=False)
    return float(ranking_metrics_at_k(model, train, test, K=10, show_progress=False, num_threads=1)["ndcg"])



seeds = [int(s) for s in a.seeds.split(",")]
print(f"{'seed':>6} {'implicit':>9} {'duet':>9}")
pairs = []
for seed in seeds:
    pairs.append((implicit_ndcg(seed), duet_ndcg(a.duet, train_path, test_path, seed)))
    print(f"{seed:>6} {pairs[-1][0]:9.4f} {pairs[-1][1]:9.4f}")
implicit_mean, duet_mean = statistics.mean(x for x, _ in pairs), statistics.mean(y for _, y in pairs)
print(f"{'mean':>6} {implicit_mean:9.4f} {duet_mean:9.4f}   (spread over seeds: implicit "
      f"{min(x for x, _ in pairs):.4f}–{max(x for x, _ in pairs):.4f}, duet {min(y for _, y in pairs):.4f}–{max(y for _, y in pairs):.4f})")
ok = duet_mean >= implicit_mean - a.tolerance
print(json.dumps({"implicit_mean_ndcg": implicit_mean, "duet_mean_ndcg": duet_mean, "seeds": seeds, "ok": ok}))
sys.exit(0 if ok else 1)
