"""Lock, RLock, Semaphore, Condition, Event and Barrier across processes."""
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import mpgo
from mpgo import reduction

import _sync_helpers as h


def run_procs(procs):
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0, p.exitcode


class TestLock:
    def test_acquire_release(self):
        lock = mpgo.Lock()
        assert lock.acquire()
        assert lock.acquire(False) is False
        assert lock.acquire(timeout=0.05) is False
        lock.release()
        assert lock.acquire(block=False)
        lock.release()

    def test_release_unlocked_raises(self):
        lock = mpgo.Lock()
        with pytest.raises(ValueError):
            lock.release()

    def test_context_manager_and_repr(self):
        lock = mpgo.Lock()
        assert repr(lock) == "<Lock(owner=None)>"
        with lock:
            assert repr(lock) == "<Lock(owner=MainProcess)>"
        assert lock.acquire(False)
        lock.release()

    def test_other_thread_may_release(self):
        lock = mpgo.Lock()
        lock.acquire()
        t = threading.Thread(target=lock.release)
        t.start()
        t.join()
        assert lock.acquire(False)
        lock.release()

    def test_timeout_is_honoured(self):
        lock = mpgo.Lock()
        lock.acquire()
        t = time.monotonic()
        assert lock.acquire(timeout=0.3) is False
        assert time.monotonic() - t >= 0.29
        lock.release()

    def test_contention_across_processes(self):
        lock = mpgo.Lock()
        counter = mpgo.RawValue("i", 0)
        run_procs([mpgo.Process(target=h.incr_under_lock, args=(lock, counter, 3000))
                   for _ in range(3)])
        assert counter.value == 9000

    def test_bad_arguments(self):
        lock = mpgo.Lock()
        with pytest.raises(TypeError):
            lock.acquire(True, 1.0, 3)
        with pytest.raises(TypeError):
            lock.acquire(spam=1)
        with pytest.raises(TypeError):
            lock.acquire(True, "soon")


class TestRLock:
    def test_recursion(self):
        r = mpgo.RLock()
        assert r.acquire() and r.acquire()
        assert repr(r) == "<RLock(MainProcess, 2)>"
        r.release()
        r.release()
        assert repr(r) == "<RLock(None, 0)>"

    def test_release_by_other_thread_raises(self):
        r = mpgo.RLock()
        r.acquire()
        errors = []

        def other():
            try:
                r.release()
            except AssertionError as e:
                errors.append(e)
            errors.append(r.acquire(timeout=0.05))
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert isinstance(errors[0], AssertionError)
        assert errors[1] is False
        r.release()

    def test_release_unowned_raises(self):
        with pytest.raises(AssertionError):
            mpgo.RLock().release()


class TestSemaphore:
    def test_counting(self):
        s = mpgo.Semaphore(2)
        assert s.get_value() == 2
        assert s.acquire() and s.acquire()
        assert s.acquire(timeout=0.05) is False
        s.release()
        assert s.get_value() == 1
        assert repr(s) == "<Semaphore(value=1)>"

    def test_bounded(self):
        s = mpgo.BoundedSemaphore(1)
        s.acquire()
        s.release()
        with pytest.raises(ValueError):
            s.release()
        assert repr(s) == "<BoundedSemaphore(value=1, maxvalue=1)>"

    def test_negative_value(self):
        with pytest.raises(ValueError):
            mpgo.Semaphore(-1)

    def test_limits_concurrency_across_processes(self):
        sem = mpgo.Semaphore(2)
        active, peak = mpgo.RawValue("i", 0), mpgo.RawValue("i", 0)
        lock = mpgo.Lock()
        run_procs([mpgo.Process(target=h.sem_worker, args=(sem, active, peak, lock))
                   for _ in range(4)])
        assert peak.value <= 2
        assert sem.get_value() == 2


