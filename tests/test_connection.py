"""Tests of mpgo.connection: Pipe, Connection, Listener/Client, wait and
pickling of Connections (in one process and into spawned children)."""
import array
import errno
import os
import pickle
import socket
import threading

import pytest

import mpgo
from mpgo import connection, reduction
from mpgo.connection import Client, Listener, Pipe, wait
from mpgo.context import AuthenticationError, BufferTooShort

import _conn_helpers

# Generous bound for anything a child must do; only a guard against hangs.
GUARD = 60


def _recv(conn, timeout=GUARD):
    assert conn.poll(timeout), 'nothing arrived'
    return conn.recv()


def _join(p):
    p.join(GUARD)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail('child %r did not exit' % p)


@pytest.fixture(autouse=True)
def _no_child_left():
    yield
    left = mpgo.active_children()
    for p in left:
        p.kill()
        p.join()
    assert left == [], 'test left children behind'


def _serve_in_thread(listener, target):
    """Accept one connection on listener in a thread, run target(conn) (or
    store the exception it raised); return (thread, result dict)."""
    result = {}

    def run():
        try:
            with listener.accept() as c:
                result['value'] = target(c)
        except Exception as e:
            result['error'] = e
    t = threading.Thread(target=run)
    t.start()
    return t, result

#
# Pipe and Connection within one process
#


