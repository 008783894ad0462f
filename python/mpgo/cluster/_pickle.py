"""Pickling for the cluster: cloudpickle, and a refusal of local objects.

Everything a task gets (a Process and its target and arguments, Pool tasks,
queue messages) is pickled here, in the caller, with cloudpickle: functions
and classes of __main__ travel by value, as Dask sends them. Pickling
happens as if spawning a child (context.set_spawning_popen), so that what
CPython lets a child inherit pickles too (a Manager proxy carries its
authkey, a Process its authkey).

An object that only lives on this machine raises LocalObjectError here,
saying what it is and what to use instead, rather than reaching a worker as
a useless copy (a RawValue would silently become a private value) or
failing there: mpgo Queues, locks, Values, Arrays and Pipe ends made by a
local context, shared_memory blocks, threading locks, files, sockets, and
Manager proxies of a server on a Unix socket.
"""

import ctypes
import io
import pickle
import socket
import threading

import cloudpickle

from .. import context as _context
from .errors import LocalObjectError

__all__ = ['dumps', 'loads']

loads = pickle.loads

_CTYPES = (ctypes._SimpleCData, ctypes.Array, ctypes.Structure, ctypes.Union)

_USE_CLUSTER = ('make it with the cluster context instead '
                '(multiprocessing.%s() under `python -m mpgo --cluster ...`, '
                'or '
                "mpgo.get_context('cluster').%s())")

_LOCAL_MODULES = {
    'mpgo.queues': ('an mpgo %s made by a local context lives in this '
                    "machine's shared memory", 'Queue'),
    'mpgo.synchronize': ('an mpgo %s made by a local context lives in this '
                         "machine's shared memory", 'Lock'),
    'mpgo.sharedctypes': ('an mpgo %s made by a local context lives in this '
                          "machine's shared memory", 'Value'),
    'mpgo.heap': ("an mpgo %s is this machine's shared memory", 'RawArray'),
    'mpgo.connection': ('an mpgo %s (a Pipe() end or a socket connection of '
                        'a local context) holds file descriptors of this '
                        'process', 'Pipe'),
    'mpgo.shared_memory': ("a %s block lives in this machine's /dev/shm; send "
                           'its contents, or use an Array of the cluster '
                           'context', None),
    'mpgo.process': ('an mpgo %s is a process of this machine', 'Process'),
}

_THREAD_LOCKS = (type(threading.Lock()), type(threading.RLock()))
# Objects holding a file descriptor (io.BytesIO and io.StringIO do not).
_FDS = (socket.socket, io.FileIO, io.BufferedReader, io.BufferedWriter,
        io.BufferedRandom, io.BufferedRWPair, io.TextIOWrapper)


def _verdict(t):
    '''Why instances of type t cannot go to a cluster task (None: they can,
    as far as their type tells).'''
    module = getattr(t, '__module__', '') or ''
    if module in _LOCAL_MODULES and (module != 'mpgo.process' or
                                     t.__name__.endswith('Process')):
        why, instead = _LOCAL_MODULES[module]
        why = why % t.__name__
        if instead is not None:
            why += '; ' + _USE_CLUSTER % (instead, instead)
        return why
    if issubclass(t, _THREAD_LOCKS):
        return ('a threading lock works within one process only; use '
                'multiprocessing.Lock() of the cluster context')
    if issubclass(t, _FDS):
        return ('an open %s (a file descriptor) belongs to this process; '
                'pass its name or its contents' % t.__name__)
    return None


_verdicts = {}


class _Pickler(cloudpickle.Pickler):

    def reducer_override(self, obj):
        t = type(obj)
        try:
            why = _verdicts[t]
        except KeyError:
            why = _verdicts[t] = _verdict(t)
        if why is None and isinstance(obj, _CTYPES) and \
                getattr(obj, '_wrapper', None) is not None:
            why = ('a ctypes object of a local RawValue or RawArray is this '
                   "machine's shared memory; "
                   + _USE_CLUSTER % ('RawValue', 'RawValue'))
        if why is None and t.__module__ == 'mpgo.managers':
            token = getattr(obj, '_token', None)
            if token is not None and isinstance(token.address, str):
                why = ('a proxy of a manager listening on a Unix socket (%s) '
                       'cannot be reached from a worker; use Manager() of '
                       'the cluster context, or start the manager with a '
                       'TCP address' % token.address)
        if why is not None:
            raise LocalObjectError('cannot send %s.%s to a cluster task: %s'
                                   % (t.__module__, t.__qualname__, why))
        return super().reducer_override(obj)


def dumps(obj):
    '''Pickle obj for a cluster task (see the module doc).'''
    buf = io.BytesIO()
    previous = _context.get_spawning_popen()
    _context.set_spawning_popen(_SPAWNING)
    try:
        _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    finally:
        _context.set_spawning_popen(previous)
    return buf.getvalue()


class _Spawning(object):
    '''Stands for the Popen of a child being spawned while pickling.'''

    def duplicate_for_child(self, fd):
        raise LocalObjectError('cannot send a file descriptor to a cluster '
                               'task')

    def register_handle(self, handle):
        pass


_SPAWNING = _Spawning()


def _make_entry():
    def entry(where, *args):
        # Pickled by value (a nested function): the scheduler, which
        # unpickles task graphs, needs nothing of mpgo; workers import it.
        import importlib
        module, name = where
        try:
            target = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name not in ('mpgo', 'mpgo.cluster'):
                raise
            raise ImportError('this Dask worker cannot import mpgo: install '
                              "it (the driver's version, with its [cluster] "
                              'extra) where the workers run') from e
        return getattr(target, name)(*args)
    return entry


# entry(('mpgo.cluster._runtime', 'run_process'), ...) calls that function.
entry = _make_entry()
