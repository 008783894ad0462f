"""A Dask cluster on loopback for the tests: a scheduler and its workers.

    python tests/_cluster.py [--workers N] [--watch PID] [--detach]
                             [--set KEY=VALUE ...]

starts `dask scheduler` and N `dask worker`s (one thread each, with their
nannies) on 127.0.0.1, waits until every worker has registered, prints one
JSON line {"address", "supervisor", "scheduler", "nannies", "workers"}
(pids; "workers" are the worker processes, the nannies' children), and
stays until it gets SIGTERM or the watched pid exits; then it kills its
whole process group (the scheduler, the nannies and their workers) with
SIGKILL. --set puts a Dask config value in the cluster's environment
(distributed.scheduler.allowed-failures=1 ...).

With --detach it first leaves the caller (double fork, new session), so
that a cluster kept for the whole test session is not a child of pytest,
which tests/conftest.py would count as a leak after every test; it still
dies with pytest through --watch.

LoopbackCluster starts one and stops it; stop() returns once every process
of it is gone. Workers get this checkout's python/ on PYTHONPATH.
"""

import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON_DIR = os.path.join(os.path.dirname(HERE), 'python')


def _env(settings):
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (PYTHON_DIR, env.get('PYTHONPATH')) if p)
    env.pop('MPGO_CLUSTER', None)
    for setting in settings:
        key, value = setting.split('=', 1)
        env['DASK_' + key.upper().replace('.', '__').replace('-', '_')] = \
            value
    return env


def _alive(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('State:'):
                    return not line.split()[1].startswith(('Z', 'X'))
    except OSError:
        return False
    return False


def _supervise(workers, watch, settings):
    '''Start the cluster, report it on stdout, and wait.'''
    env = _env(settings)
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                 env=env)
    with open(os.devnull) as null:
        scheduler_file = os.path.join(
            '/tmp', 'mpgo-test-cluster-%d.json' % os.getpid())
        scheduler = subprocess.Popen(
            [sys.executable, '-m', 'distributed.cli.dask_scheduler',
             '--host', '127.0.0.1', '--port', '0', '--no-dashboard',
             '--scheduler-file', scheduler_file], stdin=null, **quiet)
        try:
            deadline = time.monotonic() + 60
            while not os.path.exists(scheduler_file):
                if time.monotonic() > deadline or scheduler.poll() is not None:
                    raise RuntimeError('the scheduler did not start')
                time.sleep(0.05)
            time.sleep(0.1)     # the file is written whole, but let it be
            with open(scheduler_file) as f:
                address = json.load(f)['address']
        finally:
            try:
                os.unlink(scheduler_file)
            except OSError:
                pass
        nannies = [subprocess.Popen(
            [sys.executable, '-m', 'distributed.cli.dask_worker', address,
             '--nthreads', '1', '--no-dashboard', '--name', 'w%d' % i,
             '--host', '127.0.0.1', '--death-timeout', '60'],
            stdin=null, **quiet) for i in range(workers)]
    import distributed
    with distributed.Client(address, timeout=60) as client:
        client.wait_for_workers(workers, timeout=120)
        pids = sorted(client.run(os.getpid).values())
    sys.stdout.write(json.dumps({
        'address': address, 'supervisor': os.getpid(),
        'scheduler': scheduler.pid, 'nannies': [n.pid for n in nannies],
        'workers': pids}) + '\n')
    sys.stdout.flush()
    with open(os.devnull, 'w') as null:
        os.dup2(null.fileno(), 1)
    while watch is None or _alive(watch):
        time.sleep(0.5)
    _kill_group()


def _kill_group(*args):
    '''SIGKILL the whole process group, the standard library's resource
    trackers (the nannies') last: a spawn context's Lock is a named
    semaphore (/dev/shm/sem.mp-*), which its tracker unlinks once every
    process it tracks for has gone; killed with them, it left a dozen
    behind for every cluster.'''
    me, group = os.getpid(), os.getpgid(0)
    trackers = []
    for pid in _group_members(group):
        if pid == me:
            continue
        if _is_resource_tracker(pid):
            trackers.append(pid)
            continue
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while trackers and time.monotonic() < deadline:
        time.sleep(0.02)
        trackers = [pid for pid in trackers if _alive(pid)]
    os.killpg(group, signal.SIGKILL)


def _group_members(group):
    pids = []
    for name in os.listdir('/proc'):
        if not name.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % name) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:     # pgrp, the stat's fifth field
            pids.append(int(name))
    return pids


def _is_resource_tracker(pid):
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as f:
            return b'resource_tracker' in f.read()
    except OSError:
        return False


def main(argv):
    workers, watch, detach, settings = 2, None, False, []
    while argv:
        arg = argv.pop(0)
        if arg == '--workers':
            workers = int(argv.pop(0))
        elif arg == '--watch':
            watch = int(argv.pop(0))
        elif arg == '--detach':
            detach = True
        elif arg == '--set':
            settings.append(argv.pop(0))
        else:
            raise SystemExit('unknown argument %r' % arg)
    if detach:
        if os.fork():
            os._exit(0)
        os.setsid()
        if os.fork():
            os._exit(0)
    elif os.getpgid(0) != os.getpid():
        os.setpgid(0, 0)
    signal.signal(signal.SIGTERM, _kill_group)
    try:
        _supervise(workers, watch, settings)
    except BaseException:
        import traceback
        traceback.print_exc()
        _kill_group()


class LoopbackCluster(object):
    '''A cluster of tests/_cluster.py (see the module doc).'''

    def __init__(self, workers=2, detach=False, settings=()):
        cmd = [sys.executable, os.path.abspath(__file__), '--workers',
               str(workers), '--watch', str(os.getpid())]
        if detach:
            cmd.append('--detach')
        for setting in settings:
            cmd += ['--set', setting]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, text=True,
                                      start_new_session=not detach)
        line = self._proc.stdout.readline()
        self._proc.stdout.close()
        if detach:
            self._proc.wait()
        if not line:
            self._proc.kill()
            self._proc.wait()
            raise RuntimeError('the test cluster did not start')
        info = json.loads(line)
        self.address = info['address']
        self.supervisor = info['supervisor']
        self.scheduler = info['scheduler']
        self.nannies = info['nannies']
        self.workers = info['workers']

    def pids(self):
        return [self.supervisor, self.scheduler] + self.nannies + self.workers

    def worker_pids(self):
        '''The pids of the worker processes now (nannies restart them).'''
        import distributed
        with distributed.Client(self.address, timeout=30) as client:
            return sorted(client.run(os.getpid).values())

    def stop(self):
        try:
            os.kill(self.supervisor, signal.SIGTERM)
        except ProcessLookupError:
            pass
        if self._proc.returncode is None:
            self._proc.wait()
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in self.pids()) and \
                time.monotonic() < deadline:
            time.sleep(0.05)


if __name__ == '__main__':
    main(sys.argv[1:])
