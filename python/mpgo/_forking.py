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

What a real fork carries and this does not: module globals changed at run
time that nothing sent reaches, open files, threads and locks held (the
README lists these differences).

cloudpickle is imported only when something is pickled this way.
"""

import io
import sys

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
            main = sys.modules.get('__main__')
            if main is not None:
                # cloudpickle rebuilds a function's globals from the object
                # it finds here: for __main__'s, the child's __main__.
                self.globals_ref[id(main.__dict__)] = _MAIN_GLOBALS

        def reducer_override(self, obj):
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
    _pickler(file, protocol).dump(obj)


def dumps(obj, protocol=None):
    '''Return the pickle of obj for a 'fork' child (what a Pool under
    'fork' sends its workers).'''
    from .reduction import _PLAIN
    t = type(obj)
    if t in _PLAIN:
        import pickle
        return pickle.dumps(obj, protocol)
    buf = io.BytesIO()
    _pickler(buf, protocol).dump(obj)
    return buf.getvalue()


def main_info():
    '''What a 'fork' child needs to make its own __main__ look like ours:
    its file, package and docstring, and the modules its globals name (the
    child imports one when something asks __main__ for it).'''
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
    return info, modules


def install_main(data):
    '''In a 'fork' child: make an empty __main__ that looks like the
    parent's (it is filled as objects of the parent's __main__ arrive);
    return the module it replaces.'''
    import builtins
    import types
    info, modules = data
    old = sys.modules.get('__main__')
    main = types.ModuleType('__main__')
    main.__dict__.update(info)
    main.__builtins__ = builtins

    def __getattr__(name):
        # A module the parent's __main__ imported, imported when asked
        # for: a fork child has them all, and most children need few.
        if name in modules:
            import importlib
            module = main.__dict__[name] = importlib.import_module(modules[name])
            return module
        raise AttributeError("module '__main__' has no attribute %r" % name)

    main.__getattr__ = __getattr__
    sys.modules['__main__'] = sys.modules['__mp_main__'] = main
    return old
