"""Makes `multiprocessing` and every `multiprocessing.X` resolve to mpgo.

`install()` puts a finder at the front of sys.meta_path that maps
`multiprocessing[.X]` to `mpgo[.X]`: importing the alias imports mpgo's
module and registers that same module object under both names, so
`multiprocessing.pool is mpgo.pool`. A name mpgo lacks fails to import, as a
missing module does.

`python -m mpgo` installs it before running the program, and a child of an
aliased process installs it before importing __mp_main__ or unpickling
anything (spawn.prepare).

`propagate()` (called by `python -m mpgo` too) extends that to every Python
child, however it is started: libraries such as loky start their workers
with their own fork+exec of `python -m their.module`, which imports
`multiprocessing` before anything of mpgo runs. propagate() puts
mpgo/_boot at the front of PYTHONPATH, whose sitecustomize installs the
alias at the child's start-up, in an interpreter of the same version only
(MPGO_ALIAS holds its cache tag). Children started with -E, -I or -S
ignore it, as they ignore PYTHONPATH.
"""

import importlib
import importlib.machinery
import os
import sys

__all__ = ['install', 'is_installed', 'propagate']

_ALIAS = 'multiprocessing'
_REAL = 'mpgo'


def _real_name(fullname):
    '''Return mpgo's name for an aliased module name, else None.'''
    if fullname == _ALIAS:
        return _REAL
    if fullname.startswith(_ALIAS + '.'):
        return _REAL + fullname[len(_ALIAS):]
    return None


# Not importlib.abc's and importlib.util's: importing them costs a few
# milliseconds of every start-up, and the import system needs only the
# methods.


class _AliasLoader(object):
    '''Loads an alias by importing mpgo's module and returning it as is.'''

    def __init__(self, real_name):
        self._real_name = real_name

    def create_module(self, spec):
        module = importlib.import_module(self._real_name)
        # The import system stamps the alias spec on whatever module we
        # return (other attributes it leaves alone): keep the real one.
        self._real_spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self._real_spec


class _AliasFinder(object):

    def find_spec(self, fullname, path=None, target=None):
        real_name = _real_name(fullname)
        if real_name is None:
            return None
        real = sys.modules.get(real_name)
        real_spec = getattr(real, '__spec__', None)
        if real_spec is None:
            from importlib.util import find_spec
            real_spec = find_spec(real_name)
            if real_spec is None:
                return None
        return importlib.machinery.ModuleSpec(
            fullname, _AliasLoader(real_name),
            is_package=real_spec.submodule_search_locations is not None)

    def invalidate_caches(self):
        pass


_finder = None


def install():
    '''Make `multiprocessing` and its submodules resolve to mpgo's.

    Idempotent. Modules of the standard library's multiprocessing that are
    already imported are dropped from sys.modules, so later imports get
    mpgo's.'''
    global _finder
    if _finder is not None:
        return
    for name in list(sys.modules):
        real_name = _real_name(name)
        if real_name is not None and sys.modules[name] is not \
                sys.modules.get(real_name):
            del sys.modules[name]
    _finder = _AliasFinder()
    sys.meta_path.insert(0, _finder)


def is_installed():
    '''Return whether install() has been called in this process.'''
    return _finder is not None


_BOOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '_boot')


def propagate():
    '''Make `multiprocessing` mpgo in every Python child of this process
    started from now on (see the module's docstring).'''
    os.environ['MPGO_ALIAS'] = sys.implementation.cache_tag
    parts = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    if _BOOT not in parts:
        os.environ['PYTHONPATH'] = os.pathsep.join([_BOOT] + parts)
