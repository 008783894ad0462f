"""Plain pickles made and read in C (pybind/cext/plain.c), and the pool
paths that use them: pool tasks and results of plain values skip pickle,
everything else still goes through it, with the same result."""

import math
import pickle
import threading
import random

import pytest

import mpgo
from mpgo import _engine

import _pool_helpers as h

fast = _engine.fast

PLAIN = [
    None, True, False, 0, 1, 255, 256, 65535, 65536, -1, -2**31, 2**31 - 1,
    2**31, -2**31 - 1, 2**63 - 1, -2**63, 1.5, -0.0, float('inf'),
    '', 'a', 'é' * 300, 'x' * 70000, b'', b'x' * 300, b'\0' * 70000,
    (), (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), [], [1], list(range(3000)),
    [(1, 'a'), (2, 'b')], ((((1,),),),), [1.0, None, 'y', b'z', (True,)],
    [[1]], ([1],), [[1, [2.5, 'x']], [], ([3],)], [list(range(100))] * 1,
]

_twice = [1]
_self = []
_self.append(_self)

NOT_PLAIN = [
    2**63, -2**63 - 1, 10**30, '\ud800', bytearray(b'x'), {1: 2}, {1},
    [_twice, _twice], ([_twice], _twice), _self, [[[[[1]]]]],
    (((((1,),),),),), ValueError('a', 'b'), type, 1j,
    True.__class__, frozenset(), [object()],
]


def same(a, b):
    if isinstance(b, float) and math.isnan(b):
        return math.isnan(a)
    return type(a) is type(b) and a == b


@pytest.mark.parametrize('v', PLAIN, ids=lambda v: repr(v)[:20])
def test_plain_round_trip(v):
    b = fast.plain_dumps(v)
    assert b is not None
    assert same(pickle.loads(b), v)          # a pickle pickle reads
    assert same(fast.plain_loads(b, None), v)
    # pickle's own output of plain values is read in C too
    assert same(fast.plain_loads(pickle.dumps(v), lambda d: 'fallback'), v)


def test_nan():
    assert math.isnan(pickle.loads(fast.plain_dumps(float('nan'))))


@pytest.mark.parametrize('v', NOT_PLAIN, ids=lambda v: repr(v)[:20])
def test_not_plain_goes_to_pickle(v):
    assert fast.plain_dumps(v) is None
    data = pickle.dumps(v)
    seen = []

    def loads(d):
        seen.append(d)
        return pickle.loads(d)
    got = fast.plain_loads(data, loads)
    # The reader takes some the writer leaves to pickle (ints of any size,
    # lone surrogates, lists in tuples): either way, the same object.
    assert seen in ([], [data])
    assert type(got) is type(v)
    if type(v) in (dict, set, bytearray, ValueError, type, complex):
        assert seen == [data]


def test_shared_references_keep_identity():
    # A pickle with memo references is left to pickle, which keeps them.
    inner = [1]
    data = pickle.dumps([inner, inner])
    got = fast.plain_loads(data, pickle.loads)
    assert got[0] is got[1]


def test_broken_input_never_crashes():
    rnd = random.Random(5)
    for v in PLAIN + NOT_PLAIN:
        data = pickle.dumps(v)
        for k in range(len(data)):
            try:
                fast.plain_loads(data[:k], pickle.loads)
            except Exception:
                pass
        for _ in range(30):
            b = bytearray(data)
            b[rnd.randrange(len(b))] = rnd.randrange(256)
            try:
                fast.plain_loads(bytes(b), pickle.loads)
            except Exception:
                pass


# -- the pool paths --


@pytest.fixture
def pool():
    p = mpgo.Pool(2)
    yield p
    p.terminate()


MIXED = [1, 'two', 3.0, None, (4, 5), [6], {'seven': 7}, 2**70, b'8', ValueError('x', 'y')]


def test_map_of_mixed_items(pool):
    # Chunks with a non-plain item go through pickle; the results are the
    # same either way, in order.
    for cs in (1, 2, 3, 100):
        got = pool.map(h.identity, MIXED, chunksize=cs)
        assert [type(x) for x in got] == [type(x) for x in MIXED]
        assert got[:9] == MIXED[:9]
        assert got[9].args == ('x', 'y')


