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

import gc
import os
import signal
import socket
import struct
import sys
import threading

from . import _consts

__all__ = ['request_child', 'child_pid', 'preload',
           'spare_pid', 'zygote_pid', 'client_fd', 'stop']

_HEADER = struct.Struct('<IIII')
_REPLY = struct.Struct('<q')
assert _HEADER.size == _consts.ZYGOTE_HEADER_SIZE
assert _REPLY.size == _consts.ZYGOTE_REPLY_SIZE

# What a child imports to run its spawn data, preloaded by the zygote.
# (popen_spawn_posix: its _DupFd carries every fd a child is sent; the
# spawn data holds a resource_tracker; connection, heap and queue are what
# mpgo.queues, synchronize and sharedctypes import that needs no engine:
# ~4 ms of every child that touches a Queue, Lock or Value; popen_fork and
# _leaf are what a child's own start() imports, and _errors the engine's
# door: ~1 ms of each of seed 000's two children that start children.)
_CHILD_MODULES = (b'mpgo.spawn', b'mpgo._forking', b'mpgo._alias', b'fcntl',
                  b'mpgo.popen_spawn_posix', b'mpgo.resource_tracker',
                  b'mpgo.connection', b'mpgo.heap', b'queue',
                  b'mpgo.popen_fork', b'mpgo._leaf', b'mpgo._errors')
# ... and what many children need, imported once the zygote has been idle
# for _IDLE_MS (an import holds up the requests that come meanwhile).
# Not cloudpickle: it is big (its imports are), and children need it only
# for classes of __main__. Not mpgo.managers either (17 ms, and a few MB in
# the zygote and its spare): a child needs it for a proxy, and a parent that
# has proxies imported it, which has the zygote import it (share_import).
_LATER_MODULES = (b'mpgo.pool',)
_IDLE_MS = 20
# Children a zygote forks before it keeps a spare: a spare saves a start
# about 0.5 ms, but forking one costs a core about 1.5 ms, which a short
# program starting a few children at once pays and never gets back
# (seed 002's four children: +5 ms).
SPARE_AFTER = 8

# The spares area: a memfd the zygote shares with the process it serves,
# _SPARES_WORDS little-endian int64s:
#
#	offset  what
#	0       pid of the spare: a child forked ahead of the next request
#	        and waiting for it (0: none). It is the served process's child
#	        (clone(CLONE_PARENT)), so that process reaps it: cleared by the
#	        zygote before it hands the spare a request.
#	8*i     (i >= 1) pid of a spare that died unused, for the served
#	        process to reap (0: free); set by the zygote, cleared by the
#	        served process.
#
# Only the Python side knows it: to a client, Go's among them, a spare is
# just the child its request got, sooner.
_SPARES_WORDS = 32
_SPARES = struct.Struct('<%dq' % _SPARES_WORDS)
_SLOT = struct.Struct('<q')
_SPARES_NAME = 'mpgo-zygote-spares'

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

    def __init__(self, sock, pid, forked, spares=None):
        self.sock = sock
        self.pid = pid
        self.forked = forked    # forked by this process (else engine-started)
        self.owner = os.getpid()
        self.spares = spares    # fd of the spares area (see _SPARES), or None

    def spare_pids(self):
        '''Return (the pid of the zygote's spare or 0, [pids of spares that
        died unused, for us to reap]).'''
        if self.spares is None:
            return 0, []
        words = _SPARES.unpack(os.pread(self.spares, _SPARES.size, 0))
        return words[0], [(i, pid) for i, pid in enumerate(words) if i and pid]

    def reap_dead_spares(self):
        '''Reap the spares that died unused (they are our children).'''
        for i, pid in self.spare_pids()[1]:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    continue    # killed, not dead yet: next time
            except ChildProcessError:
                pass
            os.pwrite(self.spares, _SLOT.pack(0), i * _SLOT.size)

    def request(self, flags, fds, block, reply=True):
        '''Send one request and return the zygote's reply (an int; None
        when not waited for).'''
        r = self.send(flags, fds, block, reply)
        return None if r is None else r.value()

    def send(self, flags, fds, block, reply=True):
        '''Send one request; return its Reply (None when not waited for).'''
        reply_r, reply_w = os.pipe()
        if not reply:
            # The zygote's write then fails, which it ignores.
            os.close(reply_r)
            reply_r = None
        try:
            msg = _HEADER.pack(_consts.ZYGOTE_MAGIC, flags, len(fds),
                               len(block)) + block
            socket.send_fds(self.sock, [msg], [reply_w] + list(fds))
        except (BrokenPipeError, ConnectionError) as e:
            if reply_r is not None:
                os.close(reply_r)
            raise _Gone() from e
        finally:
            os.close(reply_w)
        return None if reply_r is None else Reply(self, reply_r)


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
        if self.spares is not None:
            # Its spare is our child: it exits as the zygote's socket
            # closes, or now.
            spare, dead = self.spare_pids()
            for pid in [spare] + [pid for _, pid in dead]:
                if not pid:
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    os.waitpid(pid, 0)
                except ChildProcessError:
                    pass
            os.close(self.spares)
            self.spares = None


