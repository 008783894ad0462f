"""Process on a Dask cluster: a started Process is a task on a worker.

start() pickles the Process (target and arguments with it, by
mpgo.cluster._pickle) and submits a task, which secedes from the worker's
thread pool at once: every started Process runs concurrently, whatever the
number of worker threads, as every started process does locally. The task
runs the target as a child's bootstrap does (SystemExit codes, the
traceback of an exception on stderr and exit code 1) and returns the exit
code, once the Processes it started itself are joined (daemonic ones
terminated), as a child does at exit.

On the worker the Process is current_process(), and its pid is the
worker's: Processes on one worker share that process (its modules and
globals, its pid). terminate() and kill() cancel the task; the worker
stops the target at its next Python instruction (mpgo.cluster._runtime),
and exitcode is -SIGTERM or -SIGKILL. A task whose worker is lost is run
again as Dask's retry policy says; once Dask gives up (KilledWorker), the
Process has ended with exitcode -SIGKILL. sentinel is a pipe that becomes
readable when the task is over.

Adapted from CPython's Lib/multiprocessing/process.py (PSF License).
"""

import itertools
import os
import signal
import sys
import threading
import uuid

from .. import process as _process
from . import _output, _pickle, _session

__all__ = ['Process', 'current_process', 'active_children', 'parent_process']


class ProcState(object):
    '''What a process has of its own: its Process object, its parent, the
    Processes it started, the counter naming the ones it makes.'''

    def __init__(self, current, parent=None):
        self.current = current
        self.parent = parent
        self.children = set()
        self.counter = itertools.count(1)


_tls = threading.local()
_driver_state = None
_driver_state_lock = threading.Lock()


def state():
    '''The calling thread's process state: its task's, else the driver's.'''
    st = getattr(_tls, 'state', None)
    if st is not None:
        return st
    global _driver_state
    if _driver_state is None:
        with _driver_state_lock:
            if _driver_state is None:
                _driver_state = ProcState(_process._current_process,
                                          _process._parent_process)
    return _driver_state


def set_state(st):
    _tls.state = st


def current_process():
    '''The Process running this code (a Pool task: its worker).'''
    return state().current


def parent_process():
    return state().parent


def active_children():
    st = state()
    for p in list(st.children):
        if p._popen is not None and p._popen.poll() is not None:
            st.children.discard(p)
    children = list(st.children)
    if st is _driver_state:
        # The driver's local children too (a Manager's server, ...).
        _process._cleanup()
        children += list(_process._children)
    return children


