"""Run CPython's own multiprocessing test suites on mpgo and on the
standard library, side by side, and compare.

    python tests/cpython/run.py [--suite multiprocessing,main_handling,...]
        [--flavour spawn] [--fast] [--jobs 2] [--json results.json]
        [--classes PATTERN,...]

The suites are the running interpreter's own (test._test_multiprocessing
installed for the start method, as CPython's test_multiprocessing_spawn
does; test_multiprocessing_main_handling; test_concurrent_futures, where
the interpreter ships it): see suites.py. Both implementations run the
same selection in the same run, class by class, interleaved:

* stdlib: a virtual environment of this interpreter, as it is;
* mpgo: a virtual environment of this interpreter whose site-packages holds
  a .pth file that puts mpgo on sys.path and installs mpgo's alias
  (mpgo._alias), so that `multiprocessing` is mpgo in EVERY process,
  including the ones the tests start with subprocess and `python -E`/`-I`,
  as `python -m mpgo` makes it for the processes mpgo starts.

Each class runs in a worker process (worker.py) in a new session: a test
that hangs for --test-timeout seconds is reported as a timeout and the
rest of its class runs in a new worker; processes a worker leaves behind
are killed.

A test that passes on the standard library must pass on mpgo, unless
exclusions.py lists it with the reason mpgo is knowingly different.
The exit status is 1 if one does not (an unexpected failure), else 0.
"""

import argparse
import collections
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import exclusions  # noqa: E402

WORKER = os.path.join(HERE, 'worker.py')
PASSED = ('pass', 'xfail')


def mpgo_path():
    '''The directory holding the mpgo package to test.'''
    try:
        import mpgo
    except ImportError:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), 'python'))
        import mpgo
    return os.path.dirname(os.path.dirname(os.path.abspath(mpgo.__file__)))


