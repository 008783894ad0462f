"""Run a multiprocessing program, unmodified, on mpgo.

    python -m mpgo script.py [args]     run a script as __main__
    python -m mpgo -m module [args]     run a module as __main__ (like -m)
    python -m mpgo -c command [args]    run a command as __main__ (like -c)
    python -m mpgo - [args]             run the program read from stdin

`multiprocessing` and every `multiprocessing.X` resolve to mpgo's module of
the same name, in the program and in every process it starts. sys.argv,
sys.path[0] and the exit status are what `python script.py` would give.

    python -m mpgo --cluster ADDRESS script.py [args]

(or MPGO_CLUSTER=ADDRESS) also binds `multiprocessing`'s Process, Pool,
Queue, Lock, Value, Manager, ... to the cluster context (mpgo.cluster): the
program runs here, its processes and pools on the Dask cluster at ADDRESS.

The program runs in a fresh module installed as sys.modules['__main__'] for
the rest of the interpreter's life (as `python script.py` does), rather than
through runpy.run_path, which restores the previous __main__ on return:
threads still running after the main body, and atexit handlers, must be
able to start processes whose targets live in __main__.
"""

import os
import sys

__all__ = ['main']

_USAGE = """\
usage: python -m mpgo [--cluster ADDRESS] script.py [args...]
       python -m mpgo [--cluster ADDRESS] -m module [args...]
       python -m mpgo [--cluster ADDRESS] -c command [args...]
       python -m mpgo [--cluster ADDRESS] - [args...]

Run a multiprocessing program on mpgo: `multiprocessing` and all its
submodules resolve to mpgo's modules. With --cluster (or MPGO_CLUSTER set),
its processes, pools and shared objects live on a Dask cluster: ADDRESS is
a scheduler's (tcp://host:port), or `local` for a cluster of this
machine (needs `pip install mpgo[cluster]`).
"""


def _fresh_main():
    '''Install and return an empty module as __main__ (and __mp_main__).'''
    import builtins
    import types
    main = types.ModuleType('__main__')
    main.__builtins__ = builtins
    sys.modules['__main__'] = sys.modules['__mp_main__'] = main
    return main


def _run_path(path, args):
    '''Run the script at path as `python path args...` would.'''
    import importlib.machinery
    import runpy
    sys.argv = [path, *args]
    abspath = os.path.abspath(path)
    if not os.path.exists(path):
        sys.stderr.write("%s: can't open file %r: [Errno 2] No such file or "
                         "directory\n" % (sys.executable, abspath))
        sys.exit(2)
    if os.path.isdir(path) or _is_zipfile(path):
        # A directory or zip archive with a __main__.py: python puts it on
        # sys.path and runs its __main__ module.
        sys.path[0] = abspath
        _fresh_main()
        runpy._run_module_as_main('__main__', alter_argv=False)
        return
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    main = _fresh_main()
    if path.endswith(('.pyc', '.pyo')):
        import pkgutil
        with open(path, 'rb') as f:
            code = pkgutil.read_code(f)
        if code is None:
            raise RuntimeError("Can't find __main__ module in %r" % path)
        loader = importlib.machinery.SourcelessFileLoader('__main__', abspath)
    else:
        import io
        with io.open_code(abspath) as f:
            code = compile(f.read(), abspath, 'exec', dont_inherit=True)
        loader = importlib.machinery.SourceFileLoader('__main__', abspath)
    main.__dict__.update(__file__=abspath, __cached__=None, __loader__=loader,
                         __spec__=None, __package__=None)
    exec(code, main.__dict__)


def _is_zipfile(path):
    # Importing zipfile (and pathlib, shutil, urllib with it) costs ~20 ms,
    # more than the rest of a short script's start-up: only a file whose
    # tail holds a zip's end-of-central-directory signature needs it. That
    # record is within the last 64 KiB + 22 bytes (its comment's limit).
    try:
        with open(path, 'rb') as f:
            size = f.seek(0, 2)
            f.seek(max(0, size - 65557))
            if b'PK\x05\x06' not in f.read():
                return False
    except OSError:
        return False
    import zipfile
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _run_module(name, args):
    '''Run module name as `python -m name args...` would.'''
    import runpy
    sys.argv = ['-m', *args]   # runpy puts the module's path in argv[0]
    _fresh_main()
    runpy._run_module_as_main(name, alter_argv=True)


def _run_command(command, args, argv0='-c', filename='<string>'):
    '''Run command as `python -c command args...` would.'''
    sys.argv = [argv0, *args]
    sys.path[0] = ''
    main = _fresh_main()
    main.__dict__.update(__spec__=None, __package__=None, __loader__=None)
    exec(compile(command, filename, 'exec', dont_inherit=True),
         main.__dict__)


def _install_excepthook():
    '''Hide the launcher's own frames from tracebacks of uncaught
    exceptions, so they read as they would under `python script.py`.'''
    import runpy
    hidden = {__file__, runpy.__file__, '<frozen runpy>'}
    original = sys.excepthook

    def excepthook(exc_type, exc, tb):
        trimmed = tb
        while trimmed is not None and \
                trimmed.tb_frame.f_code.co_filename in hidden:
            trimmed = trimmed.tb_next
        if isinstance(exc, BaseException):
            # The exception's own traceback is what gets printed.
            exc.__traceback__ = trimmed
        original(exc_type, exc, trimmed)

    sys.excepthook = excepthook


def main(argv):
    if not argv:
        sys.stderr.write(_USAGE)
        return 2
    if argv[0] in ('-h', '--help'):
        sys.stdout.write(_USAGE)
        return 0
    cluster = os.environ.get('MPGO_CLUSTER') or None
    if argv[0] == '--cluster':
        cluster, argv = (argv + [None])[1], argv[2:]
    elif argv[0].startswith('--cluster='):
        cluster, argv = argv[0][len('--cluster='):], argv[1:]
    if not argv or cluster == '':
        sys.stderr.write(_USAGE)
        return 2
    if argv[0] in ('-m', '-c') and len(argv) < 2:
        sys.stderr.write('Argument expected for the %s option\n' % argv[0])
        sys.stderr.write(_USAGE)
        return 2

    from . import _alias
    _alias.install()
    _alias.propagate()
    _install_excepthook()
    from . import context, zygote
    if context._default_method in ('fork', 'forkserver'):
        # Now that the environment is the children's (see mpgo/__init__).
        # What exists now (the interpreter's, mpgo's: nothing of the
        # program yet) is frozen first, as gc.freeze's docs advise before a
        # fork: a collection here would write to every object's header,
        # and so copy every page this process shares with the zygote (an
        # empty program: ~4 ms, mostly its final collection at exit).
        zygote.fork_early(freeze=True)
    if cluster:
        from .cluster.context import start_driver
        if not start_driver(cluster):
            return 2
    if argv[0] == '-m':
        _run_module(argv[1], argv[2:])
    elif argv[0] == '-c':
        _run_command(argv[1], argv[2:])
    elif argv[0] == '-':
        _run_command(sys.stdin.read(), argv[1:], '-', '<stdin>')
    else:
        _run_path(argv[0], argv[1:])
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
