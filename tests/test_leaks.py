"""Nothing leaks (issue 10): every object releases its fds, mappings,
threads and engine handles when it is closed or dropped.

Each test makes, uses and drops an object CYCLES times after a few warm-up
cycles, then checks that this process's fd count, /proc/self/maps entries,
Python and OS threads and the engine's live handles are back where they
started, that RSS grew by less than RSS_SLACK and the C heap (what malloc
handed out) by less than MALLOC_SLACK. Cleanup that finishes on
other threads (a dropped ThreadPool's workers, a Pool's handlers) gets up
to SETTLE seconds to finish.

Mappings of files (memfd segments, /dev/shm blocks, sockets...) must come
back exactly. Anonymous mappings may grow by ANON_SLACK: glibc keeps the
stacks of ended threads for reuse and gives threads malloc arenas of their
own (each a pair of entries, kept for the life of the process); memory
leaked in anonymous mappings shows in RSS instead. The Go runtime opens
its poller (an epoll fd and an eventfd) the first time it needs a timer
(its memory scavenger does, after some garbage collection), once for the
life of the process: the first of each is not counted. Likewise the OS thread
count may grow by GO_THREAD_SLACK: the Go runtime adds a thread when all of
its threads are blocked in calls, and keeps it for reuse; a thread leaked
per cycle would still show.

The objects whose every cycle starts processes run fewer cycles, so that
the file takes well under a minute: a process-backed Pool or a Manager
starts fresh interpreters (about 50 ms each here), so they run POOL_CYCLES
and MANAGER_CYCLES, and their jobs and proxies run the full CYCLES on one
pool and one manager; a Process started the default way runs
PROCESS_CYCLES, one started by the forkserver's zygote (~10 ms) the full
CYCLES. bench/soak.py runs Queues and Pipes 100,000 times and a Pool
through 1M tasks with maxtasksperchild.
"""

import collections
import ctypes
import gc
import os
import pickle
import threading
import time

import pytest

import mpgo
from mpgo import _engine, connection, reduction, shared_memory
from mpgo.pool import ThreadPool

CYCLES = 1000
POOL_CYCLES = 30
MANAGER_CYCLES = 20
PROCESS_CYCLES = 50
WARMUP = 10
SETTLE = 10.0
RSS_SLACK = 4 << 20  # bytes
MALLOC_SLACK = 16 << 10  # bytes: 16 a cycle over CYCLES
ANON_SLACK = 16      # /proc/self/maps entries
GO_THREAD_SLACK = 4

LONG = 60


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        'arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks',
        'uordblks', 'fordblks', 'keepcost')]


def _malloc_in_use():
    """Bytes malloc has handed out and not had back (glibc's mallinfo2),
    or 0 where it cannot say: the C heap, where neither Python's small
    objects nor Go's heap live, so a C string lost per call shows here."""
    try:
        f = ctypes.CDLL(None).mallinfo2
    except AttributeError:
        return 0
    f.restype = _MallInfo2
    return f().uordblks


def _status():
    with open('/proc/self/status') as f:
        return dict(line.split(':\t', 1) for line in f if ':\t' in line)


def _usage():
    """What must come back to where it started, and the RSS (bytes)."""
    gc.collect()
    st = _status()
    with open('/proc/self/maps') as f:
        named = [line.split(None, 5)[5].strip() for line in f
                 if len(line.split(None, 5)) == 6]
    fds = _fd_targets().values()
    go_poller = min(1, sum(t == 'anon_inode:[eventpoll]' for t in fds)) + \
        min(1, sum(t == 'anon_inode:[eventfd]' for t in fds))
    held = {
        'fds': len(fds) - go_poller,
        'file maps': sorted(n for n in named if not n.startswith('[')),
        'python threads': threading.active_count(),
        'engine handles': _engine.live_handles(),
    }
    with open('/proc/self/maps') as f:
        anon = sum(1 for _ in f) - len(held['file maps'])
    return held, {'anonymous maps': anon, 'os threads': int(st['Threads']),
                  'rss': int(st['VmRSS'].split()[0]) * 1024, 'malloc': _malloc_in_use()}


def _fd_targets():
    out = {}
    for fd in os.listdir('/proc/self/fd'):
        try:
            out[int(fd)] = os.readlink('/proc/self/fd/' + fd)
        except OSError:
            pass
    return out


def _kinds(targets):
    """How many fds of each kind ('pipe', 'socket', a path...)."""
    return collections.Counter(t.split(':[')[0] for t in targets)


