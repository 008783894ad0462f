"""What tasks print, on the driver's stdout and stderr.

On a worker, sys.stdout and sys.stderr are replaced (once) by streams that
hand a task thread's writes to its Sink and everything else to the worker's
own streams. A sink sends what it holds as one event on the run's topic
(Worker.log_event: no round trip), with its source's sequence number:

    {'s': source id, 'n': sequence number (1, 2, ...),
     'o': stdout text, 'e': stderr text,
     'd': {source: sequence} the output this one must follow}

It sends complete lines when it holds 8 KiB, every 0.1 s (a worker thread),
and before the task sends a message or a result; everything, partial lines
included, on flush() and when the task ends. A message and a result carry
their sender's (source, sequence) as a tag, and the receiver makes what it
prints next follow it: the driver waits (at most a few seconds) until the
tagged output is printed before it returns the message; a task passes the
tag on in its next event ('d'), which the driver holds back until what it
follows has been printed. So what a process printed before it sent
something is printed before what its receiver printed after receiving it.

On the driver, the Printer (subscribed to the topic; events arrive on the
Dask client's event loop) writes each event's text to sys.stdout and
sys.stderr as they are at that moment, without flushing them: they are
buffered as the driver's own output is.
"""

import sys
import threading
import time
import uuid

# Complete lines are sent once a sink holds this many characters.
_SINK_MAX = 8192
# How often the worker's flusher thread sends complete lines.
_FLUSH_EVERY = 0.1
# How long the driver waits for output a message or an event follows.
_FOLLOW_WAIT = 5.0

_tls = threading.local()


def new_source():
    return uuid.uuid4().hex[:12]


#
# Worker side
#


class _Stream(object):
    '''sys.stdout or sys.stderr of a worker.'''

    def __init__(self, original, fd):
        self._original = original
        self._fd = fd

    def write(self, text):
        sink = getattr(_tls, 'sink', None)
        if sink is None:
            return self._original.write(text)
        if not isinstance(text, str):
            raise TypeError('write() argument must be str, not %s'
                            % type(text).__name__)
        sink.write(self._fd, text)
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        sink = getattr(_tls, 'sink', None)
        if sink is None:
            return self._original.flush()
        sink.send(partial=True)

    def isatty(self):
        return False

    def __getattr__(self, name):
        return getattr(self._original, name)


_installed = False
_sinks = set()
_sinks_lock = threading.Lock()


def _install():
    global _installed
    with _sinks_lock:
        if _installed:
            return
        _installed = True
        sys.stdout = _Stream(sys.stdout, 1)
        sys.stderr = _Stream(sys.stderr, 2)
        threading.Thread(target=_flusher, name='mpgo-output',
                         daemon=True).start()


def _flusher():
    while True:
        time.sleep(_FLUSH_EVERY)
        with _sinks_lock:
            sinks = list(_sinks)
        for sink in sinks:
            try:
                sink.send(partial=False)
            except Exception:
                pass


