"""Tests of mpgo.Process and the process layer around it: start methods,
exit codes, joins, sentinels, parents and children, daemons, signals, the
child's bootstrap and `python -m mpgo`.
"""

import os
import pickle
import re
import select
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import mpgo
import mpgo.process
from mpgo import util

import _helpers
from _helpers import (env_with_tests, read_result, run_python,
                      write_script)

# CPython's text, word for word (Lib/multiprocessing/spawn.py).
MAIN_GUARD_ERROR = '''
        An attempt has been made to start a new process before the
        current process has finished its bootstrapping phase.

        This probably means that you are not using fork to start your
        child processes and you have forgotten to use the proper idiom
        in the main module:

            if __name__ == '__main__':
                freeze_support()
                ...

        The "freeze_support()" line can be omitted if the program
        is not going to be frozen to produce an executable.

        To fix this issue, refer to the "Safe importing of main module"
        section in https://docs.python.org/3/library/multiprocessing.html
        '''


def _run(target, *args, **kwargs):
    '''Start a Process, join it and return it.'''
    p = mpgo.Process(target=target, args=args, kwargs=kwargs)
    p.start()
    p.join()
    return p


def _readable(fd):
    return bool(select.select([fd], [], [], 0)[0])

#
# Target, arguments, name, daemon, run()
#


def test_target_args_kwargs(tmp_path):
    path = str(tmp_path / 'r')
    p = _run(_helpers.record, path, 1, 'two', k=[3, 4], j=None)
    assert p.exitcode == 0
    r = read_result(path)
    assert r['args'] == (1, 'two')
    assert r['kwargs'] == {'k': [3, 4], 'j': None}


def test_child_gets_parents_cwd_argv_and_devnull_stdin(tmp_path):
    path = str(tmp_path / 'r')
    _run(_helpers.record, path)
    r = read_result(path)
    assert r['cwd'] == os.getcwd()
    assert r['argv'] == sys.argv
    assert r['stdin_is_devnull'] is True
    assert r['pid'] != os.getpid()
    assert r['ppid'] == os.getpid()


def test_default_and_given_names(tmp_path):
    path = str(tmp_path / 'r')
    p = mpgo.Process(target=_helpers.record, args=(path,))
    assert re.fullmatch(r'Process-\d+', p.name)
    p.start()
    p.join()
    assert read_result(path)['name'] == p.name

    q = mpgo.Process(target=_helpers.record, args=(path,), name='worker')
    assert q.name == 'worker'
    q.name = 'renamed'
    q.start()
    q.join()
    assert read_result(path)['name'] == 'renamed'
    with pytest.raises(AssertionError):
        q.name = 3


def test_process_counter_increments():
    a, b = mpgo.Process(), mpgo.Process()
    na = int(a.name.split('-')[1])
    assert b.name == 'Process-%d' % (na + 1)


def test_daemon_flag(tmp_path):
    path = str(tmp_path / 'r')
    p = mpgo.Process(target=_helpers.record, args=(path,), daemon=True)
    assert p.daemon is True
    p.start()
    with pytest.raises(AssertionError, match='process has already started'):
        p.daemon = False
    p.join()
    assert read_result(path)['daemon'] is True

    q = mpgo.Process(target=_helpers.record, args=(path,))
    assert q.daemon is False
    q.daemon = True
    q.daemon = False
    q.start()
    q.join()
    assert read_result(path)['daemon'] is False


def test_run_overridden_in_subclass(tmp_path):
    path = str(tmp_path / 'r')
    p = _helpers.Recorder(path, 42)
    p.start()
    p.join()
    assert p.exitcode == 0
    assert read_result(path) == ('run', 42, p.name)
    assert p.name.startswith('Recorder-')


def test_classmethod_target(tmp_path):
    path = str(tmp_path / 'r')
    p = _run(_helpers.Recorder.record_class, path)
    assert p.exitcode == 0
    assert read_result(path) == 'Recorder'


