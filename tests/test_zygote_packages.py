"""Installed packages the parent imported reach the zygote (mpgo._packages):
tried in a probe first, imported by the zygote only if that started no
thread (OpenBLAS's pool stopped as at a fork) and loaded no engine."""

import os

import pytest

from _helpers import run_python, write_script

pytest.importorskip('numpy')

PROGRAM = '''
    import multiprocessing as mp
    import os
    import sys
    import time

    import numpy as np
    import threadpkg
    import enginepkg
    from mpgo import zygote

    def work(q):
        a = np.arange(9.0).reshape(3, 3)
        q.put((float((a @ a).trace()), threadpkg.STARTED, enginepkg.NAME))

    def zygote_has(zpid, what):
        with open('/proc/%d/maps' % zpid) as f:
            return what in f.read()

    if __name__ == '__main__':
        q = mp.Queue()
        p = mp.Process(target=work, args=(q,))
        p.start()
        first = q.get(timeout=30)
        p.join()
        zpid = zygote.zygote_pid()
        deadline = time.monotonic() + 30
        while not zygote_has(zpid, '_multiarray_umath'):
            assert time.monotonic() < deadline, 'numpy never reached the zygote'
            time.sleep(0.05)
        # The probes of the other two end soon after: neither is imported.
        time.sleep(1)
        p = mp.Process(target=work, args=(q,))
        p.start()
        second = q.get(timeout=30)
        p.join()
        print(first == second == (180.0, True, 'enginepkg'))
        print(zygote.zygote_pid() == zpid,
              len(os.listdir('/proc/%d/task' % zpid)),
              zygote_has(zpid, '_pybind'))
        print(p.exitcode)
'''


def test_installed_packages_are_preloaded_when_safe(tmp_path):
    site = tmp_path / 'site-packages'
    site.mkdir()
    # A package whose import starts a thread, and one whose import loads
    # mpgo's engine: the probe refuses both, and the zygote goes on.
    write_script(site, 'threadpkg.py', '''
        import threading, time
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
        STARTED = True
    ''')
    write_script(site, 'enginepkg.py', '''
        import multiprocessing.synchronize
        NAME = 'enginepkg'
    ''')
    prog = write_script(tmp_path, 'prog.py', PROGRAM)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (str(site), env.get('PYTHONPATH')) if p)
    res = run_python(['-m', 'mpgo', prog], cwd=str(tmp_path), env=env,
                     timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ['True', 'True 1 False', '0'], \
        res.stdout + res.stderr
