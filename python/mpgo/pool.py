"""Pool and ThreadPool: a pool of workers running tasks.

The public API is CPython's. A process Pool runs on the engine's pool
(core/pool, driven from here in its External mode, see _CorePool): the Go
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
moment to put them in batches (see _CorePool.apply).

As in CPython, callbacks run in the pool's result-handler thread, and an
AsyncResult's callback has returned before wait()/get() return. An exception
raised by a callback is printed instead of killing the result handler.

A process pool has two threads (daemonic; neither holds a reference to the
Pool, so that an unreferenced pool is terminated by its finalizer): the
task handler, which puts the tasks of imap() and imap_unordered() (their
iterables may be lazy) and the tasks apply_async() held back, and the
result handler, which delivers results, losses and failures.

A ThreadPool keeps a scheduler in Python: each thread has a channel of its
own (a queue.SimpleQueue in, a queue shared by the pool's threads out), and
the pool's worker handler, task handler and result handler threads hand
tasks to idle threads.

Adapted from CPython's Lib/multiprocessing/pool.py (PSF License).
"""

__all__ = ['Pool', 'ThreadPool']

#
# Imports
#

import collections
import io
import itertools
import os
import queue
import signal
import struct
import sys
import threading
import time
import types
import warnings

# If threading is available then ThreadPool should be provided.  Therefore
# we avoid top-level imports which are liable to fail on some systems.
from . import util
from . import _consts
from . import get_context
from . import process as _process
from . import _classic_pool
from .context import reduction
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


#
# A ThreadPool thread gets tasks from its channel, and sends what it does
# (one of the kinds below) to the pool's threads, as tuples:
#
#   parent -> worker   _TASK      the task (func, args, kwds)
#                      _STOP      exit once the tasks sent so far are done
#   worker -> parent   _READY     the initializer has run
#                      _INIT_FAILED  the initializer's exception; exits
#                      _STARTED   the next task is about to run
#                      _DONE      its result
#                      _FAILED    its exception
#

_TASK, _STOP = b'T', b'X'
_READY, _INIT_FAILED, _STARTED, _DONE, _FAILED = b'R', b'I', b'S', b'D', b'F'

# A worker whose last task ran for less than _FAST_TASK seconds is handed up
# to _PREFETCH tasks at a time (the next ones wait in its channel, so it
# never waits for the parent between short tasks), as long as the tasks it
# has not started come to at most _PREFETCH_BYTES (so that sending to it
# never blocks). Other workers get a task only when idle, so that a long
# task never holds up another one queued behind it.
_FAST_TASK = 0.005
_PREFETCH = 8
_PREFETCH_BYTES = 1 << 16

# Workers that die before they are ready, in a row, that break the pool.
_MAX_STARTUP_FAILURES = 3


#
# Code run by workers
#


def worker(channel, initializer=None, initargs=(), maxtasks=None,
           wrap_exception=False):
    '''Run the tasks received on channel until told to stop, until the
    channel closes or, if maxtasks is not None, after maxtasks tasks.'''
    if (maxtasks is not None) and not (isinstance(maxtasks, int)
                                       and maxtasks >= 1):
        raise AssertionError("Maxtasks {!r} is not valid".format(maxtasks))
    channel.setup()
    send = channel.send
    clock = time.perf_counter

    if initializer is not None:
        try:
            initializer(*initargs)
        except BaseException as e:
            if wrap_exception:
                e = ExceptionWithTraceback(e, e.__traceback__)
            try:
                send(_INIT_FAILED, value=e)
            except OSError:
                pass
            channel.close()
            util.debug('worker initializer failed -- exiting')
            raise _InitializerFailed(1)

    completed = 0
    try:
        util._flush_std_streams()
        send(_READY)
        while maxtasks is None or (maxtasks and completed < maxtasks):
            try:
                kind, job, i, payload = channel.recv()
            except (EOFError, OSError):
                util.debug('worker got EOFError or OSError -- exiting')
                break

            if kind == _STOP:
                util.debug('worker got sentinel -- exiting')
                break

            send(_STARTED, job, i)
            start = clock()
            func = None
            try:
                func, args, kwds = channel.decode(payload)
                result = (True, func(*args, **kwds))
            except Exception as e:
                if wrap_exception and func is not _helper_reraises_exception:
                    e = ExceptionWithTraceback(e, e.__traceback__)
                result = (False, e)
            seconds = clock() - start
            # What the task printed goes out before its result does, so
            # that it is not lost if the pool is then terminated.
            util._flush_std_streams()
            send(_DONE if result[0] else _FAILED, job, i, result[1], seconds)

            payload = result = func = args = kwds = None
            completed += 1
    except OSError:
        util.debug('worker lost its channel -- exiting')
    channel.close()
    util.debug('worker exiting after %d tasks' % completed)


