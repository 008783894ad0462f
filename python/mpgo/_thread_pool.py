"""ThreadPool: a Pool of threads, with a scheduler in Python.

Each thread has a channel of its own (a queue.SimpleQueue in, a queue
shared by the pool's threads out); the pool's worker handler, task handler
and result handler threads hand tasks to idle threads (_Workers). The
tasks come from CPython's Pool methods over _taskqueue
(_classic_pool.QueuePool's); the results are mpgo.pool's.

Adapted from CPython's Lib/multiprocessing/pool.py (PSF License).
"""

import collections
import queue
import threading
import time

from . import util
from . import get_context
from ._classic_pool import QueuePool
from .pool import (INIT, RUN, TERMINATE, ExceptionWithTraceback,
                   InitializerError, MaybeEncodingError, Pool,
                   WorkerLostError, _InitializerFailed, _PoolCache, _Shown,
                   _check_arguments, _deliver, _describe_exit,
                   _helper_reraises_exception, _hook_overrides, _name_of)

__all__ = ['ThreadPool']

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


_Task = collections.namedtuple('_Task', 'job i payload size')


class _Worker(object):
    '''The parent's record of one worker.'''

    __slots__ = ('process', 'channel', 'name',
                 'tasks', 'started', 'unread', 'fast', 'ready', 'assigned',
                 'stopping', 'eof', 'init_failed', 'exit_reason', 'outbox',
                 'sending', 'send_lock', 'closed')

    def __init__(self, process, channel):
        self.process = process
        self.channel = channel    # the thread's queue
        self.name = process.name if process is not None else None
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
        self.outqueue = queue.SimpleQueue()  # what the threads send

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
                    None, exitcode)))
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
                        None, exitcode)
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

    def close_channel(self, w):
        with w.send_lock:
            w.closed = True

    # -- the threads' transport --

    def start_worker(self):
        inqueue = queue.SimpleQueue()
        w = _Worker(None, inqueue)
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


class ThreadPool(Pool):
    '''A Pool of threads of this process, scheduled in Python (_Workers),
    with CPython's Pool methods over _taskqueue (_classic_pool.QueuePool's).'''
    __module__ = 'mpgo.pool'    # where it is imported from, as CPython's
    _wrap_exception = False

    @staticmethod
    def Process(ctx, *args, **kwds):
        from .dummy import Process
        return Process(*args, **kwds)

    def __init__(self, processes=None, initializer=None, initargs=()):
        # Attributes initialized early to make sure that they exist in
        # __del__() if __init__() raises an exception
        self._pool = []
        self._state = INIT

        self._ctx = get_context()
        self._runs_queues()
        self._taskqueue = queue.SimpleQueue()
        # The _change_notifier queue exist to wake up self._workers_loop()
        # when the cache (self._cache) is empty, when a worker has exited or
        # when there is a change in the _state variable of the thread that
        # runs _workers_loop.
        self._change_notifier = queue.SimpleQueue()
        self._cache = _PoolCache(notifier=self._change_notifier)
        self._maxtasksperchild = None
        self._initializer = initializer
        self._initargs = initargs
        self._processes = processes = _check_arguments(processes, initializer,
                                                       None)
        self._workers = _Workers(
            self._ctx, self.Process, processes, initializer, initargs,
            None, self._wrap_exception, self._cache,
            self._change_notifier, self._pool)
        try:
            self._repopulate_pool()
        except Exception:
            self._workers.begin_terminate()
            self._workers.stop_workers()
            raise

        self._worker_handler = threading.Thread(
            target=ThreadPool._workers_loop,
            args=(self._cache, self._taskqueue, self._workers,
                  self._change_notifier),
            name='PoolWorkerHandler'
            )
        self._worker_handler.daemon = True
        self._worker_handler._state = RUN
        self._worker_handler.start()

        self._task_handler = threading.Thread(
            target=ThreadPool._tasks_loop,
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
        overrides = _hook_overrides(type(self))
        if overrides:
            raise NotImplementedError(
                'mpgo: a ThreadPool subclass overriding %s is not supported'
                % ', '.join(overrides))
        return False

    def _repopulate_pool(self):
        return self._workers.maintain()

    # CPython's Pool methods over _taskqueue, which _tasks_loop takes.
    imap = QueuePool.imap
    imap_unordered = QueuePool.imap_unordered
    _map_async = QueuePool._map_async

    def close(self):
        util.debug('closing pool')
        QueuePool.close(self)

    def join(self):
        util.debug('joining pool')
        QueuePool.join(self)

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
