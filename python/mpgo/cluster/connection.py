"""Pipe() of the cluster: connection ends on distributed Queues.

A pipe is one distributed Queue per direction (one for a simplex pipe). An
end receives from one and sends on the other; messages are [source,
sequence, bytes] items as a cluster Queue's (send() pickles, send_bytes()
sends the bytes as they are, and either kind is read by recv() or
recv_bytes(), as in CPython).

recv() raises EOFError once every copy of the other end is closed. The
copies of an end are counted in a Queue of tokens: one for the end made,
one more for each copy pickled (counted when pickled, so that the sender
closing its own copy right after start() does not end the pipe before the
task has unpickled its copy), one fewer for each copy closed; a task closes
the copies it unpickled when it ends, as a process closes its descriptors
when it exits. The last copy to close puts an end-of-file item, which every
receiver sees. A copy held by a task whose worker is lost is never closed
(its peer waits, as it would for a process that is stopped, not killed).

poll() takes the next message from the scheduler and keeps it for the next
recv(): two processes reading the same end do not see each other's polled
message. An end has no file descriptor (fileno() raises), so
connection.wait() does not take it.

Adapted from CPython's Lib/multiprocessing/connection.py (PSF License).
"""

from . import _dask, _output, _pickle, _session

__all__ = ['Pipe', 'Connection']

_EOF = -1


def Pipe(duplex=True):
    '''Two connection ends, on the cluster.'''
    session = _session.current()
    base = session.name('pipe')
    a = base + '-a'
    _dask.Queue(session, a).create(0)
    if duplex:
        b = base + '-b'
        _dask.Queue(session, b).create(0)
        return (Connection._new(session, a, b, base + '-1'),
                Connection._new(session, b, a, base + '-2'))
    return (Connection._new(session, a, None, base + '-r'),
            Connection._new(session, None, a, base + '-w'))


class Connection(object):
    '''One end of a cluster Pipe().'''

    _held = None

    @classmethod
    def _new(cls, session, inbox, outbox, copies):
        conn = cls.__new__(cls)
        conn._setup(session, inbox, outbox, copies)
        conn._copies.create(0)
        conn._copies.put(1)
        return conn

    def _setup(self, session, inbox, outbox, copies):
        self._inbox = inbox and _dask.Queue(session, inbox)
        self._outbox = outbox and _dask.Queue(session, outbox)
        self._copies = _dask.Queue(session, copies)
        self._closed = False
        self._eof = False

    def __reduce__(self):
        self._check_closed()
        self._copies.put(1)         # the copy being made
        return _rebuild, (self._inbox and self._inbox.name,
                          self._outbox and self._outbox.name,
                          self._copies.name)

    @property
    def closed(self):
        return self._closed

    @property
    def readable(self):
        return self._inbox is not None

    @property
    def writable(self):
        return self._outbox is not None

    def _check_closed(self):
        if self._closed:
            raise OSError("handle is closed")

    def _check_readable(self):
        if self._inbox is None:
            raise OSError("connection is write-only")

    def _check_writable(self):
        if self._outbox is None:
            raise OSError("connection is read-only")

    def fileno(self):
        raise OSError('a cluster connection has no file descriptor')

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            self._copies.get(_dask.NOWAIT)
        except _dask.Timeout:
            return
        if self._outbox is not None and self._copies.qsize() == 0:
            self._outbox.put(['', _EOF, b''])

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_tb):
        self.close()

    def _send(self, data):
        tag = _output.tag_for_send()
        self._outbox.put(['', 0, data] if tag is None
                         else [tag[0], tag[1], data])

    def send(self, obj):
        '''Send a (picklable) object.'''
        self._check_closed()
        self._check_writable()
        self._send(_pickle.dumps(obj))

    def send_bytes(self, buf, offset=0, size=None):
        '''Send the bytes data from a bytes-like object.'''
        self._check_closed()
        self._check_writable()
        m = memoryview(buf)
        if m.itemsize > 1:
            m = m.cast('B')
        n = m.nbytes
        if offset < 0:
            raise ValueError("offset is negative")
        if n < offset:
            raise ValueError("buffer length < offset")
        if size is None:
            size = n - offset
        elif size < 0:
            raise ValueError("size is negative")
        elif offset + size > n:
            raise ValueError("buffer length < offset + size")
        self._send(bytes(m[offset:offset + size]))

    def _take(self, timeout):
        '''The next message's bytes (Timeout if none came in time).'''
        if self._held is not None:
            data, self._held = self._held, None
            return data
        if self._eof:
            raise EOFError
        source, seq, data = self._inbox.get(timeout)
        if seq == _EOF:
            self._eof = True
            self._inbox.put(['', _EOF, b''])    # for the other readers
            raise EOFError
        if source:
            _output.received((source, seq))
        return data

    def recv(self):
        '''Receive a (picklable) object.'''
        self._check_closed()
        self._check_readable()
        return _pickle.loads(self._take(None))

    def recv_bytes(self, maxlength=None):
        '''Receive bytes data as a bytes object.'''
        self._check_closed()
        self._check_readable()
        if maxlength is not None and maxlength < 0:
            raise ValueError("negative maxlength")
        data = self._take(None)
        if maxlength is not None and len(data) > maxlength:
            self.close()
            raise OSError("bad message length")
        return data

    def recv_bytes_into(self, buf, offset=0):
        '''Receive bytes data into a writeable bytes-like object; return the
        number of bytes read.'''
        self._check_closed()
        self._check_readable()
        with memoryview(buf) as m:
            itemsize = m.itemsize
            bytesize = itemsize * len(m)
            if offset < 0:
                raise ValueError("negative offset")
            elif offset > bytesize:
                raise ValueError("offset too large")
            data = self._take(None)
            size = len(data)
            if bytesize - offset < size:
                from ..context import BufferTooShort
                raise BufferTooShort(data)
            m.cast('B')[offset:offset + size] = data
            return size // itemsize

    def poll(self, timeout=0.0):
        '''Whether there is any input available to be read.'''
        self._check_closed()
        self._check_readable()
        if self._held is not None or self._eof:
            return True
        try:
            self._held = self._take(_dask.timeout_of(
                timeout is None or timeout > 0, timeout))
        except _dask.Timeout:
            return False
        except EOFError:
            return True
        return True

    def __repr__(self):
        return '<cluster Connection %s>' % (
            (self._inbox or self._outbox).name)


def _rebuild(inbox, outbox, copies):
    session = _session.current()
    conn = Connection.__new__(Connection)
    conn._setup(session, inbox, outbox, copies)
    opened = getattr(session, 'opened', None)
    if opened is not None:
        opened.append(conn)
    return conn
