#!/usr/bin/env python3
"""Soak: make, use and drop objects for a long time, and watch what stays.

usage: python bench/soak.py [-n CYCLES] [-t TASKS] [CASE ...]

The cases (all by default):

  queue  CYCLES Queues, each put to and got from, then closed (close() and
         join_thread()) or dropped, in turn;
  pipe   CYCLES Pipe()s, each sent a message both ways, then closed or
         dropped, in turn;
  pool   one Pool(2, maxtasksperchild=MAXTASKS) through TASKS tasks
         (imap_unordered, chunksize 1), so its workers are replaced
         TASKS / MAXTASKS times.

CYCLES is 100,000 and TASKS 1,000,000 unless given. Each case runs in a
fresh interpreter per implementation: mpgo, then the standard library
(`import multiprocessing`, its default start method). The table gives the
process's RSS and open fds after a warm-up, half-way and at the end, and
their growth; a leak of one fd or a few bytes per cycle shows at once.
"""
import json
import os
import subprocess
import sys
import time

CYCLES = 100_000
TASKS = 1_000_000
MAXTASKS = 10_000
WARMUP = 100
IMPLS = ["mpgo", "stdlib"]


def _usage():
    with open("/proc/self/status") as f:
        st = dict(line.split(":\t", 1) for line in f if ":\t" in line)
    return {"rss_kib": int(st["VmRSS"].split()[0]),
            "fds": len(os.listdir("/proc/self/fd")),
            "threads": int(st["Threads"])}


def _queue(mp, i):
    q = mp.Queue()
    q.put(i)
    assert q.get() == i
    if i % 2:
        q.close()
        q.join_thread()


def _pipe(mp, i):
    a, b = mp.Pipe()
    b.send(i)
    assert a.recv() == i
    a.send_bytes(b"x")
    assert b.recv_bytes() == b"x"
    if i % 2:
        a.close()
        b.close()


def _ident(x):
    return x


def _cycles(mp, step, n):
    for i in range(WARMUP):
        step(mp, i)
    marks = [_usage()]
    t = time.perf_counter()
    for i in range(n):
        step(mp, i)
        if i == n // 2:
            marks.append(_usage())
    marks.append(_usage())
    return marks, time.perf_counter() - t


def _pool(mp, tasks):
    with mp.Pool(2, maxtasksperchild=MAXTASKS) as pool:
        total = sum(pool.imap_unordered(_ident, range(WARMUP), chunksize=1))
        marks = [_usage()]
        t = time.perf_counter()
        for i, x in enumerate(pool.imap_unordered(_ident, range(tasks), chunksize=1)):
            total += x
            if i == tasks // 2:
                marks.append(_usage())
        marks.append(_usage())
        elapsed = time.perf_counter() - t
    assert total == sum(range(WARMUP)) + sum(range(tasks))
    return marks, elapsed


def child(impl, case, n):
    if impl == "mpgo":
        import mpgo as mp
    else:
        import multiprocessing as mp
    if case == "pool":
        marks, elapsed = _pool(mp, n)
    else:
        marks, elapsed = _cycles(mp, {"queue": _queue, "pipe": _pipe}[case], n)
    print(json.dumps({"marks": marks, "seconds": elapsed}))


def main():
    args = sys.argv[1:]
    cycles, tasks = CYCLES, TASKS
    while args[:1] in (["-n"], ["-t"]):
        if args[0] == "-n":
            cycles = int(args[1])
        else:
            tasks = int(args[1])
        args = args[2:]
    cases = args or ["queue", "pipe", "pool"]
    here = os.path.abspath(__file__)
    rows = ["| case | impl | n | seconds | RSS KiB: start / half / end | growth | "
            "fds: start / half / end | growth | threads: start / end |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for case in cases:
        n = tasks if case == "pool" else cycles
        for impl in IMPLS:
            out = subprocess.run([sys.executable, here, "--child", impl, case, str(n)],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                last = out.stderr.strip().splitlines()[-1:] or ["failed"]
                rows.append(f"| {case} | {impl} | {n} | failed: {last[0]} | | | | | |")
                print(rows[-1], file=sys.stderr, flush=True)
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            m = r["marks"]
            rss = [x["rss_kib"] for x in m]
            fds = [x["fds"] for x in m]
            rows.append(f"| {case} | {impl} | {n:,} | {r['seconds']:.1f} | "
                        f"{' / '.join(map(str, rss))} | {rss[-1] - rss[0]:+d} | "
                        f"{' / '.join(map(str, fds))} | {fds[-1] - fds[0]:+d} | "
                        f"{m[0]['threads']} / {m[-1]['threads']} |")
            print(rows[-1], file=sys.stderr, flush=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores; "
          f"warm-up {WARMUP} cycles, pool maxtasksperchild={MAXTASKS}")
    print("\n".join(rows))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
