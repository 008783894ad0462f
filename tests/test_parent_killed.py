"""Helper processes die with their parent, even when it is SIGKILLed
(issue 10): a Manager's server, a Pool's workers, daemonic Processes and
the forkserver zygote. A non-daemonic Process outlives it, as in CPython.

The parent (_killed_parent.py) runs under a harness that is a child
subreaper, so every orphan of the parent, however deep, becomes the
harness's child: the harness sees them all, and kills whatever is left."""

import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))

# Runs in its own interpreter: being a subreaper is for life.
HARNESS = r'''
import ctypes, json, os, signal, subprocess, sys, time

PR_SET_CHILD_SUBREAPER = 36
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0

def shm():
    return set(os.listdir('/dev/shm'))

def children():
    """This process's live children (orphans are reparented here)."""
    me, out = str(os.getpid()), {}
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/stat' % pid) as f:
                rest = f.read().rpartition(')')[2].split()
            with open('/proc/%s/cmdline' % pid, 'rb') as f:
                cmd = f.read().replace(b'\0', b' ').decode(errors='replace')
        except OSError:
            continue
        if rest[1] == me and rest[0] not in 'ZX':
            out[int(pid)] = cmd
    return out

def descendants(root):
    tree = {}
    for pid in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/stat' % pid) as f:
                rest = f.read().rpartition(')')[2].split()
        except OSError:
            continue
        tree.setdefault(int(rest[1]), []).append(int(pid))
    out, todo = [], [root]
    while todo:
        for c in tree.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out

def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return

script, marker = sys.argv[1:3]
before = shm()
parent = subprocess.Popen([sys.executable, script, marker], stdout=subprocess.PIPE,
                          text=True)
line = parent.stdout.readline().split()
assert line[:1] == ['ready'], line
block = line[1]
helpers = descendants(parent.pid)
os.kill(parent.pid, signal.SIGKILL)
parent.wait()
deadline = time.monotonic() + 5
while True:
    reap()
    live = children()
    if not live or time.monotonic() > deadline:
        break
    time.sleep(0.05)
for pid in live:
    os.kill(pid, signal.SIGKILL)
time.sleep(0.2)
reap()
result = {'helpers': helpers, 'live': live, 'block': block,
          'block_left': os.path.exists('/dev/shm/' + block),
          'new_shm': sorted(n for n in shm() - before
                            if 'mpgo' in n or n.startswith('psm_')),
          'survived': os.path.exists(marker)}
for name in result['new_shm']:
    os.unlink('/dev/shm/' + name)  # a failed run leaves nothing either
print(json.dumps(result))
'''


@pytest.mark.slow
def test_helpers_die_with_a_sigkilled_parent(tmp_path):
    marker = str(tmp_path / 'survivor')
    out = subprocess.run(
        [sys.executable, '-c', HARNESS, os.path.join(HERE, '_killed_parent.py'), marker],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # Manager and SharedMemoryManager servers, 2 pool workers, the daemon,
    # the zygote and its child, the non-daemon: all were running.
    assert len(r['helpers']) >= 8, r
    assert r['live'] == {}, 'still alive 5 s after the parent was killed: %s' % r['live']
    assert not r['block_left'], r
    assert r['new_shm'] == [], r
    # The non-daemonic child outlived its parent (and then exited).
    assert r['survived'], r
