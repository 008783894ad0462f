"""Server process that unlinks the named resources a crashed process left.

A `SharedMemory` block is a name under /dev/shm until somebody unlinks it,
and a process killed before it did leaves it there. As in CPython, every
process of a program registers the names it holds with one tracker
process, which ignores SIGINT and SIGTERM and unlinks whatever is still
registered once every process that talked to it is gone, with a warning
("resource_tracker: There appear to be N leaked shared_memory objects").
mpgo's own shared memory (memfd arenas) needs no tracking: the kernel
frees it with its last user.

CPython's API and wire format are kept: `ensure_running`, `register`,
`unregister`, `getfd`, `main`, `_resource_tracker` with `_fd`, `_pid` and
`_check_alive()`, lines of ``CMD:name:rtype`` of at most 512 bytes.

What differs is how processes find the tracker. CPython starts it at the
first child process the program starts, and passes the write end of its
pipe to every child. mpgo starts no process until one is needed (a name
is registered, or `ensure_running`/`getfd` is called): a program that
never uses SharedMemory runs no tracker. For that, the tracker listens on
a Unix socket in the abstract namespace, whose address the first process
that starts a child picks (no process yet) and every child of it started
by mpgo inherits (with its preparation data, `_for_child`). Whichever
process of the program first needs the tracker binds that address and
starts the tracker on it; the others connect to it. Each process holds
one connection, and `_fd` is that socket, so code that passes `_fd` on
to its own children (as loky does) keeps working. The tracker reads every
connection and ends when the last one closes; it refuses connections from
other users (SO_PEERCRED). A client that connects to a tracker it did not
start waits for the tracker's one-byte greeting, which it sends once it
has counted the connection, so a tracker that is just ending is never
taken for a live one. A process started some other way (subprocess, a
different program) has no address and gets a tracker of its own, as in
CPython.

Adapted from CPython's Lib/multiprocessing/resource_tracker.py (PSF License).
"""

import os
import signal
import socket
import sys
import threading
import warnings

__all__ = ['ensure_running', 'register', 'unregister']

_HAVE_SIGMASK = hasattr(signal, 'pthread_sigmask')
_IGNORED_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# The most bytes one message may take: writes of up to PIPE_BUF bytes to a
# pipe or socket are never interleaved with another writer's.
_MAX_MSG = 512
_GREETING = b'\n'
# A tracker nobody connects to within this many seconds ends (its starter
# died before connecting).
_FIRST_CLIENT_TIMEOUT = 30.0

if sys.version_info >= (3, 13):
    def cleanup_noop(name):
        raise RuntimeError('noop should never be registered or cleaned up')

    _CLEANUP_FUNCS = {
        'noop': cleanup_noop,
        'dummy': lambda name: None,  # Dummy resource used in tests
    }
else:
    _CLEANUP_FUNCS = {
        'noop': lambda: None,
    }

# mpgo's Lock and Semaphore live in memfd arenas, not in named POSIX
# semaphores, so 'semaphore' has nothing of mpgo's to clean up.
def _shm_unlink(name):
    # _posixshmem is imported by the tracker only: every program that
    # starts a child imports this module (for _for_child).
    import _posixshmem
    _posixshmem.shm_unlink(name)


_CLEANUP_FUNCS.update({
    'shared_memory': _shm_unlink,
})


class ReentrantCallError(RuntimeError):
    pass


def _recursion_count(lock):
    count = getattr(lock, '_recursion_count', None)
    return count() if count is not None else 1


