"""Popen for the 'fork' start method: the child is forked by the zygote.

mpgo never forks a process that may run Go: the child is forked by this
process's zygote (mpgo.zygote), as this process's own child, and it gets
fork's semantics without the fork. It does not run __main__; the Process
object, its target and arguments, and whatever of __main__ they reach come
by value (mpgo._forking). The fds it gets are those of a spawned child (the
parent's current stdio, the data pipe as fd 3, then those of
duplicate_for_child()).

`sentinel` is a pidfd of the child, readable once it has exited; the exit
status is collected with waitid(P_PIDFD), so a reused pid is never waited
for or signalled. Waits are done in slices of at most 0.1 s so that signal
handlers (Ctrl-C) run between slices.

Where no zygote can run (a machine whose clone(2) mpgo does not know), the
child is a fresh interpreter, with the same semantics.

Module name and class from CPython's Lib/multiprocessing/popen_fork.py
(PSF License).
"""

import io
import os
import signal
import time

from .context import reduction, set_spawning_popen
from . import popen_spawn_posix
from . import process
from . import spawn
from . import util
from . import zygote

__all__ = ['Popen']


class Popen(popen_spawn_posix.Popen):
    method = 'fork'
    # Whether the child gets fork's semantics (else spawn's).
    _fork_semantics = True

    def _dump(self, process_obj):
        prep_data = spawn.get_preparation_data(process_obj._name,
                                               fork=self._fork_semantics)
        fp = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, fp)
            if self._fork_semantics:
                from . import _forking
                _forking.dump(process_obj, fp)
            else:
                reduction.dump(process_obj, fp)
        finally:
            set_spawning_popen(None)
        return fp

    # False once the child was started by the engine instead.
    _via_zygote = True

    def _launch(self, process_obj):
        if not zygote.supported():
            self._via_zygote = False
            return super()._launch(process_obj)
        fp = self._dump(process_obj)
        data_r = data_w = None
        try:
            data_r, data_w = os.pipe()
            self._fds[spawn._CHILD_PIPE_FD] = data_r
            self.pid = zygote.start_child(self._fds, daemon=process_obj.daemon)
            os.close(data_r)
            data_r = None
            self.sentinel = os.pidfd_open(self.pid)
            self.finalizer = util.Finalize(self, util.close_fds,
                                           (self.sentinel,))
            with open(data_w, 'wb', closefd=True) as f:
                data_w = None
                f.write(fp.getbuffer())
        finally:
            for fd in (data_r, data_w):
                if fd is not None:
                    os.close(fd)
        # For the next children, once this one has its data.
        zygote.sync_modules()

    def poll(self, flag=os.WNOHANG):
        if not self._via_zygote:
            return super().poll(flag)
        if self.returncode is None and self.finalizer is not None:
            try:
                res = os.waitid(os.P_PIDFD, self.sentinel, os.WEXITED | flag)
            except ChildProcessError:
                # Reaped behind our back (os.wait() in user code): the exit
                # status is lost, as with CPython.
                return None
            if res is not None:
                if res.si_code == os.CLD_EXITED:
                    self.returncode = res.si_status
                else:
                    self.returncode = -res.si_status
        return self.returncode

    def wait(self, timeout=None):
        '''Wait up to timeout seconds (None: for ever) for the child to
        exit; return its exit code, or None if it is still running.'''
        if not self._via_zygote:
            return super().wait(timeout)
        if self.returncode is not None:
            return self.returncode
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if deadline is None:
                slice_ = popen_spawn_posix._WAIT_SLICE
            else:
                slice_ = min(deadline - time.monotonic(),
                             popen_spawn_posix._WAIT_SLICE)
            if process._wait_readable(self.sentinel, max(slice_, 0)):
                rc = self.poll()
                if rc is not None:
                    return rc
                if self.returncode is None:
                    return None    # reaped elsewhere
            if slice_ <= 0:
                return None

    def _send_signal(self, sig):
        if not self._via_zygote:
            return super()._send_signal(sig)
        # poll() first: once the child is reaped its pidfd refuses signals
        # (and its pid may be reused).
        if self.poll() is None:
            try:
                signal.pidfd_send_signal(self.sentinel, sig)
            except ProcessLookupError:
                pass
