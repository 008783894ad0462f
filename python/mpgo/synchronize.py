"""Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and Barrier.

Adapted from CPython's Lib/multiprocessing/synchronize.py (PSF License).

Lock, RLock and the semaphores live in shared memory (mpgo/heap.py) with
the layouts of the Go engine's core/sync; Condition, Event and Barrier are
CPython's algorithms over those (and a shared counter, for Barrier), so
they have no layout of their own in Go. Uncontended acquire and release run in the C fast
path (mpgo._native._fast.SemLock) without entering Go; contended waits sleep
in Go, in slices of at most 100 ms so that Ctrl-C raises KeyboardInterrupt
at once. A Lock or RLock whose holder dies is taken over by the next
acquirer (logged as a warning through mpgo's logger) instead of hanging.

Unlike CPython's, every primitive pickles at any time, as a reference to its
shared memory: as a Process or Pool argument or over a Queue.
"""

__all__ = [
    'Lock', 'RLock', 'Semaphore', 'BoundedSemaphore', 'Condition', 'Event',
    'Barrier',
]

import sys
import threading
import time

from . import context
from . import heap
from . import process
from . import util
from ._engine import fast as _fast

RECURSIVE_MUTEX, SEMAPHORE, MUTEX = _fast.KIND_RLOCK, _fast.KIND_SEMAPHORE, _fast.KIND_LOCK
SEM_VALUE_MAX = _fast.SEM_VALUE_MAX


class SemLock(_fast.SemLock):
    """Base class of the semaphores and mutexes.

    CPython wraps _multiprocessing.SemLock in a Python object, so every
    `with lock:` runs two Python-level methods; here the primitive IS the C
    type, and acquire, release, __enter__ and __exit__ are C calls.
    _semlock is kept (it is the object itself) for code written against
    CPython's layout."""

    def __init__(self, kind, value, maxvalue, *, ctx):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        self._is_fork_ctx = context.reduction._created_in_fork_context(ctx)
        self._block = heap.allocate(_fast.LOCK_SIZE, 16)
        _fast.SemLock.__init__(self, self._block.memoryview(), kind, value, maxvalue, True)
        util.debug('created semlock at %s+%d' % (self._block.arena.ino, self._block.offset))

    @property
    def _semlock(self):
        return self

    def __getstate__(self):
        context.reduction._check_fork_context(self._is_fork_ctx)
        return (self._block, self.kind, self.maxvalue)

    def __setstate__(self, state):
        self._block, kind, maxvalue = state
        self._is_fork_ctx = False
        _fast.SemLock.__init__(self, self._block.memoryview(), kind, 0, maxvalue, False)


class Semaphore(SemLock):

    def __init__(self, value=1, *, ctx=None):
        SemLock.__init__(self, SEMAPHORE, value, SEM_VALUE_MAX, ctx=ctx)

    def get_value(self):
        return self._semlock._get_value()

    def __repr__(self):
        try:
            value = self._semlock._get_value()
        except Exception:
            value = 'unknown'
        return '<%s(value=%s)>' % (self.__class__.__name__, value)


class BoundedSemaphore(Semaphore):

    def __init__(self, value=1, *, ctx=None):
        SemLock.__init__(self, SEMAPHORE, value, value, ctx=ctx)

    def __repr__(self):
        try:
            value = self._semlock._get_value()
        except Exception:
            value = 'unknown'
        return '<%s(value=%s, maxvalue=%s)>' % \
               (self.__class__.__name__, value, self._semlock.maxvalue)


def _owner_name(sl):
    if sl._is_mine():
        name = process.current_process().name
        if threading.current_thread().name != 'MainThread':
            name += '|' + threading.current_thread().name
        return name
    if sl._get_value() == 1:
        return 'None'
    pid, _ = sl._owner()
    import os
    return 'SomeOtherThread' if pid == os.getpid() else 'SomeOtherProcess'


class Lock(SemLock):

    def __init__(self, *, ctx=None):
        SemLock.__init__(self, MUTEX, 1, 1, ctx=ctx)

    def __repr__(self):
        try:
            name = _owner_name(self._semlock)
        except Exception:
            name = 'unknown'
        return '<%s(owner=%s)>' % (self.__class__.__name__, name)


class RLock(SemLock):

    def __init__(self, *, ctx=None):
        SemLock.__init__(self, RECURSIVE_MUTEX, 1, 1, ctx=ctx)

    def __repr__(self):
        try:
            name = _owner_name(self._semlock)
            if name == 'None':
                count = 0
            elif self._semlock._is_mine():
                count = self._semlock._count()
            else:
                count = 'nonzero'
        except Exception:
            name, count = 'unknown', 'unknown'
        return '<%s(%s, %s)>' % (self.__class__.__name__, name, count)


