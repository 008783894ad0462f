"""Connections between processes: Pipe, Listener, Client and wait.

A Connection carries length-prefixed messages over a file descriptor (a
socket or a pipe end). Pipe(duplex=True) is a socketpair and Pipe(False) an
os.pipe, exactly as in CPython; the wire format (a 4-byte big-endian signed
length, or -1 followed by an 8-byte length for messages above 2 GiB) and the
HMAC challenge of Listener/Client are those of the running CPython, so an
mpgo peer can talk to a stdlib multiprocessing peer.

Pickling a Connection duplicates its fd into whichever process unpickles it
(reduction.DupFd): while a child is being started the fd is passed to it at
exec; at any other time the sender registers a dup of the fd with
resource_sharer, whose thread hands it over with SCM_RIGHTS when the receiver
asks. mpgo children are always spawned, so nothing is inherited by fork.

Linux only: the Windows named-pipe classes of CPython are left out.

Adapted from CPython's Lib/multiprocessing/connection.py (PSF License).
"""

__all__ = ['Client', 'Listener', 'Pipe', 'wait']

import errno
import io
import itertools
import os
import pickle
import select
import selectors
import socket
import struct
import sys
import time
import weakref

from queue import Empty

from . import _consts
from . import util
from . import reduction
from .context import AuthenticationError, BufferTooShort

_ForkingPickler = reduction.ForkingPickler
_dumps_msg = reduction.dumps_msg
_loads = _ForkingPickler.loads
_pickle_dumps = pickle.dumps


class _Fast(object):
    '''Stands for the engine's fast paths (_engine.fast) until a ring
    connection first needs them: a process that only uses sockets (a
    Manager's proxies, Listener and Client) never loads the Go engine.'''

    def __getattr__(self, name):
        global _fast
        from ._engine import fast
        fast.set_oob_loads(reduction.oob_loads)
        _fast = fast
        return getattr(fast, name)


_fast = _Fast()

#
#
#

BUFSIZE = 8192
# A very generous timeout when it comes to local connections...
CONNECTION_TIMEOUT = 20.

_mmap_counter = itertools.count()

default_family = 'AF_INET'
families = ['AF_INET']

if hasattr(socket, 'AF_UNIX'):
    default_family = 'AF_UNIX'
    families += ['AF_UNIX']


def _init_timeout(timeout=CONNECTION_TIMEOUT):
    return time.monotonic() + timeout


def _check_timeout(t):
    return time.monotonic() > t

#
#
#


def arbitrary_address(family):
    '''
    Return an arbitrary free address for the given family
    '''
    if family == 'AF_INET':
        return ('localhost', 0)
    elif family == 'AF_UNIX':
        # Imported here: tempfile (with shutil, random, bz2, lzma) costs
        # ~5 ms, and every child that touches a Queue imports this module.
        import tempfile
        return tempfile.mktemp(prefix='listener-', dir=util.get_temp_dir())
    else:
        raise ValueError('unrecognized family')


def _validate_family(family):
    '''
    Checks if the family is valid for the current environment.
    '''
    if family == 'AF_PIPE':
        raise ValueError('Family %s is not recognized.' % family)


def address_type(address):
    '''
    Return the types of the address

    This can be 'AF_INET', 'AF_UNIX', or 'AF_PIPE'
    '''
    if type(address) == tuple:
        return 'AF_INET'
    elif type(address) is str and address.startswith('\\\\'):
        return 'AF_PIPE'
    elif type(address) is str or util.is_abstract_socket_namespace(address):
        return 'AF_UNIX'
    else:
        raise ValueError('address type of %r unrecognized' % address)

#
# Connection classes
#


