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

A subclass that overrides the feeder thread (_start_thread or _feed, as
loky's Queue does to pickle with its own reducers), or _reset or
_after_fork, gets CPython's Queue instead (_FeederQueue): a feeder thread
that pickles what put() buffered and sends it with _writer.send_bytes,
get() under _rlock, the size bounded by the BoundedSemaphore _sem, and
_rlock, _wlock, _sem, _opid, _buffer, _notempty, _thread, _send_bytes,
_recv_bytes and _poll with CPython's meaning, all over mpgo's Pipe(), Lock
and BoundedSemaphore.
"""

__all__ = ['Queue', 'SimpleQueue', 'JoinableQueue']

import collections
import errno
import os
import threading
import time
import types
import weakref

from queue import Empty, Full

from . import connection
from . import context

import pickle as _pickle

from ._engine import fast as _fast
from .reduction import _PLAIN, dumps_msg as _dumps_msg
from .util import debug, info, Finalize, register_after_fork, is_exiting

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


# What the feeder thread of a _FeederQueue finds in its buffer when the
# queue is closed (CPython's name: subclasses' own _feed compare with it).
_sentinel = object()

# A subclass overriding one of these gets CPython's feeder-thread Queue.
_FEEDER_HOOKS = ('_start_thread', '_feed', '_reset', '_after_fork')


class Queue(object):

    # Whether this class is a _FeederQueue (see __init_subclass__).
    _feeder = False

    def __init_subclass__(cls, **kwds):
        super().__init_subclass__(**kwds)
        if cls._feeder or not any(_defined_below_queue(cls, name)
                                  for name in _FEEDER_HOOKS):
            return
        # CPython's methods, wherever the subclass does not define its own.
        for name, value in vars(_FeederQueue).items():
            if name.startswith('__') and name not in ('__getstate__', '__setstate__'):
                continue
            if not _defined_below_queue(cls, name):
                setattr(cls, name, value)
        cls._feeder = True

    def __init__(self, maxsize=0, *, ctx=None):
        vmax = _sem_value_max()
        if maxsize <= 0:
            maxsize = vmax
        self._maxsize = maxsize
        self._opid = os.getpid()
        self._ignore_epipe = False
        self._is_fork_ctx = context.reduction._created_in_fork_context(ctx)
        if self._feeder:
            _FeederQueue._init(self, maxsize, ctx)
            return
        self._reader, self._writer = connection._ring_pipe(
            False, 0 if maxsize >= vmax else maxsize)
        self._setup()

    def _setup(self):
        self._closed = False
        self._used = False
        r, w = self._reader, self._writer
        self._q = r._in
        # put() rings the reader's doorbell only while somebody waits on it
        # (connection.wait on q._reader) or selects on its fileno(); this
        # process holds both of its ends.
        self._ctl, self._armed, self._level = w._ctl, w._peer, 2 + w._peer
        self._bell = connection._Doorbell(
            r._in, w._ctl, r._bell.full, w._peer, r._bell.lock,
            reader=weakref.ref(r), writer=weakref.ref(w))
        # put() and get() of a plain Queue are each one C call: pickling,
        # the ring and the doorbell. A subclass that overrides them, or the
        # pickling-error hook, keeps the Python methods below.
        cls = type(self)
        if cls._on_queue_feeder_error is Queue._on_queue_feeder_error and \
                (cls.put is Queue.put or cls.get is Queue.get):
            fq = self._fq = _fast.Queue(self._reader._rin.handle)
            fq.configure(_dumps_msg, _loads, _pickle.dumps, _PLAIN, w._ctl, w._peer,
                         2 + w._peer, w._peer_bell_w, self._bell.sync,
                         f"Queue {self!r} is closed")
            if cls.put is Queue.put:
                self.put = fq.put_obj
            if cls.get is Queue.get:
                self.get = fq.get_obj2

    def __getstate__(self):
        return (self._ignore_epipe, self._maxsize, self._reader, self._writer,
                self._opid)

    def __setstate__(self, state):
        (self._ignore_epipe, self._maxsize, self._reader, self._writer,
         self._opid) = state
        self._setup()

    def __repr__(self):
        return '<%s object at %#x>' % (type(self).__name__, id(self))

    def _check_closed(self):
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def _ring(self):
        ctl = self._ctl
        if ctl[self._armed] or ctl[self._level]:
            self._bell.ring()

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
            self._bell.ring()

    def get(self, block=True, timeout=None):
        if self._closed:
            self._check_closed()
        if timeout is not None and timeout < 0:
            timeout = 0
        obj = self._q.get_obj(block, timeout, _loads)
        if self._ctl[self._level]:
            self._bell.sync()
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
        data = self._q.get(block, timeout)
        if self._ctl[self._level]:
            self._bell.sync()
        return data

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
        if self._ctl[self._level]:
            self._bell.sync()
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
        context.reduction._check_fork_context(
            self.__dict__.get('_is_fork_ctx', False))
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

    def _terminate_broken(self):
        # Close a Queue on error (concurrent.futures, 3.12+): nobody reads
        # it any more.
        self._reader.close()
        self.close()
        self.join_thread()

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


def _defined_below_queue(cls, name):
    '''Whether a class between cls and Queue (in cls's MRO) defines name.'''
    for klass in cls.__mro__:
        if klass is Queue:
            return False
        if name in vars(klass):
            return True
    return False


class _FeederQueue(object):
    '''CPython's Queue (3.13), over mpgo's Pipe(), Lock and
    BoundedSemaphore: Queue.__init_subclass__ copies these methods into a
    subclass that overrides the feeder (see the module's docstring), so its
    overrides see every attribute they expect.'''

    def _init(self, maxsize, ctx):
        from . import synchronize
        self._reader, self._writer = connection.Pipe(duplex=False)
        self._rlock = synchronize.Lock(ctx=ctx)
        self._wlock = synchronize.Lock(ctx=ctx)
        self._sem = synchronize.BoundedSemaphore(maxsize, ctx=ctx)
        self._reset()
        register_after_fork(self, type(self)._after_fork)

    def __getstate__(self):
        context.assert_spawning(self)
        return (self._ignore_epipe, self._maxsize, self._reader, self._writer,
                self._rlock, self._wlock, self._sem, self._opid)

    def __setstate__(self, state):
        (self._ignore_epipe, self._maxsize, self._reader, self._writer,
         self._rlock, self._wlock, self._sem, self._opid) = state
        self._reset()

    def _after_fork(self):
        debug('Queue._after_fork()')
        self._reset(after_fork=True)

    def _reset(self, after_fork=False):
        if after_fork:
            self._notempty._at_fork_reinit()
        else:
            self._notempty = threading.Condition(threading.Lock())
        self._buffer = collections.deque()
        self._thread = None
        self._jointhread = None
        self._joincancelled = False
        self._closed = False
        self._close = None
        self._send_bytes = self._writer.send_bytes
        self._recv_bytes = self._reader.recv_bytes
        self._poll = self._reader.poll

    def put(self, obj, block=True, timeout=None):
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        if not self._sem.acquire(block, timeout):
            raise Full

        with self._notempty:
            if self._thread is None:
                self._start_thread()
            self._buffer.append(obj)
            self._notempty.notify()

    def get(self, block=True, timeout=None):
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")
        if block and timeout is None:
            with self._rlock:
                res = self._recv_bytes()
            self._sem.release()
        else:
            if block:
                deadline = time.monotonic() + timeout
            if not self._rlock.acquire(block, timeout):
                raise Empty
            try:
                if block:
                    timeout = deadline - time.monotonic()
                    if not self._poll(timeout):
                        raise Empty
                elif not self._poll():
                    raise Empty
                res = self._recv_bytes()
                self._sem.release()
            finally:
                self._rlock.release()
        # unserialize the data after having released the lock
        return _ForkingPickler.loads(res)

    def qsize(self):
        return self._maxsize - self._sem._semlock._get_value()

    def empty(self):
        return not self._poll()

    def full(self):
        return self._sem._semlock._is_zero()

    def get_nowait(self):
        return self.get(False)

    def put_nowait(self, obj):
        return self.put(obj, False)

    def close(self):
        self._closed = True
        close = self._close
        if close:
            self._close = None
            close()

    def join_thread(self):
        debug('Queue.join_thread()')
        assert self._closed, "Queue {0!r} not closed".format(self)
        if self._jointhread:
            self._jointhread()

    def cancel_join_thread(self):
        debug('Queue.cancel_join_thread()')
        self._joincancelled = True
        try:
            self._jointhread.cancel()
        except AttributeError:
            pass

    def _terminate_broken(self):
        # Close a Queue on error.
        self._reader.close()
        self.close()
        self.join_thread()

    def _start_thread(self):
        debug('Queue._start_thread()')

        # Start thread which transfers data from buffer to pipe
        self._buffer.clear()
        self._thread = threading.Thread(
            target=_FeederQueue._feed,
            args=(self._buffer, self._notempty, self._send_bytes,
                  self._wlock, self._reader.close, self._writer.close,
                  self._ignore_epipe, self._on_queue_feeder_error,
                  self._sem),
            name='QueueFeederThread',
            daemon=True,
        )

        try:
            debug('doing self._thread.start()')
            self._thread.start()
            debug('... done self._thread.start()')
        except:  # noqa: E722
            # gh-109047: During Python finalization, creating a thread
            # can fail with RuntimeError.
            self._thread = None
            raise

        if not self._joincancelled:
            self._jointhread = Finalize(
                self._thread, _FeederQueue._finalize_join,
                [weakref.ref(self._thread)],
                exitpriority=-5
                )

        # Send sentinel to the thread queue object when garbage collected
        self._close = Finalize(
            self, _FeederQueue._finalize_close,
            [self._buffer, self._notempty],
            exitpriority=10
            )

    @staticmethod
    def _finalize_join(twr):
        debug('joining queue thread')
        thread = twr()
        if thread is not None:
            thread.join()
            debug('... queue thread joined')
        else:
            debug('... queue thread already dead')

    @staticmethod
    def _finalize_close(buffer, notempty):
        debug('telling queue thread to quit')
        with notempty:
            buffer.append(_sentinel)
            notempty.notify()

    @staticmethod
    def _feed(buffer, notempty, send_bytes, writelock, reader_close,
              writer_close, ignore_epipe, onerror, queue_sem):
        debug('starting thread to feed data to pipe')
        nacquire = notempty.acquire
        nrelease = notempty.release
        nwait = notempty.wait
        bpopleft = buffer.popleft
        sentinel = _sentinel
        wacquire = writelock.acquire
        wrelease = writelock.release

        while 1:
            try:
                nacquire()
                try:
                    if not buffer:
                        nwait()
                finally:
                    nrelease()
                try:
                    while 1:
                        obj = bpopleft()
                        if obj is sentinel:
                            debug('feeder thread got sentinel -- exiting')
                            reader_close()
                            writer_close()
                            return

                        # serialize the data before acquiring the lock
                        obj = _ForkingPickler.dumps(obj)
                        wacquire()
                        try:
                            send_bytes(obj)
                        finally:
                            wrelease()
                except IndexError:
                    pass
            except Exception as e:
                if ignore_epipe and getattr(e, 'errno', 0) == errno.EPIPE:
                    return
                # Since this runs in a daemon thread the resources it uses
                # may be become unusable while the process is cleaning up.
                # We ignore errors which happen after the process has
                # started to cleanup.
                if is_exiting():
                    info('error in queue thread: %s', e)
                    return
                else:
                    # Since the object has not been sent in the queue, we need
                    # to decrease the size of the queue. The error acts as
                    # if the object had been silently removed from the queue
                    # and this step is necessary to have a properly working
                    # queue.
                    queue_sem.release()
                    onerror(e, obj)

    @staticmethod
    def _on_queue_feeder_error(e, obj):
        """
        Private API hook called when feeding data in the background thread
        raises an exception.  For overriding by concurrent.futures.
        """
        import traceback
        traceback.print_exc()


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


# CPython's feeder machinery on Queue itself, for the overrides of a
# _FeederQueue subclass that call up to it (super()._start_thread()); a
# plain Queue has no buffer or feeder to use it with.
for _name in ('_start_thread', '_feed', '_reset', '_after_fork',
              '_finalize_join', '_finalize_close'):
    setattr(Queue, _name, vars(_FeederQueue)[_name])
del _name


class _LazyLock(object):
    '''A Lock made on first access and kept in the instance's __dict__
    (which an assignment also sets, as a subclass's __setstate__ does).'''

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self
        # Not through the default context, which would fix its start method;
        # of the queue's context as far as pickling goes (CPython makes them
        # with the queue's ctx).
        from .synchronize import Lock
        lock = obj.__dict__.get(self.name)
        if lock is None:
            lock = Lock()
            lock._is_fork_ctx = obj.__dict__.get('_is_fork_ctx', False)
            lock = obj.__dict__.setdefault(self.name, lock)
        return lock


class SimpleQueue(object):
    '''CPython's SimpleQueue on one ring. get() and put() need no lock
    (the ring takes any number of readers and writers); _rlock and _wlock,
    CPython's reader and writer locks, are made when first used, for
    subclasses that pickle or take them (loky's does).'''

    _rlock = _LazyLock()
    _wlock = _LazyLock()

    def __init__(self, *, ctx=None):
        self._reader, self._writer = connection._ring_pipe(False)
        self._poll = self._reader.poll
        self._is_fork_ctx = context.reduction._created_in_fork_context(ctx)

    def close(self):
        self._reader.close()
        self._writer.close()

    def empty(self):
        return not self._poll()

    def __getstate__(self):
        context.reduction._check_fork_context(
            self.__dict__.get('_is_fork_ctx', False))
        return (self._reader, self._writer)

    def __setstate__(self, state):
        (self._reader, self._writer) = state
        self._poll = self._reader.poll

    def get(self):
        return self._reader.recv()

    def put(self, obj):
        self._writer.send(obj)

    __class_getitem__ = classmethod(types.GenericAlias)