class Reply(object):
    '''The zygote's answer to one request, read when asked for (so that
    a caller can do other work first: fill its child's data pipe).'''

    def __init__(self, z, fd):
        self._z = z
        self._fd = fd
        self._value = None

    def value(self):
        '''Wait for the answer and return it (an int). Raises _Gone if the
        zygote died before it answered.'''
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                b = b''
                while len(b) < _REPLY.size:
                    chunk = os.read(fd, _REPLY.size - len(b))
                    if not chunk:
                        raise _Gone()
                    b += chunk
            finally:
                os.close(fd)
            self._value = _REPLY.unpack(b)[0]
        return self._value

    def close(self):
        '''Stop waiting for the answer.'''
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_zygote = None
_lock = threading.Lock()
# Module names sent with preload(), so that a replacement zygote gets them.
_preloaded = []


def prepare():
    '''Make sure this process has its zygote: called by a start before it
    pickles the child, since pickling may start a thread (the server of
    __main__'s objects), and a process with threads cannot fork one, only
    start a fresh interpreter as one (40 ms; a child of seed 000's shape
    that shares no Value paid that for its own children).'''
    _get()


def request_child(fds, env=None, daemon=False):
    '''Ask this process's zygote for a child; return the Reply that
    child_pid() reads its pid from. In between, the caller may fill the
    child's data pipe: the child reads it as soon as it runs.

    fds[i] becomes the child's fd i (0-2 its stdio, 3 the pipe it reads
    its spawn data on); env is its environment (None: os.environ); a
    daemonic child dies with this process. The child is this process's own
    child: reap it with waitid(P_PIDFD) on os.pidfd_open(pid).'''
    flags, fds, block = _child_request(fds, env, daemon)
    z = _get()
    z.reap_dead_spares()
    try:
        return z.send(flags, fds, block)
    except _Gone:
        _discard(z)
        return _Done(_call(flags, fds, block))


def child_pid(value):
    '''Wait for the zygote's answer to request_child() and return the
    child's pid; raise OSError if it could not fork, Gone if it died before
    it forked (ask again: the child does not exist).'''
    if not isinstance(value, int):
        try:
            value = value.value()
        except _Gone:
            _discard(value._z)
            raise
    if value < 0:
        raise OSError(-value, 'mpgo zygote: fork: ' + os.strerror(-value))
    return value


class _Done(Reply):
    '''A Reply already read.'''

    def __init__(self, value):
        self._z = None
        self._fd = None
        self._value = value


Gone = _Gone

# os.environ's last contents and their block: most children get the same.
_env_cache = ({}, b'')


