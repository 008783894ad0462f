"""The one private door to mpgo's native engine.

Everything in mpgo that needs Go goes through this module. It loads the one
shared object that holds the Go runtime: gopy's module ``_pybind`` and the
hand-written fast paths ``_fast`` come from the same file, so a process never
holds two Go runtimes.

A child forked from a process running Go would hang on its first call into
Go, so after an os.fork() of a process that has started Go every entry point
here raises RuntimeError instead (the C fast paths check a pthread_atfork
flag for the same reason); a child forked before starts its own runtime.
"""
import importlib.machinery
import importlib.util
import os
import sys

from . import _consts
from . import _errors
from . import zygote as _zygote

# The last moment this process can fork a zygote (it never can once Go
# runs): do it now if it may start children through one.
_zygote.before_engine()

try:
    from ._native import _pybind
except ImportError as e:
    # A checkout holds builds for the Pythons `make build` ran with only.
    native = os.path.join(os.path.dirname(__file__), "_native")
    if any(os.path.exists(os.path.join(native, "_pybind" + suffix))
           for suffix in importlib.machinery.EXTENSION_SUFFIXES):
        raise
    raise ImportError(
        "mpgo: the engine is not built for this Python (%d.%d, %s): install "
        "mpgo with it, or run `make build PY=%s` in the checkout"
        % (sys.version_info[0], sys.version_info[1], sys.executable, sys.executable)) from e

__all__ = ["call", "spawn", "wait", "send_signal", "release", "fast"]


def _load_fast():
    path = _pybind.__spec__.origin
    name = __package__ + "._native._fast"
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


fast = _load_fast()
fast.set_errors(_errors.exception)


class _NotStarted:
    """Stands for _pybind until the Go runtime runs: loading the shared
    object does not start it (capi/lazy.c), and a gopy function entered
    before it starts would wait for it forever. The C fast path starts it
    itself, in its C ABI entry points."""

    def __getattr__(self, name):
        start()
        return getattr(_pybind, name)


def start():
    """Start the Go runtime now if it has not started."""
    global _g
    fast.start()
    _g = _pybind


def _in_child():
    """Whether this process is an mpgo child: its Process object is being
    unpickled (spawn sets _inheriting meanwhile) or runs."""
    from . import process
    return (process.parent_process() is not None or
            getattr(process.current_process(), '_inheriting', False))


# The main process starts the runtime at once, so that its set-up overlaps
# the rest of its start-up: it will need it. A child starts it only when it
# first enters Go: one that just reads a Value or takes an uncontended Lock
# never does, and saves about 3 ms of CPU, the Go heap and a handful of
# threads.
_g = _NotStarted()
if not _in_child():
    start()


def _lock_taken_over(n, pid):
    from . import util
    util.get_logger().warning(
        "mpgo: took over %d lock(s) whose holder (pid %d) died holding them; "
        "the data they guarded may be inconsistent", n, pid)


fast.set_takeover_hook(_lock_taken_over)
_NOT_DONE = _consts.STILL_RUNNING
_handles = {}  # pid -> engine handle


class _Forked:
    """Stands in for the native modules in a forked child."""

    def __getattr__(self, name):
        raise RuntimeError(
            "mpgo: the engine cannot be used in a process forked from one "
            "running the Go runtime (golang/go#15538); start children with "
            "mpgo.Process, which spawns a fresh interpreter")


def _after_fork_in_child():
    # Only once Go has started: a child forked before starts its own (as
    # the C fork guard lets it, capi/guard.c).
    global _g, fast
    if isinstance(fast, _Forked) or fast.started():
        _g = fast = _Forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _call(fn, *args):
    try:
        return fn(*args)
    except RuntimeError as e:
        raise _errors.translate(e) from None


def call(name, *args):
    """Call the gopy function pybind.<name>, translating its error."""
    try:
        return getattr(_g, "pybind_" + name)(*args)
    except RuntimeError as e:
        raise _errors.translate(e) from None


def spawn(argv, fds, death_signal=0, env=None):
    """Start argv[0] with argv; fds[i] becomes the child's fd i.

    Returns (pid, pidfd). The pidfd is readable once the child exits and
    stays owned by the engine until release(pid). death_signal, if not 0, is
    delivered to the child when this process dies, even by SIGKILL."""
    # Always pass the environment: Go took its own copy when the runtime
    # started and never sees later os.environ changes.
    envj = json_strings(["%s=%s" % kv for kv in
                         (os.environ if env is None else env).items()])
    h = _call(_g.pybind_ProcessStart, json_strings(argv), json_ints(fds),
              envj, int(death_signal))
    pid = _call(_g.pybind_ProcessPid, h)
    _handles[pid] = h
    return pid, _call(_g.pybind_ProcessPidfd, h)


# JSON string escapes of the characters that need one.
_JSON_ESCAPES = {i: '\\u%04x' % i for i in range(0x20)}
_JSON_ESCAPES.update({ord('"'): '\\"', ord('\\'): '\\\\'})


def json_strings(items):
    '''Encode a list of str as a JSON array (how lists cross into Go),
    without importing json, which costs a Pool() 2 ms.'''
    items = list(items)
    if not all(s.isascii() for s in items):
        import json    # surrogates and the like: json's rules
        return json.dumps(items)
    return '[' + ','.join('"%s"' % s.translate(_JSON_ESCAPES)
                          for s in items) + ']'


def json_ints(items):
    '''Encode a list of int as a JSON array.'''
    return '[' + ','.join('%d' % int(i) for i in items) + ']'


def wait(pid, timeout):
    """Wait up to timeout seconds (<= 0: just poll) for the child pid and
    return its exit code (n, or -signal), or None if it is still running.
    Callers wait in slices of at most 0.1 s so signal handlers can run."""
    st = _call(_g.pybind_ProcessWait, _handles[pid], max(float(timeout), 0.0))
    return None if st == _NOT_DONE else st


def send_signal(pid, sig):
    """Send sig to the child pid; an exited child is not an error."""
    _call(_g.pybind_ProcessSignal, _handles[pid], int(sig))


def release(pid):
    """Forget the child pid and close its pidfd."""
    h = _handles.pop(pid, None)
    if h is not None:
        _call(_g.pybind_ProcessRelease, h)


def live_handles():
    """How many engine objects this process still holds (for leak tests)."""
    return _call(_g.pybind_LiveHandles)