class _InitializerFailed(SystemExit):
    '''Ends a worker whose initializer raised (exit code 1, no traceback
    printed: the parent reports the failure).'''


def _helper_reraises_exception(ex):
    'Pickle-able helper function for use by _guarded_task_generation.'
    raise ex

#
# Class representing a process pool
#


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


_Task = collections.namedtuple('_Task', 'job i payload size')


class _Worker(object):
    '''The parent's record of one worker.'''

    __slots__ = ('process', 'channel', 'reader', 'sentinel', 'name', 'pid',
                 'tasks', 'started', 'unread', 'fast', 'ready', 'assigned',
                 'stopping', 'eof', 'init_failed', 'exit_reason', 'outbox',
                 'sending', 'send_lock', 'closed')

    def __init__(self, process, channel, sentinel, pid):
        self.process = process
        self.channel = channel    # the thread's queue
        self.reader = None        # _FrameReader (processes)
        self.sentinel = sentinel
        self.name = process.name if process is not None else None
        self.pid = pid
        self.tasks = collections.deque()  # _Tasks sent to it, oldest first
        self.started = False      # whether it started tasks[0]
        self.unread = 0           # bytes of the tasks it has not started
        self.fast = False         # whether its last task was short
        self.ready = False        # whether its initializer has run
        self.assigned = 0         # tasks sent to it so far
        self.stopping = False     # whether _STOP was sent
        self.eof = False          # whether its channel is at its end
        self.init_failed = False
        self.exit_reason = None   # for threads: the exception that ended it
        # What is to be sent to it (a _Task, or None for _STOP), in the
        # order it was decided; one thread at a time (the one that set
        # self.sending) sends it, holding send_lock while it writes.
        self.outbox = collections.deque()
        self.sending = False
        self.send_lock = threading.Lock()
        self.closed = False       # whether the parent closed its channel

    def describe(self):
        if self.pid is not None:
            return 'pool worker process %d (%s)' % (self.pid, self.name)
        return 'pool worker thread %s' % self.name


