"""Fork semantics without a fork: what a 'fork' child gets of __main__.

A child of the 'fork' start method is forked by the zygote, which never ran
the parent's __main__, and it must not run it either. So whatever the child
needs of __main__ travels by value, as of the moment it is sent: the
Process object, its target and arguments, a Pool's callables, tasks and
initializer, and every function, class and global of __main__ they reach
(lambdas, closures, nested functions, instances of classes defined there).
cloudpickle does that; this module adds two things to it:

* the functions of __main__ keep __main__'s namespace as their globals in
  the child: they are rebuilt over the child's own `__main__.__dict__`, so
  that a global one of them sets is seen by the others, and `import
  __main__` finds what the child was sent;
* every top-level function and class of __main__ the child receives is
  also put into its __main__ under its name, so that the child can pickle
  it (or an instance of it) by reference as usual, and the parent, which
  has the original, unpickles it as its own.

Threading locks and open files, which pickle refuses, go as a fork copies
them (see "What a fork copies" below). What a real fork carries and this
does not: module globals changed at run time that nothing sent reaches,
fds not reached through a file object, threads, and objects no pickler can
copy, such as generators (the README lists these differences).

Functions of __main__ (top-level ones, lambdas, closures and nested
functions) are pickled by value here, without cloudpickle, whose import
costs more than a whole child's start: their code goes as marshal data,
their globals as the names they use. Anything else that must go by value
(a class of __main__, an instance of one, a function of another module that
cannot be found by name) makes the pickle start again with cloudpickle,
imported then.
"""

import io
import marshal
import sys
import types

__all__ = ['dump', 'dumps', 'main_info', 'install_main']

# Per thread would be needed only if a pickler were reused; each call makes
# its own (a cloudpickle.Pickler keeps state per dump).
_pickler_class = None


def _main_dict():
    '''Reconstructor: the unpickling process's __main__ namespace.'''
    return sys.modules['__main__'].__dict__


class _MainGlobals(object):
    '''Stands, in a pickle, for the globals of __main__'s functions.'''

    def __reduce__(self):
        return _main_dict, ()


_MAIN_GLOBALS = _MainGlobals()


def _register(obj):
    '''Put obj, a function or class of __main__ just rebuilt, into this
    process's __main__ if it is a top-level name there.'''
    name = getattr(obj, '__qualname__', '')
    if getattr(obj, '__module__', None) == '__main__' and name.isidentifier():
        main = sys.modules.get('__main__')
        if main is not None:
            main.__dict__[name] = obj


def _class_setstate(obj, state):
    from cloudpickle import cloudpickle
    obj = cloudpickle._class_setstate(obj, state)
    _register(obj)
    return obj


def _function_setstate(obj, state):
    from cloudpickle import cloudpickle
    cloudpickle._function_setstate(obj, state)
    _register(obj)


class _ByValue(Exception):
    '''Raised by the light pickler for what only cloudpickle can send.'''


def _global_names(code):
    '''The names code and the code nested in it may look up as globals (a
    superset: attribute names too; a value that does not pickle makes the
    pickle start again with cloudpickle, which is exact).'''
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


_EMPTY = object()   # stands in the pickle for an empty closure cell


def _cell_value(cell):
    try:
        return cell.cell_contents
    except ValueError:
        return _EMPTY


def _new_function(code, name, ncells):
    '''Reconstructor: a function of __main__, over this process's
    __main__ namespace, its state set by _set_function.'''
    closure = None if ncells is None else tuple(
        types.CellType() for _ in range(ncells))
    return types.FunctionType(marshal.loads(code), _main_dict(), name, None,
                              closure)


def _set_function(f, state):
    qualname, defaults, kwdefaults, doc, attrs, annotations, globs, cells = state
    f.__qualname__ = qualname
    f.__defaults__ = defaults
    f.__kwdefaults__ = kwdefaults
    f.__doc__ = doc
    if attrs:
        f.__dict__.update(attrs)
    if annotations:
        f.__annotations__ = annotations
    f.__globals__.update(globs)
    if cells is not None:
        for cell, value in zip(f.__closure__, cells):
            if value is not _EMPTY:
                cell.cell_contents = value
    _register(f)


