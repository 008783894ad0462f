"""Tests of mpgo.dummy (the thread-based API) and of the import hygiene of
the modules ported alongside it."""
import subprocess
import sys
import threading

from mpgo import dummy
from mpgo.dummy import connection as dconn


def test_process_is_a_thread():
    out = []
    p = dummy.Process(target=out.append, args=('ran',))
    assert isinstance(p, threading.Thread)
    assert p.exitcode is None
    p.start()
    p.join()
    assert out == ['ran']
    assert p.exitcode == 0
    assert p not in dummy.active_children()
    assert dummy.current_process() is threading.current_thread()


def test_active_children():
    go = threading.Event()
    p = dummy.Process(target=go.wait)
    p.start()
    try:
        assert p in dummy.active_children()
    finally:
        go.set()
        p.join()
    assert p not in dummy.active_children()


def test_start_from_other_thread_is_refused():
    p = dummy.Process(target=lambda: None)
    errors = []

    def start():
        try:
            p.start()
        except RuntimeError as e:
            errors.append(e)
    t = threading.Thread(target=start)
    t.start()
    t.join()
    assert len(errors) == 1


def test_pipe_and_listener():
    a, b = dummy.Pipe()
    a.send([1])
    assert b.poll() and b.recv() == [1]
    assert not b.poll(0.01)
    b.send_bytes(b'x')
    assert a.recv_bytes() == b'x'
    with dconn.Listener() as listener:
        c = dconn.Client(listener.address)
        s = listener.accept()
        with c, s:
            c.send('hi')
            assert s.recv() == 'hi'
            s.send('back')
            assert c.recv() == 'back'
    assert dconn.families == [None]


def test_manager_namespace_value_array():
    m = dummy.Manager()
    assert m is dummy
    ns = m.Namespace(a=1, _hidden=2)
    assert repr(ns) == 'Namespace(a=1)'
    v = m.Value('i', 3)
    v.value += 1
    assert v.value == 4 and repr(v) == "<Value('i', 4)>"
    assert list(m.Array('i', [1, 2])) == [1, 2]
    assert m.list is list and m.dict is dict
    q = m.JoinableQueue()
    q.put(1)
    assert q.get() == 1
    m.shutdown()
    assert dummy.Lock is threading.Lock
    assert dummy.Barrier is threading.Barrier


def test_pool_is_a_thread_pool():
    from mpgo.pool import ThreadPool
    with dummy.Pool(2) as pool:
        assert isinstance(pool, ThreadPool)
        idents = pool.map(lambda _: threading.get_ident(), range(4))
        assert pool.map(abs, [-1, -2]) == [1, 2]
    assert set(idents) - {threading.get_ident()} == set(idents)
    pool.join()


def test_imports_stay_independent():
    # dummy imports no pool (Pool() imports it on first call), and none of
    # the modules ported here imports the stdlib multiprocessing package:
    # mpgo must be able to stand in for it under that very name.
    code = '''if True:
        import sys
        import mpgo.dummy, mpgo.dummy.connection, mpgo.connection
        import mpgo.managers, mpgo.shared_memory, mpgo.resource_sharer
        assert 'mpgo.pool' not in sys.modules, 'pool imported'
        bad = [m for m in sys.modules if m == 'multiprocessing' or
               m.startswith('multiprocessing.') or
               m == 'concurrent.futures.process']
        assert not bad, bad
    '''
    subprocess.run([sys.executable, '-c', code], check=True)
