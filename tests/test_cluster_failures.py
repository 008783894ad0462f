"""Failures on the cluster: a worker SIGKILLed mid-task, the scheduler
lost, Ctrl-C in the driver, the driver killed.

Each test gets a cluster of its own (tests/_cluster.py: a scheduler and two
workers on loopback, torn down with the test), because it kills parts of
it; Dask's retry policy there is allowed-failures=1 (a task is run again
once after its worker dies, and fails when that one dies too). The driver
is a script run with `python -m mpgo --cluster ADDRESS`, as a user runs
one; it and the test meet through its stdout and heartbeat files.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from _cluster import LoopbackCluster

pytestmark = pytest.mark.slow

TIMEOUT = 300


@pytest.fixture
def cluster():
    c = LoopbackCluster(settings=['distributed.scheduler.allowed-failures=1'])
    try:
        yield c
    finally:
        c.stop()


def _start(script, tmp_path, address, *args):
    path = tmp_path / 'script.py'
    path.write_text(textwrap.dedent(script))
    env = dict(os.environ, MPGO_CLUSTER_TIMEOUT='5')
    env.pop('PYTHONUNBUFFERED', None)
    return subprocess.Popen(
        [sys.executable, '-m', 'mpgo', '--cluster', address, str(path),
         *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, cwd=str(tmp_path))


def _beats(path, seconds):
    '''Whether the heartbeat file changes in the next seconds.'''
    before = path.read_text()
    time.sleep(seconds)
    return path.read_text() != before


def _wait_for(paths):
    deadline = time.monotonic() + 120
    while not all(p.exists() and p.read_text() for p in paths):
        assert time.monotonic() < deadline, 'the tasks did not start'
        time.sleep(0.05)


LOST_WORKER = '''
    import os, signal, time
    import multiprocessing
    from multiprocessing import Pool, Process, Queue

    def task(q):
        q.put(os.getpid())
        time.sleep(120)

    def kill_each_run(q, runs):
        # The task runs again on the other worker after its first is lost.
        for _ in range(runs):
            os.kill(q.get(timeout=120), signal.SIGKILL)

    if __name__ == '__main__':
        q = Queue()
        with Pool(2) as pool:
            r = pool.apply_async(task, (q,))
            done = pool.apply_async(abs, (-3,))
            kill_each_run(q, 2)
            try:
                r.get(timeout=240)
            except multiprocessing.pool.WorkerLostError as e:
                print('WorkerLostError', type(e.__cause__).__name__)
            print('other task', done.get(timeout=60))
        p = Process(target=task, args=(q,))
        p.start()
        kill_each_run(q, 2)
        p.join(240)
        print('exitcode', p.exitcode)
'''


def test_a_killed_worker_fails_its_task(cluster, tmp_path):
    proc = _start(LOST_WORKER, tmp_path, cluster.address)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert out.splitlines() == ['WorkerLostError KilledWorker',
                                'other task 3',
                                'exitcode %d' % -signal.SIGKILL], err


LOST_SCHEDULER = '''
    import sys, threading, time
    from multiprocessing import Event, Lock, Pool, Process, Queue
    from mpgo.cluster import SchedulerLostError

    def sleeper(q):
        q.put('up')
        time.sleep(240)

    if __name__ == '__main__':
        q, lock, event = Queue(), Lock(), Event()
        lock.acquire()
        p = Process(target=sleeper, args=(q,))
        p.start()
        q.get(timeout=60)
        pool = Pool(2)
        r = pool.apply_async(time.sleep, (240,))
        calls = {'Queue.get': q.get, 'Process.join': p.join,
                 'Lock.acquire': lock.acquire, 'Event.wait': event.wait,
                 'AsyncResult.get': r.get}
        results = {}

        def call(name, fn):
            try:
                fn()
                results[name] = 'returned'
            except SchedulerLostError:
                results[name] = 'SchedulerLostError'
            except BaseException as e:
                results[name] = repr(e)
        threads = [threading.Thread(target=call, args=item)
                   for item in calls.items()]
        for t in threads:
            t.start()
        time.sleep(0.5)
        print('waiting', flush=True)
        for t in threads:
            t.join(120)
        for name in sorted(results):
            print(name, results[name])
        try:
            Queue()
        except SchedulerLostError:
            print('a later call raises')
'''


def test_a_lost_scheduler_raises_in_every_waiting_call(cluster, tmp_path):
    proc = _start(LOST_SCHEDULER, tmp_path, cluster.address)
    assert proc.stdout.readline() == 'waiting\n'
    os.kill(cluster.scheduler, signal.SIGKILL)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert out.splitlines() == [
        'AsyncResult.get SchedulerLostError', 'Event.wait SchedulerLostError',
        'Lock.acquire SchedulerLostError', 'Process.join SchedulerLostError',
        'Queue.get SchedulerLostError', 'a later call raises'], err
    assert proc.returncode == 0, err


BEATING = '''
    import sys, time
    from multiprocessing import Pool, Process

    def beat(path):
        while True:
            with open(path, 'w') as f:
                f.write(repr(time.time()))
            time.sleep(0.02)

    if __name__ == '__main__':
        p = Process(target=beat, args=(sys.argv[1],))
        p.start()
        pool = Pool(2)
        r = pool.apply_async(beat, (sys.argv[2],))
        print('started', flush=True)
        p.join()
'''


@pytest.mark.parametrize('how', ['Ctrl-C', 'SIGKILL'])
def test_the_runs_tasks_stop_with_the_driver(cluster, tmp_path, how):
    '''Ctrl-C in the driver cancels its tasks, and so does the driver's
    death (Dask releases a lost client's tasks); the workers stop their
    threads.'''
    beats = [tmp_path / 'process.beat', tmp_path / 'pool.beat']
    proc = _start(BEATING, tmp_path, cluster.address, *beats)
    assert proc.stdout.readline() == 'started\n'
    _wait_for(beats)
    assert all(_beats(b, 0.5) for b in beats)
    proc.send_signal(signal.SIGINT if how == 'Ctrl-C' else signal.SIGKILL)
    out, err = proc.communicate(timeout=TIMEOUT)
    if how == 'Ctrl-C':
        # As python script.py: the traceback, then death by SIGINT.
        assert proc.returncode == -signal.SIGINT
        assert err.rstrip().endswith('KeyboardInterrupt'), err
        assert err.count('Traceback') == 1, err
    else:
        assert proc.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while any(_beats(b, 0.5) for b in beats):
        assert time.monotonic() < deadline, 'the tasks kept running'
