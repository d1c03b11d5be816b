"""The handle's reactor: one ``poll`` loop over the broker socket, file
descriptors, timers and signals, calling back watchers and future continuations
(``Flux.reactor_run``; flux-core's reactor in spirit).

Users reach it through the handle (``Flux.fd_watcher_create``, ``timer_watcher_create``,
``msg_watcher_create``, ``signal_watcher_create``, ``Future.then``, ``reactor_run``,
``reactor_stop``); this module is imported on first use.

One step of the loop: poll (not blocking when work is already queued, else up to
the next timer's deadline), receive once from a readable broker socket (never
blocking: a partial message waits in the decoder for the next step), then call
back, in this order: future continuations (one call per response), message
watchers, file descriptor watchers, signal watchers, expired timers.
``reactor_stop()`` ends the run after the current callback; what was due and not
yet called stays queued for the next run. An exception raised by a callback
leaves ``reactor_run`` at once, with the rest likewise queued.

Stopping a watcher drops its calls that were due; a message claimed by a message
watcher that is stopped before its call goes back to the handle's queues.
"""

import os
import select
import time

# The C modules: signal.py adds enums (~1.5 ms); collections ~2 ms.
from _collections import deque

from flux_launch.client.handle import (FD_ERROR, FD_READ, FD_WRITE, MSGTYPE_EVENT,
                                       MSGTYPE_REQUEST, REACTOR_NOWAIT, REACTOR_ONCE)

_POLLIN = select.POLLIN
_POLLOUT = select.POLLOUT
_HUP_ERR = select.POLLHUP | select.POLLERR
_ERR_NVAL = select.POLLERR | select.POLLNVAL
_monotonic = time.monotonic


def _revents(ev):
    """The ``FD_*`` bits of poll's ``revents``: a hang-up or error reads as ready
    (the read or write then sees the end or the error), as libev reports it."""
    r = 0
    if ev & (_POLLIN | _HUP_ERR):
        r |= FD_READ
    if ev & (_POLLOUT | _HUP_ERR):
        r |= FD_WRITE
    if ev & _ERR_NVAL:
        r |= FD_ERROR
    return r


def _topic_matcher(glob):
    """A function ``topic -> bool`` for a topic glob (``*``, ``?``, ``[...]``);
    ``None`` for one that matches everything. fnmatch (and re) only for real globs."""
    if glob in (None, "", "*"):
        return None
    if not any(c in glob for c in "*?["):
        return glob.__eq__
    head = glob[:-1]
    if glob.endswith("*") and not any(c in head for c in "*?["):
        return lambda topic: topic.startswith(head)
    from fnmatch import fnmatchcase

    return lambda topic: fnmatchcase(topic, glob)


class Watcher:
    """What every watcher shares: ``start()`` (returns the watcher), ``stop()``,
    ``destroy()`` (stops it), ``active``, and use as a context manager (started on
    entry, stopped on exit). Starting a started watcher does nothing; stopping one
    drops its call that was due, if any (an expired one-shot timer's too). A started
    watcher keeps ``reactor_run()`` running, unless ``unref()`` was called."""

    def __init__(self, reactor, callback, args):
        self.reactor = reactor
        self.flux_handle = reactor.handle
        self.callback = callback
        self.args = args
        self.active = False
        self.referenced = True  # while active, it keeps reactor_run() running
        self._gen = 0  # changes at each start and stop: calls queued before are dropped

    def start(self):
        if not self.active:
            self.active = True
            self._gen += 1
            self.reactor.active += self.referenced
            self._started()
        return self

    def stop(self):
        self._gen += 1  # drops a call already due, even of a one-shot timer that expired (as libev)
        if self.active:
            self.active = False
            self.reactor.active -= self.referenced
            self._stopped()

    def unref(self):
        """Let ``reactor_run()`` return while this watcher is still active (a
        watchdog timer, a signal watcher for the run's duration); returns it."""
        if self.referenced:
            self.referenced = False
            self.reactor.active -= self.active
        return self

    def ref(self):
        """Undo ``unref()``; returns the watcher."""
        if not self.referenced:
            self.referenced = True
            self.reactor.active += self.active
        return self

    def destroy(self):
        self.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def _started(self):
        pass

    def _stopped(self):
        pass

    def _dropped(self, *args):
        """A call queued for this watcher before it was stopped or restarted."""


class FdWatcher(Watcher):
    """Calls ``callback(handle, watcher, fd, revents, args)`` while ``fd`` is ready
    for ``events`` (``FD_READ``, ``FD_WRITE``; ``FD_ERROR`` is always reported).
    Level-triggered: the callback is called again at the next step while the fd
    stays ready. A watcher of a closed fd sees ``FD_ERROR`` and should stop."""

    def __init__(self, reactor, fd, callback, events, args):
        super().__init__(reactor, callback, args)
        self.fd = fd
        self.fd_int = fd  # flux-core's name
        self.events = events

    def _started(self):
        self.reactor._fd_add(self)

    def _stopped(self):
        self.reactor._fd_remove(self)

    def _fire(self, fd, revents):
        self.callback(self.flux_handle, self, fd, revents, self.args)


