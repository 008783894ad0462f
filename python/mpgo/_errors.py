"""The one table that turns engine errors into Python exceptions.

Every native error reaches Python as (code, errno, message), code one of
core/errs's (generated into _consts), errno set for ERR_OS. The C fast paths
call exception() with the triple the C ABI gives (mpgo_errmsg, mpgo_errno);
gopy raises RuntimeError("E<code>:<errno>: <message>"), which translate()
parses into the same triple. Nothing else maps engine errors.
"""
import errno as _errno
import os
import threading

__all__ = ['exception', 'translate']

from ._consts import (
    ERR_EMPTY as EMPTY, ERR_FULL as FULL, ERR_TIMEOUT as TIMEOUT, ERR_CLOSED as CLOSED,
    ERR_OS as OS, ERR_VALUE as VALUE, ERR_PROCESS as PROCESS, ERR_AUTH as AUTH,
    ERR_FORKED as FORKED, ERR_BROKEN as BROKEN, ERR_TOOSHORT as TOOSHORT,
    ERR_INTERNAL as INTERNAL, ERR_NOTOWNER as NOTOWNER, ERR_TOOMANY as TOOMANY,
    ERR_INTERRUPT as INTERRUPT, ERR_NOTSUPPORTED as NOTSUPPORTED)

# Compiled at the first error: re and queue are imported only then (every
# process that loads the engine imports this module).
_CODED = None


def _context_exc(name):
    from . import context
    return getattr(context, name)


def exception(code, message="", err=0):
    """Return the exception instance for an engine error code."""
    if code == EMPTY:
        import queue
        return queue.Empty()
    if code == FULL:
        import queue
        return queue.Full()
    if code == TIMEOUT:
        return TimeoutError(message)
    if code == CLOSED:
        return OSError(_errno.EBADF, message or "handle is closed")
    if code == OS:
        return OSError(err, os.strerror(err) if err else message)
    if code in (VALUE, TOOMANY):
        return ValueError(message)
    if code == PROCESS:
        return _context_exc("ProcessError")(message)
    if code == AUTH:
        return _context_exc("AuthenticationError")(message)
    if code == BROKEN:
        return threading.BrokenBarrierError(message)
    if code == TOOSHORT:
        return _context_exc("BufferTooShort")(message)
    if code == NOTOWNER:
        return AssertionError(message)
    if code == NOTSUPPORTED:
        return NotImplementedError(message)
    return RuntimeError(message)  # FORKED, INTERNAL and anything unknown


def translate(exc):
    """Map a RuntimeError raised by gopy to the right exception.

    Use as ``except RuntimeError as e: raise translate(e) from None``."""
    global _CODED
    if _CODED is None:
        import re
        _CODED = re.compile(r"^E(\d+):(-?\d+): ?(.*)$", re.S)
    m = _CODED.match(str(exc))
    if m is None:
        return exc
    return exception(int(m.group(1)), m.group(3), int(m.group(2)))