def _env_block(env):
    global _env_cache
    data = getattr(os.environ, '_data', None) if env is None else None
    if type(data) is dict and data == _env_cache[0]:
        return _env_cache[1]
    if env is None:
        env = os.environb
    block = b''.join(b'%s=%s\0' % (os.fsencode(k), os.fsencode(v))
                     for k, v in env.items())
    if type(data) is dict:
        _env_cache = (dict(data), block)
    return block


def _child_request(fds, env, daemon):
    if len(fds) > _consts.ZYGOTE_MAX_FDS:
        raise ValueError('too many fds for a child (%d, at most %d)'
                         % (len(fds), _consts.ZYGOTE_MAX_FDS))
    block = _env_block(env)
    if len(block) + _HEADER.size > _consts.ZYGOTE_MAX_MESSAGE:
        raise ValueError('the environment is too big for a zygote child '
                         '(%d bytes)' % len(block))
    return (_consts.ZYGOTE_DAEMON if daemon else 0), fds, block


def preload(names, wait=True, when_idle=False):
    '''Have the zygote import the modules named (set_forkserver_preload),
    now and in any zygote that replaces it. A module that would make the
    zygote unable to fork safely (one that starts threads, or loads the
    engine) makes it exit: the next zygote is started without them. With
    wait=False, return at once: the zygote imports them before it serves
    the next request (for mpgo's own modules, which are safe); with
    when_idle too, once no request has come for a while.'''
    names = [n for n in names if n not in _preloaded]
    if not names:
        return
    _preloaded.extend(names)
    block = b''.join(os.fsencode(n) + b'\0' for n in names)
    if not wait:
        flags = _consts.ZYGOTE_IMPORT
        if when_idle:
            flags |= _consts.ZYGOTE_WHEN_IDLE
        try:
            _get().request(flags, [], block, reply=False)
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
    '''Have the zygote import the modules this process imported since the
    zygote was forked, so that later children have them as a fork child
    would (a Manager's proxies need hmac and hashlib, say): the standard
    library's and mpgo's at once, once it is idle; those of installed
    packages once a probe has found them safe (mpgo._packages: their
    import might start threads, which would leave the zygote unable to fork
    safely). A replacement zygote gets only the former. Costs nothing when
    no module came.'''
    global _synced
    n = len(sys.modules)
    if n == _synced or _zygote is None or _zygote.owner != os.getpid():
        return
    _synced = n
    stdlib = getattr(sys, 'stdlib_module_names', ())
    from . import _packages
    names, packages = [], []
    for name, module in list(sys.modules.items()):
        top = name.partition('.')[0]
        if name in _sent or top in _NEVER:
            continue
        if top == __package__:
            if _ours(name):
                names.append(name)
        elif top in stdlib:
            names.append(name)
        elif _packages.installed(module):
            packages.append(name)
    _sent.update(names)
    _sent.update(packages)
    if names:
        # When idle: the next child may be coming now (a burst of starts).
        preload(names, wait=False, when_idle=True)
    block = b''
    for name in packages + [None]:
        # In requests well under the largest a zygote reads.
        if name is None or len(block) > _consts.ZYGOTE_MAX_MESSAGE // 2:
            if block:
                try:
                    _get().request(_consts.ZYGOTE_IMPORT |
                                   _consts.ZYGOTE_WHEN_IDLE, [], block,
                                   reply=False)
                except _Gone:
                    return
            block = b''
        if name is not None:
            block += os.fsencode(name) + b'\0'


def _ours(name):
    '''Whether name is one of mpgo's modules the zygote may import: not
    the cluster's (they start threads), nor those of the engine (refused).'''
    pkg = __package__
    return (name.startswith(pkg + '.') and
            not name.startswith((pkg + '.cluster', pkg + '._native',
                                 pkg + '._engine')))


def share_import(name):
    '''Have this process's zygote (and its spare) import the module name
    now, alongside this process, if it has a zygote: for modules whose
    children come soon (a Manager's server).'''
    z = _zygote
    if z is not None and z.owner == os.getpid() and name not in _sent:
        _sent.add(name)
        preload([name], wait=False)


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


