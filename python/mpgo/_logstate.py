"""The parent's logging configuration, carried to its 'fork' children.

A child forked for real has the parent's loggers as they were at start():
the handlers basicConfig() or dictConfig() added, the levels, a
logging.disable(). A 'fork' child of mpgo is forked from the zygote, whose
`logging` knows none of it, and a target's logger travels by name only, so
its records would be dropped where a fork child prints them. snapshot()
describes the configuration in plain data; restore() rebuilds it in the
child before the Process object is unpickled.

Handlers are rebuilt, not pickled (they hold locks and open streams): a
StreamHandler on the parent's stdout or stderr writes to the child's; a
FileHandler reopens its file to append, as a fork child's writes would
land after the parent's. Other handlers (sockets, queues, rotation, a
handler class of the program's own) are left out: a fork child shares
their connections and files with the parent, which no rebuild gives.
"""
import sys

__all__ = ['restore', 'snapshot']

_STREAMS = ('stderr', 'stdout')


def snapshot():
    """Return the parent's logging configuration as plain data, or None
    when the program has not configured logging. Loggers left as logging
    makes them are not listed: the child's getLogger() makes them alike."""
    logging = sys.modules.get('logging')
    if logging is None:
        return None
    root = logging.root
    Logger = logging.Logger     # loggerDict holds PlaceHolders too
    changed = [(name, lg) for name, lg in list(root.manager.loggerDict.items())
               if isinstance(lg, Logger) and
               (lg.handlers or lg.level or lg.disabled or not lg.propagate)]
    if not (changed or root.handlers or root.manager.disable or
            root.level != logging.WARNING or root.disabled):
        return None
    handlers = {}   # id(handler) -> index in described
    described = []
    config = []
    for name, lg in [('', root)] + changed:
        kept = []
        for h in list(lg.handlers):
            if id(h) not in handlers:
                d = _describe(logging, h)
                if d is None:
                    continue
                handlers[id(h)] = len(described)
                described.append(d)
            kept.append(handlers[id(h)])
        config.append((name, lg.level, lg.propagate, lg.disabled, kept))
    return {'disable': root.manager.disable, 'handlers': described,
            'loggers': config}


def _describe(logging, h):
    t = type(h)
    if h.filters:
        return None     # rebuilt without them, it would let more through
    if t is logging.StreamHandler:
        stream = next((s for s in _STREAMS
                       if h.stream is getattr(sys, s, None) or
                       h.stream is getattr(sys, '__%s__' % s, None)), None)
        if stream is None:
            return None
        what = ('stream', stream)
    elif t is logging.FileHandler:
        what = ('file', h.baseFilename, h.encoding,
                getattr(h, 'errors', None), h.stream is None)
    elif t is logging.NullHandler:
        what = ('null',)
    else:
        return None
    f = h.formatter
    if f is None:
        fmt = None
    elif type(f) is logging.Formatter:
        style = next((k for k, v in logging._STYLES.items()
                      if type(f._style) is v[0]), '%')
        fmt = (f._fmt, f.datefmt, style)
    else:
        return None     # a formatter class of the program's own
    return what, h.level, fmt


def restore(state):
    """Rebuild in this process the configuration snapshot() described,
    in place of whatever logging has here."""
    import logging
    built = [_build(logging, d) for d in state['handlers']]
    manager = logging.root.manager
    for name, level, propagate, disabled, kept in state['loggers']:
        lg = logging.getLogger(name) if name else logging.root
        lg.handlers = [built[i] for i in kept if built[i] is not None]
        lg.setLevel(level)
        lg.propagate = propagate
        lg.disabled = disabled
    manager.disable = state['disable']
    manager._clear_cache()


def _build(logging, desc):
    what, level, fmt = desc
    try:
        if what[0] == 'stream':
            h = logging.StreamHandler(getattr(sys, what[1]))
        elif what[0] == 'file':
            # Not opened yet in the parent (delay=True): not here either.
            kwargs = {'encoding': what[2], 'delay': what[4]}
            if what[3] is not None:
                kwargs['errors'] = what[3]
            h = logging.FileHandler(what[1], 'a', **kwargs)
        else:
            h = logging.NullHandler()
    except OSError:
        return None
    h.setLevel(level)
    if fmt is not None:
        h.setFormatter(logging.Formatter(fmt[0], fmt[1], fmt[2]))
    return h
