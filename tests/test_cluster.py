"""The cluster context's API, against the test cluster (conftest's
dask_cluster: a scheduler and two workers on loopback).

This process is the driver: the tests use mpgo.cluster.get_context(address)
directly; children's targets are in _cluster_helpers (pickled by value, as
a script's functions are). After each test no task of the run may still be
running on the cluster (the cluster's analogue of conftest's leak check).
The failure cases (a lost worker, a lost scheduler, Ctrl-C) are in
test_cluster_failures.py, on clusters of their own.
"""

import ctypes
import io
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

import mpgo
import mpgo.cluster
from mpgo.cluster import LocalObjectError
from mpgo.cluster import _session

import _cluster_helpers as h


@pytest.fixture(scope='module')
def ctx(dask_cluster):
    ctx = mpgo.cluster.get_context(dask_cluster)
    ctx.connect()
    yield ctx
    ctx.shutdown(terminate=True)


def _live_tasks(session):
    prefix = session.prefix

    def live(dask_scheduler, prefix=prefix):
        return [k for k, ts in dask_scheduler.tasks.items()
                if isinstance(k, str) and k.startswith(prefix) and
                ts.state in ('processing', 'waiting', 'queued', 'no-worker')]

    def running(prefix=prefix):
        # On each worker: the threads still running a task of the run
        # (a cancelled task's thread runs on until it is stopped).
        import sys
        runtime = sys.modules.get('mpgo.cluster._runtime')
        if runtime is None:
            return []
        with runtime._running_lock:
            return [k for k in runtime._running if k.startswith(prefix)]
    on_workers = [k for keys in session.client.run(running).values()
                  for k in keys]
    return session.client.run_on_scheduler(live) + on_workers


@pytest.fixture(autouse=True)
def no_running_tasks(request):
    yield
    if 'ctx' not in request.fixturenames:
        return
    session = _session.driver_if_any()
    deadline = time.monotonic() + 5
    while (live := _live_tasks(session)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert live == [], 'the test left tasks running on the cluster'


@pytest.fixture(scope='module')
def worker_pids(dask_cluster, ctx):
    return set(ctx.connect().run(os.getpid).values())


#
# Processes
#


def test_process_runs_on_a_worker(ctx, worker_pids):
    q = ctx.Queue()
    p = ctx.Process(target=h.whoami, args=(q,), name='Seeker')
    assert p.pid is None and p.exitcode is None
    p.start()
    name, pid, reported, parent = q.get(timeout=60)
    p.join(60)
    assert name == 'Seeker'
    assert pid in worker_pids and reported == pid == p.pid
    assert parent == mpgo.current_process().name
    assert p.exitcode == 0 and not p.is_alive()


def test_process_exit_codes(ctx, capsys):
    procs = [ctx.Process(target=h.nothing),
             ctx.Process(target=h.exit_with, args=(3,)),
             ctx.Process(target=h.exit_with, args=('bye',)),
             ctx.Process(target=h.fail, args=('boom',), name='Failing')]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 3, 1, 1]
    err = capsys.readouterr().err
    assert 'bye\n' in err
    assert 'Process Failing:\nTraceback' in err
    assert 'ValueError: boom' in err


def test_process_default_names_and_daemon(ctx):
    p = ctx.Process(target=h.nothing, daemon=True)
    assert p.name.startswith('Process-') and p.daemon
    p.start()
    p.join(60)
    assert p.exitcode == 0
    with pytest.raises(AssertionError):
        p.start()


def test_terminate_and_kill_stop_the_target(ctx):
    for stop, code in (('terminate', -signal.SIGTERM),
                       ('kill', -signal.SIGKILL)):
        q = ctx.Queue()
        p = ctx.Process(target=h.loop_forever, args=(q,))
        p.start()
        assert q.get(timeout=60) == 'started'
        assert p.is_alive()
        getattr(p, stop)()
        p.join(60)
        assert p.exitcode == code
        # no_running_tasks checks that the worker stopped it.


def test_join_timeout_and_sentinel(ctx):
    q = ctx.Queue()
    p = ctx.Process(target=h.loop_forever, args=(q,))
    p.start()
    q.get(timeout=60)
    t = time.monotonic()
    p.join(0.3)
    assert time.monotonic() - t >= 0.3 and p.exitcode is None
    from mpgo.connection import wait
    assert wait([p.sentinel], 0.1) == []
    p.terminate()
    assert wait([p.sentinel], 60) == [p.sentinel]
    p.join()
    p.close()
    with pytest.raises(ValueError):
        p.is_alive()