def spare_pid():
    '''Return the pid of the child this process's zygote keeps forked
    ahead of the next request, or None.'''
    z = _zygote
    if z is None or z.owner != os.getpid():
        return None
    return z.spare_pids()[0] or None


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
            if z.spares is not None:
                os.close(z.spares)
        except OSError:
            pass
        z.spares = None


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


def fork_early(in_import=(), freeze=False):
    '''Fork this process's zygote now if that is safe (see _can_fork), so
    that it is small and shares this process's pages; called at start-up
    when the default start method uses it. in_import names the modules
    being imported that are complete nonetheless (mpgo, at the end of its
    __init__). With freeze, this process's objects go to the garbage
    collector's permanent generation first (gc.freeze).'''
    global _zygote
    if _zygote is not None or not _can_fork():
        return
    with _lock:
        if _zygote is None:
            if freeze:
                gc.freeze()
            _zygote = _fork(in_import)


_no_children = False


def no_children_expected():
    '''The parent saw that this child's target starts no process (see
    mpgo._leaf): loading the engine forks no zygote here.'''
    global _no_children
    _no_children = True


def before_engine():
    '''Called as the engine is about to load: fork this process's zygote
    now if it may start children through one and has none yet (a child
    that goes on to start children of its own, say, as seed 000's do).
    Daemonic processes may not have children, and a process whose start
    method is 'spawn' does not need one.'''
    if _zygote is not None and _zygote.owner == os.getpid():
        return
    if _no_children:
        return
    from . import context, process
    if process.current_process().daemon:
        return
    ctx = context._default_context
    method = (ctx._actual_context or ctx._default_context)._name
    if method in ('fork', 'forkserver'):
        fork_early()


def _fork(in_import=()):
    # Not util._flush_std_streams: a program that starts no process never
    # needs mpgo.util (and its atexit hook), and the zygote imports it.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, ValueError):
            pass
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX,
                                                socket.SOCK_SEQPACKET)
    spares = _new_spares_area()
    parent = os.getpid()
    # A child's zygote serves a process that is itself one of a program's
    # workers: its idle time is the program's busy time, which imports
    # for children it will most likely never have would take cores from.
    from . import process
    later = process.parent_process() is None
    pid = os.fork()
    if pid == 0:
        global _lock
        # Forked under _lock: the zygote and its children need their own.
        _lock = threading.Lock()
        code = 1
        try:
            parent_sock.close()
            _finish_imports(in_import)
            code = _serve(child_sock, parent, spares, later)
        finally:
            os._exit(code)
    child_sock.close()
    _sent.clear()
    _sent.update(sys.modules)    # the zygote has them all
    return _Zygote(parent_sock, pid, forked=True, spares=spares)


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
    global _synced
    # It has none of our modules: the next sync_modules() sends them all.
    _sent.clear()
    _synced = 0
    spares = _new_spares_area()
    try:
        null = os.open(os.devnull, os.O_RDWR)
        try:
            pid, _ = _engine.spawn(argv, [null, null, null, child_sock.fileno(),
                                          spares],
                                   death_signal=signal.SIGKILL)
        finally:
            os.close(null)
    except BaseException:
        parent_sock.close()
        os.close(spares)
        raise
    finally:
        child_sock.close()
    return _Zygote(parent_sock, pid, forked=False, spares=spares)


def _new_spares_area():
    fd = os.memfd_create(_SPARES_NAME, os.MFD_CLOEXEC)
    os.ftruncate(fd, _SPARES.size)
    return fd

#
# The zygote's side
#


def main():
    '''The body of a fresh zygote: serve the socket on fd 3.'''
    sock = socket.socket(fileno=_FRESH_SOCK_FD)
    spares = _FRESH_SOCK_FD + 1
    try:
        if not os.readlink('/proc/self/fd/%d' % spares).startswith(
                '/memfd:' + _SPARES_NAME):
            spares = None
    except OSError:
        spares = None
    os._exit(_serve(sock, os.getppid(), spares))


