"""Value, Array, RawValue and RawArray in shared memory."""
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

import mpgo
from mpgo import sharedctypes

import _sync_helpers as h

TYPECODES = {"c": b"x", "u": "y", "b": -3, "B": 250, "h": -300, "H": 60000,
             "i": -70000, "I": 4000000000, "l": -2**40, "L": 2**63, "q": -2**62,
             "Q": 2**64 - 1, "f": 1.5, "d": 2.25}


@pytest.mark.parametrize("code", sorted(TYPECODES))
def test_value_every_typecode(code):
    v = mpgo.Value(code, TYPECODES[code])
    assert v.value == TYPECODES[code]
    raw = mpgo.RawValue(code, TYPECODES[code])
    assert raw.value == TYPECODES[code]


@pytest.mark.parametrize("ctype", [ctypes.c_bool, ctypes.c_int8, ctypes.c_uint64,
                                   ctypes.c_double, ctypes.c_size_t, ctypes.c_char])
def test_value_ctypes_types(ctype):
    v = mpgo.Value(ctype)
    assert isinstance(v.get_obj(), ctype)


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_double), ("y", ctypes.c_int)]


def test_structure_value():
    p = mpgo.Value(Point, 1.5, 2)
    assert (p.x, p.y) == (1.5, 2)
    p.x = 4.0
    assert p.get_obj().x == 4.0


def test_synchronized_wrappers():
    v = mpgo.Value("i", 5)
    assert type(v).__name__ == "Synchronized"
    assert repr(v).startswith("<Synchronized wrapper for c_int(5)")
    lock = v.get_lock()
    assert type(lock).__name__ == "RLock"
    with v:
        with v.get_lock():
            v.value += 1
    assert v.acquire()
    v.release()
    assert v.value == 6 and v.get_obj().value == 6


def test_lock_options():
    assert isinstance(mpgo.Value("i", 1, lock=False), ctypes.c_int)
    given = mpgo.Lock()
    v = mpgo.Value("i", 1, lock=given)
    assert v.get_lock() is given
    v.value = 3
    assert given.acquire(False)
    given.release()
    with pytest.raises(AttributeError):
        mpgo.Value("i", 1, lock=object())


def test_array_api():
    a = mpgo.Array("i", range(10))
    assert len(a) == 10 and a[3] == 3 and a[-1] == 9
    assert a[2:5] == [2, 3, 4]
    a[2:5] = [7, 8, 9]
    assert list(a) == [0, 1, 7, 8, 9, 5, 6, 7, 8, 9]
    assert mpgo.Array("d", 3)[:] == [0.0, 0.0, 0.0]
    with pytest.raises(IndexError):
        a[10]
    raw = mpgo.RawArray("b", 4)
    assert isinstance(raw, ctypes.Array)


def test_char_array_value_and_raw():
    s = mpgo.Array("c", b"hello")
    assert s.value == b"hello" and s.raw == b"hello"
    s.value = b"hi"
    assert s.value == b"hi"
    assert type(s).__name__ == "SynchronizedString"


def test_memoryview_is_zero_copy():
    a = mpgo.Array("d", 4)
    mv = memoryview(a.get_obj())
    a[1] = 3.5
    assert mv.cast("B").cast("d")[1] == 3.5


def test_numpy_view_is_shared():
    np = pytest.importorskip("numpy")
    a = mpgo.Array("d", 5)
    view = np.frombuffer(a.get_obj(), dtype=np.float64)
    view[:] = np.arange(5)
    assert a[:] == [0.0, 1.0, 2.0, 3.0, 4.0]
    a[0] = 9
    assert view[0] == 9


def test_children_see_and_change():
    num = mpgo.Value("i", 0)
    arr = mpgo.Array("d", [1.0, 2.0, 3.0])
    s = mpgo.Array("c", 10)
    ps = [mpgo.Process(target=h.write_shared, args=(num, arr, s)) for _ in range(2)]
    for p in ps:
        p.start()
        p.join(30)
    assert num.value == 2
    assert arr[:] == [4.0, 8.0, 12.0]
    assert s.value == b"child"


def test_locked_increments_exact():
    v = mpgo.Value("i", 0)
    ps = [mpgo.Process(target=h.incr_value, args=(v, 5000)) for _ in range(2)]
    for p in ps:
        p.start()
    for p in ps:
        p.join(60)
    assert v.value == 10000