def test_nested_process(ctx):
    q = ctx.Queue()
    p = ctx.Process(target=h.start_child, args=(q,))
    p.start()
    name, pid, reported, parent = q.get(timeout=60)
    assert q.get(timeout=60) == ('child exitcode', 0)
    p.join(60)
    assert name == p.name + ':1' and parent == p.name
    assert p.exitcode == 0


def test_active_children(ctx):
    q = ctx.Queue()
    p = ctx.Process(target=h.loop_forever, args=(q,))
    p.start()
    q.get(timeout=60)
    assert p in ctx.active_children()
    p.terminate()
    p.join(60)
    assert p not in ctx.active_children()


def test_output_reaches_the_driver_before_what_follows_it(ctx, capsys):
    q = ctx.Queue()
    p = ctx.Process(target=h.print_then_put, args=(q, 'printed first'))
    p.start()
    assert q.get(timeout=60) == 'sent'
    assert capsys.readouterr().out == 'printed first\n'
    p.join(60)
    p = ctx.Process(target=h.print_lines, args=(300,))
    p.start()
    p.join(60)
    out = capsys.readouterr()
    assert out.out.splitlines() == ['line %d' % i for i in range(300)]
    assert out.err == 'to stderr\n'


def test_output_follows_what_its_task_received(ctx, capsys):
    '''A prints, then sends to B, which prints: A's line comes first,
    wherever they run.'''
    for _ in range(5):
        q = ctx.Queue()
        b = ctx.Process(target=h.relay_print, args=(q, 'from B'))
        b.start()
        a = ctx.Process(target=h.print_then_put, args=(q, 'from A'))
        a.start()
        a.join(60)
        b.join(60)
        assert capsys.readouterr().out == 'from A\nfrom B\n'


def test_cpu_count_is_the_clusters_threads(ctx):
    nthreads = ctx.connect().nthreads()
    assert ctx.cpu_count() == sum(nthreads.values()) >= 2


#
# Local objects
#


def test_local_objects_raise_at_submit(ctx):
    local = mpgo.get_context('spawn')
    lock = threading.Lock()
    with open(os.devnull) as f:
        for obj in (local.Queue(), local.Lock(), local.Value('i', 1),
                    local.Pipe()[0], lock, f):
            p = ctx.Process(target=h.nothing, args=(obj,))
            with pytest.raises(LocalObjectError) as info:
                p.start()
            assert 'cannot send' in str(info.value)
            assert p._popen is None
        with ctx.Pool(2) as pool:
            with pytest.raises(LocalObjectError, match='threading lock'):
                pool.apply_async(h.add, (lock, 1))
            with pytest.raises(LocalObjectError, match='shared memory'):
                pool.map(h.square, [local.Queue()])
            with pytest.raises(LocalObjectError):
                ctx.Queue().put(local.Queue())
    with pytest.raises(LocalObjectError, match='cluster context'):
        ctx.Process(target=h.nothing, args=(local.RawValue('i', 1),)).start()
    # Plain values and BytesIO are fine.
    p = ctx.Process(target=h.nothing, args=(io.BytesIO(b'x'),
                                            ctypes.c_int(3)))
    p.start()
    p.join(60)
    assert p.exitcode == 0


#
# Queues
#


def test_queue_between_processes(ctx):
    q, out = ctx.Queue(), ctx.Queue()
    items = [1, 'two', (3.0, None), list(range(100)), b'x' * 100000]
    producer = ctx.Process(target=h.put_all, args=(q, items))
    consumer = ctx.Process(target=h.get_n, args=(q, len(items), out))
    producer.start()
    consumer.start()
    assert out.get(timeout=60) == items
    producer.join(60)
    consumer.join(60)
    assert q.empty() and q.qsize() == 0


def test_queue_bounds_and_timeouts(ctx):
    q = ctx.Queue(2)
    q.put(1)
    q.put_nowait(2)
    assert q.full() and q.qsize() == 2
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.2)
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    assert q.get() == 1 and q.get_nowait() == 2
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    with pytest.raises(queue.Empty):
        q.get(False)
    with pytest.raises(TypeError):
        q.put(threading.Lock())
    q.put(lambda x: x + 1)      # functions go by value
    assert q.get()(1) == 2
    q.close()
    with pytest.raises(ValueError):
        q.put(1)


