"""Large buffers through queues and pipes with pickle protocol 5, out of
band (mpgo.reduction.dumps_msg / oob_loads, Queue.put_parts)."""

import pickle
import queue
import threading

import pytest

np = pytest.importorskip("numpy")

import mpgo
from mpgo import queues, reduction
from mpgo._engine import fast

import _oob_helpers as h

LONG = 60
OOB_TAG = bytes([fast.OOB_TAG])


def start(target, *args):
    p = mpgo.Process(target=target, args=args)
    p.start()
    return p


def join_ok(p):
    p.join(LONG)
    assert p.exitcode == 0, (p, p.exitcode)


def expected_writable(name, obj):
    # Only the read-only original comes back read-only.
    return [name != 'readonly'] * len(h.arrays(obj))


def landing_of(arr):
    """The type name of the memory an array received out of band lives in."""
    base = arr
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return type(base.obj).__name__ if isinstance(base, memoryview) else None


def check_round_trip(results, sent):
    for (name, obj), (rname, report, back) in zip(sent, results):
        assert rname == name
        ok, writable, tname = report
        assert ok, name                              # child got it intact
        assert tname == type(obj).__name__
        assert writable == expected_writable(name, obj), name
        assert h.same(obj, back), name               # and back again
        assert [a.flags.writeable for a in h.arrays(back)] == \
            expected_writable(name, obj), name


class TestAcrossProcesses:
    def test_queue(self):
        sent = h.payloads()
        qin, qout = mpgo.Queue(), mpgo.Queue()
        p = start(h.echo_queue, qin, qout, len(sent))
        for item in sent:
            qin.put(item)
        results = [qout.get(timeout=LONG) for _ in sent]
        join_ok(p)
        check_round_trip(results, sent)

    def test_joinable_queue(self):
        sent = h.payloads()
        qin, qout = mpgo.JoinableQueue(), mpgo.JoinableQueue()
        p = start(h.echo_joinable, qin, qout, len(sent))
        for item in sent:
            qin.put(item)
        qin.join()
        results = [qout.get(timeout=LONG) for _ in sent]
        join_ok(p)
        check_round_trip(results, sent)

    def test_simple_queue(self):
        sent = h.payloads()
        qin, qout = mpgo.SimpleQueue(), mpgo.SimpleQueue()
        p = start(h.echo_simple, qin, qout, len(sent))
        for item in sent:
            qin.put(item)
        results = [qout.get() for _ in sent]
        join_ok(p)
        check_round_trip(results, sent)

    def test_pipe(self):
        sent = h.payloads()
        a, b = mpgo.Pipe()
        p = start(h.echo_pipe, b, len(sent))
        b.close()
        results = []
        for item in sent:
            a.send(item)
            results.append(a.recv())
        join_ok(p)
        check_round_trip(results, sent)


