"""Queue, JoinableQueue and SimpleQueue on distributed Queues.

A queue is a distributed Queue (on the scheduler) of [source, sequence,
pickle] items: put() pickles in the caller (mpgo.cluster._pickle: an
unpicklable or local-only object raises there), and the item is on the
scheduler, visible to every process of the run, once put() returns. The
tag orders output (mpgo.cluster._output). maxsize is the distributed
Queue's; qsize() is exact. A queue pickles as its name, at any time.

JoinableQueue counts unfinished tasks with a Semaphore and a Condition of
the cluster, as CPython does with its own.

Each call is a round trip to the scheduler (about half a millisecond on
loopback), so a queue moves a few thousand items a second: put lists, not
items, when there are many.

Adapted from CPython's Lib/multiprocessing/queues.py (PSF License).
"""

import types
from queue import Empty, Full

from . import _dask, _output, _pickle, _session

__all__ = ['Queue', 'SimpleQueue', 'JoinableQueue']


def _encode(obj):
    tag = _output.tag_for_send()
    data = _pickle.dumps(obj)
    if tag is None:
        return ['', 0, data]
    return [tag[0], tag[1], data]


def _decode(item):
    source, seq, data = item
    if source:
        _output.received((source, seq))
    return _pickle.loads(data)


class Queue(object):

    def __init__(self, maxsize=0, *, ctx):
        if maxsize <= 0:
            maxsize = 0
        session = ctx._session()
        self._maxsize = maxsize
        self._q = _dask.Queue(session, session.name('queue'))
        self._q.create(maxsize)
        self._closed = False

    def __getstate__(self):
        return (self._q.name, self._maxsize)

    def __setstate__(self, state):
        name, self._maxsize = state
        self._q = _dask.Queue(_session.current(), name)
        self._closed = False

    def _check_closed(self):
        if self._closed:
            raise ValueError(f"Queue {self!r} is closed")

    def put(self, obj, block=True, timeout=None):
        self._check_closed()
        item = _encode(obj)
        wait = _dask.timeout_of(block, timeout) if self._maxsize else None
        for _ in range(_dask.NOWAIT_TRIES):
            try:
                self._q.put(item, wait)
                return
            except _dask.Timeout:
                # Spurious (_dask.NOWAIT_TRIES) unless the queue is full.
                if wait != _dask.NOWAIT or self.qsize() >= self._maxsize:
                    break
        raise Full

    def get(self, block=True, timeout=None):
        self._check_closed()
        try:
            item = self._q.get(_dask.timeout_of(block, timeout))
        except _dask.Timeout:
            raise Empty from None
        return _decode(item)

    def qsize(self):
        return self._q.qsize()

    def empty(self):
        return self.qsize() == 0

    def full(self):
        return bool(self._maxsize) and self.qsize() >= self._maxsize

    def get_nowait(self):
        return self.get(False)

    def put_nowait(self, obj):
        return self.put(obj, False)

    def close(self):
        self._closed = True

    def join_thread(self):
        assert self._closed, "Queue {0!r} not closed".format(self)

    def cancel_join_thread(self):
        pass

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self._q.name)

    __class_getitem__ = classmethod(types.GenericAlias)


class JoinableQueue(Queue):

    def __init__(self, maxsize=0, *, ctx):
        Queue.__init__(self, maxsize, ctx=ctx)
        self._unfinished_tasks = ctx.Semaphore(0)
        self._cond = ctx.Condition()

    def __getstate__(self):
        return Queue.__getstate__(self) + (self._cond, self._unfinished_tasks)

    def __setstate__(self, state):
        Queue.__setstate__(self, state[:2])
        self._cond, self._unfinished_tasks = state[2:]

    def put(self, obj, block=True, timeout=None):
        # Counted first, so that a consumer's task_done() for the item can
        # never come before its count.
        self._check_closed()
        self._unfinished_tasks.release()
        try:
            Queue.put(self, obj, block, timeout)
        except BaseException:
            self._unfinished_tasks.acquire(False)
            raise

    def task_done(self):
        with self._cond:
            if not self._unfinished_tasks.acquire(False):
                raise ValueError('task_done() called too many times')
            if self._unfinished_tasks.get_value() == 0:
                self._cond.notify_all()

    def join(self):
        with self._cond:
            if self._unfinished_tasks.get_value() != 0:
                self._cond.wait()


class SimpleQueue(object):

    def __init__(self, *, ctx):
        session = ctx._session()
        self._q = _dask.Queue(session, session.name('simplequeue'))
        self._q.create(0)
        self._closed = False

    def __getstate__(self):
        return self._q.name

    def __setstate__(self, name):
        self._q = _dask.Queue(_session.current(), name)
        self._closed = False

    def close(self):
        self._closed = True

    def empty(self):
        return self._q.qsize() == 0

    def get(self):
        if self._closed:
            raise OSError('handle is closed')
        return _decode(self._q.get(None))

    def put(self, obj):
        if self._closed:
            raise OSError('handle is closed')
        self._q.put(_encode(obj))

    def __repr__(self):
        return '<%s %s>' % (type(self).__name__, self._q.name)

    __class_getitem__ = classmethod(types.GenericAlias)
