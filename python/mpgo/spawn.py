"""Start-up of child processes: the parent's side (command line, preparation
data) and the child's side (spawn_main).

A child is a fresh interpreter started as

    <python> <interpreter flags> -c 'from mpgo.spawn import spawn_main; spawn_main()' --mpgo-child

with the read end of a pipe as its fd 3. The parent writes two pickles into
the pipe: the preparation data (sys.path, sys.argv, cwd, authkey, how to
re-import __main__, whether `multiprocessing` is aliased to mpgo, ...) and
the Process object. The child applies the preparation data, imports the
parent's __main__ as __mp_main__, unpickles the Process object and runs its
_bootstrap.

Adapted from CPython's Lib/multiprocessing/spawn.py (PSF License).
"""

import os
import sys
import runpy
import signal
import threading
import types

from . import get_start_method, set_start_method
from . import process
from .context import reduction
from . import util

__all__ = ['_main', 'freeze_support', 'set_executable', 'get_executable',
           'get_preparation_data', 'get_command_line', 'import_main_path']

# The command line flag that marks an interpreter started as a child.
_CHILD_FLAG = '--mpgo-child'

# The fd on which a child reads its preparation data and Process object.
_CHILD_PIPE_FD = 3

#
# _python_exe is the assumed path to the python executable.
# People embedding Python want to modify it.
#


def set_executable(exe):
    global _python_exe
    if exe is None:
        _python_exe = exe
    else:
        _python_exe = os.fsencode(exe)


def get_executable():
    return _python_exe


set_executable(sys.executable)

#
#
#


def is_forking(argv):
    '''
    Return whether commandline indicates we are starting a child
    '''
    return len(argv) >= 2 and argv[1] == _CHILD_FLAG


def freeze_support():
    '''
    Run code for process object if this in not the main process
    '''
    if is_forking(sys.argv):
        spawn_main()
        sys.exit()


def get_command_line():
    '''
    Returns the command line used for starting a child process
    '''
    exe = os.fsdecode(get_executable())
    if getattr(sys, 'frozen', False):
        return [exe, _CHILD_FLAG]
    prog = 'from mpgo.spawn import spawn_main; spawn_main()'
    opts = util._args_from_interpreter_flags()
    return [exe] + opts + ['-c', prog, _CHILD_FLAG]


def spawn_main():
    '''
    Run code specified by data received over the pipe on fd 3
    '''
    assert is_forking(sys.argv), "Not forking"
    # Open the parent's pidfd first thing, by getppid(): while it is our
    # parent its pid cannot have been reused. _main() checks it was.
    parent_sentinel = _open_parent_sentinel(os.getppid())
    exitcode = _main(_CHILD_PIPE_FD, parent_sentinel)
    sys.exit(exitcode)


def _zygote_main(parent_pid):
    '''Run a child forked by the zygote (mpgo.zygote): as a spawned child,
    with the data on fd 3; return the exit code.'''
    # The zygote's __main__ is the parent's as it was when the zygote was
    # forked, half run: the child starts from an empty one, as a fresh
    # interpreter would. The old one stays referenced: dropping it could
    # close files its globals hold, whose fds the child may reuse.
    old_main_modules.append(sys.modules.get('__main__'))
    import builtins
    main = types.ModuleType('__main__')
    main.__builtins__ = builtins
    sys.modules['__main__'] = sys.modules['__mp_main__'] = main
    # And the interpreter's own stdio objects, over the fds the parent sent
    # (the zygote's sys.stdout may be anything the parent had replaced it
    # with when the zygote was forked: a child writes to its fds).
    sys.stdin, sys.stdout, sys.stderr = \
        sys.__stdin__, sys.__stdout__, sys.__stderr__
    return _main(_CHILD_PIPE_FD, _open_parent_sentinel(parent_pid))


