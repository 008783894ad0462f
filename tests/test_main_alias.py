"""Tests of `python -m mpgo` and of the aliasing of `multiprocessing` (and
every submodule) to mpgo, in the program and in its children.
"""

import os
import textwrap

import pytest

from _helpers import env_with_tests, read_result, run_python, write_script


#
# python -m mpgo
#


def test_python_m_mpgo_argv_and_exit_status(tmp_path):
    script = write_script(tmp_path, 'script.py', '''
        import os, sys
        print(sys.argv)
        print(__name__, __file__ == os.path.abspath(sys.argv[0]))
        print(sys.path[0] == os.path.dirname(os.path.realpath(__file__)))
        sys.exit(3)
    ''')
    res = run_python(['-m', 'mpgo', 'script.py', 'a', 'b'], cwd=str(tmp_path))
    assert res.returncode == 3, res.stderr
    assert res.stdout == "['script.py', 'a', 'b']\n__main__ True\nTrue\n"


def test_python_m_mpgo_uncaught_exception(tmp_path):
    script = write_script(tmp_path, 'script.py', '''
        def fail():
            raise ValueError('bad')
        fail()
    ''')
    res = run_python(['-m', 'mpgo', script], cwd=str(tmp_path))
    assert res.returncode == 1
    assert res.stderr.startswith('Traceback (most recent call last):\n'
                                 '  File "%s", line 3, in <module>\n' % script)
    assert res.stderr.endswith('ValueError: bad\n')
    assert 'mpgo/__main__' not in res.stderr
    assert 'runpy' not in res.stderr


def test_python_m_mpgo_usage_and_missing_file(tmp_path):
    res = run_python(['-m', 'mpgo'], cwd=str(tmp_path))
    assert res.returncode == 2
    assert 'usage' in res.stderr
    res = run_python(['-m', 'mpgo', 'missing.py'], cwd=str(tmp_path))
    assert res.returncode == 2
    assert "can't open file" in res.stderr


