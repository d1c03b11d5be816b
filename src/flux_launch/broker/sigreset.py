"""Signal dispositions a broker passes on to what it starts."""

import signal


def _ignore(signum, frame):
    pass


def ignored_signals_default_in_children():
    """Keep this process ignoring the signals it inherited as ignored, but let the
    programs it starts get them at their default action.

    A shell ignores SIGINT and SIGQUIT in a background job (``cmd &``), ``nohup``
    ignores SIGHUP, and an ignored signal stays ignored across ``exec``: tasks, the
    initial program and ``flux exec`` commands of a broker started that way could
    not be stopped by ``flux job kill -s QUIT`` or ``flux shutdown``'s SIGHUP. A
    caught signal is reset to its default by ``exec``, so each ignored one (SIGPIPE,
    which Python ignores itself and ``subprocess`` restores, aside) gets a handler
    that does nothing. Returns the signals changed.
    """
    changed = []
    for sig in signal.valid_signals():
        if sig in (signal.SIGPIPE, signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(sig) == signal.SIG_IGN:
                signal.signal(sig, _ignore)
                changed.append(sig)
        except (OSError, ValueError):  # a signal this platform will not let us handle
            continue
    return changed
