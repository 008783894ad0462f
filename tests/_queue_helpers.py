"""Child targets for the queue engine tests (importable, so they pickle)."""
import os
import resource
import time


def stream(q, pid, n):
    for i in range(n):
        q.put((pid, i, b"x" * (i % 200)))


def blocked_get(q, out):
    t0 = resource.getrusage(resource.RUSAGE_SELF)
    try:
        q.get(timeout=3)
    except Exception:
        pass
    t1 = resource.getrusage(resource.RUSAGE_SELF)
    out.value = (t1.ru_utime - t0.ru_utime) + (t1.ru_stime - t0.ru_stime)


def put_then_exit(q, n):
    for i in range(n):
        q.put(i)
    os._exit(0)  # no finalizers, no flushing: nothing may be lost


def consume(q, n, out):
    total = 0
    for _ in range(n):
        total += q.get(timeout=60)
    out.value = total