def _settled(before):
    deadline = time.monotonic() + SETTLE
    while True:
        held, loose = _usage()
        if held == before or time.monotonic() > deadline:
            return held, loose
        time.sleep(0.05)


def assert_flat(cycle, n=CYCLES):
    """Run cycle() n times and check that nothing it made is left."""
    for _ in range(WARMUP):
        cycle()
    before, loose0 = _settled(_usage()[0])
    fds = _fd_targets()
    for _ in range(n):
        cycle()
    after, loose1 = _settled(before)
    now = _fd_targets()
    assert after == before, 'fds opened: %s, closed: %s' % (
        _kinds(now[fd] for fd in now.keys() - fds.keys()),
        _kinds(fds[fd] for fd in fds.keys() - now.keys()))
    grew = {k: loose1[k] - loose0[k] for k in loose0}
    assert grew['anonymous maps'] <= ANON_SLACK, grew
    assert grew['os threads'] <= GO_THREAD_SLACK, grew
    assert grew['rss'] < RSS_SLACK, grew
    assert grew['malloc'] < MALLOC_SLACK, grew


def _roundtrip(obj):
    """obj pickled and unpickled here, as another process would get it."""
    return pickle.loads(reduction.ForkingPickler.dumps(obj))


#
# Queues and pipes
#


@pytest.mark.parametrize('close', [True, False], ids=['closed', 'dropped'])
@pytest.mark.parametrize('cls', [mpgo.Queue, mpgo.JoinableQueue, mpgo.SimpleQueue],
                         ids=lambda c: c.__name__)
def test_queue(cls, close):
    def cycle():
        q = cls()
        q.put([1, 'x'])
        assert q.get() == [1, 'x']
        copy = _roundtrip(q)
        copy.put(b'y' * 100_000)  # raw, beyond the first ring size
        assert q.get() == b'y' * 100_000
        if cls is mpgo.JoinableQueue:
            q.task_done()
            q.task_done()
            q.join()
        if close:
            q.close()
            copy.close()
            if cls is not mpgo.SimpleQueue:
                q.join_thread()
    assert_flat(cycle)


def test_queue_dropped_without_gc():
    # No reference cycle: refcounting alone frees a queue (and its reader,
    # whose C objects once kept a bound method of it).
    import weakref
    gc.disable()
    try:
        q = mpgo.Queue()
        q.put(1)
        q.get()
        reader = weakref.ref(q._reader)
        del q
        assert reader() is None
        a, b = mpgo.Pipe()
        ends = weakref.ref(a), weakref.ref(b)
        del a, b
        assert ends[0]() is None and ends[1]() is None
    finally:
        gc.enable()


@pytest.mark.parametrize('close', [True, False], ids=['closed', 'dropped'])
@pytest.mark.parametrize('duplex', [True, False], ids=['duplex', 'oneway'])
def test_pipe(duplex, close):
    def cycle():
        r, w = mpgo.Pipe(duplex)
        w.send({'a': 1})
        assert r.poll(LONG)
        assert r.recv() == {'a': 1}
        r.fileno()  # level mode: every send rings the doorbell
        w.send_bytes(b'z' * 70_000)
        assert connection.wait([r], LONG) == [r]
        assert r.recv_bytes() == b'z' * 70_000
        if duplex:
            r.send(2)
            assert w.recv() == 2
        copy = _roundtrip(w)
        copy.send(3)
        assert r.recv() == 3
        if close:
            copy.close()
            r.close()
            w.close()
    assert_flat(cycle)


def test_listener_client():
    def serve(listener):
        with listener.accept() as c:
            c.send(c.recv() + 1)

    def cycle():
        with connection.Listener(authkey=b'secret') as listener:
            t = threading.Thread(target=serve, args=(listener,))
            t.start()
            with connection.Client(listener.address, authkey=b'secret') as c:
                c.send(1)
                assert c.recv() == 2
            t.join(LONG)
    assert_flat(cycle)


def test_engine_calls():
    # gopy's wrappers of the engine functions that return only an error
    # once lost the C string they return, on success and on failure.
    from mpgo import heap

    def cycle():
        for _ in range(10):
            heap.allocate(16)  # ArenaAlloc, then ArenaFree when dropped
            with pytest.raises(OSError):
                _engine.call('ProcessSignal', 1, 0)  # no such handle
    assert_flat(cycle)


#
# Shared state
#