def _reduce_main_function(f):
    code = f.__code__
    g = f.__globals__
    globs = {n: _copied(g[n]) for n in _global_names(code) if n in g}
    cells = None if f.__closure__ is None else [
        _copied(_cell_value(c)) for c in f.__closure__]
    ncells = None if cells is None else len(cells)
    state = (f.__qualname__, f.__defaults__, f.__kwdefaults__, f.__doc__,
             f.__dict__ or None, getattr(f, '__annotations__', None) or None,
             globs, cells)
    return (_new_function, (marshal.dumps(code), f.__name__, ncells), state,
            None, None, _set_function)


def _reduce_module(m):
    import importlib
    return importlib.import_module, (m.__name__,)


def _reduce_module_method(obj):
    '''For a method bound to an object that a module other than __main__
    holds it under, as random's functions are (`from random import
    random`): the child's own (reduce args), as a fork child's would be,
    rather than a copy of the object it is bound to; else None. (A copy of
    random's Random would give every child the parent's next numbers,
    where a fork child reseeds.)'''
    self = getattr(obj, '__self__', None)
    name = getattr(obj, '__name__', None)
    if self is None or isinstance(self, types.ModuleType) or \
            type(name) is not str:
        return None
    modname = getattr(type(self), '__module__', None)
    module = sys.modules.get(modname) if modname != '__main__' else None
    if module is None or getattr(module, name, None) != obj:
        return None
    return getattr, (module, name)


def _by_reference(obj):
    '''Whether pickle finds obj (a function or class) by its name.'''
    name = getattr(obj, '__qualname__', '')
    module = sys.modules.get(getattr(obj, '__module__', None) or '')
    if module is None or '<' in name:
        return False
    for part in name.split('.'):
        module = getattr(module, part, None)
    return module is obj


#
# What a fork copies and pickle refuses
#
# A forked child has a copy of every object, so scripts written for 'fork'
# hand children threading locks and open files, which do not pickle. They
# travel here as a fork would copy them: a lock as a new lock in the same
# state; a file as the same open file description (its fd is passed to the
# child, so the offset is shared, as after a fork), wrapped as it was;
# this process's stdio as the child's.
#


def _rebuild_lock(locked):
    import _thread
    lock = _thread.allocate_lock()
    if locked:
        lock.acquire()
    return lock


def _reduce_lock(lock):
    return _rebuild_lock, (lock.locked(),)


def _rebuild_rlock():
    import _thread
    return _thread.RLock()


def _reduce_rlock(lock):
    # Held or not, by a thread the child does not have: a new one.
    return _rebuild_rlock, ()


def _stdio(name):
    return getattr(sys, name)


def _rebuild_file(dupfd, kind, mode, name, encoding, errors, line_buffering):
    import io
    key = getattr(dupfd, 'key', None)
    if key is not None:
        # One object per file in this process, however many pickles (a
        # Pool's tasks) bring it, as after a fork.
        f = _received_files.get(key)
        if f is not None:
            return f
    fd = dupfd.detach()
    raw = io.FileIO(fd, mode, closefd=True)
    try:
        raw.name = name
    except AttributeError:
        pass
    if kind == 'raw':
        return _keep(key, raw)
    if '+' in mode:
        buffered = io.BufferedRandom(raw)
    elif 'r' in mode:
        buffered = io.BufferedReader(raw)
    else:
        buffered = io.BufferedWriter(raw)
    if kind == 'buffered':
        return _keep(key, buffered)
    text = io.TextIOWrapper(buffered, encoding, errors,
                            line_buffering=line_buffering)
    try:
        text.mode = mode.replace('b', '')
    except AttributeError:
        pass
    return _keep(key, text)


def _keep(key, f):
    if key is not None:
        _received_files[key] = f
    return f


