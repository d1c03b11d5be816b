"""A job's standard output and error, flux-core's ``flux.job.output``.

``output_event_watch(h, jobid)`` yields the entries of the job's output eventlog
(RFC 24) as objects: ``OutputHeaderEvent``, ``OutputEvent`` (``stream``, ``rank``,
``data``, ``eof``), ``LogEvent`` (the shell's messages), ``RedirectEvent``, and a
``JobExceptionEvent`` for each exception the job gets while it runs.
``output_watch`` yields ``(stream, text)`` pairs, ``output_watch_lines``
``(stream, line)``; ``job_output`` waits for the job's end and returns a
``JobOutput(stdout, stderr, log)``. Each waits for the job to start (the output
eventlog exists from then) unless ``nowait``, and ends once the job finished and
its output eventlog is complete (the job is inactive). Their ``_async`` forms
(``output_event_watch_async``, ``output_watch_async``, ``output_watch_lines_async``)
are fulfilled from the reactor: ``then(cb)`` once per item and once at the end.

Failures: an unknown job raises ``OSError(ENOENT)``; a job that never started
(canceled while pending, an exception before it ran) raises ``OSError(EIO, "job
ID never started")``; ``job_output`` raises the ``JobException`` of a fatal
exception before the start instead.
"""

import base64
import errno
from typing import NamedTuple

from flux_launch.core.jobid import JobID
from flux_launch.job.event import EventLogEvent, JobException

# the shell's log levels (flux-core's shell.h), for log_stderr_level
LOG_QUIET = -1
LOG_FATAL = 0
LOG_ERROR = 3
LOG_WARN = 4
LOG_NOTICE = 5
LOG_DEBUG = 6
LOG_TRACE = 7


class Taskset:
    """A set of task ranks, or all of them ("all" or "*")."""

    def __init__(self, tasks):
        from flux_launch.core.idset import IDset

        self.all = False
        self.ids = None
        if isinstance(tasks, Taskset):
            self.all, self.ids = tasks.all, None if tasks.ids is None else tasks.ids.copy()
        elif tasks in ("all", "*"):
            self.all = True
        elif isinstance(tasks, IDset):
            self.ids = tasks.copy()
        else:
            self.ids = IDset(str(tasks))

    def intersect(self, tasks):
        other = tasks if isinstance(tasks, Taskset) else Taskset(tasks)
        if self.all:
            return Taskset(other)
        if other.all:
            return Taskset(self)
        return Taskset(self.ids & other.ids)

    def __bool__(self):
        return self.all or len(self.ids) > 0

    def __str__(self):
        return "all" if self.all else str(self.ids)


class OutputEvent(EventLogEvent):
    """A ``data`` entry: ``stream`` ("stdout", "stderr"), ``rank`` (a ``Taskset``),
    ``data`` (text, or None for an EOF entry alone), ``eof``."""

    def __init__(self, entry, labelio=False):
        super().__init__(entry)
        if self.name != "data":
            raise ValueError(f"event {self.name} is not a data event")
        ctx = self.context
        self.rank = Taskset(ctx["rank"])
        self.stream = ctx["stream"]
        self.eof = bool(ctx.get("eof", False))
        data = ctx.get("data")
        if data is not None:
            if ctx.get("encoding") == "base64":
                data = base64.b64decode(data).decode("utf-8", errors="surrogateescape")
            if "repeat" in ctx:
                data *= ctx["repeat"]
            if labelio:
                data = "".join(f"{self.rank}: {line}\n" for line in data.splitlines())
        self.data = data

    def render(self):
        return self.data


class LogEvent(EventLogEvent):
    """A ``log`` entry of a job shell: ``level``, ``levelstr``, ``rank``, ``message``,
    ``component``, ``file``, ``line``."""

    _LEVELS = ["FATAL", "FATAL", "FATAL", "ERROR", " WARN", "", "DEBUG", "TRACE"]

    def __init__(self, entry):
        super().__init__(entry)
        if self.name != "log":
            raise ValueError(f"event {self.name} is not a log event")
        ctx = self.context
        self.level = ctx["level"]
        self.rank = Taskset(ctx["rank"])
        self.message = ctx["message"]
        self.component = ctx.get("component")
        self.file = ctx.get("file")
        self.line = ctx.get("line", -1)

    @property
    def levelstr(self):
        return self._LEVELS[self.level] if 0 <= self.level < len(self._LEVELS) else ""

    def render(self, include_file_and_line=False):
        prefix = f"flux-shell[{self.rank}]: "
        if self.levelstr:
            prefix += f"{self.levelstr}: "
        if self.component:
            prefix += f"{self.component}: "
        if include_file_and_line and self.file:
            prefix += f"{self.file}:{self.line}: "
        return prefix + self.message


