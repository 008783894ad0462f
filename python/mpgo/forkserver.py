"""The 'forkserver' start method: a zygote interpreter that forks children.

A process that has loaded the Go runtime must never fork, so a 'spawn'
child pays for a whole interpreter start-up. With 'forkserver' the parent
starts ONE zygote per process, the first time it is needed, through the
engine exactly as it starts a spawned child (death signal SIGKILL, so it
dies with the parent). The zygote is a fresh interpreter that never loads
the Go runtime: it imports mpgo.spawn, mpgo.process, mpgo.reduction, pickle
and the set_forkserver_preload() modules, then forks a child per request.

Protocol. The parent and the zygote share a unix socketpair (the zygote's
end is its fd 3). A request is one message of one byte with, as
SCM_RIGHTS, the fds the child gets by number (the parent's current stdin,
stdout and stderr, the read end of the data pipe as fd 3, then whatever
Popen.duplicate_for_child() added) followed by the write end of a status
pipe. The zygote forks; the child puts the fds in place, closes every other
fd and runs the spawn child's code path (spawn._main) on fd 3, into which
the parent writes the preparation data and the pickled Process object.

Status pipe. The zygote writes the child's pid right after the fork and,
when it reaps the child, its exit code (n, or -signal), each as a signed
64-bit little-endian integer, then closes the pipe. If the zygote dies
first, the parent sees end-of-file without an exit code: popen_forkserver
reports exit code 255 (unknown) then.

Daemonic children set PR_SET_PDEATHSIG(SIGKILL) themselves once they have
unpickled the Process object: they die with the zygote, which dies with the
parent.

Module name and the role of the zygote from CPython's
Lib/multiprocessing/forkserver.py (PSF License).
"""

import os
import select
import signal
import socket
import struct
import sys
import threading

__all__ = ['main', 'send_request', 'zygote_pid']

# Every integer on a status pipe: a pid, then an exit code.
_INT = struct.Struct('<q')

# The most fds one request may carry (the child's fds + the status pipe).
_MAX_FDS = 256

# The fd on which the zygote reads requests.
_ZYGOTE_SOCK_FD = 3

# Seconds the zygote gets to exit once its socket is closed.
_STOP_TIMEOUT = 5.0

#
# The parent's side
#


class _ForkServer(object):
    '''The parent's handle on its zygote. Requests are serialized by a
    lock, so any thread may start children.'''

    def __init__(self):
        self._lock = threading.Lock()
        self._sock = None
        self._pid = None
        self._finalizer = None

    def send_request(self, fds, status_w):
        '''Ask the zygote to fork a child with fds[i] as its fd i; the
        zygote reports on status_w.'''
        msg = [b'F']
        fds = [int(fd) for fd in fds] + [int(status_w)]
        if len(fds) > _MAX_FDS:
            raise ValueError('too many fds for a forkserver child')
        with self._lock:
            self._ensure_running()
            try:
                socket.send_fds(self._sock, msg, fds)
            except OSError:
                # The zygote died since we checked: start another, once.
                self._stop_locked()
                self._ensure_running()
                socket.send_fds(self._sock, msg, fds)

    def zygote_pid(self):
        '''Return the pid of the running zygote, or None.'''
        with self._lock:
            return self._pid

    def _ensure_running(self):
        from . import _engine
        if self._pid is not None:
            if _engine.wait(self._pid, 0) is None:
                return
            self._stop_locked()
        from . import context, spawn, util
        prog = 'from mpgo.forkserver import main; main(%r, %r)' % (
            list(context._forkserver_preload), _zygote_sys_path())
        exe = os.fsdecode(spawn.get_executable())
        argv = [exe] + util._args_from_interpreter_flags() + ['-c', prog]
        parent_sock, child_sock = socket.socketpair(socket.AF_UNIX,
                                                    socket.SOCK_STREAM)
        try:
            devnull = os.open(os.devnull, os.O_RDWR)
            try:
                # stdin and stdout on /dev/null: the zygote must not hold a
                # pipe somebody reads to its end. Children get the parent's
                # current ones with each request.
                err = 2 if _is_open(2) else devnull
                pid, _ = _engine.spawn(
                    argv, [devnull, devnull, err, child_sock.fileno()],
                    death_signal=signal.SIGKILL)
            finally:
                os.close(devnull)
        except BaseException:
            parent_sock.close()
            raise
        finally:
            child_sock.close()
        self._sock, self._pid = parent_sock, pid
        # Negative priority: after atexit has joined the children.
        self._finalizer = util.Finalize(self, _shut_down,
                                        (parent_sock, pid), exitpriority=-100)

    def _stop(self):
        '''Shut the zygote down and wait for it (tests use this).'''
        with self._lock:
            self._stop_locked()

    def _stop_locked(self):
        if self._finalizer is not None:
            self._finalizer()
        self._sock = self._pid = self._finalizer = None


