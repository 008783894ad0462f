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


def _engine_started():
    '''Whether this process has started the Go runtime (or was forked from
    one that had), which it must then never fork.'''
    import sys
    engine = sys.modules.get(__package__ + '._engine')
    if engine is None:
        return False    # its one door: nothing loaded the engine
    try:
        return engine.fast.started()
    except RuntimeError:
        return True     # forked from a process that runs Go


class Popen(popen_spawn_posix.Popen):
    method = 'fork'
    # Whether the child gets fork's semantics (else spawn's).
    _fork_semantics = True

    def _dump(self, process_obj):
        prep_data = spawn.get_preparation_data(process_obj._name,
                                               fork=self._fork_semantics)
        from . import _leaf
        if _leaf.starts_no_process(process_obj):
            prep_data['mpgo_starts_no_process'] = True
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
    # While the child is being started: the request (kept to start again
    # with if the zygote dies before it forks), the zygote's answer, and
    # the data not yet in the pipe.
    _request = None
    _reply = None
    _unwritten = None
    _reaped_elsewhere = False

    def _launch(self, process_obj):
        if not zygote.supported():
            self._via_zygote = False
            return super()._launch(process_obj)
        zygote.prepare()
        try:
            data = self._dump(process_obj).getbuffer()
        except Exception as e:
            # What cannot be sent (a threading.Lock, an open file, another
            # library's object that only travels by inheritance) a real
            # fork carries: fork for real then, as CPython does, if this
            # process has never started Go.
            if not self._fork_semantics:
                raise
            if _engine_started():
                if hasattr(e, 'add_note'):
                    e.add_note(
                        "mpgo: a 'fork' child gets its Process object, target "
                        "and arguments by value, and this could not be "
                        "pickled. mpgo forks for real only a process that has "
                        "not started its Go engine; this one has (it made a "
                        "Queue, Lock, Value or Pool).")
                raise
            util.debug('mpgo: forking for real, since the child cannot be '
                       'sent by value: %r' % (e,))
            del self._fds[spawn._CHILD_PIPE_FD + 1:]
            return self._fork(process_obj)
        self._request = (list(self._fds), process_obj.daemon, data)
        try:
            self._send()
            # start() returns once the child exists, as with fork: a parent
            # may exit at once.
            self._wait_started()
        except BaseException:
            self._forget_request()
            raise
        # For the next children, once this one has its data.
        zygote.sync_modules()

    def _fork(self, process_obj):
        '''Start the child with os.fork(), as CPython's popen_fork does;
        the pidfd-based poll(), wait() and signals below serve it as they
        serve a zygote's child.'''
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                if zygote._RUN_CHILD_ATEXIT:
                    import atexit
                    atexit._clear()
                    atexit.register(util._exit_function)
                code = process_obj._bootstrap(
                    parent_sentinel=spawn._open_parent_sentinel(parent))
            finally:
                if zygote._RUN_CHILD_ATEXIT:
                    import atexit
                    atexit._run_exitfuncs()
                os._exit(code)
        self.pid = pid
        self.sentinel = os.pidfd_open(pid)
        self.finalizer = util.Finalize(self, util.close_fds, (self.sentinel,))

    def _send(self):
        '''Ask the zygote for the child and fill its pipe with its data, as
        much as fits before the child exists (it reads at once).'''
        fds, daemon, data = self._request
        data_r, data_w = os.pipe()
        try:
            fds[spawn._CHILD_PIPE_FD] = data_r
            try:
                self._reply = zygote.request_child(fds, daemon=daemon)
            finally:
                fds[spawn._CHILD_PIPE_FD] = None
                os.close(data_r)
            os.set_blocking(data_w, False)
            try:
                n = os.write(data_w, data)
            except BlockingIOError:
                n = 0
            if n < len(data):
                self._unwritten = (data_w, data[n:])
                data_w = None
        finally:
            if data_w is not None:
                os.close(data_w)

    def _wait_started(self):
        '''Read the zygote's answer (the child's pid), then write what did
        not fit in the pipe.'''
        try:
            while True:
                reply, self._reply = self._reply, None
                try:
                    pid = zygote.child_pid(reply)
                    break
                except zygote.Gone:
                    # It died before it forked: ask its successor.
                    self._drop_unwritten()
                    self._send()
            self.pid = pid
            try:
                self.sentinel = os.pidfd_open(pid)
            except ProcessLookupError:
                # Already reaped behind our back (os.wait() in user code):
                # its exit status is lost, as in poll().
                self.sentinel = spawn._dead_sentinel()
                self._reaped_elsewhere = True
            self.finalizer = util.Finalize(self, util.close_fds,
                                           (self.sentinel,))
            if self._unwritten is not None:
                fd, rest = self._unwritten
                self._unwritten = None
                os.set_blocking(fd, True)
                with open(fd, 'wb', closefd=True) as f:
                    f.write(rest)
        finally:
            self._forget_request()

    def _drop_unwritten(self):
        if self._unwritten is not None:
            os.close(self._unwritten[0])
            self._unwritten = None

    def _forget_request(self):
        if self._reply is not None:
            self._reply.close()
            self._reply = None
        self._request = None
        self._drop_unwritten()

    def poll(self, flag=os.WNOHANG):
        if not self._via_zygote:
            return super().poll(flag)
        if self._reaped_elsewhere:
            return None
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
