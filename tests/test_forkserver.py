"""Tests of the 'forkserver' start method: children forked by a zygote
interpreter that never loads the Go runtime (mpgo.forkserver).
"""

import os
import signal
import time

import pytest

import mpgo
import mpgo.connection
from mpgo import forkserver

import _fs_helpers
import _helpers
from _helpers import (env_with_tests, read_result, run_python, wait_for_file,
                      wait_pid_gone, write_script)

ctx = mpgo.get_context('forkserver')


@pytest.fixture(autouse=True)
def stop_zygote():
    '''The zygote is a child of the test process: stop it after each test,
    before the leak check, once it has no live children left.'''
    yield
    pid = forkserver.zygote_pid()
    if pid is not None:
        deadline = time.monotonic() + 5
        while _zygote_children(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        leftover = _zygote_children(pid)
        forkserver._forkserver._stop()
        assert not leftover, 'forkserver children left running: %s' % leftover


def _zygote_children(pid):
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            return [int(c) for c in f.read().split()
                    if _helpers.pid_alive(int(c))]
    except FileNotFoundError:
        return []


def _run(target, *args, **kwargs):
    p = ctx.Process(target=target, args=args, kwargs=kwargs)
    p.start()
    p.join()
    return p


def test_not_the_default():
    assert mpgo.get_context().get_start_method() == 'spawn'
    assert ctx.get_start_method() == 'forkserver'


@pytest.mark.parametrize('code', [0, 3, 255])
def test_exit_codes(code):
    assert _run(_helpers.exit_with, code).exitcode == code


def test_exception_is_exit_code_1():
    assert _run(_helpers.raise_error, 'boom').exitcode == 1


@pytest.mark.parametrize('method, code', [('kill', -signal.SIGKILL),
                                          ('terminate', -signal.SIGTERM)])
def test_kill_and_terminate(method, code):
    p = ctx.Process(target=_helpers.sleep, args=(60,))
    p.start()
    assert p.is_alive()
    getattr(p, method)()
    p.join(10)
    assert p.exitcode == code
    assert not p.is_alive()


def test_join_timeout_and_sentinel():
    p = ctx.Process(target=_helpers.sleep, args=(0.3,))
    p.start()
    p.join(0.05)
    assert p.exitcode is None
    assert mpgo.connection.wait([p.sentinel], 10) == [p.sentinel]
    p.join()
    assert p.exitcode == 0


def test_child_sees_real_parent_and_start_method(tmp_path):
    path = str(tmp_path / 'r')
    p = _run(_helpers.record, path, 1, 'two', k=[3])
    assert p.exitcode == 0
    r = read_result(path)
    assert r['args'] == (1, 'two') and r['kwargs'] == {'k': [3]}
    assert r['pid'] == p.pid
    assert r['ppid'] == forkserver.zygote_pid()      # forked by the zygote
    assert r['parent_pid'] == os.getpid()             # ... for us
    assert r['parent_alive'] is True
    assert r['start_method'] == 'forkserver'
    assert r['stdin_is_devnull'] is True
    assert r['cwd'] == os.getcwd()


def test_child_has_only_its_fds():
    # No fd of the zygote leaks in: a forked child has no more fds than a
    # spawned one.
    spawned = mpgo.get_context('spawn').Process(target=_fs_helpers.fds_of_self)
    spawned.start()
    spawned.join()
    assert _run(_fs_helpers.fds_of_self).exitcode <= spawned.exitcode


def test_value_and_queue_args():
    v = ctx.Value('i', 10)
    q = ctx.Queue()
    ps = [ctx.Process(target=_fs_helpers.add_and_put, args=(v, q, i),
                      kwargs={'tag': 'c%d' % i}) for i in range(1, 4)]
    for p in ps:
        p.start()
    got = sorted(q.get(timeout=10) for _ in ps)
    for p in ps:
        p.join()
        assert p.exitcode == 0
    assert v.value == 16
    assert [g[0] for g in got] == ['c1', 'c2', 'c3']
    assert all(g[1] == 'forkserver' and g[3] == os.getpid() for g in got)
    assert sorted(g[2] for g in got) == sorted(p.pid for p in ps)


def test_nested_children(tmp_path):
    path = str(tmp_path / 'r')
    p = _run(_helpers.start_grandchild, path)
    assert p.exitcode == 0
    r = read_result(path)
    assert r['exitcode'] == 0
    assert r['grandchild']['parent_pid'] == p.pid
    assert r['grandchild']['start_method'] == 'forkserver'


def test_zygote_never_loads_go():
    assert _run(_helpers.exit_with, 0).exitcode == 0
    pid = forkserver.zygote_pid()
    with open('/proc/%d/maps' % pid) as f:
        assert '_pybind' not in f.read()
    with open('/proc/%d/cmdline' % pid, 'rb') as f:
        assert b'mpgo.forkserver' in f.read()


def test_stdout_goes_to_parents_current_stdout(tmp_path):
    script = write_script(tmp_path, 'main.py', '''
        import os, sys
        import mpgo, _fs_helpers
        if __name__ == '__main__':
            ctx = mpgo.get_context('forkserver')
            p = ctx.Process(target=_fs_helpers.say, args=('first',))
            p.start(); p.join()
            # A new stdout after the zygote has started: the next child
            # must write there.
            r, w = os.pipe()
            saved = os.dup(1)
            os.dup2(w, 1)
            p = ctx.Process(target=_fs_helpers.say, args=('second',))
            p.start(); p.join()
            os.dup2(saved, 1)
            os.close(w)
            print('captured', os.read(r, 100).decode().strip())
    ''')
    out = run_python([script], env=env_with_tests(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split('\n')[:2] == ['first', 'captured second']


def test_daemon_dies_with_sigkilled_parent(tmp_path):
    pid_path = str(tmp_path / 'pid')
    script = write_script(tmp_path, 'main.py', '''
        import sys, time
        import mpgo, _helpers
        from mpgo import forkserver
        if __name__ == '__main__':
            ctx = mpgo.get_context('forkserver')
            p = ctx.Process(target=_helpers.write_pid_and_sleep,
                            args=(sys.argv[1], 60), daemon=True)
            p.start()
            _helpers.wait_for_file(sys.argv[1])
            print(forkserver.zygote_pid(), flush=True)
            time.sleep(60)
    ''')
    proc = _helpers.subprocess.Popen(
        [_helpers.PYTHON, script, pid_path], env=env_with_tests(),
        stdout=_helpers.subprocess.PIPE, text=True)
    try:
        zygote = int(proc.stdout.readline())
        assert wait_for_file(pid_path)
        child = read_result(pid_path)
        assert _helpers.pid_alive(child) and _helpers.pid_alive(zygote)
        proc.kill()
        proc.wait()
        assert wait_pid_gone(zygote, 10)
        assert wait_pid_gone(child, 10)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def test_zygote_death_does_not_hang_wait():
    p = ctx.Process(target=_helpers.sleep, args=(60,), daemon=True)
    p.start()
    os.kill(forkserver.zygote_pid(), signal.SIGKILL)
    p.join(10)
    assert p.exitcode == 255      # exit code unknown
    assert wait_pid_gone(p.pid, 10)   # daemonic: died with the zygote
    # The next start brings up a new zygote.
    assert _run(_helpers.exit_with, 4).exitcode == 4


def test_many_starts_are_fast(capsys):
    n = 30
    _run(_helpers.exit_with, 0)   # the zygote is up
    times = {}
    for method in ('forkserver', 'spawn'):
        c = mpgo.get_context(method)
        t = time.perf_counter()
        for _ in range(n):
            p = c.Process(target=_helpers.exit_with, args=(0,))
            p.start()
            p.join()
            assert p.exitcode == 0
        times[method] = (time.perf_counter() - t) / n * 1e3
    with capsys.disabled():
        print('\nstart+join: forkserver %.1f ms, spawn %.1f ms'
              % (times['forkserver'], times['spawn']))


def test_start_method_from_the_environment(tmp_path):
    import subprocess
    import sys
    script = tmp_path / "env.py"
    script.write_text(
        "import os, mpgo\n"
        "def f(q): q.put(os.getpid())\n"
        "if __name__ == '__main__':\n"
        "    q = mpgo.Queue()\n"
        "    p = mpgo.Process(target=f, args=(q,))\n"
        "    p.start(); p.join()\n"
        "    print(mpgo.get_start_method(), p.exitcode, q.get(timeout=30) == p.pid)\n")
    env = dict(os.environ, MPGO_START_METHOD="forkserver")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == ["forkserver", "0", "True"], out.stderr
    env["MPGO_START_METHOD"] = "bogus"
    out = subprocess.run([sys.executable, "-c", "import mpgo"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "MPGO_START_METHOD" in out.stderr