def _serve(sock, parent_pid, spares=None, later=True):
    '''Serve requests on sock until end-of-file; return the exit code.
    spares, an fd on the spares area (_SPARES), lets it keep a spare;
    later, whether it imports _LATER_MODULES when idle.'''
    import ctypes
    import fcntl  # noqa: F401 -- for the children
    # Die with the process we serve. If it died before prctl, it is gone.
    libc = ctypes.PyDLL(None, use_errno=True)   # PyDLL: keeps the GIL
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        return 0
    # Ctrl-C is for the parent and its children (they restore this).
    handlers = {signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN)}
    # Not the command line of the process we serve (see _proctitle); the
    # children, and a spare once it is one, put that back.
    global _cmdline
    from . import _proctitle
    _cmdline = _proctitle.replace()
    # stdio on /dev/null: a zygote must not hold a pipe somebody reads to
    # its end. Every child gets the parent's current ones.
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if sock.fileno() != _FRESH_SOCK_FD:
        os.dup2(sock.fileno(), _FRESH_SOCK_FD)
        sock.close()
        sock = socket.socket(fileno=_FRESH_SOCK_FD)
    if spares is not None:
        os.dup2(spares, _FRESH_SOCK_FD + 1)
        spares = _FRESH_SOCK_FD + 1
    os.closerange(_FRESH_SOCK_FD + 2 if spares else _FRESH_SOCK_FD + 1,
                  _max_fd())
    clone = _make_clone(libc)
    # What children need, imported once here rather than in each child.
    import select
    if not _import_all(b'\0'.join(_CHILD_MODULES)):
        return 0
    later = list(_LATER_MODULES) if later else []
    idle = []   # blocks of ZYGOTE_WHEN_IDLE imports
    from . import _packages
    packages = _packages.Probes(_probe_with(libc))
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    spare = _Spares(spares, clone, sock, parent_pid, handlers, libc)
    served = 0
    while True:
        if served >= SPARE_AFTER and not poller.poll(0):
            spare.make()    # no request waiting: have one ready
        while (later or idle or packages.pending()) and \
                not poller.poll(_IDLE_MS):
            if later or idle:
                block, others = _split((later or idle).pop(0))
                packages.add(others)
            else:
                names = packages.step()
                if names is None:
                    continue
                block = b'\0'.join(names)
            if not block:
                continue
            if not _import_all(block):
                return 0
            spare.forward(block)
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
            if flags & _consts.ZYGOTE_WHEN_IDLE:
                os.close(reply)
                idle.append(block)
                continue
            if _nobody_waits(reply):
                # mpgo's own syncing (share_import): the spare imports the
                # same modules, alongside.
                spare.forward(block)
            else:
                # preload() (set_forkserver_preload): user modules are
                # imported once, here; the spare is made anew after.
                spare.discard()
            ok = _import_all(block)
            _write_reply(reply, 0 if ok else -1)
            if not ok:
                return 0
            continue
        served += 1
        pid = spare.hand_over(msg, fds)
        if pid is None:
            try:
                pid = clone()
            except OSError as e:
                pid = -(e.errno or 1)
            if pid == 0:
                _write_reply(reply, os.getpid())
                _child(sock, fds[1:], block, flags, parent_pid, handlers, libc)
        for fd in fds[1:]:
            os.close(fd)
        _write_reply(reply, pid)


