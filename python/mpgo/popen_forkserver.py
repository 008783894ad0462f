"""Popen for the 'forkserver' start method: the child is forked by the zygote.

The child gets, by number, the same fds as a spawned child (the parent's
current stdin, stdout and stderr, the data pipe as fd 3, then whatever
duplicate_for_child() adds); mpgo.forkserver sends them to the zygote with
the request, and the write end of a status pipe on which the zygote reports
the child's pid and then its exit code.

`sentinel` is the read end of the status pipe: readable once the exit code
is there, or once the zygote has died. In the latter case the exit code is
unknown and reported as 255 (a non-daemonic child may even outlive the
zygote; a daemonic one dies with it). Waits are done in slices of at most
0.1 s so that signal handlers (Ctrl-C) run between slices.

terminate() and kill() signal the pid directly: the child is not ours, yet
the same user may signal it.

Module name and class from CPython's Lib/multiprocessing/popen_forkserver.py
(PSF License).
"""

import io
import os
import signal
import time

from .context import reduction, set_spawning_popen
from . import forkserver
from . import popen_spawn_posix
from . import process
from . import spawn
from . import util

__all__ = ['Popen']

# The exit code of a child whose zygote died before reporting it.
UNKNOWN_EXITCODE = 255


class Popen(popen_spawn_posix.Popen):
    method = 'forkserver'

    def _launch(self, process_obj):
        prep_data = spawn.get_preparation_data(process_obj._name)
        fp = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, fp)
            reduction.dump(process_obj, fp)
        finally:
            set_spawning_popen(None)

        data_r = data_w = status_r = status_w = None
        try:
            data_r, data_w = os.pipe()
            status_r, status_w = os.pipe()
            self._fds[spawn._CHILD_PIPE_FD] = data_r
            forkserver.send_request(self._fds, status_w)
            util.close_fds(data_r, status_w)
            data_r = status_w = None
            self.sentinel = status_r
            self.finalizer = util.Finalize(self, util.close_fds, (status_r,))
            status_r = None
            pid = _read_int(self.sentinel)
            if pid is None:
                raise OSError('mpgo forkserver: the zygote died before '
                              'starting the child')
            self.pid = pid
            with open(data_w, 'wb', closefd=True) as f:
                data_w = None
                f.write(fp.getbuffer())
        finally:
            for fd in (data_r, data_w, status_r, status_w):
                if fd is not None:
                    os.close(fd)

    def poll(self, flag=os.WNOHANG):
        if self.returncode is None:
            timeout = 0 if flag & os.WNOHANG else None
            if process._wait_readable(self.sentinel, timeout):
                self._read_status()
        return self.returncode

    def wait(self, timeout=None):
        '''Wait up to timeout seconds (None: for ever) for the child to
        exit; return its exit code, or None if it is still running.'''
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
                self._read_status()
                return self.returncode
            if slice_ <= 0:
                return None

    def _read_status(self):
        code = _read_int(self.sentinel)
        self.returncode = UNKNOWN_EXITCODE if code is None else code

    def _send_signal(self, sig):
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass


def _read_int(fd):
    '''Read one integer from a status pipe; None at end-of-file.'''
    b = os.read(fd, forkserver._INT.size)
    if len(b) < forkserver._INT.size:
        return None
    return forkserver._INT.unpack(b)[0]
