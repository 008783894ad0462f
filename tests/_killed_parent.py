"""The parent that test_parent_killed.py SIGKILLs.

It holds every kind of helper process mpgo starts: a Manager's server (with
a proxy), a SharedMemoryManager's server (with a block, in /dev/shm), a
Pool's workers, a daemonic Process, a forkserver zygote and the daemonic
child it forked, and a non-daemonic Process that must outlive it as in
CPython. It prints "ready <block name>" once all of them run, then waits to
be killed.

usage: python _killed_parent.py MARKER_PATH
"""

import os
import sys
import time

import mpgo
from mpgo.managers import SharedMemoryManager


def sleep_long():
    time.sleep(600)


def outlive_parent(marker):
    # Non-daemonic: it is not killed with its parent, so it sees it go.
    mpgo.parent_process().join()
    with open(marker + '.tmp', 'w') as f:
        f.write(str(os.getpid()))
    os.replace(marker + '.tmp', marker)


def main(marker):
    manager = mpgo.Manager()
    shared = manager.list([1, 2])
    smm = SharedMemoryManager()
    smm.start()
    block = smm.SharedMemory(4096)
    pool = mpgo.Pool(2)
    assert pool.apply(abs, (-3,)) == 3
    daemon = mpgo.Process(target=sleep_long, daemon=True)
    daemon.start()
    forked = mpgo.get_context('forkserver').Process(target=sleep_long, daemon=True)
    forked.start()
    survivor = mpgo.Process(target=outlive_parent, args=(marker,))
    survivor.start()
    assert shared[1] == 2 and daemon.is_alive() and forked.is_alive()
    print('ready', block.name, flush=True)
    time.sleep(600)


if __name__ == '__main__':
    main(sys.argv[1])
