"""The run's connection to the Dask cluster, and the one way objects call it.

A run is one driver (the program started with `--cluster`, or any program
using the cluster context) and every task it starts, nested ones included.
Everything the run makes on the cluster is named under its prefix
(`mpgo-<run id>-`): task keys, queues, variables, events, and the output
topic. When the driver exits, its session stops the run's tasks that are
still running and drops every scheduler object under the prefix.

In the driver, `current()` is the driver's session. In a task on a worker,
it is a session on the worker's own client with the run's prefix and topic
(set by mpgo.cluster._runtime for the task's thread).

`Session.call(fn, ...)` runs a coroutine (a scheduler RPC) on the client's
event loop and waits for it in slices of at most 100 ms, so that Ctrl-C
and an asynchronous exception (how a task is terminated) interrupt it at
once. A broken connection to the scheduler raises SchedulerLostError, in
that call and in every later one.
"""

import asyncio
import atexit
import os
import sys
import threading
import uuid
import weakref

from .errors import SchedulerLostError

# Longest uninterrupted wait of a blocking call.
_SLICE = 0.1

_tls = threading.local()
_driver = None
_driver_lock = threading.Lock()


def import_distributed():
    '''Import and return `distributed`. Under `python -m mpgo` its own
    `import multiprocessing` gets mpgo, as every module's does.'''
    import distributed
    import distributed.worker  # noqa: F401
    return distributed


def _is_connection_error(exc):
    if isinstance(exc, OSError):        # CommClosedError is an OSError
        # A wait that timed out is not (TimeoutError is an OSError).
        return not isinstance(exc, (TimeoutError, asyncio.TimeoutError))
    name = type(exc).__name__
    if name == 'ClosedClientError':
        return True
    return name == 'FutureCancelledError' and \
        'connection-lost' in str(exc)


class Session(object):
    '''One process's view of a run: a Dask client, the run's prefix and its
    output topic.'''

    def __init__(self, client, prefix, topic):
        self.client = client
        self.prefix = prefix
        self.topic = topic
        self.lost = None

    @property
    def scheduler(self):
        return self.client.scheduler

    def name(self, kind):
        '''A new cluster-wide name for an object of this run.'''
        return '%s%s-%s' % (self.prefix, kind, uuid.uuid4().hex[:16])

    def check(self):
        '''Raise SchedulerLostError if the scheduler is gone.'''
        if self.lost is None and self.client.status not in \
                ('running', 'connecting', 'newly-created'):
            self.lost = 'the client is %s' % self.client.status
        if self.lost is not None:
            raise SchedulerLostError(
                'lost the Dask scheduler at %s (%s)'
                % (self.address, self.lost))

    @property
    def address(self):
        try:
            return self.client.scheduler.address
        except Exception:
            return '?'

    def lose(self, exc):
        '''Record that the scheduler is gone; return the error to raise.'''
        if self.lost is None:
            self.lost = '%s: %s' % (type(exc).__name__, exc)
        err = SchedulerLostError('lost the Dask scheduler at %s (%s)'
                                 % (self.address, self.lost))
        err.__cause__ = exc
        return err

    def call(self, fn, *args, **kwargs):
        '''Run fn(*args, **kwargs), a coroutine function, on the client's
        loop and return its result.'''
        self.check()
        loop = self.client.loop.asyncio_loop
        if _running_loop() is loop:
            raise RuntimeError('mpgo cluster objects cannot be used from '
                               "the Dask client's event loop")
        done = threading.Event()
        box = []
        task = []

        async def run():
            try:
                box.append((True, await fn(*args, **kwargs)))
            except BaseException as e:
                box.append((False, e))
            finally:
                done.set()

        def start():
            task.append(asyncio.ensure_future(run()))

        loop.call_soon_threadsafe(start)
        try:
            while not done.wait(_SLICE):
                pass
        except BaseException:
            # Ctrl-C, or a task being stopped: leave the call behind.
            loop.call_soon_threadsafe(lambda: task and task[0].cancel())
            raise
        ok, value = box[0]
        if ok:
            return value
        if _is_connection_error(value):
            raise self.lose(value) from None
        raise value

    def wait_future(self, future, timeout=None):
        '''Wait until a Dask future is done (or timeout seconds), in
        slices; return whether it is done.'''
        if future.done():
            return True

        async def wait():
            try:
                await asyncio.wait_for(future._state.wait(), timeout)
            except asyncio.TimeoutError:
                return False
            return True
        return self.call(wait)

    def watch(self, future, fn):
        '''Call fn(future) in the session's delivery thread once future is
        done (Future.add_done_callback cannot be used at exit: its executor
        refuses work once the interpreter is shutting down).'''
        deliveries = self._deliveries()

        async def watch():
            try:
                await future._state.wait()
            finally:
                deliveries.put((fn, future))
        loop = self.client.loop.asyncio_loop
        loop.call_soon_threadsafe(lambda: asyncio.ensure_future(watch()))

    def _deliveries(self):
        return _deliveries()


