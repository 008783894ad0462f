"""Whether a child's target can start processes of its own.

A child that loads the engine first forks a zygote of its own, since it
could not once Go runs: about 3 ms of a core (the fork, the new zygote's
set-up and, later, its exit), which most children never use (seed 000's
leaves, a worker that bumps a Value). Before a start, the parent looks at
the target's code: when nothing it can reach may start a process, the
child is told so and loads the engine without a zygote.

The look is conservative: any object it cannot see through (a module it
does not know, an instance of a class of the program, a method name that
starts something elsewhere) makes the answer "it may". A wrong "it cannot"
only costs time: the child that starts one after all gets a fresh zygote.
"""
import builtins
import types

__all__ = ['starts_no_process']

# Modules whose functions never start a process through mpgo.
_MODULES = frozenset(('time', 'math', 'random', 'os', 'sys', 'string', 're',
                      'itertools', 'functools', 'operator', 'collections',
                      'datetime', 'json', 'struct', 'array', 'statistics'))
# Names that start processes or run arbitrary code, as attributes or
# builtins.
_STARTERS = frozenset((
    'start', 'run', 'Process', 'Pool', 'Manager', 'SyncManager',
    'get_context', 'apply', 'apply_async', 'map', 'map_async', 'imap',
    'imap_unordered', 'starmap', 'starmap_async', 'submit', 'Parallel',
    'ProcessPoolExecutor', 'delayed', 'compute', 'fork', 'spawn',
    'exec', 'eval', 'compile', '__import__', 'import_module', 'system',
    'popen', 'execv', 'execve', 'getattr', 'globals', 'vars', 'locals',
    'breakpoint', 'input', '__getattribute__', '__dict__',
    # imported in the target: what may start processes
    'mpgo', 'multiprocessing', 'concurrent', 'subprocess', 'importlib',
    'joblib', 'loky', 'pebble', 'dask', 'distributed', 'mpire'))
_PLAIN = (int, float, complex, bool, str, bytes, bytearray, range, slice,
          type(None))
_DEPTH = 4
_ITEMS = 64


def starts_no_process(process_obj):
    '''Whether process_obj's run() surely starts no process.'''
    from . import process
    if type(process_obj).run is not process.BaseProcess.run:
        return False
    target = process_obj._target
    if target is None:
        return True
    try:
        return (_plain_values(process_obj._args) and
                _plain_values(process_obj._kwargs) and
                _function(target, _DEPTH, set()))
    except Exception:
        return False


def _mpgo_object(v):
    # Values, Arrays, queues, locks, proxies: their methods start nothing.
    return (type(v).__module__ or '').split('.')[0] in ('mpgo',
                                                         'multiprocessing')


def _plain_values(v, depth=2):
    if isinstance(v, _PLAIN) or _mpgo_object(v):
        return True
    if depth and type(v) in (list, tuple, set, frozenset) and len(v) <= _ITEMS:
        return all(_plain_values(x, depth - 1) for x in v)
    if depth and type(v) is dict and len(v) <= _ITEMS:
        return all(_plain_values(x, depth - 1)
                   for kv in v.items() for x in kv)
    return False


def _function(f, depth, seen):
    if type(f) is not types.FunctionType:
        return False
    if f in seen:
        return True
    if not depth:
        return False
    seen.add(f)
    for d in (f.__defaults__ or ()):
        if not _plain_values(d):
            return False
    for d in (f.__kwdefaults__ or {}).values():
        if not _plain_values(d):
            return False
    for cell in (f.__closure__ or ()):
        if not _global(cell.cell_contents, depth, seen):
            return False
    return _code(f.__code__, f.__globals__, depth, seen)


def _code(code, globs, depth, seen):
    for name in code.co_names:
        if name in _STARTERS:
            return False
        if name in globs:
            if not _global(globs[name], depth, seen):
                return False
        # else a builtin or an attribute name: neither is a starter
    for c in code.co_consts:
        if isinstance(c, types.CodeType) and not _code(c, globs, depth, seen):
            return False
    return True


def _global(v, depth, seen):
    if isinstance(v, types.ModuleType):
        return v.__name__ in _MODULES
    if type(v) is types.FunctionType:
        return _function(v, depth - 1, seen)
    if isinstance(v, types.BuiltinFunctionType):
        return v.__name__ not in _STARTERS
    if v is builtins:
        return False
    return _plain_values(v, depth=1)