def test_locks():
    def cycle():
        for make in (mpgo.Lock, mpgo.RLock):
            lock = make()
            with lock:
                assert not lock.acquire(False) or make is mpgo.RLock
        for make in (mpgo.Semaphore, mpgo.BoundedSemaphore):
            sem = make(2)
            sem.acquire()
            sem.release()
            assert sem.get_value() == 2
        lock = _roundtrip(mpgo.Lock())
        lock.acquire()
        lock.release()
    assert_flat(cycle)


def test_condition_event_barrier():
    def cycle():
        cond = mpgo.Condition()
        with cond:
            cond.notify_all()
            assert not cond.wait(0)
        event = mpgo.Event()
        event.set()
        assert event.wait(0)
        barrier = mpgo.Barrier(1)
        assert barrier.wait(LONG) == 0
    assert_flat(cycle)


def test_values_arrays():
    def cycle():
        v = mpgo.Value('i', 1)
        with v.get_lock():
            v.value += 1
        a = mpgo.Array('d', range(100))
        a[:10] = [0.5] * 10
        assert a[9] == 0.5
        rv = mpgo.RawValue('q', 7)
        rv.value += 1
        ra = mpgo.RawArray('b', 1000)
        ra[999] = 3
        assert _roundtrip(v).value == 2 and _roundtrip(ra)[999] == 3
    assert_flat(cycle)


def test_shared_memory():
    def cycle():
        block = shared_memory.SharedMemory(create=True, size=8192)
        other = shared_memory.SharedMemory(block.name)
        other.buf[100] = 7
        assert block.buf[100] == 7
        del other  # dropped without close()
        block.close()
        block.unlink()
    assert_flat(cycle)


#
# Pools, processes and managers
#


def test_thread_pool():
    def cycle():
        with ThreadPool(2) as pool:
            assert pool.map(abs, range(-5, 0)) == [5, 4, 3, 2, 1]
        dropped = ThreadPool(1)
        assert dropped.apply(abs, (-1,)) == 1
    assert_flat(cycle)


@pytest.mark.slow
def test_pool():
    def cycle():
        with mpgo.Pool(1) as pool:
            assert pool.apply(abs, (-2,)) == 2
            assert pool.map(abs, range(-3, 0)) == [3, 2, 1]
    assert_flat(cycle, POOL_CYCLES)


@pytest.mark.slow
def test_pool_dropped():
    def cycle():
        pool = mpgo.Pool(1)
        assert pool.apply(abs, (-2,)) == 2
    assert_flat(cycle, POOL_CYCLES)


def test_pool_jobs():
    with mpgo.Pool(2) as pool:
        def cycle():
            got = []
            r = pool.apply_async(abs, (-1,), callback=got.append)
            assert pool.map(abs, [-1, -2], chunksize=1) == [1, 2]
            assert sorted(pool.imap_unordered(abs, [-3, -4])) == [3, 4]
            assert r.get(LONG) == 1
            assert list(pool.starmap(pow, [(2, 3)])) == [8]
        assert_flat(cycle)


@pytest.mark.slow
def test_process():
    def cycle():
        p = mpgo.Process(target=abs, args=(-1,))
        p.start()
        p.join(LONG)
        assert p.exitcode == 0
        p.close()
    assert_flat(cycle, PROCESS_CYCLES)


def test_forkserver_process():
    ctx = mpgo.get_context('forkserver')

    def cycle():
        p = ctx.Process(target=abs, args=(-1,))
        p.start()
        p.join(LONG)
        assert p.exitcode == 0
    try:
        assert_flat(cycle)
    finally:
        # The zygote lives as long as this process: stop it, as
        # test_forkserver.py does, before the check for leftover children.
        from mpgo import forkserver
        forkserver._forkserver._stop()


@pytest.mark.slow
@pytest.mark.parametrize('close', [True, False], ids=['shut down', 'dropped'])
def test_manager(close):
    def cycle():
        m = mpgo.Manager()
        shared = m.list([1])
        shared.append(2)
        assert shared[:] == [1, 2]
        if close:
            m.shutdown()
    assert_flat(cycle, MANAGER_CYCLES)


def test_manager_proxies():
    with mpgo.Manager() as m:
        def cycle():
            d = m.dict()
            d['k'] = [1]
            assert d['k'] == [1]
            q = m.Queue()
            q.put(1)
            assert q.get() == 1
            assert _roundtrip(d)['k'] == [1]
        assert_flat(cycle)