class TestInOneProcess:
    @pytest.mark.parametrize("kind", ["queue", "pipe", "get_many"])
    def test_arrays_are_views_on_the_landing(self, kind):
        # The message is copied out of the ring once; the arrays are views
        # on that memory, not copies of it.
        x, y = np.arange(1 << 16, dtype=np.float64), np.ones((300, 300))
        if kind == "pipe":
            a, b = mpgo.Pipe()
            a.send({'x': x, 'y': y})
            got = b.recv()
        else:
            q = mpgo.Queue()
            q.put({'x': x, 'y': y})
            got = q.get() if kind == "queue" else q.get_many(5)[0]
        assert np.array_equal(got['x'], x) and np.array_equal(got['y'], y)
        assert landing_of(got['x']) == 'Landing'
        assert landing_of(got['y']) == 'Landing'
        assert got['x'].flags.writeable and got['y'].flags.writeable
        assert got['x'].flags.aligned and got['y'].flags.aligned
        got['x'][0] = 42  # writable for real, and only the copy changes
        assert x[0] == 0

    def test_put_copies_buffers_by_reference(self):
        # The parts given to the ring: a pickle stream that does not contain
        # the buffers, and the buffers themselves (memory of the originals).
        x = np.arange(1 << 17, dtype=np.int64)
        ba = bytearray(b'q' * 100000)
        parts = reduction.dumps_msg([x, ba, 'small', 7])
        assert type(parts) is list
        big = [m for m in parts if memoryview(m).nbytes >= 64 * 1024]
        assert len(big) == 2
        assert any(m is ba for m in big)
        assert any(isinstance(m, memoryview) and np.shares_memory(np.asarray(m), x)
                   for m in big)
        small = sum(memoryview(m).nbytes for m in parts if not any(m is b for b in big))
        assert small < 512
        # The message in the ring is those parts laid end to end: the
        # buffers once, plus little framing.
        q = mpgo.Queue()
        q.put([x, ba, 'small', 7])
        raw = q.get_bytes()
        assert x.nbytes + len(ba) < len(raw) < x.nbytes + len(ba) + 512
        assert raw[-1:] == OOB_TAG
        got = fast.oob_loads(raw)
        assert np.array_equal(got[0], x) and got[1:] == [ba, 'small', 7]

    def test_put_keeps_no_reference_to_the_object(self):
        import gc
        import weakref
        q, (r, w) = mpgo.Queue(), mpgo.Pipe()
        for put in (q.put, w.send):
            x = np.ones(1 << 17)
            ref = weakref.ref(x)
            put([x, 1])
            del x
            gc.collect()
            assert ref() is None
        assert q.get()[1] == 1 and r.recv()[1] == 1

    def test_small_objects_stay_plain_pickles(self):
        for obj in [1, 'x', (1, 2), {'a': [1.5]}, np.arange(10), bytearray(100)]:
            data = reduction.dumps_msg(obj)
            assert type(data) is bytes and data[-1:] == b'.'
            assert pickle.loads(data).__class__ is obj.__class__

    def test_big_in_band_payloads_are_parts_of_a_plain_pickle(self):
        # A non-contiguous array and a big bytearray stay in band, but are
        # handed to the ring by reference: the parts make a plain pickle.
        ba = bytearray(200000)
        obj = [np.arange(200000.0)[::2], ba, b'b' * 100000]
        parts = reduction.dumps_msg(obj)
        assert type(parts) is list and any(p is ba for p in parts)
        stream = b''.join(bytes(p) for p in parts)
        assert stream[-1:] == b'.'
        assert h.same(obj, pickle.loads(stream))
        q = mpgo.Queue()
        q.put(obj)
        assert h.same(obj, q.get())

    def test_types_and_writability(self):
        q = mpgo.Queue()
        ba = bytearray(range(256)) * 1000
        ro = np.frombuffer(bytes(ba), np.uint8)
        rw = np.frombuffer(ba, np.uint8)
        q.put(ba)
        q.put((ro, rw))
        q.put(pickle.PickleBuffer(rw))
        q.put(pickle.PickleBuffer(ro))
        got = q.get()
        assert type(got) is bytearray and got == ba
        gro, grw = q.get()
        assert not gro.flags.writeable and grw.flags.writeable
        assert np.array_equal(gro, ro) and np.array_equal(grw, rw)
        # A bare PickleBuffer unpickles as it would in band.
        pb = q.get()
        assert type(pb) is bytearray and pb == ba
        pb = q.get()
        assert type(pb) is bytes and pb == bytes(ba)

    def test_python_put_and_get_of_a_subclass(self):
        class Counting(queues.Queue):
            def put(self, obj, block=True, timeout=None):
                super().put(obj, block, timeout)

            def get(self, block=True, timeout=None):
                return super().get(block, timeout)
        q = Counting(ctx=mpgo.get_context())
        x = np.arange(1 << 15, dtype=np.float64)
        q.put({'x': x})
        q.put(bytearray(100000))
        got = q.get()
        assert np.array_equal(got['x'], x) and got['x'].flags.writeable
        assert landing_of(got['x']) == 'Landing'
        assert q.get() == bytearray(100000)

    def test_get_many_mixes_small_and_oob_messages(self):
        q = mpgo.Queue()
        x = np.arange(1 << 15, dtype=np.float64)
        items = [1, x, 'a', (x, 2), b'z' * 70000, 3]
        for it in items:
            q.put(it)
        got = []
        while len(got) < len(items):
            got += q.get_many(10, timeout=LONG)
        assert all(h.same(a, b) for a, b in zip(items, got))

    def test_pipe_send_bytes_semantics_unchanged(self):
        a, b = mpgo.Pipe()
        big = bytearray(b'y' * 300000)
        a.send_bytes(big)
        assert b.recv_bytes() == bytes(big)
        a.send_bytes(memoryview(np.arange(100000, dtype=np.int32)))
        assert b.recv_bytes() == np.arange(100000, dtype=np.int32).tobytes()
        a.send(b'r' * 100000)     # sent raw, received as itself
        assert b.recv() == b'r' * 100000
        a.send_bytes(pickle.dumps([1, 2]))
        assert b.recv() == [1, 2]

    def test_nested_dumps_msg(self):
        # A reducer that pickles with dumps_msg itself must not clobber the
        # outer call's state.
        q = mpgo.Queue()
        obj = [np.ones(1 << 14), Reentrant(np.zeros(1 << 14)), np.full(1 << 14, 2.0)]
        q.put(obj)
        got = q.get()
        assert np.array_equal(got[0], obj[0]) and np.array_equal(got[2], obj[2])
        assert np.array_equal(got[1].arr, obj[1].arr)

    def test_threads(self):
        q = mpgo.Queue()
        x = np.arange(1 << 15, dtype=np.float64)

        def put():
            for i in range(20):
                q.put((i, x))
        ts = [threading.Thread(target=put) for _ in range(4)]
        for t in ts:
            t.start()
        got = [q.get(timeout=LONG) for _ in range(80)]
        for t in ts:
            t.join()
        assert sorted(i for i, _ in got) == sorted(list(range(20)) * 4)
        assert all(np.array_equal(a, x) for _, a in got)


