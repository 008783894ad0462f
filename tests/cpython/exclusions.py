"""CPython tests that mpgo knowingly fails, each with its reason, and the
classes too slow for CI's fast selection.

A test listed here that passes on the standard library and not on mpgo is
reported as excluded, not as an unexpected failure. An exclusion with
run=False is not run on mpgo at all (it would hang); the others run, and
run.py reports an exclusion whose test passes on mpgo again so that it
can be removed. Patterns are fnmatch patterns on the test id without its
module (Class.test_method); the README lists the same tests.
"""

import collections
import fnmatch

# flavours: the start methods it applies to (None: all).
Exclusion = collections.namedtuple('Exclusion', 'pattern reason run flavours',
                                   defaults=(None,))

EXCLUSIONS = [
    Exclusion(
        '*TestQueue.test_queue_feeder_donot_stop_onexc',
        "put() pickles in the caller: an object that cannot be pickled "
        "raises in put() and the queue is left as it was, where CPython's "
        "feeder thread prints the error and goes on",
        True),
    Exclusion(
        '*TestConnection.test_missing_fd_transfer',
        "writes raw bytes into a Pipe() end's fileno() for the peer to read; "
        "mpgo's Pipe() ends carry messages on shared-memory rings and "
        "fileno() is the read end of their doorbell, so the child's write "
        "fails (EBADF) and the parent's recv_handle() waits for ever "
        "(send_handle/recv_handle themselves work: test_fd_transfer)",
        False),
    Exclusion(
        '*TestHeap.*',
        "tests CPython's pure-Python heap allocator (Heap, "
        "BufferWrapper._heap, _len_to_seq, _allocated_blocks...); mpgo's "
        "shared memory comes from the engine's memfd arenas (core/shm), and "
        "those names raise AttributeError saying so",
        True),
    Exclusion(
        'TestResourceTracker.test_resource_tracker_sigkill',
        "expects making a Semaphore to talk to the resource tracker (and "
        "warn that it was killed): CPython registers its named POSIX "
        "semaphores there, mpgo's live in memfd arenas the kernel frees, "
        "with nothing to register (the tracker itself is restarted: the "
        "SIGINT and SIGTERM variants pass)",
        True),
    Exclusion(
        'TestCloseFds.test_closefd',
        "under 'fork', expects the child to inherit every fd of the parent, "
        "here a bare fd number passed as an int; an mpgo 'fork' child is "
        "forked by the zygote and gets stdio and the fds of what it is sent "
        "(files, sockets, connections), not the parent's whole fd table "
        "(under spawn and forkserver, where CPython expects EBADF, it passes)",
        True, ('fork',)),
    Exclusion(
        '*ProcessPoolExecutorTest.test_python_finalization_error',
        "(3.13) makes the second thread a ProcessPoolExecutor starts fail, "
        "expecting it to be the call queue's feeder thread; an mpgo Queue "
        "has no feeder thread (put() writes to its ring in the caller), so "
        "no thread fails and the executor runs the test's deliberately "
        "wrong call, whose TypeError it reports",
        True),
]

# Classes (fnmatch patterns on the class name) left out of --fast: the
# ones taking 8 s or more on the standard library on a 2-core machine
# (Python 3.11), whose subject the rest of the suite covers too.
SLOW = [
    'TestWait',
    'WithProcessesTestBarrier',
    'WithManagerTestBarrier',
    'WithProcessesTestCondition',
    'WithManagerTestCondition',
    'TestSyncManagerTypes',
]


def find(test_id, flavour=None):
    '''The Exclusion of test_id (module.Class.test) under the start method
    flavour, or None.'''
    short = '.'.join(test_id.split('.')[-2:])
    for ex in EXCLUSIONS:
        if ex.flavours is not None and flavour not in ex.flavours:
            continue
        if fnmatch.fnmatch(short, ex.pattern):
            return ex
    return None


def is_slow(class_id):
    name = class_id.split('.')[-1]
    return any(fnmatch.fnmatch(name, pat) for pat in SLOW)
