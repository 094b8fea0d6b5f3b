"""CPU and memory of a command and every process below it, for the bench scripts.

`monitor once` with worker processes is a tree: the daemon, the multiprocessing fork server it starts and the
workers the fork server forks. wait4 on the daemon counts only the daemon (and children it reaped itself): the
fork server outlives it and is reparented, so its CPU and its workers' were in no figure. `run_tree` runs the
command under a small wrapper that is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): the orphans are
reparented to the wrapper, which reaps them all, so RUSAGE_CHILDREN of the wrapper is the whole tree's CPU.
Memory: peak RSS of the largest process (from that rusage) and the peak of the tree's summed PSS (pages the fork
server shares with its workers counted once), sampled every 50 ms from /proc.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# Runs argv as a child subreaper, waits for the whole tree, writes one JSON line of figures to $WRAPPER_FD.
WRAPPER = r"""
import ctypes, json, os, resource, subprocess, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans below us are reparented to us
out, err = (open(os.environ[name], "wb") if os.environ.get(name) else subprocess.DEVNULL
            for name in ("WRAPPER_STDOUT", "WRAPPER_STDERR"))
start = time.monotonic()
proc = subprocess.Popen(sys.argv[1:], stdout=out, stderr=err)
peak = [0]
done = threading.Event()

def tree_pss():
    parents, rss = {}, {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/status") as f:
                    status = f.read()
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            parents[int(entry)] = int(fields.get("PPid", "0"))
            rss[int(entry)] = int(fields.get("VmRSS", "0 kB").split()[0])
    found, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {c for c, p in parents.items() if p in frontier} - found
        found |= frontier
    total = 0
    for pid in found:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next(int(l.split()[1]) for l in f if l.startswith("Pss:"))
        except (OSError, StopIteration):
            total += rss.get(pid, 0)
    return total

def sample():
    while not done.wait(0.05):
        peak[0] = max(peak[0], tree_pss())

threading.Thread(target=sample, daemon=True).start()
_, status, own = os.wait4(proc.pid, 0)  # the command's own CPU (with the children it reaped itself)
code = os.waitstatus_to_exitcode(status)
wall = time.monotonic() - start
while True:  # the fork server and any worker left, reparented to us
    try:
        os.wait()
    except ChildProcessError:
        break
done.set()
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
os.write(int(os.environ["WRAPPER_FD"]), json.dumps({"code": code, "wall": wall, "cpu": usage.ru_utime + usage.ru_stime,
                        "main_cpu": own.ru_utime + own.ru_stime,
                        "max_rss_mb": usage.ru_maxrss / 1024, "tree_rss_mb": peak[0] / 1024}).encode())
"""


def run_tree(
    argv: list[str], cwd: Path, stdout: Path | None = None, stderr: Path | None = None
) -> dict[str, Any]:
    """Run argv to completion under the subreaper wrapper. Returns code, wall (s), cpu (s, the whole tree),
    main_cpu (s, the command's own process), max_rss_mb (largest process) and tree_rss_mb (peak summed PSS).
    Output goes to the given files (never a pipe that nobody reads while the command runs), else nowhere."""
    read, write = os.pipe()
    env = {**os.environ, "WRAPPER_FD": str(write)}
    env["WRAPPER_STDOUT"] = str(stdout) if stdout else ""
    env["WRAPPER_STDERR"] = str(stderr) if stderr else ""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        pass_fds=(write,),
        env=env,
    )
    os.close(write)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    proc.wait()
    with os.fdopen(read) as figures:
        text = figures.read()
    if proc.returncode != 0 or not text:
        raise RuntimeError(f"measuring wrapper failed: {err[-3000:]}")
    result: dict[str, Any] = json.loads(text)
    return result
