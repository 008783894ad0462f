"""Popen: starts the child of a Process as a fresh interpreter.

The child is started by the engine (`_engine.spawn`) with the parent's
stdin, stdout and stderr as fds 0-2 and the read end of a pipe as fd 3; the
preparation data and the pickled Process object are written into the pipe.
Daemonic children are started with death signal SIGKILL, so they die with
the parent even when the parent is SIGKILLed.

`sentinel` is the child's pidfd, readable once the child has exited. Waits
are done in slices of at most 0.1 s so that signal handlers (Ctrl-C) run
between slices.

Adapted from CPython's Lib/multiprocessing/popen_spawn_posix.py and
popen_fork.py (PSF License).
"""

import io
import os
import signal
import time

from .context import reduction, set_spawning_popen
from . import process
from . import spawn
from . import util

__all__ = ['Popen']

# The longest a single engine wait may block, so that Python runs its
# signal handlers (and raises KeyboardInterrupt) between waits.
_WAIT_SLICE = 0.1

#
# Wrapper for an fd passed to the child at start-up
#


class _DupFd(object):
    def __init__(self, fd):
        self.fd = fd

    def detach(self):
        return self.fd

#
# Start child process using a fresh interpreter
#


class Popen(object):
    method = 'spawn'
    DupFd = _DupFd

    def __init__(self, process_obj):
        util._flush_std_streams()
        self.returncode = None
        self.finalizer = None
        # The child's fds, by number: stdin, stdout, stderr, the pipe (filled
        # in by _launch), then whatever duplicate_for_child() adds.
        self._devnull_fds = []
        self._fds = [self._std_fd(0), self._std_fd(1), self._std_fd(2), None]
        try:
            self._launch(process_obj)
        finally:
            util.close_fds(*self._devnull_fds)

    def _std_fd(self, fd):
        '''Return fd if it is open, else an fd on /dev/null to stand in for
        it: the child needs something at fds 0-2.'''
        try:
            os.fstat(fd)
            return fd
        except OSError:
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            self._devnull_fds.append(null)
            return null

    def duplicate_for_child(self, fd):
        '''Pass fd to the child; return its number there.'''
        self._fds.append(fd)
        return len(self._fds) - 1

    def _dump(self, process_obj):
        '''Return a BytesIO holding what the child reads on its fd 3: the
        preparation data and the Process object.'''
        prep_data = spawn.get_preparation_data(process_obj._name)
        fp = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, fp)
            reduction.dump(process_obj, fp)
        finally:
            set_spawning_popen(None)
        return fp

    def _launch(self, process_obj):
        from . import _engine
        fp = self._dump(process_obj)
        child_r = parent_w = None
        try:
            child_r, parent_w = os.pipe()
            self._fds[spawn._CHILD_PIPE_FD] = child_r
            death_signal = signal.SIGKILL if process_obj.daemon else 0
            self.pid, self.sentinel = _engine.spawn(
                spawn.get_command_line(), self._fds,
                death_signal=death_signal)
            self.finalizer = util.Finalize(self, _engine.release, (self.pid,))
            os.close(child_r)
            child_r = None
            with open(parent_w, 'wb', closefd=True) as f:
                parent_w = None
                f.write(fp.getbuffer())
        finally:
            for fd in (child_r, parent_w):
                if fd is not None:
                    os.close(fd)

    def poll(self, flag=os.WNOHANG):
        if self.returncode is None:
            from . import _engine
            self.returncode = _engine.wait(self.pid, 0)
        return self.returncode

    def wait(self, timeout=None):
        '''Wait up to timeout seconds (None: for ever) for the child to
        exit; return its exit code, or None if it is still running.'''
        if self.returncode is not None:
            return self.returncode
        from . import _engine
        deadline = None if timeout is None else time.monotonic() + timeout
        reaped_elsewhere = False
        while True:
            if deadline is None:
                slice_ = _WAIT_SLICE
            else:
                slice_ = min(deadline - time.monotonic(), _WAIT_SLICE)
            rc = _engine.wait(self.pid, max(slice_, 0))
            if rc is not None:
                self.returncode = rc
                return rc
            if slice_ <= 0:
                return None
            if process._wait_readable(self.sentinel, 0):
                # The child has exited, yet the engine has no exit status
                # for it: someone else reaped it (os.wait() in user code).
                # After a grace slice, give up without an exit code as
                # CPython does, rather than spin.
                if reaped_elsewhere:
                    return None
                reaped_elsewhere = True
                time.sleep(slice_)

    def _send_signal(self, sig):
        # poll() first: once the child is reaped its pid may be reused.
        if self.poll() is None:
            from . import _engine
            _engine.send_signal(self.pid, sig)

    def terminate(self):
        self._send_signal(signal.SIGTERM)

    def kill(self):
        self._send_signal(signal.SIGKILL)

    def close(self):
        if self.finalizer is not None:
            self.finalizer()
