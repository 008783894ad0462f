"""Manager() of the cluster: mpgo's SyncManager, where workers reach it.

The manager's server is a local process of the driver, as Manager() makes
it locally, but it listens on TCP, on the address this machine has on its
connection to the scheduler (127.0.0.1 for a cluster on loopback), so that
tasks on workers connect to it. Proxies given to tasks carry the manager's
authkey (they are pickled as for a child process, mpgo.cluster._pickle),
so a task's proxy authenticates as a child's does; nobody else can use the
server. The workers must be able to open a TCP connection to this machine.
"""

import socket

from .. import context as _context

__all__ = ['start_manager', 'reachable_host']


def reachable_host(session):
    '''This machine's address as the scheduler sees its connection.'''
    try:
        comm = session.client.scheduler_comm.comm
        address = comm.local_address
        host = address.split('://', 1)[-1].rsplit(':', 1)[0].strip('[]')
        if host:
            return host
    except Exception:
        pass
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return '127.0.0.1'


def start_manager(session):
    '''Start and return a SyncManager workers can reach.'''
    from ..managers import SyncManager
    local = _context._default_context.get_context()
    manager = SyncManager(address=(reachable_host(session), 0), ctx=local)
    manager.start()
    return manager