class TestPipe:
    OBJECTS = [None, 1, -2 ** 70, 3.5, 'text', b'\x00bytes', [1, (2, 3)],
               {'k': {1, 2}}, ValueError('boom')]

    def test_duplex_both_directions(self):
        a, b = Pipe()
        with a, b:
            assert a.readable and a.writable and b.readable and b.writable
            for obj in self.OBJECTS:
                a.send(obj)
                got = b.recv()
                if isinstance(obj, Exception):
                    assert type(got) is type(obj) and got.args == obj.args
                else:
                    assert got == obj
                b.send(obj)
                got = a.recv()
                if not isinstance(obj, Exception):
                    assert got == obj

    def test_simplex_direction_and_wrong_end(self):
        r, w = Pipe(duplex=False)
        with r, w:
            assert r.readable and not r.writable
            assert w.writable and not w.readable
            w.send('one way')
            assert r.recv() == 'one way'
            with pytest.raises(OSError, match='read-only'):
                r.send('x')
            with pytest.raises(OSError, match='read-only'):
                r.send_bytes(b'x')
            with pytest.raises(OSError, match='write-only'):
                w.recv()
            with pytest.raises(OSError, match='write-only'):
                w.recv_bytes()
            with pytest.raises(OSError, match='write-only'):
                w.poll()
            with pytest.raises(OSError, match='write-only'):
                w.recv_bytes_into(bytearray(10))

    def test_ends_are_rings_with_pollable_doorbells(self):
        import select
        import stat
        from mpgo.connection import Connection, RingConnection
        a, b = Pipe()
        r, w = Pipe(False)
        with a, b, r, w:
            for c in (a, b, r, w):
                assert isinstance(c, RingConnection) and isinstance(c, Connection)
            assert stat.S_ISFIFO(os.fstat(a.fileno()).st_mode)
            assert stat.S_ISFIFO(os.fstat(r.fileno()).st_mode)
            # Once fileno() was asked for, a plain select works on it.
            assert select.select([r.fileno()], [], [], 0)[0] == []
            w.send('x')
            assert select.select([r.fileno()], [], [], 5)[0] == [r.fileno()]
            assert r.recv() == 'x'
            assert select.select([r.fileno()], [], [], 0)[0] == []

    def test_send_bytes_offset_and_size(self):
        a, b = Pipe()
        with a, b:
            data = b'0123456789'
            a.send_bytes(data)
            assert b.recv_bytes() == data
            a.send_bytes(data, 3)
            assert b.recv_bytes() == b'3456789'
            a.send_bytes(data, 2, 5)
            assert b.recv_bytes() == b'23456'
            a.send_bytes(data, 10)
            assert b.recv_bytes() == b''
            a.send_bytes(data, 0, 0)
            assert b.recv_bytes() == b''
            a.send_bytes(bytearray(data), size=4)
            assert b.recv_bytes() == b'0123'
            a.send_bytes(memoryview(data)[1:], 1, 2)
            assert b.recv_bytes() == b'23'
            with pytest.raises(ValueError, match='offset is negative'):
                a.send_bytes(data, -1)
            with pytest.raises(ValueError, match='buffer length < offset'):
                a.send_bytes(data, 11)
            with pytest.raises(ValueError, match='size is negative'):
                a.send_bytes(data, 0, -1)
            with pytest.raises(ValueError,
                               match=r'buffer length < offset \+ size'):
                a.send_bytes(data, 5, 6)
            assert not b.poll()

    def test_send_bytes_counts_bytes_of_wide_items(self):
        a, b = Pipe()
        with a, b:
            arr = array.array('i', range(10))
            a.send_bytes(arr, 8, 8)  # offset and size are in bytes
            assert b.recv_bytes() == array.array('i', [2, 3]).tobytes()

    def test_recv_bytes_maxlength(self):
        a, b = Pipe()
        with a, b:
            a.send_bytes(b'x' * 10)
            a.send_bytes(b'y' * 10)
            assert b.recv_bytes(10) == b'x' * 10
            with pytest.raises(ValueError, match='negative maxlength'):
                b.recv_bytes(-1)
            with pytest.raises(OSError, match='bad message length'):
                b.recv_bytes(9)
            # the stream is out of sync now: a duplex end stops reading
            assert not b.readable and b.writable and not b.closed
        r, w = Pipe(False)
        with r, w:
            w.send_bytes(b'z' * 10)
            with pytest.raises(OSError, match='bad message length'):
                r.recv_bytes(5)
            assert r.closed  # a read-only end is closed

    def test_recv_bytes_into(self):
        a, b = Pipe()
        with a, b:
            a.send_bytes(b'abcdef')
            buf = bytearray(10)
            assert b.recv_bytes_into(buf) == 6
            assert buf == b'abcdef\x00\x00\x00\x00'
            a.send_bytes(b'XY')
            assert b.recv_bytes_into(buf, 8) == 2
            assert buf == b'abcdef\x00\x00XY'
            # into a buffer of wider items: the offset is in bytes
            arr = array.array('i', [0, 0, 0, 0])
            a.send_bytes(array.array('i', [7, 8]))
            assert b.recv_bytes_into(arr, arr.itemsize) == 2 * arr.itemsize
            assert arr.tolist() == [0, 7, 8, 0]
            with pytest.raises(ValueError, match='negative offset'):
                b.recv_bytes_into(buf, -1)
            with pytest.raises(ValueError, match='offset too large'):
                b.recv_bytes_into(buf, 11)

    def test_recv_bytes_into_too_short(self):
        a, b = Pipe()
        with a, b:
            a.send_bytes(b'0123456789')
            buf = bytearray(4)
            with pytest.raises(BufferTooShort) as info:
                b.recv_bytes_into(buf)
            # the whole message is carried by the exception
            assert info.value.args[0] == b'0123456789'
            assert buf == bytearray(4)
            assert issubclass(BufferTooShort, mpgo.ProcessError)
            assert mpgo.BufferTooShort is BufferTooShort
            a.send_bytes(b'abc')
            with pytest.raises(BufferTooShort):
                b.recv_bytes_into(bytearray(5), 3)
            a.send('next')
            assert b.recv() == 'next'  # the stream stays in sync

    def test_poll(self):
        a, b = Pipe()
        with a, b:
            assert b.poll() is False
            assert b.poll(0.01) is False
            a.send(1)
            assert b.poll() is True
            assert b.poll(None) is True
            assert b.poll(GUARD) is True
            b.recv()
            assert b.poll(0) is False

    def test_poll_wakes_when_a_thread_sends(self):
        a, b = Pipe()
        with a, b:
            t = threading.Timer(0.05, a.send, ('late',))
            t.start()
            assert b.poll(GUARD)
            assert b.recv() == 'late'
            t.join()

    @pytest.mark.parametrize('duplex', [True, False])
    def test_eof_after_peer_close(self, duplex):
        r, w = Pipe(duplex)
        w.send('last')
        w.close()
        with r:
            assert r.recv() == 'last'
            assert r.poll()  # EOF is readable
            with pytest.raises(EOFError):
                r.recv()
            with pytest.raises(EOFError):
                r.recv_bytes()

    def test_send_to_closed_peer(self):
        a, b = Pipe()
        b.close()
        with a:
            with pytest.raises(OSError) as info:
                a.send_bytes(b'x' * 100)
            assert info.value.errno in (errno.EPIPE, errno.ECONNRESET)

    def test_close(self):
        a, b = Pipe()
        fd = a.fileno()
        assert not a.closed
        a.close()
        assert a.closed
        a.close()  # idempotent
        with pytest.raises(OSError, match='handle is closed'):
            a.fileno()
        for call in (lambda: a.send(1), lambda: a.recv(), a.poll,
                     a.recv_bytes, lambda: a.send_bytes(b'')):
            with pytest.raises(OSError, match='handle is closed'):
                call()
        with pytest.raises(OSError):
            os.fstat(fd)
        with b:
            pass
        assert b.closed

    def test_context_manager_returns_itself(self):
        a, b = Pipe()
        with a as x, b:
            assert x is a
        assert a.closed and b.closed

    def test_constructor_checks(self):
        with pytest.raises(ValueError, match='invalid handle'):
            connection.Connection(-1)
        r, w = os.pipe()
        try:
            with pytest.raises(ValueError, match='at least one'):
                connection.Connection(r, readable=False, writable=False)
        finally:
            os.close(r)
            os.close(w)

    def test_large_message(self):
        # Bigger than the socket buffer and than the 16 KiB concatenation
        # threshold: the reader must run concurrently.
        a, b = Pipe()
        with a, b:
            data = os.urandom(3 * 1024 * 1024 + 7)
            t = threading.Thread(target=a.send_bytes, args=(data,))
            t.start()
            got = b.recv_bytes()
            t.join()
            assert got == data

    def test_socket_wire_format_is_cpythons(self):
        # Connections over sockets (Listener/Client) keep CPython's framing:
        # a 4-byte big-endian length, then the payload.
        import socket
        s1, s2 = socket.socketpair()
        a, b = connection.Connection(s1.detach()), connection.Connection(s2.detach())
        with a, b:
            a.send_bytes(b'hello')
            assert os.read(b.fileno(), 100) == b'\x00\x00\x00\x05hello'
            os.write(a.fileno(), b'\x00\x00\x00\x03abc')
            assert b.recv_bytes() == b'abc'

    def test_pipe_from_the_package(self):
        a, b = mpgo.Pipe()
        with a, b:
            assert isinstance(a, connection.Connection)
            a.send('pkg')
            assert b.recv() == 'pkg'