def test_python_m_mpgo_runs_processes_with_targets_in_main(tmp_path):
    script = write_script(tmp_path, 'script.py', '''
        import sys, threading
        import multiprocessing
        from multiprocessing import Process, current_process

        def work(n):
            print('work', n, current_process().name, flush=True)
            sys.exit(n)

        def late():
            # Runs after the main body returned: __main__ must still work.
            p = Process(target=work, args=(2,), name='late')
            p.start()
            p.join()
            print('late exit', p.exitcode)

        if __name__ == '__main__':
            p = Process(target=work, args=(1,), name='first')
            p.start()
            p.join()
            print('exit', p.exitcode)
            threading.Timer(0.2, late).start()
    ''')
    res = run_python(['-m', 'mpgo', script], cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout == ('work 1 first\nexit 1\nwork 2 late\nlate exit 2\n')


@pytest.mark.parametrize('method, child_name', [('fork', '__main__'),
                                                ('spawn', '__mp_main__')])
def test_python_m_mpgo_dash_m_module(tmp_path, method, child_name):
    pkg = tmp_path / 'pkg'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    (pkg / 'tool.py').write_text(textwrap.dedent('''
        import sys
        import multiprocessing as mp

        def work(x):
            print('child', x, __name__, flush=True)

        if __name__ == '__main__':
            print(sys.argv[1:], __spec__.name)
            p = mp.Process(target=work, args=(5,))
            p.start()
            p.join()
            sys.exit(p.exitcode + 6)
    '''))
    res = run_python(['-m', 'mpgo', '-m', 'pkg.tool', 'x', 'y'],
                     cwd=str(tmp_path),
                     env=dict(os.environ, MPGO_START_METHOD=method))
    assert res.returncode == 6, res.stderr
    # A fork child runs nothing of __main__; a spawned one re-imports it.
    assert res.stdout == "['x', 'y'] pkg.tool\nchild 5 %s\n" % child_name


def test_python_m_mpgo_directory_with_main(tmp_path):
    app = tmp_path / 'app'
    app.mkdir()
    # As with CPython's spawn, targets cannot live in a __main__.py (it is
    # not re-imported in the child), so this one lives in a module beside it.
    (app / 'tasks.py').write_text(textwrap.dedent('''
        import sys
        import multiprocessing

        def work(code):
            assert sys.modules['multiprocessing'] is sys.modules['mpgo']
            sys.exit(code)
    '''))
    (app / '__main__.py').write_text(textwrap.dedent('''
        import sys
        import multiprocessing as mp
        import tasks

        p = mp.Process(target=tasks.work, args=(4,))
        p.start()
        p.join()
        print(sys.argv, p.exitcode)
    '''))
    res = run_python(['-m', 'mpgo', 'app', 'q'], cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "['app', 'q'] 4\n"


def test_python_m_mpgo_dash_c(tmp_path):
    res = run_python(['-m', 'mpgo', '-c',
                      'import sys, multiprocessing, mpgo; '
                      'print(multiprocessing is mpgo, sys.argv)', 'z'],
                     cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout == "True ['-c', 'z']\n"

#
# Aliasing multiprocessing to mpgo
#


def test_python_m_mpgo_collects_the_programs_cycles(tmp_path):
    # python -m mpgo freezes what exists before the program runs (gc.freeze,
    # before it forks the zygote): never the program's own objects, which
    # the collector sees and collects, at run time and at exit, as always.
    write_script(tmp_path, 'script.py', '''
        import gc, sys, weakref

        class Node:
            def __init__(self, name):
                self.name, self.me = name, self
            def __del__(self):
                sys.stdout.write('del %s\\n' % self.name)

        n = Node('now')
        dead = weakref.ref(n)
        print(any(o is n for o in gc.get_objects()))
        del n
        gc.collect()
        print(dead() is None)
        kept = Node('at-exit')
    ''')
    res = run_python(['-m', 'mpgo', 'script.py'], cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout == 'True\ndel now\nTrue\ndel at-exit\n'


def test_alias_maps_every_submodule(tmp_path):
    code = textwrap.dedent('''
        import importlib, pkgutil, sys
        import multiprocessing
        import mpgo
        assert multiprocessing is mpgo
        from multiprocessing import Process, get_context
        assert Process is mpgo.Process and get_context is mpgo.get_context
        import multiprocessing.process as mp_process
        assert mp_process is mpgo.process
        assert sys.modules['multiprocessing.process'] is mpgo.process
        assert mpgo.process.__spec__.name == 'mpgo.process'
        assert multiprocessing.context is mpgo.context
        # popen_spawn_win32 fails to import off Windows, as CPython's.
        names = sorted(m.name for m in pkgutil.iter_modules(mpgo.__path__)
                       if not m.name.startswith('_')
                       and m.name != 'popen_spawn_win32')
        for name in names:
            alias = importlib.import_module('multiprocessing.' + name)
            assert alias is importlib.import_module('mpgo.' + name), name
        try:
            import multiprocessing.no_such_module
        except ModuleNotFoundError as e:
            assert e.name == 'multiprocessing.no_such_module', e.name
        else:
            raise AssertionError('imported a missing module')
        print(' '.join(names))
    ''')
    res = run_python(['-m', 'mpgo', '-c', code], cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    names = res.stdout.split()
    for name in ('context', 'process', 'reduction', 'spawn', 'util'):
        assert name in names


def test_alias_replaces_an_imported_stdlib_multiprocessing(tmp_path):
    code = textwrap.dedent('''
        import multiprocessing, multiprocessing.process
        stdlib = multiprocessing
        from mpgo import _alias
        _alias.install()
        import multiprocessing, multiprocessing.process, mpgo
        assert multiprocessing is mpgo and multiprocessing is not stdlib
        assert multiprocessing.process is mpgo.process
        print('ok')
    ''')
    res = run_python(['-c', code], cwd=str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout == 'ok\n'


def test_import_mpgo_as_multiprocessing(tmp_path):
    path = str(tmp_path / 'r')
    script = write_script(tmp_path, 'script.py', f'''
        import mpgo as multiprocessing

        def f(path):
            import _helpers
            _helpers.write_result(path, multiprocessing.current_process().name)

        if __name__ == '__main__':
            p = multiprocessing.Process(target=f, args=({path!r},), name='n')
            p.start()
            p.join()
    ''')
    res = run_python([script], cwd=str(tmp_path), env=env_with_tests())
    assert res.returncode == 0, res.stderr
    assert read_result(path) == 'n'


def test_child_of_python_m_mpgo_sees_the_alias(tmp_path):
    path = str(tmp_path / 'r')
    script = write_script(tmp_path, 'script.py', f'''
        import multiprocessing
        import _helpers

        if __name__ == '__main__':
            p = multiprocessing.Process(target=_helpers.check_alias,
                                        args=({path!r},))
            p.start()
            p.join()
            print(p.exitcode)
    ''')
    res = run_python(['-m', 'mpgo', script], cwd=str(tmp_path),
                     env=env_with_tests())
    assert res.returncode == 0, res.stderr
    assert res.stdout == '0\n'
    assert read_result(path) == dict(aliased=True, process_aliased=True,
                                     main_sees_mpgo=True)
