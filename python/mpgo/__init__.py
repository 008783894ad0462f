"""mpgo: Python's multiprocessing, re-engineered on a Go engine.

The package mirrors the standard library's `multiprocessing`: the public
names below are the bound methods of the default context (Process, Queue,
Pipe, Lock, Value, Array, Pool, Manager, ...). Factory methods import their
module on first call, so importing mpgo loads neither those modules nor the
Go engine.

Run an unmodified multiprocessing program on mpgo with
`python -m mpgo script.py [args]`, which makes `multiprocessing` and all its
submodules resolve to mpgo's modules.

Adapted from CPython's Lib/multiprocessing/__init__.py (PSF License).
"""

import sys
from . import context

#
# Copy stuff from default context
#

__all__ = [x for x in dir(context._default_context) if not x.startswith('_')]
globals().update((name, getattr(context._default_context, name))
                 for name in __all__)

#
# XXX These should not really be documented or public.
#

SUBDEBUG = 5
SUBWARNING = 25

#
# Alias for main module -- will be reset by bootstrapping child processes
#

if '__main__' in sys.modules:
    sys.modules['__mp_main__'] = sys.modules['__main__']

#
# The zygote that forks children (mpgo.zygote): forked now, while this
# process is small, runs one thread and has not loaded the Go engine, if the
# default start method uses it. Not in a child that is starting up: it gets
# its own zygote when it first needs one.
#

def _run_by_python_m():
    '''Whether this import is `python -m mpgo` starting: its __main__ forks
    the zygote itself once it has set the environment children get (which
    a zygote forked now would not have).'''
    argv = getattr(sys, 'orig_argv', [])
    return sys.argv[:1] == ['-m'] and \
        any(argv[i:i + 2] == ['-m', __name__] for i in range(len(argv)))


if context._default_method in ('fork', 'forkserver') and \
        sys.argv[1:2] != ['--mpgo-child'] and not _run_by_python_m():
    from . import zygote as _zygote
    _zygote.fork_early(in_import=(__name__,))
    del _zygote