def test_simple_queue(ctx):
    q = ctx.SimpleQueue()
    assert q.empty()
    q.put('a')
    assert not q.empty() and q.get() == 'a'


def test_joinable_queue(ctx):
    q = ctx.JoinableQueue()
    for i in range(3):
        q.put(i)
    p = ctx.Process(target=h.joinable_consumer, args=(q, 3))
    p.start()
    q.join()
    p.join(60)
    assert p.exitcode == 0
    with pytest.raises(ValueError, match='too many'):
        q.task_done()


#
# Synchronization
#


def test_value_with_its_lock_is_exact(ctx):
    v = ctx.Value('i', 0)
    procs = [ctx.Process(target=h.locked_increments, args=(v, 40))
             for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert v.value == 120


def test_lock_across_processes(ctx):
    lock, v = ctx.Lock(), ctx.Value('i', 0, lock=False)
    procs = [ctx.Process(target=h.lock_held_increments, args=(lock, v, 30))
             for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert v.value == 60


def test_lock_semantics(ctx):
    lock = ctx.Lock()
    assert lock.acquire()
    assert not lock.acquire(False)
    assert not lock.acquire(timeout=0.1)
    lock.release()
    with pytest.raises(ValueError, match='released too many times'):
        lock.release()
    rlock = ctx.RLock()
    assert rlock.acquire() and rlock.acquire()
    assert rlock._count() == 2
    rlock.release()
    rlock.release()
    with pytest.raises(AssertionError):
        rlock.release()


def test_semaphores(ctx):
    s = ctx.Semaphore(2)
    assert s.get_value() == 2
    assert s.acquire() and s.acquire(timeout=1)
    assert not s.acquire(False)
    s.release()
    s.release()
    s.release()
    assert s.get_value() == 3
    b = ctx.BoundedSemaphore(1)
    with pytest.raises(ValueError):
        b.release()
    with pytest.raises(ValueError):
        ctx.Semaphore(-1)


def test_event(ctx):
    e, q = ctx.Event(), ctx.Queue()
    assert not e.is_set() and e.wait(0.1) is False
    p = ctx.Process(target=h.wait_event, args=(e, q))
    p.start()
    time.sleep(0.5)
    e.set()
    assert q.get(timeout=60) is True
    p.join(60)
    assert e.is_set()
    e.clear()
    assert not e.is_set()


def test_condition(ctx):
    cond, flag = ctx.Condition(), ctx.Value('i', 0)
    with cond:
        p = ctx.Process(target=h.notify_after, args=(cond, flag))
        p.start()
        assert cond.wait_for(lambda: flag.value == 1, timeout=60)
    p.join(60)
    with cond:
        assert cond.wait(0.1) is False
    with pytest.raises(AssertionError):
        cond.notify()


def test_barrier(ctx):
    barrier, q = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=h.barrier_wait, args=(barrier, q))
             for _ in range(2)]
    for p in procs:
        p.start()
    mine = barrier.wait(60)
    theirs = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    assert sorted([mine] + theirs) == [0, 1, 2]
    assert barrier.parties == 3 and not barrier.broken


