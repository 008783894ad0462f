"""Other packages' modules in the zygote: tried in a probe first.

A fork child inherits every module its parent imported; a zygote's child
only those the zygote has. The zygote imports the standard library's and
mpgo's modules the served process imported since (zygote.sync_modules), and
those of installed packages too, but only once a probe has shown that they
are safe there: the probe, a child the zygote forks for the purpose,
imports one package's modules and exits 0 if that raised nothing, started
no thread and loaded no engine, which would leave the zygote unable to fork
safely. A package the probe refuses is left to the children that need it,
as before (mpire: it loads the engine at import).

OpenBLAS (numpy's, scipy's) starts its thread pool as it loads; its own
fork handler stops the pool before every fork, and the next BLAS call
starts it again. A zygote forks without running fork handlers (clone(2)),
so it stops the pool itself, with the same call, after an import that
started it: the children then start theirs as a fork child of the
standard library does: about 50 ms of numpy that each child no longer
imports (and tqdm and IPython, most of mpire's 500 ms).
"""
import os
import signal
import time

__all__ = ['installed', 'Probes', 'quiet_blas', 'run_probe']

# Seconds a probe may take before its package counts as unsafe.
PROBE_TIMEOUT = 30


def installed(module):
    '''Whether module comes from an installed package (site-packages),
    not from the program's own directory.'''
    path = getattr(module, '__file__', None)
    return isinstance(path, str) and (
        'site-packages' in path or 'dist-packages' in path)


def quiet_blas():
    '''Stop the thread pools of the OpenBLAS libraries this process has
    loaded, as OpenBLAS's fork handler does; return whether there was one.'''
    import ctypes
    found = False
    try:
        with open('/proc/self/maps') as f:
            paths = {line.split()[-1] for line in f
                     if 'openblas' in line and line.rstrip().endswith('.so')}
    except OSError:
        return False
    for path in sorted(paths):
        try:
            shutdown = ctypes.CDLL(path).blas_thread_shutdown_
        except (OSError, AttributeError):
            continue
        shutdown()
        found = True
    return found


class Probes(object):
    '''The zygote's queue of packages to try, one probe at a time.'''

    def __init__(self, probe):
        self.probe = probe      # probe(names) -> pid of a probe child
        self.waiting = []       # [names] per top-level package
        self.running = None     # (pid, names, when it started)

    def add(self, names):
        groups = {}
        for name in names:
            groups.setdefault(name.partition(b'.')[0], []).append(name)
        self.waiting.extend(groups.values())

    def pending(self):
        return bool(self.waiting or self.running)

    def step(self):
        '''Start the next probe or look at the one running: return the
        names of a package found safe (None: none yet).'''
        if self.running is None:
            names = self.waiting.pop(0)
            self.running = (self.probe(names), names, time.monotonic())
            return None
        pid, names, started = self.running
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 1
        if not done and time.monotonic() - started > PROBE_TIMEOUT:
            # An import that waits for something (a network, stdin): not
            # one for the zygote.
            os.kill(pid, signal.SIGKILL)
            done, status = os.waitpid(pid, 0)
        if not done:
            return None
        self.running = None
        return names if status == 0 else None


def run_probe(names, try_import, libc):
    '''In a probe child: exit 0 if try_import(names) says they are safe.'''
    code = 1
    try:
        libc.prctl(1, 9, 0, 0, 0)   # PR_SET_PDEATHSIG, SIGKILL: dies with us
        if try_import(names):
            code = 0
    except BaseException:
        pass
    finally:
        os._exit(code)