def _main(fd, parent_sentinel):
    '''Read the preparation data and the Process object from fd, prepare
    and run it; return the exit code.'''
    with os.fdopen(fd, 'rb', closefd=True) as from_parent:
        process.current_process()._inheriting = True
        try:
            preparation_data = reduction.pickle.load(from_parent)
            prepare(preparation_data)
            self = reduction.pickle.load(from_parent)
        finally:
            del process.current_process()._inheriting
    if os.getppid() != self._parent_pid:
        # The parent died before its pidfd was opened (we have been
        # reparented), or the engine started us through a helper process:
        # watch the parent by its pid.
        os.close(parent_sentinel)
        parent_sentinel = _open_parent_sentinel(self._parent_pid)
    if self.daemon:
        _watch_parent(parent_sentinel)
    return self._bootstrap(parent_sentinel)

#
# The parent's sentinel, and the death of daemonic children with their parent
#


def _open_parent_sentinel(ppid):
    '''Return an fd that becomes readable when the parent exits.'''
    try:
        return os.pidfd_open(ppid)
    except ProcessLookupError:
        return _dead_sentinel()


def _dead_sentinel():
    '''Return an fd that is readable at once (the parent has gone).'''
    r, w = os.pipe()
    os.close(w)
    return r


def _watch_parent(parent_sentinel):
    '''Make sure a daemonic child dies with its parent, even when the
    parent is SIGKILLed.

    The engine normally starts daemonic children with
    PR_SET_PDEATHSIG(SIGKILL); if it did not, a daemon thread waits on the
    parent's pidfd instead.'''
    if _death_signal() == signal.SIGKILL:
        return
    t = threading.Thread(target=_kill_self_when_readable,
                         args=(parent_sentinel,),
                         name='mpgo-parent-watch', daemon=True)
    t.start()


