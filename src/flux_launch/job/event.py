"""Job eventlogs: ``event_watch``, ``event_wait``, ``event_watch_async`` and their events.

Failures: an unknown job raises ``OSError(ENOENT, "ƒ...: no such job")``;
``event_wait`` raises ``JobException`` when the job gets a fatal exception before
the awaited event (unless ``raiseJobException=False``), and ``OSError(ENODATA)``
when the eventlog ends (the job became inactive) without it.
"""

import errno
from _collections import deque  # collections itself costs every command ~2 ms

from flux_launch.proto import fastjson

from flux_launch.client.handle import NORESPONSE, STREAMING
from flux_launch.core.jobid import JobID
from flux_launch.proto.eventlog import EventlogParser


class EventLogEvent(dict):
    """One eventlog entry: ``.name``, ``.timestamp``, ``.context`` (a dict)."""

    def __init__(self, entry):
        super().__init__(entry)
        self.name = entry["name"]
        self.timestamp = entry["timestamp"]
        self.context = entry.get("context") or {}

    @property
    def context_string(self):
        return " ".join(f"{k}={fastjson.dumps(v, separators=(',', ':'))}" for k, v in self.context.items())

    def __str__(self):
        text = f"{self.timestamp:.6f} {self.name}"
        return f"{text} {self.context_string}" if self.context else text


class JobException(Exception):
    """The job got a fatal exception."""

    def __init__(self, event):
        self.type = event.context.get("type")
        self.severity = event.context.get("severity")
        self.note = event.context.get("note", "")
        super().__init__(f"job exception: {self.type}: {self.note}".rstrip(": "))


class EventWatch:
    """An iterator over a job's eventlog entries, following new ones."""

    def __init__(self, flux_handle, jobid, eventlog="eventlog"):
        self.handle = flux_handle
        self.jobid = JobID(jobid)
        self.fut = flux_handle.rpc("job-info.eventlog-watch", {"id": int(self.jobid), "path": eventlog},
                                   flags=STREAMING)
        self._parser = EventlogParser()
        self._pending = []  # events parsed, not yet returned

    def __iter__(self):
        return self

    def __next__(self):
        while not self._pending:
            try:
                value = self.fut.get()["value"]
            except OSError as exc:
                if exc.errno == errno.ENODATA:
                    raise StopIteration from None
                raise
            self._pending.extend(EventLogEvent(ev) for ev in self._parser.feed(value))
        return self._pending.pop(0)

    def cancel(self):
        """Stop the watch (the broker ends the stream)."""
        self.handle.rpc("job-info.eventlog-watch-cancel", {"matchtag": self.fut.matchtag}, flags=NORESPONSE)


def event_watch(flux_handle, jobid, eventlog="eventlog"):
    """Yield ``EventLogEvent``s of a job's eventlog, ending when the job is done
    (after ``clean`` for the main eventlog)."""
    watch = EventWatch(flux_handle, jobid, eventlog)
    for event in watch:
        yield event
        if eventlog == "eventlog" and event.name == "clean":
            watch.cancel()
            return


def event_wait(flux_handle, jobid, name, eventlog="eventlog", raiseJobException=True):
    """Wait for event ``name`` in a job's eventlog and return it.

    Raises:
        JobException: a fatal exception came first (with ``raiseJobException``).
        OSError: no such job; or ENODATA if the job ended without the event.
    """
    watch = EventWatch(flux_handle, jobid, eventlog)
    for event in watch:
        if event.name == name:
            watch.cancel()
            return event
        if raiseJobException and event.name == "exception" and event.context.get("severity") == 0:
            watch.cancel()
            raise JobException(event)
        if eventlog == "eventlog" and event.name == "clean":
            watch.cancel()
            break
    raise OSError(errno.ENODATA, f"{JobID(jobid)}: the job ended without event {name}")


class JobEventWatchFuture:
    """The events of a job's eventlog as they come (``event_watch_async``).

    ``get_event()`` returns the next ``EventLogEvent`` (blocking until there is
    one), or ``None`` once the eventlog ended (the main one: after ``clean``);
    ``then(cb, *args)`` calls ``cb(future, *args)`` from ``Flux.reactor_run()``
    for each event and once more at the end, the callback taking it with
    ``get_event()``; ``cancel(stop=False)`` ends the watch early (with ``stop``,
    no more calls). Errors (no such job) are raised by ``get_event()``.
    """

    def __init__(self, flux_handle, jobid, eventlog="eventlog"):
        self.handle = flux_handle
        self.jobid = JobID(jobid)
        self.eventlog = eventlog
        self._fut = flux_handle.rpc("job-info.eventlog-watch", {"id": int(self.jobid), "path": eventlog},
                                    flags=STREAMING)
        self._parser = EventlogParser()
        self._pending = deque()
        self._error = None
        self._ended = False  # no more events: the stream ended, or clean came
        self._end_told = False  # the callback was called for the end
        self._cancelled = False
        self._then = None

    def get_flux(self):
        return self.handle

    def _take(self):
        """Read one response (blocking) into the pending events."""
        try:
            value = self._fut.get()["value"]
        except OSError as exc:
            self._ended = True
            if exc.errno != errno.ENODATA:
                self._error = exc
            return
        for entry in self._parser.feed(value):
            self._pending.append(EventLogEvent(entry))
            if self.eventlog == "eventlog" and entry["name"] == "clean":
                self._finish()

    def _finish(self):
        self._ended = True
        self.cancel()

    def is_ready(self):
        return bool(self._pending) or self._ended or self._fut.is_ready()

    def get_event(self, autoreset=True):
        """The next event, or ``None`` at the end of the eventlog (``autoreset=False``:
        leave it for the next call too).

        Raises:
            OSError: the watch failed (ENOENT: no such job or no such eventlog).
        """
        while not self._pending:
            if self._ended:
                if self._error is not None:
                    raise self._error
                return None
            self._take()
        return self._pending.popleft() if autoreset else self._pending[0]

    def get(self):
        return self.get_event()

    def reset(self):
        """Drop the event a ``get_event(autoreset=False)`` left."""
        if self._pending:
            self._pending.popleft()
        return self

    def then(self, callback, *args):
        self._then = (callback, args)
        if self._pending or self._ended:  # from the reactor all the same, never from here
            self.handle.timer_watcher_create(0.0, lambda *_: self._deliver()).start()
        if not self._fut.done:
            self._fut.then(self._on_response)
        return self

    def _on_response(self, _fut):
        while self._fut.is_ready() and not self._fut.done:
            self._take()
        self._deliver()

    def _deliver(self):
        calls = len(self._pending)
        if self._ended and not self._end_told:
            calls += 1
            self._end_told = True
        for _ in range(calls):
            if self._then is None:
                return
            callback, args = self._then
            callback(self, *args)

    def cancel(self, stop=False):
        """End the watch (the broker ends the stream); ``stop``: no more callback calls."""
        if stop:
            self._then = None
        if not self._cancelled and not self._fut.done:
            self._cancelled = True
            self.handle.rpc("job-info.eventlog-watch-cancel", {"matchtag": self._fut.matchtag}, flags=NORESPONSE)


def event_watch_async(flux_handle, jobid, eventlog="eventlog"):
    """Watch a job's eventlog without blocking: a ``JobEventWatchFuture``."""
    return JobEventWatchFuture(flux_handle, jobid, eventlog)
