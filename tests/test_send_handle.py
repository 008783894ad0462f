"""reduction.send_handle/recv_handle over Pipe() ends (shared-memory rings:
the fd goes through resource_sharer) and over Listener/Client connections
(sockets: SCM_RIGHTS on the connection itself, as in CPython)."""

import os
import threading

import pytest

import mpgo
from mpgo import reduction
from mpgo.connection import Client, Listener

import _fileno_helpers as H

GUARD = 60


@pytest.mark.parametrize('duplex', [True, False])
def test_to_a_child_over_pipe(tmp_path, duplex):
    a, b = mpgo.Pipe(duplex)
    reader, writer = (b, a) if duplex else (a, b)
    reply_r, reply_w = mpgo.Pipe(False)
    p = mpgo.Process(target=_recv_write_reply, args=(reader, reply_w))
    p.start()
    path = tmp_path / 'out'
    with open(path, 'wb') as f:
        reduction.send_handle(writer, f.fileno(), p.pid)
    # the fd was closed here at once: the child still writes through it
    assert reply_r.recv() == 'done'
    p.join(GUARD)
    assert p.exitcode == 0
    assert path.read_bytes() == b'written by %d\n' % p.pid
    for c in (a, b, reply_r, reply_w):
        c.close()


def _recv_write_reply(reader, reply):
    fd = reduction.recv_handle(reader)
    os.write(fd, b'written by %d\n' % os.getpid())
    os.close(fd)
    reply.send('done')


def test_from_a_child_that_closes_it_at_once(tmp_path):
    path = tmp_path / 'in'
    path.write_bytes(b'contents')
    a, b = mpgo.Pipe()
    p = mpgo.Process(target=H.send_own_handle, args=(b, str(path)))
    p.start()
    fd = reduction.recv_handle(a)
    try:
        assert os.read(fd, 100) == b'contents'
    finally:
        os.close(fd)
    a.send('read')
    p.join(GUARD)
    assert p.exitcode == 0
    a.close()
    b.close()


def test_large_fd_numbers_in_one_process():
    a, b = mpgo.Pipe()
    r, w = os.pipe()
    big = os.dup2(w, 300)
    os.close(w)
    reduction.send_handle(a, big, os.getpid())
    os.close(big)
    fd = reduction.recv_handle(b)
    os.write(fd, b'x')
    os.close(fd)
    assert os.read(r, 1) == b'x'
    os.close(r)
    a.close()
    b.close()


def test_a_message_that_is_not_a_handle():
    a, b = mpgo.Pipe()
    a.send('not a handle')
    with pytest.raises(RuntimeError, match='not a handle'):
        reduction.recv_handle(b)
    a.close()
    b.close()


def test_over_listener_and_client():
    r, w = os.pipe()
    with Listener() as listener:
        got = []

        def serve():
            with listener.accept() as conn:
                got.append(reduction.recv_handle(conn))

        t = threading.Thread(target=serve)
        t.start()
        with Client(listener.address) as c:
            reduction.send_handle(c, w, os.getpid())
        t.join(GUARD)
    os.close(w)
    os.write(got[0], b'y')
    os.close(got[0])
    assert os.read(r, 1) == b'y'
    os.close(r)
