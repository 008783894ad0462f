"""Shared fixtures for mpgo's Python tests.

Every test is checked for leaks at teardown: a child process still alive
(after a grace period) or a new /dev/shm entry whose name contains "mpgo"
fails the test.
"""

import os
import signal
import sys
import time
import warnings

import pytest

_PYTHON_DIR = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), 'python')

try:
    import mpgo  # noqa: F401
except ImportError:
    sys.path.insert(0, _PYTHON_DIR)
    import mpgo  # noqa: F401

# Children (and scripts run with subprocess) must import the same mpgo.
_MPGO_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(mpgo.__file__)))
if _MPGO_PARENT not in os.environ.get('PYTHONPATH', '').split(os.pathsep):
    os.environ['PYTHONPATH'] = os.pathsep.join(
        p for p in (_MPGO_PARENT, os.environ.get('PYTHONPATH')) if p)

# Seconds a test's children get to exit before they count as leaked.
_CHILD_GRACE = 2.0


def pytest_configure(config):
    config.addinivalue_line(
        'markers',
        'slow: a test that takes seconds (deselect with -m "not slow")')
    config.addinivalue_line(
        'markers', 'stress: a long-running stress test')


def pytest_report_header(config):
    # Which mpgo runs the tests: the checkout's python/ or an installed one
    # (the wheel check relies on this line).
    return 'mpgo: %s' % os.path.dirname(os.path.abspath(mpgo.__file__))


def _live_children(ppid):
    '''Return the pids of the live (non-zombie) children of ppid, but for
    its zygote (mpgo.zygote) and the zygote's spare, which live as long as
    it does.'''
    from mpgo import zygote
    helpers = {zygote.zygote_pid(), zygote.spare_pid()}
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/status' % entry) as f:
                status = f.read()
        except OSError:
            continue
        fields = dict(line.split(':\t', 1) for line in status.splitlines()
                      if ':\t' in line)
        if fields.get('PPid', '').strip() == str(ppid) and \
                int(entry) not in helpers and \
                not fields.get('State', '').startswith(('Z', 'X')):
            pids.append(int(entry))
    return pids


def _shm_entries():
    try:
        # mpgo's own memory never appears here (memfd); SharedMemory's
        # blocks do, as psm_*.
        return {name for name in os.listdir('/dev/shm')
                if 'mpgo' in name or name.startswith('psm_')}
    except FileNotFoundError:
        return set()


@pytest.fixture(autouse=True)
def no_leaks():
    '''Fail a test that leaves a live child or a /dev/shm entry behind.'''
    shm_before = _shm_entries()
    yield
    # A resource tracker this process started (SharedMemory registers its
    # blocks) lives while this process does: stop it, as CPython's own
    # suite does after its tests (util._cleanup_tests); it unlinks what is
    # still registered.
    tracker = sys.modules.get('mpgo.resource_tracker')
    if tracker is not None and tracker._resource_tracker._fd is not None:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            tracker._resource_tracker._stop()
    deadline = time.monotonic() + _CHILD_GRACE
    while (live := _live_children(os.getpid())) and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in live:
        try:
            os.kill(pid, signal.SIGKILL)   # so later tests start clean
        except ProcessLookupError:
            pass
    leaked_shm = _shm_entries() - shm_before
    problems = []
    if live:
        problems.append('left live child processes %s' % live)
    if leaked_shm:
        problems.append('left /dev/shm entries %s' % sorted(leaked_shm))
    if problems:
        pytest.fail('test ' + ' and '.join(problems))


@pytest.fixture(scope='session')
def dask_cluster():
    '''The address of a Dask cluster on loopback, a scheduler and two
    workers (tests/_cluster.py): MPGO_TEST_CLUSTER's if set (.ci/cluster.sh
    starts one), else one started for the session and stopped after it.'''
    address = os.environ.get('MPGO_TEST_CLUSTER')
    if address:
        yield address
        return
    from _cluster import LoopbackCluster
    cluster = LoopbackCluster(detach=True)
    try:
        yield cluster.address
    finally:
        cluster.stop()
