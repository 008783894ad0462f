"""The zygote: forks children for a process that must never fork itself.

A process that has loaded the Go runtime must never fork (the child hangs
in the runtime, golang/go#15538), and starting a fresh interpreter costs
tens of milliseconds. So each mpgo process that starts children has ONE
zygote: a single-threaded process that never loads Go and forks a child per
request, in about a millisecond.

Where the zygote comes from:

* forked from this process itself, while that is still single-threaded and
  has not loaded the engine: at `python -m mpgo` start-up, or at the end of
  `import mpgo`. It keeps every module imported so far, as a free preload,
  and its pages stay shared with the children;
* otherwise started fresh, as a new interpreter (through the engine, so
  that it dies with this process).

The zygote forks with clone(CLONE_PARENT): each child is a child of THIS
process, not of the zygote, so this process reaps it, signals it and sees
its exit status exactly as for a child it forked itself, and os.getppid()
in the child is this process. The wire protocol is defined in Go
(core/process/zygote.go, which also has the Go client that core/pool uses
to start pool workers); its constants come from _consts.py.

A child reads the data of a spawn child on fd 3 and runs it
(spawn._zygote_main). It loads the engine only if it touches an engine
object. A daemonic child dies with this process (PR_SET_PDEATHSIG); so does
the zygote, which also exits when its socket is closed. A zygote that dies
is replaced at the next request; nothing is lost but that request's retry.

Module name from CPython's multiprocessing.forkserver's role (the zygote is
what mpgo's 'fork' and 'forkserver' start methods both use).
"""

import os
import signal
import socket
import struct
import sys
import threading

from . import _consts

__all__ = ['start_child', 'preload', 'zygote_pid', 'client_fd', 'stop']

_HEADER = struct.Struct('<IIII')
_REPLY = struct.Struct('<q')
assert _HEADER.size == _consts.ZYGOTE_HEADER_SIZE
assert _REPLY.size == _consts.ZYGOTE_REPLY_SIZE

# What a child imports to run its spawn data, preloaded by the zygote.
_CHILD_MODULES = (b'mpgo.spawn', b'mpgo._forking', b'mpgo._alias', b'fcntl')
# ... and what many children need, imported once the zygote has been idle
# for _IDLE_MS (an import holds up the requests that come meanwhile).
# Not cloudpickle: it is big (its imports are), and children need it only
# for classes of __main__.
_LATER_MODULES = (b'mpgo.pool', b'mpgo.connection', b'mpgo.managers')
_IDLE_MS = 20

# The fd a fresh zygote gets its socket on.
_FRESH_SOCK_FD = 3

# prctl(2) options.
_PR_SET_PDEATHSIG = 1

# clone(2): its number per machine, and the flag that makes the new process
# a child of the caller's parent. The other arguments are all 0, so their
# order (which differs between machines) does not matter.
_SYS_CLONE = {'x86_64': 56, 'aarch64': 220}.get(os.uname().machine)
_CLONE_PARENT = 0x00008000


class _Gone(Exception):
    '''The zygote died or closed its socket.'''


def supported():
    '''Return whether children can be forked by a zygote on this machine.'''
    return _SYS_CLONE is not None

#
# The client: this process's side
#


class _Zygote(object):
    '''This process's handle on its zygote.'''

    def __init__(self, sock, pid, forked):
        self.sock = sock
        self.pid = pid
        self.forked = forked    # forked by this process (else engine-started)
        self.owner = os.getpid()

    def request(self, flags, fds, block, reply=True):
        '''Send one request and return the zygote's reply (an int; None
        when not waited for).'''
        reply_r, reply_w = os.pipe()
        if not reply:
            # The zygote's write then fails, which it ignores.
            os.close(reply_r)
            reply_r = None
        try:
            try:
                msg = _HEADER.pack(_consts.ZYGOTE_MAGIC, flags, len(fds),
                                   len(block)) + block
                socket.send_fds(self.sock, [msg], [reply_w] + list(fds))
            except (BrokenPipeError, ConnectionError) as e:
                raise _Gone() from e
            finally:
                os.close(reply_w)
            if reply_r is None:
                return None
            b = b''
            while len(b) < _REPLY.size:
                chunk = os.read(reply_r, _REPLY.size - len(b))
                if not chunk:
                    raise _Gone()
                b += chunk
        finally:
            if reply_r is not None:
                os.close(reply_r)
        return _REPLY.unpack(b)[0]

    def close(self):
        '''Close the socket (the zygote exits) and reap the zygote.'''
        self.sock.close()
        if self.owner != os.getpid():
            return
        if self.forked:
            try:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        else:
            from . import _engine
            try:
                _engine.send_signal(self.pid, signal.SIGKILL)
                _engine.wait(self.pid, 5.0)
            finally:
                _engine.release(self.pid)


