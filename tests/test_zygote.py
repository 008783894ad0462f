"""Tests of the zygote (mpgo.zygote): the process that forks the children
of the 'fork' and 'forkserver' start methods, and never loads Go.

Its children are this process's own children (clone(CLONE_PARENT)), so the
conftest leak check sees them as any child; it knows the zygote itself.
"""

import os
import signal
import subprocess
import sys
import time

import pytest

import mpgo
import mpgo.connection
from mpgo import zygote

import _helpers
import _zygote_helpers
from _helpers import (env_with_tests, read_result, run_python, wait_for_file,
                      wait_pid_gone, write_script)

METHODS = ['fork', 'forkserver']


def _run(ctx, target, *args, **kwargs):
    p = ctx.Process(target=target, args=args, kwargs=kwargs)
    p.start()
    p.join()
    return p


@pytest.fixture(params=METHODS)
def ctx(request):
    return mpgo.get_context(request.param)


def _maps(pid):
    with open('/proc/%d/maps' % pid) as f:
        return f.read()


def test_the_default_is_fork():
    assert mpgo.get_start_method() == ('forkserver' if sys.version_info >=
                                       (3, 14) else 'fork')


@pytest.mark.parametrize('code', [0, 3, 255])
def test_exit_codes(ctx, code):
    assert _run(ctx, _helpers.exit_with, code).exitcode == code


def test_exception_is_exit_code_1(ctx):
    assert _run(ctx, _helpers.raise_error, 'boom').exitcode == 1


@pytest.mark.parametrize('method, code', [('kill', -signal.SIGKILL),
                                          ('terminate', -signal.SIGTERM)])
def test_kill_and_terminate(ctx, method, code):
    p = ctx.Process(target=_helpers.sleep, args=(60,))
    p.start()
    assert p.is_alive()
    getattr(p, method)()
    p.join(10)
    assert p.exitcode == code
    assert not p.is_alive()


def test_join_timeout_and_sentinel(ctx):
    p = ctx.Process(target=_helpers.sleep, args=(0.3,))
    p.start()
    p.join(0.05)
    assert p.exitcode is None
    assert mpgo.connection.wait([p.sentinel], 10) == [p.sentinel]
    p.join()
    assert p.exitcode == 0


def test_child_is_ours(ctx, tmp_path):
    path = str(tmp_path / 'r')
    p = _run(ctx, _helpers.record, path, 1, 'two', k=[3])
    assert p.exitcode == 0
    r = read_result(path)
    assert r['args'] == (1, 'two') and r['kwargs'] == {'k': [3]}
    assert r['pid'] == p.pid
    assert r['ppid'] == os.getpid()         # CLONE_PARENT: not the zygote's
    assert r['parent_pid'] == os.getpid()
    assert r['parent_alive'] is True
    assert r['start_method'] == ctx.get_start_method()
    assert r['stdin_is_devnull'] is True
    assert r['cwd'] == os.getcwd()
    assert zygote.zygote_pid() not in (None, p.pid, os.getpid())


def test_child_has_only_its_fds(ctx):
    # No fd of the zygote leaks in: a forked child has no more fds than a
    # spawned one.
    spawned = mpgo.get_context('spawn').Process(
        target=_zygote_helpers.fds_of_self)
    spawned.start()
    spawned.join()
    assert _run(ctx, _zygote_helpers.fds_of_self).exitcode <= spawned.exitcode


def test_value_and_queue_args(ctx):
    v = ctx.Value('i', 10)
    q = ctx.Queue()
    ps = [ctx.Process(target=_zygote_helpers.add_and_put, args=(v, q, i),
                      kwargs={'tag': 'c%d' % i}) for i in range(1, 4)]
    for p in ps:
        p.start()
    got = sorted(q.get(timeout=10) for _ in ps)
    for p in ps:
        p.join()
        assert p.exitcode == 0
    assert v.value == 16
    assert [g[0] for g in got] == ['c1', 'c2', 'c3']
    assert all(g[1] == ctx.get_start_method() and g[3] == os.getpid()
               for g in got)
    assert sorted(g[2] for g in got) == sorted(p.pid for p in ps)


def test_nested_children(ctx, tmp_path):
    path = str(tmp_path / 'r')
    p = _run(ctx, _helpers.start_grandchild, path)
    assert p.exitcode == 0
    r = read_result(path)
    assert r['exitcode'] == 0
    assert r['grandchild']['parent_pid'] == p.pid
    assert r['grandchild']['ppid'] == p.pid
    assert r['grandchild']['start_method'] == ctx.get_start_method()


