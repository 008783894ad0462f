"""Queue, JoinableQueue and SimpleQueue, within a process and across
processes (mpgo/queues.py)."""

import pickle
import queue
import threading

import pytest

import mpgo
from mpgo import queues, reduction

import _pool_helpers as h

# Every blocking call in these tests has a generous timeout, so that a bug
# fails the test instead of hanging the run.
LONG = 60


def start(target, *args):
    p = mpgo.Process(target=target, args=args)
    p.start()
    return p


def join_ok(*procs):
    for p in procs:
        p.join(LONG)
        assert p.exitcode == 0, (p, p.exitcode)


def unpicklable():
    return threading.Lock()


class TestQueueInOneProcess:
    def test_fifo(self):
        q = mpgo.Queue()
        for i in range(100):
            q.put(i)
        assert [q.get(timeout=LONG) for _ in range(100)] == list(range(100))

    def test_objects_round_trip(self):
        q = mpgo.Queue()
        items = [None, 1.5, 'text', b'bytes', (1, [2, {3: 4}]),
                 b'x' * (1 << 20)]
        for item in items:
            q.put(item)
        assert [q.get(timeout=LONG) for _ in items] == items

    def test_get_nowait_and_timeout_on_empty(self):
        q = mpgo.Queue()
        with pytest.raises(queue.Empty):
            q.get_nowait()
        with pytest.raises(queue.Empty):
            q.get(block=False)
        with pytest.raises(queue.Empty):
            q.get(timeout=0.1)
        with pytest.raises(queue.Empty):
            q.get(True, 0)

    def test_put_nowait_and_timeout_on_full(self):
        q = mpgo.Queue(maxsize=2)
        q.put_nowait(1)
        q.put(2, timeout=LONG)
        assert q.full()
        with pytest.raises(queue.Full):
            q.put_nowait(3)
        with pytest.raises(queue.Full):
            q.put(3, block=False)
        with pytest.raises(queue.Full):
            q.put(3, timeout=0.1)
        assert q.get(timeout=LONG) == 1
        assert not q.full()
        q.put_nowait(3)
        assert [q.get(timeout=LONG), q.get(timeout=LONG)] == [2, 3]

    def test_blocked_put_proceeds_when_room_is_made(self):
        q = mpgo.Queue(maxsize=1)
        q.put('first')
        done = threading.Event()

        def putter():
            q.put('second', timeout=LONG)
            done.set()

        t = threading.Thread(target=putter)
        t.start()
        try:
            assert not done.wait(0.2)      # it is blocked while full
            assert q.get(timeout=LONG) == 'first'
            assert done.wait(LONG)
            assert q.get(timeout=LONG) == 'second'
        finally:
            t.join(LONG)

    def test_blocked_get_proceeds_when_an_item_comes(self):
        q = mpgo.Queue()
        got = []
        t = threading.Thread(target=lambda: got.append(q.get(timeout=LONG)))
        t.start()
        q.put('item')
        t.join(LONG)
        assert got == ['item']

    def test_qsize_empty_full(self):
        q = mpgo.Queue(maxsize=3)
        assert (q.qsize(), q.empty(), q.full()) == (0, True, False)
        q.put('a')
        # Unlike CPython, not empty as soon as put() returns.
        assert (q.qsize(), q.empty(), q.full()) == (1, False, False)
        q.put('b')
        q.put('c')
        assert (q.qsize(), q.empty(), q.full()) == (3, False, True)
        q.get(timeout=LONG)
        assert (q.qsize(), q.full()) == (2, False)
        q.get(timeout=LONG)
        q.get(timeout=LONG)
        assert (q.qsize(), q.empty()) == (0, True)

    def test_unbounded_qsize(self):
        q = mpgo.Queue()
        for i in range(50):
            q.put(i)
        assert q.qsize() == 50 and not q.full()

    def test_unpicklable_put_raises_and_leaves_the_queue_intact(self):
        q = mpgo.Queue(maxsize=2)
        q.put('before')
        with pytest.raises(TypeError, match='pickle'):
            q.put(unpicklable())
        with pytest.raises(Exception):
            q.put(lambda: None)
        # The failed puts took no slot and lost nothing.
        assert q.qsize() == 1 and not q.full()
        q.put('after')
        assert q.full()
        with pytest.raises(TypeError):
            q.put(unpicklable(), timeout=LONG)   # full: fails at once
        assert [q.get(timeout=LONG), q.get(timeout=LONG)] == \
            ['before', 'after']
        assert q.empty()

    def test_put_pickles_at_the_time_of_the_call(self):
        q = mpgo.Queue()
        item = [1]
        q.put(item)
        item.append(2)           # too late: put() has pickled it
        assert q.get(timeout=LONG) == [1]

    def test_close(self):
        q = mpgo.Queue()
        q.put(1)
        with pytest.raises(AssertionError):
            q.join_thread()      # not closed yet
        q.close()
        q.join_thread()          # the feeder thread has flushed and ended
        with pytest.raises(ValueError, match='is closed'):
            q.put(2)
        with pytest.raises(ValueError, match='is closed'):
            q.get()
        q.close()                # twice is fine

    def test_close_releases_fds_at_once(self):
        import os
        def fds():
            return len(os.listdir('/proc/self/fd'))
        before = fds()
        qs = [cls() for cls in (mpgo.Queue, mpgo.SimpleQueue) for _ in range(10)]
        assert fds() > before
        for q in qs:
            q.put(1)
            q.close()
        # qs still holds every queue: close() itself let go of the fds.
        assert fds() == before
        # A JoinableQueue keeps its ring (one fd) for task_done() and join().
        jqs = [mpgo.JoinableQueue() for _ in range(10)]
        for q in jqs:
            q.put(1)
            q.close()
        assert fds() == before + len(jqs)
        del q, jqs
        assert fds() == before

    def test_empty_after_close(self):
        # As CPython 3.13's test_closed_queue_empty_exceptions: an unused
        # closed queue is empty, a used one raises OSError.
        for cls in (mpgo.Queue, mpgo.JoinableQueue):
            q = cls()
            q.close()
            q.join_thread()
            assert q.empty()
            q = cls()
            q.put('foo')
            q.close()
            q.join_thread()
            with pytest.raises(OSError, match='is closed'):
                q.empty()

    def test_joinable_after_close(self):
        # task_done() and join() do not need the queue open, as in CPython.
        q = mpgo.JoinableQueue()
        q.put(1)
        assert q.get(timeout=LONG) == 1
        q.close()
        q.task_done()
        q.join()
        assert q.qsize() == 0

    def test_join_thread_without_puts(self):
        q = mpgo.Queue()
        q.close()
        q.join_thread()

    def test_cancel_join_thread(self):
        q = mpgo.Queue()
        q.cancel_join_thread()
        q.put(1)
        assert q.get(timeout=LONG) == 1
        q.close()
        q.join_thread()          # does not wait

    def test_module_exports(self):
        assert queues.__all__ == ['Queue', 'SimpleQueue', 'JoinableQueue']
        assert isinstance(mpgo.Queue(), queues.Queue)
        assert isinstance(mpgo.JoinableQueue(), queues.Queue)
        assert isinstance(mpgo.SimpleQueue(), queues.SimpleQueue)
        assert queues.SimpleQueue[int].__origin__ is queues.SimpleQueue


