"""Child targets for test_lock_matrix.py (importable under spawn)."""


def hold(lock, ready, done):
    """Acquire lock, say so, and release it once done is set (or die
    holding it when killed)."""
    lock.acquire()
    ready.set()
    done.wait()
    lock.release()
