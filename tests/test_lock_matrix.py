"""The lock protocol exists twice, in Go (core/sync, core/internal/futex) and
in the C fast path Python's locks run on (pybind/cext). Every combination of
holder and acquirer, Go or Python, behaves the same: for Lock, RLock and
Semaphore, with acquire non-blocking, timeout 0, a timeout and blocking,
with the holder alive and SIGKILLed. A dead holder's lock is taken over by
any acquirer, with the log line; a semaphore has no holder to take from.
tests/golock is the Go peer."""
import logging
import os
import shutil
import signal
import subprocess
import threading

import pytest

import mpgo
from mpgo import util

import _lock_matrix_helpers as h

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = {"lock": mpgo.Lock, "rlock": mpgo.RLock, "sem": lambda: mpgo.Semaphore(1)}
MODES = ("nonblock", "zero", "timeout", "block")
# Long enough for a takeover (about 0.1 s), short enough to wait out when the
# answer is no. Not a timing assertion: only the outcome is checked.
TIMEOUT = 1.0
# How long a blocking acquire may take before the test calls it hung.
HUNG = 60


@pytest.fixture(scope="module")
def golock(tmp_path_factory):
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed for the lock matrix")
    exe = tmp_path_factory.mktemp("go") / "golock"
    subprocess.run([go, "build", "-o", str(exe), "./tests/golock"], cwd=ROOT, check=True)
    return str(exe)


def go_args(exe, lock, kind):
    b = lock._block
    return [exe, "-ref", b.arena.ref(), "-off", str(b.offset), "-kind", kind]


class GoHolder:
    def __init__(self, exe, lock, kind):
        self.p = subprocess.Popen(go_args(exe, lock, kind) + ["-mode", "hold"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "held"
        self.pid = self.p.pid

    def release(self):
        # Closing stdin is the holder's cue; a dead holder ignores it.
        try:
            self.p.stdin.close()
        except BrokenPipeError:
            pass

    def kill(self):
        self.p.kill()
        self.p.wait(HUNG)  # SIGKILL is asynchronous: dead only once reaped

    def close(self):
        self.release()
        assert self.p.wait(HUNG) in (0, -signal.SIGKILL)
        self.p.stdout.close()


class PyHolder:
    def __init__(self, lock):
        self.ready, self.done = mpgo.Event(), mpgo.Event()
        self.p = mpgo.Process(target=h.hold, args=(lock, self.ready, self.done))
        self.p.start()
        assert self.ready.wait(HUNG)
        self.pid = self.p.pid

    def release(self):
        self.done.set()

    def kill(self):
        os.kill(self.p.pid, signal.SIGKILL)
        self.killed = True
        self.p.join(HUNG)  # SIGKILL is asynchronous: dead only once reaped

    def close(self):
        # A holder killed in done.wait() leaves done's Condition waiting for
        # it to wake (as CPython's does): set done only for a live one.
        if not getattr(self, "killed", False):
            self.done.set()
        self.p.join(HUNG)
        assert self.p.exitcode in (0, -signal.SIGKILL)


def go_acquire(exe, lock, kind, mode):
    """Returns (acquired, pid taken over from or None)."""
    t = {"nonblock": 0, "zero": 0, "timeout": TIMEOUT, "block": -1}[mode]
    out = subprocess.run(go_args(exe, lock, kind) + ["-mode", "acquire", "-timeout", str(t)],
                         capture_output=True, text=True, timeout=HUNG, check=True).stdout
    lines = out.split("\n")
    dead = None
    if lines[0].startswith("took over from "):
        dead = int(lines.pop(0).split()[-1])
    assert lines[0] in ("acquired", "not acquired"), out
    return lines[0] == "acquired", dead


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def py_acquire(lock, mode):
    """Acquire in a thread of this process, as mode says; release if taken.
    Returns (acquired, pid taken over from or None)."""
    logger = util.get_logger()
    rec = _Records()
    logger.addHandler(rec)
    result = []

    def acquire():
        if mode == "nonblock":
            ok = lock.acquire(False)
        elif mode == "zero":
            ok = lock.acquire(timeout=0)
        elif mode == "timeout":
            ok = lock.acquire(timeout=TIMEOUT)
        else:
            ok = lock.acquire()
        if ok:
            lock.release()
        result.append(ok)

    try:
        t = threading.Thread(target=acquire, daemon=True)
        t.start()
        t.join(HUNG)
        assert not t.is_alive(), "acquire hung"
    finally:
        logger.removeHandler(rec)
    dead = None
    for m in rec.messages:
        if "took over" in m:
            dead = int(m.split("(pid ")[1].split(")")[0])
    return result[0], dead


def acquire(side, golock, lock, kind, mode):
    if side == "go":
        return go_acquire(golock, lock, kind, mode)
    return py_acquire(lock, mode)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("holder", ["go", "py"])
@pytest.mark.parametrize("waiter", ["go", "py"])
def test_holder_alive(golock, kind, mode, holder, waiter):
    lock = KINDS[kind]()
    hold = GoHolder(golock, lock, kind) if holder == "go" else PyHolder(lock)
    try:
        if mode == "block":
            # The holder lets go while (or before) the waiter waits.
            t = threading.Timer(0.2, hold.release)
            t.start()
            assert acquire(waiter, golock, lock, kind, mode) == (True, None)
            t.join()
        else:
            assert acquire(waiter, golock, lock, kind, mode) == (False, None)
            hold.release()
    finally:
        hold.close()
    # Free again, for either side.
    assert acquire(waiter, golock, lock, kind, "nonblock") == (True, None)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("holder", ["go", "py"])
@pytest.mark.parametrize("waiter", ["go", "py"])
def test_holder_killed(golock, kind, mode, holder, waiter):
    lock = KINDS[kind]()
    hold = GoHolder(golock, lock, kind) if holder == "go" else PyHolder(lock)
    try:
        hold.kill()
        dead = hold.pid
        if kind == "sem":
            # A semaphore's unit dies with the process that took it, as in
            # CPython: nobody may take it over, and nobody waits for ever.
            if mode != "block":
                assert acquire(waiter, golock, lock, kind, mode) == (False, None)
            return
        assert acquire(waiter, golock, lock, kind, mode) == (True, dead)
        # Taken over once: free for the next acquirer, of either side.
        assert acquire(waiter, golock, lock, kind, "nonblock") == (True, None)
        other = "py" if waiter == "go" else "go"
        assert acquire(other, golock, lock, kind, "zero") == (True, None)
    finally:
        hold.close()