class OutputHeaderEvent(EventLogEvent):
    """The ``header`` entry: ``version``, ``stdout_count``, ``stderr_count``,
    ``stdout_encoding``, ``stderr_encoding``."""

    def __init__(self, entry):
        super().__init__(entry)
        if self.name != "header":
            raise ValueError(f"event {self.name} is not a header event")
        ctx = self.context
        self.version = ctx["version"]
        self.stdout_count = ctx["count"]["stdout"]
        self.stderr_count = ctx["count"]["stderr"]
        self.stdout_encoding = ctx["encoding"]["stdout"]
        self.stderr_encoding = ctx["encoding"]["stderr"]


class RedirectEvent(EventLogEvent):
    """A ``redirect`` entry: ``stream``, ``rank``, ``path`` (the file it goes to)."""

    def __init__(self, entry):
        super().__init__(entry)
        if self.name != "redirect":
            raise ValueError(f"event {self.name} is not a redirect event")
        self.stream = self.context["stream"]
        self.rank = Taskset(self.context["rank"])
        self.path = self.context["path"]

    def render(self):
        return f"{self.rank}: {self.stream} redirected to {self.path}"


class JobExceptionEvent(EventLogEvent):
    """An ``exception`` of the job (from its main eventlog): ``severity``,
    ``exc_type``, ``note``."""

    def __init__(self, entry):
        super().__init__(entry)
        if self.name != "exception":
            raise ValueError(f"event {self.name} is not an exception event")
        self.severity = self.context["severity"]
        self.exc_type = self.context["type"]
        self.note = self.context.get("note", "")

    def render(self):
        text = f"job.exception: type={self.exc_type} severity={self.severity}"
        return f"{text} {self.note}" if self.note else text


class JobOutput(NamedTuple):
    """A finished job's output: ``stdout``, ``stderr``, ``log``."""

    stdout: str
    stderr: str
    log: str


_KINDS = {"data": OutputEvent, "log": LogEvent, "header": OutputHeaderEvent, "redirect": RedirectEvent,
          "exception": JobExceptionEvent}


def _parse(entry, labelio=False):
    event = entry if isinstance(entry, EventLogEvent) else EventLogEvent(entry)
    kind = _KINDS.get(event.name)
    if kind is None:
        raise ValueError(f"event {event.name} is not a supported output event type")
    return OutputEvent(event, labelio) if kind is OutputEvent else kind(event)


def _until_start(flux_handle, jobid):
    """Wait for the job's ``start``: return the exceptions it got before. The output
    eventlog exists from then on.

    Raises:
        OSError: ENOENT (no such job), EIO (the job ended without starting).
    """
    from flux_launch.job.event import EventWatch

    watch = EventWatch(flux_handle, jobid, "eventlog")
    before = []
    for ev in watch:
        if ev.name == "exception":
            before.append(JobExceptionEvent(ev))
        elif ev.name == "start":
            watch.cancel()
            return before
        elif ev.name == "clean":
            watch.cancel()
            break
    raise OSError(errno.EIO, f"job {jobid} never started")


def _exceptions_while_running(flux_handle, jobid):
    """The exceptions the job got between its ``start`` and its ``finish`` (it is
    inactive by then: its eventlog is complete)."""
    from flux_launch.job.event import event_watch

    started = False
    for ev in event_watch(flux_handle, jobid):
        if ev.name == "start":
            started = True
        elif ev.name == "finish":
            return
        elif started and ev.name == "exception":
            yield JobExceptionEvent(ev)


