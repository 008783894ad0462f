"""Child-process targets for the synchronization and shared-ctypes tests.

They live in an importable module so they pickle under spawn."""
import os
import signal
import time


def incr_under_lock(lock, counter, n):
    for _ in range(n):
        with lock:
            counter.value += 1


def incr_value(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def hold_and_die(lock, ready, how):
    lock.acquire()
    ready.set()
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(3)


def wait_event(ev, out):
    out.value = 1 if ev.wait(30) else 2


def cond_waiter(cond, state, woke):
    with cond:
        state.value += 1
        cond.wait_for(lambda: state.value >= 100, timeout=30)
        woke.value += 1


def barrier_party(barrier, results, i):
    try:
        results[i] = barrier.wait(10) + 1
    except Exception:
        results[i] = -1


def sem_worker(sem, active, peak, lock):
    with sem:
        with lock:
            active.value += 1
            peak.value = max(peak.value, active.value)
        time.sleep(0.05)
        with lock:
            active.value -= 1


def write_shared(num, arr, s):
    num.value += 1
    for i in range(len(arr)):
        arr[i] *= 2
    s.value = b"child"


def recv_and_use(conn):
    lock, v = conn.recv()
    with lock:
        v.value += 5
    conn.send("done")
    conn.close()
