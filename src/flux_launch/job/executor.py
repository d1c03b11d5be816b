"""``flux.job.FluxExecutor``: a ``concurrent.futures.Executor`` of Flux jobs.

``executor.submit(jobspec, *args, **kwargs)`` (the arguments of
``flux.job.submit_async``) returns a ``FluxExecutorFuture`` at once; a thread of
the executor, with a handle of its own, submits the job and follows its eventlog:
the future's ``jobid()`` is known once the instance answers, event callbacks
(``add_event_callback("start", cb)``) fire as the events come, and the future
completes at ``finish`` with the job's exit code (negative: the signal that
killed it) or, at a fatal ``exception`` first, with a ``JobException``.
``attach(jobid)`` follows a job submitted elsewhere. ``shutdown(wait=True)`` (or
the ``with`` block's end) waits for the futures still running.

As flux-core's: ``FluxExecutor(threads=1, thread_name_prefix="",
poll_interval=0.1, handle_args=(), handle_kwargs={}, exception_callback=None)``;
``cancel()`` succeeds only while the job is not submitted yet (the future's
``set_running_or_notify_cancel`` decides); calling ``result()`` or
``exception()`` of a pending future from one of its callbacks raises
``RuntimeError`` (it would wait for the thread that runs the callback).
"""

import concurrent.futures
import errno
import logging
import os
import threading
from collections import deque

# RFC 21 events a callback may be added for
EVENTS = frozenset(("submit", "validate", "invalidate", "depend", "priority", "flux-restart", "urgency", "alloc",
                    "free", "start", "release", "finish", "clean", "debug", "exception", "dependency-add",
                    "dependency-remove", "set-flags", "memo", "jobspec-update", "resource-update",
                    "prolog-start", "prolog-finish", "epilog-start", "epilog-finish"))


class FluxExecutorFuture(concurrent.futures.Future):
    """The future of one job: ``jobid()``, ``add_jobid_callback``,
    ``add_event_callback``, and those of ``concurrent.futures.Future``."""

    EVENTS = EVENTS

    def __init__(self, owner_thread=None):
        super().__init__()
        self._owner = owner_thread  # the ident of the thread that completes it
        self._jobid_cond = threading.Condition()
        self._jobid = None
        self._jobid_set = False
        self._jobid_exc = None
        self._jobid_callbacks = []
        self._event_lock = threading.RLock()
        self._events = {}  # name -> [EventLogEvent]
        self._event_callbacks = {}  # name -> [callback]

    # ---- jobid ------------------------------------------------------------------------

    def _set_jobid(self, jobid, exc=None):
        with self._jobid_cond:
            if self._jobid_set:
                raise RuntimeError("invalid state: jobid already set")
            self._jobid, self._jobid_exc, self._jobid_set = jobid, exc, True
            self._jobid_cond.notify_all()
            callbacks, self._jobid_callbacks = self._jobid_callbacks, []
        for cb in callbacks:
            self._call(cb)

    def jobid(self, timeout=None):
        """The job's ``JobID``, once submitted.

        Raises:
            concurrent.futures.TimeoutError: not known within ``timeout`` seconds.
            concurrent.futures.CancelledError: the future was cancelled first.
            RuntimeError: the job could not be submitted.
        """
        with self._jobid_cond:
            if not self._jobid_cond.wait_for(lambda: self._jobid_set, timeout):
                raise concurrent.futures.TimeoutError()
        if self._jobid_exc is not None:
            raise self._jobid_exc
        return self._jobid

    def add_jobid_callback(self, callback):
        """Call ``callback(future)`` once the jobid is known (at once if it is);
        returns the future."""
        with self._jobid_cond:
            if not self._jobid_set:
                self._jobid_callbacks.append(callback)
                return self
        self._call(callback)
        return self

    # ---- events -----------------------------------------------------------------------

    def add_event_callback(self, event, callback):
        """Call ``callback(future, event)`` for each ``event`` (a name of ``EVENTS``)
        of the job, those already past included; returns the future.

        Raises:
            ValueError: not an event name.
        """
        if event not in self.EVENTS:
            raise ValueError(f"{event!r} is not an event of a job (one of {', '.join(sorted(self.EVENTS))})")
        with self._event_lock:
            self._event_callbacks.setdefault(event, []).append(callback)
            past = list(self._events.get(event, ()))
        for ev in past:
            self._call(callback, ev)
        return self

    def _set_event(self, ev):
        with self._event_lock:
            self._events.setdefault(ev.name, []).append(ev)
            callbacks = list(self._event_callbacks.get(ev.name, ()))
        for cb in callbacks:
            self._call(cb, ev)

    def _call(self, callback, *args):
        try:
            callback(self, *args)
        except Exception:  # a user's callback: logged, the executor goes on
            logging.getLogger(__name__).exception("exception calling callback for %r", self)

    # ---- Future -----------------------------------------------------------------------

    def _guard(self):
        if not self.done() and threading.get_ident() == self._owner:
            raise RuntimeError("Cannot wait for future from inside callback")

    def result(self, timeout=None):
        self._guard()
        return super().result(timeout)

    def exception(self, timeout=None):
        self._guard()
        return super().exception(timeout)

    result.__doc__ = concurrent.futures.Future.result.__doc__
    exception.__doc__ = concurrent.futures.Future.exception.__doc__

    def set_exception(self, exception):
        with self._jobid_cond:
            unset = not self._jobid_set
        if unset:
            self._set_jobid(None, RuntimeError(f"job could not be submitted due to {exception}"))
        super().set_exception(exception)

    def cancel(self):
        """Cancel the future if the job is not submitted yet (True), else False."""
        if self.cancelled():
            return True
        if not super().cancel():
            return False
        with self._jobid_cond:
            unset = not self._jobid_set
        if unset:
            self._set_jobid(None, concurrent.futures.CancelledError())
        return True

    def __repr__(self):
        return f"<FluxExecutorFuture jobid={self._jobid} {super().__repr__()[1:-1]}>"


