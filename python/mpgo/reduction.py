"""Pickling of objects sent to other processes.

`ForkingPickler` is a pickle.Pickler whose dispatch table is copyreg's plus
the reducers registered with `register()`. Bound methods, method
descriptors, functools.partial and sockets are made picklable, as in
CPython.

An fd can be handed to a child being started: `DupFd(fd)` called while the
child's Popen is pickling the process object passes the fd to the child at
start-up (the engine maps it to a fixed fd number there). Outside of that,
fds go through `resource_sharer` over a Unix socket, and so do the fds of
send_handle()/recv_handle() over a Pipe() end (see _HandleRef).

Adapted from CPython's Lib/multiprocessing/reduction.py (PSF License).
"""

from abc import ABCMeta
import copyreg
import functools
import io
import os
import pickle
import socket
import struct
import threading
import sys

from . import context
from . import _consts

__all__ = ['send_handle', 'recv_handle', 'ForkingPickler', 'register', 'dump',
           'DupFd', 'sendfds', 'recvfds']


HAVE_SEND_HANDLE = (hasattr(socket, 'CMSG_LEN') and
                    hasattr(socket, 'SCM_RIGHTS') and
                    hasattr(socket.socket, 'sendmsg'))

#
# Pickler subclass
#


# Objects of these types pickle the same with or without the extra
# reducers, so dumps() hands them straight to pickle.dumps.
_PLAIN = frozenset({int, float, str, bytes, bool, type(None), complex})
# The longest tuple or list dumps() checks for plain values only.
_SMALL = 16
# The most of its buffer a thread's reused pickler keeps between calls.
_KEEP_BUFFER = 1 << 20

# Per thread, one ForkingPickler and its buffer, reused by dumps(): making
# a Pickler costs more than pickling a small object.
_reuse = threading.local()


class ForkingPickler(pickle.Pickler):
    '''Pickler subclass used by multiprocessing.'''
    _extra_reducers = {}
    _copyreg_dispatch_table = copyreg.dispatch_table
    # CPython copies copyreg's table into every instance; mpgo builds the
    # merged table once and again only when a reducer is registered here or
    # with copyreg.
    _generation = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dispatch_table = self._table()

    @classmethod
    def _table(cls):
        key = (ForkingPickler._generation, len(cls._copyreg_dispatch_table))
        cached = cls.__dict__.get('_merged')
        if cached is not None and cached[0] == key:
            return cached[1]
        table = cls._copyreg_dispatch_table.copy()
        table.update(cls._extra_reducers)
        cls._merged = (key, table)
        return table

    @classmethod
    def register(cls, type, reduce):
        '''Register a reduce function for a type.'''
        cls._extra_reducers[type] = reduce
        ForkingPickler._generation += 1

    @classmethod
    def dumps(cls, obj, protocol=None):
        if cls is ForkingPickler and protocol is None:
            t = type(obj)
            if t in _PLAIN:
                return pickle.dumps(obj)
            if (t is tuple or t is list) and len(obj) <= _SMALL:
                # A short sequence of plain values (a pool task's arguments,
                # its result) needs no reducer of ours either.
                for v in obj:
                    if type(v) not in _PLAIN:
                        break
                else:
                    return pickle.dumps(obj)
            slot = _reuse.__dict__.get('slot')
            key = (ForkingPickler._generation, len(cls._copyreg_dispatch_table))
            if slot is None or slot[2] != key:
                buf = io.BytesIO()
                slot = _reuse.slot = [buf, cls(buf), key, False]
            if not slot[3]:  # not in use by an outer dumps of this thread
                buf, pickler = slot[0], slot[1]
                slot[3] = True
                try:
                    buf.seek(0)
                    buf.truncate()
                    pickler.dump(obj)
                    return buf.getvalue()
                finally:
                    # Hold nothing of obj past the call: the memo refers to
                    # what it pickled (CPython issue #29861), and a big
                    # pickle's buffer would stay allocated.
                    pickler.clear_memo()
                    if buf.tell() > _KEEP_BUFFER:
                        slot[0] = io.BytesIO()
                        slot[1] = cls(slot[0])
                    slot[3] = False
        buf = io.BytesIO()
        cls(buf, protocol).dump(obj)
        return buf.getbuffer()

    loads = pickle.loads


register = ForkingPickler.register

