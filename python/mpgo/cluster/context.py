"""The cluster context: multiprocessing's factory methods, on Dask.

`get_context(address)` returns the context for a scheduler address (or
'local'); `mpgo.get_context('cluster')` returns the one for MPGO_CLUSTER.
`bind(ctx)` makes mpgo's module-level names (Process, Queue, Pool, Lock,
current_process, cpu_count, get_context, ...) the context's, which is how
`python -m mpgo --cluster ADDRESS` runs a script unmodified; a worker binds
them too before its first task, so that code a task runs finds the cluster
there (`multiprocessing.Queue()` inside a Process target makes a cluster
queue).

Names that are not about processes (get_logger, log_to_stderr,
freeze_support, ...) stay mpgo's.
"""

import threading

from .. import context as _context
from .. import process as _process
from . import _session

__all__ = ['ClusterContext', 'get_context', 'bind']


def _process_class():
    from .process import Process
    return Process


class ClusterContext(_context.BaseContext):
    '''A context whose objects live on a Dask cluster.'''

    _name = 'cluster'

    def __init__(self, address=None):
        self._address = address
        self._bound = False

    def __reduce__(self):
        return _unpickle_context, ()

    def _session(self):
        session = getattr(_session._tls, 'session', None)
        if session is not None:
            return session
        if _session.driver_if_any() is None and _session._this_worker():
            return _session.current()
        return _session.driver(self._address)

    def connect(self):
        '''Connect now (the first object made connects otherwise); return
        the Dask client.'''
        return self._session().client

    def shutdown(self, terminate=False):
        '''End the run now, as at exit: join the Processes (terminate the
        daemonic ones; with terminate, all of them), terminate the Pools,
        stop what still runs on the cluster, drop the run's objects there,
        and disconnect. The next object made starts a new run.'''
        _session.shutdown(terminate)

    @property
    def Process(self):
        return _process_class()

    def current_process(self):
        '''The Process running this code: inside a Process task the Process
        itself, in a Pool task the worker; in the driver, its own.'''
        from . import process
        return process.current_process()

    def parent_process(self):
        from . import process
        return process.parent_process()

    def active_children(self):
        from . import process
        return process.active_children()

    def cpu_count(self):
        '''The number of worker threads of the cluster.'''
        session = self._session()
        nthreads = session.call(session.scheduler.ncores)
        total = sum(nthreads.values())
        if total < 1:
            raise NotImplementedError('the cluster has no workers')
        return total

    def Manager(self):
        '''A SyncManager on this machine, listening on the address workers
        reach this machine at (see mpgo.cluster.managers).'''
        from .managers import start_manager
        return start_manager(self._session())

    def Pipe(self, duplex=True):
        from .connection import Pipe
        return Pipe(duplex)

    def Lock(self):
        from .synchronize import Lock
        return Lock(ctx=self)

    def RLock(self):
        from .synchronize import RLock
        return RLock(ctx=self)

    def Condition(self, lock=None):
        from .synchronize import Condition
        return Condition(lock, ctx=self)

    def Semaphore(self, value=1):
        from .synchronize import Semaphore
        return Semaphore(value, ctx=self)

    def BoundedSemaphore(self, value=1):
        from .synchronize import BoundedSemaphore
        return BoundedSemaphore(value, ctx=self)

    def Event(self):
        from .synchronize import Event
        return Event(ctx=self)

    def Barrier(self, parties, action=None, timeout=None):
        from .synchronize import Barrier
        return Barrier(parties, action, timeout, ctx=self)

    def Queue(self, maxsize=0):
        from .queues import Queue
        return Queue(maxsize, ctx=self)

    def JoinableQueue(self, maxsize=0):
        from .queues import JoinableQueue
        return JoinableQueue(maxsize, ctx=self)

    def SimpleQueue(self):
        from .queues import SimpleQueue
        return SimpleQueue(ctx=self)

    def Pool(self, processes=None, initializer=None, initargs=(),
             maxtasksperchild=None):
        from .pool import Pool
        return Pool(processes, initializer, initargs, maxtasksperchild,
                    context=self)

    def RawValue(self, typecode_or_type, *args):
        from .sharedctypes import RawValue
        return RawValue(typecode_or_type, *args, ctx=self)

    def RawArray(self, typecode_or_type, size_or_initializer):
        from .sharedctypes import RawArray
        return RawArray(typecode_or_type, size_or_initializer, ctx=self)

    def Value(self, typecode_or_type, *args, lock=True):
        from .sharedctypes import Value
        return Value(typecode_or_type, *args, lock=lock, ctx=self)

    def Array(self, typecode_or_type, size_or_initializer, *, lock=True):
        from .sharedctypes import Array
        return Array(typecode_or_type, size_or_initializer, lock=lock,
                     ctx=self)

    def get_context(self, method=None):
        '''None or 'cluster': this context. A start method: this context
        too once it is bound (the program runs on the cluster; its start
        method means nothing there), else that local context.'''
        if method is None or method == 'cluster':
            return self
        if self._bound:
            _check_method(method)
            return self
        return super().get_context(method)

    def get_start_method(self, allow_none=False):
        return self._name

    def set_start_method(self, method, force=False):
        '''Accepted and ignored once bound: workers are already running.'''
        if method is not None and method != 'cluster':
            _check_method(method)
        if not self._bound:
            raise ValueError('cannot set start method of concrete context')

    def get_all_start_methods(self):
        return _context._default_context.get_all_start_methods()

    def __repr__(self):
        address = self._address or _session.default_address()
        return '<ClusterContext %s>' % address


