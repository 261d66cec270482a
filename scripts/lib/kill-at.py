#!/usr/bin/env python3
"""Runs a command and SIGKILLs it, for crash tests.

  kill-at.py DELAY_MS COMMAND...   kills it after DELAY_MS; prints "killed" or "finished"
  kill-at.py output COMMAND...     kills it the moment it writes to stdout (which a command that
                                   reports a commit does only after committing): its stdout is a
                                   pipe filled up beforehand, so that write blocks until the kill.
                                   Prints "killed" or "finished"
"""
import os, platform, signal, subprocess, sys, time

mode, command = sys.argv[1], sys.argv[2:]


def outcome(process):
    return "killed" if process.wait() == -signal.SIGKILL else "finished"


if mode == "output":
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    try:
        while True:
            os.write(write_end, b"\0" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(write_end, True)
    process = subprocess.Popen(command, stdout=write_end, stderr=subprocess.DEVNULL)
    os.close(write_end)
    # write and writev: blocked on fd 1 shows as "<nr> 0x1 ..." in /proc/<pid>/task/<tid>/syscall.
    writes = {"x86_64": ("1", "20"), "aarch64": ("64", "66")}.get(platform.machine(), ("1", "20"))
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        for task in os.listdir(f"/proc/{process.pid}/task") if os.path.exists(f"/proc/{process.pid}/task") else []:
            try:
                fields = open(f"/proc/{process.pid}/task/{task}/syscall").read().split()
            except OSError:
                continue
            if len(fields) > 1 and fields[0] in writes and fields[1] == "0x1":
                os.kill(process.pid, signal.SIGKILL)
                break
        time.sleep(0.0005)
    if process.poll() is None:
        process.kill()
    os.close(read_end)
    print(outcome(process))
    sys.exit(0)

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
print(outcome(process))
