"""Job eventlogs: ``event_watch``, ``event_wait`` and their events.

Failures: an unknown job raises ``OSError(ENOENT, "ƒ...: no such job")``;
``event_wait`` raises ``JobException`` when the job gets a fatal exception before
the awaited event (unless ``raiseJobException=False``), and ``OSError(ENODATA)``
when the eventlog ends (the job became inactive) without it.
"""

import errno
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