def test_map_of_tuples_and_ranges(pool):
    items = tuple((i, str(i)) for i in range(500))
    assert pool.map(h.identity, items, chunksize=7) == list(items)
    assert pool.starmap(h.add, [(i, i) for i in range(300)], chunksize=4) == \
        [2 * i for i in range(300)]
    for r in (range(1000), range(-500, 500, 3), range(2**62, 2**62 + 10),
              range(2**63 - 5, 2**63 + 5), range(10, 0, -1)):
        assert pool.map(h.identity, r, chunksize=3) == list(r)
        assert pool.map(h.identity, r) == list(r)


def test_unpicklable_item_fails_its_chunk_only(pool):
    # A lock pickles under no start method (a lambda goes by value under
    # 'fork').
    items = [1, 2, 3, threading.Lock(), 5, 6]
    with pytest.raises(Exception) as info:
        pool.map(h.identity, items, chunksize=2)
    # The error pickle raises for the item, whose words may change with the
    # version.
    with pytest.raises(Exception) as direct:
        pickle.dumps(items[3])
    assert type(info.value) is type(direct.value)
    assert str(info.value) == str(direct.value)
    # The pool is fine afterwards.
    assert pool.map(h.square, range(10), chunksize=2) == [x * x for x in range(10)]


def test_results_of_every_kind(pool):
    # Results that are plain, not plain, and that do not pickle.
    assert pool.apply(h.identity, ([1, [2]],)) == [1, [2]]
    assert pool.apply(h.identity, ({'a': (1, 2)},)) == {'a': (1, 2)}
    assert pool.apply(h.kwargs_echo, (1, 2), {'k': 3}) == ((1, 2), {'k': 3})
    with pytest.raises(mpgo.pool.MaybeEncodingError):
        pool.apply(h.return_unpicklable, (1,))
    with pytest.raises(ValueError):
        pool.apply(h.raise_value_error, ('boom',))
    assert list(pool.imap(h.identity, MIXED[:9])) == MIXED[:9]
    assert sorted(pool.imap_unordered(h.square, range(50), chunksize=3)) == \
        [x * x for x in range(50)]


def test_long_map_results_filled_in_place(pool):
    # 100k items: the result list is made when results come, and all but
    # the last chunk are read straight into it.
    n = 100_003
    assert pool.map(h.square, range(n)) == [x * x for x in range(n)]
    got = pool.map(h.identity, [float(x) for x in range(n)], chunksize=999)
    assert got == [float(x) for x in range(n)]
    big = [2**64 + x for x in range(5000)]        # not 64-bit: through pickle
    assert pool.map(h.identity, big, chunksize=100) == big


def test_failing_chunk_among_many(pool):
    # The other chunks are set in C; the failure still wins, the callbacks
    # see what CPython's would.
    seen = []
    r = pool.map_async(h.fail_on_chunk, range(5000), chunksize=10,
                       callback=seen.append, error_callback=seen.append)
    with pytest.raises(ValueError, match='item 777'):
        r.get(timeout=60)
    assert len(seen) == 1 and isinstance(seen[0], ValueError)
    ok = pool.map_async(h.square, range(5000), chunksize=10, callback=seen.append)
    assert ok.get(timeout=60) == [x * x for x in range(5000)]
    assert seen[1] == [x * x for x in range(5000)]


def test_shared_references_in_results_survive(pool):
    # A list twice in a result is not plain: pickle keeps it one object.
    for got in (pool.apply(h.same_list_twice, (0,)),
                pool.map(h.same_list_twice, range(3))[2]):
        assert got == [[1, 2], [1, 2]]
        assert got[0] is got[1]