def test_no_target_runs_nothing():
    p = _run(None)
    assert p.exitcode == 0


def test_group_must_be_none():
    with pytest.raises(AssertionError):
        mpgo.Process(group=1)

#
# Exit codes and what a dying child prints
#


@pytest.mark.parametrize('target, args, exitcode, err', [
    (_helpers.exit_with, (None,), 0, ''),
    (_helpers.exit_with, (0,), 0, ''),
    (_helpers.exit_with, (5,), 5, ''),
    (_helpers.exit_with, ('fatal message',), 1, 'fatal message\n'),
    (_helpers.os_exit, (7,), 7, ''),
])
def test_exit_codes(capfd, target, args, exitcode, err):
    p = _run(target, *args)
    assert p.exitcode == exitcode
    assert capfd.readouterr().err == err


def test_uncaught_exception_gives_traceback_and_exitcode_1(capfd):
    p = _run(_helpers.raise_error, 'boom')
    assert p.exitcode == 1
    err = capfd.readouterr().err
    assert err.startswith('Process %s:\nTraceback (most recent call last):\n'
                          % p.name)
    assert 'in raise_error' in err
    assert err.endswith('ValueError: boom\n')


def test_kill_gives_minus_sigkill():
    p = mpgo.Process(target=_helpers.sleep, args=(60,))
    p.start()
    p.kill()
    p.join()
    assert p.exitcode == -signal.SIGKILL
    assert 'exitcode=-SIGKILL' in repr(p)


def test_terminate_gives_minus_sigterm():
    p = mpgo.Process(target=_helpers.sleep, args=(60,))
    p.start()
    p.terminate()
    p.join()
    assert p.exitcode == -signal.SIGTERM
    assert 'exitcode=-SIGTERM' in repr(p)


def test_terminate_after_exit_is_harmless():
    p = _run(_helpers.exit_with, 3)
    p.terminate()
    p.kill()
    assert p.exitcode == 3

#
# join, is_alive, close
#


def test_join_timeout_returns_on_time_while_child_lives():
    p = mpgo.Process(target=_helpers.sleep, args=(60,))
    p.start()
    try:
        t0 = time.monotonic()
        p.join(0.3)
        elapsed = time.monotonic() - t0
        assert 0.25 <= elapsed < 3
        assert p.is_alive()
        assert p.exitcode is None
        assert p in mpgo.active_children()
        t0 = time.monotonic()
        p.join(0)
        assert time.monotonic() - t0 < 1
    finally:
        p.terminate()
        p.join()
    assert p not in mpgo.active_children()


def test_join_waits_for_exit(tmp_path):
    path = str(tmp_path / 'r')
    p = mpgo.Process(target=_helpers.sleep_then_record, args=(0.3, path))
    p.start()
    p.join()
    assert read_result(path) == 'done'
    assert p.exitcode == 0
    p.join()   # again: returns at once


def test_is_alive_through_the_lifecycle():
    p = mpgo.Process(target=_helpers.sleep, args=(60,))
    assert not p.is_alive()
    assert p.exitcode is None
    p.start()
    assert p.is_alive()
    assert repr(p).endswith('started>')
    p.terminate()
    p.join()
    assert not p.is_alive()
    assert 'stopped' in repr(p)


def test_start_twice_and_join_unstarted():
    p = mpgo.Process(target=_helpers.sleep, args=(0,))
    with pytest.raises(AssertionError, match='can only join a started'):
        p.join()
    p.start()
    with pytest.raises(AssertionError, match='cannot start a process twice'):
        p.start()
    p.join()


def test_close():
    p = mpgo.Process(target=_helpers.sleep, args=(60,))
    p.start()
    with pytest.raises(ValueError, match='still running'):
        p.close()
    p.terminate()
    p.join()
    p.close()
    p.close()   # closing twice is fine
    assert 'closed' in repr(p)
    for use in (lambda: p.pid, lambda: p.exitcode, lambda: p.sentinel,
                p.is_alive, p.join, p.start, p.terminate, p.kill):
        with pytest.raises(ValueError, match='process object is closed'):
            use()


