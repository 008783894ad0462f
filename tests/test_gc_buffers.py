"""The collector and the C types that hold a buffer of a memoryview: a
SemLock (or a Queue's doorbell words) found in a garbage cycle must not
let the collector clear the memoryview under it (it crashed the
interpreter: loky's executors are full of such cycles)."""

import gc
import subprocess
import sys
import textwrap


def test_cycle_through_a_semlock_and_its_memoryview():
    code = textwrap.dedent('''
        import gc
        from mpgo import heap
        from mpgo._engine import fast
        class Holder: pass
        gc.disable()
        for i in range(500):
            mv = heap.allocate(16, 16).memoryview()   # older than the lock
            lock = fast.SemLock(mv, fast.KIND_LOCK, 1, 1, True)
            q = fast.Queue(0)
            q.configure(None, None, None, set(), heap.allocate(16, 16).memoryview(),
                        0, 2, -1, None, "closed")
            h = Holder(); h.lock = lock; h.q = q; h.me = h
            del mv, lock, q, h
        gc.collect()
        print('collected')
    ''')
    res = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == 'collected\n'
    gc.collect()
