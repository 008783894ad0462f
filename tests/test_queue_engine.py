"""What the shared-memory ring adds to Queue beyond CPython's semantics."""
import os
import signal
import time

import pytest

import mpgo
from mpgo import queues

import _queue_helpers as h


class Unpicklable:
    def __reduce__(self):
        raise TypeError("cannot pickle this")


def test_unpicklable_put_raises_and_queue_is_intact():
    q = mpgo.Queue()
    q.put(1)
    with pytest.raises(TypeError, match="cannot pickle"):
        q.put(Unpicklable())
    q.put(2)
    assert q.qsize() == 2
    assert [q.get(), q.get()] == [1, 2]


def test_items_put_by_an_exiting_process_are_all_there():
    q = mpgo.Queue()
    p = mpgo.Process(target=h.put_then_exit, args=(q, 1000))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    got = []
    while not q.empty():
        got.append(q.get())
    assert got == list(range(1000))


def test_join_before_drain_does_not_deadlock():
    q = mpgo.Queue()
    p = mpgo.Process(target=h.stream, args=(q, 1, 20000))
    p.start()
    p.join(60)  # CPython deadlocks here: its feeder waits for room in a pipe
    assert p.exitcode == 0 and q.qsize() == 20000


def test_batches_and_raw_bytes():
    q = mpgo.Queue()
    assert q.put_many([1, "two", (3,)]) == 3
    assert q.get_many(10) == [1, "two", (3,)]
    q.put_bytes(b"raw")
    assert q.get_bytes() == b"raw"
    with pytest.raises(mpgo.queues.Empty):
        q.get_many(5, timeout=0.05)


def test_bounded_put_many_times_out():
    q = mpgo.Queue(2)
    with pytest.raises(mpgo.queues.Full):
        q.put_many([1, 2, 3], timeout=0.05)
    assert q.qsize() == 2


def test_killed_producer_leaves_queue_usable():
    q = mpgo.Queue()
    for round in range(5):
        p = mpgo.Process(target=h.stream, args=(q, round, 10**7))
        p.start()
        deadline = time.monotonic() + 30
        while q.qsize() < 100 and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.003 * round)  # kill it at a different point each time
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
        seen = -1
        while True:
            try:
                pid, i, blob = q.get(timeout=0.2)
            except mpgo.queues.Empty:
                break
            # every item is whole and in order
            assert pid == round and i == seen + 1 and blob == b"x" * (i % 200)
            seen = i
        assert seen >= 0
    q.put("still works")
    assert q.get(timeout=5) == "still works"


def test_killed_consumer_does_not_block_others():
    q = mpgo.Queue()
    out = mpgo.RawValue("q", 0)
    for i in range(1000):
        q.put(1)
    p = mpgo.Process(target=h.consume, args=(q, 10**9, out))
    p.start()
    time.sleep(0.3)
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    q.put(41)
    q.put(1)
    # The dead consumer took some items (at most one of them lost in flight);
    # the survivor still gets what is left and what comes next.
    rest = []
    while True:
        try:
            rest.append(q.get(timeout=0.5))
        except mpgo.queues.Empty:
            break
    assert rest[-2:] == [41, 1]


def test_idle_getter_burns_no_cpu():
    q = mpgo.Queue()
    out = mpgo.RawValue("d", -1.0)
    p = mpgo.Process(target=h.blocked_get, args=(q, out))
    p.start()
    p.join(30)
    # 3 s blocked in get(): less than 1% of it on the CPU
    assert 0 <= out.value < 0.03, out.value


@pytest.mark.slow
def test_one_gigabyte_message():
    q = mpgo.Queue()
    big = bytes(1 << 30)
    q.put_bytes(big)
    del big
    got = q.get_bytes(timeout=60)
    assert len(got) == 1 << 30 and got.count(0) == len(got)


def test_put_get_arguments_as_cpython():
    q = mpgo.Queue()
    q.put(obj=1, block=True, timeout=None)
    q.put(2, False)
    q.put(3, timeout=-1)  # a negative timeout means "do not wait", as CPython
    assert q.get(block=True, timeout=5) == 1
    assert q.get(False) == 2
    assert q.get(timeout=-1) == 3
    with pytest.raises(TypeError):
        q.put(1, True, None, "extra")
    with pytest.raises(TypeError):
        q.get(flag=True)
    with pytest.raises(TypeError):
        q.put()


def test_closed_queue_refuses_put_and_get():
    q = mpgo.Queue()
    q.put(1)
    q.close()
    with pytest.raises(ValueError, match="is closed"):
        q.put(2)
    with pytest.raises(ValueError, match="is closed"):
        q.get()
    q.join_thread()


class CountingQueue(queues.Queue):
    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.puts = 0

    def put(self, obj, block=True, timeout=None):
        self.puts += 1
        super().put(obj, block, timeout)


def test_subclass_overrides_are_honoured():
    q = CountingQueue(ctx=mpgo.get_context())
    q.put("a")
    q.put("b")
    assert q.puts == 2
    assert [q.get(), q.get()] == ["a", "b"]


def test_big_bytes_travel_raw_and_other_objects_pickled():
    q = mpgo.Queue()
    big = b"\0" * (1 << 20)  # ends in the raw tag byte itself
    q.put(big)
    q.put(bytearray(b"ba"))
    q.put(b"small\0")
    assert q.get() == big
    assert q.get() == bytearray(b"ba")
    assert q.get() == b"small\0"
