"""The exceptions of the cluster context.

A lost worker is mpgo.pool.WorkerLostError, as in a local pool.
"""

__all__ = ['LocalObjectError', 'SchedulerLostError']


class LocalObjectError(TypeError):
    """An object that lives on this machine only (an mpgo Queue, Lock,
    Value or Pipe made by a local context, a threading lock, a file or a
    socket) was given to a cluster task. Raised when the task is submitted,
    before anything runs."""


class SchedulerLostError(ConnectionError):
    """The connection to the Dask scheduler was lost: every waiting call
    raises it, and so does every later call."""
