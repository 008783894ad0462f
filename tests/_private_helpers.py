"""Subclasses and targets for test_private_machinery.py (top level, so that
spawned children import them)."""

import io
import os
import pickle
import threading
import weakref

from mpgo import queues, util
from mpgo.pool import Pool


class TaggingQueue(queues.Queue):
    """As loky's Queue: its own feeder thread, pickling with its own
    reducer, and its own state."""

    def __init__(self, maxsize=0, tag='tagged', ctx=None):
        super().__init__(maxsize, ctx=ctx)
        self._tag = tag

    def __getstate__(self):
        return (self._ignore_epipe, self._maxsize, self._reader, self._writer,
                self._tag, self._rlock, self._wlock, self._sem, self._opid)

    def __setstate__(self, state):
        (self._ignore_epipe, self._maxsize, self._reader, self._writer,
         self._tag, self._rlock, self._wlock, self._sem, self._opid) = state
        self._reset()

    def _start_thread(self):
        self._buffer.clear()
        self._thread = threading.Thread(
            target=TaggingQueue._feed,
            args=(self._buffer, self._notempty, self._send_bytes, self._wlock,
                  self._tag), daemon=True)
        self._thread.start()
        self._jointhread = util.Finalize(
            self._thread, queues.Queue._finalize_join,
            [weakref.ref(self._thread)], exitpriority=-5)
        self._close = util.Finalize(self, queues.Queue._finalize_close,
                                    [self._buffer, self._notempty],
                                    exitpriority=10)

    @staticmethod
    def _feed(buffer, notempty, send_bytes, writelock, tag):
        while True:
            with notempty:
                if not buffer:
                    notempty.wait()
            while buffer:
                obj = buffer.popleft()
                if obj is queues._sentinel:
                    return
                with writelock:
                    send_bytes(pickle.dumps((tag, obj)))


def put_in(q, items):
    for x in items:
        q.put(x)
    q.close()
    q.join_thread()


class _CountingQueue(object):
    def __init__(self, ctx, counter):
        self._reader, self._writer = ctx.Pipe(duplex=False)
        self._rlock = ctx.Lock()
        self._counter = counter

    def put(self, obj):
        with self._counter.get_lock():
            self._counter.value += 1
        self._writer.send(obj)

    def get(self):
        with self._rlock:
            return self._reader.recv()

    def __getstate__(self):
        return self._reader, self._writer, self._rlock, self._counter

    def __setstate__(self, state):
        self._reader, self._writer, self._rlock, self._counter = state


class CountingPool(Pool):
    """As joblib's PicklingPool: its own task and result queues."""

    def __init__(self, processes, counter):
        self._counter = counter
        super().__init__(processes)

    def _setup_queues(self):
        self._inqueue = _CountingQueue(self._ctx, self._counter)
        self._outqueue = _CountingQueue(self._ctx, self._counter)
        self._quick_put = self._inqueue.put
        self._quick_get = self._outqueue.get


def pid_of(x):
    return x, os.getpid()
