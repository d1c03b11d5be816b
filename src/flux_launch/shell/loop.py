"""The shell's event loop: file descriptors, timers and the broker connection,
behind the few calls the shell and its plugins use (``watch_fd``, ``unwatch_fd``,
``timer``, ``then``, ``run_once``), so that neither touches a selector or the
handle's internals.

One step (``run_once``): wait for a ready descriptor, up to the next timer's
deadline; call each ready descriptor's callback (the broker's reads what came and
calls back the RPCs it answers and the requests to the shell's service); then
call the timers that are due. A callback's exception leaves the step.
"""

import selectors
import time

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE
_monotonic = time.monotonic


class Timer:
    """A one-shot timer of the loop; ``cancel()`` before it fires drops it."""

    __slots__ = ("when", "callback", "_timers")

    def __init__(self, when, callback, timers):
        self.when = when
        self.callback = callback
        self._timers = timers

    def cancel(self):
        try:
            self._timers.remove(self)
        except ValueError:  # fired or cancelled already
            pass


class Loop:
    """The event loop of one shell."""

    def __init__(self):
        self._sel = selectors.DefaultSelector()
        self._timers = []
        self._then = {}  # future -> (then(payload), error(exc)), until its last response
        self.handle = None
        self._on_request = None
        self._on_lost = None

    def watch_fd(self, fd, events, callback):
        """Call ``callback(fd, events)`` while ``fd`` is ready for ``events``
        (``READ``, ``WRITE``); level-triggered."""
        self._sel.register(fd, events, callback)

    def unwatch_fd(self, fd):
        """Stop watching ``fd`` (nothing happens when it is not watched)."""
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    def timer(self, after, callback):
        """Call ``callback()`` once, ``after`` seconds from now; returns the ``Timer``."""
        t = Timer(_monotonic() + after, callback, self._timers)
        self._timers.append(t)
        return t

    def attach(self, handle, on_request, on_lost):
        """Read the broker connection ``handle``: requests to a service of the shell
        go to ``on_request(msg)``; ``on_lost()`` is called once if it closes."""
        self.handle = handle
        self._on_request = on_request
        self._on_lost = on_lost
        self._sel.register(handle.fileno(), READ, self._broker)

    def then(self, fut, then, error):
        """Call ``then(payload)`` for each response of ``fut`` (an RPC of the
        attached handle), or ``error(exc)`` for an error response (its last)."""
        self._then[fut] = (then, error)

    def run_once(self, timeout=None):
        """One step of the loop, waiting at most ``timeout`` seconds (None: until
        something is ready or a timer is due)."""
        timers = self._timers
        if timers:
            due = max(0.0, min(t.when for t in timers) - _monotonic())
            timeout = due if timeout is None else min(timeout, due)
        for key, events in self._sel.select(timeout):
            key.data(key.fd, events)
        if timers:
            now = _monotonic()
            for t in [t for t in timers if t.when <= now]:
                if t in timers:  # not cancelled by an earlier callback of this step
                    timers.remove(t)
                    t.callback()

    def _broker(self, fd, _events):
        try:
            self.handle._recv_one(None)
        except ConnectionError:
            self.unwatch_fd(fd)
            self._on_lost()
            return
        for fut, (then, error) in list(self._then.items()):
            while fut._queue:
                try:
                    payload = fut.get()
                except OSError as exc:
                    del self._then[fut]
                    error(exc)
                    break
                if fut.done:
                    del self._then[fut]
                then(payload)
        requests = self.handle.requests
        while requests:
            self._on_request(requests.popleft())
