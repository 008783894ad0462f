"""Queues between processes: Queue, JoinableQueue and SimpleQueue.

Adapted from CPython's Lib/multiprocessing/queues.py (PSF License), on a
different transport. A queue is a one-way Pipe() whose ring (the engine's
core/queue, in shared memory) carries every message; there is no feeder
thread and no lock. That gives, within CPython's API:

* put() pickles the object in the caller and copies it into shared memory
  before it returns, so an object that cannot be pickled raises in put() and
  the queue is left as it was (a subclass overriding _on_queue_feeder_error,
  as concurrent.futures does, is told instead), and nothing a process put is
  lost when it exits: once put() returned, every process sees the item. A
  producer never blocks at exit, so joining it before draining the queue
  cannot deadlock.
* Big bytes, and objects holding large buffers (numpy arrays...), are
  copied once into shared memory, not pickled into a buffer first; large
  buffers travel out of band (pickle protocol 5) and come back as views on
  the received message (mpgo.reduction.dumps_msg describes the format).
* qsize() is exact, on every platform.
* Queues pickle at any time: as a Process or Pool task argument, inside
  another queue. A pickled queue refers to the shared memory, never copies.
* A process killed in the middle of a put or get loses at most that item;
  the ring stays consistent and the other processes carry on.
* put_many() and get_many() move batches under one lock hold, and
  put_bytes()/get_bytes() move raw messages, which is how Go and C peers
  share a queue with Python (see examples/queue).

The queue's _reader and _writer are the pipe's ends, as in CPython, so
connection.wait() works on q._reader. join_thread() and
cancel_join_thread() keep their meaning for callers but have nothing to
flush. close() releases at once what this process holds of the queue (its
doorbell fds and its mapping of the ring; a JoinableQueue keeps the ring
for task_done() and join()); a queue dropped without close() releases the
same when its last reference goes.
"""

__all__ = ['Queue', 'SimpleQueue', 'JoinableQueue']

import errno
import types

from queue import Empty, Full

from . import connection
from . import context

import pickle as _pickle

from ._engine import fast as _fast
from .reduction import _PLAIN, dumps_msg as _dumps_msg

_ForkingPickler = context.reduction.ForkingPickler
_RAW_MIN = _fast.RAW_MIN
_OOB_TAG = bytes([_fast.OOB_TAG])
_dumps = _ForkingPickler.dumps
_loads = _ForkingPickler.loads


def _decode(m):
    """The object of a message got as bytes (see mpgo.reduction)."""
    tag = m[-1:]
    if tag == b"\0":
        return m[:-1]
    if tag == _OOB_TAG:
        return _fast.oob_loads(m)  # copied: m is not a temporary here
    return _loads(m)


def _sem_value_max():
    from .synchronize import SEM_VALUE_MAX
    return SEM_VALUE_MAX