def _reduce_file(f):
    import io
    for name in ('stdin', 'stdout', 'stderr'):
        if f is getattr(sys, name, None) or f is getattr(sys, '__%s__' % name, None):
            return _stdio, (name,)
    if isinstance(f, io.TextIOWrapper):
        kind, buffered = 'text', f.buffer
    elif isinstance(f, io.FileIO):
        kind, buffered = 'raw', None
    else:
        kind, buffered = 'buffered', f
    raw = f if buffered is None else getattr(buffered, 'raw', None)
    if not isinstance(raw, io.FileIO) or raw.closed:
        raise TypeError('cannot pickle %r object' % type(f).__name__)
    from .context import get_spawning_popen
    if get_spawning_popen() is not None:
        from .reduction import DupFd
        dupfd = DupFd(raw.fileno())      # passed with the child's start
    else:
        dupfd = _SharedFd(_share(raw))   # a Pool's task: fetched from us
    return _rebuild_file, (dupfd, kind, raw.mode, raw.name,
                           getattr(f, 'encoding', None),
                           getattr(f, 'errors', None),
                           getattr(f, 'line_buffering', False))


# Files a child received by _SharedFd: key -> the file object.
_received_files = {}
# Files of ours that children may fetch: key -> fd (a dup, closed when the
# file object goes).
_shared_fds = {}


def _share(raw):
    '''Return the key under which the main-object server hands children a
    dup of raw's fd.'''
    import os
    import weakref
    key = '%d-%d' % (os.getpid(), id(raw))
    if key not in _shared_fds:
        fd = os.dup(raw.fileno())
        _shared_fds[key] = fd

        def forget(_, key=key, fd=fd):
            if _shared_fds.get(key) == fd:
                del _shared_fds[key]
                os.close(fd)
        _shared_refs[key] = weakref.ref(raw, forget)
    return key


_shared_refs = {}


class _SharedFd(object):
    '''Stands, in a pickle, for an fd a child fetches from our server.'''

    def __init__(self, key):
        self.key = key

    def __reduce__(self):
        return _SharedFd, (self.key,)

    def detach(self):
        if _fetcher is None:
            raise OSError('mpgo: no parent to fetch a file from')
        return _fetcher.fetch_fd(self.key)


class _ForkCopy(object):
    '''Stands, in a pickle, for a global or closure variable of a function
    of __main__ that a fork would copy (a Pool's task function reads a
    global lock, say, which its worker would have as a fork child).'''

    __slots__ = ('obj',)

    def __init__(self, obj):
        self.obj = obj

    def __reduce__(self):
        return _FORK_COPIES[type(self.obj)](self.obj)


def _copied(value):
    return _ForkCopy(value) if type(value) in _FORK_COPIES else value


def _fork_copies():
    import _thread
    import io
    copies = {_thread.LockType: _reduce_lock, _thread.RLock: _reduce_rlock}
    for t in (io.TextIOWrapper, io.BufferedReader, io.BufferedWriter,
              io.BufferedRandom, io.FileIO):
        copies[t] = _reduce_file
    return copies


_FORK_COPIES = _fork_copies()
_METHOD_TYPES = (types.MethodType, types.BuiltinMethodType)


def _copies_anything():
    '''Whether what is being pickled is a child's start, which a fork would
    not pickle at all: then any lock or file goes as a fork copies it. A
    Pool's tasks are pickled under a real fork too, so their arguments must
    pickle as there; only what their functions read of __main__ (which a
    fork child would have) is copied (_ForkCopy).'''
    from .context import get_spawning_popen
    return get_spawning_popen() is not None


_light_class = None


def _make_light_class():
    from .reduction import ForkingPickler

    class LightPickler(ForkingPickler):
        '''ForkingPickler, with __main__'s functions by value.'''

        def __init__(self, file, protocol=None):
            super().__init__(file, protocol)
            self.main = sys.modules.get('__main__')
            self.copies = _copies_anything()

        def reducer_override(self, obj):
            t = type(obj)
            if t is types.FunctionType:
                if obj.__module__ == '__main__':
                    if self.main is not None and \
                            obj.__globals__ is self.main.__dict__:
                        return _reduce_main_function(obj)
                    raise _ByValue(obj)
                if not _by_reference(obj):
                    raise _ByValue(obj)
            elif t is types.ModuleType:
                if sys.modules.get(obj.__name__) is obj:
                    return _reduce_module(obj)
            elif t in _METHOD_TYPES:
                rv = _reduce_module_method(obj)
                if rv is not None:
                    return rv
            elif isinstance(obj, type) and obj.__module__ == '__main__':
                raise _ByValue(obj)
            elif t in _FORK_COPIES and self.copies:
                return _FORK_COPIES[t](obj)
            return NotImplemented

    return LightPickler