class ResourceTracker(object):

    def __init__(self):
        self._lock = threading.RLock()
        self._fd = None
        self._pid = None
        self._exitcode = None
        # The abstract socket address of this program's tracker, once a
        # process of it needed one or started a child.
        self._address = None

    def _reentrant_call_error(self):
        # gh-109629: this happens if an explicit call to the ResourceTracker
        # gets interrupted by a garbage collection, invoking a finalizer (*)
        # that itself calls back into ResourceTracker.
        #   (*) for example the SemLock finalizer
        raise ReentrantCallError(
            "Reentrant call into the multiprocessing resource tracker")

    def _stop(self):
        with self._lock:
            # This should not happen (_stop() isn't called by a finalizer)
            # but we check for it anyway.
            if _recursion_count(self._lock) > 1:
                return self._reentrant_call_error()
            if self._fd is None:
                # not running
                return

            # Closing our connection ends main() if we were its last client.
            os.close(self._fd)
            self._fd = None

            if self._pid is not None:
                try:
                    _, status = os.waitpid(self._pid, 0)
                except ChildProcessError:
                    status = None
                self._pid = None
                try:
                    self._exitcode = os.waitstatus_to_exitcode(status)
                except (ValueError, TypeError):
                    self._exitcode = None

    def getfd(self):
        self.ensure_running()
        return self._fd

    def ensure_running(self):
        '''Make sure that resource tracker process is running.

        This can be run from any process.  Usually a child process will use
        the resource created by its parent.'''
        with self._lock:
            if _recursion_count(self._lock) > 1:
                # The code below is certainly not reentrant-safe, so bail out
                return self._reentrant_call_error()
            if self._fd is not None:
                # resource tracker was launched before, is it still running?
                if self._check_alive():
                    # => still alive
                    return
                # => dead, launch it again
                os.close(self._fd)

                # Clean-up to avoid dangling processes.
                try:
                    # _pid is None if another process of the program
                    # started the resource_tracker.
                    if self._pid is not None:
                        os.waitpid(self._pid, 0)
                except ChildProcessError:
                    # The resource_tracker has already been terminated.
                    pass
                self._fd = None
                self._pid = None
                self._exitcode = None
                # Its address may still be bound by the dying process.
                self._address = None

                warnings.warn('resource_tracker: process died unexpectedly, '
                              'relaunching.  Some resources might leak.')
            self._connect_or_launch()

    def _connect_or_launch(self):
        if self._address is None:
            self._address = _new_address()
        for attempt in range(50):
            sock = _connect(self._address)
            if sock is not None:
                self._fd = sock.detach()
                return
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                listener.bind(self._address)
            except OSError:
                # Bound by a tracker that is ending (or just starting):
                # try again in a moment.
                listener.close()
                import time
                time.sleep(0.002 * (attempt + 1))
                continue
            try:
                listener.listen(64)
                # Connect before the tracker runs: it accepts in order, so
                # it counts this connection before it can end.
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.connect(self._address)
                    self._pid = self._launch(listener.fileno())
                except BaseException:
                    sock.close()
                    raise
            finally:
                listener.close()
            self._fd = sock.detach()
            return
        raise OSError('resource_tracker: cannot reach or start the tracker '
                      'at %r' % (self._address,))

    def _launch(self, listen_fd):
        from . import spawn, util
        fds_to_pass = [listen_fd]
        try:
            fds_to_pass.append(sys.stderr.fileno())
        except Exception:
            pass
        exe = spawn.get_executable()
        # The tracker imports mpgo from where this process did: with -I or
        # -E (kept from our flags) PYTHONPATH would not tell it.
        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        cmd = ('import sys; sys.path.insert(0, %r); '
               'from mpgo.resource_tracker import main; main(%d)'
               % (here, listen_fd))
        args = [exe] + util._args_from_interpreter_flags() + ['-c', cmd]
        # bpo-33613: Register a signal mask that will block the signals.
        # This signal mask will be inherited by the child that is going
        # to be spawned and will protect the child from a race condition
        # that can make the child die before it registers signal handlers
        # for SIGINT and SIGTERM. The mask is unregistered after spawning
        # the child.
        prev_sigmask = None
        try:
            if _HAVE_SIGMASK:
                prev_sigmask = signal.pthread_sigmask(signal.SIG_BLOCK,
                                                      _IGNORED_SIGNALS)
            return util.spawnv_passfds(exe, args, fds_to_pass)
        finally:
            if prev_sigmask is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, prev_sigmask)

    def _check_alive(self):
        '''Check that the pipe has not been closed by sending a probe.'''
        try:
            # We cannot use send here as it calls ensure_running, creating
            # a cycle.
            os.write(self._fd, b'PROBE:0:noop\n')
        except OSError:
            return False
        else:
            return True

    def register(self, name, rtype):
        '''Register name of resource with resource tracker.'''
        self._send('REGISTER', name, rtype)

    def unregister(self, name, rtype):
        '''Unregister name of resource with resource tracker.'''
        self._send('UNREGISTER', name, rtype)

    def _send(self, cmd, name, rtype):
        msg = '{0}:{1}:{2}\n'.format(cmd, name, rtype).encode('ascii')
        if len(msg) > _MAX_MSG:
            # posix guarantees that writes to a pipe of less than PIPE_BUF
            # bytes are atomic, and that PIPE_BUF >= 512
            raise ValueError('msg too long')
        try:
            self.ensure_running()
        except ReentrantCallError:
            # The code below might or might not work, depending on whether
            # the resource tracker was already running and still alive.
            # Better warn the user.
            # (XXX is warnings.warn itself reentrant-safe? :-)
            warnings.warn(
                f"ResourceTracker called reentrantly for resource cleanup, "
                f"which is unsupported. "
                f"The {rtype} object {name!r} might leak.")
        nbytes = os.write(self._fd, msg)
        assert nbytes == len(msg), "nbytes {0:n} but len(msg) {1:n}".format(
            nbytes, len(msg))

    def _after_fork_in_child(self):
        # A forked child shares our connection: keep it, but the tracker
        # is not its child.
        self._pid = None


def _new_address():
    return '\0mpgo-resource-tracker-%d-%d-%s' % (
        os.getuid(), os.getpid(), os.urandom(8).hex())


def _connect(address):
    '''A connection to the live tracker at address, or None.'''
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(10.0)
        sock.connect(address)
        # The greeting says the tracker counts us: it will not end before
        # this connection closes.
        if sock.recv(1) != _GREETING:
            raise ConnectionError('no greeting')
        sock.settimeout(None)
        return sock
    except OSError:
        sock.close()
        return None