def test_close_unstarted():
    p = mpgo.Process(target=_helpers.sleep, args=(0,))
    p.close()
    with pytest.raises(ValueError):
        p.start()

#
# pid, ident, sentinel, authkey
#


def test_pid_ident_sentinel(tmp_path):
    path = str(tmp_path / 'r')
    p = mpgo.Process(target=_helpers.sleep_then_record, args=(0.5, path))
    assert p.pid is None and p.ident is None
    with pytest.raises(ValueError, match='process not started'):
        p.sentinel
    p.start()
    assert p.pid == p.ident and p.pid > 0
    assert isinstance(p.sentinel, int)
    assert not _readable(p.sentinel)
    assert select.select([p.sentinel], [], [], 10)[0] == [p.sentinel]
    p.join()
    assert _readable(p.sentinel)
    assert 'pid=%d' % p.pid in repr(p)


def test_authkey_is_inherited_and_not_picklable(tmp_path):
    path = str(tmp_path / 'r')
    _run(_helpers.record, path)
    key = mpgo.current_process().authkey
    assert isinstance(key, mpgo.process.AuthenticationString)
    assert len(key) == 32
    assert read_result(path)['authkey'] == key
    with pytest.raises(TypeError, match='disallowed for security reasons'):
        pickle.dumps(key)


def test_authkey_set_on_process(tmp_path):
    path = str(tmp_path / 'r')
    p = mpgo.Process(target=_helpers.record, args=(path,))
    p.authkey = b'secret'
    assert isinstance(p.authkey, mpgo.process.AuthenticationString)
    p.start()
    p.join()
    assert read_result(path)['authkey'] == b'secret'

#
# current_process, parent_process, active_children, cpu_count
#


def test_current_process_in_parent():
    cur = mpgo.current_process()
    assert cur.name == 'MainProcess'
    assert cur.pid == os.getpid()
    assert cur.is_alive()
    assert mpgo.parent_process() is None
    assert cur.daemon is False


def test_cpu_count():
    assert mpgo.cpu_count() == os.cpu_count()


def test_active_children():
    p = mpgo.Process(target=_helpers.sleep, args=(60,))
    assert p not in mpgo.active_children()
    p.start()
    assert p in mpgo.active_children()
    p.kill()
    p.join()
    assert p not in mpgo.active_children()


def test_parent_process_in_child(tmp_path):
    path = str(tmp_path / 'r')
    _run(_helpers.record, path)
    r = read_result(path)
    assert r['parent_pid'] == os.getpid()
    assert r['parent_name'] == 'MainProcess'
    assert r['parent_alive'] is True


@pytest.mark.slow
def test_parent_sentinel_fires_when_parent_exits(tmp_path):
    path = str(tmp_path / 'r')
    script = write_script(tmp_path, 'parent.py', f'''
        import os, mpgo, _helpers
        if __name__ == '__main__':
            p = mpgo.Process(target=_helpers.wait_for_parent_then_record,
                             args=({path!r},))
            p.start()
            os._exit(0)   # leave without joining the child
    ''')
    run_python([script], cwd=str(tmp_path), env=env_with_tests())
    assert _helpers.wait_for_file(path, 20)
    assert read_result(path) == {'alive': False}

#
# Grandchildren and daemons
#


def test_nested_children(tmp_path):
    path = str(tmp_path / 'r')
    p = _run(_helpers.start_grandchild, path)
    assert p.exitcode == 0
    r = read_result(path)
    assert r['exitcode'] == 0
    assert r['name'] == p.name + ':1'
    gc = r['grandchild']
    assert gc['args'] == ('gc',)
    assert gc['ppid'] == r['child_pid'] == p.pid
    assert gc['parent_pid'] == p.pid
    assert gc['parent_name'] == p.name
    assert gc['authkey'] == mpgo.current_process().authkey


