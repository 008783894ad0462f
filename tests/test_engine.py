"""The native engine: one shared object, error translation, fork guard."""
import errno
import os
import queue
import threading

import pytest

import mpgo
from mpgo import _engine, _errors, context


def test_one_shared_object_holds_everything():
    assert _engine.fast.__spec__.origin == _engine._g.__spec__.origin
    with open("/proc/self/maps") as f:
        libs = {line.split()[-1] for line in f if ".so" in line and "_pybind" in line}
    assert len(libs) == 1, libs


def test_go_panic_becomes_exception():
    with pytest.raises(RuntimeError, match="internal error: panic"):
        _engine.call("SelfTestPanic")
    # the interpreter and the engine are still fine afterwards
    assert _engine.call("Version")


@pytest.mark.parametrize("code,exc", [
    (_errors.EMPTY, queue.Empty), (_errors.FULL, queue.Full),
    (_errors.TIMEOUT, TimeoutError), (_errors.VALUE, ValueError),
    (_errors.PROCESS, context.ProcessError), (_errors.AUTH, context.AuthenticationError),
    (_errors.BROKEN, threading.BrokenBarrierError), (_errors.TOOSHORT, context.BufferTooShort),
    (_errors.FORKED, RuntimeError), (_errors.INTERNAL, RuntimeError),
])
def test_error_table(code, exc):
    assert isinstance(_errors.exception(code, "msg"), exc)


def test_os_error_keeps_errno():
    e = _errors.translate(RuntimeError("E5:2: no such file"))
    assert isinstance(e, FileNotFoundError) and e.errno == 2


@pytest.fixture
def directory_ref():
    """A reference to a descriptor the engine cannot map: a directory."""
    fd = os.open("/", os.O_RDONLY)
    yield "%d:%d:4096" % (os.getpid(), fd)
    os.close(fd)


def test_errno_survives_the_gopy_path(directory_ref):
    with pytest.raises(IsADirectoryError) as e:
        _engine.call("ArenaAttach", directory_ref)
    assert e.value.errno == errno.EISDIR


def test_errno_survives_the_c_path(directory_ref):
    # The C fast path reaches Go through the C ABI: (code, errno, message).
    with pytest.raises(IsADirectoryError) as e:
        _engine.fast.PoolWorker(" ".join([directory_ref] * 3 + ["0", "0"]))
    assert e.value.errno == errno.EISDIR


def test_c_path_raises_through_the_one_table():
    lock = mpgo.Lock()
    with pytest.raises(ValueError, match="released too many times"):
        lock.release()
    rlock = mpgo.RLock()
    with pytest.raises(AssertionError, match="not owned"):
        rlock.release()


def test_uncoded_runtime_error_passes_through():
    e = RuntimeError("plain")
    assert _errors.translate(e) is e


def test_stale_handle_is_a_clear_error():
    with pytest.raises(OSError):
        _engine.call("ProcessWait", 999999, 0.0)


# Forking a process that runs Go's threads is the point (3.12+ warns).
@pytest.mark.filterwarnings('ignore:This process .* is multi-threaded:DeprecationWarning')
def test_fork_guard_raises_instead_of_hanging():
    _engine.start()    # the guard is for children of a process running Go
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            _engine.call("Version")
            msg = b"entered Go"
        except RuntimeError as e:
            msg = b"guarded" if "forked" in str(e) else str(e).encode()[:100]
        try:
            _engine.fast.SemLock(bytearray(16), 0)
        except RuntimeError:
            msg += b"+fast"
        try:
            _engine.fast.start()
        except RuntimeError as e:
            # The fast path's one error for it, as for SemLock above.
            if "forked from one running the Go runtime" in str(e):
                msg += b"+start"
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    os.waitpid(pid, 0)
    assert os.read(r, 200) == b"guarded+fast+start"
    os.close(r)
    assert not _engine.fast.forked()


def test_children_see_current_environment(monkeypatch):
    # Go copies the environment when the runtime starts; a variable set
    # later must still reach children.
    import sys
    monkeypatch.setenv("MPGO_LATE_VARIABLE", "late")
    pid, pidfd = _engine.spawn(
        [sys.executable, "-c",
         "import os, sys; sys.exit(0 if os.environ.get('MPGO_LATE_VARIABLE') == 'late' else 9)"],
        [0, 1, 2])
    try:
        assert _engine.wait(pid, 30) == 0
    finally:
        _engine.release(pid)
