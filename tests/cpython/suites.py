"""The CPython test suites the harness runs, each from the running
interpreter's own `test` package (their files differ between versions).

A suite lists its test classes for a start method (the flavour):

  multiprocessing     test._test_multiprocessing installed for the flavour,
                      as CPython's test_multiprocessing_<flavour> does
                      (mp_suite.py)
  main_handling       test.test_multiprocessing_main_handling, the class of
                      the flavour (SpawnCmdLineTest, ...)
  concurrent_futures  test.test_concurrent_futures (a module up to 3.12, a
                      package from 3.13), the process pool classes of the
                      flavour
"""

import importlib
import pkgutil
import unittest


def _classes_of(module, keep):
    '''module.Class names of the TestCase classes of module with tests,
    for which keep(cls) is true, in definition order.'''
    loader = unittest.TestLoader()
    names = []
    for name, obj in vars(module).items():
        if isinstance(obj, type) and issubclass(obj, unittest.TestCase) and \
                obj.__module__ == module.__name__ and keep(obj) and \
                loader.getTestCaseNames(obj):
            names.append('%s.%s' % (module.__name__, name))
    return names


class _Suite(object):
    def __init__(self, name, classes):
        self.name = name
        self.classes = classes


def _mp_classes(flavour):
    import mp_suite
    return _classes_of(mp_suite, lambda cls: True)


_MAIN_HANDLING = {'spawn': 'SpawnCmdLineTest', 'fork': 'ForkCmdLineTest',
                  'forkserver': 'ForkServerCmdLineTest'}


def _main_handling_classes(flavour):
    try:
        mod = importlib.import_module('test.test_multiprocessing_main_handling')
    except ImportError:
        return []
    wanted = _MAIN_HANDLING[flavour]
    return _classes_of(mod, lambda cls: cls.__name__ == wanted)


def _cf_classes(flavour):
    try:
        pkg = importlib.import_module('test.test_concurrent_futures')
    except ImportError:
        return []   # not shipped with this interpreter
    modules = [pkg]
    if hasattr(pkg, '__path__'):
        modules = [importlib.import_module('%s.%s' % (pkg.__name__, m.name))
                   for m in pkgutil.iter_modules(pkg.__path__)
                   if m.name.startswith('test_')]
    names = []
    for mod in modules:
        names += _classes_of(mod, lambda cls: getattr(cls, 'ctx', None) == flavour)
    return names


SUITES = {
    'multiprocessing': _Suite('multiprocessing', _mp_classes),
    'main_handling': _Suite('main_handling', _main_handling_classes),
    'concurrent_futures': _Suite('concurrent_futures', _cf_classes),
}
