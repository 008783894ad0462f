"""Pool on a Dask cluster: CPython's API, its work in Dask tasks.

Work is cut into units as CPython cuts it into tasks: a chunk of map() or
starmap() (CPython's chunk sizes, for `processes` workers), a chunk of
imap() or imap_unordered(), one apply_async() call. Each unit is pickled
in the caller (mpgo.cluster._pickle), so that an unpicklable or local-only
argument raises in map()/apply_async() itself, and the function once per
call. Units go to the cluster in Dask tasks, each a batch of units run one
after the other by mpgo.cluster._runtime.run_batch:

* map_async() submits its chunks at once, one task each, as long as there
  are at most 4 * processes of them (always, with CPython's chunk sizes);
  more chunks (a small explicit chunksize) are grouped into 4 * processes
  tasks.
* apply_async() and imap() units wait in a queue; the batcher thread takes
  what is there every millisecond and submits it as one task per unit, or,
  when there are more than 4 * processes units, as 4 * processes tasks. A
  loop of apply_async() calls thus costs a few Dask tasks, not one per
  call, while calls made one at a time still start at once. A grouped
  unit's result comes back with its task's.

Dask, not `processes`, decides how many run at a time: the cluster's
worker threads. `processes` (the cluster's thread count by default) sizes
the chunks and batches. A task's results come back pickled one per unit: a
result that cannot be pickled fails its unit alone (MaybeEncodingError),
and an exception comes back with its traceback as __cause__
(RemoteTraceback), as from a local pool. A task whose worker is lost is
run again as Dask's retry policy says; when Dask gives up (KilledWorker)
its units fail with WorkerLostError. A lost scheduler fails every unit not
yet done with SchedulerLostError.

The initializer runs once per worker process and pool, before the first
batch that worker runs; the module globals it sets are given to the
functions of later batches (functions of __main__ travel by value, each
with globals of its own). maxtasksperchild is accepted and has no effect:
Dask's workers are not the pool's to restart. terminate() cancels the
pool's tasks (a running one is stopped at its next Python instruction) and
fails every result not yet ready with ValueError('Pool not running').

Callbacks run in the thread that delivers results (Dask's callback
thread), before get() and wait() return, as in CPython.

Adapted from CPython's Lib/multiprocessing/pool.py (PSF License).
"""

import collections
import itertools
import pickle
import threading
import time
import types
import uuid
import warnings

from .. import pool as _local_pool
from ..context import TimeoutError
from . import _output, _pickle

__all__ = ['Pool', 'ApplyResult', 'AsyncResult', 'MapResult',
           'IMapIterator', 'IMapUnorderedIterator']

WorkerLostError = _local_pool.WorkerLostError
InitializerError = _local_pool.InitializerError

INIT = "INIT"
RUN = "RUN"
CLOSE = "CLOSE"
TERMINATE = "TERMINATE"

job_counter = itertools.count()

_RUN_BATCH = ('mpgo.cluster._runtime', 'run_batch')

# How long the batcher lets apply_async()/imap() units gather.
_GATHER = 0.001


def mapstar(args):
    return list(map(*args))


def starmapstar(args):
    return list(itertools.starmap(args[0], args[1]))


