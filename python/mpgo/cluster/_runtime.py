"""What runs on a worker: the tasks of Processes and of Pools.

Each task function gets `info`, a small dict the driver made
({'run': prefix, 'topic': output topic, 'src': output source id}), and a
payload pickled by mpgo.cluster._pickle. Around the task, `_Task` gives the
thread the run's session (the worker's client), an output sink, and its
process state (current_process(), children, name counter); it registers the
thread so that the worker's monitor can stop it: a task whose Dask key was
cancelled (terminate(), the driver's exit or Ctrl-C, or the driver gone)
gets an asynchronous exception, Terminated, at its next Python instruction
(or within 0.1 s in a blocking call of a cluster object; a blocking C call
such as time.sleep finishes first).

Before its first task, a worker binds mpgo's module-level names to the
cluster context (mpgo.cluster.context.bind), so that what a task runs finds
the cluster under `multiprocessing`.
"""

import ctypes
import signal
import sys
import threading
import time

import distributed

from . import _output, _pickle, _session

__all__ = ['run_process', 'run_batch', 'Terminated']


class Terminated(BaseException):
    '''Raised in a task's thread to stop it; signum is what a local process
    would have been killed with.'''
    signum = signal.SIGTERM


class Killed(Terminated):
    signum = signal.SIGKILL


_running = {}               # Dask key -> _Task
_running_lock = threading.Lock()
_monitor_started = False
_bound = False
_bind_lock = threading.Lock()


def _bind_worker():
    global _bound
    with _bind_lock:
        if _bound:
            return
        from . import context
        context.bind(context.ClusterContext(None), driver=False)
        _bound = True


class _Task(object):

    def __init__(self, info, current=None, parent=None):
        self.worker = distributed.get_worker()
        self.key = self.worker.get_current_task()
        self.thread = threading.get_ident()
        self.session = _session.Session(self.worker._get_client(),
                                        info['run'], info['topic'])
        # The Pipe() ends the task unpickles, closed when it ends.
        self.session.opened = []
        self.sink = _output.Sink(self.worker, info['topic'], info['src'])
        from .process import ProcState
        self.state = ProcState(current, parent)
        self.tag = None
        self.running = False
        self.stop = None            # the Terminated class sent, if any

    def __enter__(self):
        _bind_worker()
        _start_monitor()
        _session.set_task_session(self.session)
        _output.set_sink(self.sink)
        _process_mod().set_state(self.state)
        with _running_lock:
            _running[self.key] = self
            self.running = True
        return self

    def finish(self):
        '''The task's own work is over: it can no longer be interrupted.'''
        with _running_lock:
            self.running = False
            _running.pop(self.key, None)

    def __exit__(self, *exc):
        try:
            self.finish()
            for conn in self.session.opened:
                try:
                    conn.close()
                except Exception:
                    pass
        except Terminated:
            pass
        self.tag = self.sink.close()
        _output.set_sink(None)
        _session.set_task_session(None)
        _process_mod().set_state(None)
        return False

    def interrupt(self, exc_type):
        # with _running_lock held
        if not self.running or self.stop is not None:
            return
        self.stop = exc_type
        ctypes.pythonapi.PyThreadState_SetAsyncExc(
            ctypes.c_ulong(self.thread), ctypes.py_object(exc_type))


def _process_mod():
    from . import process
    return process


def _start_monitor():
    global _monitor_started
    with _running_lock:
        if _monitor_started:
            return
        _monitor_started = True
    threading.Thread(target=_monitor, name='mpgo-monitor',
                     daemon=True).start()


def _monitor():
    '''Stop the tasks whose keys the scheduler cancelled.'''
    while True:
        time.sleep(0.1)
        try:
            with _running_lock:
                tasks = list(_running.values())
            for task in tasks:
                ts = task.worker.state.tasks.get(task.key)
                if ts is None or ts.state in ('cancelled', 'released',
                                              'forgotten'):
                    with _running_lock:
                        task.interrupt(getattr(task, 'kill_type',
                                               Terminated))
        except Exception:
            pass


#
# Processes
#


def run_process(info, payload):
    '''The task of a started Process: return (exitcode, output tag).'''
    distributed.secede()
    from .process import bootstrap
    with _Task(info) as task:
        exitcode = bootstrap(task, payload)
    return exitcode, list(task.tag)


#
# Pools
#

# (run prefix, pool id) -> the globals its initializer set, on this worker
_initialized = {}
_init_lock = threading.Lock()


def run_batch(info, payload):
    '''A batch of Pool units: return its pickled outcome, (('ok', [(job,
    index, pickled (success, value))]) or ('init', exception), output tag);
    see mpgo.cluster.pool.'''
    import pickle
    from .process import worker_process
    with _Task(info, current=worker_process()) as task:
        try:
            outcome = _run_units(info, pickle.loads(payload))
        finally:
            task.finish()
    return cloudpickle_dumps((outcome, list(task.tag)))


def cloudpickle_dumps(obj):
    import cloudpickle
    return cloudpickle.dumps(obj, protocol=5)


def _run_units(info, batch):
    from ..pool import ExceptionWithTraceback
    pool_id, init, units = batch
    funcs = {}
    out = []
    todo = []
    for job, i, kind, fdata, data in units:
        try:
            func = funcs.get(fdata)
            if func is None:
                func = funcs[fdata] = _pickle.loads(fdata)
            todo.append((job, i, kind, func, _pickle.loads(data)))
        except Terminated:
            raise
        except Exception as e:
            out.append((job, i, _dump_result(
                (False, ExceptionWithTraceback(e, e.__traceback__)))))
    if init is not None:
        failed = _initialize((info['run'], pool_id), init, funcs.values())
        if failed is not None:
            return ('init', failed)
    for job, i, kind, func, data in todo:
        try:
            if kind == 'apply':
                args, kwds = data
                result = (True, func(*args, **kwds))
            elif kind == 'map':
                result = (True, list(map(func, data)))
            else:
                result = (True, [func(*args) for args in data])
        except Terminated:
            raise
        except Exception as e:
            result = (False, ExceptionWithTraceback(e, e.__traceback__))
        out.append((job, i, _dump_result(result)))
    return ('ok', out)


def _dump_result(result):
    from ..pool import MaybeEncodingError
    try:
        return cloudpickle_dumps(result)
    except Exception as e:
        wrapped = MaybeEncodingError(e, result[1])
        return cloudpickle_dumps((False, wrapped))


def _initialize(key, init, funcs):
    '''Run the pool's initializer once per worker, and give this batch's
    functions the globals it set (functions of __main__, and of modules
    pickled by value, come with module globals of their own).'''
    from ..pool import ExceptionWithTraceback
    with _init_lock:
        done = _initialized.get(key)
        if done is None:
            try:
                initializer, initargs = _pickle.loads(init)
                ns = getattr(initializer, '__globals__', {})
                before = dict(ns)
                initializer(*initargs)
            except Terminated:
                raise
            except Exception as e:
                return ExceptionWithTraceback(e, e.__traceback__)
            done = _initialized[key] = {
                k: v for k, v in ns.items()
                if k not in before or before[k] is not v}
    for func in funcs:
        ns = getattr(func, '__globals__', None)
        if ns is not None and ns is not _module_dict(ns):
            ns.update(done)     # a function that came by value
    return None


def _module_dict(ns):
    module = sys.modules.get(ns.get('__name__'))
    return getattr(module, '__dict__', None)
