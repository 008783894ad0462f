"""Runs some classes of one of CPython's multiprocessing test suites in
this interpreter, writing one JSON line per test to a file.

    python worker.py list SUITE FLAVOUR OUT
    python worker.py run SUITE FLAVOUR OUT CLASS... [--skip SKIPFILE]

run.py starts it with the interpreter under test: a virtual environment
whose `multiprocessing` is mpgo's (in every process: see run.py) or the
standard library's. SUITE is one of suites.SUITES; each class is
module.Class. SKIPFILE is a JSON object {test id: reason} of tests not to
run (the exclusions that would hang).
"""

import faulthandler
import json
import os
import sys
import time
import traceback
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import suites  # noqa: E402

_TIMEOUT = float(os.environ.get('MPGO_CPYTHON_TEST_TIMEOUT', '0'))


class _JsonResult(unittest.TestResult):
    '''Writes each test's outcome as soon as it is known.'''

    def __init__(self, out, skipped_ids):
        super().__init__()
        self._out = out
        self._skipped_ids = skipped_ids
        self._start = {}
        self._sub_failures = {}

    def _write(self, test, outcome, detail=''):
        tid = test.id()
        rec = {'id': tid, 'outcome': outcome, 'detail': detail[-4000:],
               'time': round(time.monotonic() - self._start.get(tid, time.monotonic()), 3)}
        self._out.write(json.dumps(rec) + '\n')
        self._out.flush()

    def startTest(self, test):
        super().startTest(test)
        self._start[test.id()] = time.monotonic()
        self._sub_failures.pop(test.id(), None)
        self._out.write(json.dumps({'id': test.id(), 'outcome': 'start'}) + '\n')
        self._out.flush()
        if _TIMEOUT:
            # A test that hangs ends the worker, with every thread's
            # traceback in the log; run.py runs the rest of the class.
            faulthandler.dump_traceback_later(_TIMEOUT, exit=True)

    def stopTest(self, test):
        faulthandler.cancel_dump_traceback_later()
        super().stopTest(test)
        sub = self._sub_failures.pop(test.id(), None)
        if sub is not None:
            self._write(test, *sub)

    def _fmt(self, err):
        return ''.join(traceback.format_exception(*err))

    def addSuccess(self, test):
        if test.id() not in self._sub_failures:
            self._write(test, 'pass')

    def addFailure(self, test, err):
        self._write(test, 'fail', self._fmt(err))

    def addError(self, test, err):
        # setUpClass/setUpModule errors come as an _ErrorHolder.
        self._write(test, 'error', self._fmt(err))

    def addSkip(self, test, reason):
        if test.id() in self._skipped_ids:
            self._write(test, 'excluded', reason)
        else:
            self._write(test, 'skip', reason)

    def addExpectedFailure(self, test, err):
        self._write(test, 'xfail')

    def addUnexpectedSuccess(self, test):
        self._write(test, 'upass')

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None and test.id() not in self._sub_failures:
            kind = 'fail' if issubclass(err[0], test.failureException) else 'error'
            self._sub_failures[test.id()] = (kind, '%s\n%s' % (subtest, self._fmt(err)))


def _skip_marked(suite, skips):
    '''Replace the tests of suite named in skips by skipped ones.'''
    for test in _iter_tests(suite):
        reason = skips.get(test.id())
        if reason is not None:
            name = test._testMethodName
            setattr(type(test), name,
                    unittest.skip('mpgo exclusion: ' + reason)(getattr(type(test), name)))


def _iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from _iter_tests(t)
        else:
            yield t


def main(argv):
    cmd, suite_name, flavour, out_path = argv[:4]
    os.environ['MPGO_CPYTHON_FLAVOUR'] = flavour
    suite = suites.SUITES[suite_name]
    if cmd == 'list':
        loader = unittest.TestLoader()
        classes = {}
        for name in suite.classes(flavour):
            classes[name] = [t.id() for t in _iter_tests(loader.loadTestsFromName(name))]
        with open(out_path, 'w') as f:
            json.dump(classes, f)
        return 0
    rest = argv[4:]
    skips = {}
    if '--skip' in rest:
        i = rest.index('--skip')
        with open(rest[i + 1]) as f:
            skips = json.load(f)
        rest = rest[:i] + rest[i + 2:]
    loader = unittest.TestLoader()
    tests = unittest.TestSuite(loader.loadTestsFromName(name) for name in rest)
    _skip_marked(tests, skips)
    with open(out_path, 'a') as out:
        result = _JsonResult(out, set(skips))
        tests.run(result)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
