"""Shared by bench/als-seeds.py and bench/als-validate.py: TSV triples as implicit's matrices, and
Duet's NDCG@10 from `duet bench als` with peers.py's hyperparameters."""
import json, subprocess

HYPER = dict(factors=64, regularization=1.0, alpha=2.0, iterations=15)  # peers.py als defaults


def rows(path):
    return [line.split("\t") for line in open(path).read().splitlines() if line]


def matrices(all_rows, *parts):
    """One users × items CSR matrix per part (log1p weights for the first, raw for the rest), indexed
    over every row so the parts line up."""
    import numpy as np, scipy.sparse as sp
    users = {x: n for n, x in enumerate(sorted({r[0] for r in all_rows}))}
    items = {x: n for n, x in enumerate(sorted({r[1] for r in all_rows}))}
    def matrix(data, transform):
        return sp.csr_matrix((np.array([transform(float(r[2])) for r in data], dtype=np.float32),
                              ([users[r[0]] for r in data], [items[r[1]] for r in data])), shape=(len(users), len(items)))
    return [matrix(part, np.log1p if n == 0 else (lambda x: x)) for n, part in enumerate(parts)]


def duet_ndcg(duet, train_path, test_path, seed):
    out = subprocess.run([duet, "bench", "als", "--train", train_path, "--test", test_path,
                          "--factors", str(HYPER["factors"]), "--regularization", str(HYPER["regularization"]),
                          "--alpha", str(HYPER["alpha"]), "--iterations", str(HYPER["iterations"]), "--weighting", "log1p",
                          "--threads", "1", "--k", "10", "--seed", str(seed), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["ndcg"])