_delivery_queue = None


def _deliveries():
    '''The queue of the process's delivery thread (started on first use).'''
    global _delivery_queue
    if _delivery_queue is None:
        with _driver_lock:
            if _delivery_queue is None:
                import queue
                q = queue.SimpleQueue()
                threading.Thread(target=_deliver, args=(q,), daemon=True,
                                 name='mpgo-cluster-results').start()
                _delivery_queue = q
    return _delivery_queue


def _deliver(q):
    '''The delivery thread: run what Session.watch() queued, in order.'''
    while True:
        fn, future = q.get()
        try:
            fn(future)
        except BaseException:
            import traceback
            traceback.print_exc()


def _running_loop():
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


#
# The session of this thread
#


def current():
    '''The session of the calling thread: the task's on a worker, else the
    driver's (made on first use, from MPGO_CLUSTER or 'local').'''
    session = getattr(_tls, 'session', None)
    if session is not None:
        return session
    if _driver is not None:
        return _driver
    worker = _this_worker()
    if worker is not None:
        # A thread a task started: the worker's client, outside any run.
        return Session(worker._get_client(), 'mpgo-%s-' % uuid.uuid4().hex[:12],
                       None)
    return driver(None)


def set_task_session(session):
    _tls.session = session


def _this_worker():
    '''The Dask worker this process is, or None.'''
    distributed = sys.modules.get('distributed')
    if distributed is None or not hasattr(distributed, 'Worker'):
        return None
    try:
        return distributed.get_worker()
    except ValueError:
        pass
    instances = list(getattr(distributed.Worker, '_instances', ()))
    return instances[0] if len(instances) == 1 else None


def default_address():
    return os.environ.get('MPGO_CLUSTER') or 'local'


def driver(address):
    '''The driver's session, connected to address (None: the default) on
    first use. A process drives one cluster.'''
    global _driver
    with _driver_lock:
        if _driver is not None:
            if address is not None and address != _driver.requested:
                raise ValueError('this process already drives the cluster '
                                 'at %r, not %r' % (_driver.requested, address))
            return _driver
        _driver = _connect(address or default_address())
        return _driver


def driver_if_any():
    return _driver


def _connect(address):
    from . import _output
    distributed = import_distributed()
    cluster = None
    if address == 'local':
        from ._local import LocalCluster
        cluster = LocalCluster()
        try:
            client = distributed.Client(cluster.scheduler_address,
                                        set_as_default=False,
                                        timeout=_connect_timeout())
            client.wait_for_workers(cluster.n_workers,
                                    timeout=_connect_timeout())
        except BaseException:
            cluster.close()
            raise
    else:
        try:
            client = distributed.Client(address, set_as_default=False,
                                        timeout=_connect_timeout())
        except (OSError, asyncio.TimeoutError) as exc:
            raise SchedulerLostError(
                'cannot reach the Dask scheduler at %s: %s' % (address, exc)
            ) from None
    prefix = 'mpgo-%s-' % uuid.uuid4().hex[:12]
    session = Session(client, prefix, prefix + 'out')
    session.requested = address
    session.cluster = cluster
    session.pools = weakref.WeakSet()
    session.interrupted = False
    session.printer = _output.Printer(session)
    _hook_keyboard_interrupt(session)
    atexit.register(_at_exit, session)
    return session