class Queue(object):

    def __init__(self, maxsize=0, *, ctx=None):
        vmax = _sem_value_max()
        if maxsize <= 0:
            maxsize = vmax
        self._maxsize = maxsize
        self._reader, self._writer = connection._ring_pipe(
            False, 0 if maxsize >= vmax else maxsize)
        self._ignore_epipe = False
        self._setup()

    def _setup(self):
        self._closed = False
        self._used = False
        self._q = self._reader._in
        w = self._writer
        # put() rings the reader's doorbell only while somebody waits on it
        # (connection.wait on q._reader) or selects on its fileno().
        self._ctl, self._armed, self._level = w._ctl, w._peer, 2 + w._peer
        # put() and get() of a plain Queue are each one C call: pickling,
        # the ring and the doorbell. A subclass that overrides them, or the
        # pickling-error hook, keeps the Python methods below.
        cls = type(self)
        if cls._on_queue_feeder_error is Queue._on_queue_feeder_error and \
                (cls.put is Queue.put or cls.get is Queue.get):
            fq = self._fq = _fast.Queue(self._reader._rin.handle)
            fq.configure(_dumps_msg, _loads, _pickle.dumps, _PLAIN, w._ctl, w._peer,
                         2 + w._peer, w._peer_bell_w, self._reader._bell_r,
                         f"Queue {self!r} is closed")
            if cls.put is Queue.put:
                self.put = fq.put_obj
            if cls.get is Queue.get:
                self.get = fq.get_obj2

    def __getstate__(self):
        return (self._ignore_epipe, self._maxsize, self._reader, self._writer)

    def __setstate__(self, state):
        (self._ignore_epipe, self._maxsize, self._reader, self._writer) = state
        self._setup()

    def __repr__(self):
        return '<%s object at %#x>' % (type(self).__name__, id(self))

    def _check_closed(self):
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def _ring(self):
        ctl = self._ctl
        if ctl[self._armed] or ctl[self._level]:
            self._writer._ring_peer()

    def put(self, obj, block=True, timeout=None):
        if self._closed:
            self._check_closed()
        self._used = True
        if timeout is not None and timeout < 0:
            timeout = 0
        if type(obj) is bytes and len(obj) >= _RAW_MIN:
            # Big bytes go into the ring as themselves, not pickled: one
            # copy on each side instead of three.
            self._q.put_raw(obj, block, timeout)
            self._ring()
            return
        try:
            data = _dumps_msg(obj)
        except Exception as e:
            # A subclass that overrides the hook (as concurrent.futures
            # does) is told instead, as CPython's feeder thread tells it.
            if type(self)._on_queue_feeder_error is Queue._on_queue_feeder_error:
                raise
            self._on_queue_feeder_error(e, obj)
            return
        if type(data) is list:
            # Large buffers: one message of parts, each copied once.
            self._q.put_parts(data, block, timeout)
        else:
            self._q.put(data, block, timeout)
        if self._ctl[self._armed] or self._ctl[self._level]:
            self._writer._ring_peer()

    def get(self, block=True, timeout=None):
        if self._closed:
            self._check_closed()
        if timeout is not None and timeout < 0:
            timeout = 0
        obj = self._q.get_obj(block, timeout, _loads)
        if self._ctl[self._level]:
            self._reader._drain_if_empty()
        return obj

    def put_bytes(self, data, block=True, timeout=None):
        """Put a bytes-like object as a raw message, not pickled: what a Go
        or C peer reads (see examples/queue)."""
        self._check_closed()
        if timeout is not None and timeout < 0:
            timeout = 0
        self._q.put(data, block, timeout)
        self._ring()

    def get_bytes(self, block=True, timeout=None):
        """Get the next message as raw bytes, not unpickled: what a Go or C
        peer put."""
        self._check_closed()
        if timeout is not None and timeout < 0:
            timeout = 0
        return self._q.get(block, timeout)

    def put_many(self, objs, block=True, timeout=None):
        """Put every object of objs, in order, under one lock hold where they
        fit; return how many were put. A bounded queue that stays full past
        the timeout raises queue.Full with the rest not put."""
        self._check_closed()
        msgs = [_dumps(o) for o in objs]
        if timeout is not None and timeout < 0:
            timeout = 0
        n = self._q.put_many(msgs, block, timeout)
        self._ring()
        if n < len(msgs):
            raise Full
        return n

    def get_many(self, max_messages=100, block=True, timeout=None):
        """Return a list of at most max_messages items, waiting as get()
        does for the first one only."""
        self._check_closed()
        if timeout is not None and timeout < 0:
            timeout = 0
        msgs = self._q.get_many(max_messages, block, timeout)
        if len(msgs) == 1 and msgs[0][-1:] == _OOB_TAG:
            # Larger than get_many's buffer, so alone: handed over as a
            # temporary, its bytes become the landing without a copy.
            return [_fast.oob_loads(msgs.pop())]
        return [_decode(m) for m in msgs]

    def engine_ref(self):
        """The reference ("pid:fd:size") by which a Go or C program attaches
        this queue's ring (core/queue Attach, mpgo_queue_attach)."""
        from ._engine import call
        return call("QueueRef", self._reader._rin.handle)

    def qsize(self):
        return self._q.qsize()

    def empty(self):
        if self._closed:
            return self._closed_empty()
        return self._q.qsize() == 0

    def _closed_empty(self):
        # As CPython's, whose close() closes the pipe only once a put()
        # started the feeder thread.
        fq = self.__dict__.get('_fq')
        if self._used or (fq is not None and fq.used):
            raise OSError(errno.EBADF, "handle is closed")
        try:
            return self._q.qsize() == 0
        except OSError:
            return True  # released by close(): nothing was put here

    def full(self):
        return self._q.qsize() >= self._maxsize

    def get_nowait(self):
        return self.get(False)

    def put_nowait(self, obj):
        return self.put(obj, False)

    def __reduce_ex__(self, protocol):
        # The C put/get bound into __dict__ must not be pickled.
        return (_rebuild_queue, (type(self), self.__getstate__()))

    def close(self):
        self._closed = True
        fq = self.__dict__.get('_fq')
        if fq is not None:
            fq.set_closed(True)
        self._release()

    def _release(self):
        # The pipe ends hold the doorbells and the ring; the ring's handle
        # closes (unmapping it here) when the last of them lets go.
        self._reader.close()
        self._writer.close()

    def join_thread(self):
        assert self._closed, "Queue {0!r} not closed".format(self)

    def cancel_join_thread(self):
        pass

    @staticmethod
    def _on_queue_feeder_error(e, obj):
        """Private API hook called when pickling an item for put() fails, in
        a subclass that overrides it; put() itself raises otherwise."""
        import traceback
        traceback.print_exc()

    __class_getitem__ = classmethod(types.GenericAlias)


def _rebuild_queue(cls, state):
    q = cls.__new__(cls)
    q.__setstate__(state)
    return q


class JoinableQueue(Queue):

    def _release(self):
        # task_done() and join() work after close(), as with CPython's
        # semaphore and condition: they count on the ring, kept until the
        # queue is dropped.
        self._ring = self._reader._rin
        super()._release()

    def task_done(self):
        try:
            self._q.task_done()
        except ValueError:
            raise ValueError('task_done() called too many times') from None

    def join(self):
        self._q.join(None)


class SimpleQueue(object):

    def __init__(self, *, ctx=None):
        self._reader, self._writer = connection._ring_pipe(False)
        self._poll = self._reader.poll

    def close(self):
        self._reader.close()
        self._writer.close()

    def empty(self):
        return not self._poll()

    def __getstate__(self):
        return (self._reader, self._writer)

    def __setstate__(self, state):
        (self._reader, self._writer) = state
        self._poll = self._reader.poll

    def get(self):
        return self._reader.recv()

    def put(self, obj):
        self._writer.send(obj)

    __class_getitem__ = classmethod(types.GenericAlias)