def test_apply_results_with_and_without_callbacks(pool):
    import threading
    seen = []
    plain = [pool.apply_async(h.square, (i,)) for i in range(300)]
    called = [pool.apply_async(h.square, (i,), callback=seen.append)
              for i in range(300)]
    failed = pool.apply_async(h.raise_value_error, ('x',), error_callback=seen.append)
    assert [r.get(timeout=60) for r in plain] == [i * i for i in range(300)]
    assert [r.get(timeout=60) for r in called] == [i * i for i in range(300)]
    with pytest.raises(ValueError):
        failed.get(timeout=60)
    assert sorted(x for x in seen if isinstance(x, int)) == [i * i for i in range(300)]
    assert all(r.ready() and r.successful() for r in plain + called)
    # Several threads waiting on one result all wake when it is set.
    slow = pool.apply_async(h.sleep_then_return, ('v', 0.3))
    got = []
    threads = [threading.Thread(target=lambda: got.append(slow.get(timeout=60)))
               for _ in range(4)]
    for t in threads:
        t.start()
    assert slow.wait(0.01) is None and not slow.ready()
    for t in threads:
        t.join(60)
    assert got == ['v'] * 4
    assert slow._event.is_set() and slow._event.wait(0)


def test_imap_many_chunks_in_order(pool):
    n = 20_000
    assert list(pool.imap(h.square, range(n), chunksize=7)) == [x * x for x in range(n)]
    assert list(pool.imap(h.square, list(range(n)))) == [x * x for x in range(n)]
    assert sorted(pool.imap_unordered(h.square, tuple(range(n)), chunksize=3)) == \
        [x * x for x in range(n)]
    it = pool.imap(h.square, iter(range(50)), chunksize=4)   # a lazy iterable
    assert list(it) == [x * x for x in range(50)]


def test_imap_over_a_huge_range_is_lazy(pool):
    # The feeder puts an imap's sequence in blocks, and stops queueing
    # ahead of the workers, as CPython's pipe holds its task handler back.
    import time
    from mpgo import pool as mpool
    it = pool.imap(h.square, range(10**12))
    assert [next(it) for _ in range(5)] == [0, 1, 4, 9, 16]
    time.sleep(0.5)
    assert pool._core.tasks.qsize() <= mpgo._engine_pool._FEED_AHEAD + 4096


def _forge_result(pool, job, i, body, status=0):
    '''Put a result message for task i of job on the pool's result queue,
    as a worker would (core/pool's wire format).'''
    import struct
    msg = struct.pack('<QIB', (job + 1) << 32 | i, 0, status) + body
    pool._core.waker.put(msg)


BAD_UTF8 = b'\x80\x04](\x8c\x02\xff\xfee.'


def test_corrupt_results_fail_their_task_only(pool):
    # Fault injection: results that do not read (here, a str of bad UTF-8)
    # fail their task with MaybeEncodingError; nothing else is disturbed.
    slow = pool.apply_async(h.sleep_then_return, (1, 1.0))
    slow.wait(0.1)       # put (apply tasks are held back a moment)
    _forge_result(pool, slow._job, 0, BAD_UTF8)
    with pytest.raises(mpgo.pool.MaybeEncodingError):
        slow.get(timeout=60)
    m = pool.starmap_async(h.sleep_then_return, [(i, 0.5) for i in range(4)], chunksize=1)
    _forge_result(pool, m._job, 1, BAD_UTF8)     # not the last: read in C
    with pytest.raises(mpgo.pool.MaybeEncodingError):
        m.get(timeout=60)
    # The real results of those tasks come later, and are dropped.
    assert pool.map(h.square, range(100), chunksize=3) == [x * x for x in range(100)]
    assert pool.apply(h.identity, ('fine',)) == 'fine'


def test_huge_jobs_on_a_broken_pool_fail_at_once():
    # A pool that takes no more tasks fails what is left of a job with one
    # failure, not one per task (there could be billions).
    from mpgo import pool as mpool
    p = mpgo.Pool(1, initializer=h.raise_value_error, initargs=('init',))
    try:
        with pytest.raises(mpool.InitializerError):
            p.apply(h.identity, (1,))
        with pytest.raises(mpool.InitializerError):
            p.map(h.identity, range(10**12), chunksize=1)
        with pytest.raises(mpool.InitializerError):
            list(p.imap(h.identity, range(10**12)))
        with pytest.raises(mpool.InitializerError):
            list(p.imap_unordered(h.identity, iter(range(10**12))))
    finally:
        p.terminate()


def test_terminate_during_a_huge_imap(pool):
    it = pool.imap(h.square, range(10**12))
    assert next(it) == 0
    pool.terminate()        # the feeder stops; nothing piles up
    assert len(pool._core.failures) <= 1
