"""Locks, semaphores, conditions, events and barriers of the cluster.

A semaphore is a distributed Queue of tokens: acquire() takes one (waiting
on the scheduler, with its timeout), release() puts one back, get_value()
counts them. As in CPython any process may release, and a bounded one
(BoundedSemaphore, Lock) is a Queue whose maxsize is its bound, so that
releasing one too many raises ValueError atomically. A Lock is a bounded
semaphore of one; an RLock counts its recursion in the owning thread.
Condition and Barrier are CPython's algorithms on these; Event is a
distributed Event.

Each acquire and release is a round trip to the scheduler. A lock held by a
task whose worker is lost stays held, as a lock held by a process killed
with SIGKILL does in CPython.

Adapted from CPython's Lib/multiprocessing/synchronize.py (PSF License).
"""

import sys
import threading

from . import _dask, _session

__all__ = ['Lock', 'RLock', 'Semaphore', 'BoundedSemaphore', 'Condition',
           'Event', 'Barrier']

SEM_VALUE_MAX = 2 ** 31 - 1

# name -> (owner thread, count): the locks this process's threads hold.
_held = {}


class SemLock(object):
    '''A semaphore on a distributed Queue of tokens.'''

    def __init__(self, kind, value, maxvalue, *, ctx):
        if value < 0:
            raise ValueError("semaphore initial value must be >= 0")
        if maxvalue != SEM_VALUE_MAX and value > maxvalue:
            raise ValueError("semaphore initial value must be <= maxvalue")
        session = ctx._session()
        self._q = _dask.Queue(session, session.name(kind))
        self.maxvalue = maxvalue
        self._q.create(0 if maxvalue == SEM_VALUE_MAX else maxvalue)
        if value:
            self._q.put_many([1] * value)

    def __getstate__(self):
        return (self._q.name, self.maxvalue)

    def __setstate__(self, state):
        name, self.maxvalue = state
        self._q = _dask.Queue(_session.current(), name)

    @property
    def _semlock(self):
        return self

    @property
    def name(self):
        return self._q.name

    def acquire(self, block=True, timeout=None):
        try:
            self._q.get(_dask.timeout_of(block, timeout))
        except _dask.Timeout:
            return False
        return True

    def release(self):
        if self.maxvalue == SEM_VALUE_MAX:
            self._q.put(1)
            return
        for _ in range(_dask.NOWAIT_TRIES):
            try:
                self._q.put(1, _dask.NOWAIT)
                return
            except _dask.Timeout:
                # Spurious (_dask.NOWAIT_TRIES) unless the queue is full.
                if self._q.qsize() >= self.maxvalue:
                    break
        raise ValueError('semaphore or lock released too many times')

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *args):
        return self.release()

    def _get_value(self):
        return self._q.qsize()

    def _is_zero(self):
        return self._get_value() == 0


class Semaphore(SemLock):

    def __init__(self, value=1, *, ctx):
        SemLock.__init__(self, 'semaphore', value, SEM_VALUE_MAX, ctx=ctx)

    def get_value(self):
        return self._get_value()

    def __repr__(self):
        try:
            value = self._get_value()
        except Exception:
            value = 'unknown'
        return '<%s(value=%s)>' % (self.__class__.__name__, value)


class BoundedSemaphore(Semaphore):

    def __init__(self, value=1, *, ctx):
        SemLock.__init__(self, 'semaphore', value, value, ctx=ctx)

    def __repr__(self):
        try:
            value = self._get_value()
        except Exception:
            value = 'unknown'
        return '<%s(value=%s, maxvalue=%s)>' % \
            (self.__class__.__name__, value, self.maxvalue)


class Lock(SemLock):
    '''A bounded semaphore of one; any process may release it.'''

    def __init__(self, *, ctx):
        SemLock.__init__(self, 'lock', 1, 1, ctx=ctx)

    def acquire(self, block=True, timeout=None):
        got = SemLock.acquire(self, block, timeout)
        if got:
            _held[self._q.name] = (threading.get_ident(), 1)
        return got

    def release(self):
        _held.pop(self._q.name, None)
        SemLock.release(self)

    def _is_mine(self):
        owner = _held.get(self._q.name)
        return owner is not None and owner[0] == threading.get_ident()

    def _count(self):
        return 1 if self._is_mine() else 0

    def __repr__(self):
        if self._is_mine():
            name = 'MainThread' if threading.current_thread() is \
                threading.main_thread() else threading.current_thread().name
        else:
            try:
                name = 'None' if self._get_value() == 1 else \
                    'SomeOtherProcess'
            except Exception:
                name = 'unknown'
        return '<%s(owner=%s)>' % (self.__class__.__name__, name)


