#!/usr/bin/env python3
"""Run every benchmark side by side with the standard library, in one run.

usage: python bench/run.py [-r REPEATS] [CASE ...]

Each case runs REPEATS times (default 3) in a fresh interpreter per
implementation, the implementations taking turns; the table keeps each
implementation's best run, which damps the noise of a shared 2-core VM,
and gives mpgo's speed relative to each standard-library start method
(> 1: mpgo is faster). Peer libraries that import get two more columns
each, for their cases only: faster-fifo for the queue cases, mpire and loky
for the pool cases (bench/cases.py says how each one is driven).
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cases import CASES, POOL_CASES, QUEUE_CASES  # noqa: E402

IMPLS = ["mpgo", "stdlib-spawn", "stdlib-fork"]

# Peer libraries: (impl name, module to import, the cases they run). Each
# one that imports gets two more columns, filled for its cases only.
PEERS = [("faster-fifo", "faster_fifo", QUEUE_CASES),
         ("mpire", "mpire", POOL_CASES),
         ("loky", "loky", POOL_CASES)]


def _imports(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


def run(case, impl):
    out = subprocess.run([sys.executable, os.path.join(HERE, "cases.py"), case, impl],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        return None, out.stderr.strip().splitlines()[-1:] or ["failed"]
    return json.loads(out.stdout.strip().splitlines()[-1]), None


def best(a, b, higher):
    if a is None or b is None:
        return a or b
    return a if (a["value"] > b["value"]) == higher else b


def main():
    args = sys.argv[1:]
    repeats = 3
    if args[:1] == ["-r"]:
        repeats, args = int(args[1]), args[2:]
    cases = args or list(CASES)
    peers = [(name, peer_cases) for name, module, peer_cases in PEERS
             if any(c in peer_cases for c in cases) and _imports(module)]
    rows = ["| case | unit | mpgo | stdlib spawn | stdlib fork | mpgo vs spawn | mpgo vs fork |"
            + "".join(f" {name} | mpgo vs {name} |" for name, _ in peers),
            "| --- | --- | --- | --- | --- | --- | --- |" + " --- | --- |" * len(peers)]
    for case in cases:
        impls = IMPLS + [name for name, peer_cases in peers if case in peer_cases]
        res = {impl: None for impl in impls}
        for _ in range(repeats):
            for impl in impls:
                r, err = run(case, impl)
                if err:
                    print(f"{case} {impl}: {err[0]}", file=sys.stderr)
                elif res[impl] is None:
                    res[impl] = r
                else:
                    res[impl] = best(res[impl], r, r["higher_is_better"])
        unit = next((r["unit"] for r in res.values() if r), "?")
        higher = next((r["higher_is_better"] for r in res.values() if r), True)

        def fmt(r):
            return "n/a" if r is None else f"{r['value']:.4g}"

        def ratio(a, b):
            if a is None or b is None or not a["value"] or not b["value"]:
                return "n/a"
            x = a["value"] / b["value"] if higher else b["value"] / a["value"]
            return f"{x:.2f}×"
        row = (f"| {case} | {unit} | {fmt(res['mpgo'])} | {fmt(res['stdlib-spawn'])} | "
               f"{fmt(res['stdlib-fork'])} | {ratio(res['mpgo'], res['stdlib-spawn'])} | "
               f"{ratio(res['mpgo'], res['stdlib-fork'])} |")
        for name, _ in peers:
            if name in res:
                row += f" {fmt(res[name])} | {ratio(res['mpgo'], res[name])} |"
            else:
                row += " | |"
        rows.append(row)
        print(rows[-1], file=sys.stderr, flush=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, best of {repeats} "
          f"runs each; ratios > 1 mean mpgo is faster")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
