"""Popen for the 'fork' start method.

mpgo never forks (a process running the Go runtime must not): a 'fork'
child is a fresh interpreter started exactly like a 'spawn' child. Only the
start method the child reports differs.

Module name and class from CPython's Lib/multiprocessing/popen_fork.py
(PSF License).
"""

from . import popen_spawn_posix

__all__ = ['Popen']


class Popen(popen_spawn_posix.Popen):
    method = 'fork'
