"""Benchmark cases, each run in a fresh interpreter by bench/run.py.

usage: python bench/cases.py CASE IMPL    (IMPL: mpgo | stdlib-spawn | stdlib-fork)

Prints one JSON line: {"case", "impl", "value", "unit", "higher_is_better"}.
"""
import json
import os
import sys
import time


def load(impl):
    if impl == "mpgo":
        import mpgo as mp
        return mp.get_context("spawn")
    import multiprocessing as mp
    return mp.get_context(impl.split("-", 1)[1])


def _noop():
    pass


def process_start(mp):
    """start()+join() of a child that does nothing, ms per process."""
    n = 20
    mp.Process(target=_noop).start()  # warm up imports
    t = time.perf_counter()
    for _ in range(n):
        p = mp.Process(target=_noop)
        p.start()
        p.join()
    return (time.perf_counter() - t) / n * 1e3, "ms/process", False


def lock_uncontended(mp):
    """acquire/release pairs per second on an uncontended Lock."""
    lock = mp.Lock()
    n = 1_000_000
    acq, rel = lock.acquire, lock.release
    t = time.perf_counter()
    for _ in range(n):
        acq()
        rel()
    return n / (time.perf_counter() - t), "pairs/s", True


def value_read(mp):
    """.value reads per second with the default lock."""
    v = mp.Value("i", 7)
    n = 500_000
    t = time.perf_counter()
    for _ in range(n):
        v.value
    return n / (time.perf_counter() - t), "reads/s", True


def _incr(v, n, go, out, i):
    go.wait()
    t = time.perf_counter()
    for _ in range(n):
        with v.get_lock():
            v.value += 1
    out[i] = time.perf_counter() - t


def value_locked_2p(mp):
    """2 processes x 50k `with v.get_lock(): v.value += 1`, total exact;
    seconds of the slower child's loop (process start-up excluded)."""
    n = 50_000
    v = mp.Value("i", 0)
    go = mp.Event()
    out = mp.Array("d", 2, lock=False)
    ps = [mp.Process(target=_incr, args=(v, n, go, out, i)) for i in range(2)]
    for p in ps:
        p.start()
    time.sleep(0.5)  # both children are waiting on go
    go.set()
    for p in ps:
        p.join()
    assert v.value == 2 * n, v.value
    return max(out), "s", False


def array_copy(mp):
    """1M doubles through slice assignment and back, seconds."""
    n = 1_000_000
    a = mp.Array("d", n)
    src = [float(i) for i in range(n)]
    t = time.perf_counter()
    a[:] = src
    out = a[:]
    dt = time.perf_counter() - t
    assert out[-1] == n - 1
    return dt, "s", False


CASES = {f.__name__: f for f in (process_start, lock_uncontended, value_read,
                                 value_locked_2p, array_copy)}

if __name__ == "__main__":
    case, impl = sys.argv[1], sys.argv[2]
    value, unit, higher = CASES[case](load(impl))
    print(json.dumps({"case": case, "impl": impl, "value": value, "unit": unit,
                      "higher_is_better": higher}))
