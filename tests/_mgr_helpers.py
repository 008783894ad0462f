"""Child-process targets and registered types for test_managers.py.

Everything here is at module level so that spawned children (and the
manager's server process) can import it by name.
"""
import os
import queue

from mpgo.managers import BaseManager, BaseProxy


def append_to_list(shared_list, items):
    for item in items:
        shared_list.append(item)


def fill_dict(shared_dict, key, value):
    shared_dict[key] = value
    shared_dict['pid-%d' % os.getpid()] = os.getpid()


def set_namespace(ns, value):
    ns.x = value
    ns.y = ns.x * 2
    del ns.to_delete


def increment(value, lock, times):
    for _ in range(times):
        with lock:
            value.value += 1


def put_items(q, items):
    for item in items:
        q.put(item)


def join_queue_worker(q, out):
    while True:
        item = q.get()
        if item is None:
            q.task_done()
            break
        out.append(item * 10)
        q.task_done()


def set_event_after_wait(start, done):
    start.wait()
    done.set()


def barrier_party(barrier, out):
    out.append(barrier.wait())


def use_nested(outer):
    inner = outer[0]
    inner['child'] = os.getpid()
    outer.append('child-was-here')


#
# A custom type served by a manager
#


class Counter:
    def __init__(self, start=0):
        self._n = start

    def increment(self, by=1):
        self._n += by
        return self._n

    def get(self):
        return self._n

    def fail(self):
        raise KeyError('from the server')

    def _private(self):
        return 'hidden'

    def pid(self):
        return os.getpid()

    def clone(self):
        return Counter(self._n)


class CounterProxy(BaseProxy):
    _exposed_ = ('increment', 'get')

    def increment(self, by=1):
        return self._callmethod('increment', (by,))

    def get(self):
        return self._callmethod('get')


class MyManager(BaseManager):
    pass


MyManager.register('Counter', Counter)                 # AutoProxy
MyManager.register('TypedCounter', Counter, CounterProxy)
MyManager.register('ClonableCounter', Counter,
                   exposed=('get', 'clone', 'increment'),
                   method_to_typeid={'clone': 'ClonedCounter'})
# The typeid of objects returned by methods: no callable, so the server
# wraps the returned object itself.
MyManager.register('ClonedCounter', proxytype=CounterProxy,
                   create_method=False)


def increment_counter(counter, times):
    for _ in range(times):
        counter.increment()


#
# A manager served at a known address, reached from another process
#

_shared_queue = queue.Queue()


def get_shared_queue():
    return _shared_queue


class QueueManager(BaseManager):
    pass


QueueManager.register('get_queue', callable=get_shared_queue)


class QueueClientManager(BaseManager):
    pass


QueueClientManager.register('get_queue')


def connect_and_put(address, authkey, items):
    """Run in a separate process: connect to a running QueueManager and put
    items on its queue."""
    m = QueueClientManager(address=address, authkey=authkey)
    m.connect()
    q = m.get_queue()
    for item in items:
        q.put(item)


def serve_queue_manager(authkey, address_out):
    """Run in a separate process: serve a QueueManager with get_server()
    and serve_forever() until told to shut down."""
    m = QueueManager(address=('127.0.0.1', 0), authkey=authkey)
    server = m.get_server()
    address_out.send(server.address)
    address_out.close()
    server.serve_forever()


def init_marker(path):
    with open(path, 'w') as f:
        f.write(str(os.getpid()))


def shm_write(shm, data):
    shm.buf[:len(data)] = data
    shm.close()


def sl_update(sl):
    sl[0] = sl[0] + 1
    sl[1] = 'changed'
    sl.shm.close()


def square(x):
    return x * x