def test_copy_and_synchronized():
    raw = mpgo.RawValue("i", 4)
    c = sharedctypes.copy(raw)
    c.value = 5
    assert raw.value == 4
    s = sharedctypes.synchronized(raw)
    s.value = 9
    assert raw.value == 9


def _shm_names():
    # All but CPython's named semaphores (sem.mp-*), which mpgo never
    # makes: other programs on the machine (the standard library's side of
    # a comparison) come and go there meanwhile.
    if not os.path.isdir("/dev/shm"):
        return set()
    return {n for n in os.listdir("/dev/shm") if not n.startswith("sem.")}


def test_no_shm_leak_after_sigkill_of_whole_tree(tmp_path):
    script = tmp_path / "tree.py"
    script.write_text(textwrap.dedent("""
        import os, signal, time, mpgo
        def child(v, a, ready):
            v.value = 1
            ready.set()
            time.sleep(60)
        if __name__ == "__main__":
            v, a, ready = mpgo.Value("i"), mpgo.Array("d", 1000), mpgo.Event()
            p = mpgo.Process(target=child, args=(v, a, ready), daemon=True)
            p.start()
            ready.wait(30)
            print(p.pid, flush=True)
            time.sleep(60)
    """))
    before = _shm_names()
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    proc.kill()
    proc.wait(10)
    # The daemonic child dies with its parent (PR_SET_PDEATHSIG).
    pidfd = os.pidfd_open(child) if os.path.exists(f"/proc/{child}") else None
    if pidfd is not None:
        import select
        select.select([pidfd], [], [], 10)
        os.close(pidfd)
    assert not os.path.exists(f"/proc/{child}/status") or \
        "zombie" in open(f"/proc/{child}/status").read() or \
        pytest.fail("daemonic child outlived its SIGKILLed parent")
    assert _shm_names() == before


def test_go_program_shares_value_and_lock(tmp_path):
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed for the interop test")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    exe = tmp_path / "counter"
    subprocess.run([go, "build", "-o", str(exe), "./examples/counter"], cwd=root, check=True)
    v = mpgo.Value("i", 0)
    lock_block = v.get_lock()._block
    value_block = v.get_obj()._wrapper._block
    assert lock_block.arena is value_block.arena
    n = 5000
    gop = subprocess.Popen([str(exe), "-ref", lock_block.arena.ref(), "-lock",
                            str(lock_block.offset), "-value", str(value_block.offset),
                            "-n", str(n)], stdout=subprocess.PIPE, text=True)
    ps = [mpgo.Process(target=h.incr_value, args=(v, n)) for _ in range(2)]
    for p in ps:
        p.start()
    out, _ = gop.communicate(timeout=120)
    for p in ps:
        p.join(60)
    assert gop.returncode == 0, out
    assert v.value == 3 * n


@pytest.mark.parametrize("code", list("bBhHiIlLqQfd"))
def test_bulk_slices_match_ctypes(code):
    values = [0, 1, 2, 3, 100, 7]
    if code in "fd":
        values = [v + 0.5 for v in values]
    a = mpgo.Array(code, len(values))
    raw = mpgo.RawArray(code, len(values))
    a[:] = values
    raw[:] = values
    assert a[:] == raw[:] == values
    a[1:3] = values[4:6]
    raw[1:3] = values[4:6]
    assert a[:] == raw[:]
    assert a[::2] == raw[::2] and a[-3:] == raw[-3:] and a[4:1] == raw[4:1] == []
    with pytest.raises(ValueError):
        a[0:2] = [1]
    if code not in "fd":
        with pytest.raises(TypeError):
            a[0:1] = [1.5]
        assert a[:] == raw[:]  # a failed assignment changed nothing


def test_byte_swapped_and_subclassed_types_keep_ctypes_semantics():
    be = ctypes.c_int.__ctype_be__
    v = mpgo.Value(be, 258)
    assert v.value == 258 and bytes(v.get_obj()) == b"\x00\x00\x01\x02"
    v.value = 1
    assert bytes(v.get_obj()) == b"\x00\x00\x00\x01"
    a = mpgo.Array(be, [1, 2])
    assert a[:] == [1, 2]
    a[:] = [3, 4]
    assert bytes(a.get_obj())[:4] == b"\x00\x00\x00\x03"

    class MyInt(ctypes.c_int):
        pass
    m = mpgo.Value(MyInt, 5)
    assert m.value == 5
