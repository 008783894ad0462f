"""Child targets and utilities for the tests.

Targets are module-level functions (or classmethods) so that they pickle
under spawn. Children report back by pickling a result into a file.
"""

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import mpgo

PYTHON = sys.executable


def write_result(path, obj):
    '''Atomically write obj, pickled, to path.'''
    tmp = '%s.%d.tmp' % (path, os.getpid())
    with open(tmp, 'wb') as f:
        pickle.dump(obj, f)
    os.replace(tmp, path)


def read_result(path):
    with open(path, 'rb') as f:
        return pickle.load(f)


def wait_for_file(path, timeout=10.0):
    '''Wait until path exists; return whether it does.'''
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def pid_alive(pid):
    '''Return whether pid is a running (non-zombie) process.'''
    try:
        with open('/proc/%d/stat' % pid) as f:
            state = f.read().rpartition(')')[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ('Z', 'X')


def wait_pid_gone(pid, timeout=10.0):
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def write_script(directory, name, source):
    '''Write dedented source to directory/name; return its path.'''
    path = os.path.join(str(directory), name)
    with open(path, 'w') as f:
        f.write(textwrap.dedent(source).lstrip())
    return path


def env_with_tests():
    '''Return os.environ plus the tests directory on PYTHONPATH, for
    scripts that import _helpers.'''
    env = dict(os.environ)
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (tests_dir, env.get('PYTHONPATH')) if p)
    return env


def run_python(args, cwd=None, timeout=60, env=None, **kwargs):
    '''Run python with args; return the CompletedProcess (text output).

    Output is block-buffered, as by default on a pipe, whatever
    PYTHONUNBUFFERED says: each process writes its output whole at exit,
    and nothing but the flushing at exit makes it appear.'''
    env = dict(os.environ if env is None else env)
    env.pop('PYTHONUNBUFFERED', None)
    return subprocess.run([PYTHON, *args], cwd=cwd, timeout=timeout, env=env,
                          capture_output=True, text=True, **kwargs)

#
# Targets
#


def record(path, *args, **kwargs):
    '''Write what the child sees of itself and its arguments.'''
    cur = mpgo.current_process()
    parent = mpgo.parent_process()
    write_result(path, dict(
        args=args, kwargs=kwargs, name=cur.name, daemon=cur.daemon,
        pid=os.getpid(), ppid=os.getppid(), authkey=bytes(cur.authkey),
        parent_pid=parent.pid, parent_name=parent.name,
        parent_alive=parent.is_alive(),
        start_method=mpgo.get_start_method(),
        main_name=sys.modules['__main__'].__name__,
        stdin_is_devnull=os.path.samefile(sys.stdin.fileno(), os.devnull),
        cwd=os.getcwd(), argv=sys.argv,
        marker=_marker,
    ))


_marker = 'unset'


def set_marker(value):
    global _marker
    _marker = value


def record_modules(path):
    write_result(path, sorted(sys.modules))


def exit_with(code):
    sys.exit(code)


def os_exit(code):
    sys.stdout.write('unflushed')
    os._exit(code)


def raise_error(message):
    raise ValueError(message)


def sleep(seconds):
    time.sleep(seconds)


def sleep_then_record(seconds, path):
    time.sleep(seconds)
    write_result(path, 'done')


def write_pid_and_sleep(path, seconds):
    write_result(path, os.getpid())
    time.sleep(seconds)


def start_grandchild(path):
    '''Start a grandchild that records itself; report it and its exit.'''
    grandchild_path = path + '.grandchild'
    p = mpgo.Process(target=record, args=(grandchild_path, 'gc'))
    p.start()
    p.join()
    write_result(path, dict(exitcode=p.exitcode, name=p.name,
                            child_pid=os.getpid(),
                            grandchild=read_result(grandchild_path)))


def try_to_have_child(path):
    p = mpgo.Process(target=sleep, args=(0,))
    try:
        p.start()
    except AssertionError as e:
        write_result(path, ('AssertionError', str(e)))
    else:
        p.join()
        write_result(path, ('started', p.exitcode))


def check_alias(path):
    import importlib
    mp = sys.modules.get('multiprocessing')
    write_result(path, dict(
        aliased=mp is mpgo,
        process_aliased=importlib.import_module('multiprocessing.process')
        is mpgo.process,
        main_sees_mpgo=getattr(sys.modules['__main__'], 'multiprocessing',
                               None) is mpgo,
    ))


def wait_for_parent_then_record(path):
    '''Report the parent's sentinel state across the parent's exit.'''
    parent = mpgo.parent_process()
    parent.join(timeout=30)
    write_result(path, dict(alive=parent.is_alive()))


def ignore_sigterm_and_sleep(seconds):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(seconds)


class Recorder(mpgo.Process):
    '''A Process subclass that overrides run().'''

    def __init__(self, path, value):
        super().__init__()
        self.path = path
        self.value = value

    def run(self):
        write_result(self.path, ('run', self.value, self.name))

    @classmethod
    def record_class(cls, path):
        write_result(path, cls.__name__)