class _Spares(object):
    '''The zygote's spare: a child forked ahead of the next request, which
    waits for it on a socket of its own. A request it gets skips the fork
    and what the child does before it can read a request (after-fork
    hooks, signals, the copy-on-write faults of both): about half of what
    a start costs. Only where the served process can reap it (a spares
    area).'''

    def __init__(self, area, clone, sock, parent_pid, handlers, libc):
        self.area = area
        self.clone = clone
        self.args = (sock, parent_pid, handlers, libc)
        self.pid = 0
        self.sock = None

    def make(self):
        if self.area is None or self.sock is not None:
            return
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = self.clone()
        except OSError:
            mine.close()
            theirs.close()
            return
        if pid == 0:
            mine.close()
            _spare(theirs, *self.args)
        theirs.close()
        os.pwrite(self.area, _SLOT.pack(pid), 0)
        self.pid, self.sock = pid, mine

    def _drop(self, dead):
        os.pwrite(self.area, _SLOT.pack(0), 0)
        if dead:
            words = _SPARES.unpack(os.pread(self.area, _SPARES.size, 0))
            for i in range(1, _SPARES_WORDS):
                if not words[i]:
                    os.pwrite(self.area, _SLOT.pack(self.pid), i * _SLOT.size)
                    break
        self.sock.close()
        self.pid, self.sock = 0, None

    def discard(self):
        '''Kill the spare; the served process reaps it.'''
        if self.sock is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._drop(dead=True)

    def hand_over(self, msg, fds):
        '''Give the request to the spare; return its pid, or None if there
        is no spare (or it had died).'''
        if self.sock is None:
            return None
        pid = self.pid
        # Cleared first: once it has the request it is a child like any
        # other, which its parent must never take for a spare.
        os.pwrite(self.area, _SLOT.pack(0), 0)
        try:
            socket.send_fds(self.sock, [msg], fds)
        except OSError:
            self._drop(dead=True)
            return None
        self._drop(dead=False)
        return pid

    def forward(self, block):
        '''Have the spare import the modules named in block (an import
        request's, sent without fds).'''
        if self.sock is None:
            return
        try:
            self.sock.send(_HEADER.pack(_consts.ZYGOTE_MAGIC,
                                        _consts.ZYGOTE_IMPORT, 0, len(block)) +
                           block)
        except OSError:
            self._drop(dead=True)


def _spare(sock, zygote_sock, parent_pid, handlers, libc):
    '''In a spare (see _Spares): wait on sock for a request, then run it
    as _child does. Never returns.'''
    try:
        zygote_sock.close()
        # A spare exits when the zygote's end of sock closes, which it does
        # as it dies with the process it serves; but a request the zygote
        # sent before it died is read first, and run (the child of a start()
        # that returned). Until then, it is deaf to Ctrl-C as the zygote.
        if os.getppid() != parent_pid:
            os._exit(0)
        while True:
            try:
                msg, fds, _, _ = socket.recv_fds(
                    sock, _consts.ZYGOTE_MAX_MESSAGE, _consts.ZYGOTE_MAX_FDS + 1)
            except OSError:
                os._exit(0)
            if not msg:
                os._exit(0)    # the zygote has gone
            if fds and _valid(msg, fds):
                _, flags, _, _ = _HEADER.unpack_from(msg)
                break
            for fd in fds:
                os.close(fd)
            # Forwarded by the zygote: the header and the modules' names.
            if not _import_all(msg[_HEADER.size:]):
                os._exit(0)
    except BaseException:
        os._exit(1)
    _write_reply(fds[0], os.getpid())
    _child(sock, fds[1:], msg[_HEADER.size:], flags, parent_pid, handlers,
           libc)


def _nobody_waits(fd):
    '''Whether the read end of the pipe that fd writes to is closed.'''
    import select
    p = select.poll()
    p.register(fd, select.POLLOUT)
    return any(ev & select.POLLERR for _, ev in p.poll(0))


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


_ENGINE = (__package__ + '._engine', __package__ + '._native._pybind')