#
# Messages with large buffers: pickle protocol 5, out of band
#
# dumps_msg(obj) is what Queue.put and a Pipe's send() use. It pickles with
# protocol 5 into a list of parts instead of one bytes object:
#
# * the pickler writes into a list, and hands any payload of 64 KiB or more
#   (a bytes, bytearray or str inside obj) to that list by reference;
# * buffers of 64 KiB or more that a reducer gives as a PickleBuffer (numpy
#   arrays, and any object whose __reduce_ex__(5) does) are taken out of
#   band through buffer_callback. A PickleBuffer made straight over a bytes
#   or bytearray stays in band (still by reference): it unpickles as the
#   bytes or bytearray it would be without buffers.
#
# A small object comes back as one bytes object, a plain pickle (what
# ForkingPickler.dumps gives). Otherwise the result is a list of parts that
# the ring lays end to end into ONE message (Queue.put_parts, mpgo_queue_put_v):
# each large payload is copied once, from where it is into shared memory.
# Without out-of-band buffers the parts make a plain pickle. With them the
# message is framed:
#
#     pickle stream        p bytes, ends with STOP '.'
#     zero padding         to a multiple of OOB_ALIGN from the message start
#     buffer 0             n0 bytes
#     zero padding         to a multiple of OOB_ALIGN
#     ...
#     buffer k-1           n(k-1) bytes
#     table                k + 1 little-endian uint64: p, n0, ..., n(k-1)
#     count                little-endian uint32: k
#     OOB_TAG              one byte, 0x01
#
# Every pickle ends with '.' and a raw bytes message (Queue.put of a big
# bytes, for Go and C peers) with 0x00, so the last byte tells the three
# apart. The getter copies the message once, into memory it alone holds,
# and oob_loads unpickles it with buffers= slices of that memory: no further
# copy, and numpy arrays come back as views on it, writable when the
# original was (pickle's READONLY_BUFFER keeps read-only ones read-only).

OOB_MIN = 64 * 1024
OOB_ALIGN = 64
OOB_TAG = bytes([_consts.QUEUE_OOB_TAG])
_PADS = [bytes(i) for i in range(OOB_ALIGN)]
_IN_BAND_OWNERS = (bytes, bytearray)


class _Parts(list):
    """A file for the pickler: every write() is a part, taken by reference."""
    __slots__ = ()
    write = list.append


def _new_msg_slot(key):
    parts, bufs = _Parts(), []
    append = bufs.append

    def callback(pb, append=append, in_band=_IN_BAND_OWNERS):
        # A false result takes the buffer out of band.
        try:
            m = pb.raw()
        except (BufferError, ValueError):
            return True  # not contiguous: in band, which raises as usual
        if m.nbytes < OOB_MIN or type(m.obj) in in_band:
            return True
        append(m)
        return False

    pickler = ForkingPickler(parts, 5, buffer_callback=callback)
    return [parts, bufs, pickler, key, False]


def dumps_msg(obj):
    """Pickle obj for a ring: a plain pickle as bytes, or a list of parts
    for one message (see above)."""
    if type(obj) in _PLAIN:
        return pickle.dumps(obj)
    slot = _reuse.__dict__.get('msg')
    key = (ForkingPickler._generation, len(ForkingPickler._copyreg_dispatch_table))
    if slot is None or slot[3] != key:
        slot = _reuse.msg = _new_msg_slot(key)
    elif slot[4]:  # in use by an outer dumps_msg of this thread
        slot = _new_msg_slot(key)
    parts, bufs, pickler = slot[0], slot[1], slot[2]
    slot[4] = True
    try:
        pickler.dump(obj)
        if not bufs and len(parts) == 1:
            return parts.pop()
        return _frame(parts, bufs)
    finally:
        # Hold nothing of obj past the call (the memo refers to what it
        # pickled: a big array would stay alive until the next call).
        pickler.clear_memo()
        parts.clear()
        bufs.clear()
        slot[4] = False


def _as_part(x):
    return x if type(x) in (bytes, bytearray) else memoryview(x).cast("B")


def _frame(parts, bufs):
    out = [_as_part(x) for x in parts]
    if not bufs:
        return out
    p = 0
    for x in out:
        p += len(x)
    lens = [p]
    off = p
    for m in bufs:
        pad = -off % OOB_ALIGN
        if pad:
            out.append(_PADS[pad])
        out.append(m)
        n = m.nbytes
        lens.append(n)
        off += pad + n
    k = len(bufs)
    out.append(struct.pack("<%dQI" % (k + 1), *lens, k) + OOB_TAG)
    return out


