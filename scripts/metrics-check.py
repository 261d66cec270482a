#!/usr/bin/env python3
"""Parses a live Serve's /metrics with prometheus_client's parser (the reference implementation)
and checks the conventions: HELP and TYPE on every family, counters ending in _total, histograms
named with their unit, duet_build_info present. Exit 0 only if all hold.
Usage: metrics-check.py URL   (e.g. http://127.0.0.1:8080/metrics)"""
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode("utf-8")
problems, families = [], list(text_string_to_metric_families(text))
declared_help = {line.split(" ", 3)[2] for line in text.splitlines() if line.startswith("# HELP ")}
for family in families:
    # prometheus_client strips _total from counter family names; the exposition must carry it.
    exposed = family.name + "_total" if family.type == "counter" else family.name
    if exposed not in declared_help:
        problems.append(f"{exposed}: no HELP")
    if family.type == "unknown":
        problems.append(f"{exposed}: no TYPE")
    if family.type == "counter" and not any(s.name.endswith("_total") for s in family.samples):
        problems.append(f"{exposed}: counter samples lack _total")
    if family.type == "histogram" and not family.name.endswith("_seconds"):
        problems.append(f"{exposed}: histogram without a unit in its name")
if not any(f.name == "duet_build_info" for f in families):
    problems.append("duet_build_info is missing")
for problem in problems:
    print("metrics check:", problem)
print(f"metrics check: {len(families)} families parsed by prometheus_client, {len(problems)} problems")
sys.exit(1 if problems else 0)
