"""The command line a process shows in /proc/PID/cmdline (ps, psutil).

A zygote forked from the process it serves has that process's command line,
so tools that count a process's children by their command lines took it
(and its spare) for a worker: loky's test suite, for one, which tells
CPython's forkserver apart by "multiprocessing.forkserver" in its command
line. The zygote writes its own over the space argv took (the kernel shows
that memory as it is now), and each child it forks writes the original
back, as a child of the parent's own fork would show it.

Only the bytes argv took are used: a longer title is cut (setproctitle(3)
also takes the environment's space, which would mean moving environ).
"""

import ctypes
import os

__all__ = ['replace', 'restore']

TITLE = 'mpgo.zygote multiprocessing.forkserver'


def _argv_area():
    '''(start, end) of argv's strings in this process's memory, from
    /proc/self/stat (fields 48 and 49), or None.'''
    try:
        with open('/proc/self/stat', 'rb') as f:
            stat = f.read()
        # Fields from the third on follow the ")" that ends comm (which
        # may itself hold spaces and parentheses).
        fields = stat[stat.rindex(b')') + 2:].split()
        start, end = int(fields[48 - 3]), int(fields[49 - 3])
    except (OSError, ValueError, IndexError):
        return None
    return (start, end) if 0 < start < end else None


def replace(title=TITLE):
    '''Show title as this process's command line, cut to the space argv
    took; return what restore() needs to put the original back (None if
    it could not be done).'''
    area = _argv_area()
    if area is None:
        return None
    start, end = area
    size = end - start
    try:
        original = ctypes.string_at(start, size)
        new = os.fsencode(title).replace(b' ', b'\0')[:size - 1]
        ctypes.memmove(start, new.ljust(size, b'\0'), size)
    except (OSError, ValueError):
        return None
    return start, original


def restore(saved):
    '''Show again the command line replace() replaced.'''
    if saved is not None:
        start, original = saved
        ctypes.memmove(start, original, len(original))
