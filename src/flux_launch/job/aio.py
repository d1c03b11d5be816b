"""``flux.asyncio``: Flux jobs from asyncio coroutines, on the handle's own reactor
(no thread per call: thousands of jobs can be awaited at once).

    import asyncio, flux.asyncio, flux.job
    from flux.asyncio import loop
    js = flux.job.JobspecV1.from_command(["hostname"])
    jobid = loop.run_until_complete(flux.asyncio.submit(js))

The bridge: the running asyncio loop watches the handle's socket (``add_reader``)
and, when it is readable or the handle's reactor has something due (a timer, a
response already queued: ``Flux.reactor_timeout``), runs one non-blocking step of
the reactor (``reactor_run(REACTOR_NOWAIT)``); the flux futures' continuations
complete asyncio futures there. ``FluxEventLoop(handle=None)`` is an asyncio
selector loop whose handle is made on first use (``loop``: the module's own);
the coroutines also run on any other selector loop, with ``flux_handle=`` or a
handle of their own.

Coroutines: ``submit(jobspec, flux_handle=None, **kw)`` -> ``JobID``,
``result(jobid)`` -> ``JobInfo``, ``wait_for_event(jobid, name)`` -> the event,
``cancel(jobid)``, ``kill(jobid, signum)``; ``event_watch(jobid)``, an async
iterator of ``EventLogEvent`` that ends after ``clean``.
"""

import asyncio
import errno
import weakref

_bridges = weakref.WeakKeyDictionary()  # asyncio loop -> {id(handle): _Bridge}
_default_handles = weakref.WeakKeyDictionary()  # asyncio loop -> its handle