def test_daemon_may_not_have_children(tmp_path):
    path = str(tmp_path / 'r')
    p = mpgo.Process(target=_helpers.try_to_have_child, args=(path,),
                     daemon=True)
    p.start()
    p.join()
    assert read_result(path) == (
        'AssertionError',
        'daemonic processes are not allowed to have children')


def test_daemon_terminated_when_parent_exits(tmp_path):
    path = str(tmp_path / 'pid')
    script = write_script(tmp_path, 'parent.py', f'''
        import mpgo, _helpers
        if __name__ == '__main__':
            p = mpgo.Process(target=_helpers.write_pid_and_sleep,
                             args=({path!r}, 60), daemon=True)
            p.start()
            assert _helpers.wait_for_file({path!r})
            print('parent done')
    ''')
    t0 = time.monotonic()
    res = run_python([script], cwd=str(tmp_path), env=env_with_tests())
    assert res.returncode == 0, res.stderr
    assert res.stdout == 'parent done\n'
    assert time.monotonic() - t0 < 30
    assert _helpers.wait_pid_gone(read_result(path))


@pytest.mark.slow
def test_daemon_killed_when_parent_is_sigkilled(tmp_path):
    path = str(tmp_path / 'pid')
    script = write_script(tmp_path, 'parent.py', f'''
        import time, mpgo, _helpers
        if __name__ == '__main__':
            p = mpgo.Process(target=_helpers.write_pid_and_sleep,
                             args=({path!r}, 60), daemon=True)
            p.start()
            time.sleep(60)
    ''')
    parent = subprocess.Popen([sys.executable, script], cwd=str(tmp_path),
                              env=env_with_tests())
    try:
        assert _helpers.wait_for_file(path, 20)
        child_pid = read_result(path)
        assert _helpers.pid_alive(child_pid)
    finally:
        parent.kill()
        parent.wait()
    assert _helpers.wait_pid_gone(child_pid, 10)

#
# Output, the __main__ guard, Ctrl-C
#


def test_child_output_is_flushed_through_pipes(tmp_path):
    script = write_script(tmp_path, 'script.py', '''
        import sys, mpgo

        def speak(end):
            print('child out', end=end)
            sys.stderr.write('child err')
            if end == 'exit':
                sys.exit(4)
            if end == 'raise':
                raise KeyError('k')

        if __name__ == '__main__':
            print('parent before')
            for end in ('', 'exit', 'raise'):
                p = mpgo.Process(target=speak, args=(end,))
                p.start()
                p.join()
                print('exitcode', p.exitcode)
    ''')
    res = run_python([script], cwd=str(tmp_path))   # block-buffered
    assert res.returncode == 0, res.stderr
    assert res.stdout == ('parent before\n'
                          'child outexitcode 0\n'
                          'child outexitexitcode 4\n'
                          'child outraiseexitcode 1\n')
    assert res.stderr.startswith('child errchild errchild errProcess ')
    assert "KeyError: 'k'" in res.stderr


@pytest.mark.parametrize('method', ['spawn', 'forkserver', 'fork'])
def test_missing_main_guard_gives_cpython_error(tmp_path, method):
    script = write_script(tmp_path, 'noguard.py', '''
        import os
        import mpgo

        def work():
            pass

        p = mpgo.get_context(os.environ['METHOD']).Process(target=work)
        p.start()
        p.join()
        print('exitcode', p.exitcode)
    ''')
    res = run_python([script], cwd=str(tmp_path),
                     env=dict(os.environ, METHOD=method))
    assert res.returncode == 0
    if method == 'fork':
        # A fork child does not run __main__: no guard is needed.
        assert res.stdout == 'exitcode 0\n', res.stderr
        return
    # The parent runs on; the child reports the error and exits with 1.
    assert res.stdout == 'exitcode 1\n'
    assert 'RuntimeError: ' + MAIN_GUARD_ERROR in res.stderr