class Condition(object):

    def __init__(self, lock=None, *, ctx=None):
        ctx = ctx or context._default_context.get_context()
        self._lock = lock or ctx.RLock()
        self._sleeping_count = ctx.Semaphore(0)
        self._woken_count = ctx.Semaphore(0)
        self._wait_semaphore = ctx.Semaphore(0)
        self._make_methods()

    def __getstate__(self):
        return (self._lock, self._sleeping_count,
                self._woken_count, self._wait_semaphore)

    def __setstate__(self, state):
        (self._lock, self._sleeping_count,
         self._woken_count, self._wait_semaphore) = state
        self._make_methods()

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def _make_methods(self):
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __repr__(self):
        try:
            num_waiters = (self._sleeping_count._semlock._get_value() -
                           self._woken_count._semlock._get_value())
        except Exception:
            num_waiters = 'unknown'
        return '<%s(%s, %s)>' % (self.__class__.__name__, self._lock, num_waiters)

    def wait(self, timeout=None):
        assert self._lock._semlock._is_mine(), \
               'must acquire() condition before using wait()'

        # indicate that this thread is going to sleep
        self._sleeping_count.release()

        # release lock
        count = self._lock._semlock._count()
        for i in range(count):
            self._lock.release()

        try:
            # wait for notification or timeout
            return self._wait_semaphore.acquire(True, timeout)
        finally:
            # indicate that this thread has woken
            self._woken_count.release()

            # reacquire lock
            for i in range(count):
                self._lock.acquire()

    def notify(self, n=1):
        assert self._lock._semlock._is_mine(), 'lock is not owned'
        assert not self._wait_semaphore.acquire(
            False), ('notify: Should not have been able to acquire '
                     + '_wait_semaphore')

        # to take account of timeouts since last notify*() we subtract
        # woken_count from sleeping_count and rezero woken_count
        while self._woken_count.acquire(False):
            res = self._sleeping_count.acquire(False)
            assert res, ('notify: Bug in sleeping_count.acquire'
                         + '- res should not be False')

        sleepers = 0
        while sleepers < n and self._sleeping_count.acquire(False):
            self._wait_semaphore.release()        # wake up one sleeper
            sleepers += 1

        if sleepers:
            for i in range(sleepers):
                self._woken_count.acquire()       # wait for a sleeper to wake

            # rezero wait_semaphore in case some timeouts just happened
            while self._wait_semaphore.acquire(False):
                pass

    def notify_all(self):
        self.notify(n=sys.maxsize)

    def wait_for(self, predicate, timeout=None):
        result = predicate()
        if result:
            return result
        if timeout is not None:
            endtime = time.monotonic() + timeout
        else:
            endtime = None
            waittime = None
        while not result:
            if endtime is not None:
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result


class Event(object):

    def __init__(self, *, ctx=None):
        ctx = ctx or context._default_context.get_context()
        self._cond = ctx.Condition(ctx.Lock())
        self._flag = ctx.Semaphore(0)

    def is_set(self):
        with self._cond:
            if self._flag.acquire(False):
                self._flag.release()
                return True
            return False

    def set(self):
        with self._cond:
            self._flag.acquire(False)
            self._flag.release()
            self._cond.notify_all()

    def clear(self):
        with self._cond:
            self._flag.acquire(False)

    def wait(self, timeout=None):
        with self._cond:
            if self._flag.acquire(False):
                self._flag.release()
            else:
                self._cond.wait(timeout)

            if self._flag.acquire(False):
                self._flag.release()
                return True
            return False

    def __repr__(self) -> str:
        set_status = 'set' if self.is_set() else 'unset'
        return f"<{type(self).__qualname__} at {id(self):#x} {set_status}>"


class Barrier(threading.Barrier):

    def __init__(self, parties, action=None, timeout=None, *, ctx=None):
        import struct
        ctx = ctx or context._default_context.get_context()
        wrapper = heap.BufferWrapper(struct.calcsize('i') * 2)
        cond = ctx.Condition()
        self.__setstate__((parties, action, timeout, cond, wrapper))
        self._state = 0
        self._count = 0

    def __setstate__(self, state):
        (self._parties, self._action, self._timeout,
         self._cond, self._wrapper) = state
        self._array = self._wrapper.create_memoryview().cast('i')

    def __getstate__(self):
        return (self._parties, self._action, self._timeout,
                self._cond, self._wrapper)

    @property
    def _state(self):
        return self._array[0]

    @_state.setter
    def _state(self, value):
        self._array[0] = value

    @property
    def _count(self):
        return self._array[1]

    @_count.setter
    def _count(self, value):
        self._array[1] = value
