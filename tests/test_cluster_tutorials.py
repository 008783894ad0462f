"""Every seed tutorial, unmodified, on a Dask cluster.

Each runs as `python -m mpgo --cluster ADDRESS <file>` against the test
cluster (a scheduler and two workers on loopback, conftest's dask_cluster),
and its output goes to the checker test_tutorials.py has for it. Where a
tutorial prints pids (the Pool ones print os.getpid() in their tasks),
they must be pids of the cluster's workers.

On the cluster each access to a Value or a Lock is a round trip to the
scheduler, so the two tutorials doing 20000 of them (seed004_value_lock,
seed004_value_nolock) take about a minute each here.
"""

import os
import re
import subprocess
import sys

import pytest

import test_tutorials as tutorials

TIMEOUT = 900

# The tutorials that print "Process <pid> calculating ...".
_PRINTS_PIDS = {'seed004_pool_map.py', 'seed004_exec_func.py',
                'seed004_starmap.py'}


@pytest.fixture(scope='module')
def worker_pids(dask_cluster):
    import distributed
    with distributed.Client(dask_cluster, timeout=60) as client:
        return set(client.run(os.getpid).values())


def run_on_cluster(name, cwd, address):
    env = dict(os.environ)
    env.pop('PYTHONUNBUFFERED', None)
    env.pop('MPGO_CLUSTER', None)
    return subprocess.run(
        [sys.executable, '-m', 'mpgo', '--cluster', address,
         os.path.join(tutorials.TUTORIALS, name)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.slow
@pytest.mark.parametrize('name', sorted(tutorials.CHECKERS))
def test_tutorial_on_cluster(name, tmp_path, dask_cluster, worker_pids):
    res = run_on_cluster(name, str(tmp_path), dask_cluster)
    assert res.returncode == 0, res.stderr
    assert res.stderr == ''
    tutorials.CHECKERS[name](res)
    if name in _PRINTS_PIDS:
        pids = {int(m.group(1)) for m in
                re.finditer(r'^Process (\d+) calculating', res.stdout, re.M)}
        assert pids and pids <= worker_pids, (pids, worker_pids)


def test_every_tutorial_runs_on_cluster():
    assert set(tutorials.CHECKERS) == {
        n for n in os.listdir(tutorials.TUTORIALS) if n.endswith('.py')}