class _Core(object):
    '''What the pool's threads share; it holds no reference to the Pool, so
    that an unreferenced pool is terminated by Pool.__del__.'''

    def __init__(self, session, pool_id, processes, init):
        self.session = session
        self.pool_id = pool_id
        self.processes = processes
        self.init = init              # pickled (initializer, initargs)
        self.cache = {}               # job -> result object
        self.futures = {}             # Dask key -> future
        self.pending = collections.deque()
        self.cond = threading.Condition(threading.Lock())
        self.state = RUN
        self.broken = None
        self.feeders = 0
        self.batcher = None
        self.funcs = {}               # id(func) -> (func, pickle)

    # -- submitting

    def dump_func(self, func):
        '''The pickle of func (pickled once while the pool keeps it).'''
        entry = self.funcs.get(id(func))
        if entry is not None and entry[0] is func:
            return entry[1]
        data = _pickle.dumps(func)
        if len(self.funcs) >= 64:
            self.funcs.clear()
        self.funcs[id(func)] = (func, data)
        return data

    def submit_now(self, units):
        '''Submit units as one task each, at most 4 * processes tasks.'''
        limit = 4 * self.processes
        if len(units) <= limit:
            groups = [[u] for u in units]
        else:
            per, extra = divmod(len(units), limit)
            groups, i = [], 0
            for k in range(limit):
                n = per + (k < extra)
                groups.append(units[i:i + n])
                i += n
        for group in groups:
            self._submit(group)

    def queue(self, units):
        '''Let the batcher submit units.'''
        with self.cond:
            if self.state == TERMINATE or self.broken is not None:
                failed = True
            else:
                failed = False
                self.pending.extend(units)
                if self.batcher is None:
                    self.batcher = threading.Thread(
                        target=self._batch, name='mpgo-pool-batcher',
                        daemon=True)
                    self.batcher.start()
                self.cond.notify_all()
        if failed:
            self.fail_units(units, self.stopped_error())

    def _batch(self):
        while True:
            with self.cond:
                while not self.pending:
                    if self.state != RUN and not self.feeders:
                        self.batcher = None
                        self.cond.notify_all()
                        return
                    self.cond.wait(1.0)
            time.sleep(_GATHER)
            with self.cond:
                units = list(self.pending)
                self.pending.clear()
            if not units:
                continue
            k = min(len(units), 4 * self.processes)
            per, extra = divmod(len(units), k)
            i = 0
            for b in range(k):
                n = per + (b < extra)
                self._submit(units[i:i + n])
                i += n

    def _submit(self, units):
        '''Submit units (job, index, kind, func pickle, data pickle) as one
        Dask task.'''
        session = self.session
        key = '%spool-%s-%s' % (session.prefix, self.pool_id,
                                uuid.uuid4().hex[:16])
        info = {'run': session.prefix, 'topic': session.topic,
                'src': _output.new_source()}
        payload = pickle.dumps((self.pool_id, self.init, units),
                               protocol=pickle.HIGHEST_PROTOCOL)
        with self.cond:
            if self.state == TERMINATE or self.broken is not None:
                stopped = self.stopped_error()
            else:
                stopped = None
                try:
                    session.check()
                    future = session.client.submit(
                        _pickle.entry, _RUN_BATCH, info, payload, key=key,
                        pure=False)
                except Exception as e:
                    stopped = e
                else:
                    self.futures[key] = future
        if stopped is not None:
            self.fail_units(units, stopped)
            return
        session.watch(future,
                      lambda f, units=units: self._done(key, units, f))

    # -- results

    def _done(self, key, units, future):
        # In Dask's callback thread.
        try:
            self._deliver(units, future)
        finally:
            with self.cond:
                self.futures.pop(key, None)
                self.cond.notify_all()

    def _deliver(self, units, future):
        session = self.session
        status = future.status
        if status == 'cancelled':
            if self.state == TERMINATE:
                return
            reason = getattr(future._state, 'exception', None)
            self.fail_units(units, session.lose(reason) if
                            session.lost is not None or
                            'connection-lost' in str(reason) else
                            ValueError('Pool not running'))
            return
        if status != 'finished':
            try:
                exc = session.call(future._exception)
            except Exception as e:
                exc = e
            if session.lost is not None:
                exc = session.lose(exc)
            elif type(exc).__name__ == 'KilledWorker':
                lost = WorkerLostError(
                    'a worker running this task was lost, and Dask gave up '
                    'on the task (%s)' % exc, None, None)
                lost.__cause__ = exc
                exc = lost
            self.fail_units(units, exc)
            return
        try:
            data = session.call(future._result)
            outcome, tag = pickle.loads(data)
        except Exception as e:
            self.fail_units(units, e)
            return
        _output.received(tuple(tag))
        kind, value = outcome
        if kind == 'init':
            err = InitializerError('the pool initializer raised in a worker')
            err.__cause__ = value
            self.break_pool(err)
            self.fail_units(units, err)
            return
        for job, i, result in value:
            try:
                obj = pickle.loads(result)
            except Exception as e:
                obj = (False, e)
            self.set(job, i, obj)

    def set(self, job, i, obj):
        result = self.cache.get(job)
        if result is not None:
            try:
                result._set(i, obj)
            except Exception:
                import traceback
                traceback.print_exc()

    def fail_units(self, units, exc):
        for job, i, *_ in units:
            self.set(job, i, (False, exc))

    def stopped_error(self):
        return self.broken if self.broken is not None else \
            ValueError('Pool not running')

    def break_pool(self, err):
        with self.cond:
            if self.broken is not None:
                return
            self.broken = err
            units = list(self.pending)
            self.pending.clear()
        self.fail_units(units, err)

    # -- the end

    def close(self):
        with self.cond:
            if self.state == RUN:
                self.state = CLOSE
            self.cond.notify_all()

    def terminate(self):
        with self.cond:
            if self.state == TERMINATE:
                return
            self.state = TERMINATE
            units = list(self.pending)
            self.pending.clear()
            futures = list(self.futures.values())
            self.cond.notify_all()
        if futures and self.session.lost is None:
            try:
                self.session.call(self.session.client._cancel, futures,
                                  reason='pool terminated')
            except Exception:
                pass
        error = ValueError('Pool not running')
        self.fail_units(units, error)
        for job in list(self.cache):
            result = self.cache.get(job)
            if result is not None:
                result._fail_rest(error)
        with self.cond:
            self.futures.clear()
            self.cond.notify_all()

    def join(self):
        with self.cond:
            while self.pending or self.futures or self.feeders or \
                    self.batcher is not None:
                self.cond.wait(0.1)
                self.session.check()