def oob_loads(data):
    """The object of a framed message (see above); data is any bytes-like
    object, its memory is used as it is: the buffers are slices of it."""
    mv = memoryview(data)
    if mv.ndim != 1 or mv.itemsize != 1:
        mv = mv.cast("B")
    n = mv.nbytes
    try:
        if n < 5 or mv[n - 1] != OOB_TAG[0]:
            raise ValueError("no out-of-band tag")
        k, = struct.unpack_from("<I", mv, n - 5)
        table = n - 5 - 8 * (k + 1)
        if table < 0:
            raise ValueError("table out of range")
        lens = struct.unpack_from("<%dQ" % (k + 1), mv, table)
        p = lens[0]
        buffers = []
        off = p
        for size in lens[1:]:
            off += -off % OOB_ALIGN
            if off + size > table:
                raise ValueError("buffer out of range")
            buffers.append(mv[off:off + size])
            off += size
        if p > table:
            raise ValueError("pickle out of range")
    except (ValueError, struct.error) as e:
        raise pickle.UnpicklingError(
            "mpgo: malformed out-of-band message (%s)" % e) from None
    obj = pickle.loads(mv[:p], buffers=buffers)
    if type(obj) is memoryview:
        # A bare PickleBuffer: what it would unpickle as in band.
        obj = bytes(obj) if obj.readonly else bytearray(obj)
    return obj


def dump(obj, file, protocol=None):
    '''Replacement for pickle.dump() using ForkingPickler.'''
    ForkingPickler(file, protocol).dump(obj)

#
# Passing fds (Unix)
#


# On MacOSX we should acknowledge receipt of fds -- see Issue14669
ACKNOWLEDGE = sys.platform == 'darwin'


def sendfds(sock, fds):
    '''Send an array of fds over an AF_UNIX socket.'''
    import array
    fds = array.array('i', fds)
    msg = bytes([len(fds) % 256])
    sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
    if ACKNOWLEDGE and sock.recv(1) != b'A':
        raise RuntimeError('did not receive acknowledgement of fd')


def recvfds(sock, size):
    '''Receive an array of fds over an AF_UNIX socket.'''
    import array
    a = array.array('i')
    bytes_size = a.itemsize * size
    msg, ancdata, flags, addr = sock.recvmsg(1, socket.CMSG_SPACE(bytes_size))
    if not msg and not ancdata:
        raise EOFError
    try:
        if ACKNOWLEDGE:
            sock.send(b'A')
        if len(ancdata) != 1:
            raise RuntimeError('received %d items of ancdata' %
                               len(ancdata))
        cmsg_level, cmsg_type, cmsg_data = ancdata[0]
        if (cmsg_level == socket.SOL_SOCKET and
                cmsg_type == socket.SCM_RIGHTS):
            if len(cmsg_data) % a.itemsize != 0:
                raise ValueError
            a.frombytes(cmsg_data)
            if len(a) % 256 != msg[0]:
                raise AssertionError(
                    "Len is {0:n} but msg[0] is {1!r}".format(
                        len(a), msg[0]))
            return list(a)
    except (ValueError, IndexError):
        pass
    raise RuntimeError('Invalid data received')


# A Pipe() end of mpgo is a pair of shared-memory rings, not a socket, so
# SCM_RIGHTS cannot go along its messages. send_handle() over one hands a
# dup of the fd to resource_sharer (what pickling a Connection does) and
# sends a message saying where to fetch it; recv_handle() reads that
# message and fetches the fd, with SCM_RIGHTS over an authenticated Unix
# socket. The sender may close its fd at once, but must still be running
# when the receiver calls recv_handle(). Over a socket Connection
# (Listener/Client) both work as in CPython.


class _HandleRef(object):
    '''The message send_handle() sends over a Pipe() end.'''

    __slots__ = ('dupfd',)

    def __init__(self, dupfd):
        self.dupfd = dupfd

    def __reduce__(self):
        return _HandleRef, (self.dupfd,)


def _is_ring(conn):
    from .connection import RingConnection
    return isinstance(conn, RingConnection)


def send_handle(conn, handle, destination_pid):
    '''Send a handle over a local connection.'''
    if _is_ring(conn):
        from . import resource_sharer
        conn.send(_HandleRef(resource_sharer.DupFd(handle)))
        return
    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
        sendfds(s, [handle])


