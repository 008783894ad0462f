"""Child-process targets and pool tasks for test_queues.py and test_pool.py.

They live at module level in a module of their own so that spawned children
and pool workers can import them by name when they unpickle their work.
"""

import ctypes
import os
import sys
import threading
import time

#
# Queue children
#


def put_items(q, items):
    '''Put every item on q, then return (the feeder thread flushes them
    into the pipe before the process exits).'''
    for item in items:
        q.put(item)


def get_items(q, n, out):
    '''Get n items from q and put them, as one list, on out.'''
    out.put([q.get(timeout=60) for _ in range(n)])


def put_many_bytes_and_cancel(q, size, count):
    '''Put more than a pipe holds, give up flushing, and exit.'''
    for _ in range(count):
        q.put(b'x' * size)
    q.cancel_join_thread()


def put_big(q, size, n):
    '''Put n messages of size bytes: each is above a reader's 64 KB buffer,
    and several putters at once grow the ring under its lock.'''
    for i in range(n):
        q.put(bytes([i % 256]) * size)


def relay_queue_from_queue(carrier, n):
    '''Get a Queue sent inside another queue (so unpickled long after
    start-up) and put n items on it.'''
    inner = carrier.get(timeout=60)
    for i in range(n):
        inner.put(('relayed', i))


def consume_joinable(jq, out, n):
    '''Take n items from a JoinableQueue, put their doubles on out, and
    mark each task done only after its result is out.'''
    for _ in range(n):
        item = jq.get(timeout=60)
        out.put(item * 2)
        jq.task_done()


def produce_range(q, start, count):
    for i in range(start, start + count):
        q.put(i)


def consume_until_none(q, out):
    '''Get items until None; put (count, sum, items) on out.'''
    got = []
    while True:
        item = q.get(timeout=120)
        if item is None:
            break
        got.append(item)
    out.put((len(got), sum(got), got))


def simple_queue_echo(inq, outq):
    '''Echo items from a SimpleQueue back, doubled, until None.'''
    while True:
        item = inq.get()
        if item is None:
            break
        outq.put(item * 2)


#
# Pool tasks
#


def square(x):
    return x * x


def add(a, b):
    return a + b


def identity(x):
    return x


def kwargs_echo(*args, **kwds):
    return args, kwds


def sleep_then_return(x, seconds):
    time.sleep(seconds)
    return x


def raise_value_error(message):
    raise ValueError(message)


def raise_on(x, bad):
    if x == bad:
        raise ValueError('bad item %r' % (x,))
    return x


def getpid_after(seconds=0.0):
    time.sleep(seconds)
    return os.getpid()


def pid_for(x, seconds=0.0):
    time.sleep(seconds)
    return os.getpid()


def report_pid_then_sleep(x, directory, victim, seconds):
    '''Task x: the victim task writes its worker's pid to directory/pid and
    sleeps (to be killed); the others return x after a short nap.'''
    if x == victim:
        path = os.path.join(directory, 'pid')
        with open(path + '.tmp', 'w') as f:
            f.write(str(os.getpid()))
        os.replace(path + '.tmp', path)
        time.sleep(seconds)
        return ('survived', x)
    time.sleep(0.01)
    return x


def exit_on(x, bad, code):
    if x == bad:
        os._exit(code)
    return x


def segfault_on(x, bad):
    if x == bad:
        ctypes.string_at(0)      # SIGSEGV
    return x


def raise_system_exit(code):
    sys.exit(code)


def return_unpicklable(x):
    return threading.Lock()


def raise_unpicklable(x):
    raise ValueError(threading.Lock())


class TwoArgError(Exception):
    '''Pickles but cannot be unpickled: BaseException.__reduce__ passes
    only self.args (one item) to a constructor that wants two.'''

    def __init__(self, a, b):
        super().__init__(a)
        self.b = b


def raise_two_arg_error(x):
    raise TwoArgError(x, 'second')


def raise_from_iterable(n, bad):
    for i in range(n):
        if i == bad:
            raise KeyError('iterable failed at %d' % i)
        yield i


_initialized = None


def init_set_global(value):
    global _initialized
    _initialized = value


def get_global(_):
    return _initialized


def init_fail_and_count(directory):
    '''Initializer that leaves a file per call, then raises.'''
    open(os.path.join(directory, 'init-%d' % os.getpid()), 'w').close()
    raise ValueError('initializer failed on purpose')


def init_exit(code):
    os._exit(code)


def put_on(q, x):
    q.put(('from task', x))
    return x


def locked_increment(value, lock, times):
    for _ in range(times):
        with lock:
            value.value += 1
    return times


def joinable_task_done(jq):
    jq.get(timeout=60)
    jq.task_done()
    return True


def block_on_event(event_queue, x):
    '''Wait until something is put on event_queue (a Queue).'''
    event_queue.get(timeout=60)
    return x


def thread_sleep_then_return(x, seconds):
    time.sleep(seconds)
    return x


def get_from(q):
    '''Take an item from a SimpleQueue, or report it empty.'''
    return 'empty' if q.empty() else q.get()


def report_pid_then_sleep_star(args):
    return report_pid_then_sleep(*args)


def wait_for_gate(gate):
    '''Return once something is put on the Queue gate.'''
    gate.get(timeout=60)
    return 'passed'


def nap_and_return(x):
    '''A short task: the stress test kills workers while they run these.'''
    time.sleep(0.002)
    return x * 3


_shared = [1, 2]


def same_list_twice(_):
    return [_shared, _shared]


def fail_on_chunk(x, bad=777):
    if x == bad:
        raise ValueError('item %d' % x)
    return x * 2


class Counted(object):
    '''An object whose live instances in this process are counted (in
    __new__, which unpickling calls too).'''
    alive = 0

    def __new__(cls):
        cls.alive += 1
        return super().__new__(cls)

    def __del__(self):
        type(self).alive -= 1


def big_bytes(_, size=1000000):
    '''A result far above the parent's 64 KB read buffer.'''
    return b'x' * size
