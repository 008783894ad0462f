"""Pool and ThreadPool: a pool of workers running tasks.

The public API is CPython's. A process Pool runs on the engine's pool
(core/pool, driven in its External mode by mpgo._engine_pool): the Go
side starts the worker processes (fresh interpreters, spawned with this
process's spawn data), supervises them and replaces them; tasks go to the
workers on one shared-memory queue and results come back on another, put
and read through the C fast path. Each worker claims the task it takes
atomically with the take, so the engine always knows which task a worker
holds. That buys what CPython cannot do:

* A worker that dies (SIGKILL, os._exit, a segfault, a task raising
  SystemExit) fails the one task it was running with WorkerLostError, which
  names the worker's pid and how it ended. The worker is replaced and every
  other task completes. (CPython waits for such a task for ever.)
* A task that cannot be pickled (or unpickled in the worker), and a result
  that cannot be pickled (or unpickled in the parent), fail that task only.
* An initializer that raises breaks the pool instead of respawning workers
  for ever: every task not yet done, and every task submitted later, fails
  with InitializerError, whose __cause__ is the initializer's exception
  (with the worker's traceback as its __cause__). Workers that die before
  they are ready (exiting, or three in a row killed by a signal, for
  example because the main module cannot be imported in a child) break the
  pool the same way, with WorkerLostError.
* mpgo objects (Queue, Value, Lock, ...) can be task arguments: they pickle
  at any time.
* A worker flushes sys.stdout and sys.stderr after each task, before it
  reports the result, so what tasks print is not lost when the pool is
  terminated (as `with Pool() as p:` does on exit) with output to a pipe.
* terminate() kills the workers (SIGKILL) and returns once they are reaped.
  Workers die with the parent, even when it is SIGKILLed.

Tasks go to whichever worker is free first (one shared queue, as in
CPython); chunk sizes are CPython's. apply_async() holds tasks back for a
moment to put them in batches (see _engine_pool._CorePool.apply).

As in CPython, callbacks run in the pool's result-handler thread, and an
AsyncResult's callback has returned before wait()/get() return. An exception
raised by a callback is printed instead of killing the result handler.

A process pool has two threads (daemonic; neither holds a reference to the
Pool, so that an unreferenced pool is terminated by its finalizer): the
task handler, which puts the tasks of imap() and imap_unordered() (their
iterables may be lazy) and the tasks apply_async() held back, and the
result handler, which delivers results, losses and failures.

A ThreadPool keeps a scheduler in Python (mpgo._thread_pool): each thread
has a channel of its own (a queue.SimpleQueue in, a queue shared by the
pool's threads out), and the pool's worker handler, task handler and result
handler threads hand tasks to idle threads.

This module holds the public API and the results in CPython's shape
(ApplyResult, MapResult, IMapIterator, ...); mpgo._engine_pool the engine
scheduler under a process Pool, mpgo._thread_pool ThreadPool, and
mpgo._classic_pool CPython's design, for pools that reach into it.

Adapted from CPython's Lib/multiprocessing/pool.py (PSF License).
"""

__all__ = ['Pool', 'ThreadPool']

#
# Imports
#

import collections
import itertools
import os
import signal
import sys
import threading
import types
import warnings

# If threading is available then ThreadPool should be provided.  Therefore
# we avoid top-level imports which are liable to fail on some systems.
from . import util
from . import get_context
from . import process as _process
from . import _classic_pool
from .context import ProcessError, TimeoutError

#
# Constants representing the state of a pool
#

INIT = "INIT"
RUN = "RUN"
CLOSE = "CLOSE"
TERMINATE = "TERMINATE"

#
# Miscellaneous
#

job_counter = itertools.count()


def mapstar(args):
    return list(map(*args))


def starmapstar(args):
    return list(itertools.starmap(args[0], args[1]))

#
# Hack to embed stringification of remote traceback in local traceback
#


class RemoteTraceback(Exception):
    def __init__(self, tb):
        self.tb = tb

    def __str__(self):
        return self.tb


