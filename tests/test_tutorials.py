"""Run the seed tutorials in tests/tutorials/ unmodified on mpgo.

Each tutorial runs as `python -m mpgo <file>` in a subprocess whose cwd is
a fresh temporary directory, and its output is handed to a checker. To add a
tutorial, put the script in tests/tutorials/ and add an entry to CHECKERS:
its file name mapped to a function that takes the CompletedProcess (text
stdout/stderr) and asserts on it. Checkers are order-insensitive where
processes interleave and exact where the output is deterministic.

The scripts are transcribed from the seed texts in /work/shared/seeds/; the
scrape lost some lines and indentation, and only those were restored:
seed001_*: indentation, plus a stray "We" glued to a print() line;
seed004_square: the docstrings' quotes and the start()/join() calls;
seed004_pool_map, seed004_exec_func, seed004_benchmark: the head
`p.map(<func>` of the map calls (the benchmark's on a line of its own, under
its `with`), the pool_map's p.close() under "# Close the Pool object", the
docstrings' quotes; seed004_queue: the docstring's quotes and p.start() and
p.join(); seed003_queue, seed003_value, seed003_pipe: the line breaks of
their one-line listings; seed004_value_nolock, seed004_value_lock: the
start()/join() calls; seed004_manager: `Pool` for the scraped `pool` and the
lost body of update_string (`l.append(val)`); seed000_counter (and its copy
in seed 001, seed001_dependencies): indentation.
seed004_benchmark runs as written (100000 tasks, about 40 s here).
"""

import ast
import os
import re
import subprocess
import sys

import pytest

TUTORIALS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         'tutorials')

# Generous: only a guard against hangs.
TIMEOUT = 120


def _lines(res):
    return res.stdout.splitlines()


def _check_counting_functions(res):
    '''Two processes each print start, 1..100, end, in their own order.'''
    lines = _lines(res)
    for n in (1, 2):
        own = [line for line in lines if line.startswith(('start func %d' % n,
                                                           'func %d ' % n,
                                                           'end func %d' % n))]
        assert own == (['start func %d' % n] +
                       ['func %d %d' % (n, i) for i in range(1, 101)] +
                       ['end func %d' % n])
    assert len(lines) == 2 * 102


def _check_workers(res):
    lines = _lines(res)
    assert lines[-1] == 'All workers completed'
    body = lines[:-1]
    assert sorted(body) == sorted(['Worker %d started' % i for i in range(5)] +
                                  ['Worker %d finished' % i for i in range(5)])
    for i in range(5):
        assert body.index('Worker %d started' % i) < \
            body.index('Worker %d finished' % i)


def _check_square(res):
    assert sorted(_lines(res)) == [
        'Square Roots: [1.0, 1.41, 1.73, 2.0, 2.24, 2.45, 2.65, 2.83, 3.0, '
        '3.16]',
        'Squares: [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]',
    ]


def _check_two_producers_queue(res):
    '''Squares and cubes of 1..5, each producer's in its own order: all
    ten items were in the queue once both producers had been joined.'''
    lines = _lines(res)
    assert len(lines) == 1 and lines[0].startswith('Results: ')
    results = ast.literal_eval(lines[0][len('Results: '):])
    squares = [n * n for n in range(1, 6)]
    cubes = [n * n * n for n in range(1, 6)]
    assert sorted(results) == sorted(squares + cubes)
    # 1 is both a square and a cube; check each producer's order on the
    # other values.
    assert [r for r in results if r in squares and r != 1] == squares[1:]
    assert [r for r in results if r in cubes and r != 1] == cubes[1:]


def _check_pool_with_callback(res):
    # The callback (print) has run before result.wait() returned.
    assert _lines(res) == ['Squares: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81]',
                           '100']


_CALCULATING = re.compile(r'^Process (\d+) calculating (square|product) of '
                          r'(.*)$')


def _worker_lines(lines, what, pool_size):
    '''Check lines are "Process <pid> calculating <what> of <arg>" from at
    most pool_size worker pids; return the args, sorted.'''
    pids, args = set(), []
    for line in lines:
        m = _CALCULATING.match(line)
        assert m and m.group(2) == what, line
        pids.add(int(m.group(1)))
        args.append(m.group(3))
    assert len(pids) <= pool_size
    return sorted(args)


def _check_pool_map_pids(res):
    lines = _lines(res)
    assert lines[-1] == ('Result is: [0, 1, 4, 9, 16, 25, 36, 49, 64, 81, '
                         '100, 121]')
    args = _worker_lines(lines[:-1], 'square', 4)
    assert sorted(map(int, args)) == list(range(12))


def _check_products(pool_size):
    def check(res):
        lines = _lines(res)
        assert lines[-1] == 'Result is: [6, 60]'
        assert _worker_lines(lines[:-1], 'product', pool_size) == \
            ['(1, 2, 3)', '(3, 4, 5)']
    return check


def _check_benchmark(res):
    lines = _lines(res)
    assert len(lines) == 3
    assert re.fullmatch(r'Parallel Processing Time Taken: \d+\.\d+(e-?\d+)?',
                        lines[0])
    assert lines[1] == 'Starting Serial Processing'
    assert re.fullmatch(
        r'Sequential Processing Time Taken: \d+\.\d+(e-?\d+)?', lines[2])


