"""The 'forkserver' start method's server: mpgo's zygote.

CPython's forkserver is a process started fresh that forks children which
then import __main__ as __mp_main__, as spawned children do. mpgo's zygote
(mpgo.zygote) is that process: 'forkserver' children are forked by it and
run the spawn child's code path, so they have spawn's semantics and start
in about a millisecond. (The 'fork' start method uses the same zygote with
fork's semantics.)

This module keeps CPython's public names, and its ForkServer object
`_forkserver`, whose `_forkserver_pid` is the zygote's. The modules given to
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

class ForkServer(object):
    '''CPython's ForkServer, over the zygote: code that reaches for the
    server itself (`_forkserver.ensure_running()`, `_forkserver_pid`, as
    CPython's own tests do) finds the zygote.'''

    def __init__(self):
        self._preload_modules = []

    def set_forkserver_preload(self, modules_names):
        '''Set list of module names to try to load in forkserver process.'''
        if not all(type(mod) is str for mod in modules_names):
            raise TypeError('module_names must be a list of strings')
        self._preload_modules = [m for m in modules_names if m != '__main__']

    def get_inherited_fds(self):
        '''Return None: a zygote's child gets its fds by number (0-2 stdio,
        3 its data pipe, then those of Popen.duplicate_for_child()).'''
        return None

    def connect_to_new_process(self, fds):
        raise NotImplementedError(
            "mpgo's forkserver is its zygote (mpgo.zygote), which does not "
            "speak CPython's forkserver protocol; start children with "
            "get_context('forkserver').Process")

    def ensure_running(self):
        '''Make sure that the zygote is running and has the preload
        modules.'''
        if self._preload_modules:
            zygote.preload(self._preload_modules)
        else:
            zygote._get()

    @property
    def _forkserver_pid(self):
        '''The zygote's pid (None if it has none): one killed is replaced
        at the next start, as CPython's forkserver is.'''
        return zygote.zygote_pid()

    def _stop(self):
        zygote.stop()


_forkserver = ForkServer()
ensure_running = _forkserver.ensure_running
get_inherited_fds = _forkserver.get_inherited_fds
connect_to_new_process = _forkserver.connect_to_new_process
set_forkserver_preload = _forkserver.set_forkserver_preload