class RLock(Lock):
    '''A Lock its owning thread may acquire again; it is released when
    released as many times.'''

    def __init__(self, *, ctx):
        SemLock.__init__(self, 'rlock', 1, 1, ctx=ctx)

    def acquire(self, block=True, timeout=None):
        me = threading.get_ident()
        owner = _held.get(self._q.name)
        if owner is not None and owner[0] == me:
            _held[self._q.name] = (me, owner[1] + 1)
            return True
        if not SemLock.acquire(self, block, timeout):
            return False
        _held[self._q.name] = (me, 1)
        return True

    def release(self):
        me = threading.get_ident()
        owner = _held.get(self._q.name)
        if owner is None or owner[0] != me:
            raise AssertionError('attempt to release recursive lock not '
                                 'owned by thread')
        if owner[1] > 1:
            _held[self._q.name] = (me, owner[1] - 1)
            return
        del _held[self._q.name]
        SemLock.release(self)

    def _count(self):
        owner = _held.get(self._q.name)
        if owner is None or owner[0] != threading.get_ident():
            return 0
        return owner[1]

    def __repr__(self):
        count = self._count()
        if count:
            return '<%s(%s, %d)>' % (type(self).__name__,
                                     threading.current_thread().name, count)
        return '<%s(%s, %s)>' % (type(self).__name__, 'None', 0) \
            if self._get_value() == 1 else \
            '<%s(SomeOtherProcess, nonzero)>' % type(self).__name__


class Condition(object):
    '''CPython's Condition, on the cluster's locks and semaphores.'''

    def __init__(self, lock=None, *, ctx):
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
            num_waiters = (self._sleeping_count._get_value() -
                           self._woken_count._get_value())
        except Exception:
            num_waiters = 'unknown'
        return '<%s(%s, %s)>' % (self.__class__.__name__, self._lock,
                                 num_waiters)

    def wait(self, timeout=None):
        assert self._lock._is_mine(), \
            'must acquire() condition before using wait()'

        # indicate that this thread is going to sleep
        self._sleeping_count.release()

        # release lock
        count = self._lock._count()
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
        assert self._lock._is_mine(), 'lock is not owned'
        assert not self._wait_semaphore.acquire(False)

        # to take account of timeouts since last notify*() we subtract
        # woken_count from sleeping_count and rezero woken_count
        while self._woken_count.acquire(False):
            res = self._sleeping_count.acquire(False)
            assert res, ('notify: Bug in sleeping_count.acquire' +
                         '- res should not be False')

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
            import time
            endtime = time.monotonic() + timeout
        else:
            endtime = None
            waittime = None
        while not result:
            if endtime is not None:
                import time
                waittime = endtime - time.monotonic()
                if waittime <= 0:
                    break
            self.wait(waittime)
            result = predicate()
        return result


class Event(object):
    '''A distributed Event.'''

    def __init__(self, *, ctx):
        session = ctx._session()
        self._event = _dask.Event(session, session.name('event'))

    def __getstate__(self):
        return self._event.name

    def __setstate__(self, name):
        self._event = _dask.Event(_session.current(), name)

    def is_set(self):
        return self._event.is_set()

    def set(self):
        self._event.set()

    def clear(self):
        self._event.clear()

    def wait(self, timeout=None):
        if timeout is not None:
            timeout = max(timeout, 0)
        return self._event.wait(timeout)

    def __repr__(self):
        set_status = 'set' if self.is_set() else 'unset'
        return f"<{type(self).__qualname__} at {id(self):#x} {set_status}>"


class Barrier(threading.Barrier):
    '''CPython's Barrier: threading.Barrier's algorithm on a cluster
    Condition, with its state and count in two distributed Variables
    (read and written only under the condition's lock).'''

    def __init__(self, parties, action=None, timeout=None, *, ctx):
        session = ctx._session()
        name = session.name('barrier')
        cond = ctx.Condition()
        self.__setstate__((parties, action, timeout, cond, name))
        self._state = 0
        self._count = 0

    def __setstate__(self, state):
        (self._parties, self._action, self._timeout,
         self._cond, self._name) = state
        session = _session.current()
        self._vstate = _dask.Variable(session, self._name + '-state')
        self._vcount = _dask.Variable(session, self._name + '-count')

    def __getstate__(self):
        return (self._parties, self._action, self._timeout,
                self._cond, self._name)

    @property
    def _state(self):
        return self._vstate.get()

    @_state.setter
    def _state(self, value):
        self._vstate.set(value)

    @property
    def _count(self):
        return self._vcount.get()

    @_count.setter
    def _count(self, value):
        self._vcount.set(value)
