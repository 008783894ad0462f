"""Value, Array, RawValue and RawArray of the cluster.

An object's memory is the bytes of its ctypes object, in a distributed
Variable: reading `.value` or an item is one round trip to the scheduler,
writing a Value is one more. Writing an item or a field is a read, a
change and a write of the whole object under a lock (the Array's own; a
Raw object gets a lock of its own for it), so that processes writing
different items never undo each other's writes. The typecodes, and the
ctypes types, are CPython's, with their conversions (a Value('i') wraps at
32 bits, a Value('f') is single precision).

Value and Array (lock=True) have an RLock, as in CPython, and `with
v.get_lock(): v.value += 1` is exact across workers; `v.value` alone is one
atomic read or write, as a lock around it would make it.

Adapted from CPython's Lib/multiprocessing/sharedctypes.py (PSF License).
"""

import ctypes

from . import _dask, _session

__all__ = ['RawValue', 'RawArray', 'Value', 'Array', 'synchronized']

typecode_to_type = {
    'c': ctypes.c_char,     'u': ctypes.c_wchar,
    'b': ctypes.c_byte,     'B': ctypes.c_ubyte,
    'h': ctypes.c_short,    'H': ctypes.c_ushort,
    'i': ctypes.c_int,      'I': ctypes.c_uint,
    'l': ctypes.c_long,     'L': ctypes.c_ulong,
    'q': ctypes.c_longlong, 'Q': ctypes.c_ulonglong,
    'f': ctypes.c_float,    'd': ctypes.c_double
    }


def _ctx():
    '''The cluster context of this process: the bound one, else the
    driver's.'''
    from .context import bound_context, get_context
    ctx = bound_context()
    if ctx is None:
        driver = _session.driver_if_any()
        ctx = get_context(driver.requested if driver is not None else None)
    return ctx


class _Memory(object):
    '''A ctypes object's bytes in a Variable; writes of parts go under
    lock.'''

    def __init__(self, type_, obj, lock):
        session = _session.current()
        self._type = type_
        self._var = _dask.Variable(session, session.name('value'))
        self._lock = lock
        self._var.set(bytes(obj))

    def __getstate__(self):
        # Array types are made on the fly (c_int * 3): they pickle as what
        # makes them.
        return (_describe(self._type), self._var.name, self._lock)

    def __setstate__(self, state):
        desc, name, self._lock = state
        self._type = _build(desc)
        self._var = _dask.Variable(_session.current(), name)

    def load(self):
        return self._type.from_buffer_copy(self._var.get())

    def store(self, obj):
        self._var.set(bytes(obj))

    def update(self, change):
        '''Apply change(obj) to the object, atomically.'''
        with self._lock:
            obj = self.load()
            change(obj)
            self.store(obj)


def _describe(type_):
    if issubclass(type_, ctypes.Array):
        return ('array', _describe(type_._type_), type_._length_)
    return ('type', type_)


def _build(desc):
    if desc[0] == 'array':
        return _build(desc[1]) * desc[2]
    return desc[1]


class _RawBase(object):
    '''A ctypes object of the cluster (what a RawValue or RawArray is).'''

    def __init__(self, memory):
        object.__setattr__(self, '_memory', memory)

    def __reduce__(self):
        return type(self), (self._memory,)

    def _copy(self):
        '''A private ctypes copy of the object.'''
        return self._memory.load()


class RawValueObject(_RawBase):

    @property
    def value(self):
        return self._memory.load().value

    @value.setter
    def value(self, v):
        obj = self._memory._type()
        obj.value = v
        self._memory.store(obj)

    def __getattr__(self, name):
        # The fields of a Structure.
        if name.startswith('_'):
            raise AttributeError(name)
        return getattr(self._memory.load(), name)

    def __setattr__(self, name, v):
        if name.startswith('_'):
            object.__setattr__(self, name, v)
        else:
            self._memory.update(lambda obj: setattr(obj, name, v))

    def __repr__(self):
        return '<cluster %s: %r>' % (self._memory._type.__name__,
                                     self._memory.load())