class ExceptionWithTraceback:
    def __init__(self, exc, tb):
        import traceback   # only when a task fails: it costs milliseconds
        tb = traceback.format_exception(type(exc), exc, tb)
        tb = ''.join(tb)
        self.exc = exc
        self.tb = '\n"""\n%s"""' % tb

    def __reduce__(self):
        return rebuild_exc, (self.exc, self.tb)


def rebuild_exc(exc, tb):
    exc.__cause__ = RemoteTraceback(tb)
    return exc

#
# Exceptions
#


class MaybeEncodingError(Exception):
    """Wraps possible unpickleable errors, so they can be
    safely sent through the socket."""

    def __init__(self, exc, value):
        self.exc = repr(exc)
        self.value = repr(value)
        super(MaybeEncodingError, self).__init__(self.exc, self.value)

    def __str__(self):
        return "Error sending result: '%s'. Reason: '%s'" % (self.value,
                                                             self.exc)

    def __repr__(self):
        return "<%s: %s>" % (self.__class__.__name__, self)


class WorkerLostError(ProcessError):
    """A pool worker ended while it was running a task (or kept ending
    before it could take one). `pid` is the worker's pid (None for a
    ThreadPool thread) and `exitcode` its exit code, -N if it was killed by
    signal N (None if unknown)."""

    def __init__(self, message, pid=None, exitcode=None):
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode

    def __reduce__(self):
        return type(self), (self.args[0], self.pid, self.exitcode)


class InitializerError(ProcessError):
    """The pool's initializer raised in a worker; the pool is broken. The
    initializer's exception is the __cause__."""


class _InitializerFailed(SystemExit):
    '''Ends a worker whose initializer raised (exit code 1, no traceback
    printed: the parent reports the failure).'''


def _helper_reraises_exception(ex):
    'Pickle-able helper function for use by _guarded_task_generation.'
    raise ex


def _deliver(cache, job, i, obj):
    '''Set the result of task i of job, if the job is still waited for.'''
    try:
        result = cache[job]
    except KeyError:
        return
    try:
        result._set(i, obj)
    except Exception:
        # A callback raised: report it, and keep handling results.
        sys.stderr.write('Exception in a callback of %r:\n' % (result,))
        import traceback
        traceback.print_exc()


def _map_fill(value, chunksize, items):
    '''The engine's MapResult fill (bound on first use: only process pools,
    which have loaded the engine, use it).'''
    global _map_fill
    from . import _engine
    _map_fill = _engine.fast.map_fill
    return _map_fill(value, chunksize, items)


class _PoolCache(dict):
    """
    Class that implements a cache for the Pool class that will notify
    the pool management threads every time the cache is emptied. The
    notification is done by the use of a queue that is provided when
    instantiating the cache.
    """
    def __init__(self, /, *args, notifier=None, **kwds):
        self.notifier = notifier
        super().__init__(*args, **kwds)

    def __delitem__(self, item):
        super().__delitem__(item)

        # Notify that the cache is empty. This is important because the
        # pool keeps maintaining workers until the cache gets drained. This
        # eliminates a race condition in which a task is finished after the
        # the pool's _handle_workers method has enter another iteration of the
        # loop. In this situation, the only event that can wake up the pool
        # is the cache to be emptied (no more tasks available).
        if not self:
            self.notifier.put(None)


def _describe_exit(exitcode):
    if exitcode is None:
        return 'ended'
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = 'signal %d' % -exitcode
        return 'was killed by signal %d (%s)' % (-exitcode, name)
    return 'exited with code %d' % exitcode


class _Shown(str):
    '''A string whose repr is itself (for MaybeEncodingError's value).'''

    def __repr__(self):
        return str(self)


def _name_of(func):
    return getattr(func, '__qualname__', None) or repr(func)