#
# wait()
#


class TestWait:
    def test_timeout_and_readiness(self):
        a, b = Pipe()
        c, d = Pipe()
        with a, b, c, d:
            assert wait([b, d], 0) == []
            assert wait([b, d], 0.01) == []
            a.send(1)
            assert wait([b, d], GUARD) == [b]
            assert wait([b, d]) == [b]
            c.send(2)
            assert sorted(wait([b, d], GUARD), key=id) == sorted([b, d],
                                                                 key=id)

    def test_negative_timeout_returns_empty(self):
        a, b = Pipe()
        with a, b:
            assert wait([b], -1) == []

    def test_sockets_fds_and_filenos(self):
        s1, s2 = socket.socketpair()
        r, w = os.pipe()

        class HasFileno:
            def __init__(self, fd):
                self.fd = fd

            def fileno(self):
                return self.fd
        hr, hw = os.pipe()
        h = HasFileno(hr)
        try:
            assert wait([s1, r, h], 0) == []
            s2.send(b'x')
            assert wait([s1, r, h], GUARD) == [s1]
            os.write(w, b'y')
            os.write(hw, b'z')
            ready = wait([s1, r, h], GUARD)
            assert s1 in ready and r in ready and h in ready
            assert len(ready) == 3
        finally:
            s1.close()
            s2.close()
            for fd in (r, w, hr, hw):
                os.close(fd)

    def test_process_sentinels_with_connections(self):
        a, b = Pipe()
        p = mpgo.Process(target=_conn_helpers.wait_for_go, args=(b,))
        p.start()
        b.close()
        try:
            assert isinstance(p.sentinel, int)
            assert wait([p.sentinel, a], 0) == []
            a.send('go')  # the child exits
            assert wait([p.sentinel], GUARD) == [p.sentinel]
            # a is readable too now: the child closed its end (EOF)
            ready = wait([p.sentinel, a], GUARD)
            assert p.sentinel in ready
        finally:
            _join(p)
            a.close()
        assert p.exitcode == 0

    def test_one_of_many_children(self):
        pipes = [Pipe() for _ in range(3)]
        procs = [mpgo.Process(target=_conn_helpers.wait_for_go, args=(b,))
                 for a, b in pipes]
        for p in procs:
            p.start()
        for a, b in pipes:
            b.close()
        try:
            sentinels = [p.sentinel for p in procs]
            assert wait(sentinels, 0) == []
            pipes[1][0].send('go')
            assert wait(sentinels, GUARD) == [procs[1].sentinel]
            procs[1].join(GUARD)
            for i, (a, b) in enumerate(pipes):
                if i != 1:
                    a.send('go')
            remaining = set(sentinels)
            while remaining:
                ready = wait(list(remaining), GUARD)
                assert ready
                remaining -= set(ready)
        finally:
            for p in procs:
                _join(p)
            for a, b in pipes:
                a.close()