def _check_method(method):
    if method not in _context._default_context.get_all_start_methods():
        raise ValueError('cannot find context for %r' % method)


_contexts = {}
_contexts_lock = threading.Lock()


def get_context(address=None):
    '''The cluster context for address (None: MPGO_CLUSTER, else 'local').'''
    address = address or _session.default_address()
    with _contexts_lock:
        ctx = _contexts.get(address)
        if ctx is None:
            ctx = _contexts[address] = ClusterContext(address)
        return ctx


_bound_context = None


def bound_context():
    return _bound_context


def _unpickle_context():
    if _bound_context is not None:
        return _bound_context
    return get_context(None)


# mpgo's names that become the context's when bound. The start method
# stays the local one: what children of this machine (a Manager's server)
# are started with.
_BOUND_NAMES = (
    'Process', 'current_process', 'parent_process', 'active_children',
    'cpu_count', 'Manager', 'Pipe', 'Lock', 'RLock', 'Condition',
    'Semaphore', 'BoundedSemaphore', 'Event', 'Barrier', 'Queue',
    'JoinableQueue', 'SimpleQueue', 'Pool', 'RawValue', 'RawArray', 'Value',
    'Array', 'get_context')


def bind(ctx, driver=True):
    '''Make mpgo's module-level names ctx's (see the module doc).'''
    global _bound_context
    import mpgo
    # mpgo's own modules that take names from the package when imported
    # (as CPython's do) must keep the local ones. The driver imports the
    # managers now (they load the engine, which a worker does not need).
    from .. import pool, spawn  # noqa: F401
    if driver:
        try:
            from .. import managers  # noqa: F401
        except ImportError:     # no engine here: local managers cannot run
            pass
    ctx._bound = True
    _bound_context = ctx
    for name in _BOUND_NAMES:
        setattr(mpgo, name, getattr(ctx, name))
    # `multiprocessing.process.current_process()` is used too.
    _process.current_process = ctx.current_process
    _process.active_children = ctx.active_children
    _process.parent_process = ctx.parent_process


def start_driver(address):
    '''For `python -m mpgo --cluster ADDRESS`: connect to the cluster and
    bind mpgo to it; on failure, say why on stderr and return False.'''
    import sys
    from .errors import SchedulerLostError
    ctx = get_context(address)
    try:
        ctx.connect()
    except ImportError as exc:
        sys.stderr.write('mpgo: --cluster needs Dask\'s distributed '
                         '(pip install mpgo[cluster]): %s\n' % exc)
        return False
    except SchedulerLostError as exc:
        sys.stderr.write('mpgo: %s\n' % exc)
        return False
    bind(ctx)
    return True