class Pool(_classic_pool.QueuePool):
    '''
    Class which supports an async version of applying functions to arguments.
    '''
    _wrap_exception = True
    # A process pool runs on the engine's pool (_engine_pool._CorePool). A
    # pool that reaches into CPython's machinery runs that instead
    # (_classic_pool, see _runs_queues): its _core stays None, and the
    # methods below hand over to _classic_pool.QueuePool's, CPython's.
    # ThreadPool (_thread_pool) takes those methods from QueuePool too.
    _core = None
    _classic = False

    @property
    def _pool(self):
        core = self.__dict__.get('_core')
        if core is not None:
            return core.workers()
        return self.__dict__.setdefault('_pool_list', [])

    @_pool.setter
    def _pool(self, value):
        self.__dict__['_pool_list'] = value

    @staticmethod
    def Process(ctx, *args, **kwds):
        return ctx.Process(*args, **kwds)

    def __init__(self, processes=None, initializer=None, initargs=(),
                 maxtasksperchild=None, context=None):
        # Attributes initialized early to make sure that they exist in
        # __del__() if __init__() raises an exception
        self._pool = []
        self._state = INIT

        self._ctx = context or get_context()
        if self._runs_queues():
            self._classic = True
            self._init_queue_pool(processes, initializer, initargs,
                                  maxtasksperchild)
            return
        # No worker handler to notify when the cache empties: a plain dict
        # spares every result a Python-level del.
        self._cache = {}
        self._maxtasksperchild = maxtasksperchild
        self._initializer = initializer
        self._initargs = initargs
        self._processes = _check_arguments(processes, initializer,
                                           maxtasksperchild)
        self._core = _engine_pool._CorePool(
            self._ctx, self._processes, initializer, initargs,
            maxtasksperchild, self._wrap_exception, self._cache)
        self._terminate = util.Finalize(self, self._core.terminate,
                                        exitpriority=15)
        self._state = RUN

    def _runs_queues(self):
        '''Whether this pool runs CPython's machinery (_classic_pool):
        its class, below mpgo's, defines part of it (joblib's PicklingPool
        defines _setup_queues), or its context's Process is not mpgo's.'''
        ctx_process = getattr(self._ctx, 'Process', None)
        foreign = not (isinstance(ctx_process, type) and
                       issubclass(ctx_process, _process.BaseProcess))
        return foreign or bool(_hook_overrides(type(self)))

    # Copy globals as function locals to make sure that they are available
    # during Python shutdown when the Pool is destroyed.
    def __del__(self, _warn=warnings.warn, RUN=RUN):
        # getattr: a subclass's __init__ may fail before calling ours.
        if getattr(self, '_state', None) == RUN:
            _warn(f"unclosed running multiprocessing pool {self!r}",
                  ResourceWarning, source=self)
            if getattr(self, '_change_notifier', None) is not None:
                self._change_notifier.put(None)

    def __repr__(self):
        cls = self.__class__
        return (f'<{cls.__module__}.{cls.__qualname__} '
                f'state={self._state} '
                f'pool_size={len(self._pool)}>')

    def _repopulate_pool(self):
        '''Bring the number of workers up to the pool's size (the engine
        does it by itself for a process pool).'''
        if self._classic:
            return self._repopulate_queue_pool()

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    def apply(self, func, args=(), kwds={}):
        '''
        Equivalent of `func(*args, **kwds)`.
        Pool must be running.
        '''
        return self.apply_async(func, args, kwds).get()

    def map(self, func, iterable, chunksize=None):
        '''
        Apply `func` to each element in `iterable`, collecting the results
        in a list that is returned.
        '''
        return self._map_async(func, iterable, mapstar, chunksize).get()

    def starmap(self, func, iterable, chunksize=None):
        '''
        Like `map()` method but the elements of the `iterable` are expected to
        be iterables as well and will be unpacked as arguments. Hence
        `func` and (a, b) becomes func(a, b).
        '''
        return self._map_async(func, iterable, starmapstar, chunksize).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None,
                      error_callback=None):
        '''
        Asynchronous version of `starmap()` method.
        '''
        return self._map_async(func, iterable, starmapstar, chunksize,
                               callback, error_callback)

    def _feed_core(self, result, func, iterable, chunksize):
        if chunksize < 1:
            raise ValueError(
                "Chunksize must be 1+, not {0!r}".format(chunksize))
        eng = _engine_pool
        if type(iterable) in (range, list, tuple):
            # Its chunks pickled and put in C, in blocks (CPython's task
            # handler does not wait for results before putting more either).
            self._core.feed_sequence(
                result._job, eng._CALL if chunksize == 1 else eng._MAP, func,
                iterable, chunksize, result._set_length)
            if chunksize == 1:
                return result
            return (item for chunk in result for item in chunk)
        if chunksize == 1:
            self._core.feed(result._job, eng._CALL, func, iterable,
                            result._set_length)
            return result
        chunks = (x for _, x in Pool._get_tasks(func, iterable, chunksize))
        self._core.feed(result._job, eng._MAP, func, chunks, result._set_length)
        return (item for chunk in result for item in chunk)

    def imap(self, func, iterable, chunksize=1):
        '''
        Equivalent of `map()` -- can be MUCH slower than `Pool.map()`.
        '''
        if self._classic:
            return _classic_pool.QueuePool.imap(self, func, iterable, chunksize)
        self._check_running()
        return self._feed_core(IMapIterator(self), func, iterable, chunksize)

    def imap_unordered(self, func, iterable, chunksize=1):
        '''
        Like `imap()` method but ordering of results is arbitrary.
        '''
        if self._classic:
            return _classic_pool.QueuePool.imap_unordered(
                self, func, iterable, chunksize)
        self._check_running()
        return self._feed_core(IMapUnorderedIterator(self), func, iterable,
                               chunksize)

    def apply_async(self, func, args=(), kwds={}, callback=None,
                    error_callback=None):
        '''
        Asynchronous version of `apply()` method.
        '''
        if self._state != RUN:
            raise ValueError("Pool not running")
        result = ApplyResult(self, callback, error_callback)
        if self._core is not None:
            self._core.apply(result._job, func, args, kwds)
        else:
            self._taskqueue.put(([(result._job, 0, func, args, kwds)], None))
        return result

    def map_async(self, func, iterable, chunksize=None, callback=None,
                  error_callback=None):
        '''
        Asynchronous version of `map()` method.
        '''
        return self._map_async(func, iterable, mapstar, chunksize, callback,
                               error_callback)

    def _map_async(self, func, iterable, mapper, chunksize=None, callback=None,
                   error_callback=None):
        '''
        Helper function to implement map, starmap and their async counterparts.
        '''
        if self._classic:
            return _classic_pool.QueuePool._map_async(
                self, func, iterable, mapper, chunksize, callback,
                error_callback)
        self._check_running()
        if not hasattr(iterable, '__len__'):
            iterable = list(iterable)
        chunksize = _map_chunksize(iterable, chunksize, self._processes)
        result = MapResult(self, chunksize, len(iterable), callback,
                           error_callback=error_callback)
        if chunksize > 0:
            self._core.map(result._job,
                           _engine_pool._MAP if mapper is mapstar
                           else _engine_pool._STARMAP,
                           func, iterable, chunksize)
        return result

    @staticmethod
    def _get_tasks(func, it, size):
        it = iter(it)
        while 1:
            x = tuple(itertools.islice(it, size))
            if not x:
                return
            yield (func, x)

    def __reduce__(self):
        raise NotImplementedError(
              'pool objects cannot be passed between processes or pickled'
              )

    def close(self):
        util.debug('closing pool')
        if self._classic:
            return _classic_pool.QueuePool.close(self)
        if self._state == RUN:
            self._state = CLOSE
            self._core.close()

    def terminate(self):
        util.debug('terminating pool')
        self._state = TERMINATE
        self._terminate()

    def join(self):
        util.debug('joining pool')
        if self._classic:
            return _classic_pool.QueuePool.join(self)
        if self._state == RUN:
            raise ValueError("Pool is still running")
        elif self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        self._core.join()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.terminate()


