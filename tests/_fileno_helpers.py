"""Child-process targets for test_fileno.py (top level, so that spawned
children import them by name)."""

import os
import select


def pebble_reader(reader, lock, results):
    """pebble's worker loop: wait with select.poll on the shared read
    end's fileno(), then under the lock check poll(0) and recv(); report
    every message got, until None."""
    mask = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
    got = []
    while True:
        p = select.poll()
        p.register(reader, mask)    # calls reader.fileno()
        p.poll()
        with lock:
            if not reader.poll(0):
                continue            # another reader took it
            obj = reader.recv()
        if obj is None:
            break
        got.append(obj)
    results.put((os.getpid(), got))


def send_handle_back(conn):
    """Receive an fd with recv_handle, write into it, and close it."""
    from mpgo import reduction
    fd = reduction.recv_handle(conn)
    os.write(fd, b'written by %d\n' % os.getpid())
    os.close(fd)
    conn.send('done')


def send_own_handle(conn, path):
    """Open path and send its fd to the parent, then close it at once."""
    from mpgo import reduction
    fd = os.open(path, os.O_RDONLY)
    reduction.send_handle(conn, fd, os.getppid())
    os.close(fd)
    conn.recv()     # the parent has read through it
