"""Libraries built on multiprocessing, unmodified, under `python -m mpgo`:
joblib (its loky and multiprocessing backends), loky's reusable executor
and pebble's pools. Each script checks that its workers run mpgo."""

import importlib.util

import pytest

from _helpers import run_python, write_script

GUARD = 240


def needs(module):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None,
                              reason='%s is not installed (pip install %s)'
                              % (module, module))


def run_mpgo(tmp_path, source):
    script = write_script(tmp_path, 'script.py', source)
    res = run_python(['-m', 'mpgo', script], cwd=str(tmp_path), timeout=GUARD)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout.splitlines()


WHERE = '''
def where(x):
    import multiprocessing, os
    return x * x, multiprocessing.__name__, multiprocessing.__spec__.name, os.getpid()
'''


@needs('joblib')
def test_joblib_loky_backend(tmp_path):
    out = run_mpgo(tmp_path, WHERE + '''
if __name__ == '__main__':
    import os
    from joblib import Parallel, delayed
    res = Parallel(n_jobs=2)(delayed(where)(i) for i in range(20))
    print([r[0] for r in res])
    print(sorted({r[1:3] for r in res}))
    print(all(r[3] != os.getpid() for r in res))
''')
    assert out == [str([i * i for i in range(20)]),
                   "[('mpgo', 'mpgo')]", 'True']


@needs('joblib')
@needs('numpy')
def test_joblib_multiprocessing_backend_honours_its_reducers(tmp_path):
    # joblib's MemmappingPool overrides Pool._setup_queues to pickle large
    # arrays as memory maps: the workers must get numpy.memmap objects.
    out = run_mpgo(tmp_path, WHERE + '''
def kind(a):
    return type(a).__name__, float(a.sum())

if __name__ == '__main__':
    import numpy as np
    from joblib import Parallel, delayed
    res = Parallel(n_jobs=2, backend='multiprocessing')(
        delayed(where)(i) for i in range(10))
    print([r[0] for r in res], sorted({r[1:3] for r in res}))
    big = np.ones(1_000_000)
    print(Parallel(n_jobs=2, backend='multiprocessing')(
        delayed(kind)(big) for i in range(3)))
    print(Parallel(n_jobs=2, backend='multiprocessing', max_nbytes=None)(
        delayed(kind)(big[:4]) for i in range(2)))
''')
    assert out == [
        str([i * i for i in range(10)]) + " [('mpgo', 'mpgo')]",
        str([('memmap', 1e6)] * 3),
        str([('ndarray', 4.0)] * 2)]


@needs('loky')
def test_loky_reusable_executor(tmp_path):
    out = run_mpgo(tmp_path, WHERE + '''
def crash(x):
    import os
    os._exit(3)

def raise_it(x):
    raise ValueError(x)

if __name__ == '__main__':
    from loky import get_reusable_executor
    from loky.process_executor import TerminatedWorkerError
    ex = get_reusable_executor(max_workers=2, timeout=10)
    res = list(ex.map(where, range(8)))
    print([r[0] for r in res], sorted({r[1:3] for r in res}))
    print(ex.submit(where, 7).result()[0])
    try:
        ex.submit(raise_it, 'bad').result()
    except ValueError as e:
        print('ValueError', e)
    try:
        ex.submit(crash, 1).result()
    except TerminatedWorkerError:
        print('TerminatedWorkerError')
    ex = get_reusable_executor(max_workers=2, timeout=10)
    print(ex.submit(where, 5).result()[0])
    ex.shutdown(wait=True)
''')
    assert out == [str([i * i for i in range(8)]) + " [('mpgo', 'mpgo')]",
                   '49', 'ValueError bad', 'TerminatedWorkerError', '25']


@needs('pebble')
def test_pebble_pools(tmp_path):
    out = run_mpgo(tmp_path, WHERE + '''
def slow(x):
    import time
    time.sleep(x)
    return x

def crash(x):
    import os
    os._exit(3)

if __name__ == '__main__':
    from concurrent.futures import TimeoutError
    from pebble import ProcessPool, ThreadPool, ProcessExpired
    with ProcessPool(max_workers=2) as pool:
        res = list(pool.map(where, range(12), chunksize=3).result())
        print([r[0] for r in res], sorted({r[1:3] for r in res}))
        f = pool.schedule(slow, args=(30,), timeout=0.5)
        try:
            f.result()
        except TimeoutError:
            print('timeout')
        f = pool.schedule(crash, args=(1,))
        try:
            f.result()
        except ProcessExpired as e:
            print('expired', e.exitcode)
        futures = [pool.schedule(where, args=(i,)) for i in range(20)]
        print(sum(f.result()[0] for f in futures))
    with ThreadPool(max_workers=2) as tp:
        print(list(tp.map(abs, [-1, -2, 3]).result()))
''')
    assert out == [str([i * i for i in range(12)]) + " [('mpgo', 'mpgo')]",
                   'timeout', 'expired 3', str(sum(i * i for i in range(20))),
                   '[1, 2, 3]']


def test_children_started_by_other_means_are_aliased(tmp_path):
    # subprocess of the same interpreter: multiprocessing is mpgo there too
    out = run_mpgo(tmp_path, '''
import subprocess, sys
print(subprocess.run([sys.executable, '-c',
                      'import multiprocessing; print(multiprocessing.__spec__.name)'],
                     capture_output=True, text=True, check=True).stdout.strip())
''')
    assert out == ['mpgo']
