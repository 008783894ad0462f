"""CPython's own multiprocessing test suites, run on mpgo and on the
standard library side by side (tests/cpython/run.py, its fast selection):
no test that passes on the standard library may fail on mpgo, unless
tests/cpython/exclusions.py lists it with its reason."""

import os
import subprocess
import sys

import pytest

import mpgo

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, 'cpython', 'run.py')


@pytest.mark.slow
def test_cpython_suite_fast_selection(tmp_path):
    # CI runs this under every supported Python: 'fork' (the default start
    # method, mpgo's zygote) on odd minor versions, 'spawn' on even ones,
    # so that both run in CI at the cost of one.
    flavour = 'fork' if sys.version_info[1] % 2 else 'spawn'
    out = tmp_path / 'results.json'
    env = dict(os.environ)
    env.pop('PYTHONPATH', None)    # the harness makes its own environments
    res = subprocess.run(
        [sys.executable, RUN, '--fast', '--flavour', flavour, '--json', str(out),
         '--mpgo', os.path.dirname(os.path.dirname(os.path.abspath(mpgo.__file__)))],
        capture_output=True, text=True, timeout=2400, env=env, cwd=str(tmp_path))
    sys.stdout.write(res.stdout[-20000:])
    assert 'unexpected failures (pass on the stdlib, not on mpgo): 0' in res.stdout, \
        res.stdout[-20000:] + res.stderr[-5000:]
    assert res.returncode == 0, res.stderr[-5000:]
