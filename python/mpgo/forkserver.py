"""The 'forkserver' start method's server: mpgo's zygote.

CPython's forkserver is a process started fresh that forks children which
then import __main__ as __mp_main__, as spawned children do. mpgo's zygote
(mpgo.zygote) is that process: 'forkserver' children are forked by it and
run the spawn child's code path, so they have spawn's semantics and start
in about a millisecond. (The 'fork' start method uses the same zygote with
fork's semantics.)

This module keeps CPython's public names. The modules given to
set_forkserver_preload() are imported by the zygote before it forks the
first 'forkserver' child. get_inherited_fds() is None: a zygote's child
gets its fds by number, as a spawned child does. connect_to_new_process()
is CPython's private protocol, which mpgo does not speak.

Module name and API from CPython's Lib/multiprocessing/forkserver.py (PSF
License).
"""

from . import zygote

__all__ = ['ensure_running', 'get_inherited_fds', 'connect_to_new_process',
           'set_forkserver_preload']

MAXFDS_TO_SEND = zygote._consts.ZYGOTE_MAX_FDS

_preload = []


def set_forkserver_preload(modules_names):
    '''Set list of module names to try to load in forkserver process.'''
    if not all(type(mod) is str for mod in modules_names):
        raise TypeError('module_names must be a list of strings')
    _preload[:] = [m for m in modules_names if m != '__main__']


def ensure_running():
    '''Make sure that the zygote is running and has the preload modules.'''
    if _preload:
        zygote.preload(_preload)
    else:
        zygote._get()


def get_inherited_fds():
    '''Return None: a zygote's child gets its fds by number (0-2 stdio, 3
    its data pipe, then those of Popen.duplicate_for_child()).'''
    return None


def connect_to_new_process(fds):
    raise NotImplementedError(
        "mpgo's forkserver is its zygote (mpgo.zygote), which does not speak "
        "CPython's forkserver protocol; start children with "
        "get_context('forkserver').Process")
