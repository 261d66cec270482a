#!/usr/bin/env python3
"""A second ALS dataset for peers.py als: synthetic play counts in HetRec's user_artists.dat layout.

Users and items get latent tastes (a low-rank model); item popularity follows a Zipf law; each user
plays a log-normal number of distinct items drawn by taste × popularity, with a heavy-tailed play count
per item. Seeded, so every run writes the same file.

    python3 bench/make-plays.py --out /tmp/synth-plays
    python3 ../shared/bench/peers.py als --duet .build/release/duet --data /tmp/synth-plays --work /tmp/synth-peers
"""
import argparse, os
import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--out", required=True, help="folder to write user_artists.dat into")
p.add_argument("--users", type=int, default=4000)
p.add_argument("--items", type=int, default=8000)
p.add_argument("--rank", type=int, default=24)
p.add_argument("--mean-items", type=float, default=40, help="median distinct items per user")
p.add_argument("--seed", type=int, default=11)
a = p.parse_args()
if a.users < 1 or a.items < 1 or a.rank < 1 or a.mean_items < 1:
    raise SystemExit("--users, --items, --rank and --mean-items must be positive")

rng = np.random.default_rng(a.seed)
tastes = rng.standard_normal((a.users, a.rank)) / np.sqrt(a.rank)
traits = rng.standard_normal((a.items, a.rank))
popularity = 1.0 / np.arange(1, a.items + 1) ** 0.9
popularity = popularity[rng.permutation(a.items)]
counts = np.clip(rng.lognormal(np.log(a.mean_items), 0.8, a.users).astype(int), 5, a.items // 4)
lines = ["userID\tartistID\tweight"]
for u in range(a.users):
    affinity = np.exp(1.5 * traits @ tastes[u]) * popularity
    chosen = rng.choice(a.items, size=counts[u], replace=False, p=affinity / affinity.sum())
    plays = np.maximum(1, rng.pareto(1.2, counts[u]) * 20 * (1 + affinity[chosen] / affinity[chosen].mean())).astype(int)
    lines += [f"{u + 1}\t{i + 1}\t{w}" for i, w in zip(chosen, plays)]
os.makedirs(a.out, exist_ok=True)
with open(os.path.join(a.out, "user_artists.dat"), "w") as out:
    out.write("\n".join(lines) + "\n")
print(f"{len(lines) - 1} plays by {a.users} users of {a.items} items -> {a.out}/user_artists.dat")
