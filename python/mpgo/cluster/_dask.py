"""distributed's coordination primitives, by name, through one session.

Every cluster object (queues, locks, semaphores, values, events) is one or
more of these, addressed by name: distributed's Queue, Variable and Event
scheduler extensions, called through their RPC handlers (what
distributed.Queue, Variable and Event do) on Session.call, so that a wait
can be interrupted and a lost scheduler raises. A name is known to every
process of the run: an object pickles as its names.

A wait that times out raises Timeout. A zero timeout (block=False) is
NOWAIT: the scheduler's asyncio.wait_for with 0 would fail even when an
item is there on Python < 3.12 (and NOWAIT_TRIES covers a scheduler too
slow for NOWAIT itself).
"""

import asyncio

__all__ = ['Queue', 'Variable', 'Event', 'Timeout', 'NOWAIT']

NOWAIT = 0.001
# A loaded scheduler times a NOWAIT call out though it could have served it
# (its handler spends part of the timeout before it waits): such a call is
# tried again while the queue's size says it would succeed, at most this
# many times.
NOWAIT_TRIES = 50


class Timeout(Exception):
    pass


_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)


def timeout_of(block, timeout):
    '''The scheduler-side timeout of a call (None: wait for ever).'''
    if not block:
        return NOWAIT
    if timeout is None:
        return None
    return max(float(timeout), NOWAIT)


class Queue(object):
    '''A distributed Queue: items are msgpack values (mpgo puts lists of
    [source, sequence, pickle]).'''

    __slots__ = ('session', 'name')

    def __init__(self, session, name):
        self.session = session
        self.name = name

    def create(self, maxsize=0):
        self.session.call(self.session.scheduler.queue_create,
                          name=self.name, maxsize=maxsize)

    def put(self, item, timeout=None):
        try:
            self.session.call(self.session.scheduler.queue_put,
                              name=self.name, data=item, timeout=timeout)
        except _TIMEOUTS:
            raise Timeout from None

    def put_many(self, items):
        '''Put items at once (an unbounded queue, or room for all).'''
        session = self.session
        put = session.scheduler.queue_put

        async def put_all():
            await asyncio.gather(*[put(name=self.name, data=item)
                                   for item in items])
        session.call(put_all)

    def get(self, timeout=None):
        for _ in range(NOWAIT_TRIES):
            try:
                record = self.session.call(self.session.scheduler.queue_get,
                                           name=self.name, timeout=timeout)
                return record['value']
            except _TIMEOUTS:
                if timeout != NOWAIT or self.qsize() == 0:
                    break
        raise Timeout

    def qsize(self):
        return self.session.call(self.session.scheduler.queue_qsize,
                                 name=self.name)


class Variable(object):
    '''A distributed Variable holding a msgpack value.'''

    __slots__ = ('session', 'name')

    def __init__(self, session, name):
        self.session = session
        self.name = name

    def set(self, value):
        self.session.call(self.session.scheduler.variable_set,
                          name=self.name, data=value)

    def get(self, timeout=None):
        try:
            record = self.session.call(self.session.scheduler.variable_get,
                                       name=self.name, timeout=timeout)
        except _TIMEOUTS:
            raise Timeout from None
        return record['value']


class Event(object):
    '''A distributed Event.'''

    __slots__ = ('session', 'name')

    def __init__(self, session, name):
        self.session = session
        self.name = name

    def set(self):
        self.session.call(self.session.scheduler.event_set, name=self.name)

    def clear(self):
        self.session.call(self.session.scheduler.event_clear, name=self.name)

    def is_set(self):
        return self.session.call(self.session.scheduler.event_is_set,
                                 name=self.name)

    def wait(self, timeout=None):
        return self.session.call(self.session.scheduler.event_wait,
                                 name=self.name, timeout=timeout)