class _ConnectionBase:
    _handle = None

    def __init__(self, handle, readable=True, writable=True):
        handle = handle.__index__()
        if handle < 0:
            raise ValueError("invalid handle")
        if not readable and not writable:
            raise ValueError(
                "at least one of `readable` and `writable` must be True")
        self._handle = handle
        self._readable = readable
        self._writable = writable

    # XXX should we use util.Finalize instead of a __del__?

    def __del__(self):
        if self._handle is not None:
            self._close()

    def _check_closed(self):
        if self._handle is None:
            raise OSError("handle is closed")

    def _check_readable(self):
        if not self._readable:
            raise OSError("connection is write-only")

    def _check_writable(self):
        if not self._writable:
            raise OSError("connection is read-only")

    def _bad_message_length(self):
        if self._writable:
            self._readable = False
        else:
            self.close()
        raise OSError("bad message length")

    @property
    def closed(self):
        """True if the connection is closed"""
        return self._handle is None

    @property
    def readable(self):
        """True if the connection is readable"""
        return self._readable

    @property
    def writable(self):
        """True if the connection is writable"""
        return self._writable

    def fileno(self):
        """File descriptor or handle of the connection"""
        self._check_closed()
        return self._handle

    def close(self):
        """Close the connection"""
        if self._handle is not None:
            try:
                self._close()
            finally:
                self._handle = None

    def send_bytes(self, buf, offset=0, size=None):
        """Send the bytes data from a bytes-like object"""
        self._check_closed()
        self._check_writable()
        m = memoryview(buf)
        if m.itemsize > 1:
            m = m.cast('B')
        n = m.nbytes
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        self._send_bytes(m[offset:offset + size])

    def send(self, obj):
        """Send a (picklable) object"""
        self._check_closed()
        self._check_writable()
        self._send_bytes(_ForkingPickler.dumps(obj))

    def recv_bytes(self, maxlength=None):
        """
        Receive bytes data as a bytes object.
        """
        self._check_closed()
        self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        buf = self._recv_bytes(maxlength)
        if buf is None:
            self._bad_message_length()
        return buf.getvalue()

    def recv_bytes_into(self, buf, offset=0):
        """
        Receive bytes data into a writeable bytes-like object.
        Return the number of bytes read.
        """
        self._check_closed()
        self._check_readable()
        with memoryview(buf) as m:
            # Get bytesize of arbitrary buffer
            itemsize = m.itemsize
            bytesize = itemsize * len(m)
            if offset < 0:
                raise ValueError("negative offset")
            elif offset > bytesize:
                raise ValueError("offset too large")
            result = self._recv_bytes()
            size = result.tell()
            if bytesize < offset + size:
                raise BufferTooShort(result.getvalue())
            # Message can fit in dest
            result.seek(0)
            result.readinto(m[offset // itemsize:
                              (offset + size) // itemsize])
            return size

    def recv(self):
        """Receive a (picklable) object"""
        self._check_closed()
        self._check_readable()
        buf = self._recv_bytes()
        return _ForkingPickler.loads(buf.getbuffer())

    def poll(self, timeout=0.0):
        """Whether there is any input available to be read"""
        self._check_closed()
        self._check_readable()
        return self._poll(timeout)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()


class Connection(_ConnectionBase):
    """
    Connection class based on an arbitrary file descriptor.
    """

    def _close(self, _close=os.close):
        _close(self._handle)
    _write = os.write
    _read = os.read

    def _send(self, buf, write=_write):
        remaining = len(buf)
        while True:
            n = write(self._handle, buf)
            remaining -= n
            if remaining == 0:
                break
            buf = buf[n:]

    def _recv(self, size, read=_read):
        buf = io.BytesIO()
        handle = self._handle
        remaining = size
        while remaining > 0:
            chunk = read(handle, remaining)
            n = len(chunk)
            if n == 0:
                if remaining == size:
                    raise EOFError
                else:
                    raise OSError("got end of file during message")
            buf.write(chunk)
            remaining -= n
        return buf

    def _send_bytes(self, buf):
        n = len(buf)
        if n > 0x7fffffff:
            pre_header = struct.pack("!i", -1)
            header = struct.pack("!Q", n)
            self._send(pre_header)
            self._send(header)
            self._send(buf)
        else:
            # For wire compatibility with 3.7 and lower
            header = struct.pack("!i", n)
            if n > 16384:
                # The payload is large so Nagle's algorithm won't be triggered
                # and we'd better avoid the cost of concatenation.
                self._send(header)
                self._send(buf)
            else:
                # Issue #20540: concatenate before sending, to avoid delays due
                # to Nagle's algorithm on a TCP socket.
                # Also note we want to avoid sending a 0-length buffer
                # separately, to avoid "broken pipe" errors if the other end
                # closed the pipe.
                self._send(header + buf)

    def _recv_bytes(self, maxsize=None):
        buf = self._recv(4)
        size, = struct.unpack("!i", buf.getvalue())
        if size == -1:
            buf = self._recv(8)
            size, = struct.unpack("!Q", buf.getvalue())
        if maxsize is not None and size > maxsize:
            return None
        return self._recv(size)

    def _poll(self, timeout):
        r = wait([self], timeout)
        return bool(r)


#
# Public functions
#

class Listener(object):
    '''
    Returns a listener object.

    This is a wrapper for a bound socket which is 'listening' for
    connections.
    '''
    def __init__(self, address=None, family=None, backlog=1, authkey=None):
        family = family or (address and address_type(address)) \
                 or default_family
        address = address or arbitrary_address(family)

        _validate_family(family)
        self._listener = SocketListener(address, family, backlog)

        if authkey is not None and not isinstance(authkey, bytes):
            raise TypeError('authkey should be a byte string')

        self._authkey = authkey

    def accept(self):
        '''
        Accept a connection on the bound socket of `self`.

        Returns a `Connection` object.
        '''
        if self._listener is None:
            raise OSError('listener is closed')
        c = self._listener.accept()
        # `is not None`, as Client's: an empty authkey authenticates too
        # (bpo-43952; Python 3.11's Listener skipped it and hung its Client).
        if self._authkey is not None:
            deliver_challenge(c, self._authkey)
            answer_challenge(c, self._authkey)
        return c

    def close(self):
        '''
        Close the bound socket of `self`.
        '''
        listener = self._listener
        if listener is not None:
            self._listener = None
            listener.close()

    @property
    def address(self):
        return self._listener._address

    @property
    def last_accepted(self):
        return self._listener._last_accepted

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()


def Client(address, family=None, authkey=None):
    '''
    Returns a connection to the address of a `Listener`
    '''
    family = family or address_type(address)
    _validate_family(family)
    c = SocketClient(address)

    if authkey is not None and not isinstance(authkey, bytes):
        raise TypeError('authkey should be a byte string')

    if authkey is not None:
        answer_challenge(c, authkey)
        deliver_challenge(c, authkey)

    return c


def Pipe(duplex=True):
    """
    Returns pair of connection objects at either end of a pipe.

    The ends carry messages on shared-memory rings (see RingConnection);
    with duplex=False the first end can only receive, the second only send.
    """
    return _ring_pipe(duplex)


# The control block of a Pipe() (see RingConnection and _Doorbell); its
# layout is core/pipe's (control.go), whose senders ring the doorbells too.
# self._ctl views its words from armed on: armed[side] is word side, the
# level words follow from word _LEVEL.
_LEVEL = (_consts.PIPE_CTL_LEVEL - _consts.PIPE_CTL_ARMED) // 4
_CTL_SIZE = _consts.PIPE_CTL_SIZE


def _ring_pipe(duplex, maxsize=0):
    """Pipe()'s two ends; maxsize bounds the rings (mpgo.queues uses a
    one-way pipe with a bounded ring as a Queue)."""
    from . import heap
    from ._ring import Ring
    ctl = heap.allocate(_CTL_SIZE, 16)
    a_in = Ring.new(maxsize)
    b_in = Ring.new(maxsize) if duplex else None
    bell_a = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    bell_b = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC) if duplex else (None, None)
    # c1 receives on a_in and sends on b_in; c2 the other way round.
    c1 = RingConnection(a_in, b_in, bell_a[0], bell_b[1], ctl, 0, True, duplex, True)
    c2 = RingConnection(b_in, a_in, bell_b[0], bell_a[1], ctl, 1, duplex, True, True)
    return c1, c2


class RingConnection(Connection):
    """One end of a Pipe(): messages on shared-memory rings, one per
    direction, with the engine's spin-then-futex waiting.

    Each receiving end also has a doorbell, an os.pipe whose read end is the
    connection's fileno(): the sender writes a byte into it while the
    receiver is waiting in poll() or wait(), so connections stay usable with
    selectors and wait() next to sockets and Process.sentinel. A receiver
    sees EOFError once every copy of the sending end (in every process) is
    closed, which the kernel reports as a hang-up on that doorbell.

    A control block in shared memory (_CTL_SIZE bytes) holds, for each
    side, how many threads wait on its doorbell in poll() or wait() now
    (word `side`: armed, while the side is not in level mode) and whether
    somebody selects on its fileno() directly (word _LEVEL + side: level), then
    one counting semaphore per side (at PIPE_CTL_ALIVE): how many copies
    of that end are open, so that a send to an end closed everywhere raises
    BrokenPipeError as a socket would. A peer that died without closing is
    found by the kernel: every _CHECK_EVERY sends look whether its doorbell
    still has a reader. The doorbells' lock and state follow (see
    _Doorbell).
    """

    _CHECK_EVERY = 256

    def __init__(self, rin, rout, bell_r, peer_bell_w, ctl, side, readable,
                 writable, new=False):
        self._rin = rin if readable else None
        self._rout = rout if writable else None
        self._in = rin.q if readable else None
        self._out = rout.q if writable else None
        self._bell_r = bell_r if readable else None
        self._peer_bell_w = peer_bell_w if writable else None
        for fd in (bell_r, peer_bell_w):
            if fd is not None and fd not in (self._bell_r, self._peer_bell_w):
                os.close(fd)
        self._ctl_block = ctl
        mv = ctl.memoryview()
        self._ctl = mv[_consts.PIPE_CTL_ARMED:_consts.PIPE_CTL_ALIVE].cast("I")
        self._side = side
        self._peer = 1 - side
        self._level = _LEVEL + side     # in _ctl: this side's level word
        self._peer_level = _LEVEL + self._peer
        kind, vmax = _fast.KIND_SEMAPHORE, _fast.SEM_VALUE_MAX
        alive, size = _consts.PIPE_CTL_ALIVE, _consts.PIPE_CTL_ALIVE_SIZE
        self._alive = _fast.SemLock(mv[alive + size * side:alive + size * (side + 1)],
                                    kind, 1, vmax, new)
        self._peer_alive = _fast.SemLock(
            mv[alive + size * self._peer:alive + size * (self._peer + 1)],
            kind, 1, vmax, new)
        self._sends = 0
        lock = _consts.PIPE_CTL_LOCK
        bell_lock = _fast.SemLock(mv[lock:lock + _fast.LOCK_SIZE], _fast.KIND_LOCK,
                                  1, 1, new)
        full = mv[_consts.PIPE_CTL_FULL:_consts.PIPE_CTL_FULL + 8].cast("I")
        # The doorbell this end reads (of its side), and the one it rings
        # (of the peer's side).
        self._bell = _Doorbell(self._in, self._ctl, full, side, bell_lock,
                               reader=weakref.ref(self)) if readable else None
        self._peer_bell = _Doorbell(self._out, self._ctl, full, self._peer,
                                    bell_lock, writer=weakref.ref(self)) \
            if writable else None
        # send() and recv() are each one C call in the common case: the
        # pickling, the ring and the doorbell, as a Queue's put and get.
        # Each direction gets a Queue object of its own, configured with the
        # doorbell of the side that direction wakes (a send rings it; in
        # level mode both sync it). They hold an fd and the doorbell's
        # sync, never a method of self: the doorbells refer to this
        # connection only weakly, so dropping it frees everything at once.
        self._put_obj = self._get_obj = None
        if writable:
            fq = _fast.Queue(rout.handle)
            fq.configure(_dumps_msg, _loads, _pickle_dumps, reduction._PLAIN,
                         self._ctl, self._peer, _LEVEL + self._peer,
                         self._peer_bell_w, self._peer_bell.sync,
                         "connection is closed")
            self._put_obj = fq.put_obj
        if readable:
            fq = _fast.Queue(rin.handle)
            fq.configure(_dumps_msg, _loads, _pickle_dumps, reduction._PLAIN,
                         self._ctl, side, _LEVEL + side, -1,
                         self._bell.sync, "connection is closed")
            self._get_obj = fq.get_obj2
        super().__init__(self._bell_r if readable else self._peer_bell_w,
                         readable, writable)

    def engine_refs(self):
        """What a Go program needs to use this end's rings (core/pipe):
        a dict of "recv" and "send", the references ("pid:fd:size") of the
        rings this end receives and sends on (None for a one-way end);
        "ctl" and "ctl_offset", the arena holding the control block and
        the block's offset in it; "side", this end's side. To send to this
        end and wake it (pipe.OpenBell), a Go peer also needs the write end
        of its doorbell: the peer end's doorbell_fd()."""
        from ._engine import call
        self._check_closed()
        block = self._ctl_block
        return {
            "recv": call("QueueRef", self._rin.handle) if self._readable else None,
            "send": call("QueueRef", self._rout.handle) if self._writable else None,
            "ctl": block.arena.ref(), "ctl_offset": block.offset,
            "side": self._side,
        }

    def doorbell_fd(self):
        """The write end of the other end's doorbell, which this end rings
        after a send (for a Go sender standing in for this end, to inherit)."""
        self._check_closed()
        self._check_writable()
        return self._peer_bell_w

    def _close(self, _close=os.close):
        self._alive.acquire(False)
        # Whoever still holds a C send or recv must not touch the fds after
        # they are closed (their numbers may be reused).
        for m in (self._put_obj, self._get_obj):
            if m is not None:
                m.__self__.set_closed(True)
        for fd in (self._bell_r, self._peer_bell_w):
            if fd is not None:
                _close(fd)
        self._bell_r = self._peer_bell_w = None
        self._in = self._out = self._rin = self._rout = None
        self._put_obj = self._get_obj = None

    def fileno(self):
        """The doorbell: from now on, readable exactly while a message
        waits (or once the other end is closed everywhere), in every
        process, so it can be selected on directly (see _Doorbell)."""
        self._check_closed()
        if self._readable and not self._ctl[self._level]:
            self._bell.level_on()
        return self._handle

    def _ring_peer(self):
        """Tell the peer a message was sent (after the put)."""
        self._peer_bell.ring()

    def _check_peer(self):
        self._sends += 1
        if not self._peer_alive._get_value() or (
                self._sends % self._CHECK_EVERY == 0 and self._peer_dead()):
            raise BrokenPipeError(errno.EPIPE, "the other end of the pipe is closed")

    def _peer_dead(self):
        p = select.poll()
        p.register(self._peer_bell_w, select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in p.poll(0))

    def _send_bytes(self, buf):
        self._check_peer()
        self._out.put(buf)
        if self._ctl[self._peer] or self._ctl[self._peer_level]:
            self._peer_bell.ring()

    def send(self, obj):
        """Send a (picklable) object.

        As a Queue's put: a bytes object of 64 KiB or more travels raw, and
        an object holding large buffers (numpy arrays...) as one message of
        parts, its buffers out of band (see mpgo.reduction.dumps_msg); recv()
        gets either back. recv_bytes() of such a message returns its framing,
        not a plain pickle."""
        if self._out is None:
            self._check_closed()
            self._check_writable()
        self._sends = sends = self._sends + 1
        if not self._peer_alive._get_value() or (
                not sends % self._CHECK_EVERY and self._peer_dead()):
            raise BrokenPipeError(errno.EPIPE, "the other end of the pipe is closed")
        # Pickles (or sends raw, or out of band), puts and rings the peer's
        # doorbell if it waits on it.
        self._put_obj(obj)

    def _peer_gone(self):
        p = select.poll()
        p.register(self._bell_r, select.POLLIN)
        return any(ev & (select.POLLHUP | select.POLLERR) for _, ev in p.poll(0))


    def _get(self, obj=False):
        """The next message as bytes, or with obj as the object it carries
        (unpickled, or raw bytes, or out of band: see send())."""
        q = self._in
        try:
            while True:
                # Blocking in C: it spins, then sleeps on a futex, and
                # returns every 0.1 s so that a peer gone for good is noticed.
                try:
                    return q.get_obj(True, 0.1, _loads) if obj else q.get(True, 0.1)
                except Empty:
                    if self._peer_gone():
                        try:
                            return q.get_obj(False, None, _loads) if obj else q.get(False)
                        except Empty:
                            raise EOFError from None
        finally:
            if self._ctl[self._level]:
                self._bell.sync()

    def recv(self):
        """Receive a (picklable) object"""
        if self._in is None:
            self._check_closed()
            self._check_readable()
        try:
            # Waits up to 0.1 s in C, then looks whether the peer is gone.
            return self._get_obj(True, 0.1)
        except Empty:
            return self._get(True)

    def recv_bytes(self, maxlength=None):
        """Receive bytes data as a bytes object."""
        self._check_closed()
        self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        buf = self._get()
        if maxlength is not None and len(buf) > maxlength:
            self._bad_message_length()
        return buf

    def recv_bytes_into(self, buf, offset=0):
        """Receive bytes data into a writeable bytes-like object.
        Return the number of bytes read."""
        self._check_closed()
        self._check_readable()
        with memoryview(buf) as m:
            bytesize = m.itemsize * len(m)
            if offset < 0:
                raise ValueError("negative offset")
            elif offset > bytesize:
                raise ValueError("offset too large")
            data = self._get()
            size = len(data)
            if bytesize < offset + size:
                raise BufferTooShort(data)
            with m.cast("B") as b:
                b[offset:offset + size] = data
            return size

    def _poll(self, timeout):
        # True only for a message that is there (or EOF): with several
        # readers on one end, another may take it before recv(), as with
        # the standard library's pipes.
        q = self._in
        if q.qsize():
            return True
        if timeout is not None and timeout <= 0:
            return self._peer_gone()
        bell = self._bell
        armed = bell.arm()
        try:
            if q.qsize():
                return True
            p = select.poll()
            p.register(self._bell_r, select.POLLIN)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                wait_ms = None if deadline is None else \
                    max(0, (deadline - time.monotonic()) * 1000)
                events = p.poll(wait_ms)
                if q.qsize():
                    return True
                if any(ev & (select.POLLHUP | select.POLLERR) for _, ev in events):
                    return True  # EOF: recv() raises EOFError
                if events and bell.settle():
                    return True
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        finally:
            if armed:
                bell.disarm()

    def __reduce__(self):
        # Unlike CPython's Connection, picklable by any pickler, at any time.
        return _reduce_ring_connection(self)

    def _ready(self):
        """For wait(): a message is waiting, or the peer is gone."""
        return self._in is not None and (self._in.qsize() > 0 or self._peer_gone())


def _reduce_ring_connection(conn):
    conn._check_closed()
    # Count the copy in flight now, not when it is unpickled: the sender
    # often closes its own copy right after passing it on.
    conn._alive.release()
    return _rebuild_ring_connection, (
        conn._rin.reduce() if conn._readable else None,
        conn._rout.reduce() if conn._writable else None,
        reduction.DupFd(conn._bell_r) if conn._readable else None,
        reduction.DupFd(conn._peer_bell_w) if conn._writable else None,
        conn._ctl_block, conn._side, conn._readable, conn._writable)


def _rebuild_ring_connection(rin, rout, bell_r, peer_bell_w, ctl, side,
                             readable, writable):
    from ._ring import attach
    return RingConnection(
        attach(*rin) if rin else None, attach(*rout) if rout else None,
        bell_r.detach() if bell_r else None,
        peer_bell_w.detach() if peer_bell_w else None,
        ctl, side, readable, writable)


#
# Definitions for connections based on sockets
#


class SocketListener(object):
    '''
    Representation of a socket which is bound to an address and listening
    '''
    def __init__(self, address, family, backlog=1):
        self._socket = socket.socket(getattr(socket, family))
        try:
            self._socket.setsockopt(socket.SOL_SOCKET,
                                    socket.SO_REUSEADDR, 1)
            self._socket.setblocking(True)
            self._socket.bind(address)
            self._socket.listen(backlog)
            self._address = self._socket.getsockname()
        except OSError:
            self._socket.close()
            raise
        self._family = family
        self._last_accepted = None

        if family == 'AF_UNIX' and \
                not util.is_abstract_socket_namespace(address):
            # Linux abstract socket namespaces do not need to be explicitly
            # unlinked
            self._unlink = util.Finalize(
                self, os.unlink, args=(address,), exitpriority=0
                )
        else:
            self._unlink = None

    def accept(self):
        s, self._last_accepted = self._socket.accept()
        s.setblocking(True)
        return Connection(s.detach())

    def close(self):
        try:
            self._socket.close()
        finally:
            unlink = self._unlink
            if unlink is not None:
                self._unlink = None
                unlink()


def SocketClient(address):
    '''
    Return a connection object connected to the socket given by `address`
    '''
    family = address_type(address)
    with socket.socket(getattr(socket, family)) as s:
        s.setblocking(True)
        s.connect(address)
        return Connection(s.detach())

#
# Authentication stuff
#


# The handshake of the running version: 3.12 made it negotiate the HMAC
# digest (SHA-256 by default) and still answers the HMAC-MD5 of older
# peers; mpgo speaks what the standard library of its interpreter speaks.

if sys.version_info >= (3, 12):
    MESSAGE_LENGTH = 40  # MUST be > 20

    _CHALLENGE = b'#CHALLENGE#'
    _WELCOME = b'#WELCOME#'
    _FAILURE = b'#FAILURE#'

    # multiprocessing.connection Authentication Handshake Protocol Description
    # (as documented for reference after reading the existing code)
    # =============================================================================
    #
    # On Windows: native pipes with "overlapped IO" are used to send the bytes,
    # instead of the length prefix SIZE scheme described below. (ie: the OS deals
    # with message sizes for us)
    #
    # Protocol error behaviors:
    #
    # On POSIX, any failure to receive the length prefix into SIZE, for SIZE greater
    # than the requested maxsize to receive, or receiving fewer than SIZE bytes
    # results in the connection being closed and auth to fail.
    #
    # On Windows, receiving too few bytes is never a low level _recv_bytes read
    # error, receiving too many will trigger an error only if receive maxsize
    # value was larger than 128 OR the if the data arrived in smaller pieces.
    #
    #      Serving side                           Client side
    #     ------------------------------  ---------------------------------------
    # 0.                                  Open a connection on the pipe.
    # 1.  Accept connection.
    # 2.  Random 20+ bytes -> MESSAGE
    #     Modern servers always send
    #     more than 20 bytes and include
    #     a {digest} prefix on it with
    #     their preferred HMAC digest.
    #     Legacy ones send ==20 bytes.
    # 3.  send 4 byte length (net order)
    #     prefix followed by:
    #       b'#CHALLENGE#' + MESSAGE
    # 4.                                  Receive 4 bytes, parse as network byte
    #                                     order integer. If it is -1, receive an
    #                                     additional 8 bytes, parse that as network
    #                                     byte order. The result is the length of
    #                                     the data that follows -> SIZE.
    # 5.                                  Receive min(SIZE, 256) bytes -> M1
    # 6.                                  Assert that M1 starts with:
    #                                       b'#CHALLENGE#'
    # 7.                                  Strip that prefix from M1 into -> M2
    # 7.1.                                Parse M2: if it is exactly 20 bytes in
    #                                     length this indicates a legacy server
    #                                     supporting only HMAC-MD5. Otherwise the
    # 7.2.                                preferred digest is looked up from an
    #                                     expected "{digest}" prefix on M2. No prefix
    #                                     or unsupported digest? <- AuthenticationError
    # 7.3.                                Put divined algorithm name in -> D_NAME
    # 8.                                  Compute HMAC-D_NAME of AUTHKEY, M2 -> C_DIGEST
    # 9.                                  Send 4 byte length prefix (net order)
    #                                     followed by C_DIGEST bytes.
    # 10. Receive 4 or 4+8 byte length
    #     prefix (#4 dance) -> SIZE.
    # 11. Receive min(SIZE, 256) -> C_D.
    # 11.1. Parse C_D: legacy servers
    #     accept it as is, "md5" -> D_NAME
    # 11.2. modern servers check the length
    #     of C_D, IF it is 16 bytes?
    # 11.2.1. "md5" -> D_NAME
    #         and skip to step 12.
    # 11.3. longer? expect and parse a "{digest}"
    #     prefix into -> D_NAME.
    #     Strip the prefix and store remaining
    #     bytes in -> C_D.
    # 11.4. Don't like D_NAME? <- AuthenticationError
    # 12. Compute HMAC-D_NAME of AUTHKEY,
    #     MESSAGE into -> M_DIGEST.
    # 13. Compare M_DIGEST == C_D:
    # 14a: Match? Send length prefix &
    #       b'#WELCOME#'
    #    <- RETURN
    # 14b: Mismatch? Send len prefix &
    #       b'#FAILURE#'
    #    <- CLOSE & AuthenticationError
    # 15.                                 Receive 4 or 4+8 byte length prefix (net
    #                                     order) again as in #4 into -> SIZE.
    # 16.                                 Receive min(SIZE, 256) bytes -> M3.
    # 17.                                 Compare M3 == b'#WELCOME#':
    # 17a.                                Match? <- RETURN
    # 17b.                                Mismatch? <- CLOSE & AuthenticationError
    #
    # If this RETURNed, the connection remains open: it has been authenticated.
    #
    # Length prefixes are used consistently. Even on the legacy protocol, this
    # was good fortune and allowed us to evolve the protocol by using the length
    # of the opening challenge or length of the returned digest as a signal as
    # to which protocol the other end supports.

    _ALLOWED_DIGESTS = frozenset(
            {b'md5', b'sha256', b'sha384', b'sha3_256', b'sha3_384'})
    _MAX_DIGEST_LEN = max(len(_) for _ in _ALLOWED_DIGESTS)

    # Old hmac-md5 only server versions from Python <=3.11 sent a message of this
    # length. It happens to not match the length of any supported digest so we can
    # use a message of this length to indicate that we should work in backwards
    # compatible md5-only mode without a {digest_name} prefix on our response.
    _MD5ONLY_MESSAGE_LENGTH = 20
    _MD5_DIGEST_LEN = 16
    _LEGACY_LENGTHS = (_MD5ONLY_MESSAGE_LENGTH, _MD5_DIGEST_LEN)


    def _get_digest_name_and_payload(message: bytes) -> (str, bytes):
        """Returns a digest name and the payload for a response hash.

        If a legacy protocol is detected based on the message length
        or contents the digest name returned will be empty to indicate
        legacy mode where MD5 and no digest prefix should be sent.
        """
        # modern message format: b"{digest}payload" longer than 20 bytes
        # legacy message format: 16 or 20 byte b"payload"
        if len(message) in _LEGACY_LENGTHS:
            # Either this was a legacy server challenge, or we're processing
            # a reply from a legacy client that sent an unprefixed 16-byte
            # HMAC-MD5 response. All messages using the modern protocol will
            # be longer than either of these lengths.
            return '', message
        if (message.startswith(b'{') and
            (curly := message.find(b'}', 1, _MAX_DIGEST_LEN+2)) > 0):
            digest = message[1:curly]
            if digest in _ALLOWED_DIGESTS:
                payload = message[curly+1:]
                return digest.decode('ascii'), payload
        raise AuthenticationError(
                'unsupported message length, missing digest prefix, '
                f'or unsupported digest: {message=}')


    def _create_response(authkey, message):
        """Create a MAC based on authkey and message

        The MAC algorithm defaults to HMAC-MD5, unless MD5 is not available or
        the message has a '{digest_name}' prefix. For legacy HMAC-MD5, the response
        is the raw MAC, otherwise the response is prefixed with '{digest_name}',
        e.g. b'{sha256}abcdefg...'

        Note: The MAC protects the entire message including the digest_name prefix.
        """
        import hmac
        digest_name = _get_digest_name_and_payload(message)[0]
        # The MAC protects the entire message: digest header and payload.
        if not digest_name:
            # Legacy server without a {digest} prefix on message.
            # Generate a legacy non-prefixed HMAC-MD5 reply.
            try:
                return hmac.new(authkey, message, 'md5').digest()
            except ValueError:
                # HMAC-MD5 is not available (FIPS mode?), fall back to
                # HMAC-SHA2-256 modern protocol. The legacy server probably
                # doesn't support it and will reject us anyways. :shrug:
                digest_name = 'sha256'
        # Modern protocol, indicate the digest used in the reply.
        response = hmac.new(authkey, message, digest_name).digest()
        return b'{%s}%s' % (digest_name.encode('ascii'), response)


    def _verify_challenge(authkey, message, response):
        """Verify MAC challenge

        If our message did not include a digest_name prefix, the client is allowed
        to select a stronger digest_name from _ALLOWED_DIGESTS.

        In case our message is prefixed, a client cannot downgrade to a weaker
        algorithm, because the MAC is calculated over the entire message
        including the '{digest_name}' prefix.
        """
        import hmac
        response_digest, response_mac = _get_digest_name_and_payload(response)
        response_digest = response_digest or 'md5'
        try:
            expected = hmac.new(authkey, message, response_digest).digest()
        except ValueError:
            raise AuthenticationError(f'{response_digest=} unsupported')
        if len(expected) != len(response_mac):
            raise AuthenticationError(
                    f'expected {response_digest!r} of length {len(expected)} '
                    f'got {len(response_mac)}')
        if not hmac.compare_digest(expected, response_mac):
            raise AuthenticationError('digest received was wrong')


    def deliver_challenge(connection, authkey: bytes, digest_name='sha256'):
        if not isinstance(authkey, bytes):
            raise ValueError(
                "Authkey must be bytes, not {0!s}".format(type(authkey)))
        assert MESSAGE_LENGTH > _MD5ONLY_MESSAGE_LENGTH, "protocol constraint"
        message = os.urandom(MESSAGE_LENGTH)
        message = b'{%s}%s' % (digest_name.encode('ascii'), message)
        # Even when sending a challenge to a legacy client that does not support
        # digest prefixes, they'll take the entire thing as a challenge and
        # respond to it with a raw HMAC-MD5.
        connection.send_bytes(_CHALLENGE + message)
        response = connection.recv_bytes(256)        # reject large message
        try:
            _verify_challenge(authkey, message, response)
        except AuthenticationError:
            connection.send_bytes(_FAILURE)
            raise
        else:
            connection.send_bytes(_WELCOME)


    def answer_challenge(connection, authkey: bytes):
        if not isinstance(authkey, bytes):
            raise ValueError(
                "Authkey must be bytes, not {0!s}".format(type(authkey)))
        message = connection.recv_bytes(256)         # reject large message
        if not message.startswith(_CHALLENGE):
            raise AuthenticationError(
                    f'Protocol error, expected challenge: {message=}')
        message = message[len(_CHALLENGE):]
        if len(message) < _MD5ONLY_MESSAGE_LENGTH:
            raise AuthenticationError('challenge too short: {len(message)} bytes')
        digest = _create_response(authkey, message)
        connection.send_bytes(digest)
        response = connection.recv_bytes(256)        # reject large message
        if response != _WELCOME:
            raise AuthenticationError('digest sent was rejected')

else:
    MESSAGE_LENGTH = 20

    CHALLENGE = b'#CHALLENGE#'
    WELCOME = b'#WELCOME#'
    FAILURE = b'#FAILURE#'


    def deliver_challenge(connection, authkey):
        import hmac
        if not isinstance(authkey, bytes):
            raise ValueError(
                "Authkey must be bytes, not {0!s}".format(type(authkey)))
        message = os.urandom(MESSAGE_LENGTH)
        connection.send_bytes(CHALLENGE + message)
        digest = hmac.new(authkey, message, 'md5').digest()
        response = connection.recv_bytes(256)        # reject large message
        if response == digest:
            connection.send_bytes(WELCOME)
        else:
            connection.send_bytes(FAILURE)
            raise AuthenticationError('digest received was wrong')


    def answer_challenge(connection, authkey):
        import hmac
        if not isinstance(authkey, bytes):
            raise ValueError(
                "Authkey must be bytes, not {0!s}".format(type(authkey)))
        message = connection.recv_bytes(256)         # reject large message
        assert message[:len(CHALLENGE)] == CHALLENGE, 'message = %r' % message
        message = message[len(CHALLENGE):]
        digest = hmac.new(authkey, message, 'md5').digest()
        connection.send_bytes(digest)
        response = connection.recv_bytes(256)        # reject large message
        if response != WELCOME:
            raise AuthenticationError('digest sent was rejected')

#
# Support for using xmlrpclib for serialization
#


class ConnectionWrapper(object):
    def __init__(self, conn, dumps, loads):
        self._conn = conn
        self._dumps = dumps
        self._loads = loads
        for attr in ('fileno', 'close', 'poll', 'recv_bytes', 'send_bytes'):
            obj = getattr(conn, attr)
            setattr(self, attr, obj)

    def send(self, obj):
        s = self._dumps(obj)
        self._conn.send_bytes(s)

    def recv(self):
        s = self._conn.recv_bytes()
        return self._loads(s)


def _xml_dumps(obj):
    return xmlrpclib.dumps((obj,), None, None, None, 1).encode('utf-8')


def _xml_loads(s):
    (obj,), method = xmlrpclib.loads(s.decode('utf-8'))
    return obj


class XmlListener(Listener):
    def accept(self):
        global xmlrpclib
        import xmlrpc.client as xmlrpclib
        obj = Listener.accept(self)
        return ConnectionWrapper(obj, _xml_dumps, _xml_loads)


def XmlClient(*args, **kwds):
    global xmlrpclib
    import xmlrpc.client as xmlrpclib
    return ConnectionWrapper(Client(*args, **kwds), _xml_dumps, _xml_loads)

#
# Wait
#


# poll/select have the advantage of not requiring any extra file
# descriptor, contrarily to epoll/kqueue (also, they require a single
# syscall).
if hasattr(selectors, 'PollSelector'):
    _WaitSelector = selectors.PollSelector
else:
    _WaitSelector = selectors.SelectSelector


class _Bell:
    """A RingConnection's doorbell, registered by wait() without putting the
    connection in level mode."""

    __slots__ = ("conn",)

    def __init__(self, conn):
        self.conn = conn

    def fileno(self):
        return self.conn._bell_r


class _Doorbell(object):
    """The doorbell of one receiving side of a Pipe(), as one end sees it.

    The doorbell is an os.pipe: the receiving end holds its read end
    (fileno()), the sending end its write end. Two modes:

    * armed (the default): a sender writes a byte after its put while
      somebody waits in poll() or wait() on the side (ctl word `side`,
      a count of waiters kept under the lock). Waiters drain it when they
      find no message, and, should one arrive meanwhile, ring it again for
      the other waiters. Bytes may be stale; waiters look at the ring.
    * level: once fileno() is asked for on the side (ctl word _LEVEL + side,
      for good and in every process), the doorbell holds one byte exactly
      while the ring holds a message, so select, poll and selectors on
      fileno() see every waiting message and only those. After every put
      and every get, sync() makes it so under the lock (PIPE_CTL_LOCK in
      the control block), with the state word full[side] (PIPE_CTL_FULL)
      saying whether the byte is there. An end that lacks the pipe end it
      needs (a sender draining, a receiver ringing) opens one through
      /proc/self/fd for the moment: holding a write end for longer would
      hide the hang-up that tells the receiver its peer is gone.

    Between a put or get and its sync() the doorbell lags by that one
    message, which only a process in the middle of a send or recv sees.

    It holds weak references to the connections whose fds it uses (the C
    queue objects hold sync), so it keeps no connection alive.
    """

    __slots__ = ("q", "ctl", "full", "side", "level", "lock", "_reader",
                 "_writer")

    def __init__(self, q, ctl, full, side, lock, reader=None, writer=None):
        self.q = q
        self.ctl = ctl
        self.full = full
        self.side = side
        self.level = _LEVEL + side  # the word of ctl saying level mode
        self.lock = lock
        self._reader = reader
        self._writer = writer

    def _rfd(self):
        conn = self._reader() if self._reader is not None else None
        return conn._bell_r if conn is not None else None

    def _wfd(self):
        conn = self._writer() if self._writer is not None else None
        return conn._peer_bell_w if conn is not None else None

    def _via_proc(self, fd, flags):
        return os.open("/proc/self/fd/%d" % fd, flags | os.O_NONBLOCK | os.O_CLOEXEC)

    def _write(self):
        wfd, opened = self._wfd(), None
        try:
            if wfd is None:
                rfd = self._rfd()
                if rfd is None:
                    return
                wfd = opened = self._via_proc(rfd, os.O_WRONLY)
            os.write(wfd, b"\1")
        except (BlockingIOError, BrokenPipeError):
            pass  # already rung, or nobody left to hear it
        except OSError:
            pass  # closed meanwhile
        finally:
            if opened is not None:
                os.close(opened)

    def _drain(self):
        rfd, opened = self._rfd(), None
        try:
            if rfd is None:
                wfd = self._wfd()
                if wfd is None:
                    return
                rfd = opened = self._via_proc(wfd, os.O_RDONLY)
            while os.read(rfd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
        finally:
            if opened is not None:
                os.close(opened)

    def sync(self):
        """Level mode: make the doorbell say whether a message waits."""
        side, full = self.side, self.full
        with self.lock:
            try:
                n = self.q.qsize()
            except OSError:
                return      # the ring is closed (the connection with it)
            if n:
                if not full[side]:
                    self._write()
                    full[side] = 1
            elif self._reader is not None:
                # Drain even when it should be empty: a sender that rang it
                # in armed mode just before the switch to level mode.
                self._drain()
                full[side] = 0
            # else a sender with the ring empty: the getter that emptied it
            # syncs after us.

    def ring(self):
        """After a put: level mode, sync; armed, wake the waiters."""
        if self.ctl[self.level]:
            self.sync()
        elif self.ctl[self.side]:
            self._write()

    def level_on(self):
        """Switch the side to level mode (fileno() was asked for)."""
        with self.lock:
            if self.ctl[self.level]:
                return
            self.ctl[self.level] = 1
            self._drain()       # stale bytes of armed mode
            self.full[self.side] = 0
        self.sync()

    def arm(self):
        """Count this thread as waiting on the doorbell (armed mode);
        return whether it was counted (not in level mode)."""
        with self.lock:
            if self.ctl[self.level]:
                return False
            self.ctl[self.side] += 1
            return True

    def disarm(self):
        with self.lock:
            if self.ctl[self.side]:
                self.ctl[self.side] -= 1

    def settle(self):
        """After the doorbell woke a waiter that found no message: drain it
        (armed) or sync it (level); return whether a message came meanwhile."""
        with self.lock:
            if not self.ctl[self.level]:
                self._drain()
                if not self.q.qsize():
                    return False
                # Arrived between the wake and the drain: the other
                # waiters must see it too.
                self._write()
                return True
        self.sync()
        return bool(self.q.qsize())


def wait(object_list, timeout=None):
    '''
    Wait till an object in object_list is ready/readable.

    Returns list of those objects in object_list which are ready/readable.
    The objects may be Connections, sockets, Process.sentinel values (pidfds,
    readable once the process has exited), plain fds, or anything else with
    a fileno() method.
    '''
    rings = [o for o in object_list if isinstance(o, RingConnection)]
    armed = [conn for conn in rings
             if conn._bell is not None and conn._bell.arm()]
    try:
        with _WaitSelector() as selector:
            for obj in object_list:
                selector.register(_Bell(obj) if isinstance(obj, RingConnection)
                                  else obj, selectors.EVENT_READ)
            # Rings with a message waiting are ready whatever their
            # doorbell says; the others are asked without waiting.
            ready = [o for o in rings if o._ready()]
            if ready:
                timeout = 0

            if timeout is not None:
                deadline = time.monotonic() + timeout

            while True:
                result = []
                for key, events in selector.select(timeout):
                    obj = key.fileobj
                    if isinstance(obj, _Bell):
                        if not obj.conn._ready() and not obj.conn._bell.settle():
                            continue
                        obj = obj.conn
                    result.append(obj)
                for obj in ready:
                    if obj not in result:
                        result.append(obj)
                if result:
                    return result
                if timeout is not None:
                    timeout = deadline - time.monotonic()
                    if timeout < 0:
                        return []
    finally:
        for conn in armed:
            conn._bell.disarm()


#
# Make connection objects shareable
#


def reduce_connection(conn):
    df = reduction.DupFd(conn.fileno())
    return rebuild_connection, (df, conn.readable, conn.writable)


def rebuild_connection(df, readable, writable):
    fd = df.detach()
    return Connection(fd, readable, writable)


reduction.register(Connection, reduce_connection)
reduction.register(RingConnection, _reduce_ring_connection)