def _check_arguments(processes, initializer, maxtasksperchild):
    '''Pool()'s checks, as CPython's; returns the pool's size.'''
    if processes is None:
        processes = os.cpu_count() or 1
    if processes < 1:
        raise ValueError("Number of processes must be at least 1")
    if maxtasksperchild is not None:
        if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
            raise ValueError("maxtasksperchild must be a positive int or None")

    if initializer is not None and not callable(initializer):
        raise TypeError('initializer must be a callable')
    return processes


def _map_chunksize(iterable, chunksize, processes):
    '''map()'s chunk size, CPython's: 0 for an empty iterable.'''
    if chunksize is None:
        # CPython divides by len(self._pool), which is the pool's size
        # except for the moment a worker is being replaced.
        chunksize, extra = divmod(len(iterable), processes * 4)
        if extra:
            chunksize += 1
    if len(iterable) == 0:
        chunksize = 0
    return chunksize


def _hook_overrides(cls):
    '''The names of CPython's Pool machinery that cls, below mpgo's own
    classes, defines.'''
    return [name for name in _classic_pool.HOOKS
            if _defined_outside_mpgo(cls, name)]


def _defined_outside_mpgo(cls, name):
    '''Whether a class of cls's MRO before mpgo's own classes defines name.'''
    for klass in cls.__mro__:
        if klass.__module__ in (__name__, _classic_pool.__name__):
            return False
        if name in vars(klass):
            return True
    return False