class TestEventConditionBarrier:
    def test_event_across_processes(self):
        ev = mpgo.Event()
        out = mpgo.RawValue("i", 0)
        p = mpgo.Process(target=h.wait_event, args=(ev, out))
        p.start()
        assert not ev.is_set()
        ev.set()
        p.join(30)
        assert out.value == 1
        assert ev.is_set()
        ev.clear()
        assert ev.wait(0.05) is False

    def test_condition_notify_all(self):
        cond = mpgo.Condition()
        state, woke = mpgo.RawValue("i", 0), mpgo.RawValue("i", 0)
        ps = [mpgo.Process(target=h.cond_waiter, args=(cond, state, woke)) for _ in range(3)]
        for p in ps:
            p.start()
        deadline = time.monotonic() + 30
        while state.value < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        with cond:
            state.value = 100
            cond.notify_all()
        for p in ps:
            p.join(30)
            assert p.exitcode == 0
        assert woke.value == 3

    def test_condition_wait_timeout_and_errors(self):
        cond = mpgo.Condition(mpgo.Lock())
        with pytest.raises(AssertionError):
            cond.wait(0.01)
        with cond:
            assert cond.wait(0.05) is False
            assert cond.wait_for(lambda: False, timeout=0.05) is False

    def test_barrier(self):
        b = mpgo.Barrier(3)
        results = mpgo.RawArray("i", 3)
        ps = [mpgo.Process(target=h.barrier_party, args=(b, results, i)) for i in range(2)]
        for p in ps:
            p.start()
        idx = b.wait(30)
        for p in ps:
            p.join(30)
        assert sorted(list(results[:2]) + [idx + 1]) == [1, 2, 3]
        assert b.parties == 3 and b.n_waiting == 0 and not b.broken

    def test_barrier_abort_and_timeout(self):
        import threading as th
        b = mpgo.Barrier(2)
        with pytest.raises(th.BrokenBarrierError):
            b.wait(0.1)
        assert b.broken
        b.reset()
        assert not b.broken
        b.abort()
        with pytest.raises(th.BrokenBarrierError):
            b.wait(1)


class TestRobustness:
    @pytest.mark.parametrize("how", ["kill", "exit"])
    def test_dead_holder_is_taken_over(self, how):
        lock = mpgo.Lock()
        ready = mpgo.Event()
        p = mpgo.Process(target=h.hold_and_die, args=(lock, ready, how))
        p.start()
        assert ready.wait(30)
        p.join(30)
        assert p.exitcode == (-signal.SIGKILL if how == "kill" else 3)
        records = []
        handler = logging.Handler(logging.WARNING)
        handler.emit = records.append
        logger = mpgo.get_logger()
        logger.addHandler(handler)
        try:
            t = time.monotonic()
            assert lock.acquire(timeout=10), "lock of a dead holder never freed"
            took = time.monotonic() - t
        finally:
            logger.removeHandler(handler)
        assert took < 5
        assert any("died holding" in r.getMessage() and str(p.pid) in r.getMessage()
                   for r in records)
        lock.release()

    def test_rlock_dead_holder(self):
        lock = mpgo.RLock()
        ready = mpgo.Event()
        p = mpgo.Process(target=h.hold_and_die, args=(lock, ready, "kill"))
        p.start()
        assert ready.wait(30)
        p.join(30)
        assert lock.acquire(timeout=10)
        lock.release()


class TestPassingAndGuards:
    def test_pickle_roundtrip_shares_memory(self):
        lock = mpgo.Lock()
        clone = reduction.ForkingPickler.loads(reduction.ForkingPickler.dumps(lock))
        lock.acquire()
        assert clone.acquire(False) is False
        lock.release()
        assert clone.acquire(False) is True
        clone.release()

    def test_pass_after_start_over_pipe(self):
        a, b = mpgo.Pipe()
        p = mpgo.Process(target=h.recv_and_use, args=(b,))
        p.start()
        lock, v = mpgo.Lock(), mpgo.RawValue("i", 1)
        a.send((lock, v))
        assert a.recv() == "done"
        p.join(30)
        assert v.value == 6

    # Forking a process that runs Go's threads is the point (3.12+ warns).
    @pytest.mark.filterwarnings('ignore:This process .* is multi-threaded:DeprecationWarning')
    def test_fork_guard(self):
        lock = mpgo.Lock()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                lock.acquire()
                msg = b"no error"
            except RuntimeError as e:
                msg = b"RuntimeError" if "forked" in str(e) else str(e).encode()
            os.write(w, msg)
            os._exit(0)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        assert os.read(r, 100) == b"RuntimeError"
        os.close(r)

    def test_ctrl_c_interrupts_blocked_acquire(self, tmp_path):
        script = tmp_path / "blocked.py"
        script.write_text(textwrap.dedent("""
            import sys, mpgo
            if __name__ == "__main__":
                lock = mpgo.Lock()
                lock.acquire()
                print("blocking", flush=True)
                try:
                    lock.acquire()
                except KeyboardInterrupt:
                    print("interrupted", flush=True)
                    sys.exit(7)
        """))
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "blocking"
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert "interrupted" in out
        assert proc.returncode == 7