_zygote = None
_lock = threading.Lock()
# Module names sent with preload(), so that a replacement zygote gets them.
_preloaded = []


def start_child(fds, env=None, daemon=False):
    '''Fork a child through this process's zygote and return its pid.

    fds[i] becomes the child's fd i (0-2 its stdio, 3 the pipe it reads
    its spawn data on); env is its environment (None: os.environ); a
    daemonic child dies with this process. The child is this process's own
    child: reap it with waitid(P_PIDFD) on os.pidfd_open(pid).'''
    if len(fds) > _consts.ZYGOTE_MAX_FDS:
        raise ValueError('too many fds for a child (%d, at most %d)'
                         % (len(fds), _consts.ZYGOTE_MAX_FDS))
    if env is None:
        env = os.environb
    block = b''.join(b'%s=%s\0' % (os.fsencode(k), os.fsencode(v))
                     for k, v in env.items())
    if len(block) + _HEADER.size > _consts.ZYGOTE_MAX_MESSAGE:
        raise ValueError('the environment is too big for a zygote child '
                         '(%d bytes)' % len(block))
    flags = _consts.ZYGOTE_DAEMON if daemon else 0
    pid = _call(flags, fds, block)
    if pid < 0:
        raise OSError(-pid, 'mpgo zygote: fork: ' + os.strerror(-pid))
    return pid


def preload(names, wait=True):
    '''Have the zygote import the modules named (set_forkserver_preload),
    now and in any zygote that replaces it. A module that would make the
    zygote unable to fork safely (one that starts threads, or loads the
    engine) makes it exit: the next zygote is started without them. With
    wait=False, return at once: the zygote imports them before it serves
    the next request (for mpgo's own modules, which are safe).'''
    names = [n for n in names if n not in _preloaded]
    if not names:
        return
    _preloaded.extend(names)
    block = b''.join(os.fsencode(n) + b'\0' for n in names)
    if not wait:
        try:
            _get().request(_consts.ZYGOTE_IMPORT, [], block, reply=False)
        except _Gone:
            pass   # the next request replaces the zygote
        return
    if _call(_consts.ZYGOTE_IMPORT, [], block) < 0:
        from . import util
        util.info('mpgo zygote: preloading %s left it unable to fork; '
                  'the next zygote will not preload them', names)
        del _preloaded[:]
        _discard_current()


# What sync_modules() never has the zygote import: the alias of mpgo, and
# modules whose import does something visible.
_NEVER = frozenset({'__main__', 'multiprocessing', 'antigravity', 'this',
                    'tkinter', 'idlelib', 'turtle', 'turtledemo'})
_synced = 0        # len(sys.modules) at the last sync_modules()
_sent = set()      # names the zygote has or was asked to import


def sync_modules():
    '''Have the zygote import the modules of the standard library that
    this process imported since the zygote was forked, so that later
    children have them as a fork child would (a Manager's proxies need hmac
    and hashlib, say). Modules of other packages are left to the children
    that need them: their import might start threads, which would leave
    the zygote unable to fork safely. Costs nothing when no module came.'''
    global _synced
    n = len(sys.modules)
    if n == _synced or _zygote is None or _zygote.owner != os.getpid():
        return
    _synced = n
    stdlib = getattr(sys, 'stdlib_module_names', ())
    names = [name for name in list(sys.modules) if name not in _sent and
             name.partition('.')[0] in stdlib and
             name.partition('.')[0] not in _NEVER]
    _sent.update(names)
    if names:
        preload(names, wait=False)