class TimerWatcher(Watcher):
    """Calls ``callback(handle, watcher, revents, args)`` ``after`` seconds after
    ``start()``, then every ``repeat`` seconds when ``repeat`` > 0. A one-shot
    timer is stopped before its call (its callback may start it again)."""

    def __init__(self, reactor, after, callback, repeat, args):
        super().__init__(reactor, callback, args)
        self.after = float(after)
        self.repeat = float(repeat)
        self.deadline = None

    def _started(self):
        self.deadline = _monotonic() + self.after
        self.reactor._timers.append(self)

    def _stopped(self):
        self.reactor._timers.remove(self)

    def _fire(self):
        self.callback(self.flux_handle, self, 0, self.args)


class MsgWatcher(Watcher):
    """Calls ``callback(handle, watcher, msg, args)`` for each event or request
    (``type_mask``: ``MSGTYPE_EVENT``, ``MSGTYPE_REQUEST``, ``MSGTYPE_ANY``) whose
    topic matches ``topic_glob``; ``msg`` is the message dict (``topic``,
    ``payload``; answer a request with ``handle.respond(msg, ...)``). Events must
    be subscribed to (``event_subscribe``). The first started watcher that matches
    claims a message; messages no watcher claims stay for ``event_recv()`` and
    ``requests``. Responses go to their futures, never to a message watcher."""

    def __init__(self, reactor, callback, type_mask, topic_glob, args):
        super().__init__(reactor, callback, args)
        self.type_mask = type_mask
        self.topic_glob = topic_glob
        self._match = _topic_matcher(topic_glob)

    def matches(self, mtype, topic):
        return self.type_mask & mtype and (self._match is None or self._match(topic))

    def _started(self):
        self.reactor._msgw.append(self)

    def _stopped(self):
        self.reactor._msgw.remove(self)

    def _fire(self, msg):
        self.callback(self.flux_handle, self, msg, self.args)

    def _dropped(self, msg):
        h = self.flux_handle
        (h._events if msg.get("type") == "ev" else h.requests).append(msg)


class SignalWatcher(Watcher):
    """Calls ``callback(handle, watcher, signum, args)`` when signal ``signum``
    arrives. While one watches a signal, its handler is the reactor's (the
    previous one is restored when the last watcher of it stops); signals that
    arrive outside ``reactor_run()`` are delivered at its next step. Main thread
    only (``signal.set_wakeup_fd``)."""

    def __init__(self, reactor, signum, callback, args):
        super().__init__(reactor, callback, args)
        self.signum = signum

    def _started(self):
        self.reactor._signal_add(self)

    def _stopped(self):
        self.reactor._signal_remove(self)

    def _fire(self, signum):
        self.callback(self.flux_handle, self, signum, self.args)


def _ignore(_signum, _frame):
    """The Python-level handler of a watched signal: the wakeup fd does the work."""


