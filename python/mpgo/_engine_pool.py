"""The engine scheduler under a process Pool (mpgo.pool.Pool).

_CorePool drives the engine's pool (core/pool) in its External mode: the Go
side starts, supervises and replaces the worker processes (_core_worker is
their loop, mostly in C: pybind/cext/pool.c); tasks go to them on one
shared-memory queue and results come back on another, put and read through
the C fast path. mpgo.pool's Pool calls it; the results it sets are
mpgo.pool's (ApplyResult, MapResult, IMapIterator).

Adapted from CPython's Lib/multiprocessing/pool.py (PSF License).
"""

import collections
import io
import os
import queue
import signal
import struct
import sys
import threading
import time
import types

from . import util
from . import _consts
from .context import reduction
from .pool import (ApplyResult, ExceptionWithTraceback, InitializerError,
                   MapResult, MaybeEncodingError, Pool, WorkerLostError,
                   _InitializerFailed, _Shown, _deliver, _describe_exit,
                   _name_of)

__all__ = []

#
# Process pools run on the engine's pool (core/pool, External mode): the Go
# side starts and supervises the workers; tasks and results travel on two
# shared-memory queues, put and read here through the C fast path.
#
# A task message is core/pool's: id | function | payload, where
#
#   id        (job + 1) << 32 | index of the task in its job
#   function  the pickle of (kind, func), the same bytes for every task of a
#             job, which a worker unpickles once and keeps
#   payload   the pickle of the task's argument, by kind:
#             _APPLY  (args, kwds)   result func(*args, **kwds)
#             _MAP    a chunk        result list(map(func, chunk))
#             _STARMAP a chunk       result list(starmap(func, chunk))
#             _CALL   x              result func(x) (imap with chunksize 1)
#             _APPLY_ARGS args       result func(*args) (apply, no kwds)
#
# and a result message is id | slot | status | body, the body the pickle of
# the result (_OK) or of the exception (_ERROR); the statuses from _LOST on
# come from the engine (see core/pool/wire.go). A worker claims each task in
# its slot atomically with taking it, so when it dies the engine knows
# exactly which task went with it: that task fails with WorkerLostError,
# every other one completes.
#

_APPLY, _MAP, _STARMAP, _CALL, _APPLY_ARGS = (
    _consts.POOL_APPLY, _consts.POOL_MAP, _consts.POOL_STARMAP, _consts.POOL_CALL,
    _consts.POOL_APPLY_ARGS)
_OK, _ERROR, _PANIC, _LOST, _BROKEN, _CLOSED, _INIT_FAILED = (
    _consts.POOL_OK, _consts.POOL_ERROR, _consts.POOL_PANIC, _consts.POOL_LOST,
    _consts.POOL_BROKEN, _consts.POOL_CLOSED, _consts.POOL_INIT_FAILED)
_WAKE = _consts.POOL_WAKE  # a message the parent puts to wake its own result thread
_FLUSH = object()  # tells the feeder to put the tasks apply() held back
_RESULT_HDR = struct.Struct('<QIB')
assert _RESULT_HDR.size == _consts.POOL_RESULT_HEADER


def _key(tid):
    '''What _CorePool.outstanding holds for task id tid (and the id for
    a key: the mapping is its own inverse). An id's low 32 bits are the
    same for every job's first task, which made a set of ids collide at
    every insertion; this mixes the job into them.'''
    return tid ^ (tid >> 32)

# Tasks put in one commit when a job is submitted; a worker can start on
# the first batch while the rest is pickled.
_SUBMIT_BATCH = 256
# How long apply() tasks may wait for a batch to fill when nobody waits for
# their results.
_FLUSH_DELAY = 0.0005
_SUBMIT_BYTES = 64 << 10
# A worker that put a result of _BIG_RESULT bytes or more waits (at most
# _MAX_BACKOFF seconds) until at most _BACKLOG results are left unread.
_BIG_RESULT = 1 << 20
# Chunks of a range this long or longer are sent as ranges (a few bytes,
# where their numbers take about five bytes each).
_RANGE_SLICES = 1024
# The most tasks an imap over a sequence keeps queued ahead of the workers.
_FEED_AHEAD = 1 << 15
_BACKLOG = 1
_MAX_BACKOFF = 2.0
# Functions whose pickle is cached: these pickle by reference, so the pickle
# does not change between calls.
_BY_REFERENCE = (types.FunctionType, types.BuiltinFunctionType, type)


