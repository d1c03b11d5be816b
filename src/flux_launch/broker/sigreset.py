"""Signal dispositions a broker passes on to what it starts."""

import signal


def _ignore(signum, frame):
    pass


def ignored_signals_default_in_children():
    """Keep this process ignoring SIGINT and SIGQUIT when it inherited them ignored,
    but let the programs it starts get them at their default action.

    A shell ignores SIGINT and SIGQUIT in an asynchronous command (``flux start ... &``
    in a script), and an ignored signal stays ignored across ``exec``: the tasks,
    initial program and ``flux exec`` commands of such an instance could not be
    stopped by ``flux job kill -s QUIT|INT`` or Ctrl-C on ``flux run``. A caught
    signal is reset to its default by ``exec``, so each gets a handler that does
    nothing. SIGHUP (``nohup``) and the others are left as inherited: a user who
    asked for hangups to be ignored gets that for the whole instance (``flux
    shutdown`` then escalates, see ``broker/admin.py``). Returns the signals changed.
    """
    changed = []
    for sig in (signal.SIGINT, signal.SIGQUIT):
        if signal.getsignal(sig) == signal.SIG_IGN:
            signal.signal(sig, _ignore)
            changed.append(sig)
    return changed