def output_event_watch(flux_handle, jobid, labelio=False, nowait=False):
    """Yield the job's output events (see the module docstring) until its output
    eventlog is complete (the job is inactive). The exceptions the job gets come
    first (those before its start) or last (those while it ran), not interleaved.

    Raises:
        OSError: ENOENT (no such job), EIO (the job never started).
    """
    from flux_launch.job.event import event_watch

    jobid = JobID(jobid)
    if not nowait:
        yield from _until_start(flux_handle, jobid)
    # the watch ends when the job becomes inactive (what it has, then ENODATA)
    for ev in event_watch(flux_handle, jobid, "guest.output"):
        yield _parse(ev, labelio)
    if not nowait:
        yield from _exceptions_while_running(flux_handle, jobid)


def output_watch(flux_handle, jobid, labelio=False, log_stderr_level=LOG_TRACE, nowait=False):
    """Yield ``(stream, text)``: ``stream`` is "stdout", "stderr" or "log" (the
    shell's messages above ``log_stderr_level``; those at or below it, redirects
    and exceptions go to "stderr" as a line of their own).

    Raises:
        OSError: as ``output_event_watch``.
    """
    for event in output_event_watch(flux_handle, jobid, labelio=labelio, nowait=nowait):
        if event.name == "data":
            if event.data is not None:
                yield event.stream, event.render()
        elif event.name in ("log", "redirect", "exception"):
            stream = "log" if event.name == "log" and event.level > log_stderr_level else "stderr"
            yield stream, event.render() + "\n"


def output_watch_lines(flux_handle, jobid, labelio=False, log_stderr_level=LOG_TRACE, nowait=False,
                       keepends=False):
    """``output_watch`` a line at a time: ``(stream, line)``."""
    for stream, text in output_watch(flux_handle, jobid, labelio, log_stderr_level, nowait):
        for line in text.splitlines(keepends=keepends):
            yield stream, line


def job_output(flux_handle, jobid, tasks="*", labelio=False, nowait=False, log_stderr_level=LOG_TRACE):
    """The job's whole output once it finished (with ``nowait``: what it wrote so far).

    Args:
        tasks: the task ranks whose output to keep (an idset, or "*").

    Raises:
        OSError: ENOENT: no such job (with ``nowait``: or no output yet).
        JobException: a fatal exception kept the job from starting.
    """
    jobid = JobID(jobid)
    tasks = Taskset(tasks)
    streams = {"stdout": [], "stderr": [], "log": []}
    if nowait:
        from flux_launch.proto.eventlog import EventlogParser

        try:
            text = flux_handle.rpc("job-info.lookup", {"id": int(jobid), "keys": ["guest.output"]}).get()
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, f"job {jobid} does not exist or output not ready") from None
        events = (_parse(EventLogEvent(e), labelio) for e in EventlogParser().feed(text["guest.output"]))
    else:
        events = output_event_watch(flux_handle, jobid, labelio=labelio)
    try:
        for event in events:
            if event.name == "data":
                if event.data is not None and event.rank.intersect(tasks):
                    streams[event.stream].append(event.render())
            elif event.name == "log":
                streams["stderr" if event.level <= log_stderr_level else "log"].append(event.render() + "\n")
            elif event.name in ("redirect", "exception"):
                streams["stderr"].append(event.render() + "\n")
    except OSError as exc:
        if exc.errno != errno.EIO:
            raise
        from flux_launch.job.event import event_watch

        for ev in event_watch(flux_handle, jobid):
            if ev.name == "exception" and ev.context.get("severity") == 0:
                raise JobException(ev) from None
        raise
    return JobOutput(*("".join(streams[k]) for k in ("stdout", "stderr", "log")))


class _OutputFuture:
    """A stream of items fulfilled from the reactor (flux-core's multiply fulfilled
    futures): ``then(cb, *args)`` calls ``cb(future, *args)`` once per item and once
    at the end; the getter (``get_event``, ``get_output``, ``getline``) returns the
    next item, running the reactor until there is one, and the end marker after
    the last. An error (no such job, never started) is raised by the getter."""

    _END = None

    def __init__(self, flux_handle, jobid):
        from _collections import deque

        self.handle = flux_handle
        self.jobid = JobID(jobid)
        self._items = deque()
        self._ended = False
        self._error = None
        self._then = None

    def get_flux(self):
        return self.handle

    def _push(self, item):
        self._items.append(item)
        self._call()

    def _fail(self, exc):
        if not self._ended:
            self._error = exc
            self._end()

    def _end(self):
        if not self._ended:
            self._ended = True
            self._call()

    def _call(self):
        if self._then is not None:
            callback, args = self._then
            callback(self, *args)

    def then(self, callback, *args):
        self._then = (callback, args)
        return self

    def _next(self):
        from flux_launch.client.handle import REACTOR_ONCE

        while not self._items and not self._ended:
            self.handle.reactor_run(REACTOR_ONCE)
        if self._items:
            return self._items.popleft()
        if self._error is not None:
            raise self._error
        return self._END

    def get(self):
        return self._next()


