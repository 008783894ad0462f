"""Popen for the 'forkserver' start method: forked by the zygote, with
spawn's semantics.

The child is forked by this process's zygote, as for 'fork' (mpgo.zygote,
mpgo.popen_fork), but it then runs as a spawned child does: it imports the
parent's __main__ as __mp_main__ and unpickles the Process object with
plain pickle, as CPython's forkserver children do. The modules given to
set_forkserver_preload() are imported by the zygote first.

Module name and class from CPython's Lib/multiprocessing/popen_forkserver.py
(PSF License).
"""

from . import forkserver
from . import popen_fork

__all__ = ['Popen']


class Popen(popen_fork.Popen):
    method = 'forkserver'
    _fork_semantics = False

    def _launch(self, process_obj):
        forkserver.ensure_running()
        super()._launch(process_obj)