def make_venv(path, python, mpgo_dir=None):
    '''A virtual environment of python at path; with mpgo_dir, one whose
    `multiprocessing` is mpgo in every process. Returns its python.'''
    subprocess.run([python, '-m', 'venv', '--without-pip', path], check=True)
    vpy = os.path.join(path, 'bin', 'python')
    site = subprocess.run(
        [vpy, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'],
        check=True, capture_output=True, text=True).stdout.strip()
    if mpgo_dir is not None:
        with open(os.path.join(site, '_mpgo_alias.pth'), 'w') as f:
            f.write('%s\nimport mpgo._alias; mpgo._alias.install()\n' % mpgo_dir)
    return vpy


def clean_env():
    env = dict(os.environ)
    for k in ('PYTHONPATH', 'PYTHONHOME', 'MPGO_START_METHOD'):
        env.pop(k, None)
    return env


def session_pids(sid):
    pids = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rpartition(')')[2].split()
        except OSError:
            continue
        # fields[0] is the state, [3] the session id
        if fields and fields[0] not in ('Z', 'X') and int(fields[3]) == sid:
            pids.append(int(entry))
    return pids


def reap_session(sid, grace=3.0):
    '''Give what is left of session sid grace seconds to exit (a resource
    tracker cleaning up), then kill it.'''
    deadline = time.monotonic() + grace
    while session_pids(sid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = session_pids(sid)
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


class Runner(object):
    def __init__(self, args, pythons, workdir):
        self.args = args
        self.pythons = pythons          # impl -> venv python
        self.workdir = workdir
        self.env = clean_env()
        self.results = collections.defaultdict(dict)  # impl -> id -> record
        self.lock = threading.Lock()
        self.counter = 0
        self.leftovers = collections.defaultdict(list)

    def _tmp(self, stem):
        with self.lock:
            self.counter += 1
            return os.path.join(self.workdir, '%s-%d' % (stem, self.counter))

    def list_classes(self, suite):
        out = self._tmp('list')
        env = dict(self.env, MPGO_CPYTHON_FLAVOUR=self.args.flavour)
        subprocess.run([self.pythons['stdlib'], WORKER, 'list', suite,
                        self.args.flavour, out], check=True, env=env,
                       cwd=self.workdir)
        with open(out) as f:
            return json.load(f)

    def run_tests(self, impl, suite, cls, test_ids):
        '''Run the tests test_ids of class cls under impl, in workers,
        until each has an outcome.'''
        skips = {}
        if impl == 'mpgo':
            for tid in test_ids:
                ex = exclusions.find(tid, self.args.flavour)
                if ex is not None and not ex.run:
                    skips[tid] = ex.reason
        skipfile = self._tmp('skip')
        with open(skipfile, 'w') as f:
            json.dump(skips, f)
        todo = [cls]
        left = list(test_ids)
        while left:
            out = self._tmp('out')
            log = out + '.log'
            env = dict(self.env, MPGO_CPYTHON_FLAVOUR=self.args.flavour,
                       MPGO_CPYTHON_TEST_TIMEOUT=str(self.args.test_timeout))
            with open(log, 'w') as logf:
                p = subprocess.Popen(
                    [self.pythons[impl], WORKER, 'run', suite,
                     self.args.flavour, out] + todo + ['--skip', skipfile],
                    stdout=logf, stderr=subprocess.STDOUT, env=env,
                    cwd=self.workdir, start_new_session=True)
                try:
                    rc = p.wait(self.args.class_timeout)
                except subprocess.TimeoutExpired:
                    rc = None
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
            stray = reap_session(p.pid)
            if stray:
                self.leftovers[impl].append((cls, stray))
            got, started = {}, None
            if os.path.exists(out):
                with open(out) as f:
                    for line in f:
                        rec = json.loads(line)
                        if rec['outcome'] == 'start':
                            started = rec['id']
                            continue
                        got[rec['id']] = rec
                        if rec['id'] == started:
                            started = None
            with self.lock:
                self.results[impl].update(got)
            missing = [t for t in left if t not in got]
            if not missing:
                break
            with open(log) as f:
                tail = f.read()[-6000:]
            # The test that was running when the worker died (or the first
            # one not reported, if it died between tests) fails, the
            # others run again.
            culprit = started if started in missing else missing[0]
            outcome = 'timeout' if (rc is None or 'Timeout (' in tail) else 'crash'
            with self.lock:
                self.results[impl][culprit] = {
                    'id': culprit, 'outcome': outcome,
                    'detail': 'worker exit %s\n%s' % (rc, tail), 'time': None}
            left = [t for t in missing if t != culprit]
            todo = left

    def run(self, suites):
        plan = []
        for suite in suites:
            classes = self.list_classes(suite)
            for cls, tests in classes.items():
                if self.args.fast and exclusions.is_slow(cls):
                    continue
                if self.args.classes and not any(
                        fnmatch.fnmatch(cls.split('.')[-1], pat)
                        for pat in self.args.classes.split(',')):
                    continue
                for impl in self.args.impls:
                    plan.append((impl, suite, cls, tests))
        self.plan = plan
        threads = []
        it = iter(plan)
        it_lock = threading.Lock()

        def work():
            while True:
                with it_lock:
                    item = next(it, None)
                if item is None:
                    return
                impl, suite, cls, tests = item
                t0 = time.monotonic()
                self.run_tests(impl, suite, cls, tests)
                if self.args.verbose:
                    print('  %-8s %-60s %6.1fs' % (impl, cls, time.monotonic() - t0),
                          flush=True)

        for _ in range(self.args.jobs):
            t = threading.Thread(target=work)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()


def summarize(runner, out=sys.stdout):
    impls = runner.args.impls
    all_ids = []
    for impl, suite, cls, tests in runner.plan:
        if impl == impls[0]:
            all_ids += tests
    counts = {impl: collections.Counter() for impl in impls}
    for impl in impls:
        for tid in all_ids:
            rec = runner.results[impl].get(tid)
            counts[impl][rec['outcome'] if rec else 'missing'] += 1
    kinds = ['pass', 'fail', 'error', 'skip', 'excluded', 'xfail', 'upass',
             'timeout', 'crash', 'missing']
    out.write('\n%-8s %s\n' % ('', ' '.join('%8s' % k for k in kinds)))
    for impl in impls:
        out.write('%-8s %s\n' % (impl, ' '.join('%8d' % counts[impl][k] for k in kinds)))
    unexpected, excluded_ok, stale = [], [], []
    if 'mpgo' in impls and 'stdlib' in impls:
        for tid in all_ids:
            s = runner.results['stdlib'].get(tid, {}).get('outcome')
            m = runner.results['mpgo'].get(tid, {})
            ex = exclusions.find(tid, runner.args.flavour)
            if s in PASSED and m.get('outcome') not in PASSED:
                if ex is None:
                    unexpected.append((tid, m))
                else:
                    excluded_ok.append((tid, ex))
            elif ex is not None and ex.run and m.get('outcome') in PASSED:
                stale.append((tid, ex))
    out.write('\nexcluded (stdlib passes, mpgo knowingly differs): %d\n' % len(excluded_ok))
    if stale:
        out.write('\nexclusions that now pass on mpgo (remove them):\n')
        for tid, ex in stale:
            out.write('  %s\n' % tid)
    for impl, items in runner.leftovers.items():
        out.write('\n%s: processes left behind after: %s\n'
                  % (impl, ', '.join('%s %s' % (c.split('.')[-1], p) for c, p in items)))
    out.write('\nunexpected failures (pass on the stdlib, not on mpgo): %d\n'
              % len(unexpected))
    for tid, rec in unexpected:
        out.write('\n--- %s: %s\n%s\n' % (tid, rec.get('outcome', 'missing'),
                                         (rec.get('detail') or '')[-2500:]))
    return counts, unexpected


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--suite', default='multiprocessing,main_handling,concurrent_futures')
    ap.add_argument('--flavour', default='spawn', choices=['spawn', 'fork', 'forkserver'])
    ap.add_argument('--impls', default='stdlib,mpgo')
    ap.add_argument('--fast', action='store_true',
                    help='leave out the slow classes (exclusions.SLOW): what CI runs')
    ap.add_argument('--classes', default='', help='only classes matching these patterns')
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('--test-timeout', type=float, default=180.0)
    ap.add_argument('--class-timeout', type=float, default=1800.0)
    ap.add_argument('--python', default=sys.executable)
    ap.add_argument('--mpgo', help='the directory holding the mpgo package to '
                    'test (default: the one this interpreter imports, else '
                    "the repository's python/)")
    ap.add_argument('--json', help='write every outcome here')
    ap.add_argument('--keep', action='store_true', help='keep the work directory')
    ap.add_argument('-v', '--verbose', action='store_true')
    args = ap.parse_args(argv)
    args.impls = args.impls.split(',')
    workdir = tempfile.mkdtemp(prefix='mpgo-cpython-')
    try:
        pythons = {'stdlib': make_venv(os.path.join(workdir, 'venv-stdlib'), args.python)}
        if 'mpgo' in args.impls:
            pythons['mpgo'] = make_venv(os.path.join(workdir, 'venv-mpgo'),
                                        args.python, args.mpgo or mpgo_path())
        version = subprocess.run([args.python, '-c', 'import sys; print(sys.version.split()[0])'],
                                 capture_output=True, text=True).stdout.strip()
        print('CPython %s test suites (%s), flavour %s%s' % (
            version, args.suite, args.flavour, ', fast selection' if args.fast else ''),
            flush=True)
        runner = Runner(args, pythons, workdir)
        t0 = time.monotonic()
        runner.run(args.suite.split(','))
        counts, unexpected = summarize(runner)
        print('\n%.0f s' % (time.monotonic() - t0))
        if args.json:
            with open(args.json, 'w') as f:
                json.dump({'python': version, 'flavour': args.flavour,
                           'counts': {k: dict(v) for k, v in counts.items()},
                           'unexpected': [t for t, _ in unexpected],
                           'results': runner.results}, f, indent=1)
        return 1 if unexpected else 0
    finally:
        if args.keep:
            print('work directory:', workdir)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