class _NoStdlibMultiprocessing(object):
    '''A finder that refuses the standard library's multiprocessing while
    the zygote preloads: mpgo never imports it, and a module that needs it
    (concurrent.futures.process) is left to the children, which import it
    with their own `multiprocessing`. It refuses the engine too.'''

    refused = 0     # refusals so far: _import_all undoes an import they hit

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name == 'multiprocessing' or name.startswith('multiprocessing.'):
            if sys.modules.get(name) is None:
                cls.refused += 1
                raise ModuleNotFoundError('not preloaded by the zygote: %s'
                                          % name, name=name)
        if name in _ENGINE:
            # Go must never run here: a module that needs the engine at
            # import is left to the children. Refused at mpgo._engine, the
            # engine's one door, which would fork a zygote of its own here
            # before it loads Go (before_engine()).
            cls.refused += 1
            raise ImportError('the zygote does not load the engine',
                              name=name)
        return None


def _import_all(block, strict=False):
    '''Import the modules named in block; return whether this process can
    still fork safely (strict: and every import succeeded).

    An import that raised, or that hit a refusal of _NoStdlibMultiprocessing
    even if its package caught the ImportError (multiprocess does, around
    dill), is undone: every module it added leaves sys.modules. Kept, the
    half-imported rest would be what children find, where a fresh process
    imports the whole package, with its own multiprocessing (dill.logger
    naming a `dill` module that failed: mpire's workers died on it).'''
    finder = _NoStdlibMultiprocessing
    sys.meta_path.insert(0, finder)
    try:
        for name in block.split(b'\0'):
            name = os.fsdecode(name)
            if not name or sys.modules.get(name) is not None:
                continue    # most of a package's names come with its first
            before, refused = set(sys.modules), finder.refused
            try:
                __import__(name)
                failed = finder.refused != refused
            except BaseException:
                failed = True
            if failed:
                for added in set(sys.modules) - before:
                    del sys.modules[added]
                if strict:
                    return False
    finally:
        sys.meta_path.remove(finder)
    if _ENGINE[1] in sys.modules:
        return False
    if _single_threaded():
        return True
    from . import _packages
    return _packages.quiet_blas() and _single_threaded()


def _split(block):
    '''Split an import block into the block of the standard library's and
    mpgo's modules, imported at once, and the names of other packages'
    modules, tried in a probe first.'''
    stdlib = getattr(sys, 'stdlib_module_names', ())
    ours, others = [], []
    for name in block.split(b'\0'):
        top = name.partition(b'.')[0]
        if not name or os.fsdecode(top) in stdlib or top == __package__.encode():
            ours.append(name)
        else:
            others.append(name)
    return b'\0'.join(ours), others


def _probe_with(libc):
    '''Return probe(names): fork a probe child that tries names (see
    mpgo._packages) and return its pid.'''
    from . import _packages

    def try_import(names):
        return _import_all(b'\0'.join(names), strict=True)

    def probe(names):
        pid = os.fork()
        if pid == 0:
            _packages.run_probe(names, try_import, libc)
        return pid

    return probe


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
        # Everything the zygote holds goes to the permanent generation
        # first, so that no child's collection writes to it (the gc header
        # of every object): a worker's first full collection dirtied ~6 MB
        # of pages it shared with the zygote. See gc.freeze's docs.
        gc.freeze()
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
        from . import _proctitle
        _proctitle.restore(_cmdline)
        sock.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        _install_fds(fds)
        _set_environ(env_block)
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


# What _proctitle needs to give a child back the command line of the
# process the zygote serves.
_cmdline = None

# Whether a forked child runs the exit handlers registered in it, as
# CPython's fork and forkserver children do from 3.13 on (gh-83856).
_RUN_CHILD_ATEXIT = sys.version_info >= (3, 13)


def _set_environ(block):
    '''Make os.environ hold the "KEY=VALUE" strings of block: in a child
    of a process that has not changed its environment since it forked the
    zygote, nothing to do (every change dirties pages the child would
    otherwise share).'''
    want = {}
    for kv in block.split(b'\0'):
        k, eq, v = kv.partition(b'=')
        if eq:
            want[k] = v
    env = os.environb
    if getattr(env, '_data', None) == want:
        return
    for k in [k for k in env if k not in want]:
        del env[k]
    for k, v in want.items():
        if env.get(k) != v:
            env[k] = v


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
