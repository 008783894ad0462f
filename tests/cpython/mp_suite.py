"""CPython's test._test_multiprocessing, installed for one start method.

This is what CPython's test_multiprocessing_<method> modules do; the start
method (the flavour) is MPGO_CPYTHON_FLAVOUR, which every child inherits,
so that a child unpickling a test class rebuilds this same module.
"""

import os

import test._test_multiprocessing as _base

_FLAVOUR = os.environ.get('MPGO_CPYTHON_FLAVOUR', 'spawn')

_base.install_tests_in_module_dict(globals(), _FLAVOUR)