def _check_even_numbers_queue(res):
    assert _lines(res) == ['Queue: %s' % list(range(0, 100, 2))]


def _check_return_via_queue(res):
    lines = _lines(res)
    assert len(lines) == 2
    generated = lines[0].split('Generated ', 1)
    returned = lines[1].split('Returned: ', 1)
    assert generated[0] == '' and returned[0] == ''
    assert generated[1] == returned[1]
    assert 0.0 <= float(returned[1]) < 1.0


def _check_shared_counter(res):
    """Seed 000 (and seed 001's third script): four processes increment one
    Value('d') without a lock, so the tutorial itself races: each total may
    lose updates, but every process runs its 100 steps and finishes."""
    lines = _lines(res)
    for n in (1, 2):
        assert lines.count('start func %d' % n) == 2
        assert lines.count('end func %d' % n) == 2
        steps = [line for line in lines if line.startswith('func %d ' % n)]
        assert len(steps) == 200
        assert all(0 < float(line.split()[2]) <= 400 for line in steps)
    totals = {line.split(',')[0]: float(line.split(', ')[1])
              for line in lines if line.startswith(('func3,', 'func4,', 'main,'))}
    assert set(totals) == {'func3', 'func4', 'main'}
    assert 100 <= totals['main'] <= 400
    assert lines[-1].startswith('main, ')


def _check_shared_value_and_array(res):
    """Four processes each add 1 and double every element, unlocked (the
    tutorial races, though it rarely loses an update)."""
    lines = _lines(res)
    assert len(lines) == 2
    num = int(lines[0].split('Shared number: ')[1])
    assert 1 <= num <= 4
    arr = ast.literal_eval(lines[1].split('Shared array: ')[1])
    assert len(arr) == 3
    for base, x in zip((1.0, 2.0, 3.0), arr):
        assert x / base in (2.0, 4.0, 8.0, 16.0)


def _check_return_via_value(res):
    """The child stores a random float in a Value('f'): single precision."""
    lines = _lines(res)
    assert len(lines) == 2
    generated = float(lines[0].split('Generated ')[1])
    returned = float(lines[1].split('Returned: ')[1])
    assert abs(generated - returned) < 1e-6


def _check_value_without_lock(res):
    """10000 unlocked += 1 and -= 1 from two processes: may lose updates."""
    lines = _lines(res)
    assert len(lines) == 1
    assert -9999 <= int(lines[0].split('Value is ')[1]) <= 10001


def _check_value_with_lock(res):
    assert _lines(res) == ['Value is 1']


def _check_manager_list(res):
    lines = _lines(res)
    assert len(lines) == 1 and lines[0].startswith('List: ')
    assert sorted(ast.literal_eval(lines[0][len('List: '):])) == sorted(
        ['with', 'great', 'power', 'comes', 'great', 'responsibilty'])


# File name in tests/tutorials/ -> checker of its CompletedProcess.
CHECKERS = {
    'seed001_parallel.py': _check_counting_functions,
    'seed001_arguments.py': _check_counting_functions,
    'seed002_workers.py': _check_workers,
    'seed004_square.py': _check_square,
    'seed002_queue.py': _check_two_producers_queue,
    'seed002_pool.py': _check_pool_with_callback,
    'seed003_queue.py': _check_return_via_queue,
    'seed004_pool_map.py': _check_pool_map_pids,
    'seed004_exec_func.py': _check_products(4),
    'seed004_starmap.py': _check_products(2),
    'seed004_benchmark.py': _check_benchmark,
    'seed004_queue.py': _check_even_numbers_queue,
    'seed000_counter.py': _check_shared_counter,
    'seed001_dependencies.py': _check_shared_counter,
    'seed002_shared.py': _check_shared_value_and_array,
    'seed003_value.py': _check_return_via_value,
    'seed003_pipe.py': _check_return_via_queue,
    'seed004_value_nolock.py': _check_value_without_lock,
    'seed004_value_lock.py': _check_value_with_lock,
    'seed004_manager.py': _check_manager_list,
}


def run_tutorial(name, cwd):
    '''Run tutorial name with `python -m mpgo` in cwd.'''
    # Block-buffered output (the default for a pipe): each process then
    # writes its lines whole, so they interleave only line by line.
    # Unbuffered, print() writes the text and the newline separately and
    # concurrent processes can splice their lines, with any start method.
    env = dict(os.environ)
    env.pop('PYTHONUNBUFFERED', None)
    return subprocess.run(
        [sys.executable, '-m', 'mpgo', os.path.join(TUTORIALS, name)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


@pytest.mark.parametrize('name', sorted(CHECKERS))
def test_tutorial(name, tmp_path):
    res = run_tutorial(name, str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ''
    CHECKERS[name](res)


def test_every_tutorial_has_a_checker():
    scripts = {name for name in os.listdir(TUTORIALS) if name.endswith('.py')}
    assert scripts - set(CHECKERS) == set(), 'add these to CHECKERS'
    assert set(CHECKERS) - scripts == set(), 'missing tutorial files'
