"""Child targets for test_lazy_engine: each reports what it saw and whether
the Go runtime started in it."""
import os
import threading

import mpgo

from _helpers import write_result


def _report(path, **seen):
    from mpgo import _engine
    seen["started"] = _engine.fast.started()
    # Go's threads are the process's threads that are not Python's.
    seen["go_threads"] = len(os.listdir("/proc/self/task")) - threading.active_count()
    write_result(path, seen)


def use_shared(path, value, array, lock, rlock, sem):
    with value.get_lock():
        value.value += 1
    array[0] = 2.5
    array[1:3] = [1.0, 2.0]
    with lock:
        pass
    with rlock:
        with rlock:
            pass
    sem.acquire()
    sem.release()
    _report(path, value=value.value, array=list(array))


def contend(path, lock):
    got = lock.acquire(timeout=0.2)  # the parent holds it: Go does the wait
    q = mpgo.Queue()
    q.put("through Go")
    _report(path, got=got, item=q.get(timeout=10))


def add_one(value):
    value.value += 1


def pass_on(path, value, ctx_name):
    ctx = mpgo.get_context(ctx_name)
    p = ctx.Process(target=add_one, args=(value,))
    p.start()
    p.join()
    _report(path, exitcode=p.exitcode, value=value.value)
