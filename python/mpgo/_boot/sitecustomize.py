"""Makes `multiprocessing` mpgo in a Python child of a `python -m mpgo`
program, however the child was started (loky's fork_exec, subprocess...).

`python -m mpgo` puts this directory at the front of PYTHONPATH and sets
MPGO_ALIAS to its interpreter's cache tag (mpgo._alias.propagate), so
Python imports this module at start-up, before the child's own code. An
interpreter of another version (whose cache tag differs) is left alone.
The sitecustomize module this one shadows, if any, is run next, and this
directory is taken off sys.path, so the child's sys.path is what it would
have been.
"""

import os
import sys


def _install():
    if os.environ.get('MPGO_ALIAS') != sys.implementation.cache_tag:
        return
    # The directory holding the mpgo package this one belongs to.
    parent = os.path.dirname(os.path.dirname(_HERE))
    if not any(os.path.abspath(p or '.') == parent for p in sys.path):
        sys.path.append(parent)
    from mpgo import _alias
    _alias.install()


def _run_shadowed():
    import importlib.machinery
    import importlib.util
    spec = importlib.machinery.PathFinder.find_spec('sitecustomize', sys.path)
    if spec is None or spec.origin == __file__:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules['sitecustomize'] = module
    spec.loader.exec_module(module)


_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or '.') != _HERE]
try:
    _install()
finally:
    _run_shadowed()
