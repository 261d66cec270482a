#!/usr/bin/env python3
"""Recompute Duet's offline metrics for a bundle with implicit's `ranking_metrics_at_k`, on the same split.

    duet lab export factors BUNDLE --out factors/
    duet lab export snapshot --split SPLIT --out split/
    duet lab compare BUNDLE popularity --json > duet.json
    python3 examples/ndcg_with_implicit.py --factors factors --split split --duet duet.json

Loads the exports with numpy and scipy only, puts the bundle's factors into an implicit model
and lets implicit rank and score. Exits 1 when a metric differs from Duet's by more than
--tolerance (default 1e-6), so CI can run it as a test.
"""
import argparse
import json
import os
import sys

import numpy as np
import scipy.sparse
from implicit.cpu.als import AlternatingLeastSquares
from implicit.evaluation import ranking_metrics_at_k


def read_ids(path):
    with open(path, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle]


def aligned(factors, bundle_ids, wanted_ids, what):
    """The bundle's rows in the split's order; every split id must have a row."""
    row_of = {identifier: row for row, identifier in enumerate(bundle_ids)}
    missing = [identifier for identifier in wanted_ids if identifier not in row_of]
    if missing:
        sys.exit(f"{len(missing)} {what} of the split are not in the bundle (first: {missing[0]!r}); "
                 "export the split the bundle was trained on")
    return np.ascontiguousarray(factors[[row_of[identifier] for identifier in wanted_ids]])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", required=True, help="folder written by `duet lab export factors`")
    parser.add_argument("--split", required=True, help="folder written by `duet lab export snapshot --split`")
    parser.add_argument("--duet", help="`duet lab compare --json` output to check against")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--tolerance", type=float, default=1e-6)
    args = parser.parse_args()

    train = scipy.sparse.load_npz(os.path.join(args.split, "train.npz")).tocsr()
    test = scipy.sparse.load_npz(os.path.join(args.split, "test.npz")).tocsr()
    users = read_ids(os.path.join(args.split, "users.txt"))
    items = read_ids(os.path.join(args.split, "items.txt"))
    assert train.shape == test.shape == (len(users), len(items)), "matrices and ids disagree"

    user_factors = np.load(os.path.join(args.factors, "user_factors.npy"))
    item_factors = np.load(os.path.join(args.factors, "item_factors.npy"))
    model = AlternatingLeastSquares(factors=user_factors.shape[1])
    model.user_factors = aligned(user_factors, read_ids(os.path.join(args.factors, "users.txt")), users, "users")
    model.item_factors = aligned(item_factors, read_ids(os.path.join(args.factors, "items.txt")), items, "items")

    ours = ranking_metrics_at_k(model, train, test, K=args.k, show_progress=False)
    print(f"implicit on Duet's factors, {len(users)} users x {len(items)} items, k={args.k}:")
    for name in ("precision", "map", "ndcg", "auc"):
        print(f"  {name:9s} {ours[name]:.9f}")
    if not args.duet:
        return 0

    with open(args.duet, encoding="utf-8") as handle:
        duet = json.load(handle)["candidateMetrics"]
    if duet["k"] != args.k:
        sys.exit(f"Duet evaluated at k={duet['k']}, not {args.k}")
    worst = 0.0
    for name in ("precision", "map", "ndcg", "auc"):
        difference = abs(ours[name] - duet[name])
        worst = max(worst, difference)
        verdict = "ok" if difference <= args.tolerance else "DIFFERS"
        print(f"  Duet {name:9s} {duet[name]:.9f}  |difference| {difference:.2e}  {verdict}")
    if worst > args.tolerance:
        print(f"FAIL: implicit and Duet disagree by {worst:.2e} (> {args.tolerance:g})")
        return 1
    print(f"agree within {args.tolerance:g} (largest difference {worst:.2e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
