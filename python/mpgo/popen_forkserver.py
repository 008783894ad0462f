"""Popen for the 'forkserver' start method.

There is no fork server in mpgo: a 'forkserver' child is a fresh
interpreter started exactly like a 'spawn' child. Only the start method the
child reports differs.

Module name and class from CPython's Lib/multiprocessing/popen_forkserver.py
(PSF License).
"""

from . import popen_spawn_posix

__all__ = ['Popen']


class Popen(popen_spawn_posix.Popen):
    method = 'forkserver'