class Pool(object):
    '''A pool whose tasks run on a Dask cluster.'''

    _wrap_exception = True

    def __init__(self, processes=None, initializer=None, initargs=(),
                 maxtasksperchild=None, context=None):
        self._state = INIT
        self._core = None
        if context is None:
            from .context import bound_context, get_context
            context = bound_context() or get_context(None)
        self._ctx = context
        session = context._session()
        if processes is None:
            processes = context.cpu_count()
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int or "
                                 "None")
        if initializer is not None and not callable(initializer):
            raise TypeError('initializer must be a callable')
        self._processes = processes
        self._maxtasksperchild = maxtasksperchild
        self._initializer = initializer
        self._initargs = initargs
        init = None
        if initializer is not None:
            init = _pickle.dumps((initializer, tuple(initargs)))
        self._core = _Core(session, uuid.uuid4().hex[:12], processes, init)
        self._cache = self._core.cache
        self._state = RUN
        if getattr(session, 'pools', None) is not None:
            session.pools.add(self._core)

    @property
    def _pool(self):
        # CPython's list of worker processes; its length is the pool size.
        return [None] * self._processes

    def __reduce__(self):
        raise NotImplementedError(
            'pool objects cannot be passed between processes or pickled')

    def __repr__(self):
        cls = self.__class__
        return (f'<{cls.__module__}.{cls.__qualname__} '
                f'state={self._state} pool_size={self._processes}>')

    def __del__(self, _warn=warnings.warn, RUN=RUN):
        if getattr(self, '_state', None) == RUN:
            _warn(f"unclosed running multiprocessing pool {self!r}",
                  ResourceWarning, source=self)
            core = getattr(self, '_core', None)
            if core is not None:
                try:
                    core.terminate()
                except Exception:
                    pass

    def _check_running(self):
        if self._state != RUN:
            raise ValueError("Pool not running")

    def apply(self, func, args=(), kwds={}):
        '''Equivalent of `func(*args, **kwds)`.'''
        return self.apply_async(func, args, kwds).get()

    def map(self, func, iterable, chunksize=None):
        '''Apply `func` to each element in `iterable`, collecting the results
        in a list that is returned.'''
        return self._map_async(func, iterable, 'map', chunksize).get()

    def starmap(self, func, iterable, chunksize=None):
        '''Like `map()` method but the elements of the `iterable` are
        expected to be iterables as well and will be unpacked as
        arguments.'''
        return self._map_async(func, iterable, 'star', chunksize).get()

    def starmap_async(self, func, iterable, chunksize=None, callback=None,
                      error_callback=None):
        '''Asynchronous version of `starmap()` method.'''
        return self._map_async(func, iterable, 'star', chunksize, callback,
                               error_callback)

    def map_async(self, func, iterable, chunksize=None, callback=None,
                  error_callback=None):
        '''Asynchronous version of `map()` method.'''
        return self._map_async(func, iterable, 'map', chunksize, callback,
                               error_callback)

    def _map_async(self, func, iterable, kind, chunksize=None, callback=None,
                   error_callback=None):
        self._check_running()
        if not hasattr(iterable, '__len__'):
            iterable = list(iterable)
        if chunksize is None:
            chunksize, extra = divmod(len(iterable), self._processes * 4)
            if extra:
                chunksize += 1
        if len(iterable) == 0:
            chunksize = 0
        fdata = self._core.dump_func(func)
        chunks = [_pickle.dumps(chunk) for chunk in
                  (_chunks(iterable, chunksize) if chunksize else ())]
        result = MapResult(self, chunksize, len(iterable), callback,
                           error_callback=error_callback)
        self._core.submit_now([(result._job, i, kind, fdata, data)
                               for i, data in enumerate(chunks)])
        return result

    def apply_async(self, func, args=(), kwds={}, callback=None,
                    error_callback=None):
        '''Asynchronous version of `apply()` method.'''
        self._check_running()
        fdata = self._core.dump_func(func)
        data = _pickle.dumps((tuple(args), dict(kwds)))
        result = ApplyResult(self, callback, error_callback)
        self._core.queue([(result._job, 0, 'apply', fdata, data)])
        return result

    def imap(self, func, iterable, chunksize=1):
        '''Equivalent of `map()` -- can be MUCH slower than `Pool.map()`.'''
        return self._imap(IMapIterator, func, iterable, chunksize)

    def imap_unordered(self, func, iterable, chunksize=1):
        '''Like `imap()` method but ordering of results is arbitrary.'''
        return self._imap(IMapUnorderedIterator, func, iterable, chunksize)

    def _imap(self, cls, func, iterable, chunksize):
        self._check_running()
        if chunksize < 1:
            raise ValueError("Chunksize must be 1+, not {0:n}".format(
                chunksize))
        fdata = self._core.dump_func(func)
        result = cls(self)
        kind = 'apply' if chunksize == 1 else 'map'
        core = self._core
        with core.cond:
            core.feeders += 1
        threading.Thread(target=_feed, daemon=True, name='mpgo-pool-feeder',
                         args=(core, result, kind, fdata, iterable,
                               chunksize)).start()
        if chunksize == 1:
            return result
        return (item for chunk in result for item in chunk)

    def close(self):
        if self._state == RUN:
            self._state = CLOSE
        self._core.close()

    def terminate(self):
        self._state = TERMINATE
        self._core.terminate()

    def join(self):
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


