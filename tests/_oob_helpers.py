"""Child targets and payloads for the out-of-band tests (tests/test_oob.py).

The payloads are built the same way in parent and child, so each side can
check what it got against its own copy.
"""
import numpy as np

BIG = 1 << 17  # elements: every array below is >= 64 KiB unless sliced


def payloads():
    """(name, object) pairs: arrays of several dtypes and layouts, in band
    and out of band, and containers mixing them with small objects."""
    rng = np.random.default_rng(7)
    f64 = rng.standard_normal(BIG)
    i32 = np.arange(BIG, dtype=np.int32)
    u8 = (np.arange(3 * BIG) % 251).astype(np.uint8)
    c128 = (f64 + 1j * f64[::-1]).astype(np.complex128)
    b = i32 % 3 == 0
    f32_2d = rng.standard_normal((512, 300)).astype(np.float32)
    fortran = np.asfortranarray(rng.standard_normal((400, 300)))
    strided = f64[::3]                        # non-contiguous: in band
    ro = np.frombuffer(bytes(u8), np.uint8)   # read-only original
    rec = np.zeros(BIG // 4, dtype=[('a', '<i4'), ('b', '<f8'), ('c', 'S3')])
    rec['a'] = np.arange(BIG // 4)
    rec['b'] = 0.5
    rec['c'] = b'xyz'
    small = np.arange(10, dtype=np.int16)   # below the threshold: in band
    ba = bytearray(u8.tobytes())
    return [
        ('f64', f64), ('i32', i32), ('u8', u8), ('c128', c128), ('bool', b),
        ('f32_2d', f32_2d), ('fortran', fortran), ('strided', strided),
        ('readonly', ro), ('record', rec), ('small', small),
        ('bytearray', ba),
        ('bigbytes_in_tuple', (1, bytes(u8[:100000]), 'tail')),
        ('mixed', {'x': f64, 'y': [1, 'two', 3.0, i32, (u8, None)],
                   'ba': ba, 'small': small, 'name': 'mixed'}),
        ('same_twice', [f32_2d, f32_2d]),
    ]


def same(a, b):
    """a and b are equal, with numpy arrays compared by dtype, shape and
    contents, anywhere inside tuples, lists and dicts."""
    if isinstance(a, np.ndarray):
        return (isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def arrays(obj):
    """Every ndarray inside obj, in order."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [a for x in obj for a in arrays(x)]
    if isinstance(obj, dict):
        return [a for x in obj.values() for a in arrays(x)]
    return []


def check(name, obj):
    """What the receiving side reports about a payload: whether it matches
    its own copy, and each array's writability."""
    expect = dict(payloads())[name]
    return (same(expect, obj), [a.flags.writeable for a in arrays(obj)],
            type(obj).__name__)


def echo_queue(qin, qout, n):
    """Get n (name, obj) pairs; put back (name, report, obj)."""
    for _ in range(n):
        name, obj = qin.get(timeout=60)
        qout.put((name, check(name, obj), obj))


def echo_simple(qin, qout, n):
    for _ in range(n):
        name, obj = qin.get()
        qout.put((name, check(name, obj), obj))


def echo_joinable(qin, qout, n):
    for _ in range(n):
        name, obj = qin.get(timeout=60)
        qout.put((name, check(name, obj), obj))
        qin.task_done()


def echo_pipe(conn, n):
    for _ in range(n):
        name, obj = conn.recv()
        conn.send((name, check(name, obj), obj))
    conn.close()
