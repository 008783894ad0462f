"""Go and Python processes share queues: raw messages, exactly once, in
order per producer (examples/queue is the Go peer)."""
import os
import shutil
import subprocess
import sys

import pytest

import mpgo

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 1_000_000


@pytest.fixture(scope="module")
def goqueue(tmp_path_factory):
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed for the interop tests")
    exe = tmp_path_factory.mktemp("go") / "queue"
    subprocess.run([go, "build", "-o", str(exe), "./examples/queue"], cwd=ROOT, check=True)
    return str(exe)


def ref_of(q):
    return q.engine_ref()


def _python_producer(q, pid, n):
    for i in range(n):
        q.put_bytes(b"%d:%d" % (pid, i))


@pytest.mark.slow
def test_go_producer_python_consumer(goqueue):
    q = mpgo.Queue()
    go = subprocess.Popen([goqueue, "-ref", ref_of(q), "-mode", "produce", "-id", "7",
                           "-n", str(N)], stdout=subprocess.PIPE, text=True)
    try:
        for i in range(N):
            assert q.get_bytes(timeout=60) == b"7:%d" % i
        assert q.empty()
    finally:
        out, _ = go.communicate(timeout=60)
    assert go.returncode == 0 and out.strip() == "produced %d" % N


@pytest.mark.slow
def test_python_producer_go_consumer(goqueue):
    q = mpgo.Queue()
    go = subprocess.Popen([goqueue, "-ref", ref_of(q), "-mode", "consume", "-n", str(N)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _python_producer(q, 3, N)
    out, err = go.communicate(timeout=120)
    assert go.returncode == 0, err
    assert out.strip() == "consumed %d from 1 producers" % N
    assert q.empty()


def test_mixed_producers_python_consumer(goqueue):
    n = 50_000
    q = mpgo.Queue()
    gos = [subprocess.Popen([goqueue, "-ref", ref_of(q), "-mode", "produce", "-id", str(k),
                             "-n", str(n)], stdout=subprocess.DEVNULL) for k in (1, 2)]
    p = mpgo.Process(target=_python_producer, args=(q, 3, n))
    p.start()
    nxt = {1: 0, 2: 0, 3: 0}
    for _ in range(3 * n):
        pid, seq = map(int, q.get_bytes(timeout=60).split(b":"))
        assert seq == nxt[pid]
        nxt[pid] += 1
    p.join(60)
    for g in gos:
        assert g.wait(60) == 0
    assert nxt == {1: n, 2: n, 3: n} and q.empty()