class JobOutputEventWatch(_OutputFuture):
    """``output_event_watch_async``: ``get_event()`` returns the next output event,
    ``None`` at the end."""

    def __init__(self, flux_handle, jobid, labelio=False, nowait=False):
        from flux_launch.job.event import event_watch_async

        super().__init__(flux_handle, jobid)
        self.labelio = labelio
        self.started = self.finished = nowait
        self.closed = False
        if nowait:
            self._watch_output()
        else:
            event_watch_async(flux_handle, self.jobid).then(self._on_main)

    def get_event(self, autoreset=True):
        return self._next()

    def _watch_output(self):
        from flux_launch.job.event import event_watch_async

        event_watch_async(self.handle, self.jobid, "guest.output").then(self._on_output)

    def _on_main(self, fut):
        try:
            ev = fut.get_event()
        except OSError as exc:
            self._fail(exc)
            return
        if ev is None:
            if not self.started:
                self._fail(OSError(errno.EIO, f"job {self.jobid} never started"))
        elif ev.name == "exception":
            self._push(JobExceptionEvent(ev))
        elif ev.name == "start":
            self.started = True
            self._watch_output()
        elif ev.name == "finish":
            self.finished = True
            fut.cancel(stop=True)  # exceptions after finish are not reported
            if self.closed:
                self._end()

    def _on_output(self, fut):
        try:
            ev = fut.get_event()
        except OSError as exc:
            self._fail(exc)
            return
        if ev is not None:
            self._push(_parse(ev, self.labelio))
        else:
            self.closed = True
            if self.finished:
                self._end()


class JobOutputWatch(_OutputFuture):
    """``output_watch_async``: ``get_output()`` returns ``(stream, text)``, then
    ``(None, None)`` at the end."""

    _END = (None, None)

    def __init__(self, flux_handle, jobid, labelio=False, log_stderr_level=LOG_TRACE, nowait=False, lines=False,
                 keepends=False):
        super().__init__(flux_handle, jobid)
        self.log_stderr_level = log_stderr_level
        self._lines = lines
        self._keepends = keepends
        JobOutputEventWatch(flux_handle, jobid, labelio, nowait).then(self._on_event)

    def get_output(self):
        return self._next()

    def getline(self):
        return self._next()

    def _on_event(self, fut):
        try:
            event = fut.get_event()
        except OSError as exc:
            self._fail(exc)
            return
        if event is None:
            self._end()
            return
        if event.name == "data":
            if event.data is None:
                return
            stream, text = event.stream, event.render()
        elif event.name in ("log", "redirect", "exception"):
            stream = "log" if event.name == "log" and event.level > self.log_stderr_level else "stderr"
            text = event.render() + "\n"
        else:
            return
        if not self._lines:
            self._push((stream, text))
            return
        for line in text.splitlines(keepends=self._keepends):
            self._push((stream, line))


def output_event_watch_async(flux_handle, jobid, labelio=False, nowait=False):
    """Output events from the reactor: a ``JobOutputEventWatch`` (``then``, ``get_event``)."""
    return JobOutputEventWatch(flux_handle, jobid, labelio=labelio, nowait=nowait)


def output_watch_async(flux_handle, jobid, labelio=False, log_stderr_level=LOG_TRACE, nowait=False):
    """Output from the reactor: a ``JobOutputWatch`` (``then``, ``get_output``)."""
    return JobOutputWatch(flux_handle, jobid, labelio, log_stderr_level, nowait)


def output_watch_lines_async(flux_handle, jobid, labelio=False, log_stderr_level=LOG_TRACE, nowait=False,
                             keepends=False):
    """Output lines from the reactor: a ``JobOutputWatch`` (``then``, ``getline``)."""
    return JobOutputWatch(flux_handle, jobid, labelio, log_stderr_level, nowait, lines=True, keepends=keepends)
