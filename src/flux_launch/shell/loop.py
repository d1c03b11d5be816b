"""The shell's event loop: the broker handle's reactor (``client/reactor.py``),
through the few calls the shell and its plugins use (``watch_fd``, ``unwatch_fd``,
``timer``, ``then``, ``serve``, ``run_once``).

One step (``run_once``) is one step of the reactor: wait for a ready descriptor,
a response or a request from the broker, or a timer; then make every call that
became due (RPC continuations, the shell's service, descriptors, timers). The
shell runs steps while a completion reference is held, so that what one step
made due is all called before the shell moves on. A callback's exception leaves
the step; so does ``ConnectionError`` when the broker goes away (``on_lost``).
"""

from flux_launch.client.handle import FD_READ, FD_WRITE, MSGTYPE_REQUEST, REACTOR_ONCE

READ = FD_READ
WRITE = FD_WRITE


def _fd_ready(_h, _w, fd, revents, callback):
    callback(fd, revents)


class _Timer:
    """A one-shot timer; ``stop()`` drops it, even when it is due in the step being
    dispatched (the reactor would still make a due one-shot timer's call)."""

    __slots__ = ("watcher", "callback")

    def stop(self):
        self.callback = None
        self.watcher.stop()


def _timer_expired(_h, _w, _revents, timer):
    callback = timer.callback
    if callback is not None:
        timer.callback = None
        callback()


def _request(_h, _w, msg, callback):
    callback(msg)


def _response(fut, then, error):
    try:
        payload = fut.get()  # there: it does not block
    except OSError as exc:
        error(exc)
        return
    then(payload)


def _nothing(*_args):
    pass


class Loop:
    """The event loop of one shell, on the reactor of its broker ``handle``;
    ``on_lost()`` is called when the broker connection closes (in ``run_once``)."""

    def __init__(self, handle, on_lost):
        self.handle = handle
        self._on_lost = on_lost
        self._fds = {}  # fd -> its started watcher

    def watch_fd(self, fd, events, callback):
        """Call ``callback(fd, revents)`` while ``fd`` is ready for ``events``
        (``READ``, ``WRITE``); level-triggered. Replaces an earlier watch of ``fd``."""
        old = self._fds.get(fd)
        if old is not None:
            old.stop()
        self._fds[fd] = self.handle.fd_watcher_create(fd, _fd_ready, events, callback).start()

    def unwatch_fd(self, fd):
        """Stop watching ``fd`` (nothing happens when it is not watched)."""
        w = self._fds.pop(fd, None)
        if w is not None:
            w.stop()

    def timer(self, after, callback):
        """Call ``callback()`` once, ``after`` seconds from now; returns the started
        timer (``stop()`` drops it)."""
        t = _Timer()
        t.callback = callback
        t.watcher = self.handle.timer_watcher_create(after, _timer_expired, 0.0, t).start()
        return t

    def then(self, fut, then, error):
        """Call ``then(payload)`` for each response of ``fut``, or ``error(exc)`` for
        an error response (its last)."""
        fut.then(_response, then, error)

    def serve(self, callback):
        """Give every request sent to this client's services to ``callback(msg)``."""
        self.handle.msg_watcher_create(_request, MSGTYPE_REQUEST, "*", callback).start()

    def run_once(self, timeout=None):
        """One step, waiting at most ``timeout`` seconds (None: until something is
        due); ``on_lost()`` when the broker connection closed."""
        h = self.handle
        bound = h.timer_watcher_create(timeout, _nothing).start() if timeout is not None else None
        try:
            h.reactor_run(REACTOR_ONCE)
        except ConnectionError:
            self._on_lost()
        finally:
            if bound is not None:
                bound.stop()