class TestQueueAcrossProcesses:
    def test_child_puts_parent_drains_after_join(self):
        # The seed tutorial pattern: join the child, then drain with
        # `while not q.empty()`; every item must be there.
        q = mpgo.Queue()
        p = start(h.put_items, q, list(range(20)))
        join_ok(p)
        got = []
        while not q.empty():
            got.append(q.get())
        assert got == list(range(20))

    def test_parent_puts_child_gets(self):
        q, out = mpgo.Queue(), mpgo.Queue()
        p = start(h.get_items, q, 5, out)
        for i in range(5):
            q.put(('item', i))
        assert out.get(timeout=LONG) == [('item', i) for i in range(5)]
        join_ok(p)

    def test_qsize_counts_what_a_child_put(self):
        q = mpgo.Queue()
        join_ok(start(h.put_items, q, ['a', 'b', 'c']))
        assert q.qsize() == 3
        assert [q.get(timeout=LONG) for _ in range(3)] == ['a', 'b', 'c']
        assert q.qsize() == 0

    def test_bounded_queue_across_processes(self):
        q = mpgo.Queue(maxsize=2)
        p = start(h.put_items, q, list(range(10)))
        got = [q.get(timeout=LONG) for _ in range(10)]
        join_ok(p)
        assert got == list(range(10))

    def test_child_exits_without_flushing_after_cancel_join_thread(self):
        # More than the pipe or ring holds at once could block the child's
        # exit; cancel_join_thread() lets it exit anyway.
        q = mpgo.Queue()
        p = start(h.put_many_bytes_and_cancel, q, 1 << 16, 64)
        p.join(LONG)
        assert p.exitcode == 0

    def test_queue_sent_inside_a_queue(self):
        # Pickled long after the child started: no assert_spawning().
        carrier, inner = mpgo.Queue(), mpgo.Queue()
        p = start(h.relay_queue_from_queue, carrier, 3)
        carrier.put(inner)
        assert [inner.get(timeout=LONG) for _ in range(3)] == \
            [('relayed', i) for i in range(3)]
        join_ok(p)

    def test_queue_pickles_outside_spawning(self):
        q = mpgo.Queue()
        clone = pickle.loads(reduction.ForkingPickler.dumps(q))
        clone.put('through the clone')
        assert q.get(timeout=LONG) == 'through the clone'
        q.put('to the clone')
        assert clone.get(timeout=LONG) == 'to the clone'

    def test_get_many_of_big_messages_while_others_put(self):
        # A first message above get_many's buffer is read alone, in a
        # second get; with putters growing the ring that get found the lock
        # held now and then, and a blocking get_many raised Empty.
        q = mpgo.Queue()
        ps = [mpgo.Process(target=h.put_big, args=(q, 300000, 300))
              for _ in range(6)]
        for p in ps:
            p.start()
        got = []
        while len(got) < 1800:
            got += q.get_many(10, timeout=LONG)
        for p in ps:
            p.join(LONG)
        assert sorted(len(m) for m in got) == [300000] * 1800
        assert all(p.exitcode == 0 for p in ps)

    @pytest.mark.stress
    def test_four_producers_four_consumers_exactly_once(self):
        q, out = mpgo.Queue(maxsize=64), mpgo.Queue()
        per_producer = 2000
        producers = [start(h.produce_range, q, k * per_producer, per_producer)
                     for k in range(4)]
        consumers = [start(h.consume_until_none, q, out) for _ in range(4)]
        join_ok(*producers)
        for _ in consumers:
            q.put(None)
        reports = [out.get(timeout=LONG) for _ in consumers]
        join_ok(*consumers)
        total = 4 * per_producer
        assert sum(count for count, _, _ in reports) == total
        assert sum(s for _, s, _ in reports) == total * (total - 1) // 2
        everything = sorted(x for _, _, items in reports for x in items)
        assert everything == list(range(total))
        # Each consumer saw each producer's items in order.
        for _, _, items in reports:
            for k in range(4):
                mine = [x for x in items
                        if k * per_producer <= x < (k + 1) * per_producer]
                assert mine == sorted(mine)