def _call(flags, fds, block):
    for attempt in range(2):
        z = _get()
        try:
            return z.request(flags, fds, block)
        except _Gone:
            _discard(z)
    raise OSError('mpgo: the zygote died twice in a row while starting a '
                  'child')


def _get():
    global _zygote
    z = _zygote
    if z is not None and z.owner == os.getpid():
        return z
    with _lock:
        z = _zygote
        if z is None or z.owner != os.getpid():
            if z is not None:
                # Inherited by os.fork(): the zygote is our parent's, and
                # its children would be our parent's children.
                z.sock.close()
            z = _zygote = _fork() if _can_fork() else _start_fresh()
            if _preloaded:
                names, _preloaded[:] = list(_preloaded), []
                try:
                    z.request(_consts.ZYGOTE_IMPORT, [],
                              b''.join(os.fsencode(n) + b'\0' for n in names))
                except _Gone:
                    pass
        return z


def _discard(z):
    global _zygote
    with _lock:
        if _zygote is z:
            _zygote = None
    try:
        z.close()
    except Exception:
        pass


def _discard_current():
    z = _zygote
    if z is not None:
        _discard(z)


def zygote_pid():
    '''Return the pid of this process's zygote, or None if it has none.'''
    z = _zygote
    if z is None or z.owner != os.getpid():
        return None
    return z.pid


def client_fd():
    '''Return a new fd on this process's zygote socket (for the engine's
    pool, which starts its workers through the zygote from Go).'''
    return os.dup(_get().sock.fileno())


def stop():
    '''Stop this process's zygote, if any (tests use this).'''
    _discard_current()


def _after_fork_in_child():
    # An os.fork() child must not use its parent's zygote: close our copy
    # of the socket, so that the zygote still exits with its process.
    z = _zygote
    if z is not None and z.owner != os.getpid():
        try:
            z.sock.close()
        except OSError:
            pass


os.register_at_fork(after_in_child=_after_fork_in_child)


def _single_threaded():
    try:
        return len(os.listdir('/proc/self/task')) == 1
    except OSError:
        return False


def _imports_in_progress():
    '''Names of the modules whose import is under way (by this thread).'''
    return [name for name, m in list(sys.modules.items())
            if getattr(getattr(m, '__spec__', None), '_initializing', False)]


def _can_fork():
    '''Whether this process may fork a zygote now: it has not loaded the
    engine and runs one thread.'''
    return (supported() and
            'mpgo._native._pybind' not in sys.modules and
            _single_threaded())


def fork_early(in_import=()):
    '''Fork this process's zygote now if that is safe (see _can_fork), so
    that it is small and shares this process's pages; called at start-up
    when the default start method uses it. in_import names the modules
    being imported that are complete nonetheless (mpgo, at the end of its
    __init__).'''
    global _zygote
    if _zygote is not None or not _can_fork():
        return
    with _lock:
        if _zygote is None:
            _zygote = _fork(in_import)


def before_engine():
    '''Called as the engine is about to load: fork this process's zygote
    now if it may start children through one and has none yet (a child
    that goes on to start children of its own, say, as seed 000's do).
    Daemonic processes may not have children, and a process whose start
    method is 'spawn' does not need one.'''
    if _zygote is not None and _zygote.owner == os.getpid():
        return
    from . import context, process
    if process.current_process().daemon:
        return
    ctx = context._default_context
    method = (ctx._actual_context or ctx._default_context)._name
    if method in ('fork', 'forkserver'):
        fork_early()


def _fork(in_import=()):
    from . import util
    util._flush_std_streams()
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX,
                                                socket.SOCK_SEQPACKET)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:
        global _lock
        # Forked under _lock: the zygote and its children need their own.
        _lock = threading.Lock()
        code = 1
        try:
            parent_sock.close()
            _finish_imports(in_import)
            code = _serve(child_sock, parent)
        finally:
            os._exit(code)
    child_sock.close()
    _sent.update(sys.modules)    # the zygote has them all
    return _Zygote(parent_sock, pid, forked=True)