@pytest.mark.slow
def test_ctrl_c_interrupts_a_blocked_join(tmp_path):
    script = write_script(tmp_path, 'script.py', '''
        import time, mpgo

        if __name__ == '__main__':
            p = mpgo.Process(target=time.sleep, args=(60,))
            p.start()
            print('ready', flush=True)
            p.join()
    ''')
    proc = subprocess.Popen([sys.executable, script], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout.readline() == 'ready\n'
        time.sleep(0.3)
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)   # Ctrl-C: the whole group
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert elapsed < 10
    assert proc.returncode == -signal.SIGINT
    assert 'KeyboardInterrupt' in err
    assert 'in join' in err


@pytest.mark.slow
def test_sigint_interrupts_a_timed_join_and_daemon_is_reaped(tmp_path):
    path = str(tmp_path / 'pid')
    script = write_script(tmp_path, 'script.py', f'''
        import mpgo, _helpers

        if __name__ == '__main__':
            p = mpgo.Process(target=_helpers.write_pid_and_sleep,
                             args=({path!r}, 60), daemon=True)
            p.start()
            assert _helpers.wait_for_file({path!r})
            print('ready', flush=True)
            p.join(50)
    ''')
    proc = subprocess.Popen([sys.executable, script], cwd=str(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env_with_tests())
    try:
        assert proc.stdout.readline() == 'ready\n'
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)   # the parent only
        out, err = proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert elapsed < 10
    assert 'KeyboardInterrupt' in err
    assert _helpers.wait_pid_gone(read_result(path), 10)