_resource_tracker = ResourceTracker()
ensure_running = _resource_tracker.ensure_running
register = _resource_tracker.register
unregister = _resource_tracker.unregister
getfd = _resource_tracker.getfd

if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_resource_tracker._after_fork_in_child)

#
# Passing the tracker on to children
#


class _Inherit(object):
    '''Goes into a child's preparation data: the child finds the program's
    tracker at the same address (started or not yet).'''

    def __init__(self, address):
        self.address = address

    def __reduce__(self):
        return _inherit, (self.address,)


def _inherit(address):
    t = _resource_tracker
    if t._fd is None and address is not None:
        t._address = address
    return _Inherit(address)


def _for_child():
    '''What a child being started needs to find this program's tracker
    (picks the address, starting no process).'''
    t = _resource_tracker
    with t._lock:
        if t._address is None:
            t._address = _new_address()
        return _Inherit(t._address)

#
# The tracker process
#


def main(fd):
    '''Run resource tracker on the listening socket fd.'''
    # protect the process from ^C and "killall python" etc
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if _HAVE_SIGMASK:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _IGNORED_SIGNALS)

    for f in (sys.stdin, sys.stdout):
        try:
            f.close()
        except Exception:
            pass

    exit_code = 0
    cache = {rtype: set() for rtype in _CLEANUP_FUNCS.keys()}
    try:
        for line in _lines(fd):
            try:
                cmd, name, rtype = line.strip().decode('ascii').split(':')
                cleanup_func = _CLEANUP_FUNCS.get(rtype, None)
                if cleanup_func is None:
                    raise ValueError(
                        f'Cannot register {name} for automatic cleanup: '
                        f'unknown resource type {rtype}')

                if cmd == 'REGISTER':
                    cache[rtype].add(name)
                elif cmd == 'UNREGISTER':
                    cache[rtype].remove(name)
                elif cmd == 'PROBE':
                    pass
                else:
                    raise RuntimeError('unrecognized command %r' % cmd)
            except Exception:
                exit_code = 3
                try:
                    sys.excepthook(*sys.exc_info())
                except:  # noqa: E722
                    pass
    finally:
        # all processes have terminated; cleanup any remaining resources
        for rtype, rtype_cache in cache.items():
            if rtype_cache:
                exit_code = 1
                if rtype == 'dummy':
                    # The test 'dummy' resource is expected to leak.
                    # We skip the warning (and *only* the warning) for it.
                    pass
                else:
                    try:
                        warnings.warn(
                            f'resource_tracker: There appear to be '
                            f'{len(rtype_cache)} leaked {rtype} objects to '
                            f'clean up at shutdown: {rtype_cache}')
                    except Exception:
                        pass
            for name in rtype_cache:
                # For some reason the process which created and registered this
                # resource has failed to unregister it. Presumably it has
                # died.  We therefore unlink it.
                try:
                    try:
                        _CLEANUP_FUNCS[rtype](name)
                    except Exception as e:
                        exit_code = 2
                        warnings.warn('resource_tracker: %r: %s' % (name, e))
                finally:
                    pass

        sys.exit(exit_code)


def _lines(listen_fd):
    '''Yield the lines every client sends, until the last client is gone.'''
    import selectors
    listener = socket.socket(fileno=listen_fd)
    listener.setblocking(False)
    uid = os.getuid()
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    clients = {}        # socket -> bytes of an unfinished line
    seen = False
    timeout = _FIRST_CLIENT_TIMEOUT
    try:
        while True:
            events = sel.select(timeout)
            if not events and not seen:
                return      # nobody ever came: the starter died
            for key, _ in events:
                sock = key.fileobj
                if sock is listener:
                    # Take every waiting connection before looking at any
                    # end of one: the starter's is first in line.
                    while True:
                        try:
                            conn, _ = listener.accept()
                        except (BlockingIOError, InterruptedError):
                            break
                        try:
                            cred = conn.getsockopt(
                                socket.SOL_SOCKET, socket.SO_PEERCRED,
                                12)
                            peer_uid = int.from_bytes(cred[4:8],
                                                      sys.byteorder)
                            if peer_uid != uid:
                                conn.close()
                                continue
                        except OSError:
                            conn.close()
                            continue
                        conn.setblocking(False)
                        try:
                            conn.send(_GREETING)
                        except OSError:
                            pass    # gone already: what it sent is still read
                        clients[conn] = b''
                        sel.register(conn, selectors.EVENT_READ)
                        seen = True
                    continue
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b''
                if data:
                    buf = clients[sock] + data
                    *lines, clients[sock] = buf.split(b'\n')
                    for line in lines:
                        if line:
                            yield line
                    continue
                sel.unregister(sock)
                rest = clients.pop(sock)
                sock.close()
                if rest:
                    yield rest
            if seen and not clients:
                # A client still waiting in the backlog would get no
                # greeting and start a new tracker: take it instead.
                if not sel.select(0):
                    return
            timeout = None if seen else timeout
    finally:
        sel.close()
        listener.close()
        for sock in clients:
            sock.close()
