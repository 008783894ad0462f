"""Start-method semantics, checked against the standard library.

Each case is a small program run twice per start method, in one test: with
the standard library (`python prog`) and with mpgo (`python -m mpgo prog`),
and the two runs must agree: same exit status, same output, same kinds of
exception in stderr. The programs pick the start method from $METHOD, so
they are unmodified multiprocessing programs in every other respect.

Under 'fork' the child does not run __main__ and gets what it needs of it
by value (lambdas, closures, instances of __main__'s classes, globals as
they are at start()); under 'spawn' and 'forkserver' it re-imports
__main__, so an unguarded program fails with CPython's bootstrapping
RuntimeError and a lambda does not pickle.

The standard library hangs in some of these cases under 'spawn' (a Pool
whose workers die at start-up is refilled for ever): those run on mpgo
alone, with the outcome CPython documents, and mpgo must not hang.
"""

import os
import re
import subprocess
import sys
import textwrap
import zipfile

import pytest

from _helpers import PYTHON

METHODS = ['fork', 'spawn', 'forkserver']

# Long enough for a loaded machine; the programs take well under a second.
TIMEOUT = 60

_EXC = re.compile(r'^(\w+(?:Error|Exception|Warning)):', re.M)


def _env(method):
    env = dict(os.environ, METHOD=method)
    env.pop('PYTHONUNBUFFERED', None)
    env.pop('MPGO_START_METHOD', None)
    return env