def test_go_is_loaded_only_where_used(ctx):
    # A child that touches no engine object never loads Go; one that gets
    # a Queue does; the zygote never does.
    assert _run(ctx, _zygote_helpers.engine_loaded).exitcode == 0
    q = ctx.Queue()
    p = _run(ctx, _zygote_helpers.uses_queue, q)
    assert p.exitcode == 0 and q.get(timeout=10) == p.pid
    assert '_pybind' not in _maps(zygote.zygote_pid())


def test_what_a_child_inherits_is_frozen(ctx):
    # A child's collections must not write the gc headers of the objects it
    # shares with the zygote (the pages would be copied): they are frozen.
    q = ctx.Queue()
    p = _run(ctx, _zygote_helpers.frozen_and_collected, q)
    assert p.exitcode == 0
    before, after = q.get(timeout=10), q.get(timeout=10)
    assert before > 10000 and after == before


def test_stdout_goes_to_parents_current_stdout(tmp_path):
    script = write_script(tmp_path, 'main.py', '''
        import os, sys
        import mpgo, _zygote_helpers
        if __name__ == '__main__':
            for method in ('fork', 'forkserver'):
                ctx = mpgo.get_context(method)
                p = ctx.Process(target=_zygote_helpers.say, args=('first',))
                p.start(); p.join()
                # A new stdout after the zygote has started: the next
                # child must write there.
                r, w = os.pipe()
                saved = os.dup(1)
                os.dup2(w, 1)
                p = ctx.Process(target=_zygote_helpers.say, args=('second',))
                p.start(); p.join()
                os.dup2(saved, 1)
                os.close(w)
                print('captured', os.read(r, 100).decode().strip(), flush=True)
    ''')
    out = run_python([script], env=env_with_tests(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split('\n')[:4] == ['first', 'captured second'] * 2


_KILLED_PARENT = '''
    import sys, time
    import mpgo, _helpers
    from mpgo import zygote
    if __name__ == '__main__':
        ctx = mpgo.get_context(sys.argv[2])
        p = ctx.Process(target=_helpers.write_pid_and_sleep,
                        args=(sys.argv[1], 60), daemon=True)
        p.start()
        _helpers.wait_for_file(sys.argv[1])
        pool = ctx.Pool(2)
        for _ in range(zygote.SPARE_AFTER):     # then it keeps a spare
            q = ctx.Process(target=_helpers.exit_with, args=(0,))
            q.start(); q.join()
        deadline = time.monotonic() + 10
        while zygote.spare_pid() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        print(zygote.zygote_pid(), zygote.spare_pid(),
              *[w.pid for w in pool._pool], flush=True)
        time.sleep(60)
'''


@pytest.mark.parametrize('method', METHODS)
def test_sigkilled_parent_leaves_nothing(tmp_path, method):
    '''The zygote, its spare, a daemonic child and pool workers die with a
    SIGKILLed parent.'''
    pid_path = str(tmp_path / 'pid')
    script = write_script(tmp_path, 'main.py', _KILLED_PARENT)
    proc = subprocess.Popen(
        [_helpers.PYTHON, script, pid_path, method], env=env_with_tests(),
        stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(x) for x in proc.stdout.readline().split()]
        assert len(pids) == 4, 'zygote, spare and two workers: %s' % pids
        assert wait_for_file(pid_path)
        pids.append(read_result(pid_path))
        assert all(_helpers.pid_alive(pid) for pid in pids)
        proc.kill()
        proc.wait()
        for pid in pids:
            assert wait_pid_gone(pid, 5), 'pid %d outlived its parent' % pid
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def _warm(ctx):
    '''Start enough children that the zygote keeps a spare.'''
    for _ in range(zygote.SPARE_AFTER):
        _run(ctx, _helpers.exit_with, 0)


def _wait_spare():
    deadline = time.monotonic() + 10
    while zygote.spare_pid() is None:
        assert time.monotonic() < deadline, 'the zygote made no spare'
        time.sleep(0.005)
    return zygote.spare_pid()


def _zombie_or_alive(pid):
    return os.path.exists('/proc/%d' % pid)


def test_spare_becomes_the_next_child(ctx):
    '''The zygote keeps a child forked ahead of the next request; the next
    start gets it, and the zygote makes another.'''
    _warm(ctx)
    spare = _wait_spare()
    assert os.getppid() != spare and _helpers.pid_alive(spare)
    p = _run(ctx, _helpers.exit_with, 5)
    assert (p.pid, p.exitcode) == (spare, 5)
    assert _wait_spare() != spare


def test_killed_spare_is_reaped_and_replaced(ctx):
    _warm(ctx)
    spare = _wait_spare()
    os.kill(spare, signal.SIGKILL)
    assert wait_pid_gone(spare, 10)
    # The zygote finds it dead, starts the child itself, and we reap the
    # dead spare (it is our child) at the next start.
    assert _run(ctx, _helpers.exit_with, 6).exitcode == 6
    assert _run(ctx, _helpers.exit_with, 7).exitcode == 7
    assert not _zombie_or_alive(spare)
    assert _wait_spare() != spare


def _cmdline(pid):
    with open('/proc/%d/cmdline' % pid, 'rb') as f:
        return f.read()


def test_zygote_and_spare_have_a_command_line_of_their_own(ctx, tmp_path):
    '''Tools that count a process's workers by their command lines (ps,
    psutil; loky's test suite, which sets CPython's forkserver apart by
    "multiprocessing.forkserver" in its) must not take the zygote or its
    spare for one; a child, the spare become one included, shows its
    parent's command line, as a fork child does.'''
    _warm(ctx)
    spare = _wait_spare()
    for pid in (zygote.zygote_pid(), spare):
        assert _cmdline(pid).split(b'\0')[:2] == [
            b'mpgo.zygote', b'multiprocessing.forkserver'], pid
    path = str(tmp_path / 'r')
    p = _run(ctx, _zygote_helpers.record_cmdline, path)
    assert p.pid == spare
    assert read_result(path) == _cmdline(os.getpid())
    _run(ctx, _zygote_helpers.record_cmdline, path)
    assert read_result(path) == _cmdline(os.getpid())


def test_stopped_zygote_leaves_no_spare(ctx):
    _warm(ctx)
    spare = _wait_spare()
    zygote.stop()
    assert zygote.spare_pid() is None
    assert not _zombie_or_alive(spare), 'spare %d left behind' % spare


@pytest.mark.parametrize('name', ['xml.dom.minidom', 'mpgo.heap'])
def test_spare_imports_what_the_zygote_imports(ctx, tmp_path, name):
    '''A module the parent imported after the spare was made reaches the
    zygote once it is idle, and the spare too (forwarded): the children of
    later starts have it, as fork's would.'''
    _warm(ctx)
    _wait_spare()
    import importlib
    importlib.import_module(name)
    zygote.sync_modules()
    path = str(tmp_path / 'r')
    deadline = time.monotonic() + 20
    while True:
        time.sleep(0.2)     # idle: the zygote imports it
        _run(ctx, _zygote_helpers.record_has_module, path, name)
        if read_result(path) or time.monotonic() > deadline:
            break
    assert read_result(path) is True


def test_only_the_main_processs_zygote_imports_when_idle(ctx, tmp_path):
    '''The main process's zygote imports mpgo.pool once idle, for the
    children to come; a child's zygote does not: its idle time is the
    program's busy time.'''
    path = str(tmp_path / 'r')
    _run(ctx, print, '')
    time.sleep(0.5)     # idle: the zygote imports mpgo.pool
    _run(ctx, _zygote_helpers.record_has_module, path, 'mpgo.pool')
    assert read_result(path) is True
    p = _run(ctx, _zygote_helpers.idle_then_record_has_module, path, 'mpgo.pool')
    assert p.exitcode == 0
    assert read_result(path) is False


def test_zygote_never_forks_for_an_engine_module(tmp_path):
    # Modules that need the engine at import are synced to the zygote too,
    # and refused there; refusing them must not leave the zygote with a
    # zygote of its own (mpgo._engine forks one before it loads Go).
    script = write_script(tmp_path, 'main.py', '''
        import time
        import mpgo, _helpers
        from mpgo import zygote
        if __name__ == '__main__':
            v = mpgo.Value('i', 0)        # the parent loads the engine
            for code in (3, 4):
                p = mpgo.Process(target=_helpers.exit_with, args=(code,))
                p.start(); p.join()
                time.sleep(0.5)           # idle: the zygote imports
            z = zygote.zygote_pid()
            with open('/proc/%d/task/%d/children' % (z, z)) as f:
                print(p.exitcode, f.read().split())
    ''')
    out = run_python([script], env=env_with_tests(), timeout=60)
    assert out.stdout == "4 []\n", out.stderr


def _children_while_running(ctx, target):
    v, e = ctx.Value('i', 0), ctx.Event()
    p = ctx.Process(target=target, args=(v, e))
    p.start()
    deadline = time.monotonic() + 30
    while v.value == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with open('/proc/%d/task/%d/children' % (p.pid, p.pid)) as f:
        kids = f.read().split()
    e.set()
    p.join(30)
    assert p.exitcode == 0
    return kids


def test_child_whose_code_starts_nothing_forks_no_zygote(ctx):
    # A child loading the engine forks a zygote of its own first, unless
    # the parent saw that its target's code starts no process.
    assert _children_while_running(ctx, _zygote_helpers.bump_and_wait) == []
    assert len(_children_while_running(
        ctx, _zygote_helpers.bump_wait_and_maybe_start)) == 1


def test_a_wrong_guess_only_costs_time(ctx, monkeypatch):
    # Told it starts nothing, a child that does gets a fresh zygote.
    from mpgo import _leaf
    monkeypatch.setattr(_leaf, 'starts_no_process', lambda p: True)
    p = _run(ctx, _zygote_helpers.bump_and_start, ctx.Value('i', 0))
    assert p.exitcode == 7


def test_killed_zygote_is_replaced(ctx):
    p = ctx.Process(target=_helpers.sleep, args=(60,), daemon=True)
    p.start()
    old = zygote.zygote_pid()
    os.kill(old, signal.SIGKILL)
    assert wait_pid_gone(old, 10)
    # The child is ours, not the zygote's: it lives on, and we reap it.
    assert p.is_alive()
    p.terminate()
    p.join(10)
    assert p.exitcode == -signal.SIGTERM
    # The next start brings up a new zygote.
    assert _run(ctx, _helpers.exit_with, 4).exitcode == 4
    assert zygote.zygote_pid() not in (None, old)


def test_forkservers_server_is_the_zygote():
    # CPython's own tests reach for it: multiprocessing.forkserver._forkserver
    from mpgo.forkserver import _forkserver
    ctx = mpgo.get_context('forkserver')
    _forkserver.ensure_running()
    pid = _forkserver._forkserver_pid
    assert pid == zygote.zygote_pid() and _helpers.pid_alive(pid)
    os.kill(pid, signal.SIGKILL)
    assert wait_pid_gone(pid, 10)
    assert _run(ctx, _helpers.exit_with, 3).exitcode == 3
    assert _forkserver._forkserver_pid not in (None, pid)


def test_pool_through_zygote(ctx):
    with ctx.Pool(2) as pool:
        pids = pool.map(_zygote_helpers.ppid_and_pid, range(8))
    assert {ppid for ppid, _ in pids} == {os.getpid()}


def test_pool_survives_its_zygote(ctx):
    '''A pool whose zygote dies starts its next workers afresh.'''
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        first = pool.apply(os.getpid)
        os.kill(zygote.zygote_pid(), signal.SIGKILL)
        later = [pool.apply(os.getpid) for _ in range(3)]
    assert len({first, *later}) == 4


_THREADED = '''
    import threading, time
    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
    import mpgo as mp
    from mpgo import zygote

    def f(q):
        q.put(G)

    G = 'by value'
    if __name__ == '__main__':
        print('zygote at import:', zygote.zygote_pid() is not None)
        q = mp.SimpleQueue()
        p = mp.Process(target=f, args=(q,))
        p.start()
        print(q.get())
        p.join()
        print('fresh zygote:', not zygote._zygote.forked)
'''


def test_threaded_process_falls_back_to_a_fresh_zygote(tmp_path):
    script = write_script(tmp_path, 'main.py', _THREADED)
    out = run_python([script], env=env_with_tests(), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ['zygote at import: False', 'by value',
                                       'fresh zygote: True']


def test_child_without_engine_forks_its_zygote(tmp_path):
    # A child that never loaded the engine, starting a child whose target
    # is of __main__: pickling it starts a thread (the server of __main__'s
    # objects), so the zygote must be forked before, not started fresh.
    script = write_script(tmp_path, 'main.py', '''
        import sys
        import mpgo
        from mpgo import zygote

        def leaf():
            pass

        def middle():
            p = mpgo.Process(target=leaf)
            p.start()
            p.join()
            fresh = not zygote._zygote.forked
            engine = 'mpgo._native._pybind' in sys.modules
            sys.exit(10 * fresh + engine + (p.exitcode != 0) * 100)

        if __name__ == '__main__':
            p = mpgo.Process(target=middle)
            p.start()
            p.join()
            print(p.exitcode)
    ''')
    out = run_python([script], env=env_with_tests(), timeout=60)
    assert out.stdout == '0\n', out.stderr


def test_early_zygote_is_forked_at_import(tmp_path):
    script = write_script(tmp_path, 'main.py', '''
        import os
        import mpgo
        from mpgo import zygote
        z = zygote.zygote_pid()
        print(z is not None, zygote._zygote.forked,
              'mpgo._native._pybind' in __import__('sys').modules)
    ''')
    out = run_python([script], env=env_with_tests(), timeout=60)
    assert out.stdout == 'True True False\n', out.stderr


def test_os_fork_child_gets_its_own_zygote(tmp_path):
    script = write_script(tmp_path, 'main.py', '''
        import os, sys
        import mpgo, _helpers
        from mpgo import zygote
        if __name__ == '__main__':
            first = zygote.zygote_pid()
            pid = os.fork()
            if pid == 0:
                p = mpgo.Process(target=_helpers.exit_with, args=(5,))
                p.start(); p.join()
                ok = p.exitcode == 5 and zygote.zygote_pid() not in (None, first)
                os._exit(0 if ok else 1)
            _, status = os.waitpid(pid, 0)
            print(os.waitstatus_to_exitcode(status))
    ''')
    out = run_python([script], env=env_with_tests(), timeout=60)
    assert out.stdout == '0\n', out.stderr


def test_forkserver_preload(tmp_path):
    marker = tmp_path / 'imports'
    (tmp_path / 'noisy.py').write_text(
        'import os\n'
        'with open(%r, "a") as f: f.write("%%d\\n" %% os.getpid())\n'
        % str(marker))
    script = write_script(tmp_path, 'main.py', '''
        import sys
        import mpgo, _helpers
        if __name__ == '__main__':
            ctx = mpgo.get_context('forkserver')
            ctx.set_forkserver_preload(['noisy'])
            for _ in range(3):
                p = ctx.Process(target=_helpers.record_modules, args=(sys.argv[1],))
                p.start(); p.join()
            print('noisy' in _helpers.read_result(sys.argv[1]))
    ''')
    env = env_with_tests()
    env['PYTHONPATH'] = str(tmp_path) + os.pathsep + env['PYTHONPATH']
    out = run_python([script, str(tmp_path / 'mods')], env=env, timeout=60)
    assert out.stdout == 'True\n', out.stderr
    # Imported once, by the zygote, not by each child.
    assert len(marker.read_text().split()) == 1


def test_many_starts(capsys):
    n = 30
    times = {}
    for method in ('fork', 'forkserver', 'spawn'):
        c = mpgo.get_context(method)
        _run(c, _helpers.exit_with, 0)   # the zygote is up
        t = time.perf_counter()
        for _ in range(n):
            p = c.Process(target=_helpers.exit_with, args=(0,))
            p.start()
            p.join()
            assert p.exitcode == 0
        times[method] = (time.perf_counter() - t) / n * 1e3
    with capsys.disabled():
        print('\nstart+join: ' + ', '.join('%s %.1f ms' % kv
                                           for kv in times.items()))


def test_start_method_from_the_environment(tmp_path):
    script = tmp_path / "env.py"
    script.write_text(
        "import os, mpgo\n"
        "def f(q): q.put(os.getpid())\n"
        "if __name__ == '__main__':\n"
        "    q = mpgo.Queue()\n"
        "    p = mpgo.Process(target=f, args=(q,))\n"
        "    p.start(); p.join()\n"
        "    print(mpgo.get_start_method(), p.exitcode, q.get(timeout=30) == p.pid)\n")
    for method in ('spawn', 'forkserver'):
        env = dict(os.environ, MPGO_START_METHOD=method)
        out = subprocess.run([sys.executable, str(script)], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.stdout.split() == [method, "0", "True"], out.stderr
    env["MPGO_START_METHOD"] = "bogus"
    out = subprocess.run([sys.executable, "-c", "import mpgo"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "MPGO_START_METHOD" in out.stderr