def recv_handle(conn):
    '''Receive a handle over a local connection.'''
    if _is_ring(conn):
        msg = conn.recv()
        if not isinstance(msg, _HandleRef):
            raise RuntimeError('Invalid data received: %s, not a handle sent '
                               'with send_handle()' % type(msg).__name__)
        return msg.dupfd.detach()
    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as s:
        return recvfds(s, 1)[0]


def _duplicate_for_child(popen, fd):
    '''Pass fd to the child popen is starting; return its number there.

    mpgo's own Popens give every fd passed a number of its own in the
    child. Other Popens (loky's) pass an fd at its own number, so an fd
    passed twice would be one fd in the child, owned (and closed) by two
    objects: the second time, a dup of it goes instead, closed here once
    popen is gone.'''
    if type(popen).__module__.startswith(__package__ + '.'):
        return popen.duplicate_for_child(fd)
    given = popen.__dict__.setdefault('_mpgo_fds_given', set())
    if fd in given:
        from . import util
        fd = os.dup(fd)
        util.Finalize(popen, os.close, (fd,))
    given.add(fd)
    return popen.duplicate_for_child(fd)


def _created_in_fork_context(ctx):
    '''Whether an object made for ctx (None: the default context, left
    unset) belongs to the 'fork' start method.'''
    if ctx is None:
        d = context._default_context
        ctx = d._actual_context or d._default_context
    return ctx.get_start_method() == 'fork'


def _check_fork_context(created_in_fork):
    '''As CPython: an object of a 'fork' context (its locks, queues) may
    not go to a child being started by another start method. mpgo's own
    objects would work there, but code relies on CPython's error; passing
    them at any other time (over a queue) is allowed.'''
    if not created_in_fork:
        return
    popen = context.get_spawning_popen()
    if popen is not None and getattr(popen, 'method', 'fork') != 'fork':
        raise RuntimeError('A SemLock created in a fork context is being '
                           'shared with a process in a spawn context. This is '
                           'not supported. Please use the same context to create '
                           'multiprocessing objects and Process.')


def DupFd(fd):
    '''Return a wrapper for an fd.'''
    popen_obj = context.get_spawning_popen()
    if popen_obj is not None:
        return popen_obj.DupFd(_duplicate_for_child(popen_obj, fd))
    elif HAVE_SEND_HANDLE:
        from . import resource_sharer
        return resource_sharer.DupFd(fd)
    else:
        raise ValueError('SCM_RIGHTS appears not to be available')

#
# Try making some callable types picklable
#


def _reduce_method(m):
    if m.__self__ is None:
        return getattr, (m.__class__, m.__func__.__name__)
    else:
        return getattr, (m.__self__, m.__func__.__name__)


class _C:
    def f(self):
        pass


register(type(_C().f), _reduce_method)


def _reduce_method_descriptor(m):
    return getattr, (m.__objclass__, m.__name__)


register(type(list.append), _reduce_method_descriptor)
register(type(int.__add__), _reduce_method_descriptor)


def _reduce_partial(p):
    return _rebuild_partial, (p.func, p.args, p.keywords or {})


def _rebuild_partial(func, args, keywords):
    return functools.partial(func, *args, **keywords)


register(functools.partial, _reduce_partial)

#
# Make sockets picklable
#


def _reduce_socket(s):
    df = DupFd(s.fileno())
    return _rebuild_socket, (df, s.family, s.type, s.proto)


def _rebuild_socket(df, family, type, proto):
    fd = df.detach()
    return socket.socket(family, type, proto, fileno=fd)


register(socket.socket, _reduce_socket)


class AbstractReducer(metaclass=ABCMeta):
    '''Abstract base class for use in implementing a Reduction class
    suitable for use in replacing the standard reduction mechanism
    used in multiprocessing.'''
    ForkingPickler = ForkingPickler
    register = register
    dump = dump
    send_handle = send_handle
    recv_handle = recv_handle

    sendfds = sendfds
    recvfds = recvfds
    DupFd = DupFd

    _reduce_method = _reduce_method
    _reduce_method_descriptor = _reduce_method_descriptor
    _rebuild_partial = _rebuild_partial
    _reduce_socket = _reduce_socket
    _rebuild_socket = _rebuild_socket

    def __init__(self, *args):
        register(type(_C().f), _reduce_method)
        register(type(list.append), _reduce_method_descriptor)
        register(type(int.__add__), _reduce_method_descriptor)
        register(functools.partial, _reduce_partial)
        register(socket.socket, _reduce_socket)
