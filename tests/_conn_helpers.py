"""Child-process targets for test_connection.py.

They live in a module of their own, at top level, so that spawned children
can import them by name when they unpickle their Process object.
"""
import os


def echo(conn):
    """Send back every object received, until None; then report the pid."""
    while True:
        obj = conn.recv()
        if obj is None:
            break
        conn.send(obj)
    conn.send(('done', os.getpid()))
    conn.close()


def send_then_close(writer, payload):
    """Write payload on a write-only Connection and close it."""
    writer.send(payload)
    writer.close()


def read_all(reader, result):
    """Read objects from a read-only Connection until EOF; send them back
    as one list on result."""
    got = []
    while True:
        try:
            got.append(reader.recv())
        except EOFError:
            break
    result.send(got)
    result.close()


def relay_received_connection(control):
    """Receive a Connection over control (so unpickled after start-up),
    then write on it and report what the parent sent on it."""
    conn = control.recv()
    conn.send(('hello from child', os.getpid()))
    control.send(conn.recv())
    conn.close()
    control.close()


def wait_for_go(conn):
    """Block until told to exit (used to hold a sentinel unready)."""
    conn.recv()
    conn.close()


def client_with_authkey(address, authkey, reply):
    """Connect to a Listener from another process and talk to it."""
    from mpgo.connection import Client
    with Client(address, authkey=authkey) as c:
        c.send(('client', os.getpid()))
        reply.send(c.recv())
    reply.close()


def client_expect_auth_error(address, authkey, reply):
    """Connect with a (wrong) authkey; report the exception type name."""
    from mpgo.connection import Client
    try:
        Client(address, authkey=authkey)
    except Exception as e:
        reply.send(type(e).__name__)
    else:
        reply.send('no error')
    reply.close()