def _connect_timeout():
    return float(os.environ.get('MPGO_CLUSTER_TIMEOUT') or 30)


def _hook_keyboard_interrupt(session):
    '''Note an exit by Ctrl-C: the run's tasks are then cancelled instead of
    waited for.'''
    original = sys.excepthook

    def excepthook(exc_type, exc, tb):
        if issubclass(exc_type, KeyboardInterrupt):
            session.interrupted = True
        original(exc_type, exc, tb)

    sys.excepthook = excepthook


def interrupted():
    '''Mark the driver's run as interrupted (Ctrl-C).'''
    if _driver is not None:
        _driver.interrupted = True


#
# The end of a run
#


def _at_exit(session):
    '''As CPython at exit: terminate the daemonic processes, join the
    others (terminate them all if the run was interrupted); then terminate
    the pools, stop whatever of the run still runs and drop its objects
    from the scheduler.'''
    global _driver
    try:
        if session.lost is None:
            process = sys.modules.get('mpgo.cluster.process')
            if process is not None:
                st = process.state()
                try:
                    process.exit_children(st, session.interrupted)
                except KeyboardInterrupt:
                    session.interrupted = True
                    process.exit_children(st, True)
                except Exception:
                    pass
                st.children.clear()
            for pool in list(session.pools):
                pool.terminate()
            session.printer.flush()
            stop_run(session)
    finally:
        close(session)
        _driver = None


def stop_run(session):
    '''Cancel every task of the run still known to the scheduler (their
    workers then interrupt them), and drop the run's scheduler state.'''
    if session.lost is not None or session.client.status != 'running':
        return
    prefix = session.prefix

    def drop(dask_scheduler, prefix=prefix):
        # Runs on the scheduler, pickled by value: the scheduler needs
        # nothing of mpgo. distributed has no public way to drop events
        # and topics, so this reaches into its extensions, each guarded.
        def own(names):
            return [n for n in list(names)
                    if isinstance(n, str) and n.startswith(prefix)]
        ext = dask_scheduler.extensions
        keys = own(dask_scheduler.tasks)
        try:
            queues = ext['queues']
            for name in own(queues.queues):
                del queues.queues[name]
                queues.client_refcount.pop(name, None)
        except Exception:
            pass
        try:
            variables = ext['variables']
            for name in own(variables.variables):
                del variables.variables[name]
                variables.waiting.pop(name, None)
                variables.waiting_conditions.pop(name, None)
        except Exception:
            pass
        try:
            events = ext['events']
            for name in own(events._events):
                del events._events[name]
                events._waiter_count.pop(name, None)
        except Exception:
            pass
        try:
            topics = dask_scheduler._broker._topics
            for name in own(topics):
                del topics[name]
        except Exception:
            pass
        return keys

    try:
        keys = session.client.run_on_scheduler(drop)
        if keys:
            session.client.cancel(
                [_future(session.client, k) for k in keys], force=True)
    except Exception:
        pass


def _future(client, key):
    distributed = sys.modules['distributed']
    return distributed.Future(key, client)


def close(session):
    try:
        session.printer.close()
    except Exception:
        pass
    try:
        session.client.close(timeout=5)
    except Exception:
        pass
    if session.cluster is not None:
        try:
            session.cluster.close(timeout=10)
        except Exception:
            pass


def shutdown(terminate=False):
    '''End the driver's run now, as at exit (its atexit hook is dropped);
    with terminate, as after Ctrl-C: its processes are terminated, not
    joined.'''
    session = _driver
    if session is not None:
        atexit.unregister(_at_exit)
        if terminate:
            session.interrupted = True
        _at_exit(session)
