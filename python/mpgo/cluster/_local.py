"""`--cluster local`: a Dask cluster of this machine, for one run.

A scheduler and one worker per core (one thread each, with their nannies),
on 127.0.0.1, each started as `python -m distributed.cli.dask_...` rather
than by distributed.LocalCluster (which runs on mpgo too): as separate
programs, they keep the run's multiprocessing objects apart from the
cluster's own machinery, and their logs out of its output. The processes get the driver's
sys.path (the script's directory first), and die with the driver: each
watches its parent and exits when it is gone, even if the driver was
SIGKILLed. close() stops them; their logs are in a temporary directory,
removed with them.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

__all__ = ['LocalCluster']

# Run a module as __main__, exiting as soon as the parent is gone.
_PRELUDE = '''\
import os, runpy, sys, threading, time
def _watch(parent=os.getppid()):
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)
threading.Thread(target=_watch, daemon=True).start()
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
'''


class LocalCluster(object):

    def __init__(self, n_workers=None, timeout=60):
        n_workers = n_workers or os.cpu_count() or 1
        self.n_workers = n_workers
        self._dir = tempfile.mkdtemp(prefix='mpgo-cluster-')
        self._procs = []
        env = dict(os.environ)
        env.pop('MPGO_CLUSTER', None)
        path = [p or os.getcwd() for p in sys.path]
        env['PYTHONPATH'] = os.pathsep.join(p for p in path if os.path.isdir(p))
        try:
            scheduler_file = os.path.join(self._dir, 'scheduler.json')
            self._start(env, 'scheduler', 'distributed.cli.dask_scheduler',
                        '--host', '127.0.0.1', '--port', '0',
                        '--no-dashboard', '--scheduler-file', scheduler_file)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    import json
                    with open(scheduler_file) as f:
                        self.scheduler_address = json.load(f)['address']
                    break
                except (OSError, ValueError, KeyError):
                    pass
                if time.monotonic() > deadline or \
                        self._procs[0].poll() is not None:
                    raise RuntimeError(
                        'the local Dask scheduler did not start (see %s)'
                        % self._log('scheduler'))
                time.sleep(0.05)
            for i in range(n_workers):
                self._start(env, 'worker-%d' % i,
                            'distributed.cli.dask_worker',
                            self.scheduler_address, '--nthreads', '1',
                            '--name', 'local-%d' % i, '--host', '127.0.0.1',
                            '--no-dashboard', '--death-timeout', '30',
                            '--local-directory', self._dir)
        except BaseException:
            self.close()
            raise

    def _log(self, name):
        return os.path.join(self._dir, name + '.log')

    def _start(self, env, name, module, *args):
        with open(self._log(name), 'w') as log:
            self._procs.append(subprocess.Popen(
                [sys.executable, '-c', _PRELUDE, module, *args], env=env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True))

    def close(self, timeout=10):
        '''Stop the workers, then the scheduler, and remove the logs.'''
        for proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for proc in self._procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        self._procs = []
        shutil.rmtree(self._dir, ignore_errors=True)