class TestJoinableQueue:
    def test_task_done_too_many_times(self):
        jq = mpgo.JoinableQueue()
        with pytest.raises(ValueError,
                           match=r'^task_done\(\) called too many times$'):
            jq.task_done()
        jq.put(1)
        jq.get(timeout=LONG)
        jq.task_done()
        with pytest.raises(ValueError, match='too many times'):
            jq.task_done()

    def test_join_returns_at_once_without_tasks(self):
        jq = mpgo.JoinableQueue()
        jq.join()

    def test_join_waits_for_every_task_done(self):
        jq, out = mpgo.JoinableQueue(), mpgo.Queue()
        n = 10
        for i in range(n):
            jq.put(i)
        p = start(h.consume_joinable, jq, out, n)
        jq.join()
        # consume_joinable puts each result before its task_done(): all
        # results are there once join() returns.
        assert sorted(out.get(timeout=LONG) for _ in range(n)) == \
            [2 * i for i in range(n)]
        join_ok(p)

    def test_join_in_a_thread_wakes_on_last_task_done(self):
        jq = mpgo.JoinableQueue()
        jq.put('a')
        jq.put('b')
        joined = threading.Event()
        t = threading.Thread(target=lambda: (jq.join(), joined.set()))
        t.start()
        try:
            jq.get(timeout=LONG)
            jq.task_done()
            assert not joined.wait(0.2)    # one task is still unfinished
            jq.get(timeout=LONG)
            jq.task_done()
            assert joined.wait(LONG)
        finally:
            t.join(LONG)

    def test_full_api_and_bounded(self):
        jq = mpgo.JoinableQueue(maxsize=1)
        jq.put_nowait('x')
        assert jq.full() and jq.qsize() == 1
        with pytest.raises(queue.Full):
            jq.put('y', timeout=0.05)
        with pytest.raises(TypeError):
            jq.put(unpicklable())      # at once, though the queue is full
        assert jq.get_nowait() == 'x'
        jq.task_done()
        jq.join()
        with pytest.raises(queue.Empty):
            jq.get(timeout=0.05)