class _Workers(object):
    '''The workers of a pool and the state the pool's threads share.

    self.lock guards workers, pending, tasks_done, terminating, broken,
    startup_failures, failures and each worker's task bookkeeping.'''

    def __init__(self, ctx, Process, processes, initializer, initargs,
                 maxtasksperchild, wrap_exception, cache, change_notifier,
                 pool):
        self.ctx = ctx
        self.Process = Process
        self.processes = processes
        self.initializer = initializer
        self.initargs = initargs
        self.maxtasks = maxtasksperchild
        self.wrap_exception = wrap_exception
        self.cache = cache
        self.change_notifier = change_notifier
        self.pool = pool            # the Pool's _pool: Process objects
        self.lock = threading.Condition(threading.Lock())
        self.workers = []           # _Worker records of live workers
        self.pending = collections.deque()   # _Tasks waiting for a worker
        self.max_pending = processes
        self.tasks_done = False     # the task handler has ended
        self.terminating = False
        self.broken = None          # the exception failing every new task
        self.startup_failures = 0
        self.failures = collections.deque()  # (job, i, exc) to deliver

    # -- starting workers (worker handler, and Pool.__init__) --

    def maintain(self):
        '''Start workers until the pool has its size.'''
        while True:
            with self.lock:
                if self.terminating or self.broken is not None or \
                        len(self.workers) >= self.processes:
                    return
            w = self.start_worker()
            with self.lock:
                self.workers.append(w)
                self.pool.append(w.process)
                assignments = self.schedule()
            self.wake()
            self.send_assignments(assignments)

    def start_worker(self):
        raise NotImplementedError

    # -- handing out tasks --

    def submit(self, job, i, payload, size):
        '''Queue a task (task handler). Returns False once the pool is
        terminating; waits while enough tasks are already waiting.'''
        with self.lock:
            while len(self.pending) >= self.max_pending and \
                    not self.terminating and self.broken is None:
                self.lock.wait()
            if self.terminating:
                return False
            if self.broken is not None:
                self.failures.append((job, i, self.broken))
                assignments = None
            else:
                self.pending.append(_Task(job, i, payload, size))
                assignments = self.schedule()
        if assignments is None:
            self.wake()
        else:
            self.send_assignments(assignments)
        return True

    def fail(self, job, i, exc):
        '''Fail a task from a thread other than the result handler.'''
        with self.lock:
            self.failures.append((job, i, exc))
        self.wake()

    def finish_tasks(self):
        '''The task handler has ended: stop the workers once idle.'''
        with self.lock:
            self.tasks_done = True
            assignments = self.schedule()
            self.lock.notify_all()
        self.send_assignments(assignments)
        self.wake()

    def _takes(self, w, task):
        '''Whether w can be sent task now (self.lock held).'''
        if w.stopping or w.eof or (self.maxtasks is not None and
                                   w.assigned >= self.maxtasks):
            return False
        n = len(w.tasks)
        return n == 0 or (w.fast and n < _PREFETCH and
                          w.unread + task.size <= _PREFETCH_BYTES)

    def _post(self, w, item, senders):
        w.outbox.append(item)
        if not w.sending:
            w.sending = True
            senders.append(w)

    def schedule(self):
        '''Hand waiting tasks to workers, idle ones first, and _STOP to
        idle workers if no task can come any more. Call with self.lock
        held; returns the workers whose outbox the caller must send (with
        send_assignments()) once it has released the lock.'''
        assignments = []
        if self.terminating:
            return assignments
        pending = self.pending
        while pending:
            task = pending[0]
            best = None
            for w in self.workers:
                if (best is None or len(w.tasks) < len(best.tasks)) and \
                        self._takes(w, task):
                    best = w
                    if not w.tasks:
                        break
            if best is None:
                break
            pending.popleft()
            if not best.tasks:
                best.started = False
            best.tasks.append(task)
            best.unread += task.size
            best.assigned += 1
            self._post(best, task, assignments)
        if self.tasks_done and not pending:
            for w in self.workers:
                if not w.tasks and not w.stopping and not w.eof:
                    w.stopping = True
                    self._post(w, None, assignments)
        self.lock.notify_all()
        return assignments

    def send_assignments(self, senders):
        '''Send the outbox of each worker in senders (as returned by
        schedule(): this thread is their sender).'''
        for w in senders:
            while True:
                with self.lock:
                    if not w.outbox or w.closed:
                        w.outbox.clear()
                        w.sending = False
                        break
                    task = w.outbox.popleft()
                with w.send_lock:
                    if w.closed:
                        continue
                    try:
                        if task is None:
                            self.send(w, _STOP, -1, -1, None)
                        else:
                            self.send(w, _TASK, task.job, task.i,
                                      task.payload)
                    except OSError as e:
                        # The worker has died (or is dying): the result
                        # handler hands its tasks on when it sees its end.
                        util.debug('cannot send to %s: %r'
                                   % (w.describe(), e))

    # -- results (result handler) --

    def handle_frames(self, w, frames):
        '''Handle the frames (kind, job, i, seconds, payload) w sent, in
        order, with one pass of bookkeeping under the lock.'''
        results = []
        for kind, job, i, seconds, payload in frames:
            if kind in (_DONE, _FAILED):
                try:
                    obj = (kind == _DONE, self.decode(payload))
                except Exception as e:
                    obj = (False, MaybeEncodingError(e, _Shown(
                        '<result of task %d of job %d, which cannot be '
                        'unpickled>' % (i, job))))
                results.append((job, i, obj))
            elif kind == _INIT_FAILED:
                try:
                    cause = self.decode(payload)
                except Exception as e:
                    cause = e
                results.append((None, None, cause))
            elif kind not in (_STARTED, _READY):
                raise AssertionError('unknown message %r from %s'
                                     % (kind, w.describe()))
        with self.lock:
            for kind, job, i, seconds, payload in frames:
                if kind == _STARTED:
                    if w.tasks and w.tasks[0].job == job and \
                            w.tasks[0].i == i:
                        w.started = True
                        w.unread -= w.tasks[0].size
                elif kind in (_DONE, _FAILED):
                    if w.tasks and w.tasks[0].job == job and \
                            w.tasks[0].i == i:
                        w.tasks.popleft()
                        w.started = False
                    w.fast = seconds < _FAST_TASK
                elif kind == _READY:
                    w.ready = True
                    self.startup_failures = 0
                elif kind == _INIT_FAILED:
                    w.init_failed = True
            senders = self.schedule()
        frames = None
        self.send_assignments(senders)
        for job, i, obj in results:
            if job is None:
                err = InitializerError(
                    'the pool initializer %s raised in %s: %r; the pool is '
                    'broken' % (_name_of(self.initializer), w.describe(),
                                obj))
                err.__cause__ = obj
                self.break_pool(err)
            else:
                self.deliver(job, i, obj)

    def handle_exit(self, w, exitcode):
        '''w has ended and every message it sent has been handled.'''
        failed = []
        break_exc = None
        with self.lock:
            if w in self.workers:
                self.workers.remove(w)
            try:
                self.pool.remove(w.process)
            except ValueError:
                pass
            how = w.exit_reason or _describe_exit(exitcode)
            tasks = w.tasks
            w.tasks = collections.deque()
            if tasks and w.started:
                task = tasks.popleft()
                failed.append((task, WorkerLostError(
                    '%s %s while running task %d of job %d'
                    % (w.describe(), how, task.i, task.job),
                    w.pid, exitcode)))
            if self.broken is not None:
                failed.extend((task, self.broken) for task in tasks)
            else:
                # It never started these: another worker will.
                self.pending.extendleft(reversed(tasks))
            if not w.ready and not w.init_failed and not self.terminating:
                self.startup_failures += 1
                if self.startup_failures >= _MAX_STARTUP_FAILURES:
                    break_exc = WorkerLostError(
                        '%s %s before it was ready, as did the %d workers '
                        'started before it; the pool is broken (can the '
                        'child import the main module? see its stderr)'
                        % (w.describe(), how, _MAX_STARTUP_FAILURES - 1),
                        w.pid, exitcode)
            assignments = self.schedule()
        self.close_channel(w)
        self.send_assignments(assignments)
        for task, exc in failed:
            self.deliver(task.job, task.i, (False, exc))
        if break_exc is not None:
            self.break_pool(break_exc)
        self.change_notifier.put(None)

    def break_pool(self, exc):
        with self.lock:
            if self.broken is None:
                self.broken = exc
            exc = self.broken
            failed = list(self.pending)
            self.pending.clear()
            self.lock.notify_all()
        for task in failed:
            self.deliver(task.job, task.i, (False, exc))
        self.change_notifier.put(None)

    def deliver_failures(self):
        while True:
            with self.lock:
                if not self.failures:
                    return
                job, i, exc = self.failures.popleft()
            self.deliver(job, i, (False, exc))

    def deliver(self, job, i, obj):
        _deliver(self.cache, job, i, obj)

    def should_exit(self):
        with self.lock:
            return self.tasks_done and not self.workers and \
                not self.failures

    # -- terminate --

    def begin_terminate(self):
        with self.lock:
            self.terminating = True
            self.lock.notify_all()
        self.wake()

    def stop_workers(self):
        '''Make the workers exit (terminate).'''
        raise NotImplementedError

    # -- transport, implemented for processes and for threads --

    def wake(self):
        '''Wake the result handler.'''
        raise NotImplementedError

    def send(self, w, kind, job, i, payload):
        raise NotImplementedError

    def encode(self, task_body):
        '''Return (payload, size) for a task (func, args, kwds).'''
        raise NotImplementedError

    def decode(self, payload):
        raise NotImplementedError

    def close_channel(self, w):
        with w.send_lock:
            w.closed = True

    def close(self):
        pass

    def handle_results(self):
        raise NotImplementedError