def test_values_and_arrays(ctx):
    i = ctx.Value('i', 2 ** 31 - 1, lock=False)
    i.value += 1
    assert i.value == -2 ** 31
    f = ctx.Value('f', 0.1)
    assert f.value != 0.1 and abs(f.value - 0.1) < 1e-7
    c = ctx.Value(ctypes.c_double, 1.5)
    assert c.value == 1.5 and c.get_lock() is not None
    arr = ctx.Array('d', [1.0, 2.0, 3.0, 4.0])
    assert len(arr) == 4 and arr[:] == [1.0, 2.0, 3.0, 4.0]
    assert arr[1:3] == [2.0, 3.0] and arr[-1] == 4.0
    # Processes writing different items keep each other's writes.
    procs = [ctx.Process(target=h.set_item, args=(arr, n, 10.0 * n))
             for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert arr[:] == [0.0, 10.0, 20.0, 30.0]
    s = ctx.Array('c', b'hello')
    assert s.value == b'hello'
    s.value = b'hi'
    assert s.value == b'hi' and s.raw == b'hi\x00lo'
    raw = ctx.RawArray('i', 3)
    raw[0] = 7
    assert list(raw) == [7, 0, 0]
    rv = ctx.RawValue('q', 5)
    assert rv.value == 5


#
# Pipes
#


def test_pipe(ctx):
    a, b = ctx.Pipe()
    p = ctx.Process(target=h.pipe_echo, args=(b,))
    p.start()
    b.close()           # the task holds its own copy
    a.send({'x': 1})
    assert a.recv() == ('echo', {'x': 1})
    a.send([1, 2])
    assert a.poll(60)
    assert a.recv() == ('echo', [1, 2])
    a.close()           # the echo loop ends on EOFError
    p.join(60)
    assert p.exitcode == 0


def test_pipe_bytes(ctx):
    r, w = ctx.Pipe(duplex=False)
    w.send_bytes(b'0123456789', 2, 3)
    w.send_bytes(bytearray(b'abcdef'))
    w.send('obj')
    assert r.recv_bytes() == b'234'
    buf = bytearray(10)
    assert r.recv_bytes_into(buf, 1) == 6 and buf[1:7] == b'abcdef'
    assert r.recv() == 'obj'
    w.send_bytes(b'x' * 10)
    with pytest.raises(OSError, match='bad message length'):
        r.recv_bytes(5)
    with pytest.raises(ValueError):
        w.send_bytes(b'abc', 4)


def test_pipe_eof_once_every_copy_is_closed(ctx):
    r, w = ctx.Pipe(duplex=False)
    assert r.readable and not r.writable and w.writable
    p = ctx.Process(target=h.pipe_send_close, args=(w, [1, 2]))
    p.start()
    assert not r.poll(0.05) or r.recv() == 1
    p.join(60)
    got = []
    assert r.poll(5)        # this process's copy of w is still open
    while r.poll(0.5):
        got.append(r.recv())
    assert got in ([1, 2], [2])
    w.close()
    with pytest.raises(EOFError):
        r.recv()
    with pytest.raises(EOFError):
        r.recv()
    with pytest.raises(OSError):
        r.send(1)


#
# Pools
#


def test_pool_map_family(ctx):
    with ctx.Pool(3) as pool:
        assert pool.map(h.square, range(50)) == [x * x for x in range(50)]
        assert pool.map(h.square, range(50), chunksize=1) == \
            [x * x for x in range(50)]
        assert pool.starmap(h.add, [(1, 2), (3, 4)]) == [3, 7]
        assert list(pool.imap(h.square, iter(range(20)))) == \
            [x * x for x in range(20)]
        assert list(pool.imap(h.square, range(20), chunksize=3)) == \
            [x * x for x in range(20)]
        assert sorted(pool.imap_unordered(h.square, range(20))) == \
            sorted(x * x for x in range(20))
        assert pool.apply(h.add, (2, 3)) == 5
        assert pool.map(h.square, []) == []


def test_pool_callbacks_and_errors(ctx):
    got, errors = [], []
    with ctx.Pool(2) as pool:
        r = pool.apply_async(h.add, (1, 2), callback=got.append)
        r.wait(60)
        assert got == [3] and r.successful() and r.get() == 3
        r = pool.apply_async(h.fail, ('no',), error_callback=errors.append)
        with pytest.raises(ValueError, match='no') as info:
            r.get(60)
        assert errors and errors[0] is info.value
        cause = info.value.__cause__
        assert type(cause).__name__ == 'RemoteTraceback'
        assert 'in fail' in str(cause)
        with pytest.raises(ZeroDivisionError):
            pool.starmap(h.fail_on, [(i, 5) for i in range(10)])
        it = pool.imap(h.square, iter([1, 2, 3]))
        assert list(it) == [1, 4, 9]
        r = pool.map_async(h.square, [1, 2], callback=got.append)
        assert r.get(60) == [1, 4] and got[-1] == [1, 4]
        r = pool.apply_async(h.make_unpicklable)
        with pytest.raises(mpgo.pool.MaybeEncodingError):
            r.get(60)
        r = pool.apply_async(h.busy_then, (5, 'late'))
        with pytest.raises(mpgo.TimeoutError):
            r.get(0.1)
    # terminate() (by the with block) fails what was not done.
    with pytest.raises(ValueError, match='Pool not running'):
        r.get(60)


def test_pool_many_apply_async(ctx):
    with ctx.Pool() as pool:
        results = [pool.apply_async(h.square, (i,)) for i in range(2000)]
        assert [r.get(120) for r in results] == [i * i for i in range(2000)]


def test_pool_close_join_and_state(ctx):
    pool = ctx.Pool(2)
    r = pool.starmap_async(h.sleep_then, [(0.2, 'a')] * 4)
    with pytest.raises(ValueError, match='still running'):
        pool.join()
    pool.close()
    with pytest.raises(ValueError, match='not running'):
        pool.apply_async(h.nothing)
    pool.join()
    assert r.ready() and r.get() == ['a'] * 4
    with pytest.raises(NotImplementedError):
        import pickle
        pickle.dumps(pool)


def test_pool_tasks_run_on_workers(ctx, worker_pids):
    names = {w['name'] for w in ctx.connect().scheduler_info(
        n_workers=-1)['workers'].values()}
    with ctx.Pool(2) as pool:
        seen = pool.map(h.pool_whoami, range(8), chunksize=1)
    assert {pid for _, pid in seen} <= worker_pids
    assert {name for name, _ in seen} <= {str(n) for n in names}


def test_pool_initializer(ctx):
    with ctx.Pool(2, initializer=h.init_state, initargs=('ready',)) as pool:
        assert set(pool.map(h.read_state, range(20), chunksize=1)) == \
            {'ready'}
    with ctx.Pool(2, initializer=h.init_fails) as pool:
        with pytest.raises(mpgo.pool.InitializerError) as info:
            pool.map(h.square, range(4))
        assert 'initializer failed' in str(info.value.__cause__)
    with pytest.raises(TypeError):
        ctx.Pool(2, initializer=3)
    with pytest.raises(ValueError):
        ctx.Pool(0)


def test_pool_terminate_stops_running_tasks(ctx):
    pool = ctx.Pool(2)
    results = [pool.apply_async(h.sleep_then, (0.05 * i, i))
               for i in range(3)]
    long = pool.apply_async(h.busy_then, (60, 'never'))
    assert [r.get(60) for r in results] == [0, 1, 2]
    pool.terminate()
    pool.join()
    with pytest.raises(ValueError):
        long.get(1)
    # no_running_tasks: the 60 s task was stopped on its worker.


#
# Managers
#


def test_manager_proxies_reach_workers(ctx):
    with ctx.Manager() as manager:
        items = manager.list()
        with ctx.Pool(2) as pool:
            pool.starmap(h.append_to, [(items, i) for i in range(6)])
        p = ctx.Process(target=h.append_to, args=(items, 'p'))
        p.start()
        p.join(60)
        assert sorted(items[:6]) == list(range(6)) and items[6] == 'p'


#
# The context and the command line
#


def _python(code, **env):
    full = dict(os.environ)
    full.update(env)
    return subprocess.run([sys.executable, '-c', code], env=full,
                          capture_output=True, text=True, timeout=120)


def test_import_mpgo_does_not_import_distributed():
    res = _python('import sys, mpgo, mpgo.context; '
                  'print("distributed" in sys.modules, '
                  '"cluster" in mpgo.get_all_start_methods())')
    assert res.stdout.split() == ['False', 'False'], res.stderr


def test_get_context_cluster_uses_MPGO_CLUSTER(dask_cluster):
    res = _python(
        'import mpgo\n'
        'ctx = mpgo.get_context("cluster")\n'
        'print(ctx.get_start_method(), ctx.cpu_count() >= 2)\n'
        'print(ctx is mpgo.get_context("cluster"))\n',
        MPGO_CLUSTER=dask_cluster)
    assert res.stdout.split() == ['cluster', 'True', 'True'], res.stderr
    with pytest.raises(ValueError, match='not a start method'):
        mpgo.context._default_context.set_start_method('cluster')


def test_main_binds_multiprocessing(dask_cluster, tmp_path):
    script = tmp_path / 'script.py'
    script.write_text(
        'import multiprocessing as mp\n'
        'from multiprocessing import Process, Queue, current_process\n'
        'def f(q):\n'
        '    q.put((mp.current_process().name, type(mp.Queue()).__module__))\n'
        'if __name__ == "__main__":\n'
        '    mp.set_start_method("spawn")\n'
        '    q = Queue()\n'
        '    p = Process(target=f, args=(q,), name="P")\n'
        '    p.start(); print(q.get()); p.join()\n'
        '    print(type(q).__module__,\n'
        '          mp.get_context() is mp.get_context("fork"))\n'
        '    print(current_process().name, p.exitcode)\n')
    for args, env in ((['--cluster', dask_cluster], {}),
                      (['--cluster=' + dask_cluster], {}),
                      ([], {'MPGO_CLUSTER': dask_cluster})):
        full = dict(os.environ, **env)
        res = subprocess.run([sys.executable, '-m', 'mpgo', *args,
                              str(script)], env=full, capture_output=True,
                             text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout.splitlines() == [
            "('P', 'mpgo.cluster.queues')", 'mpgo.cluster.queues True',
            'MainProcess 0'], res.stderr


def test_main_with_an_unreachable_cluster(tmp_path):
    script = tmp_path / 'script.py'
    script.write_text('print("never")\n')
    res = subprocess.run(
        [sys.executable, '-m', 'mpgo', '--cluster', 'tcp://127.0.0.1:9',
         str(script)], env=dict(os.environ, MPGO_CLUSTER_TIMEOUT='2'),
        capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stdout == ''
    assert 'cannot reach the Dask scheduler at tcp://127.0.0.1:9' in res.stderr
    res = subprocess.run([sys.executable, '-m', 'mpgo', '--cluster'],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and 'usage' in res.stderr


def test_exit_joins_processes_and_stops_daemons(dask_cluster, tmp_path):
    '''As CPython at exit: unjoined processes are waited for (their output
    printed), daemonic ones are terminated.'''
    script = tmp_path / 'script.py'
    script.write_text(
        'import time\n'
        'from multiprocessing import Process\n'
        'def late():\n'
        '    time.sleep(1)\n'
        '    print("late child done")\n'
        'def forever():\n'
        '    while True:\n'
        '        time.sleep(0.01)\n'
        'if __name__ == "__main__":\n'
        '    Process(target=forever, daemon=True).start()\n'
        '    Process(target=late).start()\n'
        '    print("main done")\n')
    res = subprocess.run([sys.executable, '-m', 'mpgo', '--cluster',
                          dask_cluster, str(script)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ['main done', 'late child done']
    assert res.stderr == ''


def _local_cluster_pids():
    '''Processes of `--cluster local` clusters (their command lines name
    their temporary directory).'''
    pids = set()
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/cmdline' % entry, 'rb') as f:
                    if b'mpgo-cluster-' in f.read():
                        pids.add(int(entry))
            except OSError:
                pass
    return pids


def _gone(pids, timeout=30):
    deadline = time.monotonic() + timeout
    while pids & _local_cluster_pids() and time.monotonic() < deadline:
        time.sleep(0.1)
    return not pids & _local_cluster_pids()


def test_cluster_local_lives_and_dies_with_the_driver(tmp_path):
    import test_tutorials as tutorials
    before = _local_cluster_pids()
    res = subprocess.run(
        [sys.executable, '-m', 'mpgo', '--cluster', 'local',
         os.path.join(tutorials.TUTORIALS, 'seed002_queue.py')],
        capture_output=True, text=True, timeout=300, cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ''
    tutorials.CHECKERS['seed002_queue.py'](res)
    assert _gone(_local_cluster_pids() - before)
    # SIGKILLed, the driver takes its cluster with it.
    script = tmp_path / 'script.py'
    script.write_text('import time\n'
                      'from multiprocessing import Queue\n'
                      'if __name__ == "__main__":\n'
                      '    q = Queue()\n'
                      '    print("up", flush=True)\n'
                      '    time.sleep(300)\n')
    proc = subprocess.Popen([sys.executable, '-m', 'mpgo', '--cluster',
                             'local', str(script)], stdout=subprocess.PIPE,
                            text=True, cwd=str(tmp_path))
    assert proc.stdout.readline() == 'up\n'
    started = _local_cluster_pids() - before
    assert started
    proc.kill()
    proc.wait()
    proc.stdout.close()
    assert _gone(started)


def test_the_end_of_a_run_drops_its_objects(dask_cluster):
    '''What a run made on the scheduler (queues, variables, events, its
    output topic) is gone after it, as no shared memory outlives a local
    run.'''
    ctx = mpgo.cluster.get_context(dask_cluster)
    q, v, e = ctx.Queue(), ctx.Value('i', 1), ctx.Event()
    q.put(1)
    e.set()
    p = ctx.Process(target=h.print_lines, args=(2,))
    p.start()
    p.join(60)
    prefix = _session.driver_if_any().prefix
    ctx.shutdown()

    def left(dask_scheduler, prefix=prefix):
        ext = dask_scheduler.extensions
        names = list(ext['queues'].queues) + list(ext['variables'].variables)
        names += list(ext['events']._events)
        names += list(dask_scheduler._broker._topics)
        names += list(dask_scheduler.tasks)
        return [n for n in names if str(n).startswith(prefix)]
    import distributed
    with distributed.Client(dask_cluster, timeout=60) as client:
        assert client.run_on_scheduler(left) == []