class TestSimpleQueue:
    def test_put_get_empty(self):
        sq = mpgo.SimpleQueue()
        assert sq.empty()
        sq.put(('a', 1))
        assert not sq.empty()
        assert sq.get() == ('a', 1)
        assert sq.empty()

    def test_across_processes(self):
        inq, outq = mpgo.SimpleQueue(), mpgo.SimpleQueue()
        p = start(h.simple_queue_echo, inq, outq)
        for i in range(5):
            inq.put(i)
        inq.put(None)
        assert [outq.get() for _ in range(5)] == [0, 2, 4, 6, 8]
        join_ok(p)

    def test_unpicklable_put_raises(self):
        sq = mpgo.SimpleQueue()
        with pytest.raises(TypeError):
            sq.put(unpicklable())
        sq.put('still fine')
        assert sq.get() == 'still fine'
        assert sq.empty()

    def test_close(self):
        sq = mpgo.SimpleQueue()
        sq.close()
        with pytest.raises(OSError):
            sq.put(1)

    def test_pickles_outside_spawning(self):
        sq = mpgo.SimpleQueue()
        clone = pickle.loads(reduction.ForkingPickler.dumps(sq))
        clone.put('x')
        assert sq.get() == 'x'


class TestFeederErrorHook:
    '''A subclass overriding _on_queue_feeder_error (as
    concurrent.futures does) is told about unpicklable items instead of
    put() raising, as with CPython, whose feeder thread calls it.'''

    def test_hook_called_instead_of_raising(self):
        calls = []

        class HookedQueue(queues.Queue):
            def _on_queue_feeder_error(self, e, obj):
                calls.append((type(e), obj))

        q = HookedQueue(maxsize=1, ctx=mpgo.get_context())
        bad = unpicklable()
        q.put(bad)
        assert calls == [(TypeError, bad)]
        assert q.qsize() == 0 and not q.full()
        q.put('good')
        assert q.get(timeout=LONG) == 'good'
