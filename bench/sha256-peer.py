#!/usr/bin/env python3
"""SHA-256 throughput: Duet's own (x86 SHA extensions, and portable C) beside OpenSSL through
Python's hashlib, on the same machine in one run. Bundles are checksummed whole when published
and in 16 KiB chunks when their pages are first read, so both shapes are timed.

    swift build -c release
    python3 bench/sha256-peer.py --duet .build/release/duet [--megabytes 256] [--min-ratio 0.8]

Exits 1 when Duet's accelerated rate falls below --min-ratio × OpenSSL's in either shape.
"""
import argparse
import hashlib
import json
import os
import subprocess
import sys
import time


def openssl_rate(data, chunk, repeats):
    best = float("inf")
    view = memoryview(data)
    for _ in range(repeats):
        started = time.perf_counter()
        if chunk is None:
            hashlib.sha256(view).digest()
        else:
            for start in range(0, len(view), chunk):
                hashlib.sha256(view[start:start + chunk]).digest()
        best = min(best, time.perf_counter() - started)
    return len(data) / best / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duet", default=".build/release/duet")
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-ratio", type=float, default=0.8)
    args = parser.parse_args()

    output = subprocess.run([args.duet, "bench", "sha256", "--megabytes", str(args.megabytes),
                             "--repeats", str(args.repeats), "--json"], check=True, capture_output=True, text=True).stdout
    duet = {(case["blockFunction"], case["shape"]): case["gigabytesPerSecond"] for case in json.loads(output)}
    data = os.urandom(args.megabytes << 20)
    peer = {"whole": openssl_rate(data, None, args.repeats), "16KiB-chunks": openssl_rate(data, 16 << 10, args.repeats)}

    failed = False
    report = {}
    for shape, openssl in peer.items():
        row = {"openssl_gb_s": round(openssl, 3)}
        for function in ("sha-extensions", "portable"):
            if (function, shape) in duet:
                row[f"duet_{function}_gb_s"] = round(duet[(function, shape)], 3)
        accelerated = duet.get(("sha-extensions", shape))
        if accelerated is not None:
            row["ratio_vs_openssl"] = round(accelerated / openssl, 3)
            failed |= accelerated / openssl < args.min_ratio
        report[shape] = row
    print(json.dumps(report, indent=2))
    if ("sha-extensions", "whole") not in duet:
        print("this CPU has no SHA extensions: only the portable block function ran", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