class Reentrant:
    def __init__(self, arr):
        self.arr = arr

    def __reduce__(self):
        data = reduction.dumps_msg(self.arr)
        if type(data) is list:
            data = b''.join(bytes(memoryview(p).cast('B')) for p in data)
        return (_rebuild_reentrant, (data,))


def _rebuild_reentrant(data):
    if data[-1:] == OOB_TAG:
        return Reentrant(reduction.oob_loads(data))
    return Reentrant(pickle.loads(data))


class TestErrors:
    def test_full_bounded_queue_loses_nothing(self):
        q = mpgo.Queue(maxsize=1)
        x = np.arange(1 << 17, dtype=np.float64)
        q.put('first')
        with pytest.raises(queue.Full):
            q.put(x, block=False)
        with pytest.raises(queue.Full):
            q.put({'x': x}, timeout=0.01)
        assert q.qsize() == 1
        assert q.get() == 'first'
        q.put({'x': x})
        assert np.array_equal(q.get()['x'], x)
        assert q.qsize() == 0

    def test_unpicklable_next_to_big_buffers(self):
        q = mpgo.Queue()
        x = np.arange(1 << 17, dtype=np.float64)
        with pytest.raises(TypeError):
            q.put([x, threading.Lock()])
        assert q.qsize() == 0
        q.put([x, 1])
        got = q.get()
        assert np.array_equal(got[0], x) and got[1] == 1

    def test_memoryview_is_not_picklable_as_in_cpython(self):
        # A PickleBuffer over it is the protocol 5 way to send one.
        q = mpgo.Queue()
        mv = memoryview(bytearray(100000))
        with pytest.raises(TypeError):
            q.put(mv)
        q.put(pickle.PickleBuffer(mv))
        got = q.get()
        assert type(got) is bytearray and got == mv

    def test_bad_part_puts_nothing(self):
        q = mpgo.Queue()
        with pytest.raises(TypeError):
            q._q.put_parts([b'abc', object()])
        with pytest.raises(TypeError):
            q._q.put_parts((b'abc',))
        assert q.qsize() == 0

    def test_too_big_message_raises_and_puts_nothing(self):
        # Parts adding up past the largest message (2**45 bytes) are
        # refused as a whole, before anything is copied.
        import mmap
        try:  # 1 TiB of address space, never touched
            m = mmap.mmap(-1, 1 << 40, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
                          | getattr(mmap, 'MAP_NORESERVE', 0x4000))
        except OSError:
            pytest.skip("no room for a 1 TiB sparse mapping")
        q = mpgo.Queue()
        part = memoryview(m)
        try:
            with pytest.raises(ValueError, match="larger than"):
                q._q.put_parts([b'head'] + [part] * 33 + [OOB_TAG])
            assert q.qsize() == 0
            q.put('still works')
            assert q.get() == 'still works'
        finally:
            part.release()
            m.close()

    @pytest.mark.parametrize("message", [
        b'\x01', b'junk\x01', b'\x00' * 4 + b'\x05\x00\x00\x00\x01',
        b'x' * 30 + (100).to_bytes(8, 'little') + b'\x00\x00\x00\x00\x01'])
    def test_malformed_message_raises_clearly(self, message):
        q = mpgo.Queue()
        q.put_bytes(message)
        q.put('next')
        with pytest.raises(pickle.UnpicklingError, match="out-of-band"):
            q.get()
        assert q.get() == 'next'
