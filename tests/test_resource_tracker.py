"""mpgo.resource_tracker: CPython's API; SharedMemory blocks that a killed
process leaves are unlinked; no tracker process until one is needed; one
tracker per program, which ends when its last client is gone."""

import os
import signal
import sys
import time
import warnings

import pytest

import mpgo
from mpgo import resource_tracker, shared_memory

import _rt_helpers as H
from _helpers import run_python, wait_pid_gone

GUARD = 60
TRACKER = resource_tracker._resource_tracker


def _exists(name):
    return os.path.exists('/dev/shm/' + name)


def _wait_gone(name, timeout=GUARD):
    deadline = time.monotonic() + timeout
    while _exists(name):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_api():
    for name in ('ensure_running', 'register', 'unregister', 'getfd', 'main'):
        assert callable(getattr(resource_tracker, name))
    assert 'shared_memory' in resource_tracker._CLEANUP_FUNCS
    with pytest.raises(ValueError):
        resource_tracker.register('a' * 600, 'shared_memory')
    fd = resource_tracker.getfd()
    assert fd == TRACKER._fd and TRACKER._pid is not None
    assert TRACKER._check_alive()
    resource_tracker.register('/mpgo-rt-test', 'shared_memory')
    resource_tracker.unregister('/mpgo-rt-test', 'shared_memory')
    pid = TRACKER._pid
    TRACKER._stop()
    assert TRACKER._fd is None
    assert TRACKER._exitcode == 0          # nothing left to clean up
    assert wait_pid_gone(pid)


def test_killed_process_leaves_nothing_in_dev_shm(tmp_path):
    script = tmp_path / 'leak.py'
    script.write_text(
        'import sys, time\n'
        'from mpgo import shared_memory\n'
        'sm = shared_memory.SharedMemory(create=True, size=10)\n'
        'print(sm.name, flush=True)\n'
        'time.sleep(100)\n')
    import subprocess
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        name = p.stdout.readline().strip()
        assert _exists(name)
        p.kill()
        p.wait()
        assert _wait_gone(name), 'the tracker did not unlink %s' % name
        err = p.stderr.read()
    finally:
        p.stdout.close()
        p.stderr.close()
    assert ('resource_tracker: There appear to be 1 leaked shared_memory '
            'objects to clean up at shutdown') in err


def test_no_tracker_until_something_is_registered():
    res = run_python(['-c', '''if 1:
        import mpgo
        from mpgo import resource_tracker
        q = mpgo.Queue()
        p = mpgo.Process(target=print, args=('child',))
        p.start(); p.join()
        r, w = mpgo.Pipe()
        with mpgo.Pool(2) as pool:
            pool.map(abs, range(10))
        print(resource_tracker._resource_tracker._pid)
    '''])
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['child', 'None']


def test_untracked_blocks():
    sm = shared_memory.SharedMemory(create=True, size=10, track=False)
    try:
        assert TRACKER._fd is None      # nothing registered, nothing started
        res = run_python(['-c', '''if 1:
            import sys
            from mpgo.shared_memory import SharedMemory
            SharedMemory(sys.argv[1], track=False).close()
        ''', sm.name])
        assert res.returncode == 0, res.stderr
        assert 'resource_tracker' not in res.stderr
        assert _exists(sm.name)
    finally:
        sm.close()
        sm.unlink()
    assert TRACKER._fd is None


def test_attaching_process_registers_too():
    # As CPython: a process that attaches a block registers it, so its
    # tracker unlinks the block when it ends (with track=True, the default).
    sm = shared_memory.SharedMemory(create=True, size=10, track=False)
    try:
        res = run_python(['-c', '''if 1:
            import sys
            from mpgo.shared_memory import SharedMemory
            SharedMemory(sys.argv[1]).close()
        ''', sm.name])
        assert res.returncode == 0, res.stderr
        assert 'leaked shared_memory objects' in res.stderr
        assert _wait_gone(sm.name)
    finally:
        sm.close()


def test_one_tracker_for_the_program():
    # A child registers first and starts the tracker; the parent, which
    # started none, finds the same one, and the child's exit cleans up
    # nothing the parent still holds.
    assert TRACKER._fd is None
    a, b = mpgo.Pipe()
    p = mpgo.Process(target=H.create_and_leave, args=(b,))
    p.start()
    name, tracker_pid = a.recv()
    assert tracker_pid is not None
    parent_view = shared_memory.SharedMemory(name)      # registers here too
    assert TRACKER._pid is None                         # not ours: the child's
    a.send('go')
    p.join(GUARD)
    assert p.exitcode == 0
    time.sleep(0.2)
    assert _exists(name)
    assert parent_view.buf[0] == 7
    parent_view.close()
    parent_view.unlink()
    c = mpgo.Process(target=H.report_tracker, args=(b,))
    c.start()
    assert a.recv()[:2] == (False, None)    # children connect when they need it
    c.join(GUARD)
    TRACKER._stop()                         # our connection: the last one
    assert wait_pid_gone(tracker_pid)
    a.close()
    b.close()


def test_killed_tracker_is_restarted():
    resource_tracker.ensure_running()
    pid = TRACKER._pid
    os.kill(pid, signal.SIGKILL)
    assert wait_pid_gone(pid)
    os.waitpid(pid, 0)
    TRACKER._pid = None
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        sm = shared_memory.SharedMemory(create=True, size=10)
    assert any('resource_tracker: process died' in str(x.message) for x in w)
    assert TRACKER._pid not in (None, pid)
    sm.close()
    sm.unlink()
    TRACKER._stop()


def test_sigint_and_sigterm_are_ignored():
    resource_tracker.ensure_running()
    pid = TRACKER._pid
    os.kill(pid, signal.SIGINT)
    os.kill(pid, signal.SIGTERM)
    time.sleep(0.5)
    assert TRACKER._check_alive()
    assert TRACKER._pid == pid
    TRACKER._stop()
    assert wait_pid_gone(pid)
