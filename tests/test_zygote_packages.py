"""Installed packages the parent imported reach the zygote (mpgo._packages):
tried in a probe first, imported by the zygote only if that raised
nothing, started no thread (OpenBLAS's pool stopped as at a fork) and
loaded no engine, and not at all if what they import was refused, even
where they caught the ImportError."""

import os

import pytest

from _helpers import run_python, write_script

pytest.importorskip('numpy')

PROGRAM = '''
    import ctypes
    import multiprocessing as mp
    import os
    import sys
    import time

    import numpy as np
    import trypkg
    import plainpkg
    import threadpkg
    import enginepkg
    from mpgo import zygote

    NAMES = ('plainpkg', 'numpy', 'threadpkg', 'enginepkg', 'trypkg',
             'halfpkg', 'halfpkg.log')

    def which(q):
        # Imports nothing: what it finds, it has from the zygote.
        q.put([name for name in NAMES if name in sys.modules])

    def work(q):
        import halfpkg
        whole = sys.modules['halfpkg.log'].halfpkg is halfpkg is trypkg.halfpkg
        a = np.arange(9.0).reshape(3, 3)
        q.put((float((a @ a).trace()), threadpkg.STARTED, enginepkg.NAME,
               plainpkg.NAME, whole))

    def run(target, q):
        p = mp.Process(target=target, args=(q,))
        p.start()
        r = q.get(timeout=30)
        p.join()
        return r

    def blas_quietable():
        for line in open('/proc/self/maps'):
            path = line.split()[-1]
            if 'openblas' in path and path.endswith('.so'):
                return hasattr(ctypes.CDLL(path), 'blas_thread_shutdown_')
        return False

    if __name__ == '__main__':
        q = mp.Queue()
        first = run(work, q)
        zpid = zygote.zygote_pid()
        deadline = time.monotonic() + 30
        while 'plainpkg' not in run(which, q):
            assert time.monotonic() < deadline, 'plainpkg never reached the zygote'
            time.sleep(0.1)
        time.sleep(1)    # the other probes end
        print(run(which, q) == (['plainpkg', 'numpy'] if blas_quietable()
                                else ['plainpkg']))
        print(first == run(work, q) == (180.0, True, 'enginepkg', 'plain', True))
        with open('/proc/%d/maps' % zpid) as f:
            maps = f.read()
        print(zygote.zygote_pid() == zpid,
              len(os.listdir('/proc/%d/task' % zpid)), '_pybind' in maps)
'''


def test_installed_packages_are_preloaded_when_safe(tmp_path):
    site = tmp_path / 'site-packages'
    site.mkdir()
    # A package whose import starts a thread, and one whose import loads
    # mpgo's engine: the probe refuses both, and the zygote goes on. numpy
    # qualifies where its OpenBLAS exports the call that stops its pool.
    write_script(site, 'threadpkg.py', '''
        import threading, time
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        STARTED = True
    ''')
    write_script(site, 'enginepkg.py', '''
        import multiprocessing.synchronize
        NAME = 'enginepkg'
    ''')
    # multiprocess's shape: a package that tries another, whose first
    # submodule holds on to its package, and whose next one needs the
    # engine. The zygote must not keep the half that imported.
    write_script(site, 'trypkg.py', '''
        try:
            import halfpkg
        except ImportError:
            halfpkg = None
    ''')
    (site / 'halfpkg').mkdir()
    write_script(site / 'halfpkg', '__init__.py', '''
        from . import log
        from . import core
    ''')
    write_script(site / 'halfpkg', 'log.py', '''
        import halfpkg
    ''')
    write_script(site / 'halfpkg', 'core.py', '''
        import multiprocessing.synchronize
    ''')
    write_script(site, 'plainpkg.py', '''
        NAME = 'plain'
    ''')
    prog = write_script(tmp_path, 'prog.py', PROGRAM)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(site), env.get('PYTHONPATH')) if p)
    res = run_python(['-m', 'mpgo', prog], cwd=str(tmp_path), env=env,
                     timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ['True', 'True', 'True 1 False'], \
        res.stdout + res.stderr