class _Worker(threading.Thread):
    """One executor thread: its handle's reactor submits what the executor queued
    (woken through a pipe) and follows each job's eventlog."""

    def __init__(self, executor, name, handle_args, handle_kwargs):
        super().__init__(name=name, daemon=True)
        self.executor = executor
        self.queue = deque()  # (kind, future, payload)
        self.rfd, self.wfd = os.pipe()
        self.handle_args, self.handle_kwargs = handle_args, handle_kwargs
        self.running = set()  # futures whose job is followed
        self.h = None

    def wake(self):
        try:
            os.write(self.wfd, b"x")
        except OSError:
            pass

    def run(self):
        from flux_launch.client.handle import Flux

        try:
            self.h = Flux(*self.handle_args, **self.handle_kwargs)
            watcher = self.h.fd_watcher_create(self.rfd, self._woken)
            watcher.start()
            self._take()
            if not self._finished():
                self.h.reactor_run()
        except BaseException as exc:  # the broker went away...: no future waits forever
            self.executor._broken = True
            for fut in list(self.running) + [p[1] for p in self.queue]:
                if not fut.done():
                    fut.set_exception(exc)
            self.queue.clear()
            if not isinstance(exc, Exception):
                raise
        finally:
            for fd in (self.rfd, self.wfd):
                os.close(fd)
            if self.h is not None:
                self.h.close()

    def _woken(self, *_):
        try:
            os.read(self.rfd, 4096)
        except OSError:
            pass
        self._take()
        self._finished()

    def _finished(self):
        """Stop once shut down and nothing is left to follow."""
        if self.executor._shutdown and not self.queue and not self.running:
            self.h.reactor_stop()
            return True
        return False

    def _take(self):
        from flux_launch.job.submit import submit_async

        while self.queue:
            kind, fut, payload = self.queue.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            self.running.add(fut)
            if kind == "attach":
                self._watch(fut, payload)
                continue
            args, kwargs = payload
            try:
                submit_async(self.h, *args, **kwargs).then(self._submitted, fut)
            except Exception as exc:  # noqa: BLE001 - a jobspec that does not validate: the future's
                self._done(fut, exc)

    def _submitted(self, sfut, fut):
        try:
            jobid = sfut.get_id()
        except Exception as exc:  # noqa: BLE001 - the refusal is the future's
            return self._done(fut, exc)
        fut._set_jobid(jobid)
        self._watch(fut, jobid)

    def _watch(self, fut, jobid):
        from flux_launch.client.handle import STREAMING
        from flux_launch.proto.eventlog import EventlogParser

        rpc = self.h.rpc("job-info.eventlog-watch", {"id": int(jobid), "path": "eventlog"}, flags=STREAMING)
        rpc.then(self._event, fut, EventlogParser())

    def _event(self, rpc, fut, parser):
        from flux_launch.job.event import EventLogEvent, JobException

        try:
            value = rpc.get()["value"]
        except OSError as exc:
            if exc.errno == errno.ENODATA:
                return self._done(fut, None)
            if exc.errno == errno.ENOENT:
                exc = ValueError(f"job ID {fut._jobid} does not match any job")
            return self._done(fut, exc)
        for entry in parser.feed(value):
            ev = EventLogEvent(entry)
            if ev.name in fut.EVENTS:
                fut._set_event(ev)
            if not fut.done():
                if ev.name == "finish":
                    status = ev.context.get("status", 0)
                    if os.WIFSIGNALED(status):
                        fut.set_result(-os.WTERMSIG(status))
                    else:
                        fut.set_result(os.WEXITSTATUS(status))
                elif ev.name == "exception" and ev.context.get("severity") == 0:
                    fut.set_exception(JobException(ev))
            if ev.name == "clean":
                from flux_launch.client.handle import NORESPONSE

                self.h.rpc("job-info.eventlog-watch-cancel", {"matchtag": rpc.matchtag}, flags=NORESPONSE)
                return self._done(fut, None)

    def _done(self, fut, exc):
        if exc is not None and not fut.done():
            fut.set_exception(exc)
        elif not fut.done():
            fut.set_exception(RuntimeError(f"job {fut._jobid}: its eventlog ended before it finished"))
        self.running.discard(fut)
        self._finished()


