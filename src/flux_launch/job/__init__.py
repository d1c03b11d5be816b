"""The Python API, mirroring ``flux.job``: jobspecs, submission, events, results,
listings and output.

    import flux, flux.job
    h = flux.Flux()
    jobid = flux.job.submit(h, flux.job.JobspecV1.from_command(["hostname"]))
    print(flux.job.result(h, jobid).result)

What ``flux run`` needs is imported here; the rest (``JobInfo``, ``job_list``,
``output_watch``...) on first use, from the module named in ``_LAZY``.
"""

from flux_launch.core.jobid import JobID
from flux_launch.job.event import EventLogEvent, JobException, event_wait, event_watch, event_watch_async
from flux_launch.job.jobspec import Jobspec, JobspecV1
from flux_launch.job.kill import cancel, cancel_async, kill, kill_async
from flux_launch.job.submit import submit, submit_async
from flux_launch.job.wait import FLUX_JOBID_ANY, result, result_async, wait, wait_async

# name -> module that defines it, imported on first use (flux run imports this package)
_LAZY = {
    "JobWaitResult": "wait", "JobInfo": "info",
    "JobList": "list", "job_list": "list", "job_list_inactive": "list", "job_list_id": "list",
    "get_job": "list", "JobListRPC": "list", "JobListIdRPC": "list",
    "output_watch": "output", "output_event_watch": "output", "output_watch_lines": "output",
    "job_output": "output", "JobOutput": "output", "OutputEvent": "output", "LogEvent": "output",
    "OutputHeaderEvent": "output", "RedirectEvent": "output", "JobExceptionEvent": "output",
    "output_event_watch_async": "output", "output_watch_async": "output", "output_watch_lines_async": "output",
    "job_kvs_lookup": "kvslookup", "JobKVSLookup": "kvslookup", "job_kvs": "kvslookup",
    "job_kvs_guest": "kvslookup",
    "FluxExecutor": "executor", "FluxExecutorFuture": "executor",
}

__all__ = ["JobID", "Jobspec", "JobspecV1", "submit", "submit_async", "result", "result_async", "wait",
           "wait_async", "event_watch", "event_watch_async", "event_wait", "kill", "kill_async", "cancel",
           "cancel_async", "EventLogEvent", "JobException", "FLUX_JOBID_ANY", *_LAZY]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"flux_launch.job.{module}"), name)
    globals()[name] = value
    return value