#
# Class whose instances are returned by `Pool.apply_async()`
#


# MapResult makes lists of this many items or more when results come.
_LAZY_RESULT = 1 << 16

_waiters_guard = threading.Lock()


class _EventView(object):
    '''ApplyResult._event: the Event-like face of a result's ready flag.'''

    __slots__ = ('_result',)

    def __init__(self, result):
        self._result = result

    def is_set(self):
        return self._result._ready

    def set(self):
        self._result._mark_ready()

    def wait(self, timeout=None):
        return self._result._wait_ready(timeout)


class ApplyResult(object):
    '''The result of apply_async().

    Ready is a plain flag; a lock (held until ready) is made only for a
    thread that has to wait, which most results never need: making one for
    every result cost more than the rest of apply_async. The two sides
    publish in opposite orders (the setter: flag, then read the lock; a
    waiter: the lock, then read the flag), so under the GIL one of them
    always sees the other's write, and no waiter is left behind.'''

    _waiters = None     # the lock waiters wait on, once one has to

    _callback = _error_callback = None

    def __init__(self, pool, callback, error_callback):
        self._pool = pool
        self._ready = False
        # A process pool holds tasks back to put them in batches: waiting
        # for a result puts them first.
        self._core = pool._core
        self._job = job = next(job_counter)
        self._cache = cache = pool._cache
        if callback is not None or error_callback is not None:
            self._callback = callback
            self._error_callback = error_callback
        cache[job] = self

    @property
    def _event(self):
        return _EventView(self)

    def ready(self):
        return self._ready

    def successful(self):
        if not self.ready():
            raise ValueError("{0!r} not ready".format(self))
        return self._success

    def wait(self, timeout=None):
        if self._ready:
            return
        if self._core is not None:
            self._core.flush()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout):
        if self._ready:
            return True
        with _waiters_guard:    # every waiter gets the same lock
            lock = self._waiters
            if lock is None:
                lock = threading.Lock()
                lock.acquire()
                self._waiters = lock
        if not self._ready:
            if timeout is None:
                got = lock.acquire()
            else:
                got = lock.acquire(True, max(timeout, 0))
            if got:
                lock.release()    # let the other waiters through
        return self._ready

    def _mark_ready(self):
        if not self._ready:
            self._ready = True
            lock = self._waiters
            if lock is not None:
                lock.release()

    def get(self, timeout=None):
        self.wait(timeout)
        if not self._ready:
            raise TimeoutError
        if self._success:
            return self._value
        else:
            raise self._value

    def _set_many(self, items):
        for i, obj in items:
            self._set(i, obj)

    def _set(self, i, obj):
        self._success, self._value = obj
        if self._callback is None and self._error_callback is None:
            self._mark_ready()
            del self._cache[self._job]
            self._pool = None
            return
        try:
            if self._callback and self._success:
                self._callback(self._value)
            if self._error_callback and not self._success:
                self._error_callback(self._value)
        finally:
            # The callback has returned (or raised) before waiters wake.
            self._mark_ready()
            del self._cache[self._job]
            self._pool = None

    __class_getitem__ = classmethod(types.GenericAlias)


AsyncResult = ApplyResult       # create alias -- see #17805

#
# Class whose instances are returned by `Pool.map_async()`
#


