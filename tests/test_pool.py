"""Pool and ThreadPool (mpgo/pool.py): CPython's API, plus what CPython
cannot do: a worker that dies fails only its task, pickling failures fail
only their task, a failing initializer breaks the pool instead of
respawning workers for ever, mpgo objects are valid task arguments."""

import faulthandler
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types

import pytest

import mpgo
from mpgo import pool as mpool
from mpgo import reduction

import _pool_helpers as h
from _helpers import env_with_tests, pid_alive, wait_for_file, wait_pid_gone

# Every wait in these tests has a generous bound, so that a bug fails the
# test instead of hanging the run.
LONG = 60


@pytest.fixture(autouse=True)
def hang_guard():
    '''Dump the stacks and exit if a test hangs far beyond its bounds.'''
    faulthandler.dump_traceback_later(600, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def pool():
    p = mpgo.Pool(2)
    try:
        yield p
    finally:
        p.terminate()


def wait_until(predicate, timeout=LONG):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def pool_pids(p):
    return [w.pid for w in list(p._pool)]


class TestMapFamily:
    def test_map(self, pool):
        assert pool.map(h.square, range(10)) == [x * x for x in range(10)]
        assert pool.map(h.square, range(100), chunksize=7) == \
            [x * x for x in range(100)]
        assert pool.map(h.square, []) == []
        # An iterable without __len__ is listed first.
        assert pool.map(h.square, (x for x in range(5))) == [0, 1, 4, 9, 16]

    def test_map_async(self, pool):
        got = []
        r = pool.map_async(h.square, range(20), callback=got.append)
        assert r.get(timeout=LONG) == [x * x for x in range(20)]
        assert r.ready() and r.successful()
        assert got == [[x * x for x in range(20)]]
        r.wait(LONG)
        assert isinstance(r, mpool.MapResult)
        assert isinstance(r, mpool.AsyncResult)

    def test_map_async_empty_is_ready_at_once(self, pool):
        r = pool.map_async(h.square, [])
        assert r.ready() and r.get(timeout=0) == []

    def test_starmap(self, pool):
        pairs = [(i, 10 * i) for i in range(10)]
        assert pool.starmap(h.add, pairs) == [11 * i for i in range(10)]
        assert pool.starmap(h.add, pairs, chunksize=3) == \
            [11 * i for i in range(10)]

    def test_starmap_async(self, pool):
        got = []
        r = pool.starmap_async(h.add, [(1, 2), (3, 4)], callback=got.append)
        assert r.get(timeout=LONG) == [3, 7]
        assert got == [[3, 7]]

    def test_imap(self, pool):
        assert list(pool.imap(h.square, range(30))) == \
            [x * x for x in range(30)]
        assert list(pool.imap(h.square, range(30), chunksize=4)) == \
            [x * x for x in range(30)]
        assert list(pool.imap(h.square, [])) == []
        with pytest.raises(ValueError):
            pool.imap(h.square, range(3), chunksize=0)

    def test_imap_next_with_timeout(self, pool):
        it = pool.imap(h.square, range(3))
        assert [it.next(timeout=LONG) for _ in range(3)] == [0, 1, 4]
        with pytest.raises(StopIteration):
            it.next(timeout=LONG)
        assert iter(it) is it

    def test_imap_next_times_out(self, pool):
        gate = mpgo.Queue()
        it = pool.imap(h.wait_for_gate, [gate])
        with pytest.raises(mpgo.TimeoutError):
            it.next(timeout=0.1)
        gate.put('go')
        assert it.next(timeout=LONG) == 'passed'
        with pytest.raises(StopIteration):
            next(it)

    def test_imap_unordered(self, pool):
        assert sorted(pool.imap_unordered(h.square, range(30))) == \
            sorted(x * x for x in range(30))
        assert sorted(pool.imap_unordered(h.square, range(30),
                                          chunksize=4)) == \
            sorted(x * x for x in range(30))
        with pytest.raises(ValueError):
            pool.imap_unordered(h.square, range(3), chunksize=0)

    def test_imap_with_an_iterable_that_raises(self, pool):
        it = pool.imap(h.identity, h.raise_from_iterable(10, 3))
        assert [next(it) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(KeyError, match='iterable failed at 3'):
            next(it)
        with pytest.raises(StopIteration):
            next(it)

    def test_big_results_from_many_workers(self):
        # A result above the parent's read buffer is read alone, in a
        # second get; with six workers putting such results that get found
        # the result queue's lock held now and then, and its single try
        # broke the pool with "cannot read results (Empty())".
        with mpgo.Pool(6) as p:
            for _ in range(10):
                out = p.map(h.big_bytes, range(60), chunksize=1)
                assert [len(b) for b in out] == [1000000] * 60

    def test_default_chunksize_is_cpythons(self, pool):
        # divmod(len, processes * 4), rounded up; 0 for an empty iterable.
        for n, chunks in [(100, 13), (8, 1), (9, 2), (7, 1), (0, 0)]:
            r = pool.map_async(h.identity, range(n))
            assert r._chunksize == chunks, n
            assert r.get(timeout=LONG) == list(range(n))


class TestApply:
    def test_apply(self, pool):
        assert pool.apply(h.add, (2, 3)) == 5
        assert pool.apply(h.kwargs_echo, (1,), {'k': 'v'}) == \
            ((1,), {'k': 'v'})

    def test_apply_async_callback(self, pool):
        got = []
        r = pool.apply_async(h.square, (7,), callback=got.append)
        assert r.get(timeout=LONG) == 49
        assert got == [49]
        assert r.successful()

    def test_error_callback(self, pool):
        got = []
        r = pool.apply_async(h.raise_value_error, ('bad',),
                             callback=lambda v: got.append(('ok', v)),
                             error_callback=got.append)
        r.wait(LONG)
        assert r.ready() and not r.successful()
        assert len(got) == 1 and isinstance(got[0], ValueError)
        with pytest.raises(ValueError, match='bad'):
            r.get(timeout=0)

    def test_map_error_callback(self, pool):
        got = []
        r = pool.starmap_async(h.raise_on, [(1, 2), (2, 2), (3, 2)],
                               callback=got.append, error_callback=got.append)
        r.wait(LONG)
        assert len(got) == 1 and 'bad item 2' in str(got[0])
        assert not r.successful()

    def test_get_timeout_then_result(self, pool):
        gate = mpgo.Queue()
        r = pool.apply_async(h.block_on_event, (gate, 'done'))
        assert not r.ready()
        with pytest.raises(ValueError, match='not ready'):
            r.successful()
        with pytest.raises(mpgo.TimeoutError):
            r.get(timeout=0.1)
        r.wait(0.05)
        assert not r.ready()
        gate.put('go')
        assert r.get(timeout=LONG) == 'done'
        assert r.ready() and r.successful()

    def test_callback_has_run_before_wait_returns(self, pool):
        # A slow callback: were the event set before the callback, wait()
        # would return while the callback still sleeps.
        got = []

        def slow_callback(value):
            time.sleep(0.3)
            got.append(value)

        for _ in range(3):
            r = pool.apply_async(h.square, (3,), callback=slow_callback)
            r.wait(LONG)
            assert got[-1:] == [9]
            r = pool.map_async(h.square, [4], callback=slow_callback)
            r.wait(LONG)
            assert got[-1:] == [[16]]

    def test_raising_callback_does_not_kill_the_pool(self, pool, capfd):
        def bad_callback(value):
            raise RuntimeError('callback failed on purpose')

        r = pool.apply_async(h.square, (2,), callback=bad_callback)
        r.wait(LONG)
        assert r.ready() and r.get(timeout=0) == 4
        assert pool.map(h.square, range(5)) == [0, 1, 4, 9, 16]
        err = capfd.readouterr().err
        assert 'callback failed on purpose' in err

    def test_async_result_is_generic(self):
        assert mpool.AsyncResult is mpool.ApplyResult
        assert mpool.ApplyResult[int].__origin__ is mpool.ApplyResult


class TestExceptions:
    def test_remote_traceback_is_the_cause(self, pool):
        with pytest.raises(ValueError, match='^boom$') as info:
            pool.apply(h.raise_value_error, ('boom',))
        cause = info.value.__cause__
        assert isinstance(cause, mpool.RemoteTraceback)
        assert 'raise_value_error' in str(cause)
        assert 'ValueError: boom' in str(cause)
        assert str(cause).startswith('\n"""\n')

    def test_map_raises_the_first_error(self, pool):
        with pytest.raises(ValueError, match='bad item 3') as info:
            pool.starmap(h.raise_on, [(i, 3) for i in range(10)],
                         chunksize=1)
        assert isinstance(info.value.__cause__, mpool.RemoteTraceback)
        with pytest.raises(ValueError, match='bad item 5'):
            pool.starmap(h.raise_on, [(i, 5) for i in range(10)])

    def test_exception_with_traceback_round_trip(self):
        try:
            raise KeyError('k')
        except KeyError as e:
            wrapped = mpool.ExceptionWithTraceback(e, e.__traceback__)
        exc = pickle.loads(pickle.dumps(wrapped))
        assert isinstance(exc, KeyError)
        assert isinstance(exc.__cause__, mpool.RemoteTraceback)
        assert 'KeyError' in str(exc.__cause__)

    def test_worker_lost_error_pickles(self):
        e = mpool.WorkerLostError('lost', 123, -9)
        e2 = pickle.loads(pickle.dumps(e))
        assert (str(e2), e2.pid, e2.exitcode) == ('lost', 123, -9)
        assert issubclass(mpool.WorkerLostError, mpgo.ProcessError)
        assert issubclass(mpool.InitializerError, mpgo.ProcessError)


class TestLifecycle:
    def test_close_and_join(self):
        p = mpgo.Pool(2)
        r = p.starmap_async(h.sleep_then_return, [(i, 0.1) for i in range(4)])
        pids = pool_pids(p)
        p.close()
        with pytest.raises(ValueError, match='Pool not running'):
            p.apply(h.square, (1,))
        with pytest.raises(ValueError, match='Pool not running'):
            p.map(h.square, [1])
        p.join()
        # Work submitted before close() was done.
        assert r.get(timeout=0) == [0, 1, 2, 3]
        assert not any(pid_alive(pid) for pid in pids)
        assert mpgo.active_children() == []

    def test_close_finishes_queued_work(self):
        p = mpgo.Pool(2)
        results = [p.apply_async(h.sleep_then_return, (i, 0.05))
                   for i in range(8)]
        p.close()
        p.join()
        assert [r.get(timeout=0) for r in results] == list(range(8))

    def test_join_while_running_raises(self, pool):
        with pytest.raises(ValueError, match='still running'):
            pool.join()

    def test_terminate_leaves_no_children(self):
        p = mpgo.Pool(3)
        gate = mpgo.Queue()
        p.apply_async(h.block_on_event, (gate, 1))   # busy for ever
        assert p.map(h.square, range(4)) == [0, 1, 4, 9]
        pids = pool_pids(p)
        assert len(pids) == 3
        p.terminate()
        assert not any(pid_alive(pid) for pid in pids)
        assert mpgo.active_children() == []
        p.join()                 # allowed after terminate()
        with pytest.raises(ValueError, match='Pool not running'):
            p.apply_async(h.square, (1,))

    def test_context_manager_terminates(self):
        with mpgo.Pool(2) as p:
            assert p.map(h.square, range(3)) == [0, 1, 4]
            pids = pool_pids(p)
        assert p._state == mpool.TERMINATE
        assert not any(pid_alive(pid) for pid in pids)
        with pytest.raises(ValueError):
            with p:
                pass

    def test_unreferenced_pool_is_terminated(self):
        import gc
        import warnings
        p = mpgo.Pool(1)
        pid = pool_pids(p)[0]
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', ResourceWarning)
            del p
            gc.collect()
        assert wait_until(lambda: not pid_alive(pid))

    def test_constructor_checks(self):
        with pytest.raises(ValueError):
            mpgo.Pool(0)
        with pytest.raises(ValueError):
            mpgo.Pool(1, maxtasksperchild=0)
        with pytest.raises(ValueError):
            mpgo.Pool(1, maxtasksperchild='1')
        with pytest.raises(TypeError):
            mpgo.Pool(1, initializer=5)

    def test_default_size_is_cpu_count(self):
        p = mpgo.Pool()
        try:
            assert p._processes == os.cpu_count()
            assert len(p._pool) == os.cpu_count()
        finally:
            p.terminate()

    def test_workers_are_named_and_daemonic(self, pool):
        assert all('PoolWorker' in w.name and w.daemon for w in pool._pool)
        assert 'state=RUN' in repr(pool) and 'pool_size=2' in repr(pool)

    def test_pool_does_not_pickle(self, pool):
        with pytest.raises(NotImplementedError):
            pickle.dumps(pool)
        with pytest.raises(NotImplementedError):
            reduction.ForkingPickler.dumps(pool)

    def test_pool_from_a_context(self):
        ctx = mpgo.get_context('spawn')
        with ctx.Pool(1) as p:
            assert p.apply(h.square, (5,)) == 25
            assert p._ctx is ctx


class TestWorkerDeath:
    @pytest.mark.parametrize('round_', range(3))
    def test_sigkill_during_map_fails_only_that_task(self, tmp_path,
                                                     round_):
        p = mpgo.Pool(2)
        try:
            victim = 5
            tasks = [(i, str(tmp_path), victim, LONG) for i in range(20)]
            r = p.starmap_async(h.report_pid_then_sleep, tasks, chunksize=1)
            path = os.path.join(str(tmp_path), 'pid')
            assert wait_for_file(path, LONG)
            with open(path) as f:
                pid = int(f.read())
            assert pid in pool_pids(p)
            os.kill(pid, signal.SIGKILL)
            with pytest.raises(mpool.WorkerLostError) as info:
                r.get(timeout=LONG)
            e = info.value
            assert isinstance(e, mpgo.ProcessError)
            assert e.pid == pid and e.exitcode == -signal.SIGKILL
            assert str(pid) in str(e) and 'SIGKILL' in str(e)
            # The same pool runs the next map correctly, with a new worker.
            assert p.map(h.square, range(50)) == [x * x for x in range(50)]
            assert wait_until(lambda: len(p._pool) == 2)
            assert pid not in pool_pids(p)
        finally:
            p.terminate()

    def test_other_tasks_complete(self, tmp_path):
        # imap shows each task's outcome: only the victim's is lost.
        with mpgo.Pool(2) as p:
            victim = 7
            tasks = [(i, str(tmp_path), victim, LONG) for i in range(20)]
            it = p.imap(h.report_pid_then_sleep_star, tasks)
            path = os.path.join(str(tmp_path), 'pid')
            assert wait_for_file(path, LONG)
            with open(path) as f:
                os.kill(int(f.read()), signal.SIGKILL)
            got = []
            for _ in tasks:
                try:
                    got.append(it.next(timeout=LONG))
                except mpool.WorkerLostError:
                    got.append('lost')
            assert got == [i if i != victim else 'lost' for i in range(20)]

    def test_os_exit_in_a_task(self, pool):
        with pytest.raises(mpool.WorkerLostError,
                           match='exited with code 7') as info:
            pool.starmap(h.exit_on, [(i, 3, 7) for i in range(6)],
                         chunksize=1)
        assert info.value.exitcode == 7
        assert pool.map(h.square, range(4)) == [0, 1, 4, 9]

    def test_segfault_in_a_task(self, pool):
        r = pool.apply_async(h.segfault_on, (1, 1))
        with pytest.raises(mpool.WorkerLostError, match='SIGSEGV') as info:
            r.get(timeout=LONG)
        assert info.value.exitcode == -signal.SIGSEGV
        assert pool.apply(h.square, (3,)) == 9

    def test_system_exit_in_a_task(self, pool):
        with pytest.raises(mpool.WorkerLostError, match='exited with code 5'):
            pool.apply_async(h.raise_system_exit, (5,)).get(timeout=LONG)
        assert pool.apply(h.square, (3,)) == 9

    def test_every_worker_dies(self, pool):
        rs = [pool.apply_async(h.exit_on, (1, 1, 3)) for _ in range(4)]
        for r in rs:
            with pytest.raises(mpool.WorkerLostError):
                r.get(timeout=LONG)
        assert pool.map(h.square, range(10)) == [x * x for x in range(10)]

    def test_idle_worker_killed_is_replaced(self, pool):
        pid = pool_pids(pool)[0]
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda: pid not in pool_pids(pool)
                          and len(pool._pool) == 2)
        assert pool.map(h.square, range(10)) == [x * x for x in range(10)]


    def test_twenty_kills_in_a_row_on_one_pool(self, tmp_path):
        # Each time: map ends, with the error naming the killed worker, and
        # the same pool then runs the next map correctly.
        with mpgo.Pool(2) as p:
            for round_ in range(20):
                d = tmp_path / str(round_)
                d.mkdir()
                tasks = [(i, str(d), 3, LONG) for i in range(8)]
                r = p.starmap_async(h.report_pid_then_sleep, tasks,
                                    chunksize=1)
                path = os.path.join(str(d), 'pid')
                assert wait_for_file(path, LONG)
                with open(path) as f:
                    pid = int(f.read())
                os.kill(pid, signal.SIGKILL)
                with pytest.raises(mpool.WorkerLostError) as info:
                    r.get(timeout=LONG)
                assert info.value.pid == pid and str(pid) in str(info.value)
                assert p.map(h.square, range(20)) == [x * x for x in range(20)]

    def test_kills_at_random_moments_lose_one_task_each(self):
        # Workers killed at any point of their loop (taking a task, running
        # it, putting its result): each kill fails at most the one task its
        # worker had taken, every other task completes exactly once.
        import random
        rng = random.Random(1234)
        n, kills = 3000, 12
        with mpgo.Pool(2) as p:
            it = p.imap(h.nap_and_return, range(n))
            got = []
            done_kills = 0
            while len(got) < n:
                if done_kills < kills and len(got) >= (done_kills + 1) * 200:
                    pids = [x for x in pool_pids(p) if x]
                    if pids:
                        time.sleep(rng.random() * 0.003)
                        os.kill(rng.choice(pids), signal.SIGKILL)
                        done_kills += 1
                try:
                    got.append(it.next(timeout=LONG))
                except mpool.WorkerLostError:
                    got.append('lost')
            lost = [i for i, v in enumerate(got) if v == 'lost']
            assert len(lost) <= done_kills
            assert all(v == i * 3 for i, v in enumerate(got) if v != 'lost')
            assert done_kills == kills

    def test_workers_die_with_a_killed_parent(self, tmp_path):
        out = tmp_path / 'pids'
        script = tmp_path / 'parent.py'
        script.write_text(textwrap.dedent('''
            import os, sys, time
            import mpgo
            if __name__ == '__main__':
                p = mpgo.Pool(2)
                p.map(abs, range(4))
                with open(sys.argv[1] + '.tmp', 'w') as f:
                    f.write(' '.join(str(w.pid) for w in p._pool))
                os.replace(sys.argv[1] + '.tmp', sys.argv[1])
                time.sleep(600)
        '''))
        proc = subprocess.Popen([sys.executable, str(script), str(out)],
                                env=env_with_tests())
        try:
            assert wait_for_file(str(out), LONG)
            pids = [int(x) for x in out.read_text().split()]
            assert len(pids) == 2 and all(pid_alive(pid) for pid in pids)
        finally:
            proc.kill()
            proc.wait()
        assert all(wait_pid_gone(pid, LONG) for pid in pids)


class TestPicklingFailures:
    def test_unpicklable_argument(self, pool):
        got = []
        r = pool.apply_async(h.identity, (threading.Lock(),),
                             error_callback=got.append)
        with pytest.raises(TypeError, match='pickle'):
            r.get(timeout=LONG)
        assert len(got) == 1
        assert pool.apply(h.square, (4,)) == 16

    def test_unpicklable_function(self, pool):
        # A lambda pickles by value under 'fork'; one holding a lock does
        # not, under any start method.
        lock = threading.Lock()
        with pytest.raises(Exception, match='pickle|lambda'):
            pool.apply_async(lambda: lock).get(timeout=LONG)
        with pytest.raises(Exception, match='pickle|lambda'):
            pool.map(lambda x: (x, lock), range(3))
        assert pool.map(h.square, range(3)) == [0, 1, 4]

    def test_one_bad_chunk_in_a_map(self, pool):
        items = list(range(10))
        items[4] = threading.Lock()
        with pytest.raises(TypeError):
            pool.map(h.identity, items, chunksize=2)
        it = pool.imap(h.identity, items)
        got = []
        for _ in items:
            try:
                got.append(it.next(timeout=LONG))
            except TypeError:
                got.append('unpicklable')
        assert got == [0, 1, 2, 3, 'unpicklable', 5, 6, 7, 8, 9]

    def test_unpicklable_result(self, pool):
        with pytest.raises(mpool.MaybeEncodingError,
                           match='Error sending result') as info:
            pool.apply_async(h.return_unpicklable, (1,)).get(timeout=LONG)
        assert 'lock' in str(info.value)
        assert pool.apply(h.square, (4,)) == 16

    def test_unpicklable_exception(self, pool):
        with pytest.raises(mpool.MaybeEncodingError,
                           match='Error sending result'):
            pool.apply(h.raise_unpicklable, (1,))

    def test_result_that_cannot_be_unpickled_in_the_parent(self, pool):
        with pytest.raises(mpool.MaybeEncodingError,
                           match='cannot be unpickled'):
            pool.apply_async(h.raise_two_arg_error, (1,)).get(timeout=LONG)
        assert pool.apply(h.square, (4,)) == 16

    def test_task_that_cannot_be_unpickled_in_the_worker(self, pool):
        ghost = types.ModuleType('_mpgo_ghost_module')
        exec('def f(x):\n    return x\n', ghost.__dict__)
        sys.modules[ghost.__name__] = ghost
        try:
            with pytest.raises(ImportError) as info:
                pool.apply_async(ghost.f, (1,)).get(timeout=LONG)
        finally:
            del sys.modules[ghost.__name__]
        assert isinstance(info.value.__cause__, mpool.RemoteTraceback)
        assert pool.apply(h.square, (4,)) == 16


class TestInitializer:
    def test_initializer_runs_in_every_worker(self):
        with mpgo.Pool(2, initializer=h.init_set_global,
                       initargs=('ready',)) as p:
            assert p.map(h.get_global, range(8), chunksize=1) == \
                ['ready'] * 8

    def test_failing_initializer_breaks_the_pool(self, tmp_path):
        p = mpgo.Pool(2, initializer=h.init_fail_and_count,
                      initargs=(str(tmp_path),))
        try:
            with pytest.raises(mpool.InitializerError) as info:
                p.map(h.square, range(10))
            e = info.value
            assert isinstance(e, mpgo.ProcessError)
            assert 'init_fail_and_count' in str(e)
            assert isinstance(e.__cause__, ValueError)
            assert 'initializer failed on purpose' in str(e.__cause__)
            assert isinstance(e.__cause__.__cause__, mpool.RemoteTraceback)
            with pytest.raises(mpool.InitializerError):
                p.apply(h.square, (1,))
            with pytest.raises(mpool.InitializerError):
                list(p.imap(h.square, range(3)))
            # Both workers ran the initializer once; none was respawned.
            assert wait_until(lambda: not p._pool)
            assert len(os.listdir(str(tmp_path))) == 2
        finally:
            p.terminate()

    def test_workers_dying_before_ready_break_the_pool(self):
        with mpgo.Pool(1, initializer=h.init_exit, initargs=(3,)) as p:
            with pytest.raises(mpool.WorkerLostError,
                               match='before it was ready') as info:
                p.apply_async(h.square, (2,)).get(timeout=LONG)
            assert info.value.exitcode == 3

    def test_broken_pool_can_be_closed_and_joined(self, tmp_path):
        p = mpgo.Pool(1, initializer=h.init_fail_and_count,
                      initargs=(str(tmp_path),))
        r = p.map_async(h.square, range(3))
        p.close()
        p.join()
        with pytest.raises(mpool.InitializerError):
            r.get(timeout=0)


class TestNoReferencesKept:
    # CPython issue #29861: a pool keeps no task argument or result alive
    # once it is done with it.
    @pytest.mark.parametrize('kind', ['process', 'thread'])
    def test_arguments_and_results_released(self, kind):
        import gc
        import weakref
        make = mpgo.Pool if kind == 'process' else mpool.ThreadPool
        with make(2) as p:
            objs = [h.Counted() for _ in range(10)]
            refs = [weakref.ref(o) for o in objs]
            assert len(p.map(h.identity, objs)) == 10
            assert len(p.apply(h.identity, (objs,))) == 10
            del objs
            gc.collect()
            # (the result threads drop their last batch when the next comes)
            assert wait_until(lambda: set(wr() for wr in refs) == {None})
            assert wait_until(lambda: h.Counted.alive == 0)


class TestMaxTasksPerChild:
    def test_each_worker_runs_at_most_maxtasks(self):
        with mpgo.Pool(1, maxtasksperchild=2) as p:
            pids = p.map(h.pid_for, range(6), chunksize=1)
        assert len(set(pids)) == 3
        assert all(pids.count(pid) == 2 for pid in pids)

    def test_one_task_per_worker(self):
        with mpgo.Pool(2, maxtasksperchild=1) as p:
            pids = p.map(h.pid_for, range(6), chunksize=1)
            assert len(set(pids)) == 6
            assert wait_until(lambda: len(p._pool) == 2)
        assert mpgo.active_children() == []

    def test_close_before_the_tasks_are_done(self):
        # CPython issue #10332: workers that retire after close() are still
        # replaced until the queued tasks are done, and join() waits.
        p = mpgo.Pool(3, maxtasksperchild=1)
        results = [p.apply_async(h.sleep_then_return, (i, 0.3)) for i in range(6)]
        p.close()
        p.join()
        assert [r.get(timeout=0) for r in results] == list(range(6))


class TestMpgoObjectsAsArguments:
    def test_queue(self, pool):
        q = mpgo.Queue()
        assert sorted(pool.starmap(h.put_on, [(q, i) for i in range(6)])) == \
            list(range(6))
        assert sorted(q.get(timeout=LONG) for _ in range(6)) == \
            [('from task', i) for i in range(6)]

    def test_value_and_lock(self, pool):
        v = mpgo.Value('i', 0)
        lock = mpgo.Lock()
        assert pool.starmap(h.locked_increment, [(v, lock, 200)] * 4) == \
            [200] * 4
        assert v.value == 800

    def test_joinable_queue(self, pool):
        jq = mpgo.JoinableQueue()
        jq.put('task')
        assert pool.apply(h.joinable_task_done, (jq,)) is True
        jq.join()

    def test_simple_queue(self, pool):
        sq = mpgo.SimpleQueue()
        sq.put('item')
        assert pool.apply(h.get_from, (sq,)) == 'item'
        assert pool.apply(h.get_from, (sq,)) == 'empty'


class TestThreadPool:
    def test_api(self):
        with mpool.ThreadPool(3) as tp:
            # Nothing is pickled: lambdas and locks are fine.
            lock = threading.Lock()
            assert tp.map(lambda x: x + 1, range(10)) == list(range(1, 11))
            assert tp.apply(lambda l: l is lock, (lock,)) is True
            assert list(tp.imap(lambda x: -x, range(5))) == \
                [0, -1, -2, -3, -4]
            assert sorted(tp.imap_unordered(abs, range(-3, 3))) == \
                [0, 1, 1, 2, 2, 3]
            assert tp.starmap(h.add, [(1, 2)]) == [3]
            got = []
            tp.apply_async(h.square, (6,), callback=got.append).wait(LONG)
            assert got == [36]
            assert len(tp._pool) == 3
            assert all(isinstance(t, threading.Thread) for t in tp._pool)

    def test_exceptions_are_not_wrapped(self):
        with mpool.ThreadPool(2) as tp:
            with pytest.raises(ValueError, match='plain') as info:
                tp.apply(h.raise_value_error, ('plain',))
            assert not isinstance(info.value.__cause__,
                                  mpool.RemoteTraceback)

    def test_initializer(self):
        seen = []
        with mpool.ThreadPool(2, initializer=seen.append,
                              initargs=('init',)) as tp:
            tp.map(h.square, range(4))
            assert wait_until(lambda: len(seen) == 2)
        assert seen == ['init', 'init']

    def test_failing_initializer(self):
        def bad():
            raise KeyError('thread init')

        with mpool.ThreadPool(2, initializer=bad) as tp:
            with pytest.raises(mpool.InitializerError) as info:
                tp.map(h.square, range(4))
            assert isinstance(info.value.__cause__, KeyError)

    def test_task_ending_its_thread(self):
        with mpool.ThreadPool(2) as tp:
            with pytest.raises(mpool.WorkerLostError, match='SystemExit'):
                tp.apply_async(h.raise_system_exit, (3,)).get(timeout=LONG)
            assert tp.map(h.square, range(4)) == [0, 1, 4, 9]

    def test_close_join_terminate(self):
        tp = mpool.ThreadPool(2)
        r = tp.starmap_async(h.sleep_then_return,
                             [(i, 0.01) for i in range(4)])
        tp.close()
        tp.join()
        assert r.get(timeout=0) == [0, 1, 2, 3]
        assert not any(t.is_alive() for t in tp._pool)
        tp = mpool.ThreadPool(2)
        tp.terminate()
        tp.join()

    def test_dummy_pool_is_a_thread_pool(self):
        from mpgo import dummy
        tp = dummy.Pool(2)
        try:
            assert isinstance(tp, mpool.ThreadPool)
            assert tp.map(h.square, range(3)) == [0, 1, 4]
        finally:
            tp.terminate()