def _finish_imports(complete):
    '''In a zygote forked during an import: this thread will never return
    to the import machinery. The modules named in complete are whole (mpgo
    itself, at the end of its __init__): mark them imported. Every other
    module still being imported is half run: drop it, so that a child that
    needs it imports it afresh. Then release every import lock this thread
    holds (also those of imports that had not created their module yet, as
    `import multiprocessing` under the alias), or a thread of a child
    importing one of them would wait forever.'''
    import _thread
    import importlib._bootstrap as bootstrap
    for name in _imports_in_progress():
        if name in complete:
            sys.modules[name].__spec__._initializing = False
        else:
            del sys.modules[name]
    me = _thread.get_ident()
    for ref in list(getattr(bootstrap, '_module_locks', {}).values()):
        lock = ref()
        while lock is not None and getattr(lock, 'owner', None) == me:
            try:
                lock.release()
            except RuntimeError:
                break


def _start_fresh():
    from . import _engine, spawn, util
    exe = os.fsdecode(spawn.get_executable())
    argv = [exe] + util._args_from_interpreter_flags() + [
        '-c', 'from mpgo.zygote import main; main()', '--mpgo-child']
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX,
                                                socket.SOCK_SEQPACKET)
    try:
        null = os.open(os.devnull, os.O_RDWR)
        try:
            pid, _ = _engine.spawn(argv, [null, null, null, child_sock.fileno()],
                                   death_signal=signal.SIGKILL)
        finally:
            os.close(null)
    except BaseException:
        parent_sock.close()
        raise
    finally:
        child_sock.close()
    return _Zygote(parent_sock, pid, forked=False)

#
# The zygote's side
#


def main():
    '''The body of a fresh zygote: serve the socket on fd 3.'''
    sock = socket.socket(fileno=_FRESH_SOCK_FD)
    os._exit(_serve(sock, os.getppid()))


def _serve(sock, parent_pid):
    '''Serve requests on sock until end-of-file; return the exit code.'''
    import ctypes
    import fcntl  # noqa: F401 -- for the children
    # Die with the process we serve. If it died before prctl, it is gone.
    libc = ctypes.PyDLL(None, use_errno=True)   # PyDLL: keeps the GIL
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        return 0
    # Ctrl-C is for the parent and its children (they restore this).
    handlers = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    # stdio on /dev/null: a zygote must not hold a pipe somebody reads to
    # its end. Every child gets the parent's current ones.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if sock.fileno() != _FRESH_SOCK_FD:
        os.dup2(sock.fileno(), _FRESH_SOCK_FD)
        sock.close()
        sock = socket.socket(fileno=_FRESH_SOCK_FD)
    os.closerange(_FRESH_SOCK_FD + 1, _max_fd())
    clone = _make_clone(libc)
    # What children need, imported once here rather than in each child.
    import select
    if not _import_all(b'\0'.join(_CHILD_MODULES)):
        return 0
    later = list(_LATER_MODULES)
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    while True:
        while later and not poller.poll(_IDLE_MS):
            if not _import_all(later.pop(0)):
                return 0
        try:
            msg, fds, _, _ = socket.recv_fds(sock, _consts.ZYGOTE_MAX_MESSAGE,
                                             _consts.ZYGOTE_MAX_FDS + 1)
        except OSError:
            return 0
        if not msg:
            return 0    # the parent has gone or closed its end
        if not _valid(msg, fds):
            for fd in fds:
                os.close(fd)
            continue
        _, flags, _, _ = _HEADER.unpack_from(msg)
        block = msg[_HEADER.size:]
        reply = fds[0]
        if flags & _consts.ZYGOTE_IMPORT:
            ok = _import_all(block)
            _write_reply(reply, 0 if ok else -1)
            if not ok:
                return 0
            continue
        try:
            pid = clone()
        except OSError as e:
            pid = -(e.errno or 1)
        if pid == 0:
            _child(sock, fds[1:], block, flags, parent_pid, handlers, libc)
        for fd in fds[1:]:
            os.close(fd)
        _write_reply(reply, pid)