def _chunks(iterable, size):
    it = iter(iterable)
    while True:
        x = tuple(itertools.islice(it, size))
        if not x:
            return
        yield x


def _feed(core, result, kind, fdata, iterable, chunksize):
    '''Cut imap()'s iterable into units as it goes (CPython consumes it in
    a thread too) and let the batcher submit them.'''
    job = result._job
    i = -1
    try:
        if kind == 'apply':
            items = ((x,) for x in iterable)
        else:
            items = _chunks(iterable, chunksize)
        batch = []
        for i, item in enumerate(items):
            data = ((item[0],), {}) if kind == 'apply' else item
            try:
                batch.append((job, i, kind, fdata, _pickle.dumps(data)))
            except Exception as e:
                core.set(job, i, (False, e))
                continue
            if len(batch) >= 256:
                core.queue(batch)
                batch = []
            if core.state == TERMINATE:
                return
        core.queue(batch)
    except Exception as e:
        # The iterable raised: that item fails, and the iteration ends there.
        i += 1
        core.set(job, i, (False, e))
    finally:
        with core.cond:
            core.feeders -= 1
            core.cond.notify_all()
    result._set_length(i + 1)


#
# Results, as CPython's
#


class ApplyResult(object):

    def __init__(self, pool, callback, error_callback):
        self._pool = pool
        self._event = threading.Event()
        self._job = next(job_counter)
        self._cache = pool._cache
        self._callback = callback
        self._error_callback = error_callback
        self._cache[self._job] = self

    def ready(self):
        return self._event.is_set()

    def successful(self):
        if not self.ready():
            raise ValueError("{0!r} not ready".format(self))
        return self._success

    def wait(self, timeout=None):
        self._event.wait(timeout)

    def get(self, timeout=None):
        self.wait(timeout)
        if not self.ready():
            raise TimeoutError
        if self._success:
            return self._value
        else:
            raise self._value

    def _set(self, i, obj):
        self._success, self._value = obj
        try:
            if self._callback and self._success:
                self._callback(self._value)
            if self._error_callback and not self._success:
                self._error_callback(self._value)
        finally:
            self._event.set()
            self._cache.pop(self._job, None)
            self._pool = None

    def _fail_rest(self, exc):
        if not self._event.is_set():
            self._set(0, (False, exc))

    __class_getitem__ = classmethod(types.GenericAlias)


