"""Benchmark cases, each run in a fresh interpreter by bench/run.py.

usage: python bench/cases.py CASE IMPL
    IMPL: mpgo | stdlib-spawn | stdlib-fork, or a peer library:
    faster-fifo (QUEUE_CASES), mpire | loky (POOL_CASES)

Prints one JSON line: {"case", "impl", "value", "unit", "higher_is_better"}.
"""
import dataclasses
import itertools
import json
import os
import sys
import time


class _FasterFifo:
    """The stdlib fork context with faster-fifo's Queue, for the queue cases."""

    def __init__(self):
        import multiprocessing as mp
        import faster_fifo
        self._ctx = mp.get_context("fork")
        self._ff = faster_fifo

    def Queue(self, maxsize=0):
        return self._ff.Queue(max_size_bytes=256 << 20)

    def __getattr__(self, name):
        return getattr(self._ctx, name)


def _default_chunksize(n_items, n_workers):
    """multiprocessing.Pool.map's chunksize when none is given."""
    chunksize, extra = divmod(n_items, n_workers * 4)
    return chunksize + 1 if extra else chunksize


class _Mpire:
    """mpire.WorkerPool behind the Pool API the pool cases use.

    Start method: mpire's default, which is fork on Linux. keep_alive=True,
    so the workers the warm-up apply() starts serve the measured map (without
    it mpire stops its workers at the end of every map, and the next call
    starts new ones). mpire unpacks a tuple item into positional arguments,
    so items that are not from a range are wrapped in 1-tuples: the function
    always gets exactly one argument. A chunksize of None becomes
    multiprocessing's default one (mpire's own default is n_jobs * 64 chunks).
    """

    def __init__(self):
        import mpire  # here, outside the timed code, as load() does the stdlib
        self.mpire = mpire

    def Pool(self, n):
        return _MpirePool(self.mpire, n)


class _MpirePool:
    def __init__(self, mpire, n):
        self._n = n
        self._p = mpire.WorkerPool(n_jobs=n, keep_alive=True)

    @staticmethod
    def _args(iterable):
        # A range's items are ints, which mpire passes as they are.
        return iterable if isinstance(iterable, range) else [(x,) for x in iterable]

    def _resend_params(self):
        # mpire 2.10 workers pick their calling helper (with or without map's
        # order index) when they start or get new map parameters, and a map
        # with the same function as the previous call sends none: after
        # apply(_ident), map(_ident) calls _ident((idx, x)); after a map,
        # imap_unordered(_ident) fails the other way round. Making the pool's
        # recorded parameters differ (func=None) makes the next call send
        # them again, and the workers then pick the right helper.
        if self._p.map_params is not None:
            self._p.map_params = dataclasses.replace(self._p.map_params, func=None)

    def apply(self, func, args=(), kwds=None):
        return self._p.apply(func, args, kwds)

    def apply_async(self, func, args=(), kwds=None):
        return self._p.apply_async(func, args, kwds)  # AsyncResult with get()

    def map(self, func, iterable, chunksize=None):
        args = self._args(iterable)
        if chunksize is None:
            chunksize = _default_chunksize(len(args), self._n)
        self._resend_params()
        return self._p.map(func, args, iterable_len=len(args), chunk_size=chunksize)

    def imap_unordered(self, func, iterable, chunksize=1):
        args = self._args(iterable)
        self._resend_params()
        return self._p.imap_unordered(func, args, iterable_len=len(args),
                                      chunk_size=chunksize)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._p.terminate()  # as multiprocessing.Pool.__exit__


class _Loky:
    """loky's reusable executor (a concurrent.futures executor) behind the
    Pool API the pool cases use.

    Start method: loky's default, 'loky' (fork+exec of a fresh interpreter,
    like spawn; loky accepts context='fork' but warns against it). apply is
    submit().result(); apply_async wraps the future, get() = result(); map
    is the executor's map with the same chunksize (None becomes
    multiprocessing's default chunksize: the executor's own default is 1);
    imap_unordered submits one future per chunk and yields each chunk's
    results as its future completes (concurrent.futures.as_completed), the
    closest thing to Pool.imap_unordered, which also returns results chunk
    by chunk in completion order.
    """

    def __init__(self):
        import loky  # here, outside the timed code, as load() does the stdlib
        self.loky = loky

    def Pool(self, n):
        return _LokyPool(self.loky, n)


def _run_chunk(func, chunk):
    return [func(x) for x in chunk]


class _LokyResult:
    def __init__(self, future):
        self._f = future

    def get(self, timeout=None):
        return self._f.result(timeout)