def _core_worker(initializer, initargs, wrap_exception):
    '''The loop of a pool worker process (the target of its Process).'''
    from . import _engine, process
    spec = os.environ.pop('MPGO_POOL_WORKER').split()
    me = process.current_process()
    # The pool's first worker has the identity the parent gave the pool's
    # Process; the engine's serial (1, 2, ..., replacements after) counts
    # on from it, as CPython's process counter does for its workers.
    me._identity = _nth_identity(me._identity, int(spec[5]) - 1)
    me.name = _numbered(me.name, me._identity)
    w = _engine.fast.PoolWorker(' '.join(spec[:5]))
    maxtasks = int(spec[4])
    dumps = reduction.ForkingPickler.dumps
    loads = reduction.ForkingPickler.loads
    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as e:
            if wrap_exception:
                e = ExceptionWithTraceback(e, e.__traceback__)
            try:
                body = dumps(e)
            except Exception:
                body = dumps(RuntimeError(repr(e)))
            w.report(_INIT_FAILED, body)
            w.close()
            util.debug('worker initializer failed -- exiting')
            raise _InitializerFailed(1)
    util._flush_std_streams()
    w.ready()
    funcs = {}

    def resolve(fb):
        if len(funcs) >= 64:
            funcs.clear()
        entry = funcs[fb] = loads(fb)
        return entry

    def on_error(e):
        if wrap_exception:
            e = ExceptionWithTraceback(e, e.__traceback__)
        return e

    def on_encode_error(e, result):
        return dumps(MaybeEncodingError(e, result))

    # The loop runs in C (PoolWorker.serve): take a task, run it, put its
    # result, with Python called only for what is not plain.
    completed = 0
    while not maxtasks or completed < maxtasks:
        n, stopped = w.serve(funcs, resolve, loads, dumps, on_error,
                             on_encode_error, maxtasks - completed if maxtasks else 0,
                             _BIG_RESULT, _BACKLOG, _MAX_BACKOFF)
        completed += n
        if stopped:
            util.debug('worker: the pool has stopped -- exiting')
            break
    w.close()
    util.debug('worker exiting after %d tasks' % completed)


def _nth_identity(first, n):
    '''The process identity n after first (a tuple: the parent's, then a
    count).'''
    return first[:-1] + (first[-1] + n,)


def _numbered(name, identity):
    '''name-identity, as BaseProcess names a process: ForkPoolWorker-5:2.'''
    return '%s-%s' % (name, ':'.join(str(i) for i in identity))


def _worker_name(ctx):
    '''The name of a pool worker under ctx, as CPython's: ForkPoolWorker,
    SpawnPoolWorker, ForkServerPoolWorker.'''
    return ctx.Process.__name__.replace('Process', 'PoolWorker')