AsyncResult = ApplyResult


class MapResult(ApplyResult):

    def __init__(self, pool, chunksize, length, callback, error_callback):
        ApplyResult.__init__(self, pool, callback,
                             error_callback=error_callback)
        self._success = True
        self._value = [None] * length
        self._chunksize = chunksize
        self._lock = threading.Lock()
        if chunksize <= 0:
            self._number_left = 0
            self._event.set()
            del self._cache[self._job]
        else:
            self._number_left = length//chunksize + bool(length % chunksize)

    def _set(self, i, success_result):
        with self._lock:
            if self._event.is_set() or self._number_left <= 0:
                return
            self._number_left -= 1
            left = self._number_left
            success, result = success_result
            if success and self._success:
                self._value[i*self._chunksize:(i+1)*self._chunksize] = result
            elif not success and self._success:
                # only store first exception
                self._success = False
                self._value = result
        if left == 0:
            # only consider the result ready once all jobs are done
            try:
                if self._success:
                    if self._callback:
                        self._callback(self._value)
                elif self._error_callback:
                    self._error_callback(self._value)
            finally:
                self._cache.pop(self._job, None)
                self._event.set()
                self._pool = None

    def _fail_rest(self, exc):
        while not self._event.is_set() and self._number_left > 0:
            self._set(0, (False, exc))


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

    __next__ = next

    def _set(self, i, obj):
        with self._cond:
            if self._index == i:
                self._items.append(obj)
                self._index += 1
                while self._index in self._unsorted:
                    obj = self._unsorted.pop(self._index)
                    self._items.append(obj)
                    self._index += 1
                self._cond.notify()
            else:
                self._unsorted[i] = obj

            if self._index == self._length:
                self._cache.pop(self._job, None)
                self._pool = None

    def _set_length(self, length):
        with self._cond:
            self._length = length
            if self._index == self._length:
                self._cond.notify()
                self._cache.pop(self._job, None)
                self._pool = None

    def _fail_rest(self, exc):
        with self._cond:
            if self._length is None:
                self._length = self._index + len(self._unsorted) + 1
            while self._index < self._length:
                obj = self._unsorted.pop(self._index, (False, exc))
                self._items.append(obj)
                self._index += 1
            self._cond.notify()
            self._cache.pop(self._job, None)


class IMapUnorderedIterator(IMapIterator):

    def _set(self, i, obj):
        with self._cond:
            self._items.append(obj)
            self._index += 1
            self._cond.notify()
            if self._index == self._length:
                self._cache.pop(self._job, None)
                self._pool = None