class Sink(object):
    '''The output of one task, sent as events on topic.'''

    def __init__(self, worker, topic, source):
        _install()
        self._worker = worker
        self._topic = topic
        self.source = source
        self.seq = 0
        self._parts = []
        self._size = 0
        self._follows = {}
        self._lock = threading.Lock()
        with _sinks_lock:
            _sinks.add(self)

    def write(self, fd, text):
        with self._lock:
            self._parts.append((fd, text))
            self._size += len(text)
            full = self._size >= _SINK_MAX
        if full:
            self.send(partial=False)

    def follow(self, tag):
        '''What this task prints next follows the output tag names.'''
        if tag:
            source, seq = tag
            with self._lock:
                if self._follows.get(source, 0) < seq:
                    self._follows[source] = seq

    def send(self, partial):
        '''Send what is held (only up to the last newline unless partial);
        return this source's tag, (source, sequence).'''
        with self._lock:
            parts = self._parts
            if not parts or self._topic is None:
                return self.source, self.seq
            if partial:
                keep = []
            else:
                # Hold back everything after the last newline.
                for i in range(len(parts) - 1, -1, -1):
                    fd, text = parts[i]
                    cut = text.rfind('\n')
                    if cut >= 0:
                        break
                else:
                    return self.source, self.seq
                keep = [(fd, text[cut + 1:])] if cut + 1 < len(text) else []
                keep += parts[i + 1:]
                parts = parts[:i] + [(fd, text[:cut + 1])]
            out = ''.join(t for f, t in parts if f == 1)
            err = ''.join(t for f, t in parts if f == 2)
            self._parts = keep
            self._size = sum(len(t) for _, t in keep)
            self.seq += 1
            msg = {'s': self.source, 'n': self.seq, 'o': out, 'e': err}
            if self._follows:
                msg['d'] = self._follows
                self._follows = {}
            tag = self.source, self.seq
            # Under the lock: events of one source leave in order.
            self._worker.log_event(self._topic, msg)
        return tag

    def close(self):
        '''Send everything; return the final tag.'''
        with _sinks_lock:
            _sinks.discard(self)
        return self.send(partial=True)


def set_sink(sink):
    _tls.sink = sink


def sink():
    return getattr(_tls, 'sink', None)


def tag_for_send():
    '''The tag to put on a message this thread sends: a task's complete
    lines are sent first. None in the driver.'''
    s = getattr(_tls, 'sink', None)
    if s is None:
        return None
    return s.send(partial=False)


def received(tag):
    '''This thread received something tagged tag (see the module doc).'''
    if not tag:
        return
    s = getattr(_tls, 'sink', None)
    if s is not None:
        s.follow(tag)
        return
    from . import _session
    driver = _session.driver_if_any()
    if driver is not None:
        driver.printer.wait(tag)


#
# Driver side
#


class Printer(object):
    '''Writes the run's events to the driver's stdout and stderr.'''

    def __init__(self, session):
        self._session = session
        self._printed = {}          # source -> last sequence printed
        self._held = []             # (arrival, msg) waiting for 'd'
        self._cond = threading.Condition()
        self._closed = False
        session.client.subscribe_topic(session.topic, self._on_event)

    def _on_event(self, event):
        # On the client's event loop.
        msg = event[1]
        if not isinstance(msg, dict):
            return
        with self._cond:
            if self._closed:
                return
            if not self._ready(msg):
                self._held.append((time.monotonic(), msg))
                return
            self._print(msg)
            self._release_held(False)

    def _ready(self, msg):
        follows = msg.get('d')
        if not follows:
            return True
        return all(self._printed.get(s, 0) >= n for s, n in follows.items())

    def _release_held(self, force):
        # with self._cond held
        progress = True
        while self._held and progress:
            progress = False
            now = time.monotonic()
            for item in list(self._held):
                arrival, msg = item
                if force or self._ready(msg) or \
                        now - arrival > _FOLLOW_WAIT:
                    self._held.remove(item)
                    self._print(msg)
                    progress = True

    def _print(self, msg):
        # with self._cond held
        out, err = msg.get('o'), msg.get('e')
        try:
            if out:
                sys.stdout.write(out)
            if err:
                sys.stderr.write(err)
        except Exception:
            pass
        source, seq = msg.get('s'), msg.get('n', 0)
        if self._printed.get(source, 0) < seq:
            self._printed[source] = seq
        self._cond.notify_all()

    def wait(self, tag, timeout=_FOLLOW_WAIT):
        '''Wait until the output tag names has been printed (or timeout).'''
        source, seq = tag
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._printed.get(source, 0) < seq:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed or \
                        self._session.lost is not None:
                    return
                self._cond.wait(min(remaining, 0.1))

    def flush(self):
        '''Print what is held back.'''
        with self._cond:
            self._release_held(True)

    def close(self):
        with self._cond:
            self._release_held(True)
            self._closed = True
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
