"""A Go sender (examples/pipe, on core/pipe) wakes a Python end of a Pipe()
waiting in poll(), connection.wait() or a select on its fileno(): it rings
the end's doorbell as a Python sender does."""
import os
import select
import shutil
import subprocess
import threading

import pytest

import mpgo
from mpgo import connection

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG = 60  # a wait that a missing doorbell would leave hanging for ever


@pytest.fixture(scope="module")
def gopipe(tmp_path_factory):
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is needed for the interop tests")
    exe = tmp_path_factory.mktemp("go") / "pipe"
    subprocess.run([go, "build", "-o", str(exe), "./examples/pipe"], cwd=ROOT, check=True)
    return str(exe)


def go_sender(exe, receiver, sender, n, wait_for_waiter):
    """Start the Go program sending n messages to receiver, standing in for
    sender (its other end)."""
    refs = sender.engine_refs()
    bell = sender.doorbell_fd()
    args = [exe, "-send", refs["send"], "-ctl", refs["ctl"],
            "-off", str(refs["ctl_offset"]), "-side", str(receiver.engine_refs()["side"]),
            "-bell", str(bell), "-n", str(n)]
    if wait_for_waiter:
        args.append("-await")
    return subprocess.Popen(args, pass_fds=(bell,), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def in_thread(f):
    """f() run in a thread, which must return (else the doorbell was never
    rung and f waits for ever)."""
    out = []
    t = threading.Thread(target=lambda: out.append(f()), daemon=True)
    t.start()
    t.join(HANG)
    assert not t.is_alive(), "the Go sender did not wake the waiter"
    return out[0]


def finish(go, n):
    try:
        out, err = go.communicate(timeout=HANG)
    finally:
        if go.poll() is None:
            go.kill()
            go.wait()
    assert go.returncode == 0, err
    assert out.strip() == "sent %d" % n


@pytest.mark.parametrize("duplex", [True, False])
def test_go_sender_wakes_poll(gopipe, duplex):
    a, b = mpgo.Pipe(duplex)
    go = go_sender(gopipe, a, b, 3, wait_for_waiter=True)
    try:
        for i in range(3):
            assert in_thread(lambda: a.poll(10 * HANG)) is True
            assert a.recv_bytes() == b"go:%d" % i
    finally:
        finish(go, 3)
    assert not a.poll(0)


def test_go_sender_wakes_wait(gopipe):
    a, b = mpgo.Pipe()
    idle, _idle_peer = mpgo.Pipe()
    go = go_sender(gopipe, a, b, 2, wait_for_waiter=True)
    try:
        for i in range(2):
            ready = in_thread(lambda: connection.wait([idle, a], 10 * HANG))
            assert ready == [a]
            assert a.recv_bytes() == b"go:%d" % i
    finally:
        finish(go, 2)
    assert connection.wait([idle, a], 0) == []


def test_go_sender_keeps_level_mode_exact(gopipe):
    # Once fileno() was asked for, the doorbell holds a byte exactly while a
    # message waits: the Go sender sets it under the control block's lock.
    a, b = mpgo.Pipe()
    fd = a.fileno()
    assert select.select([fd], [], [], 0)[0] == []
    go = go_sender(gopipe, a, b, 2, wait_for_waiter=False)
    try:
        assert in_thread(lambda: select.select([fd], [], [], 10 * HANG)[0]) == [fd]
    finally:
        finish(go, 2)
    assert a.recv_bytes() == b"go:0"
    assert select.select([fd], [], [], 0)[0] == [fd]
    assert a.recv_bytes() == b"go:1"
    assert select.select([fd], [], [], 0)[0] == []