def _valid(msg, fds):
    if len(msg) < _HEADER.size or not fds:
        return False
    magic, _, nfds, blen = _HEADER.unpack_from(msg)
    return (magic == _consts.ZYGOTE_MAGIC and nfds == len(fds) - 1 and
            blen == len(msg) - _HEADER.size)


def _write_reply(fd, value):
    try:
        os.write(fd, _REPLY.pack(value))
    except OSError:
        pass    # the parent gave up on this request
    os.close(fd)


class _NoStdlibMultiprocessing(object):
    '''A finder that refuses the standard library's multiprocessing while
    the zygote preloads: mpgo never imports it, and a module that needs it
    (concurrent.futures.process) is left to the children, which import it
    with their own `multiprocessing`.'''

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == 'multiprocessing' or name.startswith('multiprocessing.'):
            if sys.modules.get(name) is None:
                raise ModuleNotFoundError('not preloaded by the zygote: %s'
                                          % name, name=name)
        return None


def _import_all(block):
    sys.meta_path.insert(0, _NoStdlibMultiprocessing)
    try:
        for name in block.split(b'\0'):
            if name:
                try:
                    __import__(os.fsdecode(name))
                except BaseException:
                    pass
    finally:
        sys.meta_path.remove(_NoStdlibMultiprocessing)
    return 'mpgo._native._pybind' not in sys.modules and _single_threaded()


def _make_clone(libc):
    '''Return a function that forks as os.fork() does, but with the child
    made a child of our parent (CLONE_PARENT).'''
    import ctypes
    api = ctypes.pythonapi
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    syscall.argtypes = [ctypes.c_long] * 6
    flags = _CLONE_PARENT | signal.SIGCHLD

    def clone():
        api.PyOS_BeforeFork()
        pid = syscall(_SYS_CLONE, flags, 0, 0, 0, 0)
        if pid == 0:
            api.PyOS_AfterFork_Child()
        else:
            api.PyOS_AfterFork_Parent()
        if pid < 0:
            raise OSError(ctypes.get_errno(), 'clone')
        return pid

    return clone


def _child(sock, fds, env_block, flags, parent_pid, handlers, libc):
    '''In a newly forked child: set it up as the request says and run the
    spawn data on fd 3. Never returns.'''
    code = 1
    try:
        sock.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        _install_fds(fds)
        os.environb.clear()
        for kv in env_block.split(b'\0'):
            k, eq, v = kv.partition(b'=')
            if eq:
                os.environb[k] = v
        if flags & _consts.ZYGOTE_DAEMON:
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent_pid:
                os.kill(os.getpid(), signal.SIGKILL)
        if _RUN_CHILD_ATEXIT:
            import atexit
            from . import util
            atexit._clear()     # the parent's, inherited through the zygote
            atexit.register(util._exit_function)
        from . import spawn
        code = spawn._zygote_main(parent_pid)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        try:
            import traceback
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        if _RUN_CHILD_ATEXIT:
            try:
                import atexit
                atexit._run_exitfuncs()
            except BaseException:
                pass
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        os._exit(code)


# Whether a forked child runs the exit handlers registered in it, as
# CPython's fork and forkserver children do from 3.13 on (gh-83856).
_RUN_CHILD_ATEXIT = sys.version_info >= (3, 13)


def _install_fds(fds):
    '''Make fds[i] this process's fd i and close every other fd.'''
    import fcntl
    n = len(fds)
    # Out of the way first (>= n), so that no dup2 below hits a source.
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, n) for fd in fds]
    for i, fd in enumerate(high):
        os.dup2(fd, i, inheritable=i < 3)
    os.closerange(n, _max_fd())


def _max_fd():
    try:
        return os.sysconf('SC_OPEN_MAX')
    except (OSError, ValueError):
        return 1 << 16