def _make_pickler_class():
    import collections
    import cloudpickle
    from cloudpickle import cloudpickle as impl
    from .reduction import ForkingPickler

    setters = {impl._class_setstate: _class_setstate,
               impl._function_setstate: _function_setstate}

    class ForkPickler(cloudpickle.Pickler):
        '''cloudpickle, with mpgo's reducers, for a 'fork' child.'''

        # mpgo's reducers (connections, sockets, ...) first; the dict is
        # ForkingPickler's own, so later register() calls apply here too.
        dispatch_table = collections.ChainMap(
            ForkingPickler._extra_reducers, cloudpickle.Pickler.dispatch_table)

        def __init__(self, file, protocol=None):
            super().__init__(file, protocol)
            if _copies_anything():
                self.dispatch_table = collections.ChainMap(
                    ForkingPickler._extra_reducers, _FORK_COPIES,
                    cloudpickle.Pickler.dispatch_table)
            main = sys.modules.get('__main__')
            if main is not None:
                # cloudpickle rebuilds a function's globals from the object
                # it finds here: for __main__'s, the child's __main__.
                self.globals_ref[id(main.__dict__)] = _MAIN_GLOBALS

        def reducer_override(self, obj):
            if type(obj) in _METHOD_TYPES:
                rv = _reduce_module_method(obj)
                if rv is not None:
                    return rv
            rv = super().reducer_override(obj)
            if type(rv) is tuple and len(rv) == 6 and rv[5] in setters and \
                    getattr(obj, '__module__', None) == '__main__':
                rv = rv[:5] + (setters[rv[5]],)
            return rv

    return ForkPickler


def _pickler(file, protocol=None):
    global _pickler_class
    if _pickler_class is None:
        _pickler_class = _make_pickler_class()
    return _pickler_class(file, protocol)


def dump(obj, file, protocol=None):
    '''Pickle obj into file for a 'fork' child.'''
    file.write(dumps(obj, protocol))


def dumps(obj, protocol=None):
    '''Return the pickle of obj for a 'fork' child (what a Pool under
    'fork' sends its workers).'''
    global _light_class
    from .reduction import _PLAIN
    t = type(obj)
    if t in _PLAIN:
        import pickle
        return pickle.dumps(obj, protocol)
    if _light_class is None:
        _light_class = _make_light_class()
    from .context import get_spawning_popen
    popen = get_spawning_popen()
    passed = len(getattr(popen, '_fds', ()))
    buf = io.BytesIO()
    try:
        _light_class(buf, protocol).dump(obj)
    except _ByValue:
        # Again from the start: the fds the first try passed are not used.
        if passed < len(getattr(popen, '_fds', ())):
            del popen._fds[passed:]
        buf = io.BytesIO()
        _pickler(buf, protocol).dump(obj)
    return buf.getvalue()


#
# Objects of __main__ a child meets later, by name
#
# A child may receive a reference to an object of our __main__ that nothing
# it was sent reached: a function submitted to a ProcessPoolExecutor, or a
# task on pebble's pipe, goes by name (`__main__.f`), as with a real fork,
# where the child has all of __main__. The child then asks us for it: each
# process that starts 'fork' children serves its __main__'s objects, by
# value, on a Unix socket in the abstract namespace, to clients that know
# its authkey (a thread, started with the first such child). The child's
# __main__ fetches a name it lacks from there (install_main's __getattr__).
#

_server = None   # (address, pid) of this process's server


def main_server():
    '''Return the address of this process's server of __main__'s objects,
    starting it if need be.'''
    global _server
    import os
    if _server is not None and _server[1] == os.getpid():
        return _server[0]
    import _thread
    import socket
    from . import process
    address = '\0mpgo-main-%d-%s' % (os.getpid(), os.urandom(8).hex())
    # A bare socket, and mpgo.connection (with its authentication) only
    # once a child connects: most programs' children never do.
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(address)
    sock.listen(64)
    authkey = bytes(process.current_process().authkey)
    # A bare thread: threading.Thread.start() waits until the thread runs,
    # which held up a program's first start() by up to a millisecond, and
    # nothing needs it to run before a child connects (the socket queues).
    # It never ends, as a daemon thread would not.
    _thread.start_new_thread(_serve_main, (sock, authkey))
    _server = (address, os.getpid())
    return address


