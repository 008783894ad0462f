#!/usr/bin/env python3
"""Whole-program timings: every transcribed seed tutorial, end to end.

usage: python bench/tutorials_wall.py [-r REPEATS] [TUTORIAL ...]

Each tutorial in tests/tutorials/ runs as `python -m mpgo t.py` and as
`python t.py` (the standard library, with its default start method), the
two taking turns, REPEATS times each (default 5), in a fresh temporary
directory. Prints each tutorial's median wall time for both and their
ratio (mpgo / stdlib: below 1 means mpgo is faster), then the median and
the maximum of the ratios.

Three tutorials sleep for random() seconds in their children. So that both
sides sleep the same, each run gets a sitecustomize that seeds random with
a fixed seed at start-up and again in every forked child (where random
would reseed from os.urandom).
"""
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TUTORIALS = os.path.join(os.path.dirname(HERE), "tests", "tutorials")


_SEEDED = """\
import os
import random

random.seed(20261203)
os.register_at_fork(after_in_child=lambda: random.seed(20261203))
"""


def wall(cmd, cwd, site):
    env = dict(os.environ)
    # The tutorials run in a temporary directory: keep PYTHONPATH's entries.
    env["PYTHONPATH"] = os.pathsep.join([site] + [
        os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    # wait() with a timeout polls in sleeps of up to 50 ms, which would round
    # every timing up to the next 50 ms: wait blocking, with a watchdog.
    watchdog = threading.Timer(600, proc.kill)
    watchdog.start()
    try:
        rc = proc.wait()
    finally:
        watchdog.cancel()
    elapsed = time.perf_counter() - t
    if rc:
        raise subprocess.CalledProcessError(rc, cmd)
    return elapsed


def main():
    args = sys.argv[1:]
    repeats = 5
    if args[:1] == ["-r"]:
        repeats, args = int(args[1]), args[2:]
    names = args or sorted(n for n in os.listdir(TUTORIALS) if n.endswith(".py"))
    ratios = []
    print("| tutorial | mpgo (ms) | stdlib (ms) | mpgo / stdlib |")
    print("| --- | --- | --- | --- |")
    for name in names:
        path = os.path.join(TUTORIALS, name)
        times = {"mpgo": [], "stdlib": []}
        with tempfile.TemporaryDirectory() as cwd:
            site = os.path.join(cwd, "site")
            os.mkdir(site)
            with open(os.path.join(site, "sitecustomize.py"), "w") as f:
                f.write(_SEEDED)
            for _ in range(repeats):
                times["mpgo"].append(wall([sys.executable, "-m", "mpgo", path], cwd, site))
                times["stdlib"].append(wall([sys.executable, path], cwd, site))
        ours, std = (statistics.median(times[k]) for k in ("mpgo", "stdlib"))
        ratios.append(ours / std)
        print("| %s | %.1f | %.1f | %.2f |" % (name, ours * 1e3, std * 1e3, ours / std),
              flush=True)
    print()
    print("median ratio %.2f, max %.2f (%d tutorials, median of %d runs each)"
          % (statistics.median(ratios), max(ratios), len(ratios), repeats))


if __name__ == "__main__":
    main()