class _WorkerInfo(object):
    '''What Pool._pool lists for a worker process of the engine's pool.'''

    daemon = True
    exitcode = None

    def __init__(self, slot, pid, name, first):
        self.pid = pid
        self.name = _numbered(name, _nth_identity(first, slot))

    def is_alive(self):
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        try:
            with open('/proc/%d/stat' % self.pid) as f:
                return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
        except OSError:
            return False

    def join(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_alive():
            if deadline is not None and time.monotonic() >= deadline:
                return
            time.sleep(0.01)

    def terminate(self):
        self._signal(signal.SIGTERM)

    def kill(self):
        self._signal(signal.SIGKILL)

    def _signal(self, sig):
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def __repr__(self):
        return '<%s pid=%d>' % (self.name, self.pid)


class _SpawnData(object):
    '''Stands in for a Popen while the workers' Process object is pickled:
    collects the fds it passes to children (the engine passes the same fds
    to every worker).'''

    method = 'spawn'

    def __init__(self):
        from .popen_spawn_posix import Popen
        self._popen = Popen.__new__(Popen)
        self._popen._devnull_fds = []
        self._popen._fds = [self._popen._std_fd(0), self._popen._std_fd(1),
                            self._popen._std_fd(2), -1]
        self.DupFd = self._popen.DupFd

    @property
    def fds(self):
        return self._popen._fds

    def duplicate_for_child(self, fd):
        return self._popen.duplicate_for_child(fd)

    def close(self):
        util.close_fds(*self._popen._devnull_fds)


class _CorePool(object):
    '''The engine side of a process Pool, and its two threads: the feeder,
    which puts the tasks of imap() and imap_unordered() (whose iterables may
    be lazy), and the result handler. Neither holds a reference to the
    Pool, so that an unreferenced pool is terminated by its finalizer.'''

    def __init__(self, ctx, processes, initializer, initargs, maxtasks,
                 wrap_exception, cache):
        import binascii
        from . import process, spawn, zygote
        from .context import set_spawning_popen
        method = ctx.get_start_method()
        fork = method == 'fork'
        # Workers are forked by the zygote under 'fork' and 'forkserver',
        # which must be there before the engine loads: a process that runs
        # Go can only start a zygote afresh.
        zygote_fd = -1
        if method in ('fork', 'forkserver') and zygote.supported():
            if method == 'forkserver':
                from . import forkserver
                forkserver.ensure_running()
            # Every worker imports this module first: once, in the zygote.
            zygote.preload([__name__], wait=False)
            zygote_fd = zygote.client_fd()
        from . import _engine
        # Under 'fork', callables, tasks and initializers carry what they
        # reach of __main__ by value (mpgo._forking).
        if fork:
            from . import _forking
            self.dumps = dumps = _forking.dumps
        else:
            self.dumps = dumps = reduction.ForkingPickler.dumps
        self.cache = cache
        self.fast = _engine.fast
        self.call = _engine.call
        self.lock = threading.Lock()
        self.outstanding = set()   # _key(id) of the tasks put and not yet settled
        self.failures = collections.deque()  # (job, i, exc) to deliver
        self.broken = None
        self.terminating = False
        self.stopped = False       # the engine said _CLOSED
        self.freed = False
        # By kind, func -> the pickle of (kind, func), for _BY_REFERENCE
        self.fn_cache = [{} for _ in range(_APPLY_ARGS + 1)]

        # The workers' Process object, pickled once: the engine starts
        # every worker (replacements too) with the same spawn data.
        p = ctx.Process(target=_core_worker,
                        args=(initializer, initargs, wrap_exception))
        self.worker_name = p.name = _worker_name(ctx)
        # p has the first worker's number; the others', as in CPython,
        # come next from the program's process counter.
        self.first_identity = p._identity
        for _ in range(processes - 1):
            next(process._process_counter)
        p.daemon = True
        data = _SpawnData()
        # The workers are of the pool's context (its objects may go to them).
        data.method = ctx.get_start_method()
        try:
            fp = io.BytesIO()
            set_spawning_popen(data)
            try:
                prep = spawn.get_preparation_data(p.name, fork=fork)
                reduction.dump(prep, fp)
                if fork:
                    _forking.dump(p, fp)
                else:
                    reduction.dump(p, fp)
            finally:
                set_spawning_popen(None)
            fd, zygote_fd = zygote_fd, -1
            self.h = self.call(
                'PoolNew', processes, maxtasks or 0,
                _engine.json_strings(spawn.get_command_line()),
                _engine.json_ints(data.fds),
                _engine.json_strings('%s=%s' % kv for kv in os.environ.items()),
                binascii.b2a_base64(fp.getvalue(), newline=False).decode('ascii'),
                fd)
        finally:
            data.close()
            if zygote_fd >= 0:
                os.close(zygote_fd)
        # The fds passed to workers belong to objects in initargs, which the
        # pool keeps alive for as long as it may start workers.
        self.keep = (initializer, initargs)
        self.tq = self.call('PoolTasks', self.h)
        self.rq = self.call('PoolResults', self.h)
        self.submitter = self.fast.Submitter(self.tq, dumps)
        self.waker = self.fast.Queue(self.rq)
        self.tasks = self.fast.Queue(self.tq)   # for its length
        self.feed_queue = queue.SimpleQueue()
        self.feeder = threading.Thread(target=self._feed, name='PoolTaskHandler',
                                       daemon=True)
        self.results = threading.Thread(target=self._handle_results,
                                        name='PoolResultHandler', daemon=True)
        self.feeder.start()
        self.results.start()

    # -- workers --

    def workers(self):
        if self.freed or self.stopped:
            return []
        import json
        try:
            pids = json.loads(self.call('PoolPids', self.h))
        except Exception:
            return []
        return [_WorkerInfo(slot, pid, self.worker_name, self.first_identity)
                for slot, pid in enumerate(pids) if pid]

    # -- submitting (caller threads and the feeder) --

    def _function(self, kind, func):
        cache = self.fn_cache[kind]
        try:
            return cache[func]
        except (KeyError, TypeError):
            pass
        fb = self.dumps((kind, func))
        if isinstance(func, _BY_REFERENCE):
            if len(cache) >= 256:
                cache.clear()
            cache[func] = fb
        return fb

    def apply(self, job, func, args, kwds):
        tid = (job + 1) << 32
        try:
            if kwds:
                fb = self._function(_APPLY, func)
                args = (args, kwds)
            else:
                try:
                    fb = self.fn_cache[_APPLY_ARGS][func]
                except (KeyError, TypeError):
                    fb = self._function(_APPLY_ARGS, func)
                if type(args) is not tuple:
                    args = tuple(args)
            # Held back and put in batches (see Submitter): the batch goes
            # out when it is full, when the caller waits for a result, or
            # when the feeder thread next comes round.
            n = self.submitter.add(tid, fb, args)
        except Exception as e:
            self.fail(job, 0, e)
            return
        if n == 1:
            self.feed_queue.put(_FLUSH)
        elif n >= _SUBMIT_BATCH:
            self.flush()

    def flush(self):
        '''Put the tasks apply() held back.'''
        if not self.submitter.pending():
            return
        with self.lock:
            if self.broken is not None or self.terminating or self.stopped:
                ids, exc = self.submitter.drop(), self._stopped_error()
            else:
                failed = self.submitter.flush(self.outstanding)
                if failed is None:
                    return
                ids, exc = failed
        for tid in ids:
            self.fail((tid >> 32) - 1, tid & 0xffffffff, exc)

    def map(self, job, kind, func, iterable, chunksize, lazy=False):
        '''Put the tasks of a map: chunks of iterable (a sequence), or its
        items for kind _CALL; return how many of them will have a result
        (all, unless the pool stopped: see fail_rest). lazy (imap): keep at
        most about _FEED_AHEAD tasks queued, as CPython's task handler is
        held back by its pipe, so that an imap over a huge range does not
        queue all of it.'''
        self.flush()
        n = len(iterable)
        if kind == _CALL:
            chunksize = 1
        nchunks = n // chunksize + bool(n % chunksize)
        try:
            fb = self._function(kind, func)
        except Exception as e:
            return self.fail_rest(job, 0, nchunks, e)
        dumps = self.dumps
        base = (job + 1) << 32
        if type(iterable) in (list, tuple) or (
                type(iterable) is range and
                (chunksize < _RANGE_SLICES or kind == _CALL)):
            return self._map_chunks(job, base, fb, iterable,
                                    0 if kind == _CALL else chunksize,
                                    nchunks, lazy)
        # A chunk of a long range is its slice, a range, whose pickle is a
        # few bytes where CPython makes and pickles a tuple of every number
        # in it. Other iterables are chunked as CPython does.
        sliced = type(iterable) is range
        chunks = Pool._get_tasks(func, iterable, chunksize)
        ids, payloads, size = [], [], 0
        for i in range(nchunks):
            if not ids:
                self._hold_back(lazy)
                if self.terminating:
                    return i
            if sliced:
                chunk = iterable[i * chunksize:(i + 1) * chunksize]
            else:
                chunk = next(chunks)[1]
            try:
                payload = dumps(chunk)
            except Exception as e:
                self.fail(job, i, e)
                continue
            ids.append(base | i)
            payloads.append(payload)
            size += len(payload)
            # A batch goes out when it is full, or big: the workers start
            # on it while the next one is pickled.
            if len(ids) >= _SUBMIT_BATCH or size >= _SUBMIT_BYTES:
                if not self._put_many(ids, fb, payloads):
                    return self.fail_rest(job, i + 1, nchunks,
                                          self._stopped_error())
                ids, payloads, size = [], [], 0
        if ids:
            self._put_many(ids, fb, payloads)
        return nchunks

    def _map_chunks(self, job, base, fb, seq, chunksize, nchunks, lazy=False):
        '''Put the chunks of a list, tuple or range: the engine's C side
        pickles the plain ones (ForkingPickler those it cannot).'''
        dumps = self.dumps

        def fallback(i):
            if chunksize == 0:
                return dumps(seq[i])
            return dumps(tuple(seq[i * chunksize:(i + 1) * chunksize]))

        put = self.fast.pool_put_chunks
        outstanding = self.outstanding
        step = _SUBMIT_BATCH * 16
        for i0 in range(0, nchunks, step):
            self._hold_back(lazy)
            if self.terminating:
                return i0       # (terminate() leaves results unset, as CPython)
            i1 = min(i0 + step, nchunks)
            hb = base >> 32
            ids = [base | (i ^ hb) for i in range(i0, i1)]   # _key(base | i)
            with self.lock:
                if self.terminating:
                    return i0
                if self.broken is not None or self.stopped:
                    exc = self._stopped_error()
                else:
                    # In before the put: a result may come back at once.
                    outstanding.update(ids)
                    try:
                        failed = put(self.tq, base, fb, seq, chunksize, i0, i1,
                                     fallback)
                        exc = None
                    except Exception as e:
                        outstanding.difference_update(ids)
                        exc = e
            if exc is not None:
                return self.fail_rest(job, i0, nchunks, exc)
            for i, e in failed:
                outstanding.discard(_key(base | i))
                self.fail(job, i, e)
        return nchunks

    def _hold_back(self, lazy):
        '''For an imap (lazy): wait while _FEED_AHEAD tasks are queued.'''
        while lazy and not self.terminating and \
                self.tasks.qsize() > _FEED_AHEAD:
            time.sleep(0.001)

    def fail_rest(self, job, i0, n, exc):
        '''Tasks i0..n-1 of job will not run: one failure for them all,
        task i0's (a MapResult counts the others as settled; an imap ends
        after it). Return i0 + 1, the tasks that will have a result: failing
        them one by one could make billions of failures (an imap over a
        huge range).'''
        self.failures.append((job, i0, exc, n - i0))
        self.wake()
        return i0 + 1

    def _put(self, tid, fb, payload):
        return self._submit([tid], self.fast.pool_put, tid, fb, payload)

    def _put_many(self, ids, fb, payloads):
        return self._submit(ids, self.fast.pool_put_many, ids, fb, payloads)

    def _submit(self, ids, put, *args):
        '''Put tasks ids with put(task queue, *args), or fail them if the
        pool no longer takes tasks or the put fails; return whether they
        were put.'''
        with self.lock:
            if self.broken is not None or self.terminating or self.stopped:
                exc = self._stopped_error()
            else:
                keys = [_key(tid) for tid in ids]
                self.outstanding.update(keys)
                try:
                    put(self.tq, *args)
                    return True
                except Exception as e:
                    self.outstanding.difference_update(keys)
                    exc = e
        for tid in ids:
            self.fail((tid >> 32) - 1, tid & 0xffffffff, exc)
        return False

    def _stopped_error(self):
        if self.broken is not None:
            return self.broken
        return ValueError('Pool not running')

    def feed(self, job, kind, func, iterable, set_length):
        self.feed_queue.put((job, kind, func, iterable, set_length))

    def feed_sequence(self, job, kind, func, seq, chunksize, set_length):
        '''Put the tasks of an imap over a list, tuple or range, as map()
        does but from the feeder thread: imap() returns at once, however
        long seq is.'''
        self.feed_queue.put((job, kind, func, seq, set_length, chunksize))

    def _feed(self):
        dumps = self.dumps
        for item in iter(self.feed_queue.get, None):
            if item is _FLUSH:
                # Not at once: the caller is likely still submitting, and
                # waking this thread for every few tasks costs it more than
                # the tasks do. A full batch, or a wait, puts them sooner.
                time.sleep(_FLUSH_DELAY)
                self.flush()
                continue
            if len(item) == 6:
                job, kind, func, seq, set_length, chunksize = item
                item = None
                set_length(self.map(job, kind, func, seq, chunksize,
                                    lazy=True))
                seq = None
                continue
            job, kind, func, iterable, set_length = item
            self.flush()
            base = (job + 1) << 32
            try:
                fb = self._function(kind, func)
            except Exception as e:
                fb, fb_error = None, e
            i = -1
            try:
                for i, x in enumerate(iterable):
                    if self.terminating:
                        break
                    if fb is None:
                        self.fail(job, i, fb_error)
                        continue
                    try:
                        payload = dumps(x)
                    except Exception as e:
                        self.fail(job, i, e)
                        continue
                    if not self._put(base | i, fb, payload):
                        break   # failed: the pool takes no more tasks
            except Exception as e:
                i += 1
                self.fail(job, i, e)
            finally:
                iterable = x = payload = None
            if set_length is not None:
                set_length(i + 1)
        # close(): once every task is put, the workers may stop when idle.
        if not self.terminating:
            self.flush()
            try:
                self.call('PoolShutdown', self.h)
            except Exception:
                pass
        util.debug('task handler exiting')

    # -- results (the result handler) --

    def fail(self, job, i, exc):
        self.failures.append((job, i, exc))
        self.wake()

    def wake(self):
        try:
            self.waker.put(_RESULT_HDR.pack(0, 0, _WAKE))
        except Exception:
            pass        # stopped: the result handler has ended

    def deliver(self, job, i, obj):
        _deliver(self.cache, job, i, obj)

    def break_pool(self, exc):
        with self.lock:
            if self.broken is not None:
                return
            self.broken = exc
            ids = sorted(_key(k) for k in self.outstanding)
            self.outstanding.clear()
        for tid in ids:
            self.deliver((tid >> 32) - 1, tid & 0xffffffff, (False, exc))

    def _handle_results(self):
        loads = reduction.ForkingPickler.loads
        collect = self.fast.pool_collect
        outstanding = self.outstanding
        cache = self.cache
        rq = self.rq
        while True:
            # collect sets some results itself: an ApplyResult's without
            # callbacks, and a MapResult's chunks other than its last.
            try:
                batch = collect(rq, 256, loads, outstanding, cache,
                                ApplyResult, MapResult)
            except Exception as e:
                # Nothing left to read results with: fail what is waiting
                # rather than leave it waiting for ever.
                util.info('pool result handler failed: %r', e)
                self.break_pool(RuntimeError(
                    'mpgo pool: cannot read results (%r); the pool is broken'
                    % (e,)))
                break
            for job, items in batch:
                if job is None:
                    self._handle_other(*items)
                    continue
                result = cache.get(job)
                if result is None:
                    continue
                try:
                    result._set_many(items)
                except Exception:
                    # A callback raised: report it, and keep handling results.
                    sys.stderr.write('Exception in a callback of %r:\n' % (result,))
                    import traceback
                    traceback.print_exc()
            result = items = batch = None
            while self.failures:
                failure = self.failures.popleft()
                job, i, exc = failure[:3]
                if len(failure) == 4:           # fail_rest
                    result = cache.get(job)
                    if isinstance(result, MapResult):
                        result._number_left -= failure[3] - 1
                self.deliver(job, i, (False, exc))
            if self.stopped:
                break
        util.debug('result handler exiting: len(cache)=%s', len(self.cache))

    def _handle_other(self, tid, status, body):
        '''A message that is not a result pool_collect could read.'''
        if tid == 0:
            if status == _CLOSED:
                self.stopped = True
            elif status == _INIT_FAILED:
                self._init_failed(body)
            elif status == _BROKEN:
                self._broken(body)
            return
        job, i = (tid >> 32) - 1, tid & 0xffffffff
        if status == -1:
            obj = (False, MaybeEncodingError(body, _Shown(
                '<result of task %d of job %d, which cannot be '
                'unpickled>' % (i, job))))
        elif status == _LOST:
            pid, exitcode = (int(x) for x in bytes(body).split()[:2])
            obj = (False, WorkerLostError(
                'pool worker process %d %s while running task %d of '
                'job %d' % (pid, _describe_exit(exitcode), i, job),
                pid, exitcode))
        else:
            obj = (False, RuntimeError('unknown result status %d' % status))
        self.deliver(job, i, obj)

    def _init_failed(self, body):
        try:
            cause = reduction.ForkingPickler.loads(body)
        except Exception as e:
            cause = e
        err = InitializerError(
            'the pool initializer %s raised in a pool worker process: %r; '
            'the pool is broken' % (_name_of(self.keep[0]), cause))
        err.__cause__ = cause
        self.break_pool(err)

    def _broken(self, body):
        pid, exitcode, reason = bytes(body).decode('utf-8', 'replace').split(' ', 2)
        pid, exitcode = int(pid), int(exitcode)
        self.break_pool(WorkerLostError(
            'pool worker process %d %s before it was ready, as did the workers '
            'started before it, if any; the pool is broken (can the child '
            'import the main module? see its stderr) [%s]'
            % (pid, _describe_exit(exitcode), reason), pid, exitcode))

    # -- stopping --

    def close(self):
        '''No more tasks: the feeder puts what it has, then the workers
        stop once the queued tasks are done.'''
        self.feed_queue.put(None)

    def terminate(self):
        self.terminating = True
        self.feed_queue.put(None)
        if not self.freed:
            try:
                self.call('PoolTerminate', self.h)
            except Exception as e:
                util.debug('terminate: %r' % (e,))
        for t in (self.feeder, self.results):
            if t is not threading.current_thread():
                t.join()
        self.free()

    def join(self):
        for t in (self.feeder, self.results):
            if t is not threading.current_thread():
                t.join()
        self.free()

    def free(self):
        with self.lock:
            if self.freed:
                return
            self.freed = True
        self.waker = None
        try:
            self.call('PoolFree', self.h)
        except Exception as e:
            util.debug('free: %r' % (e,))