class FluxExecutor(concurrent.futures.Executor):
    """Submit jobspecs and follow the jobs from threads of its own (see the module
    docstring)."""

    def __init__(self, threads=1, thread_name_prefix="", poll_interval=0.1, handle_args=(), handle_kwargs=None,
                 exception_callback=None):
        if threads < 1:
            raise ValueError("threads must be a positive integer")
        self._shutdown = False
        self._broken = False
        self._lock = threading.Lock()
        self._next = 0
        self._exception_callback = exception_callback
        prefix = thread_name_prefix or f"FluxExecutor-{id(self):x}"
        self._workers = [_Worker(self, f"{prefix}_{i}", tuple(handle_args), dict(handle_kwargs or {}))
                         for i in range(threads)]
        for w in self._workers:
            w.start()

    def _enqueue(self, kind, payload, jobid=None):
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            if self._broken:
                raise RuntimeError("the executor is broken: its thread lost the instance")
            worker = self._workers[self._next % len(self._workers)]
            self._next += 1
            fut = FluxExecutorFuture(worker.ident)
            if jobid is not None:  # before the worker can see it (it may fail it at once)
                fut._set_jobid(jobid)
            if self._exception_callback is not None:
                fut.add_done_callback(self._report)
            worker.queue.append((kind, fut, payload))
        worker.wake()
        return fut

    def _report(self, fut):
        if not fut.cancelled() and fut.exception() is not None:
            self._exception_callback(fut.exception())

    def submit(self, *args, **kwargs):
        """Submit a jobspec (the arguments of ``flux.job.submit_async`` after the
        handle); returns a ``FluxExecutorFuture``.

        Raises:
            RuntimeError: the executor was shut down.
        """
        return self._enqueue("submit", (args, kwargs))

    def attach(self, jobid):
        """A ``FluxExecutorFuture`` for a job submitted elsewhere."""
        from flux_launch.core.jobid import JobID

        return self._enqueue("attach", JobID(jobid), jobid=JobID(jobid))

    def shutdown(self, wait=True, *, cancel_futures=False):
        """No new submissions; with ``wait``, return once every future is done.
        ``cancel_futures``: cancel those not submitted yet."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                for w in self._workers:
                    for _kind, fut, _payload in list(w.queue):
                        fut.cancel()
        for w in self._workers:
            w.wake()
        if wait:
            for w in self._workers:
                w.join()