class _ThreadChannel(object):
    '''A ThreadPool thread's channel: objects pass as they are.'''

    def __init__(self, inqueue, outqueue, record):
        self._inqueue = inqueue
        self._outqueue = outqueue
        self._record = record

    def setup(self):
        pass

    def recv(self):
        return self._inqueue.get()

    @staticmethod
    def decode(payload):
        return payload

    def send(self, kind, job=-1, i=-1, value=None, seconds=0.0):
        self._outqueue.put((self._record, kind, job, i, seconds, value))

    def close(self):
        pass


def _thread_worker(channel, record, outqueue, *args):
    '''Run worker() in a ThreadPool thread; report the thread's end.'''
    try:
        worker(channel, *args)
    except _InitializerFailed:
        pass
    except SystemExit as e:
        record.exit_reason = 'raised %r' % (e,)
    except BaseException as e:
        record.exit_reason = 'raised %r' % (e,)
        raise
    finally:
        outqueue.put((record, None, -1, -1, 0.0, None))


class _ThreadWorkers(_Workers):
    '''Workers that are threads of this process (ThreadPool).'''

    def __init__(self, *args, **kwds):
        super().__init__(*args, **kwds)
        self.outqueue = queue.SimpleQueue()

    def start_worker(self):
        inqueue = queue.SimpleQueue()
        w = _Worker(None, inqueue, None, None)
        p = self.Process(self.ctx, target=_thread_worker,
                         args=(_ThreadChannel(inqueue, self.outqueue, w), w,
                               self.outqueue, self.initializer,
                               self.initargs, self.maxtasks,
                               self.wrap_exception))
        p.name = p.name.replace('Process', 'PoolWorker')
        p.daemon = True
        w.process = p
        w.name = p.name
        p.start()
        util.debug('added worker')
        return w

    def wake(self):
        self.outqueue.put(None)

    def send(self, w, kind, job, i, payload):
        w.channel.put((kind, job, i, payload))

    def encode(self, task_body):
        return task_body, 0

    def decode(self, payload):
        return payload

    def handle_results(self):
        thread = threading.current_thread()
        get = self.outqueue.get
        while thread._state != TERMINATE:
            self.deliver_failures()
            if self.should_exit():
                break
            items = [get()]
            while True:
                try:
                    items.append(get(False))
                except queue.Empty:
                    break
            if thread._state == TERMINATE:
                break
            for item in items:
                if item is None:
                    continue
                w, kind, job, i, seconds, value = item
                if kind is None:
                    w.process.join()
                    self.handle_exit(w, None)
                else:
                    self.handle_frames(w, [(kind, job, i, seconds, value)])
            # Hold no result while waiting for the next (CPython #29861).
            items = item = value = None
        util.debug('result handler exiting: len(cache)=%s, thread._state=%s',
                   len(self.cache), thread._state)

    def stop_workers(self):
        # Threads cannot be killed: tell each to stop after its tasks.
        with self.lock:
            workers = list(self.workers)
        for w in workers:
            w.channel.put((_STOP, -1, -1, None))


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
# MapResult makes lists of this many items or more when results come.
_LAZY_RESULT = 1 << 16
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
    me.name = '%s-%s' % (me.name, spec[5])
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