def _serve_main(sock, authkey):
    import threading
    while True:
        try:
            client, _ = sock.accept()
        except OSError:
            import time
            time.sleep(0.1)   # out of fds, say: the child will retry
            continue
        threading.Thread(target=_answer, args=(client, authkey), daemon=True,
                         name='mpgo-main-object').start()


def _answer(client, authkey):
    from . import connection
    conn = connection.Connection(client.detach())
    with conn:
        try:
            connection.deliver_challenge(conn, authkey)
            connection.answer_challenge(conn, authkey)
        except Exception:
            return     # a client that failed to authenticate
        while True:
            try:
                name = conn.recv()
            except (EOFError, OSError):
                return
            if isinstance(name, tuple):   # ('fd', key): a file's fd
                fd = _shared_fds.get(name[1])
                try:
                    conn.send(fd is not None)
                    if fd is not None:
                        from .reduction import send_handle
                        send_handle(conn, fd, None)
                except OSError:
                    return
                continue
            try:
                data = dumps(getattr(sys.modules['__main__'], name))
            except Exception:
                data = b''   # the child raises AttributeError
            try:
                conn.send_bytes(data)
            except OSError:
                return


class _Fetcher(object):
    '''A child's connection to its parent's server of __main__'s objects.'''

    def __init__(self, address):
        import threading
        self.address = address
        self.lock = threading.Lock()
        self.conn = None

    def fetch(self, name):
        with self.lock:
            self._connect()
            self.conn.send(name)
            return self.conn.recv_bytes()

    def _connect(self):
        if self.conn is None:
            from . import connection, process
            self.conn = connection.Client(
                self.address, 'AF_UNIX',
                authkey=bytes(process.current_process().authkey))

    def fetch_fd(self, key):
        with self.lock:
            self._connect()
            self.conn.send(('fd', key))
            if not self.conn.recv():
                raise OSError('mpgo: the parent has closed the file this '
                              'child was sent')
            from .reduction import recv_handle
            return recv_handle(self.conn)


_fetcher = None   # this 'fork' child's _Fetcher


def main_info():
    '''What a 'fork' child needs to make its own __main__ look like ours:
    its file, package and docstring, the modules its globals name (the
    child imports one when something asks __main__ for it), and where to
    ask for the rest.'''
    import types
    main = sys.modules.get('__main__')
    info = {}
    for name in ('__file__', '__package__', '__doc__'):
        value = getattr(main, name, None)
        if isinstance(value, str):
            info[name] = value
    modules = {}
    for name, value in list(getattr(main, '__dict__', {}).items()):
        if isinstance(value, types.ModuleType) and not name.startswith('__') \
                and sys.modules.get(value.__name__) is value:
            modules[name] = value.__name__
    return info, modules, main_server()


def install_main(data):
    '''In a 'fork' child: make an empty __main__ that looks like the
    parent's (it is filled as objects of the parent's __main__ arrive);
    return the module it replaces.'''
    import builtins
    import types
    info, modules, server = data
    old = sys.modules.get('__main__')
    main = types.ModuleType('__main__')
    main.__dict__.update(info)
    main.__builtins__ = builtins
    global _fetcher
    fetcher = _fetcher = _Fetcher(server)

    def __getattr__(name):
        # A module the parent's __main__ imported, imported when asked
        # for: a fork child has them all, and most children need few.
        if name in modules:
            import importlib
            module = main.__dict__[name] = importlib.import_module(modules[name])
            return module
        # Anything else of the parent's __main__, by value, when first
        # asked for (an object sent to us by name).
        if not name.startswith('__'):
            try:
                data = fetcher.fetch(name)
            except (OSError, EOFError):
                data = b''   # the parent is gone
            if data:
                import pickle
                obj = pickle.loads(data)
                return main.__dict__.setdefault(name, obj)
        raise AttributeError("module '__main__' has no attribute %r" % name)

    main.__getattr__ = __getattr__
    sys.modules['__main__'] = sys.modules['__mp_main__'] = main
    return old
