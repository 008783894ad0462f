"""The private parts of CPython's multiprocessing that libraries reach for
(loky, joblib, pebble, concurrent.futures), with CPython's meaning; what
cannot mean it fails loudly."""

import os
import sys

import pytest

import mpgo
from mpgo import heap, queues, util
from mpgo.pool import Pool

import _private_helpers as H

GUARD = 60


def test_sentinel_and_queue_attributes():
    assert queues._sentinel is not None
    q = mpgo.Queue()
    assert q._opid == os.getpid() and q._ignore_epipe is False
    assert callable(q._terminate_broken)
    q.close()


def test_queue_subclass_with_its_own_feeder_across_processes():
    q = H.TaggingQueue(tag='t1')
    assert type(q)._feeder
    for name in ('_rlock', '_wlock', '_sem', '_buffer', '_notempty',
                 '_send_bytes', '_recv_bytes', '_poll'):
        assert hasattr(q, name), name
    p = mpgo.Process(target=H.put_in, args=(q, [1, 2, 3]))
    p.start()
    got = [q.get(timeout=GUARD) for _ in range(3)]
    p.join(GUARD)
    assert p.exitcode == 0
    assert got == [('t1', 1), ('t1', 2), ('t1', 3)]
    q.put('here')
    assert q.get(timeout=GUARD) == ('t1', 'here')
    assert q.qsize() == 0 and q.empty()
    q.close()
    q.join_thread()


def test_pool_subclass_setup_queues_is_used():
    counter = mpgo.Value('i', 0)
    with H.CountingPool(2, counter) as pool:
        assert pool._classic
        res = pool.map(H.pid_of, range(10))
        assert [x for x, _ in res] == list(range(10))
        assert all(pid != os.getpid() for _, pid in res)
        assert pool.apply(H.pid_of, (5,))[0] == 5
    # every task (5 chunks, 1 apply) and its result went through the
    # subclass's queues
    assert counter.value >= 2 * 6


def test_pool_over_a_foreign_process_class_fails_as_cpython():
    from unittest import mock
    started = []

    class FailingProcess:
        def __init__(self, **kwargs):
            self.name, self.exitcode, self.state = 'Fake', None, None
            started.append(self)

        def start(self):
            if len(started) > 2:
                raise OSError('induced')
            self.state = 'started'

        def terminate(self):
            self.state = 'stopped'

        def join(self):
            pass

        def is_alive(self):
            return self.state == 'started'

    with pytest.raises(OSError, match='induced'):
        Pool(4, context=mock.MagicMock(Process=FailingProcess))
    assert not any(p.is_alive() for p in started)


def test_pool_del_after_a_failed_subclass_init():
    class Broken(Pool):
        def __init__(self):
            raise ValueError('before super().__init__')

    with pytest.raises(ValueError):
        Broken()
    Pool.__del__(Pool.__new__(Pool))    # no _state: nothing to warn about


def test_heap_internals_fail_loudly():
    with pytest.raises(AttributeError, match='engine'):
        heap.BufferWrapper._heap
    with pytest.raises(AttributeError, match='engine'):
        heap.Heap


def test_spawnv_passfds():
    r, w = os.pipe()
    pid = util.spawnv_passfds(sys.executable, [sys.executable, '-c',
                              'import os; os.write(%d, b"hi")' % w], [w])
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert os.read(r, 2) == b'hi'
    os.close(r)