def _shut_down(sock, pid):
    '''Close the zygote's socket, so that it exits, and reap it.'''
    from . import _engine
    sock.close()
    try:
        for _ in range(int(_STOP_TIMEOUT / 0.1)):
            if _engine.wait(pid, 0.1) is not None:
                return
        _engine.send_signal(pid, signal.SIGKILL)
        _engine.wait(pid, _STOP_TIMEOUT)
    finally:
        _engine.release(pid)


def _zygote_sys_path():
    from . import process
    path = sys.path.copy()
    if '' in path:
        path[path.index('')] = process.ORIGINAL_DIR
    return path


def _is_open(fd):
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


_forkserver = _ForkServer()
send_request = _forkserver.send_request
zygote_pid = _forkserver.zygote_pid

#
# The zygote
#


def main(preload=(), sys_path=None):
    '''Run the zygote: serve requests on fd 3 until it reaches end-of-file.
    Never loads the Go runtime.'''
    if sys_path is not None:
        sys.path[:] = sys_path
    import pickle  # noqa: F401
    import ctypes  # noqa: F401 -- for the children's prctl
    import fcntl  # noqa: F401
    from . import process, reduction, spawn, util  # noqa: F401
    for name in preload:
        if name == '__main__':
            continue   # the children import the parent's main themselves
        try:
            __import__(name)
        except Exception:
            pass
    if 'mpgo._native._pybind' in sys.modules:
        sys.stderr.write('mpgo forkserver: the Go runtime was loaded by '
                         'a preloaded module; cannot fork\n')
        sys.exit(1)
    parent_pid, zygote_pid = os.getppid(), os.getpid()

    sig_r, sig_w = os.pipe()
    os.set_blocking(sig_r, False)
    os.set_blocking(sig_w, False)
    old_wakeup = signal.set_wakeup_fd(sig_w)
    handlers = {
        # SIGCHLD only has to wake poll() up, through the wakeup fd.
        signal.SIGCHLD: lambda *args: None,
        # Ctrl-C goes to the parent and the children, not the zygote.
        signal.SIGINT: signal.SIG_IGN,
        }
    old_handlers = {sig: signal.signal(sig, h) for sig, h in handlers.items()}

    sock = socket.socket(fileno=_ZYGOTE_SOCK_FD)
    status_fds = {}   # child pid -> the write end of its status pipe
    poller = select.poll()   # poll, not epoll: no fd for children to close
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(sig_r, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if sig_r in ready:
            try:
                while os.read(sig_r, 512):
                    pass
            except BlockingIOError:
                pass
            _reap(status_fds)
        if sock.fileno() not in ready:
            continue
        try:
            msg, fds, _, _ = socket.recv_fds(sock, 16, _MAX_FDS)
        except ConnectionError:
            msg, fds = b'', []
        if not msg:
            # The parent has gone or closed its end: so do we. Daemonic
            # children die with us (death signal); the others live on.
            os._exit(0)
        if not fds:
            continue
        child_fds, status_w = fds[:-1], fds[-1]
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                sock.close()
                signal.set_wakeup_fd(old_wakeup)
                for sig, h in old_handlers.items():
                    signal.signal(sig, h)
                # Not os.getppid() here: the zygote may be dead already.
                code = _serve_child(child_fds, parent_pid, zygote_pid)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:
                import traceback
                traceback.print_exc()
            finally:
                util._flush_std_streams()
                os._exit(code)
        for fd in child_fds:
            os.close(fd)
        try:
            os.write(status_w, _INT.pack(pid))
        except OSError:
            pass   # the parent gave up on this child
        status_fds[pid] = status_w


def _reap(status_fds):
    '''Reap every exited child and report its exit code.'''
    while True:
        try:
            pid, sts = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        fd = status_fds.pop(pid, None)
        if fd is None:
            continue
        try:
            os.write(fd, _INT.pack(os.waitstatus_to_exitcode(sts)))
        except OSError:
            pass
        os.close(fd)


def _serve_child(child_fds, parent_pid, zygote_pid):
    '''In a freshly forked child: make child_fds[i] fd i, close every other
    fd and run the spawn child's code path; return the exit code.'''
    import fcntl
    from . import spawn
    n = len(child_fds)
    # Out of the way first (>= n), so no dup2 below hits a source fd.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, n) for fd in child_fds]
    for i, fd in enumerate(high):
        os.dup2(fd, i, inheritable=i < 3)
    os.closerange(n, os.sysconf('SC_OPEN_MAX'))
    parent_sentinel = spawn._open_parent_sentinel(parent_pid)
    return spawn._main(spawn._CHILD_PIPE_FD, parent_sentinel,
                       zygote_pid=zygote_pid)