class RawArrayObject(_RawBase):

    def __init__(self, memory):
        _RawBase.__init__(self, memory)
        object.__setattr__(self, '_length', memory._type._length_)

    def __len__(self):
        return self._length

    def __getitem__(self, i):
        return self._memory.load()[i]

    def __setitem__(self, i, v):
        def change(obj):
            obj[i] = v
        self._memory.update(change)

    def __iter__(self):
        return iter(self._memory.load()[:])

    @property
    def value(self):
        return self._memory.load().value

    @value.setter
    def value(self, v):
        self._memory.update(lambda obj: setattr(obj, 'value', v))

    @property
    def raw(self):
        return self._memory.load().raw

    @raw.setter
    def raw(self, v):
        self._memory.update(lambda obj: setattr(obj, 'raw', v))

    def __repr__(self):
        return '<cluster %s: %r>' % (self._memory._type.__name__,
                                     self._memory.load()[:])


def _type_of(typecode_or_type):
    return typecode_to_type.get(typecode_or_type, typecode_or_type)


def RawValue(typecode_or_type, *args, ctx=None):
    '''A ctypes value of the cluster.'''
    type_ = _type_of(typecode_or_type)
    obj = type_(*args)
    return RawValueObject(_Memory(type_, obj, (ctx or _ctx()).Lock()))


def RawArray(typecode_or_type, size_or_initializer, *, ctx=None):
    '''A ctypes array of the cluster.'''
    type_ = _type_of(typecode_or_type)
    if isinstance(size_or_initializer, int):
        type_ = type_ * size_or_initializer
        obj = type_()
    else:
        type_ = type_ * len(size_or_initializer)
        obj = type_(*size_or_initializer)
    return RawArrayObject(_Memory(type_, obj, (ctx or _ctx()).Lock()))


def _lock_of(lock, ctx):
    if lock in (True, None):
        return (ctx or _ctx()).RLock()
    if not hasattr(lock, 'acquire'):
        raise AttributeError("%r has no method 'acquire'" % lock)
    return lock


def Value(typecode_or_type, *args, lock=True, ctx=None):
    '''A synchronized Value of the cluster.'''
    if lock is False:
        return RawValue(typecode_or_type, *args, ctx=ctx)
    lock = _lock_of(lock, ctx)
    type_ = _type_of(typecode_or_type)
    obj = RawValueObject(_Memory(type_, type_(*args), lock))
    return Synchronized(obj, lock)


def Array(typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
    '''A synchronized Array of the cluster.'''
    if lock is False:
        return RawArray(typecode_or_type, size_or_initializer, ctx=ctx)
    lock = _lock_of(lock, ctx)
    type_ = _type_of(typecode_or_type)
    if isinstance(size_or_initializer, int):
        type_ = type_ * size_or_initializer
        obj = type_()
    else:
        type_ = type_ * len(size_or_initializer)
        obj = type_(*size_or_initializer)
    raw = RawArrayObject(_Memory(type_, obj, lock))
    if type_._type_ is ctypes.c_char:
        return SynchronizedString(raw, lock)
    return SynchronizedArray(raw, lock)


def synchronized(obj, lock=None, ctx=None):
    '''Wrap a cluster Raw object with lock (a new RLock if None).'''
    lock = _lock_of(lock, ctx)
    if isinstance(obj, RawArrayObject):
        return SynchronizedArray(obj, lock)
    return Synchronized(obj, lock)


class SynchronizedBase(object):

    def __init__(self, obj, lock):
        self._obj = obj
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def __reduce__(self):
        return type(self), (self._obj, self._lock)

    def get_obj(self):
        return self._obj

    def get_lock(self):
        return self._lock

    def __repr__(self):
        return '<%s wrapper for %r>' % (type(self).__name__, self._obj)


class Synchronized(SynchronizedBase):

    @property
    def value(self):
        return self._obj.value

    @value.setter
    def value(self, v):
        self._obj.value = v


class SynchronizedArray(SynchronizedBase):

    def __len__(self):
        return len(self._obj)

    def __getitem__(self, i):
        return self._obj[i]

    def __setitem__(self, i, value):
        self._obj[i] = value

    def __getslice__(self, start, stop):
        return self._obj[start:stop]

    def __setslice__(self, start, stop, values):
        self._obj[start:stop] = values


class SynchronizedString(SynchronizedArray):

    @property
    def value(self):
        return self._obj.value

    @value.setter
    def value(self, v):
        self._obj.value = v

    @property
    def raw(self):
        return self._obj.raw

    @raw.setter
    def raw(self, v):
        self._obj.raw = v
