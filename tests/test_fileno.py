"""A Connection's fileno(): readable exactly while a message waits (or at
EOF), in every process sharing the end, so that select, poll and
selectors on it work as with the standard library's pipes; poll() and
wait() by several waiters at once."""

import os
import select
import selectors
import threading
import time

import pytest

import mpgo
from mpgo.connection import Pipe, wait

import _fileno_helpers as H

GUARD = 60


def readable(fd, timeout=0):
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(timeout * 1000))


@pytest.mark.parametrize('duplex', [True, False])
def test_message_sent_before_fileno_makes_it_readable(duplex):
    r, w = Pipe(duplex)
    w.send('first')
    fd = r.fileno()
    assert readable(fd)
    assert r.recv() == 'first'
    assert not readable(fd)
    r.close()
    w.close()


def test_readable_exactly_while_a_message_waits():
    r, w = Pipe(False)
    fd = r.fileno()
    assert not readable(fd)
    for i in range(3):
        w.send(i)
    for i in range(3):
        assert readable(fd)
        assert r.poll(0)
        assert r.recv() == i
    assert not readable(fd)
    assert not r.poll(0)
    w.send_bytes(b'raw')
    assert readable(fd)
    assert r.recv_bytes() == b'raw'
    assert not readable(fd)
    r.close()
    w.close()


def test_readable_at_eof():
    r, w = Pipe(False)
    fd = r.fileno()
    w.close()
    assert readable(fd, GUARD)
    with pytest.raises(EOFError):
        r.recv()
    r.close()


def test_selectors_on_a_queue_reader():
    q = mpgo.Queue()
    with selectors.DefaultSelector() as sel:
        sel.register(q._reader, selectors.EVENT_READ)
        assert sel.select(0) == []
        q.put('x')
        assert len(sel.select(GUARD)) == 1
        assert q.get() == 'x'
        assert sel.select(0) == []
    q.close()


def test_readable_when_a_child_sends():
    r, w = Pipe(False)
    fd = r.fileno()     # level mode from the start, child sends after
    p = mpgo.Process(target=w.send, args=('from child',))
    p.start()
    assert readable(fd, GUARD)
    assert r.recv() == 'from child'
    p.join(GUARD)
    assert not readable(fd)
    r.close()
    w.close()


def test_pebble_pattern_shared_read_end_many_readers():
    # pebble's ProcessPool: workers share one read end and wait with
    # select.poll on its fileno(), then take it under a lock after poll(0).
    r, w = Pipe(False)
    lock = mpgo.RLock()
    results = mpgo.Queue()
    n_readers, n = 3, 300
    w.send('early')     # before any reader asked for fileno()
    readers = [mpgo.Process(target=H.pebble_reader, args=(r, lock, results))
               for _ in range(n_readers)]
    for p in readers:
        p.start()
    for i in range(n):
        w.send(i)
        if i % 50 == 0:
            time.sleep(0.01)    # let readers go idle in poll() now and then
    for _ in readers:
        w.send(None)
    got = []
    for _ in readers:
        pid, items = results.get(timeout=GUARD)
        got += items
    for p in readers:
        p.join(GUARD)
        assert p.exitcode == 0
    assert sorted(got, key=str) == sorted(['early'] + list(range(n)), key=str)
    assert not readable(r.fileno())
    r.close()
    w.close()
    results.close()


def test_poll_by_several_threads_wakes_each():
    r, w = Pipe(False)
    woke = []

    def waiter():
        woke.append(r.poll(GUARD))

    threads = [threading.Thread(target=waiter) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)     # let them wait (a waiter that is late still sees it)
    w.send('x')
    for t in threads:
        t.join(GUARD)
    assert woke == [True, True, True]
    assert r.recv() == 'x'
    r.close()
    w.close()


def test_wait_by_several_threads_wakes_each():
    r, w = Pipe(False)
    woke = []

    def waiter():
        woke.append(wait([r], GUARD))

    threads = [threading.Thread(target=waiter) for _ in range(2)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    w.send('x')
    for t in threads:
        t.join(GUARD)
    assert woke == [[r], [r]]
    assert r.recv() == 'x'
    assert wait([r], 0) == []
    r.close()
    w.close()


def test_wait_and_select_on_the_same_end():
    # wait() on an end that is also selected on directly (level mode)
    r, w = Pipe(False)
    fd = r.fileno()
    w.send(1)
    assert wait([r], GUARD) == [r]
    assert readable(fd)
    assert r.recv() == 1
    assert wait([r], 0) == []
    assert not readable(fd)
    r.close()
    w.close()
