"""Shared-memory blocks for Value, Array and the synchronization primitives.

Memory comes from the engine's arenas (core/shm): memfd segments that never
appear in /dev/shm and vanish when the last process using them goes, even
after SIGKILL. Python maps each arena's fd with mmap, so ctypes objects,
memoryviews and numpy arrays see the shared memory itself.

A block pickles as a reference to the arena held by the pickling process,
so it can be handed to another process at any time, not only at spawn.
"""
import mmap
import os
import threading
import weakref

__all__ = ["BufferWrapper", "Block", "allocate", "handoff", "resolve"]

_ARENA_MIN = 1 << 20
_lock = threading.Lock()
_own = []        # arenas this process created, to allocate from
_by_ino = {}     # inode of the memfd -> _Arena (created or attached)


def _engine():
    from . import _engine
    return _engine


class _Arena:
    """One arena mapped in this process. handle is the engine's, or None for
    an arena mapped without it (_map_attached)."""

    __slots__ = ("handle", "size", "map", "ino", "fd", "__weakref__")

    def __init__(self, handle, fd=None, size=None, ino=None):
        self.handle = handle
        if handle is not None:
            e = _engine()
            size = e.call("ArenaSize", handle)
            fd = e.call("ArenaFD", handle)
        self.size = size
        self.fd = fd
        self.ino = os.fstat(fd).st_ino if ino is None else ino
        self.map = mmap.mmap(fd, size)

    def ref(self):
        if self.handle is None:
            # What core/shm's Segment.Ref gives for it: pid:fd:size.
            return "%d:%d:%d" % (os.getpid(), self.fd, self.size)
        return _engine().call("ArenaRef", self.handle)


def _map_attached(ref, ino):
    """Map the arena ref names without entering Go, or return None.

    A child that only uses Values and Locks its parent made needs nothing of
    the engine but this mapping (their fast paths are in C), and entering Go
    would start the Go runtime in it (capi/lazy.c). Only the plain case is
    done here: the memfd of the inode pickled, of the size named. Anything
    else goes to the engine's attach, which explains it."""
    pid, fd, size = (int(f) for f in ref.split(":"))
    try:
        fd = os.open("/proc/%d/fd/%d" % (pid, fd), os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_ino != ino or not 0 < size <= st.st_size:
            os.close(fd)
            return None
        return _Arena(None, fd, size, ino)
    except BaseException:
        os.close(fd)
        raise


def _new_arena(size):
    a = _Arena(_engine().call("ArenaNew", size))
    _own.append(a)
    _by_ino[a.ino] = a
    return a


def _attach(ref, ino):
    ref, inherited = resolve(ref)
    try:
        return _attach_ref(ref, ino)
    finally:
        if inherited is not None:
            os.close(inherited)


def _attach_ref(ref, ino):
    with _lock:
        old = _by_ino.get(ino)
        if old is not None:
            return old
        a = _map_attached(ref, ino)
        if a is not None:
            _by_ino[a.ino] = a
            return a
        e = _engine()
        h = e.call("ArenaAttach", ref)
        a = _Arena(h)
        if a.ino != ino:
            # The holder closed the arena and its descriptor number was
            # reused: never map somebody else's memory.
            a.map.close()
            e.call("ArenaClose", h)
            raise OSError("mpgo: the process that pickled this shared object "
                          "no longer holds its memory (reference %s is stale)" % ref)
        _by_ino[a.ino] = a
        return a


def _alloc(size, align):
    import queue
    e = _engine()
    with _lock:
        for a in reversed(_own):
            try:
                return a, e.call("ArenaAlloc", a.handle, size, align)
            except queue.Full:
                continue
        a = _new_arena(max(_ARENA_MIN, 1 << (size + 4096).bit_length()))
        return a, e.call("ArenaAlloc", a.handle, size, align)


def _free(arena, offset):
    try:
        _engine().call("ArenaFree", arena.handle, offset)
    except Exception:
        pass  # interpreter shutdown: the arena goes with the process


def handoff(fd, ref):
    """Return the reference to write into a pickle of an object whose memfd
    this process holds as fd.

    While a child is being spawned, the descriptor itself is passed to the
    child (pid 0 in the reference means "my own descriptor"), so the child
    can attach even if this process drops the object right after start();
    otherwise the reference names this process's own pid and descriptor."""
    from . import context
    popen = context.get_spawning_popen()
    if popen is not None and hasattr(popen, "duplicate_for_child"):
        from .reduction import _duplicate_for_child
        return "0:%d:%s" % (_duplicate_for_child(popen, fd), ref.rsplit(":", 1)[1])
    return ref


def resolve(ref):
    """Turn a reference from handoff() into one this process can attach, and
    return it with the inherited descriptor to close after attaching."""
    pid, fd, size = ref.split(":")
    if pid != "0":
        return ref, None
    return "%d:%s:%s" % (os.getpid(), fd, size), int(fd)


class Block:
    """size bytes at offset in an arena; freed when the creating process
    drops its last reference. Pickles as a reference, never a copy."""

    __slots__ = ("arena", "offset", "size", "__weakref__")

    def __init__(self, arena, offset, size):
        self.arena = arena
        self.offset = offset
        self.size = size

    def memoryview(self):
        return memoryview(self.arena.map)[self.offset:self.offset + self.size]

    def __reduce__(self):
        a = self.arena
        return _rebuild_block, (handoff(a.fd, a.ref()), a.ino, self.offset, self.size)


def _rebuild_block(ref, ino, offset, size):
    arena = _by_ino.get(ino)
    if arena is None:
        arena = _attach(ref, ino)
    elif ref.startswith("0:"):
        os.close(int(ref.split(":")[1]))  # inherited, but already mapped
    return Block(arena, offset, size)


def allocate(size, align=16):
    """Allocate a zeroed block of at least size bytes (size 0 is allowed)."""
    arena, off = _alloc(max(size, 1), align)
    blk = Block(arena, off, size)
    arena.map[off:off + size] = bytes(size)
    weakref.finalize(blk, _free, arena, off)
    return blk


_NO_HEAP = ("mpgo has no %s: shared memory comes from the engine's memfd "
            "arenas and their allocator (core/shm), not from CPython's "
            "Python-level heap (Heap, Arena, BufferWrapper._heap)")


class _NoHeap(object):
    """Stands for CPython's BufferWrapper._heap: fails loudly."""

    def __get__(self, obj, objtype=None):
        raise AttributeError(_NO_HEAP % "BufferWrapper._heap")

    def __set__(self, obj, value):
        raise AttributeError(_NO_HEAP % "BufferWrapper._heap")


def __getattr__(name):
    if name in ("Heap", "Arena"):
        raise AttributeError(_NO_HEAP % ("heap." + name))
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


class BufferWrapper:
    """CPython's heap.BufferWrapper interface over a Block."""

    _heap = _NoHeap()

    def __init__(self, size):
        if size < 0:
            raise ValueError("Size {0:n} out of range".format(size))
        self._block = allocate(size)
        self._size = size

    def create_memoryview(self):
        return self._block.memoryview()
