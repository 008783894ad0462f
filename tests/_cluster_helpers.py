"""Targets of the cluster tests' Processes and Pool tasks.

The workers cannot import the tests, so this module is pickled by value
(cloudpickle.register_pickle_by_value), as a script's __main__ is.
"""

import os
import sys
import time

import cloudpickle

import mpgo

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def nothing(*args):
    pass


def exit_with(code):
    sys.exit(code)


def fail(message):
    raise ValueError(message)


def square(x):
    return x * x


def add(a, b):
    return a + b


def fail_on(x, bad):
    if x == bad:
        raise ZeroDivisionError('bad %r' % x)
    return x


def whoami(q):
    p = mpgo.current_process()
    q.put((p.name, os.getpid(), p.pid, mpgo.parent_process().name))


def pool_whoami(_):
    p = mpgo.current_process()
    return p.name, os.getpid()


def put_all(q, items):
    for item in items:
        q.put(item)


def get_n(q, n, out):
    out.put([q.get() for _ in range(n)])


def locked_increments(v, n):
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def lock_held_increments(lock, v, n):
    for _ in range(n):
        with lock:
            v.value += 1


def set_item(arr, i, value):
    arr[i] = value


def loop_forever(q):
    q.put('started')
    while True:
        time.sleep(0.02)


def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


def busy_then(seconds, value):
    # Sleeps in short steps: a task is stopped between two Python
    # instructions, and time.sleep() is one.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return value


def print_then_put(q, text):
    print(text)
    q.put('sent')


def print_lines(n):
    for i in range(n):
        print('line', i)
    print('to stderr', file=sys.stderr)


def set_event(e):
    e.set()


def wait_event(e, q):
    q.put(e.wait(60))


def notify_after(cond, flag):
    with cond:
        flag.value = 1
        cond.notify_all()


def barrier_wait(barrier, q):
    q.put(barrier.wait(60))


def pipe_echo(conn):
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            break
        conn.send(('echo', msg))
    conn.close()


def pipe_send_close(conn, items):
    for item in items:
        conn.send(item)
    conn.close()


def joinable_consumer(q, n):
    for _ in range(n):
        q.get()
        q.task_done()


def start_child(q):
    child = mpgo.Process(target=whoami, args=(q,))
    child.start()
    child.join()
    q.put(('child exitcode', child.exitcode))


def append_to(proxy, value):
    proxy.append(value)


def lost_worker_task(q):
    q.put(os.getpid())
    time.sleep(120)


class _Unpicklable(object):
    def __reduce__(self):
        raise TypeError('no pickling this')


def make_unpicklable():
    return _Unpicklable()


_state = None


def init_state(value):
    global _state
    _state = value


def read_state(_):
    return _state


def init_fails():
    raise RuntimeError('initializer failed')


def relay_print(q_in, text):
    q_in.get()
    print(text)
