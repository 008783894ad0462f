"""Child-process targets for test_resource_tracker.py."""

import os

from mpgo import resource_tracker, shared_memory


def create_and_leave(conn):
    """Create a block, report its name and the tracker's pid, and exit
    without unlinking it (the parent still uses it)."""
    sm = shared_memory.SharedMemory(create=True, size=16)
    sm.buf[0] = 7
    conn.send((sm.name, resource_tracker._resource_tracker._pid))
    conn.recv()
    sm.close()


def report_tracker(conn):
    t = resource_tracker._resource_tracker
    conn.send((t._fd is not None, t._pid, os.getpid()))