def _run(args, method, cwd):
    try:
        res = subprocess.run([PYTHON, *args], cwd=cwd, env=_env(method),
                             capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail('%s hung under %s; stderr so far: %s'
                    % (args, method, e.stderr))
    return res


def _outcome(res):
    '''What must agree: status, output, and the exceptions reported.'''
    return (res.returncode != 0, sorted(res.stdout.splitlines()),
            sorted(set(_EXC.findall(res.stderr))))


def _compare(args, method, cwd, mpgo_args=None):
    '''Run args with the stdlib and with mpgo; assert they agree and
    return mpgo's CompletedProcess.'''
    std = _run(args, method, cwd)
    ours = _run(['-m', 'mpgo', *(mpgo_args or args)], method, cwd)
    assert _outcome(ours) == _outcome(std), (
        'mpgo and the stdlib differ under %s\n--- stdlib stdout:\n%s\n'
        '--- stdlib stderr:\n%s\n--- mpgo stdout:\n%s\n--- mpgo stderr:\n%s'
        % (method, std.stdout, std.stderr, ours.stdout, ours.stderr))
    return ours


def _write(path, source):
    path.write_text(textwrap.dedent(source).lstrip())
    return str(path)

#
# Programs
#


# A target that reads a global of __main__ changed at run time, an
# instance of a class of __main__, and a nested function: fork sees the
# run-time value, spawn and forkserver the import-time one.
GUARDED = '''
    import os
    import multiprocessing as mp

    SETTING = 'import-time'

    class Point:
        def __init__(self, x, y):
            self.x, self.y = x, y
        def norm2(self):
            return self.x * self.x + self.y * self.y

    def show(point, q):
        q.put((SETTING, point.norm2(), type(point).__name__))

    def square(x):
        return x * x

    if __name__ == '__main__':
        ctx = mp.get_context(os.environ['METHOD'])
        SETTING = 'run-time'
        q = ctx.Queue()
        p = ctx.Process(target=show, args=(Point(3, 4), q))
        p.start()
        print(*q.get(timeout=30))
        p.join()
        print('exitcode', p.exitcode)
        with ctx.Pool(2) as pool:
            print(pool.map(square, range(6)))
            print(pool.apply(Point(1, 2).norm2))
'''


@pytest.mark.parametrize('method', METHODS)
def test_guarded_program(tmp_path, method):
    prog = _write(tmp_path / 'guarded.py', GUARDED)
    res = _compare([prog], method, str(tmp_path))
    setting = 'run-time' if method == 'fork' else 'import-time'
    assert res.stdout.splitlines()[0] == '%s 25 Point' % setting


@pytest.mark.parametrize('method', METHODS)
def test_unguarded_pool(tmp_path, method):
    prog = _write(tmp_path / 'unguarded.py', '''
        import os
        import multiprocessing as mp

        def cube(x):
            return x ** 3

        pool = mp.get_context(os.environ['METHOD']).Pool(2)
        print(pool.map(cube, range(5)))
        pool.close()
        pool.join()
    ''')
    if method == 'fork':
        res = _compare([prog], method, str(tmp_path))
        assert res.stdout == '[0, 1, 8, 27, 64]\n'
        return
    # The stdlib refills the pool with dying workers for ever here.
    res = _run(['-m', 'mpgo', prog], method, str(tmp_path))
    assert res.returncode != 0
    assert 'has finished its bootstrapping phase' in res.stderr
    assert '[0, 1, 8, 27, 64]' not in res.stdout


@pytest.mark.parametrize('method', METHODS)
def test_unguarded_process(tmp_path, method):
    prog = _write(tmp_path / 'unguarded.py', '''
        import os
        import multiprocessing as mp

        def hello(n):
            print('hello', n, flush=True)

        p = mp.get_context(os.environ['METHOD']).Process(target=hello, args=(1,))
        p.start()
        p.join()
        print('exitcode', p.exitcode)
    ''')
    res = _compare([prog], method, str(tmp_path))
    if method == 'fork':
        assert sorted(res.stdout.splitlines()) == ['exitcode 0', 'hello 1']
    else:
        assert 'RuntimeError' in res.stderr


LAMBDAS = '''
    import os
    import multiprocessing as mp

    def make_adder(n):
        def add(x):
            return x + n
        return add

    def main():
        ctx = mp.get_context(os.environ['METHOD'])
        def nested(x):
            return -x
        with ctx.Pool(2) as pool:
            for name, f in [('lambda', lambda x: x * 2),
                            ('closure', make_adder(10)),
                            ('nested', nested)]:
                try:
                    print(name, pool.map(f, range(4)))
                except Exception as e:
                    print(name, 'fails', type(e).__name__)
        q = ctx.SimpleQueue()
        try:
            p = ctx.Process(target=lambda: q.put(42))
            p.start()
            print('lambda target', q.get())
            p.join()
        except Exception as e:
            print('lambda target fails', type(e).__name__)

    if __name__ == '__main__':
        main()
'''


@pytest.mark.parametrize('method', METHODS)
def test_lambdas_closures_nested(tmp_path, method):
    prog = _write(tmp_path / 'lambdas.py', LAMBDAS)
    if method != 'fork':
        _compare([prog], method, str(tmp_path))
        return
    # Better than the stdlib, whose fork pickles Pool tasks by reference
    # and so fails on all three (a lambda target works there: the Process
    # object is not pickled).
    res = _run(['-m', 'mpgo', prog], method, str(tmp_path))
    assert res.stdout.splitlines() == [
        'lambda [0, 2, 4, 6]', 'closure [10, 11, 12, 13]',
        'nested [0, -1, -2, -3]', 'lambda target 42'], res.stderr


# A __main__ whose module name is not the script's: python dir/, a zipapp,
# python -m pkg, python -c.
LAYOUT = '''
    import os
    import multiprocessing as mp

    def work(x):
        return x + 1

    def report(q):
        q.put(work(41))

    if __name__ == '__main__':
        ctx = mp.get_context(os.environ['METHOD'])
        q = ctx.SimpleQueue()
        p = ctx.Process(target=report, args=(q,))
        p.start()
        p.join()
        print('exitcode', p.exitcode)
        if p.exitcode == 0:
            print('got', q.get())
'''


@pytest.mark.parametrize('method', METHODS)
def test_directory(tmp_path, method):
    d = tmp_path / 'app'
    d.mkdir()
    _write(d / '__main__.py', LAYOUT)
    res = _compare([str(d)], method, str(tmp_path))
    if method == 'fork':
        assert res.stdout == 'exitcode 0\ngot 42\n'


@pytest.mark.parametrize('method', METHODS)
def test_zipapp(tmp_path, method):
    app = tmp_path / 'app.pyz'
    with zipfile.ZipFile(app, 'w') as z:
        z.writestr('__main__.py', textwrap.dedent(LAYOUT))
    res = _compare([str(app)], method, str(tmp_path))
    if method == 'fork':
        assert res.stdout == 'exitcode 0\ngot 42\n'


def test_zipapp_with_longest_comment(tmp_path):
    '''The launcher looks for a zip's end record only in the file's last
    64 KiB + 22 bytes: a comment of the longest length zip allows (65535
    bytes) keeps it there.'''
    app = tmp_path / 'app.pyz'
    with zipfile.ZipFile(app, 'w') as z:
        z.writestr('__main__.py', textwrap.dedent(LAYOUT))
        z.comment = b'#' * 65535
    res = _compare([str(app)], 'fork', str(tmp_path))
    assert res.stdout == 'exitcode 0\ngot 42\n'


@pytest.mark.parametrize('method', METHODS)
def test_dash_m_package(tmp_path, method):
    pkg = tmp_path / 'pkg'
    pkg.mkdir()
    (pkg / '__init__.py').write_text('')
    _write(pkg / '__main__.py', LAYOUT)
    _write(pkg / 'tool.py', LAYOUT)
    for mod in ('pkg', 'pkg.tool'):
        res = _compare(['-m', mod], method, str(tmp_path))
        if method == 'fork' or mod == 'pkg.tool':
            assert res.stdout == 'exitcode 0\ngot 42\n'


@pytest.mark.parametrize('method', METHODS)
def test_dash_c(tmp_path, method):
    code = textwrap.dedent(LAYOUT).replace(
        "if __name__ == '__main__':", 'if True:')
    res = _compare(['-c', code], method, str(tmp_path))
    if method == 'fork':
        assert res.stdout == 'exitcode 0\ngot 42\n'


# random's functions are methods of one Random instance, which a fork child
# reseeds: every child draws its own numbers, none the parent's next ones,
# whether its target goes by marshal (draw) or by cloudpickle (Box.draw).
RANDOM = '''
    import os
    from random import random, randint
    import multiprocessing as mp

    class Box:
        def __init__(self, q):
            self.q = q

        def draw(self):
            self.q.put((random(), randint(0, 10 ** 9)))

    def draw(q):
        q.put((random(), randint(0, 10 ** 9)))

    if __name__ == '__main__':
        mp.set_start_method(os.environ['METHOD'])
        q = mp.Queue()
        ps = [mp.Process(target=draw, args=(q,)) for _ in range(3)]
        ps += [mp.Process(target=Box(q).draw) for _ in range(3)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        got = [q.get(timeout=30) for _ in ps]
        print('distinct', len(set(got + [(random(), randint(0, 10 ** 9))])))
'''


@pytest.mark.parametrize('method', METHODS)
def test_children_draw_their_own_random_numbers(tmp_path, method):
    res = _compare([_write(tmp_path / 'prog.py', RANDOM)], method,
                   str(tmp_path))
    assert res.stdout == 'distinct 7\n'


# The parent's logging configuration, as a fork child has it: a
# basicConfig() handler on stderr, a FileHandler, levels and a silenced
# logger; spawn and forkserver children have only what __main__'s import
# sets up (nothing, here: the configuration is under the guard).
LOGGING = '''
    import logging
    import os
    import multiprocessing as mp

    log = logging.getLogger('app')

    def work(x):
        log.info('info %d from %s', x, mp.current_process().name)
        log.debug('debug %d', x)
        logging.getLogger('app.quiet').warning('silenced %d', x)
        return x

    if __name__ == '__main__':
        ctx = mp.get_context(os.environ['METHOD'])
        logging.basicConfig(level=logging.INFO,
                            format='%(levelname)s:%(name)s:%(message)s')
        fh = logging.FileHandler('app.log', 'w')
        fh.setFormatter(logging.Formatter('{levelname} {message}', style='{'))
        log.addHandler(fh)
        logging.getLogger('app.quiet').disabled = True
        log.info('parent')
        p = ctx.Process(target=work, args=(1,), name='child')
        p.start()
        p.join()
        with ctx.Pool(1) as pool:
            pool.map(work, [2])
        fh.close()
        print(open('app.log').read(), end='')
'''


@pytest.mark.parametrize('method', METHODS)
def test_children_log_as_the_parent_configured(tmp_path, method):
    res = _compare([_write(tmp_path / 'prog.py', LOGGING)], method,
                   str(tmp_path))
    if method == 'fork':
        assert res.stdout.splitlines() == [
            'INFO parent', 'INFO info 1 from child',
            'INFO info 2 from ForkPoolWorker-2'], res.stdout
        assert 'INFO:app:info 1 from child' in res.stderr, res.stderr
        assert 'silenced' not in res.stderr and 'debug' not in res.stderr
    else:
        assert res.stdout.splitlines() == ['INFO parent'], res.stdout


# Process names count on across a program: a pool's workers are numbered
# with its other processes, as CPython's process counter numbers them.
NAMES = '''
    import os
    import multiprocessing as mp

    def who(_):
        return mp.current_process().name

    if __name__ == '__main__':
        ctx = mp.get_context(os.environ['METHOD'])
        p = ctx.Process(target=who, args=(0,))
        p.start()
        p.join()
        with ctx.Pool(2) as pool:
            names = sorted(w.name for w in pool._pool)
            print(names, set(pool.map(who, range(8))) <= set(names))
        print(p.name, ctx.Process().name)
'''


@pytest.mark.parametrize('method', METHODS)
def test_process_and_pool_worker_names(tmp_path, method):
    res = _compare([_write(tmp_path / 'prog.py', NAMES)], method,
                   str(tmp_path))
    kind = {'fork': 'Fork', 'spawn': 'Spawn', 'forkserver': 'ForkServer'}
    workers = ['%sPoolWorker-%d' % (kind[method], i) for i in (2, 3)]
    assert res.stdout.splitlines()[0] == '%s True' % workers, res.stdout


def test_stdin_program(tmp_path):
    '''A program read from stdin (python - < prog) runs as under fork.'''
    code = textwrap.dedent(LAYOUT)
    for args in (['-'], ['-m', 'mpgo', '-']):
        res = subprocess.run([PYTHON, *args], input=code, cwd=str(tmp_path),
                             env=_env('fork'), capture_output=True,
                             text=True, timeout=TIMEOUT)
        if args[0] == '-':
            expected = res.stdout
        else:
            assert res.stdout == expected == 'exitcode 0\ngot 42\n', \
                res.stderr


def test_import_mpgo_directly(tmp_path):
    '''`import mpgo as multiprocessing` without the launcher: 'fork' is the
    default and a lambda target works.'''
    prog = _write(tmp_path / 'direct.py', '''
        import mpgo as multiprocessing

        G = [1, 2]

        if __name__ == '__main__':
            G.append(3)
            q = multiprocessing.SimpleQueue()
            p = multiprocessing.Process(target=lambda: q.put(sum(G)))
            p.start()
            print(multiprocessing.get_start_method(), q.get())
            p.join()
    ''')
    res = subprocess.run([PYTHON, prog], env=_env('fork'), cwd=str(tmp_path),
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert res.stdout == 'fork 6\n', res.stderr


@pytest.mark.parametrize('method', METHODS)
def test_child_pickles_main_objects_back(tmp_path, method):
    '''A 'fork' child sends instances of __main__'s classes and __main__'s
    functions back by reference; the parent gets its own class.'''
    prog = _write(tmp_path / 'back.py', '''
        import os
        import multiprocessing as mp

        class Msg:
            def __init__(self, text):
                self.text = text

        def shout(s):
            return s.upper()

        def child(q, m):
            q.put(Msg(m.text + '!'))
            q.put(shout)

        if __name__ == '__main__':
            ctx = mp.get_context(os.environ['METHOD'])
            q = ctx.Queue()
            p = ctx.Process(target=child, args=(q, Msg('hi')))
            p.start()
            m, f = q.get(timeout=30), q.get(timeout=30)
            p.join()
            print(type(m) is Msg, m.text, f is shout, p.exitcode)
    ''')
    res = _compare([prog], method, str(tmp_path))
    assert res.stdout == 'True hi! True 0\n'


def test_start_methods_as_cpython():
    import mpgo
    code = ('import multiprocessing as mp; print(mp.get_start_method(), '
            'mp.get_all_start_methods())')
    res = subprocess.run([PYTHON, '-m', 'mpgo', '-c', code], env=_env('x'),
                         capture_output=True, text=True, timeout=TIMEOUT)
    std = subprocess.run([PYTHON, '-c', code], env=_env('x'),
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert res.stdout == std.stdout, res.stderr
    assert mpgo.get_context('fork').get_start_method() == 'fork'
    assert sys.version_info >= (3, 14) or mpgo.get_start_method() == 'fork'


FUNCTIONS = '''
    import functools
    import os
    import os.path as osp
    import multiprocessing as mp

    COUNT = 0

    def fact(n):
        return 1 if n <= 1 else n * fact(n - 1)

    def is_even(n):
        return True if n == 0 else is_odd(n - 1)

    def is_odd(n):
        return False if n == 0 else is_even(n - 1)

    def bump():
        global COUNT
        COUNT += 1

    def counter():
        n = 0
        def step():
            nonlocal n
            n += 1
            return n
        return step

    def logged(f):
        @functools.wraps(f)
        def wrapper(*a, **k):
            return ('logged', f(*a, **k))
        return wrapper

    @logged
    def add(a, b=2, *, c=3) -> int:
        """Adds."""
        return a + b + c

    def gen(n):
        yield from range(n)

    def target(q, step):
        bump(); bump()
        step()
        q.put((fact(5), is_even(10), COUNT, step(), add(1), add.__doc__,
               add.__wrapped__.__name__, list(gen(3)), osp.basename('/a/b'),
               os.sep, __name__))

    if __name__ == '__main__':
        ctx = mp.get_context(os.environ['METHOD'])
        bump()
        q = ctx.Queue()
        step = counter()
        step()
        p = ctx.Process(target=target, args=(q, step))
        p.start()
        print(q.get(timeout=30))
        p.join()
        print('parent', COUNT, step())
'''


def test_functions_of_main_by_value(tmp_path):
    '''Recursion, mutual recursion, globals set by one function and read by
    another, closures over cells, decorators, defaults and annotations,
    generators and modules used as globals: as a fork child sees them.'''
    prog = _write(tmp_path / 'functions.py', FUNCTIONS)
    res = _compare([prog], 'fork', str(tmp_path))
    assert res.stdout.splitlines() == [
        "(120, True, 3, 3, ('logged', 6), 'Adds.', 'add', [0, 1, 2], 'b', "
        "'/', '__main__')", 'parent 1 2']


LATER = '''
    import os
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    class Job:
        def __init__(self, n):
            self.n = n

    def work(job):
        return job.n * 10

    def consumer(q, out):
        job = q.get()              # a Job, sent after the child started
        out.put(work(job))

    if __name__ == '__main__':
        ctx = mp.get_context(os.environ['METHOD'])
        q, out = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=consumer, args=(q, out))
        p.start()
        q.put(Job(4))
        print(out.get(timeout=30))
        p.join()
        with ProcessPoolExecutor(2, mp_context=ctx) as ex:
            print(list(ex.map(work, [Job(1), Job(2)])))
'''


@pytest.mark.parametrize('method', METHODS)
def test_main_objects_sent_later_by_name(tmp_path, method):
    '''Objects of __main__ that reach a child only later, by name (over a
    Queue, through a ProcessPoolExecutor), as under a real fork.'''
    prog = _write(tmp_path / 'later.py', LATER)
    res = _compare([prog], method, str(tmp_path))
    assert res.stdout == '40\n[10, 20]\n'


FORK_COPIES = '''
import os, sys, threading
import multiprocessing as mp

log = open(sys.argv[1], 'w', buffering=1)
tlock = threading.Lock()
rlock = threading.RLock()
held = threading.Lock()
held.acquire()

def work(i):
    with tlock, rlock:
        log.write('w%d\\n' % i)
    return held.locked(), log.name == sys.argv[1], log.mode

if __name__ == '__main__':
    mp.set_start_method(os.environ['METHOD'])
    p = mp.Process(target=work, args=(0,))
    p.start()
    p.join()
    print(p.exitcode)
    with mp.Pool(2) as pool:
        print(pool.map(work, range(1, 5)))
    log.close()
    with open(sys.argv[1]) as f:
        print(sorted(f.read().split()))
'''


def test_fork_copies_locks_and_files(tmp_path):
    '''What a fork copies and pickle refuses: threading locks (in their
    state) and open files (the same open file, shared offset) in globals
    of __main__ reach 'fork' children, Process and Pool alike.'''
    prog = _write(tmp_path / 'copies.py', FORK_COPIES)
    out = str(tmp_path / 'log.txt')
    res = _compare([prog, out], 'fork', str(tmp_path))
    assert res.stdout.splitlines() == [
        '0', str([(True, True, 'w')] * 4),
        str(['w%d' % i for i in range(5)])]


# Objects no pickle carries but a fork does (another library's objects that
# travel by inheritance only, a generator), in a program that makes no
# Queue, Lock or Value: mpgo forks for real, as CPython does.
INHERITED_ONLY = '''
    import multiprocessing as mp
    import sys

    class OnlyInherited:
        def __init__(self):
            self.value = 42
        def __reduce__(self):
            raise RuntimeError('OnlyInherited objects should only be shared '
                               'between processes through inheritance')

    def numbers():
        yield from range(5)

    def work(obj, gen):
        print('child', obj.value, sum(gen))

    if __name__ == '__main__':
        if sys.argv[1:] == ['engine']:
            q = mp.Queue()
        p = mp.get_context('fork').Process(target=work,
                                           args=(OnlyInherited(), numbers()))
        try:
            p.start()
        except RuntimeError as e:
            print('refused:', e)
            for note in getattr(e, '__notes__', []):
                print('note:', note)
        else:
            p.join()
            print('exitcode', p.exitcode)
'''


def test_fork_for_real_what_cannot_be_pickled(tmp_path):
    prog = _write(tmp_path / 'inherited.py', INHERITED_ONLY)
    res = _compare([prog], 'fork', str(tmp_path))
    assert res.stdout.splitlines() == ['child 42 10', 'exitcode 0']


def test_no_real_fork_once_go_runs(tmp_path):
    # Once this process has started Go, a fork would hang in the child: the
    # pickling error stands, and says why there is no real fork.
    prog = _write(tmp_path / 'inherited.py', INHERITED_ONLY)
    res = _run(['-m', 'mpgo', prog, 'engine'], 'fork', str(tmp_path))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith('refused: OnlyInherited objects'), lines
    if sys.version_info >= (3, 11):
        assert 'has not started its Go engine' in lines[1], lines


# A child that has loaded the engine but never entered Go (it only read a
# Value) forks for real, and its own child then uses the engine: the fork
# guard stops only children of processes that started Go.
FORKED_BEFORE_GO = '''
    import multiprocessing as mp
    import os

    class OnlyInherited:
        def __reduce__(self):
            raise RuntimeError('only through inheritance')

    def grandchild(obj):
        q = mp.Queue()
        q.put('grandchild queue')
        print(q.get(timeout=30), flush=True)

    def child(v):
        from mpgo import _engine
        print('child read', v.value, 'go started', _engine.fast.started(),
              flush=True)
        p = mp.Process(target=grandchild, args=(OnlyInherited(),))
        p.start()
        p.join()
        print('grandchild exitcode', p.exitcode, flush=True)
        pid = os.fork()
        if pid == 0:
            q = mp.SimpleQueue()
            q.put('os.fork child queue')
            print(q.get(), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)

    if __name__ == '__main__':
        v = mp.Value('i', 7)
        p = mp.get_context('fork').Process(target=child, args=(v,))
        p.start()
        p.join()
        print('exitcode', p.exitcode)
'''


def test_child_forked_before_go_starts_its_own(tmp_path):
    prog = _write(tmp_path / 'before_go.py', FORKED_BEFORE_GO)
    res = _run(['-m', 'mpgo', prog], 'fork', str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [
        'child read 7 go started False', 'grandchild queue',
        'grandchild exitcode 0', 'os.fork child queue', 'exitcode 0'], \
        res.stdout + res.stderr