class _LokyPool:
    def __init__(self, loky, n):
        self._n = n
        self._ex = loky.get_reusable_executor(max_workers=n)

    def apply(self, func, args=(), kwds=None):
        return self._ex.submit(func, *args, **(kwds or {})).result()

    def apply_async(self, func, args=(), kwds=None):
        return _LokyResult(self._ex.submit(func, *args, **(kwds or {})))

    def map(self, func, iterable, chunksize=None):
        if chunksize is None:
            iterable = list(iterable)
            chunksize = _default_chunksize(len(iterable), self._n)
        return list(self._ex.map(func, iterable, chunksize=chunksize))

    def imap_unordered(self, func, iterable, chunksize=1):
        from concurrent.futures import as_completed
        it = iter(iterable)
        fs = []
        while True:
            chunk = list(itertools.islice(it, chunksize))
            if not chunk:
                break
            fs.append(self._ex.submit(_run_chunk, func, chunk))
        for f in as_completed(fs):
            yield from f.result()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._ex.shutdown(wait=True)


def load(impl):
    if impl == "mpgo":
        import mpgo as mp
        return mp.get_context()   # the default: 'fork' (its zygote)
    if impl == "faster-fifo":
        return _FasterFifo()
    if impl == "mpire":
        return _Mpire()
    if impl == "loky":
        return _Loky()
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


def process_start_forkserver(mp):
    """process_start, with mpgo's children forked by its zygote
    (get_context('forkserver')); the stdlib impls keep their start method."""
    if type(mp).__module__.startswith("mpgo"):
        mp = mp.get_context("forkserver")
    return process_start(mp)


def _is_mpgo(mp):
    return type(mp).__module__.startswith("mpgo")


def process_start_4gb(mp):
    """process_start in a parent holding 4 GB it has written: a fork copies
    its page tables; mpgo's zygote was forked before, while it was small."""
    size, mb = 4 << 30, b"\1" * (1 << 20)
    big = bytearray(size)
    for off in range(0, size, 1 << 20):
        big[off:off + (1 << 20)] = mb
    value, unit, higher = process_start(mp)
    del big
    return value, unit, higher


def _program(mp, args):
    """The command running args as a program: python -m mpgo for mpgo,
    python for the stdlib."""
    return [sys.executable] + (["-m", "mpgo"] if _is_mpgo(mp) else []) + args


