"""``flux.job``: the job API of flux_launch under flux-core's name (see
``flux_launch.job``; its lazily imported names are lazy here too)."""

import flux_launch.job as _impl
from flux_launch.job import (FLUX_JOBID_ANY, EventLogEvent, JobException, JobID, Jobspec, JobspecV1, cancel,
                             cancel_async, event_wait, event_watch, event_watch_async, kill, kill_async, result,
                             result_async, submit, submit_async, wait, wait_async)

__all__ = ["JobID", "Jobspec", "JobspecV1", "submit", "submit_async", "result", "result_async", "wait",
           "wait_async", "event_watch", "event_watch_async", "event_wait", "kill", "kill_async", "cancel",
           "cancel_async", "EventLogEvent", "JobException", "FLUX_JOBID_ANY",
           # made on first use (flux_launch.job._LAZY)
           "JobWaitResult", "JobInfo", "JobList", "job_list", "job_list_inactive", "job_list_id", "get_job",
           "JobListRPC", "JobListIdRPC", "output_watch", "output_event_watch", "output_watch_lines", "job_output",
           "JobOutput", "OutputEvent", "LogEvent", "OutputHeaderEvent", "RedirectEvent", "JobExceptionEvent",
           "output_event_watch_async", "output_watch_async", "output_watch_lines_async", "job_kvs_lookup",
           "JobKVSLookup", "job_kvs", "job_kvs_guest", "FluxExecutor",
           "FluxExecutorFuture"]


# flux-core's submodules (flux.job.output...): these names are flux_launch.job's modules
_SUBMODULES = ("output", "list", "info", "event", "kill", "wait", "submit", "kvslookup")


def __getattr__(name):
    if name in _SUBMODULES:
        from importlib import import_module

        return import_module(f"flux.job.{name}")
    if name in _impl._LAZY:
        value = getattr(_impl, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
