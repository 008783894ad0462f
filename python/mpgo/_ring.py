"""Rings: this process's handles on the engine's shared-memory queues.

A ring (core/queue) carries byte messages between any number of processes.
mpgo.queues builds Queue, SimpleQueue and JoinableQueue on one ring;
mpgo.connection builds Pipe() on two. Puts and gets go through the C fast
path (mpgo._native._fast.Queue); creating, attaching and closing go
through gopy.
"""
import os
import weakref

from . import heap
from ._engine import call as _call, fast as _fast

__all__ = ['Ring', 'attach']


def _close(handle):
    try:
        _call("QueueClose", handle)
    except Exception:
        pass  # interpreter shutdown: the ring goes with the process


class Ring:
    """A shared ring; the handle is closed when the last user drops it."""

    __slots__ = ("handle", "q", "ino", "fd", "__weakref__")

    def __init__(self, handle):
        self.handle = handle
        self.q = _fast.Queue(handle)
        self.fd = _call("QueueFD", handle)
        self.ino = os.fstat(self.fd).st_ino
        # Not at exit: a daemon thread may still wait on the ring (CPython's
        # would stay blocked, not fail), and the process's end frees it.
        weakref.finalize(self, _close, handle).atexit = False

    @classmethod
    def new(cls, maxsize=0):
        """A new ring of at most maxsize messages (0: unbounded)."""
        return cls(_call("QueueNew", maxsize))

    def reduce(self):
        """The state to pickle: a reference to the ring, never its data.

        While a child is being started, the ring's fd goes to the child
        with it (heap.handoff). At any other time it goes through
        resource_sharer, as a Connection's fd does, so the receiver can
        attach the ring even if this process drops it right after."""
        ref = _call("QueueRef", self.handle)
        from .context import get_spawning_popen
        if get_spawning_popen() is None:
            from .reduction import DupFd
            return (_SharedFd(DupFd(self.fd), ref.rsplit(":", 1)[1]), self.ino)
        return (heap.handoff(self.fd, ref), self.ino)


class _SharedFd(object):
    """A ring's fd, to fetch from the process that pickled it."""

    __slots__ = ("dupfd", "size")

    def __init__(self, dupfd, size):
        self.dupfd = dupfd
        self.size = size

    def __reduce__(self):
        return _SharedFd, (self.dupfd, self.size)


def attach(ref, ino):
    """Attach the ring a pickled reference names."""
    if isinstance(ref, _SharedFd):
        fd = ref.dupfd.detach()
        ref = "0:%d:%s" % (fd, ref.size)
    ref, inherited = heap.resolve(ref)
    try:
        ring = Ring(_call("QueueAttach", ref))
    finally:
        if inherited is not None:
            os.close(inherited)
    if ring.ino != ino:
        raise OSError("mpgo: the process that pickled this queue no longer "
                      "holds it (reference %s is stale)" % ref)
    return ring