def _median_wall(cmd, n, cwd=None, env=None):
    import statistics
    import subprocess
    times = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=cwd, env=env,
                       stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def empty_program(mp):
    """A whole program that imports multiprocessing and does nothing:
    `python -m mpgo empty.py` against `python -c "import multiprocessing"`,
    median of 10, ms."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "empty.py")
        with open(path, "w") as f:
            f.write("import multiprocessing\n")
        if _is_mpgo(mp):
            cmd = [sys.executable, "-m", "mpgo", path]
        else:
            cmd = [sys.executable, "-c", "import multiprocessing"]
        return _median_wall(cmd, 10) * 1e3, "ms", False


def manager_list(mp):
    """Manager start, seed 004's list work (a list proxy, 4 processes each
    appending through it), and shutdown; ms."""
    t = time.perf_counter()
    with mp.Manager() as m:
        lst = m.list()
        ps = [mp.Process(target=_append, args=(lst, i)) for i in range(4)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        assert sorted(lst) == [0, 1, 2, 3]
    return (time.perf_counter() - t) * 1e3, "ms", False


def _append(lst, i):
    lst.append(i)


def _pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            with open("/proc/%d/task/%d/children" % (p, p)) as f:
                kids = [int(c) for c in f.read().split()]
        except OSError:
            kids = []
        out += kids
        todo += kids
    return out


def pool8_pss(mp):
    """Total PSS (this process and every descendant: workers, zygote) of
    an idle Pool(8) after its first map; MB."""
    with mp.Pool(8) as p:
        p.map(_ident, range(64))
        time.sleep(0.5)
        me = os.getpid()
        total = sum(_pss_kb(pid) for pid in [me] + _descendants(me))
    return total / 1024, "MB", False


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


def _echo(conn, n):
    for _ in range(n):
        conn.send(conn.recv())


def pipe_rtt(mp):
    """Ping-pong of a small object over Pipe(), microseconds per round trip."""
    n = 20_000
    a, b = mp.Pipe()
    p = mp.Process(target=_echo, args=(b, n + 100))
    p.start()
    for _ in range(100):  # warm up: the child is running
        a.send(1)
        a.recv()
    t = time.perf_counter()
    for i in range(n):
        a.send(i)
        a.recv()
    dt = time.perf_counter() - t
    p.join()
    return dt / n * 1e6, "us/round trip", False


def _produce(q, n, go):
    go.wait()
    for i in range(n):
        q.put(i)


def _started(mp, target, args_list):
    """Start one process per args tuple, each waiting on an Event passed as
    its last argument; return (processes, event). Timings start at set(),
    so process start-up is not measured."""
    go = mp.Event()
    ps = [mp.Process(target=target, args=args + (go,)) for args in args_list]
    for p in ps:
        p.start()
    time.sleep(0.5)
    return ps, go


def _queue_run(mp, producers, n):
    q = mp.Queue()
    ps, go = _started(mp, _produce, [(q, n // producers)] * producers)
    t = time.perf_counter()
    go.set()
    for _ in range(n):
        q.get()
    dt = time.perf_counter() - t
    for p in ps:
        p.join()
    return dt


def queue_small(mp):
    """1 producer -> 1 consumer, 200k ints; messages per second."""
    n = 200_000
    return n / _queue_run(mp, 1, n), "msgs/s", True


def queue_2p(mp):
    """2 producers -> 1 consumer, 200k ints; messages per second."""
    n = 200_000
    return n / _queue_run(mp, 2, n), "msgs/s", True


def _produce_big(q, n, size, go):
    data = b"x" * size
    go.wait()
    for _ in range(n):
        q.put(data)


def queue_1MB(mp):
    """1 MB bytes objects through a Queue; GB/s."""
    n, size = 500, 1 << 20
    q = mp.Queue()
    ps, go = _started(mp, _produce_big, [(q, n, size)])
    t = time.perf_counter()
    go.set()
    for _ in range(n):
        q.get()
    dt = time.perf_counter() - t
    ps[0].join()
    return n * size / dt / 1e9, "GB/s", True


def get_many(mp):
    """queue_small drained with get_many(100) where the queue has it;
    messages per second."""
    n = 200_000
    q = mp.Queue()
    ps, go = _started(mp, _produce, [(q, n)])
    t = time.perf_counter()
    go.set()
    got = 0
    if hasattr(q, "get_many"):
        while got < n:
            got += len(q.get_many(100))
    else:
        for _ in range(n):
            q.get()
    dt = time.perf_counter() - t
    ps[0].join()
    return n / dt, "msgs/s", True


def _ident(x):
    return x


def _cubes(_):
    return list(map(lambda n: n * n * n, range(1000)))


def _pool(mp, n=2):
    p = mp.Pool(n)
    p.apply(_ident, (0,))  # a worker is up
    # and the others too: a worker still starting (importing) would take
    # CPU from the measured run, more or less of it from one run to the next.
    time.sleep(0.5)
    return p


def pool_map_cs1(mp):
    """map of 20k tiny tasks with chunksize=1; microseconds per task."""
    n = 20_000
    with _pool(mp) as p:
        t = time.perf_counter()
        p.map(_ident, range(n), chunksize=1)
        dt = time.perf_counter() - t
    return dt / n * 1e6, "us/task", False


def pool_apply_async(mp):
    """10k apply_async then get; microseconds per task."""
    n = 10_000
    with _pool(mp) as p:
        t = time.perf_counter()
        rs = [p.apply_async(_ident, (i,)) for i in range(n)]
        for r in rs:
            r.get()
        dt = time.perf_counter() - t
    return dt / n * 1e6, "us/task", False


def pool_map_tiny(mp):
    """map of 1M tiny items, default chunksize; seconds."""
    with _pool(mp) as p:
        t = time.perf_counter()
        p.map(_ident, range(1_000_000))
        dt = time.perf_counter() - t
    return dt, "s", False


def pool_imap_unordered(mp):
    """imap_unordered of 200k tiny items, chunksize=100; seconds."""
    with _pool(mp) as p:
        t = time.perf_counter()
        for _ in p.imap_unordered(_ident, range(200_000), chunksize=100):
            pass
        dt = time.perf_counter() - t
    return dt, "s", False


def pool_cpu(mp):
    """Seed 004's calc_cubes over 20k items with Pool(5), as speedup over
    the same work done serially in this process."""
    n = 20_000
    t = time.perf_counter()
    list(map(_cubes, range(n)))
    serial = time.perf_counter() - t
    with mp.Pool(5) as p:
        p.apply(_ident, (0,))
        t = time.perf_counter()
        p.map(_cubes, range(n))
        par = time.perf_counter() - t
    return serial / par, "x serial", True


def pool_start(mp):
    """Pool(2) creation until its first result (its first result); ms."""
    t = time.perf_counter()
    with mp.Pool(2) as p:
        p.apply(_ident, (0,))
        dt = time.perf_counter() - t
    return dt * 1e3, "ms", False


# Cases that also run against faster-fifo (when it is installed).
QUEUE_CASES = {"queue_small", "queue_2p", "queue_1MB", "get_many"}
# Cases that also run against mpire and loky (when they are installed).
POOL_CASES = {"pool_map_cs1", "pool_apply_async", "pool_map_tiny",
              "pool_imap_unordered", "pool_cpu", "pool_start"}

CASES = {f.__name__: f for f in (process_start, process_start_forkserver,
                                 lock_uncontended, value_read,
                                 value_locked_2p, array_copy, pipe_rtt,
                                 queue_small, queue_2p, queue_1MB, get_many,
                                 pool_map_cs1, pool_apply_async, pool_map_tiny,
                                 pool_imap_unordered, pool_cpu, pool_start,
                                 process_start_4gb, empty_program,
                                 manager_list, pool8_pss)}

if __name__ == "__main__":
    case, impl = sys.argv[1], sys.argv[2]
    value, unit, higher = CASES[case](load(impl))
    print(json.dumps({"case": case, "impl": impl, "value": value, "unit": unit,
                      "higher_is_better": higher}))