class _Bridge:
    """One handle's reactor stepped by one asyncio loop."""

    def __init__(self, loop, handle):
        self.loop, self.h = loop, handle
        self.timer = None
        loop.add_reader(handle.fileno(), self.step)

    def step(self):
        from flux_launch.client.handle import REACTOR_NOWAIT

        self.h.reactor_run(REACTOR_NOWAIT)
        self.kick()

    def kick(self):
        """(Re)arm the timer for what the reactor has due without new input."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        t = self.h.reactor_timeout()
        if t is not None:
            self.timer = self.loop.call_later(t, self.step)

    def close(self):
        if self.timer is not None:
            self.timer.cancel()
        self.loop.remove_reader(self.h.fileno())


def _bridge(flux_handle=None):
    loop = asyncio.get_running_loop()
    h = flux_handle
    if h is None:
        h = getattr(loop, "handle", None) if isinstance(loop, FluxEventLoop) else _default_handles.get(loop)
        if h is None:
            from flux_launch.client.handle import Flux

            h = Flux()
            if isinstance(loop, FluxEventLoop):
                loop._handle = h
            else:
                _default_handles[loop] = h
    per_loop = _bridges.setdefault(loop, {})
    br = per_loop.get(id(h))
    if br is None or br.h is not h:
        br = per_loop[id(h)] = _Bridge(loop, h)
    return loop, br


def _await(loop, br, flux_future, convert):
    """An asyncio future completed by ``convert(flux_future)`` in its continuation."""
    out = loop.create_future()

    def done(f, *_):
        if out.done():
            return
        try:
            out.set_result(convert(f))
        except BaseException as exc:  # noqa: BLE001 - the awaiting coroutine gets it
            out.set_exception(exc)

    flux_future.then(done)
    br.kick()
    return out


class FluxEventLoop(asyncio.SelectorEventLoop):
    """An asyncio loop for Flux jobs: ``handle`` (given, or made on first use)."""

    def __init__(self, handle=None, selector=None):
        super().__init__(selector)
        self._handle = handle

    @property
    def handle(self):
        if self._handle is None:
            from flux_launch.client.handle import Flux

            self._handle = Flux()
        return self._handle


async def submit(jobspec, flux_handle=None, **kwargs):
    """Submit ``jobspec`` (``flux.job.submit_async``'s keywords); its ``JobID``."""
    from flux_launch.job.submit import submit_async

    loop, br = _bridge(flux_handle)
    return await _await(loop, br, submit_async(br.h, jobspec, **kwargs), lambda f: f.get_id())


async def result(jobid, flux_handle=None):
    """Wait until the job is inactive; its ``JobInfo`` (``OSError``: no such job)."""
    from flux_launch.job.wait import JobInfo

    loop, br = _bridge(flux_handle)
    async for _ev in event_watch(jobid, flux_handle=br.h):
        pass  # to clean
    payload = br.h.rpc("job-list.list-id", {"id": int(jobid)})
    return await _await(loop, br, payload, lambda f: JobInfo(f.get()["job"]))


async def cancel(jobid, message=None, flux_handle=None):
    """Cancel a job (a ``cancel`` exception)."""
    await _raise(jobid, "cancel", message or "", flux_handle)


async def _raise(jobid, kind, note, flux_handle):
    loop, br = _bridge(flux_handle)
    fut = br.h.rpc("job-manager.raise", {"id": int(jobid), "type": kind, "severity": 0, "note": note})
    await _await(loop, br, fut, lambda f: f.get())


async def kill(jobid, signum=15, flux_handle=None):
    """Send ``signum`` to the job's tasks."""
    loop, br = _bridge(flux_handle)
    fut = br.h.rpc("job-manager.kill", {"id": int(jobid), "signum": int(signum)})
    await _await(loop, br, fut, lambda f: f.get())


class event_watch:  # a class with flux-core's function name
    """``async for event in event_watch(jobid, eventlog="eventlog")``: the job's
    ``EventLogEvent``s, ending after ``clean`` (or when the eventlog ends)."""

    def __init__(self, jobid, eventlog="eventlog", flux_handle=None):
        self.jobid, self.eventlog, self.flux_handle = int(jobid), eventlog, flux_handle
        self.queue = None

    def __aiter__(self):
        from flux_launch.client.handle import STREAMING
        from flux_launch.proto.eventlog import EventlogParser

        loop, self.br = _bridge(self.flux_handle)
        self.queue = asyncio.Queue()
        parser = EventlogParser()
        self.rpc = self.br.h.rpc("job-info.eventlog-watch", {"id": self.jobid, "path": self.eventlog},
                                 flags=STREAMING)

        def on_response(f, *_):
            try:
                for entry in parser.feed(f.get()["value"]):
                    self.queue.put_nowait(entry)
            except OSError as exc:
                self.queue.put_nowait(None if exc.errno == errno.ENODATA else exc)

        self.rpc.then(on_response)
        self.br.kick()
        self.ended = False
        return self

    async def __anext__(self):
        from flux_launch.job.event import EventLogEvent

        if self.ended:
            raise StopAsyncIteration
        item = await self.queue.get()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        ev = EventLogEvent(item)
        if self.eventlog == "eventlog" and ev.name == "clean":
            self.ended = True
            self.cancel()
        return ev

    def cancel(self):
        from flux_launch.client.handle import NORESPONSE

        self.br.h.rpc("job-info.eventlog-watch-cancel", {"matchtag": self.rpc.matchtag}, flags=NORESPONSE)


async def wait_for_event(jobid, name, eventlog="eventlog", flux_handle=None):
    """The job's first event ``name`` (``JobException``: a fatal exception first;
    ``OSError(ENODATA)``: the job ended without it)."""
    from flux_launch.job.event import JobException

    watch = event_watch(jobid, eventlog, flux_handle)
    async for ev in watch:
        if ev.name == name:
            if not watch.ended:
                watch.cancel()
            return ev
        if ev.name == "exception" and ev.context.get("severity") == 0:
            if not watch.ended:
                watch.cancel()
            raise JobException(ev)
    raise OSError(errno.ENODATA, f"the job ended without event {name}")


loop = FluxEventLoop()
