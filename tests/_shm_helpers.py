"""Child-process targets for test_shared_memory.py (module level, so that
spawned children can import them by name)."""
from mpgo import shared_memory


def write_by_name(name, data, result):
    """Attach to a block by name, check its head, write data after it."""
    shm = shared_memory.SharedMemory(name)
    try:
        result.send((shm.size, bytes(shm.buf[:5])))
        shm.buf[5:5 + len(data)] = data
    finally:
        shm.close()
        result.close()


def write_pickled(shm, data):
    """Receive a SharedMemory as a Process argument and write into it."""
    shm.buf[:len(data)] = data
    shm.close()


def update_list_by_name(name):
    sl = shared_memory.ShareableList(name=name)
    try:
        sl[0] = sl[0] * 2
        sl[2] = 'child'
        sl[3] = None
    finally:
        sl.shm.close()


def update_pickled_list(sl):
    sl[1] = -1.5
    sl.shm.close()
