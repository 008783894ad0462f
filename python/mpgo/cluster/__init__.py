"""mpgo on a Dask cluster: multiprocessing's API, with its objects on Dask.

    python -m mpgo --cluster tcp://scheduler:8786 script.py [args]
    MPGO_CLUSTER=tcp://scheduler:8786 python -m mpgo script.py [args]
    ctx = mpgo.get_context('cluster')          # in code (MPGO_CLUSTER)
    ctx = mpgo.cluster.get_context('local')    # in code, explicit address

The address is a Dask scheduler's (`tcp://host:port`), or `local`, which
starts a scheduler and workers on this machine for the run (_local).
The script runs here (the driver); each Process and each batch of Pool
tasks runs as a Dask task on a worker, and the shared objects live on the
scheduler, on distributed's own primitives:

    Process           a task (seceded from the worker's thread pool, so
                      every started process runs at once); pid is the
                      worker's, current_process() inside it is the Process
    Pool              tasks of chunks (map's chunks are CPython's); batches
                      of apply_async()/imap() tasks
    Queue, SimpleQueue, JoinableQueue, Pipe   distributed Queues
    Lock, RLock, Semaphore, BoundedSemaphore  distributed Queues of tokens
    Event             a distributed Event
    Condition, Barrier                        CPython's algorithms on those
    Value, Array      distributed Variables (+ a Lock, as CPython)
    Manager()         mpgo's SyncManager, listening where workers reach it

What the tasks print reaches the driver's stdout and stderr (in order with
what they send: a message or a result is delivered after the output its
sender wrote before sending it).

`distributed` is an optional dependency (`pip install mpgo[cluster]`);
nothing of it is imported until a cluster context is used. The modules
here import it at the top: they are only imported by the cluster context.
"""

from .errors import LocalObjectError, SchedulerLostError

__all__ = ['get_context', 'LocalObjectError', 'SchedulerLostError']


def get_context(address=None):
    '''Return the cluster context for address (a scheduler address or
    'local'; None: MPGO_CLUSTER, else 'local'). One per address.'''
    from .context import get_context
    return get_context(address)