#
# Listener and Client
#


class TestListenerClient:
    @pytest.mark.parametrize('family', ['AF_UNIX', 'AF_INET'])
    def test_roundtrip_with_authkey(self, family):
        with Listener(family=family, authkey=b'secret') as listener:
            if family == 'AF_INET':
                assert isinstance(listener.address, tuple)
            else:
                assert isinstance(listener.address, str)
            t, result = _serve_in_thread(
                listener, lambda c: c.send(('echo', c.recv())))
            with Client(listener.address, authkey=b'secret') as c:
                c.send([1, 2, 3])
                assert c.recv() == ('echo', [1, 2, 3])
            t.join(GUARD)
            assert 'error' not in result
            assert listener.last_accepted is not None

    def test_no_authkey(self):
        with Listener() as listener:
            t, result = _serve_in_thread(listener, lambda c: c.recv_bytes())
            with Client(listener.address) as c:
                c.send_bytes(b'plain')
            t.join(GUARD)
            assert result == {'value': b'plain'}

    def test_wrong_authkey_fails_on_both_sides(self):
        with Listener(authkey=b'right') as listener:
            t, result = _serve_in_thread(listener, lambda c: None)
            with pytest.raises(AuthenticationError,
                               match='digest sent was rejected'):
                Client(listener.address, authkey=b'wrong')
            t.join(GUARD)
            assert isinstance(result['error'], AuthenticationError)
            assert 'digest received was wrong' in str(result['error'])
        assert mpgo.AuthenticationError is AuthenticationError

    def test_authkey_must_be_bytes(self):
        with pytest.raises(TypeError):
            Listener(authkey='text')
        with Listener() as listener:
            with pytest.raises(TypeError):
                Client(listener.address, authkey='text')
            # the (unauthenticated) connection was made; accept and drop it
            listener.accept().close()
        a, b = Pipe()
        with a, b:
            with pytest.raises(ValueError):
                connection.deliver_challenge(a, 'text')
            with pytest.raises(ValueError):
                connection.answer_challenge(a, 'text')

    def test_challenge_functions_over_a_pipe(self):
        a, b = Pipe()
        with a, b:
            t = threading.Thread(target=connection.deliver_challenge,
                                 args=(a, b'key'))
            t.start()
            connection.answer_challenge(b, b'key')
            t.join(GUARD)

    def test_unix_listener_unlinks_its_socket(self):
        listener = Listener(family='AF_UNIX')
        path = listener.address
        assert os.path.exists(path)
        listener.close()
        assert not os.path.exists(path)
        listener.close()  # idempotent
        with pytest.raises(OSError, match='listener is closed'):
            listener.accept()

    def test_explicit_address(self, tmp_path):
        path = str(tmp_path / 'sock')
        with Listener(path, authkey=b'k') as listener:
            assert listener.address == path
            t, result = _serve_in_thread(listener, lambda c: c.recv())
            with Client(path, authkey=b'k') as c:
                c.send('by path')
            t.join(GUARD)
            assert result == {'value': 'by path'}

    def test_address_type(self):
        assert connection.address_type(('localhost', 0)) == 'AF_INET'
        assert connection.address_type('/tmp/x') == 'AF_UNIX'
        assert connection.address_type('\x00abstract') == 'AF_UNIX'
        with pytest.raises(TypeError):  # as CPython: via util
            connection.address_type(42)
        with pytest.raises(ValueError):
            Listener(family='AF_PIPE')
        with pytest.raises(ValueError):
            connection.arbitrary_address('AF_PIPE')

    def test_xml_listener_and_client(self):
        with connection.XmlListener(authkey=b'x') as listener:
            def serve():
                c = listener.accept()  # a ConnectionWrapper
                try:
                    c.send({'got': c.recv()})
                finally:
                    c.close()
            t = threading.Thread(target=serve)
            t.start()
            c = connection.XmlClient(listener.address, authkey=b'x')
            try:
                c.send([1, 'two'])
                assert c.recv() == {'got': [1, 'two']}
            finally:
                c.close()
            t.join(GUARD)

    def test_client_in_a_child_process(self):
        reply_r, reply_w = Pipe(False)
        with Listener(authkey=b'child key') as listener:
            p = mpgo.Process(target=_conn_helpers.client_with_authkey,
                             args=(listener.address, b'child key', reply_w))
            p.start()
            reply_w.close()
            with listener.accept() as c:
                who, pid = c.recv()
                assert (who, pid) == ('client', p.pid)
                c.send('welcome')
            assert _recv(reply_r) == 'welcome'
            _join(p)
        reply_r.close()
        assert p.exitcode == 0

    def test_wrong_authkey_from_a_child_process(self):
        reply_r, reply_w = Pipe(False)
        with Listener(authkey=b'right') as listener:
            p = mpgo.Process(target=_conn_helpers.client_expect_auth_error,
                             args=(listener.address, b'wrong', reply_w))
            p.start()
            reply_w.close()
            with pytest.raises(AuthenticationError):
                listener.accept()
            assert _recv(reply_r) == 'AuthenticationError'
            _join(p)
        reply_r.close()

