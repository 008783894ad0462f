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
seed004_square: the docstrings' quotes and the start()/join() calls.
"""

import os
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


# File name in tests/tutorials/ -> checker of its CompletedProcess.
CHECKERS = {
    'seed001_parallel.py': _check_counting_functions,
    'seed001_arguments.py': _check_counting_functions,
    'seed002_workers.py': _check_workers,
    'seed004_square.py': _check_square,
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
