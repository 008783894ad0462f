"""Child targets for test_zygote (module-level, so they pickle)."""

import os
import sys

import mpgo


def add_and_put(v, q, n, *, tag):
    '''Add n to the shared Value v and put what the child saw on q.'''
    with v.get_lock():
        v.value += n
    q.put((tag, mpgo.get_start_method(), os.getpid(),
           mpgo.parent_process().pid))


def say(text):
    print(text)
    sys.stdout.flush()


def fds_of_self():
    '''Exit with the number of open fds above 2 (to catch zygote leaks).'''
    sys.exit(len([fd for fd in os.listdir('/proc/self/fd') if int(fd) > 2]))


def engine_loaded():
    '''Exit with 1 if this process mapped the Go engine, else 0.'''
    with open('/proc/self/maps') as f:
        sys.exit(int('_pybind' in f.read()))


def uses_queue(q):
    q.put(os.getpid())


def frozen_and_collected(q):
    '''Put how many objects this child got frozen (the zygote's), then how
    many a full collection still finds.'''
    import gc
    q.put(gc.get_freeze_count())
    gc.collect()
    q.put(gc.get_freeze_count())


def ppid_and_pid(_):
    return os.getppid(), os.getpid()


def record_cmdline(path):
    from _helpers import write_result
    with open('/proc/self/cmdline', 'rb') as f:
        write_result(path, f.read())


def record_has_module(path, name):
    from _helpers import write_result
    write_result(path, name in sys.modules)


def bump_and_wait(v, e):
    '''Add 1 to v (loading the engine), then wait for e: its code starts
    no process (mpgo._leaf sees that).'''
    v.value += 1
    e.wait(30)


def bump_wait_and_maybe_start(v, e):
    '''As bump_and_wait, but its code may start a process.'''
    v.value += 1
    e.wait(30)
    if v.value < 0:
        mpgo.Process(target=print).start()


def bump_and_start(v):
    '''Load the engine, then start a child: exit with its exit code.'''
    v.value += 1
    import _helpers
    p = mpgo.Process(target=_helpers.exit_with, args=(7,))
    p.start()
    p.join()
    sys.exit(p.exitcode)


def idle_then_record_has_module(path, name):
    '''Forget the module name (inherited, as this child's zygote would
    be), start a child (this process gets a zygote of its own), stay idle
    long enough for a zygote's idle imports, then have a second child
    record whether it has the module.'''
    sys.modules.pop(name, None)
    p = mpgo.Process(target=print, args=('',))
    p.start()
    p.join()
    import time
    time.sleep(0.5)
    p = mpgo.Process(target=record_has_module, args=(path, name))
    p.start()
    p.join()
