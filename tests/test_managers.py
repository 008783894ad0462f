"""Tests of mpgo.managers: SyncManager's shared types used from spawned
children, custom registered types, connecting from another process,
get_server(), SharedMemoryManager, and clean shutdown."""
import copy
import os
import queue
import threading

import pytest

import mpgo
from mpgo import connection, managers
from mpgo.managers import (BaseManager, BaseProxy, RemoteError, SyncManager,
                           Token)

import _mgr_helpers as H

GUARD = 60


def _join(p):
    p.join(GUARD)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail('child %r did not exit' % p)


def _run(target, *args):
    p = mpgo.Process(target=target, args=args)
    p.start()
    _join(p)
    assert p.exitcode == 0
    return p


def _gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# conftest.py's no_leaks fixture fails any test that leaves a child alive.


@pytest.fixture
def manager():
    """A started SyncManager, shut down (and checked gone) after the test."""
    m = mpgo.Manager()
    yield m
    pid = m._process.pid
    m.shutdown()
    assert _gone(pid)


class TestSyncManagerTypes:
    def test_manager_is_a_started_sync_manager(self, manager):
        assert isinstance(manager, SyncManager)
        assert manager._process.is_alive()
        assert manager._process.pid != os.getpid()
        assert manager._process.name.startswith('SyncManager-')

    def test_list_shared_with_children(self, manager):
        lst = manager.list([0])
        procs = [mpgo.Process(target=H.append_to_list,
                              args=(lst, [i * 10 + j for j in range(5)]))
                 for i in range(1, 4)]
        for p in procs:
            p.start()
        for p in procs:
            _join(p)
            assert p.exitcode == 0
        assert sorted(lst) == sorted(
            [0] + [i * 10 + j for i in range(1, 4) for j in range(5)])
        assert len(lst) == 16

    def test_list_proxy_operations(self, manager):
        lst = manager.list(range(5))
        assert lst[1] == 1 and lst[-1] == 4
        assert lst[1:3] == [1, 2]
        lst[0] = 'zero'
        del lst[1]
        assert list(lst) == ['zero', 2, 3, 4]
        lst += [5]
        lst *= 2
        assert len(lst) == 10
        assert 3 in lst and 'nope' not in lst
        assert lst.count(3) == 2 and lst.index(3) == 2
        lst.remove('zero')
        assert lst.pop() == 5
        lst.reverse()
        assert lst[0] == 4
        assert str(lst) == str(lst._getvalue())
        assert copy.deepcopy(lst) == lst._getvalue()
        assert isinstance(lst, managers.ListProxy)
        with pytest.raises(IndexError):
            lst[100]
        with pytest.raises(ValueError):
            lst.index('absent')

    def test_dict_shared_with_child(self, manager):
        d = manager.dict(a=1)
        p = _run(H.fill_dict, d, 'k', [1, 2])
        assert d['k'] == [1, 2]
        assert d['pid-%d' % p.pid] == p.pid
        assert d['a'] == 1
        assert sorted(d.keys()) == sorted(['a', 'k', 'pid-%d' % p.pid])
        assert d.get('missing', 'dflt') == 'dflt'
        assert list(iter(d)) == list(d.keys())  # via the Iterator typeid
        assert d.copy() == dict(d.items())
        with pytest.raises(KeyError):
            d['missing']
        assert d.pop('a') == 1
        d.clear()
        assert len(d) == 0

    def test_namespace_shared_with_child(self, manager):
        ns = manager.Namespace(x=1, to_delete=True)
        _run(H.set_namespace, ns, 21)
        assert ns.x == 21 and ns.y == 42
        assert not hasattr(ns, 'to_delete')
        assert 'x=21' in repr(ns._getvalue())
        with pytest.raises(AttributeError):
            ns.missing

    def test_value_and_lock_shared_with_children(self, manager):
        v = manager.Value('i', 0)
        lock = manager.Lock()
        procs = [mpgo.Process(target=H.increment, args=(v, lock, 50))
                 for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            _join(p)
            assert p.exitcode == 0
        assert v.value == 150
        assert v.get() == 150
        v.set(3)
        assert v.value == 3

    def test_lock_proxy(self, manager):
        lock = manager.Lock()
        assert lock.acquire()
        assert lock.acquire(False) is False
        assert lock.acquire(True, 0.01) is False
        lock.release()
        with lock:
            assert lock.acquire(blocking=False) is False
        rlock = manager.RLock()
        with rlock:
            with rlock:
                pass
        with pytest.raises(RuntimeError):
            rlock.release()  # not owned: raised in the server, re-raised

    def test_queue_shared_with_child(self, manager):
        q = manager.Queue()
        _run(H.put_items, q, ['a', 'b', ('c', 1)])
        assert [q.get(timeout=GUARD) for _ in range(3)] == \
            ['a', 'b', ('c', 1)]
        with pytest.raises(queue.Empty):
            q.get_nowait()
        bounded = manager.Queue(1)
        bounded.put(1)
        with pytest.raises(queue.Full):
            bounded.put(2, timeout=0.01)

    def test_joinable_queue(self, manager):
        q = manager.JoinableQueue()
        out = manager.list()
        p = mpgo.Process(target=H.join_queue_worker, args=(q, out))
        p.start()
        for i in range(5):
            q.put(i)
        q.put(None)
        q.join()
        _join(p)
        assert list(out) == [0, 10, 20, 30, 40]

    def test_event_with_child(self, manager):
        start, done = manager.Event(), manager.Event()
        p = mpgo.Process(target=H.set_event_after_wait, args=(start, done))
        p.start()
        assert not done.is_set()
        start.set()
        assert done.wait(GUARD)
        _join(p)
        done.clear()
        assert not done.is_set()
        assert done.wait(0.01) is False

    def test_barrier_with_children(self, manager):
        barrier = manager.Barrier(3)
        out = manager.list()
        procs = [mpgo.Process(target=H.barrier_party, args=(barrier, out))
                 for _ in range(2)]
        for p in procs:
            p.start()
        mine = barrier.wait(GUARD)
        for p in procs:
            _join(p)
        assert sorted(list(out) + [mine]) == [0, 1, 2]
        assert barrier.parties == 3
        assert barrier.n_waiting == 0
        assert barrier.broken is False
        barrier.abort()
        assert barrier.broken is True
        with pytest.raises(threading.BrokenBarrierError):
            barrier.wait()

    def test_semaphores_and_condition(self, manager):
        sem = manager.Semaphore(2)
        assert sem.acquire() and sem.acquire()
        assert sem.acquire(False) is False
        sem.release()
        sem.release()
        bsem = manager.BoundedSemaphore(1)
        with pytest.raises(ValueError):
            bsem.release()
        cond = manager.Condition()
        with cond:
            assert cond.wait(0.01) is False
            cond.notify()
            cond.notify_all()
            assert cond.wait_for(lambda: True) is True
            assert cond.wait_for(lambda: False, 0.01) is False

    def test_array(self, manager):
        arr = manager.Array('i', [1, 2, 3])
        assert len(arr) == 3
        arr[1] = 20
        assert arr[1] == 20
        assert list(arr._getvalue()) == [1, 20, 3]

    def test_pool_runs_in_the_server(self, manager):
        with manager.Pool(2) as pool:
            assert isinstance(pool, managers.PoolProxy)
            assert pool.map(H.square, range(6)) == [0, 1, 4, 9, 16, 25]
            assert pool.apply(H.square, (3,)) == 9
            result = pool.apply_async(H.square, (7,))
            assert result.get(GUARD) == 49
            assert list(pool.imap(H.square, range(3))) == [0, 1, 4]
            assert sorted(pool.imap_unordered(H.square, range(3))) == \
                [0, 1, 4]
            assert pool.starmap(pow, [(2, 3), (3, 2)]) == [8, 9]

    def test_nested_proxies(self, manager):
        inner = manager.dict()
        outer = manager.list([inner])
        _run(H.use_nested, outer)
        assert outer[1] == 'child-was-here'
        assert isinstance(outer[0], BaseProxy)
        assert 'child' in outer[0]
        assert inner['child'] != os.getpid()

    def test_proxies_release_their_referents(self, manager):
        before = manager._number_of_objects()
        lst = manager.list(range(3))
        d = manager.dict()
        assert manager._number_of_objects() == before + 2
        del lst, d
        assert manager._number_of_objects() == before
        assert isinstance(manager._debug_info(), str)

    def test_proxy_pickles_within_a_process(self, manager):
        lst = manager.list([1])
        # within one process, a proxy unpickles to a working proxy
        import pickle
        from mpgo import reduction
        clone = pickle.loads(reduction.ForkingPickler.dumps(lst))
        clone.append(2)
        assert list(lst) == [1, 2]
        assert isinstance(lst._token, Token)
        assert 'typeid' in repr(lst._token)


class TestLifecycle:
    def test_context_manager_shuts_down(self):
        with mpgo.Manager() as m:
            proc = m._process
            pid = proc.pid
            lst = m.list([1])
            assert lst[0] == 1
        assert not proc.is_alive()
        assert proc.exitcode == 0
        assert _gone(pid)
        assert mpgo.active_children() == []
        # the manager cannot be used or restarted any more
        with pytest.raises(mpgo.ProcessError, match='shut down'):
            m.start()
        with pytest.raises(mpgo.ProcessError, match='shut down'):
            m.__enter__()
        with pytest.raises(AssertionError):
            m.list()

    def test_explicit_start_and_shutdown(self):
        m = SyncManager()
        m.start()
        with pytest.raises(mpgo.ProcessError, match='Already started'):
            m.start()
        with pytest.raises(mpgo.ProcessError, match='Already started'):
            m.get_server()
        pid = m._process.pid
        assert not _gone(pid)
        m.shutdown()
        m.shutdown()  # a Finalize: a second call does nothing
        assert _gone(pid)
        m.join()

    def test_start_with_initializer(self, tmp_path):
        marker = str(tmp_path / 'marker')
        m = SyncManager()
        with pytest.raises(TypeError):
            m.start(initializer=42)
        m.start(H.init_marker, (marker,))
        try:
            with open(marker) as f:
                assert int(f.read()) == m._process.pid
        finally:
            m.shutdown()

    def test_server_ignores_sigint(self):
        import signal
        with mpgo.Manager() as m:
            lst = m.list()
            os.kill(m._process.pid, signal.SIGINT)
            lst.append(1)  # still serving
            assert list(lst) == [1]
        assert m._process is None or not m._process.is_alive()

    def test_killed_server_is_noticed(self):
        m = mpgo.Manager()
        lst = m.list()
        m._process.kill()
        m._process.join(GUARD)
        # A killed server cannot remove its socket, nor its temp dir when it
        # made one (it uses ours if we had one when it was started).
        os.unlink(m.address)
        tempdir = os.path.dirname(m.address)
        if tempdir != mpgo.current_process()._config.get('tempdir'):
            os.rmdir(tempdir)
        with pytest.raises((EOFError, OSError)):
            lst.append(1)
        m.shutdown()
        assert not m._process.is_alive()


class TestCustomManager:
    def test_registered_type_with_autoproxy(self):
        with H.MyManager() as m:
            c = m.Counter(5)
            assert c.increment() == 6
            assert c.increment(by=4) == 10
            assert c.get() == 10
            assert c.pid() == m._process.pid  # lives in the server
            assert not hasattr(c, '_private')
            with pytest.raises(KeyError, match='from the server'):
                c.fail()
            assert c._exposed_ == tuple(sorted(
                ('clone', 'fail', 'get', 'increment', 'pid')))

    def test_registered_type_shared_with_children(self):
        with H.MyManager() as m:
            c = m.TypedCounter()
            assert type(c) is H.CounterProxy
            procs = [mpgo.Process(target=H.increment_counter, args=(c, 20))
                     for _ in range(3)]
            for p in procs:
                p.start()
            for p in procs:
                _join(p)
                assert p.exitcode == 0
            assert c.get() == 60

    def test_unexposed_method_is_refused(self):
        with H.MyManager() as m:
            c = m.TypedCounter()
            with pytest.raises(RemoteError, match='not in exposed'):
                c._callmethod('fail')

    def test_method_to_typeid_returns_a_proxy(self):
        with H.MyManager() as m:
            c = m.ClonableCounter(7)
            clone = c.clone()
            assert type(clone) is H.CounterProxy
            assert clone.increment() == 8
            assert c.get() == 7

    def test_register_copies_the_registry(self):
        assert 'Counter' in H.MyManager._registry
        assert 'Counter' not in BaseManager._registry
        assert 'list' not in H.MyManager._registry
        assert 'list' in SyncManager._registry
        assert callable(H.MyManager.Counter)
        assert not hasattr(H.MyManager, 'ClonedCounter')

    def test_remote_error_text(self):
        err = RemoteError('traceback text\n')
        assert 'traceback text' in str(err)
        assert str(err).startswith('\n' + '-' * 75)


class TestSecondProcess:
    def test_connect_from_another_process(self):
        authkey = b'queue secret'
        m = H.QueueManager(address=('127.0.0.1', 0), authkey=authkey)
        m.start()
        try:
            assert isinstance(m.address, tuple) and m.address[1] != 0
            _run(H.connect_and_put, m.address, authkey, ['x', 'y'])
            q = m.get_queue()
            assert q.get(timeout=GUARD) == 'x'
            assert q.get(timeout=GUARD) == 'y'
            # another client in this process, through connect()
            client = H.QueueClientManager(address=m.address, authkey=authkey)
            client.connect()
            client.get_queue().put('z')
            assert q.get(timeout=GUARD) == 'z'
        finally:
            m.shutdown()

    def test_connect_with_wrong_authkey(self):
        m = H.QueueManager(address=('127.0.0.1', 0), authkey=b'right')
        m.start()
        try:
            client = H.QueueClientManager(address=m.address, authkey=b'bad')
            with pytest.raises(mpgo.AuthenticationError):
                client.connect()
        finally:
            m.shutdown()

    def test_get_server_in_a_child(self):
        authkey = b'served'
        addr_r, addr_w = mpgo.Pipe(False)
        p = mpgo.Process(target=H.serve_queue_manager,
                         args=(authkey, addr_w))
        p.start()
        addr_w.close()
        try:
            assert addr_r.poll(GUARD)
            address = addr_r.recv()
            client = H.QueueClientManager(address=address, authkey=authkey)
            client.connect()
            q = client.get_queue()
            q.put('hello')
            assert q.get() == 'hello'
            del q
            with connection.Client(address, authkey=authkey) as c:
                managers.dispatch(c, None, 'shutdown')
            _join(p)
            assert p.exitcode == 0
        finally:
            addr_r.close()
            if p.is_alive():
                p.kill()
                p.join()


class TestSharedMemoryManager:
    def test_segments_are_unlinked_at_shutdown(self):
        from mpgo.managers import SharedMemoryManager
        with SharedMemoryManager() as smm:
            shm = smm.SharedMemory(64)
            sl = smm.ShareableList([1, 'text', 2.5])
            names = [shm.name, sl.shm.name]
            for name in names:
                assert os.path.exists('/dev/shm/' + name)
            _run(H.shm_write, shm, b'from child')
            assert bytes(shm.buf[:10]) == b'from child'
            _run(H.sl_update, sl)
            assert list(sl) == [2, 'changed', 2.5]
            shm.close()
            sl.shm.close()
        for name in names:
            assert not os.path.exists('/dev/shm/' + name)