class Process(_process.BaseProcess):
    '''A process whose target runs as a task on a Dask worker.'''

    _start_method = 'cluster'

    def __init__(self, group=None, target=None, name=None, args=(), kwargs={},
                 *, daemon=None):
        assert group is None, 'group argument must be None for now'
        st = state()
        count = next(st.counter)
        parent = st.current
        self._identity = tuple(getattr(parent, '_identity', ())) + (count,)
        self._config = dict(getattr(parent, '_config', {}))
        self._parent_pid = os.getpid()
        self._parent_name = parent.name
        self._popen = None
        self._closed = False
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs)
        self._name = name or type(self).__name__ + '-' + \
            ':'.join(str(i) for i in self._identity)
        if daemon is not None:
            self.daemon = daemon

    def start(self):
        '''Start the process: submit its task.'''
        self._check_closed()
        assert self._popen is None, 'cannot start a process twice'
        st = state()
        assert not getattr(st.current, '_config', {}).get('daemon'), \
            'daemonic processes are not allowed to have children'
        self._popen = Popen(self)
        self._sentinel = self._popen.sentinel
        del self._target, self._args, self._kwargs
        st.children.add(self)

    def join(self, timeout=None):
        '''Wait until the process's task is over.'''
        self._check_closed()
        assert self._popen is not None, 'can only join a started process'
        res = self._popen.wait(timeout)
        if res is not None:
            state().children.discard(self)

    def is_alive(self):
        self._check_closed()
        if self is state().current:
            return True
        if self._popen is None:
            return False
        if self._popen.poll() is None:
            return True
        state().children.discard(self)
        return False

    def close(self):
        if self._popen is not None:
            if self._popen.poll() is None:
                raise ValueError("Cannot close a process while it is still "
                                 "running. You should first call join() or "
                                 "terminate().")
            self._popen.close()
            self._popen = None
            del self._sentinel
            state().children.discard(self)
        self._closed = True

    @property
    def ident(self):
        '''The pid of the worker running the process (None before start).'''
        self._check_closed()
        if self is state().current:
            return os.getpid()
        return self._popen and self._popen.pid

    pid = ident

    @property
    def worker(self):
        '''The address of the worker running the process (None before
        start).'''
        self._check_closed()
        if self is state().current:
            return _session._this_worker().address
        return self._popen and self._popen.worker

    def __repr__(self):
        info = [type(self).__name__, 'name=%r' % self._name]
        if self is state().current:
            status = 'started'
        elif self._closed:
            status = 'closed'
        elif self._popen is None:
            status = 'initial'
        else:
            code = self._popen.poll()
            status = 'started' if code is None else 'stopped'
            if code is not None:
                info.append('exitcode=%s' % _process._exitcode_to_name.get(
                    code, code))
        info.insert(2, status)
        if self.daemon:
            info.append('daemon')
        return '<%s>' % ' '.join(info)

    def __reduce__(self):
        # Only an unstarted Process travels (as a task's payload).
        state = dict(self.__dict__)
        state['_popen'] = None
        state.pop('_sentinel', None)
        return _rebuild_process, (type(self), state)


def _rebuild_process(cls, state):
    p = cls.__new__(cls)
    p.__dict__.update(state)
    return p


class _Parent(object):
    '''parent_process() inside a Process task.'''

    def __init__(self, name, pid):
        self.name = name
        self.pid = self.ident = pid
        self.daemon = False

    def is_alive(self):
        return True

    def __repr__(self):
        return '<_ParentProcess name=%r parent=%s>' % (self.name, self.pid)


class WorkerProcess(_process.BaseProcess):
    '''current_process() inside a Pool task: the worker.'''

    def __init__(self, worker, authkey=None):
        self._identity = ()
        self._name = str(worker.name)
        self._parent_pid = None
        self._popen = None
        self._closed = False
        self._config = {}
        if authkey is not None:
            self._config['authkey'] = authkey
        self.worker = worker.address

    @property
    def ident(self):
        return os.getpid()

    pid = ident

    def is_alive(self):
        return True

    def __repr__(self):
        return '<WorkerProcess name=%r pid=%d>' % (self._name, os.getpid())


def worker_process(authkey=None):
    return WorkerProcess(_session._this_worker(), authkey)


#
# The driver's side of a started Process
#


_RUN_PROCESS = ('mpgo.cluster._runtime', 'run_process')