class Reactor:
    """The loop state of one handle (``Flux._reactor_get()``)."""

    def __init__(self, handle):
        self.handle = handle
        self._poll = select.poll()
        self._hfd = handle.fileno()
        self._poll.register(self._hfd, _POLLIN)
        self._fds = {}  # fd -> its started FdWatchers
        self._timers = []
        self._msgw = []
        self._sigw = {}  # signum -> its started SignalWatchers
        self._sig_saved = {}  # signum -> the handler it had before
        self._sig_fds = None  # the wakeup pipe (read, write) while a signal is watched
        self._sig_prev_fd = -1
        self._calls = deque()  # (watcher, generation, args) due
        self._ready = handle._ready  # futures with responses due to their continuation
        self.active = 0  # started watchers
        self.thens = 0  # futures whose continuation waits for responses
        self._stop = False

    # -- running

    def run(self, flags=0):
        """See ``Flux.reactor_run``."""
        self._stop = False
        if flags & REACTOR_NOWAIT:
            self._step(0)
        elif flags & REACTOR_ONCE:
            if self._alive():
                self._step(None)
        else:
            while not self._stop and self._alive():
                self._step(None)
        return self.active + self.thens

    def stop(self):
        self._stop = True

    def _alive(self):
        return self.active or self.thens or self._calls or self._ready

    def timeout(self):
        """See ``Flux.reactor_timeout``."""
        if self._msgw:
            self._claim()
        if self._calls or self._ready:
            return 0.0
        if not self._timers:
            return None
        return max(0.0, min(w.deadline for w in self._timers) - _monotonic())

    def _step(self, timeout):
        """Poll once (``timeout`` seconds, ``None``: until the next timer or
        event) and make the calls that became due."""
        h = self.handle
        if h._closed:
            raise ConnectionError(f"the handle on {h.uri} is closed")
        if timeout is None:
            timeout = self.timeout()
        elif self._msgw:
            self._claim()
        calls = self._calls
        for fd, ev in self._poll.poll(None if timeout is None else timeout * 1000.0):
            if fd == self._hfd:
                h._recv_nowait()
            elif self._sig_fds is not None and fd == self._sig_fds[0]:
                self._read_signals()
            else:
                revents = _revents(ev)
                for w in self._fds.get(fd, ()):
                    r = revents & (w.events | FD_ERROR)
                    if r:
                        calls.append((w, w._gen, (fd, r)))
        if self._msgw:
            self._claim()
        if self._timers:
            now = _monotonic()
            for w in list(self._timers):
                if w.deadline <= now:
                    if w.repeat > 0:
                        w.deadline = max(w.deadline + w.repeat, now)
                    else:
                        w.stop()
                    calls.append((w, w._gen, ()))
        self._dispatch()

    def _dispatch(self):
        ready, calls = self._ready, self._calls
        while ready:
            if self._stop:
                return
            self._continue(ready.popleft())
        while calls:
            if self._stop:
                return
            w, gen, args = calls.popleft()
            if w._gen == gen:
                w._fire(*args)
            else:
                w._dropped(*args)

    # -- futures

    def then(self, fut, callback, args):
        """Give ``fut`` its continuation (``Future.then``)."""
        if fut._then is None:
            if fut._ended and not fut._queue:
                return  # every response was taken already: nothing to call it for
            self.thens += 1
        fut._then = (callback, args)
        if not fut._due and fut._queue:
            fut._due = len(fut._queue)
            self._ready.append(fut)

    def _continue(self, fut):
        """One call of ``fut``'s continuation, for one response received."""
        fut._due -= 1
        if fut._due:
            self._ready.append(fut)  # its next response after the other futures' ones
        then = fut._then
        try:
            if then is not None and fut._queue:
                then[0](fut, *then[1])
        finally:
            if fut._ended and not fut._due and fut._then is not None:
                fut._then = None
                self.thens -= 1

    # -- messages

    def _claim(self):
        """Move the events and requests a started message watcher matches to the calls."""
        h = self.handle
        for queue, mtype in ((h._events, MSGTYPE_EVENT), (h.requests, MSGTYPE_REQUEST)):
            if not queue:
                continue
            keep = []
            for msg in queue:
                topic = msg.get("topic", "")
                for w in self._msgw:
                    if w.matches(mtype, topic):
                        self._calls.append((w, w._gen, (msg,)))
                        break
                else:
                    keep.append(msg)
            if len(keep) != len(queue):
                queue.clear()
                queue.extend(keep)

    # -- file descriptors

    def _fd_add(self, w):
        self._fds.setdefault(w.fd, []).append(w)
        self._fd_update(w.fd)

    def _fd_remove(self, w):
        ws = self._fds[w.fd]
        ws.remove(w)
        if not ws:
            del self._fds[w.fd]
        self._fd_update(w.fd)

    def _fd_update(self, fd):
        ws = self._fds.get(fd)
        if not ws:
            try:
                self._poll.unregister(fd)
            except KeyError:
                pass
            return
        mask = 0
        for w in ws:
            if w.events & FD_READ:
                mask |= _POLLIN
            if w.events & FD_WRITE:
                mask |= _POLLOUT
        self._poll.register(fd, mask)

    # -- signals

    def _signal_add(self, w):
        import _signal

        if self._sig_fds is None:
            r, wr = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(wr, False)
            try:
                self._sig_prev_fd = _signal.set_wakeup_fd(wr, warn_on_full_buffer=False)
            except ValueError:
                os.close(r)
                os.close(wr)
                w.active = False
                self.active -= w.referenced
                raise
            self._sig_fds = (r, wr)
            self._poll.register(r, _POLLIN)
        ws = self._sigw.setdefault(w.signum, [])
        if not ws:
            self._sig_saved[w.signum] = _signal.signal(w.signum, _ignore)
        ws.append(w)

    def _signal_remove(self, w):
        import _signal

        ws = self._sigw[w.signum]
        ws.remove(w)
        if ws:
            return
        del self._sigw[w.signum]
        _signal.signal(w.signum, self._sig_saved.pop(w.signum))
        if not self._sigw:
            r, wr = self._sig_fds
            self._sig_fds = None
            _signal.set_wakeup_fd(self._sig_prev_fd)
            self._poll.unregister(r)
            os.close(r)
            os.close(wr)

    def _read_signals(self):
        try:
            data = os.read(self._sig_fds[0], 256)
        except BlockingIOError:
            return
        for signum in data:
            for w in self._sigw.get(signum, ()):
                self._calls.append((w, w._gen, (signum,)))