#
# Pickling Connections
#


class TestPickling:
    @pytest.mark.parametrize('duplex', [True, False])
    def test_pickle_in_one_process_dups_the_fd(self, duplex):
        r, w = Pipe(duplex)
        data = reduction.ForkingPickler.dumps(w)
        w.close()  # the pickle stays valid: the sender kept a dup
        w2 = pickle.loads(data)
        with r, w2:
            assert w2.writable and w2.readable == duplex
            w2.send('through the copy')
            assert r.recv() == 'through the copy'

    def test_pass_duplex_connection_to_child(self):
        parent, child = Pipe()
        p = mpgo.Process(target=_conn_helpers.echo, args=(child,))
        p.start()
        child.close()
        with parent:
            for obj in ['a', 1, {'x': [1, 2]}, b'\x00' * 100000]:
                parent.send(obj)
                assert _recv(parent) == obj
            parent.send(None)
            assert _recv(parent) == ('done', p.pid)
            with pytest.raises(EOFError):
                _recv(parent)
            _join(p)
        assert p.exitcode == 0

    def test_pass_simplex_ends_to_children(self):
        r, w = Pipe(False)
        res_r, res_w = Pipe(False)
        writer = mpgo.Process(target=_conn_helpers.send_then_close,
                              args=(w, 'from writer'))
        reader = mpgo.Process(target=_conn_helpers.read_all,
                              args=(r, res_w))
        reader.start()
        writer.start()
        # Only the children may hold the ends now, or the reader never
        # sees EOF.
        r.close()
        w.close()
        res_w.close()
        with res_r:
            assert _recv(res_r) == ['from writer']
        _join(writer)
        _join(reader)
        assert writer.exitcode == reader.exitcode == 0

    def test_pass_connection_to_running_child(self):
        control, child_control = Pipe()
        p = mpgo.Process(target=_conn_helpers.relay_received_connection,
                         args=(child_control,))
        p.start()
        child_control.close()
        mine, theirs = Pipe()
        with control, mine:
            control.send(theirs)  # not during start-up: resource_sharer
            theirs.close()
            assert _recv(mine) == ('hello from child', p.pid)
            mine.send('answer')
            assert _recv(control) == 'answer'
            _join(p)
        assert p.exitcode == 0

    def test_pass_accepted_socket_connection_to_child(self):
        with Listener() as listener:
            client = Client(listener.address)
            accepted = listener.accept()
        p = mpgo.Process(target=_conn_helpers.echo, args=(accepted,))
        p.start()
        accepted.close()
        with client:
            client.send('over a listener socket')
            assert _recv(client) == 'over a listener socket'
            client.send(None)
            assert _recv(client) == ('done', p.pid)
        _join(p)
        assert p.exitcode == 0