def _kill_self_when_readable(fd):
    process._wait_readable(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def _death_signal():
    '''Return the signal this process gets when its parent dies, 0 if none
    or unknown.'''
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        sig = ctypes.c_int(0)
        PR_GET_PDEATHSIG = 2
        if libc.prctl(PR_GET_PDEATHSIG, ctypes.byref(sig), 0, 0, 0) != 0:
            return 0
        return sig.value
    except (ImportError, OSError, AttributeError):
        return 0

#
#
#


def _check_not_importing_main():
    if getattr(process.current_process(), '_inheriting', False):
        raise RuntimeError('''
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
        ''')


def get_preparation_data(name, fork=False):
    '''
    Return info about parent needed by child to unpickle process object

    With fork=True the child gets the 'fork' start method's semantics: it
    does not run __main__, whose objects come by value with the Process
    object (mpgo._forking).
    '''
    from . import _alias
    if not fork:
        _check_not_importing_main()
    from . import resource_tracker
    d = dict(
        log_to_stderr=util._log_to_stderr,
        authkey=process.current_process().authkey,
        mpgo_alias=_alias.is_installed(),
        # Unpickling it tells the child where the program's resource
        # tracker is (or will be): nothing to do in prepare().
        resource_tracker=resource_tracker._for_child(),
        )

    if util._logger is not None:
        d['log_level'] = util._logger.getEffectiveLevel()

    if fork:
        from . import _logstate
        logging_state = _logstate.snapshot()
        if logging_state is not None:
            d['mpgo_logging'] = logging_state

    sys_path = sys.path.copy()
    try:
        i = sys_path.index('')
    except ValueError:
        pass
    else:
        sys_path[i] = process.ORIGINAL_DIR

    d.update(
        name=name,
        sys_path=sys_path,
        sys_argv=sys.argv,
        orig_dir=process.ORIGINAL_DIR,
        dir=os.getcwd(),
        start_method=get_start_method(),
        )

    if fork:
        from . import _forking
        d['fork_main'] = _forking.main_info()
        return d

    # Figure out whether to initialise main in the subprocess as a module
    # or through direct execution (or to leave it alone entirely)
    main_module = sys.modules['__main__']
    main_mod_name = getattr(main_module.__spec__, "name", None)
    if main_mod_name is not None:
        d['init_main_from_name'] = main_mod_name
    else:
        main_path = getattr(main_module, '__file__', None)
        if main_path is not None:
            if (not os.path.isabs(main_path) and
                    process.ORIGINAL_DIR is not None):
                main_path = os.path.join(process.ORIGINAL_DIR, main_path)
            d['init_main_from_path'] = os.path.normpath(main_path)

    return d

#
# Prepare current process
#


old_main_modules = []


def prepare(data):
    '''
    Try to get current process ready to unpickle process object
    '''
    if data.get('mpgo_alias'):
        # Before anything can import `multiprocessing` (the main module
        # below, or a pickle naming it).
        from . import _alias
        _alias.install()
        if 'fork_main' in data:
            # Imported by the parent, as a fork child would have it.
            __import__('multiprocessing')

    if data.get('mpgo_starts_no_process'):
        from . import zygote
        zygote.no_children_expected()

    if 'name' in data:
        process.current_process().name = data['name']

    if 'authkey' in data:
        process.current_process().authkey = data['authkey']

    if 'log_to_stderr' in data and data['log_to_stderr']:
        util.log_to_stderr()

    if 'log_level' in data:
        util.get_logger().setLevel(data['log_level'])

    if 'sys_path' in data:
        sys.path = data['sys_path']

    if 'sys_argv' in data:
        sys.argv = data['sys_argv']

    if 'dir' in data:
        os.chdir(data['dir'])

    if 'orig_dir' in data:
        process.ORIGINAL_DIR = data['orig_dir']

    if 'mpgo_logging' in data:
        from . import _logstate
        _logstate.restore(data['mpgo_logging'])

    if 'start_method' in data:
        set_start_method(data['start_method'], force=True)

    if 'fork_main' in data:
        from . import _forking
        old_main_modules.append(_forking.install_main(data['fork_main']))
    elif 'init_main_from_name' in data:
        _fixup_main_from_name(data['init_main_from_name'])
    elif 'init_main_from_path' in data:
        _fixup_main_from_path(data['init_main_from_path'])

# Multiprocessing module helpers to fix up the main module in
# spawned subprocesses


def _fixup_main_from_name(mod_name):
    # __main__.py files for packages, directories, zip archives, etc, run
    # their "main only" code unconditionally, so we don't even try to
    # populate anything in __main__, nor do we make any changes to
    # __main__ attributes
    current_main = sys.modules['__main__']
    if mod_name == "__main__" or mod_name.endswith(".__main__"):
        return

    # If this process was forked, __main__ may already be populated
    if getattr(current_main.__spec__, "name", None) == mod_name:
        return

    # Otherwise, __main__ may contain some non-main code where we need to
    # support unpickling it properly. We rerun it as __mp_main__ and make
    # the normal __main__ an alias to that
    old_main_modules.append(current_main)
    main_module = types.ModuleType("__mp_main__")
    main_content = runpy.run_module(mod_name,
                                    run_name="__mp_main__",
                                    alter_sys=True)
    main_module.__dict__.update(main_content)
    sys.modules['__main__'] = sys.modules['__mp_main__'] = main_module


def _fixup_main_from_path(main_path):
    # If this process was forked, __main__ may already be populated
    current_main = sys.modules['__main__']

    # Unfortunately, the main ipython launch script historically had no
    # "if __name__ == '__main__'" guard, so we work around that
    # by treating it like a __main__.py file
    # See https://github.com/ipython/ipython/issues/4698
    main_name = os.path.splitext(os.path.basename(main_path))[0]
    if main_name == 'ipython':
        return

    # Otherwise, if __file__ already has the setting we expect,
    # there's nothing more to do
    if getattr(current_main, '__file__', None) == main_path:
        return

    # If the parent process has sent a path through rather than a module
    # name we assume it is an executable script that may contain
    # non-main code that needs to be executed
    old_main_modules.append(current_main)
    main_module = types.ModuleType("__mp_main__")
    main_content = runpy.run_path(main_path,
                                  run_name="__mp_main__")
    main_module.__dict__.update(main_content)
    sys.modules['__main__'] = sys.modules['__mp_main__'] = main_module


def import_main_path(main_path):
    '''
    Set sys.modules['__main__'] to module at main_path
    '''
    _fixup_main_from_path(main_path)
