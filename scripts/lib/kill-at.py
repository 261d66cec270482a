#!/usr/bin/env python3
"""Runs a command and SIGKILLs it after a delay, with sub-millisecond timing.

  kill-at.py DELAY_MS COMMAND...   prints "killed" or "finished"
  kill-at.py time COMMAND...       runs it whole; prints the ms until its first output byte
                                   (which it writes after its commit)
"""
import os, signal, subprocess, sys, time

mode, command = sys.argv[1], sys.argv[2:]
started = time.perf_counter()
process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
if mode == "time":
    process.stdout.read(1)
    print(f"{(time.perf_counter() - started) * 1000:.1f}")
    process.stdout.read()
    sys.exit(process.wait())
time.sleep(max(0.0, float(mode) / 1000 - (time.perf_counter() - started)))
try:
    os.kill(process.pid, signal.SIGKILL)
except ProcessLookupError:
    pass
process.stdout.read()
print("killed" if process.wait() == -signal.SIGKILL else "finished")