class Popen(object):
    '''A started Process's task, with the API of a local Popen.'''

    method = 'cluster'

    def __init__(self, process):
        session = _session.current()
        self._session = session
        self.daemonic = process.daemon
        self.returncode = None
        self._stop_code = None
        self._where = None
        self.key = '%sprocess-%s' % (session.prefix, uuid.uuid4().hex)
        payload = _pickle.dumps(process)
        info = {'run': session.prefix, 'topic': session.topic,
                'src': _output.new_source()}
        r, w = os.pipe()
        self.sentinel, self._bell = r, w
        self._bell_lock = threading.Lock()
        session.check()
        try:
            self._future = session.client.submit(
                _pickle.entry, _RUN_PROCESS, info, payload, key=self.key,
                pure=False)
        except BaseException:
            self._ring()
            raise
        session.watch(self._future, lambda f: self._ring())

    def _ring(self):
        with self._bell_lock:
            if self._bell is not None:
                os.close(self._bell)
                self._bell = None

    def poll(self, flag=None):
        if self.returncode is None and self._future is not None and \
                self._future.done():
            self._collect()
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None and self._future is not None:
            if self._session.wait_future(self._future, timeout):
                self._collect()
        return self.returncode

    def _collect(self):
        future = self._future
        status = future.status
        if status == 'finished':
            try:
                code, tag = self._session.call(future._result)
            except Exception as exc:
                if self._session.lost is not None:
                    raise
                code, tag = self._failed(exc), None
            _output.received(tag and tuple(tag))
        elif status == 'cancelled':
            if self._stop_code is None:
                self._session.check()
                reason = getattr(future._state, 'exception', None)
                if reason is not None and 'connection-lost' in str(reason):
                    raise self._session.lose(reason)
            code = self._stop_code if self._stop_code is not None \
                else -signal.SIGTERM
        else:
            try:
                exc = self._session.call(future._exception)
            except Exception as e:
                exc = e
            if self._session.lost is not None:
                self._session.check()
            code = self._failed(exc)
        self.returncode = code
        self._future = None

    def _failed(self, exc):
        '''The exit code of a task that failed at Dask's level.'''
        if type(exc).__name__ == 'KilledWorker':
            return -signal.SIGKILL
        sys.stderr.write('Process task %s failed: %s: %s\n'
                         % (self.key, type(exc).__name__, exc))
        return 1

    def _stop(self, code):
        if self.returncode is None and self._future is not None:
            if self._stop_code is None:
                self._stop_code = code
            try:
                self._session.call(self._session.client._cancel,
                                   [self._future], reason='terminated')
            except Exception:
                if self._session.lost is None:
                    raise

    def terminate(self):
        self._stop(-signal.SIGTERM)

    def kill(self):
        self._stop(-signal.SIGKILL)

    def interrupt(self):
        self._stop(-signal.SIGINT)

    @property
    def pid(self):
        return self._whereabouts()[0]

    @property
    def worker(self):
        return self._whereabouts()[1]

    def _whereabouts(self):
        '''(pid, worker address) of the task, once it has started (None, None
        if it ended without starting).'''
        while self._where is None:
            try:
                got = self._session.call(
                    self._session.scheduler.variable_get,
                    name=self.key + '-pid', timeout=0.5)
            except (TimeoutError, asyncio_timeout()):
                if self.poll() is not None:
                    return None, None
                continue
            self._where = tuple(got['value'])
        return self._where

    def close(self):
        self._ring()
        if self.sentinel is not None:
            os.close(self.sentinel)
            self.sentinel = None

    def __del__(self):
        try:
            self._ring()
            if self.sentinel is not None:
                os.close(self.sentinel)
        except Exception:
            pass


def asyncio_timeout():
    import asyncio
    return asyncio.TimeoutError


def exit_children(st, interrupted=False):
    '''What a process does with its children at exit (CPython's
    util._exit_function): terminate the daemonic ones, join the others;
    with interrupted, terminate them all.'''
    children = [p for p in list(st.children) if p._popen is not None]
    for p in children:
        if p.daemon or interrupted:
            p._popen.terminate()
    for p in children:
        p.join()


#
# The task's side
#


def bootstrap(task, payload):
    '''Run a started Process in a task; return its exit code.'''
    from ._runtime import Terminated
    process = None
    try:
        try:
            process = _pickle.loads(payload)
            task.state.current = process
            task.state.parent = _Parent(process._parent_name,
                                        process._parent_pid)
            task.session.call(task.session.scheduler.variable_set,
                              name=task.key + '-pid',
                              data=[os.getpid(), task.worker.address])
            try:
                process.run()
            except Terminated:
                raise
            except BaseException:
                exit_children(task.state)
                raise
            exit_children(task.state)
            exitcode = 0
        finally:
            task.finish()
    except Terminated as e:
        exitcode = -e.signum
    except SystemExit as e:
        if e.code is None:
            exitcode = 0
        elif isinstance(e.code, int):
            exitcode = e.code
        else:
            sys.stderr.write(str(e.code) + '\n')
            exitcode = 1
    except BaseException:
        exitcode = 1
        import traceback
        name = process.name if process is not None else '(not unpickled)'
        sys.stderr.write('Process %s:\n' % name)
        traceback.print_exc()
    return exitcode