class MapResult(ApplyResult):

    def __init__(self, pool, chunksize, length, callback, error_callback):
        ApplyResult.__init__(self, pool, callback,
                             error_callback=error_callback)
        self._success = True
        # A long list is made when the first result comes: making it (and
        # faulting its pages in) would hold up the tasks it waits for.
        self._length = length
        self._value = [None] * length if length < _LAZY_RESULT else None
        self._chunksize = chunksize
        if chunksize <= 0:
            self._number_left = 0
            self._mark_ready()
            del self._cache[self._job]
        else:
            self._number_left = length//chunksize + bool(length % chunksize)

    def _set_many(self, items):
        if self._success and len(items) < self._number_left:
            # None of them is the last: the successful ones at the head go
            # straight into place.
            if self._value is None:
                self._value = [None] * self._length
            n = _map_fill(self._value, self._chunksize, items)
            self._number_left -= n
            if n == len(items):
                return
            items = items[n:]
        for i, obj in items:
            self._set(i, obj)

    def _placed(self, n):
        # pool_collect (pybind/cext/pool_collect.c) put n results in place.
        self._number_left -= n

    def _set(self, i, success_result):
        self._number_left -= 1
        success, result = success_result
        if success and self._success:
            if self._value is None:
                self._value = [None] * self._length
            self._value[i*self._chunksize:(i+1)*self._chunksize] = result
            if self._number_left == 0:
                try:
                    if self._callback:
                        self._callback(self._value)
                finally:
                    del self._cache[self._job]
                    self._mark_ready()
                    self._pool = None
        else:
            if not success and self._success:
                # only store first exception
                self._success = False
                self._value = result
            if self._number_left == 0:
                # only consider the result ready once all jobs are done
                try:
                    if self._error_callback:
                        self._error_callback(self._value)
                finally:
                    del self._cache[self._job]
                    self._mark_ready()
                    self._pool = None

#
# Class whose instances are returned by `Pool.imap()`
#


class IMapIterator(object):

    def __init__(self, pool):
        self._pool = pool
        self._cond = threading.Condition(threading.Lock())
        self._job = next(job_counter)
        self._cache = pool._cache
        self._items = collections.deque()
        self._index = 0
        self._length = None
        self._unsorted = {}
        self._cache[self._job] = self

    def __iter__(self):
        return self

    def next(self, timeout=None):
        with self._cond:
            try:
                item = self._items.popleft()
            except IndexError:
                if self._index == self._length:
                    self._pool = None
                    raise StopIteration from None
                self._cond.wait(timeout)
                try:
                    item = self._items.popleft()
                except IndexError:
                    if self._index == self._length:
                        self._pool = None
                        raise StopIteration from None
                    raise TimeoutError from None

        success, value = item
        if success:
            return value
        raise value

    __next__ = next                    # XXX

    def _set_many(self, items):
        # One wake-up of the consumer for all of them: one per item hands
        # the GIL back and forth for every chunk.
        with self._cond:
            ready = len(self._items)
            for i, obj in items:
                self._add(i, obj)
            # Only for something to take: a waiting next() waits once.
            if len(self._items) > ready:
                self._cond.notify()

    def _set(self, i, obj):
        self._set_many(((i, obj),))

    def _add(self, i, obj):
        # with self._cond held
        if self._index == i:
            self._items.append(obj)
            self._index += 1
            while self._index in self._unsorted:
                obj = self._unsorted.pop(self._index)
                self._items.append(obj)
                self._index += 1
        else:
            self._unsorted[i] = obj

        if self._index == self._length:
            del self._cache[self._job]
            self._pool = None

    def _set_length(self, length):
        with self._cond:
            self._length = length
            if self._index == self._length:
                self._cond.notify()
                del self._cache[self._job]
                self._pool = None

#
# Class whose instances are returned by `Pool.imap_unordered()`
#


class IMapUnorderedIterator(IMapIterator):

    def _add(self, i, obj):
        # with self._cond held
        self._items.append(obj)
        self._index += 1
        if self._index == self._length:
            del self._cache[self._job]
            self._pool = None

#
#
#


# The engine scheduler, imported last: it takes names from this module (and
# a worker process may import it first, for its target).
from . import _engine_pool  # noqa: E402


def __getattr__(name):
    # ThreadPool and its worker, on first use: a process pool does not need
    # them, and mpgo._thread_pool takes names from this module.
    if name in ('ThreadPool', 'worker'):
        from . import _thread_pool
        return getattr(_thread_pool, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
