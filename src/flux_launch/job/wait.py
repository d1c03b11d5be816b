"""``result`` and ``wait``: the outcome of a job.

``result`` works for any job (it waits for the job to become inactive);
``wait`` only for jobs submitted with the waitable flag, and each job can be
waited for once (``OSError(ECHILD)`` after that, or when none is left).
"""

from flux_launch.core.jobid import JobID

FLUX_JOBID_ANY = 0


def __getattr__(name):
    # JobWaitResult, a namedtuple as in flux-core, is made on first use: importing
    # collections costs flux run and flux submit ~2 ms
    if name == "JobWaitResult":
        if "JobWaitResult" in globals():
            return globals()["JobWaitResult"]
        from collections import namedtuple

        global JobWaitResult
        JobWaitResult = namedtuple("JobWaitResult", ["jobid", "success", "errstr"])
        return JobWaitResult
    if name == "JobInfo":  # job/info.py, imported when a result is read
        from flux_launch.job.info import JobInfo

        return JobInfo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def result(flux_handle, jobid, flags=0):
    """Wait until the job is inactive; returns its ``JobInfo``.

    Raises:
        OSError: no such job.
    """
    from flux_launch.job.event import EventWatch

    watch = EventWatch(flux_handle, jobid)
    for event in watch:
        if event.name == "clean":
            watch.cancel()
            break
    from flux_launch.job.info import JobInfo

    return JobInfo(flux_handle.rpc("job-list.list-id", {"id": int(jobid)}).get()["job"])


class JobWaitFuture:
    """The pending answer of ``wait_async``: ``get_status()`` (a ``JobWaitResult``),
    ``then(cb, *args)``; ``get_status()`` raises what ``wait`` raises."""

    def __init__(self, fut):
        self._fut = fut

    def get_status(self):
        resp = self._fut.get()
        return __getattr__("JobWaitResult")(JobID(resp["id"]), resp["success"], resp["errstr"])

    def get(self):
        return self.get_status()

    def is_ready(self):
        return self._fut.is_ready()

    def then(self, callback, *args):
        self._fut.then(lambda _f: callback(self, *args))
        return self


def wait_async(flux_handle, jobid=FLUX_JOBID_ANY):
    """``wait`` without waiting: a ``JobWaitFuture``."""
    return JobWaitFuture(flux_handle.rpc("job-manager.wait", {"id": int(jobid)}))


def wait(flux_handle, jobid=FLUX_JOBID_ANY):
    """Wait for a waitable job (any, by default); returns a ``JobWaitResult``.

    Raises:
        OSError: ECHILD (no waitable job left, or already waited), EINVAL (not
            waitable), ENOENT (no such job).
    """
    return wait_async(flux_handle, jobid).get_status()


class ResultFuture:
    """The pending outcome of a job (``result_async``): ``then(cb, *args)`` calls
    ``cb(future, *args)`` from ``Flux.reactor_run()`` once the job is inactive;
    ``get_info()`` and ``get()`` (a ``JobInfo``, flux-core's) and ``get_dict()`` (its
    record, a dict) block until then.

    Raises (from ``get``, or out of ``reactor_run``): ``OSError`` for an unknown job.
    """

    def __init__(self, flux_handle, jobid):
        from flux_launch.client.handle import STREAMING
        from flux_launch.proto.eventlog import EventlogParser

        self.handle = flux_handle
        self.jobid = JobID(jobid)
        self._watch = flux_handle.rpc("job-info.eventlog-watch", {"id": int(self.jobid), "path": "eventlog"},
                                      flags=STREAMING)
        self._parser = EventlogParser()
        self._done = False
        self._info = None
        self._then = None  # (callback, args), until it is called

    def _consume(self):
        """Take the eventlog entries received so far; True once ``clean`` came. After
        that, the rest of the stream (up to the ENODATA the cancel brings) is dropped."""
        watch = self._watch
        while watch.is_ready():
            if self._done:
                try:
                    watch.get()
                except OSError:
                    pass
                continue
            if any(ev["name"] == "clean" for ev in self._parser.feed(watch.get()["value"])):
                self._done = True
                from flux_launch.client.handle import NORESPONSE

                self.handle.rpc("job-info.eventlog-watch-cancel", {"matchtag": watch.matchtag}, flags=NORESPONSE)
        return self._done

    def _notify(self):
        if self._then is not None:
            callback, args = self._then
            self._then = None
            callback(self, *args)

    def then(self, callback, *args):
        self._then = (callback, args)
        if self._consume():
            # already inactive: called from the reactor all the same, never from here
            self.handle.timer_watcher_create(0.0, lambda *_: self._notify()).start()
        else:
            self._watch.then(lambda _f: self._consume() and self._notify())
        return self

    def get(self):
        while not self._consume():
            self._watch.wait_for()
        if self._info is None:
            from flux_launch.job.info import JobInfo

            self._info = JobInfo(self.handle.rpc("job-list.list-id", {"id": int(self.jobid)}).get()["job"])
        return self._info

    def get_info(self):
        return self.get()

    def get_dict(self):
        return self.get().get_info()


def result_async(flux_handle, jobid, flags=0):
    """``result`` without waiting: a ``ResultFuture``."""
    return ResultFuture(flux_handle, jobid)