def test_log_to_stderr_is_inherited(tmp_path):
    script = write_script(tmp_path, 'script.py', '''
        import logging, mpgo
        from mpgo import util

        def work():
            util.info('hello from %s', mpgo.current_process().name)

        if __name__ == '__main__':
            mpgo.log_to_stderr(logging.INFO)
            p = mpgo.Process(target=work, name='w')
            p.start()
            p.join()
    ''')
    res = run_python([script], cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    for line in ('[INFO/w] child process calling self.run()',
                 '[INFO/w] hello from w',
                 '[INFO/w] process exiting with exitcode 0',
                 '[INFO/MainProcess] process shutting down'):
        assert line in lines


def test_parent_watch_kills_when_parent_goes(tmp_path):
    # What a daemonic child falls back on if the engine could not give it
    # a death signal: a thread that SIGKILLs the process when the parent's
    # sentinel becomes readable.
    script = write_script(tmp_path, 'script.py', '''
        import os, time
        from mpgo import spawn
        spawn._death_signal = lambda: 0
        r, w = os.pipe()
        spawn._watch_parent(r)
        os.close(w)   # "the parent has exited"
        time.sleep(30)
    ''')
    res = run_python([script], cwd=str(tmp_path))
    assert res.returncode == -signal.SIGKILL


def test_freeze_support_and_set_executable(tmp_path):
    from mpgo import spawn
    mpgo.freeze_support()   # not frozen: nothing to do
    saved = spawn.get_executable()
    try:
        mpgo.set_executable(os.path.realpath(sys.executable))
        assert spawn.get_executable() == os.fsencode(
            os.path.realpath(sys.executable))
        assert spawn.get_command_line()[0] == os.path.realpath(sys.executable)
        p = _run(_helpers.exit_with, 9)
        assert p.exitcode == 9
    finally:
        spawn._python_exe = saved


def test_set_forkserver_preload():
    mpgo.set_forkserver_preload(['os'])
    with pytest.raises(TypeError):
        mpgo.set_forkserver_preload([1])


def test_child_command_line():
    from mpgo import spawn
    cmd = spawn.get_command_line()
    assert cmd[-3:] == ['-c', 'from mpgo.spawn import spawn_main; '
                        'spawn_main()', '--mpgo-child']
    assert cmd[1:-3] == util._args_from_interpreter_flags()

#
# Contexts and start methods
#


def test_get_all_start_methods():
    # CPython's order on Linux, the default first.
    assert mpgo.get_all_start_methods() == ['fork', 'spawn', 'forkserver']


def test_get_context():
    for method in ('spawn', 'fork', 'forkserver'):
        ctx = mpgo.get_context(method)
        assert ctx.get_start_method() == method
        assert ctx is mpgo.get_context(method)
        assert ctx.Process._start_method == method
        with pytest.raises(ValueError, match='cannot set start method'):
            ctx.set_start_method('spawn')
    with pytest.raises(ValueError, match="cannot find context for 'bogus'"):
        mpgo.get_context('bogus')
    assert mpgo.get_context().get_start_method() == mpgo.get_start_method()


def test_set_start_method(tmp_path):
    ctx = mpgo.context._default_context
    saved = ctx._actual_context
    try:
        mpgo.set_start_method(None, force=True)
        assert mpgo.get_start_method(allow_none=True) is None
        mpgo.set_start_method('fork')
        assert mpgo.get_start_method() == 'fork'
        with pytest.raises(RuntimeError, match='context has already been set'):
            mpgo.set_start_method('spawn')
        path = str(tmp_path / 'r')
        _run(_helpers.record, path)
        assert read_result(path)['start_method'] == 'fork'
        mpgo.set_start_method('forkserver', force=True)
        assert mpgo.get_start_method() == 'forkserver'
    finally:
        ctx._actual_context = saved
    assert mpgo.get_context('spawn').get_start_method() == 'spawn'


def test_fork_context_runs_a_fresh_interpreter(tmp_path):
    path = str(tmp_path / 'r')
    _helpers.set_marker('set in parent')
    try:
        ctx = mpgo.get_context('fork')
        p = ctx.Process(target=_helpers.record, args=(path, 'x'))
        p.start()
        p.join()
    finally:
        _helpers.set_marker('unset')
    assert p.exitcode == 0
    r = read_result(path)
    assert r['args'] == ('x',)
    assert r['start_method'] == 'fork'
    assert r['marker'] == 'unset'   # nothing was inherited by fork


def test_fork_start_method_script_runs(tmp_path):
    script = write_script(tmp_path, 'script.py', '''
        import multiprocessing as mp

        def hello(n):
            print('hello', n, mp.get_start_method())

        if __name__ == '__main__':
            mp.set_start_method('fork')
            ps = [mp.Process(target=hello, args=(i,)) for i in range(2)]
            for p in ps:
                p.start()
            for p in ps:
                p.join()
            print([p.exitcode for p in ps])
    ''')
    res = run_python(['-m', 'mpgo', script], cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert sorted(lines[:2]) == ['hello 0 fork', 'hello 1 fork']
    assert lines[2] == '[0, 0]'


def test_reducer_and_logger():
    from mpgo import reduction
    assert mpgo.reducer is reduction
    assert mpgo.get_context('spawn').reducer is reduction
    assert mpgo.get_logger() is util.get_logger()
    assert mpgo.get_logger().name == 'multiprocessing'
    assert mpgo.SUBDEBUG == 5 and mpgo.SUBWARNING == 25


def test_module_level_names_match_cpython():
    expected = {
        'Array', 'AuthenticationError', 'Barrier', 'BoundedSemaphore',
        'BufferTooShort', 'Condition', 'Event', 'JoinableQueue', 'Lock',
        'Manager', 'Pipe', 'Pool', 'Process', 'ProcessError', 'Queue',
        'RLock', 'RawArray', 'RawValue', 'Semaphore', 'SimpleQueue',
        'TimeoutError', 'Value', 'active_children',
        'allow_connection_pickling', 'cpu_count', 'current_process',
        'freeze_support', 'get_all_start_methods', 'get_context',
        'get_logger', 'get_start_method', 'log_to_stderr', 'parent_process',
        'reducer', 'set_executable', 'set_forkserver_preload',
        'set_start_method'}
    assert expected <= set(mpgo.__all__)
    for name in expected:
        assert hasattr(mpgo, name)


def test_import_is_lazy_and_never_loads_stdlib_multiprocessing(tmp_path):
    path = str(tmp_path / 'r')
    code = textwrap.dedent(f'''
        import sys
        import mpgo, mpgo.context, mpgo.process, mpgo.reduction, mpgo.spawn
        import mpgo.util, mpgo.popen_spawn_posix, mpgo.popen_fork
        import mpgo.popen_forkserver
        assert 'mpgo._engine' not in sys.modules, 'engine loaded at import'
        import _helpers
        p = mpgo.Process(target=_helpers.record, args=({path!r},))
        p.start(); p.join()
        bad = [m for m in sys.modules
               if m == 'multiprocessing' or m.startswith('multiprocessing.')
               or m == 'concurrent.futures.process']
        assert not bad, bad
        print('ok')
    ''')
    res = run_python(['-c', code], cwd=str(tmp_path), env=env_with_tests())
    assert res.returncode == 0, res.stderr
    assert res.stdout == 'ok\n'


def test_a_program_that_starts_nothing_imports_no_more_than_it_needs(tmp_path):
    # What `import multiprocessing` under `python -m mpgo` costs: no engine,
    # and not mpgo.util (its import and atexit hook are for programs that
    # start processes; the zygote has it for its children).
    script = tmp_path / 'prog.py'
    script.write_text(textwrap.dedent('''
        import sys
        import multiprocessing
        from mpgo import zygote
        assert zygote.zygote_pid(), 'no zygote'
        print(sorted(m for m in ('mpgo.util', 'mpgo._engine', 'mpgo.pool',
                                 'mpgo.managers', 'cloudpickle', 'inspect')
                     if m in sys.modules))
    '''))
    res = run_python(['-m', 'mpgo', str(script)], cwd=str(tmp_path),
                     env=env_with_tests())
    assert res.returncode == 0, res.stderr
    assert res.stdout == '[]\n'


def test_child_never_loads_stdlib_multiprocessing(tmp_path):
    path = str(tmp_path / 'r')
    p = _run(_helpers.record_modules, path)
    assert p.exitcode == 0
    modules = read_result(path)
    assert not [m for m in modules
                if m == 'multiprocessing' or m.startswith('multiprocessing.')]
    assert 'mpgo._engine' not in modules


_FLAG_SETS = [[], ['-B'], ['-O', '-s', '-X', 'importtime', '-W', 'error::DeprecationWarning'],
              ['-I', '-b', '-X', 'dev', '-q'], ['-bb', '-OO', '-E', '-X', 'faulthandler',
                                              '-X', 'utf8=0', '-X', 'tracemalloc=3'],
              ['-d', '-v', '-S', '-X', 'showrefcount']]
if sys.version_info >= (3, 11):
    _FLAG_SETS.append(['-P', '-X', 'frozen_modules=off'])


@pytest.mark.parametrize('flags', _FLAG_SETS, ids=' '.join)
def test_child_flags_are_subprocess_s(flags):
    '''util._args_from_interpreter_flags (which spares a Pool the import of
    subprocess) says what subprocess's says, under every option it knows.'''
    code = ('import sys, subprocess; sys.path.insert(0, %r); '
            'from mpgo import util; '
            'print(util._args_from_interpreter_flags() == '
            'subprocess._args_from_interpreter_flags(), '
            'subprocess._args_from_interpreter_flags())'
            % os.path.dirname(os.path.dirname(os.path.abspath(mpgo.__file__))))
    out = subprocess.run([sys.executable] + flags + ['-c', code],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith('True '), out.stdout