def _worker_name(ctx):
    '''The name of a pool worker under ctx, as CPython's: ForkPoolWorker,
    SpawnPoolWorker, ForkServerPoolWorker.'''
    return ctx.Process.__name__.replace('Process', 'PoolWorker')


class _WorkerInfo(object):
    '''What Pool._pool lists for a worker process of the engine's pool.'''

    daemon = True
    exitcode = None

    def __init__(self, slot, pid, name):
        self.pid = pid
        self.name = '%s-%d' % (name, slot + 1)

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
        import base64
        import json
        from . import spawn, zygote
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
                json.dumps(spawn.get_command_line()),
                json.dumps([int(fd) for fd in data.fds]),
                json.dumps(['%s=%s' % kv for kv in os.environ.items()]),
                base64.b64encode(fp.getvalue()).decode('ascii'), fd)
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
        return [_WorkerInfo(slot, pid, self.worker_name)
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


class Pool(_classic_pool.QueuePool):
    '''
    Class which supports an async version of applying functions to arguments.
    '''
    _wrap_exception = True
    _workers_class = None
    # Process pools run on the engine's pool (_CorePool); ThreadPool keeps
    # the Python scheduler of _Workers; a pool that reaches into CPython's
    # machinery runs it (_classic_pool, see _runs_queues).
    _on_engine = True
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
        self._taskqueue = queue.SimpleQueue()
        # The _change_notifier queue exist to wake up self._workers_loop()
        # when the cache (self._cache) is empty, when a worker has exited or
        # when there is a change in the _state variable of the thread that
        # runs _workers_loop.
        self._change_notifier = queue.SimpleQueue()
        # A process pool has no worker handler to notify when the cache
        # empties: a plain dict spares every result a Python-level del.
        self._cache = {} if self._on_engine else \
            _PoolCache(notifier=self._change_notifier)
        self._maxtasksperchild = maxtasksperchild
        self._initializer = initializer
        self._initargs = initargs

        if processes is None:
            processes = os.cpu_count() or 1
        if processes < 1:
            raise ValueError("Number of processes must be at least 1")
        if maxtasksperchild is not None:
            if not isinstance(maxtasksperchild, int) or maxtasksperchild <= 0:
                raise ValueError("maxtasksperchild must be a positive int or None")

        if initializer is not None and not callable(initializer):
            raise TypeError('initializer must be a callable')

        self._processes = processes
        if self._on_engine:
            self._core = _CorePool(self._ctx, processes, initializer,
                                   initargs, maxtasksperchild,
                                   self._wrap_exception, self._cache)
            self._terminate = util.Finalize(self, self._core.terminate,
                                            exitpriority=15)
            self._state = RUN
            return
        self._workers = self._workers_class(
            self._ctx, self.Process, processes, initializer, initargs,
            maxtasksperchild, self._wrap_exception, self._cache,
            self._change_notifier, self._pool)
        try:
            self._repopulate_pool()
        except Exception:
            self._workers.begin_terminate()
            self._workers.stop_workers()
            self._workers.close()
            raise

        self._worker_handler = threading.Thread(
            target=Pool._workers_loop,
            args=(self._cache, self._taskqueue, self._workers,
                  self._change_notifier),
            name='PoolWorkerHandler'
            )
        self._worker_handler.daemon = True
        self._worker_handler._state = RUN
        self._worker_handler.start()

        self._task_handler = threading.Thread(
            target=Pool._tasks_loop,
            args=(self._taskqueue, self._workers),
            name='PoolTaskHandler'
            )
        self._task_handler.daemon = True
        self._task_handler._state = RUN
        self._task_handler.start()

        self._result_handler = threading.Thread(
            target=self._workers.handle_results,
            name='PoolResultHandler'
            )
        self._result_handler.daemon = True
        self._result_handler._state = RUN
        self._result_handler.start()

        self._terminate = util.Finalize(
            self, self._terminate_workers,
            args=(self._taskqueue, self._workers, self._change_notifier,
                  self._worker_handler, self._task_handler,
                  self._result_handler, self._cache),
            exitpriority=15
            )
        self._state = RUN

    def _runs_queues(self):
        '''Whether this pool runs CPython's machinery (_classic_pool):
        its class, below mpgo's, defines part of it (joblib's PicklingPool
        defines _setup_queues), or its context's Process is not mpgo's.'''
        cls = type(self)
        overrides = [name for name in _classic_pool.HOOKS
                     if _defined_outside_mpgo(cls, name)]
        ctx_process = getattr(self._ctx, 'Process', None)
        foreign = not (isinstance(ctx_process, type) and
                       issubclass(ctx_process, _process.BaseProcess))
        if not overrides and (not foreign or not self._on_engine):
            return False
        if not self._on_engine:
            raise NotImplementedError(
                'mpgo: a ThreadPool subclass overriding %s is not supported'
                % ', '.join(overrides))
        return True

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
        if self._core is not None:
            return
        if self._classic:
            return self._repopulate_queue_pool()
        return self._workers.maintain()

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

    def _guarded_task_generation(self, result_job, func, iterable):
        '''Provides a generator of tasks for imap and imap_unordered with
        appropriate handling for iterables which throw exceptions during
        iteration.'''
        try:
            i = -1
            for i, x in enumerate(iterable):
                yield (result_job, i, func, (x,), {})
        except Exception as e:
            yield (result_job, i+1, _helper_reraises_exception, (e,), {})

    def _feed_core(self, result, func, iterable, chunksize):
        if chunksize < 1:
            raise ValueError(
                "Chunksize must be 1+, not {0!r}".format(chunksize))
        if type(iterable) in (range, list, tuple):
            # Its chunks pickled and put in C, in blocks (CPython's task
            # handler does not wait for results before putting more either).
            self._core.feed_sequence(
                result._job, _CALL if chunksize == 1 else _MAP, func,
                iterable, chunksize, result._set_length)
            if chunksize == 1:
                return result
            return (item for chunk in result for item in chunk)
        if chunksize == 1:
            self._core.feed(result._job, _CALL, func, iterable,
                            result._set_length)
            return result
        chunks = (x for _, x in Pool._get_tasks(func, iterable, chunksize))
        self._core.feed(result._job, _MAP, func, chunks, result._set_length)
        return (item for chunk in result for item in chunk)

    def imap(self, func, iterable, chunksize=1):
        '''
        Equivalent of `map()` -- can be MUCH slower than `Pool.map()`.
        '''
        self._check_running()
        if self._core is not None:
            return self._feed_core(IMapIterator(self), func, iterable,
                                   chunksize)
        if chunksize == 1:
            result = IMapIterator(self)
            self._taskqueue.put(
                (
                    self._guarded_task_generation(result._job, func, iterable),
                    result._set_length
                ))
            return result
        else:
            if chunksize < 1:
                raise ValueError(
                    "Chunksize must be 1+, not {0:n}".format(
                        chunksize))
            task_batches = Pool._get_tasks(func, iterable, chunksize)
            result = IMapIterator(self)
            self._taskqueue.put(
                (
                    self._guarded_task_generation(result._job,
                                                  mapstar,
                                                  task_batches),
                    result._set_length
                ))
            return (item for chunk in result for item in chunk)

    def imap_unordered(self, func, iterable, chunksize=1):
        '''
        Like `imap()` method but ordering of results is arbitrary.
        '''
        self._check_running()
        if self._core is not None:
            return self._feed_core(IMapUnorderedIterator(self), func,
                                   iterable, chunksize)
        if chunksize == 1:
            result = IMapUnorderedIterator(self)
            self._taskqueue.put(
                (
                    self._guarded_task_generation(result._job, func, iterable),
                    result._set_length
                ))
            return result
        else:
            if chunksize < 1:
                raise ValueError(
                    "Chunksize must be 1+, not {0!r}".format(chunksize))
            task_batches = Pool._get_tasks(func, iterable, chunksize)
            result = IMapUnorderedIterator(self)
            self._taskqueue.put(
                (
                    self._guarded_task_generation(result._job,
                                                  mapstar,
                                                  task_batches),
                    result._set_length
                ))
            return (item for chunk in result for item in chunk)

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
            return result
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
        self._check_running()
        if not hasattr(iterable, '__len__'):
            iterable = list(iterable)

        if chunksize is None:
            # CPython divides by len(self._pool), which is the pool's size
            # except for the moment a worker is being replaced.
            chunksize, extra = divmod(len(iterable), self._processes * 4)
            if extra:
                chunksize += 1
        if len(iterable) == 0:
            chunksize = 0

        if self._core is not None:
            result = MapResult(self, chunksize, len(iterable), callback,
                               error_callback=error_callback)
            if chunksize > 0:
                self._core.map(result._job,
                               _MAP if mapper is mapstar else _STARMAP,
                               func, iterable, chunksize)
            return result
        task_batches = Pool._get_tasks(func, iterable, chunksize)
        result = MapResult(self, chunksize, len(iterable), callback,
                           error_callback=error_callback)
        self._taskqueue.put(
            (
                self._guarded_task_generation(result._job,
                                              mapper,
                                              task_batches),
                None
            )
        )
        return result

    @staticmethod
    def _workers_loop(cache, taskqueue, workers, change_notifier):
        thread = threading.current_thread()

        # Keep maintaining workers until the cache gets drained, unless the pool
        # is terminated.
        while thread._state == RUN or (cache and thread._state != TERMINATE):
            try:
                workers.maintain()
            except Exception as e:
                util.info('cannot start a pool worker: %r', e)
                workers.break_pool(e)
            change_notifier.get()
            while True:
                try:
                    change_notifier.get_nowait()
                except queue.Empty:
                    break
        # tell the task handler that no task will come any more
        taskqueue.put(None)
        util.debug('worker handler exiting')

    @staticmethod
    def _tasks_loop(taskqueue, workers):
        thread = threading.current_thread()

        for taskseq, set_length in iter(taskqueue.get, None):
            task = None
            try:
                # iterating taskseq cannot fail
                for task in taskseq:
                    if thread._state != RUN:
                        util.debug('task handler found thread._state != RUN')
                        break
                    job, idx, func, args, kwds = task
                    try:
                        payload, size = workers.encode((func, args, kwds))
                    except Exception as e:
                        workers.fail(job, idx, e)
                        continue
                    if not workers.submit(job, idx, payload, size):
                        break
                else:
                    if set_length:
                        util.debug('doing set_length()')
                        idx = task[1] if task else -1
                        set_length(idx + 1)
                    continue
                break
            finally:
                task = taskseq = job = func = args = kwds = payload = None
        else:
            util.debug('task handler got sentinel')

        # tell the workers there is no more work
        workers.finish_tasks()
        util.debug('task handler exiting')

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
        if self._state == RUN and self._core is not None:
            self._state = CLOSE
            self._core.close()
        elif self._state == RUN:
            self._state = CLOSE
            self._worker_handler._state = CLOSE
            self._change_notifier.put(None)

    def terminate(self):
        util.debug('terminating pool')
        self._state = TERMINATE
        self._terminate()

    def join(self):
        util.debug('joining pool')
        if self._state == RUN:
            raise ValueError("Pool is still running")
        elif self._state not in (CLOSE, TERMINATE):
            raise ValueError("In unknown state")
        if self._core is not None:
            self._core.join()
            return
        self._worker_handler.join()
        self._task_handler.join()
        self._result_handler.join()
        for p in list(self._pool):
            p.join()

    @classmethod
    def _terminate_workers(cls, taskqueue, workers, change_notifier,
                           worker_handler, task_handler, result_handler, cache):
        # this is guaranteed to only be called once
        util.debug('finalizing pool')

        # Notify that the worker_handler state has been changed so the
        # _workers_loop loop can be unblocked (and exited) in order to
        # stop the task handler.
        worker_handler._state = TERMINATE
        task_handler._state = TERMINATE
        result_handler._state = TERMINATE
        workers.begin_terminate()
        change_notifier.put(None)

        # We must wait for the worker handler to exit before terminating
        # workers because we don't want workers to be restarted behind our back.
        util.debug('joining worker handler')
        if threading.current_thread() is not worker_handler:
            worker_handler.join()

        # Terminate workers which haven't already finished (before joining
        # the task handler, which may be sending a task to a worker that
        # does not read it).
        util.debug('terminating workers')
        workers.stop_workers()

        util.debug('joining task handler')
        if threading.current_thread() is not task_handler:
            task_handler.join()

        util.debug('joining result handler')
        if threading.current_thread() is not result_handler:
            result_handler.join()

        workers.close()

    def __enter__(self):
        self._check_running()
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        self.terminate()

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


class ThreadPool(Pool):
    _wrap_exception = False
    _workers_class = _ThreadWorkers
    _on_engine = False

    @staticmethod
    def Process(ctx, *args, **kwds):
        from .dummy import Process
        return Process(*args, **kwds)

    def __init__(self, processes=None, initializer=None, initargs=()):
        Pool.__init__(self, processes, initializer, initargs)
