"""``flux.job``: the job API of flux_launch under flux-core's name."""

from flux_launch.job import (FLUX_JOBID_ANY, EventLogEvent, JobException, JobID, JobInfo, Jobspec, JobspecV1,
                             cancel, event_wait, event_watch, kill, result, result_async, submit, submit_async,
                             wait)

__all__ = ["JobID", "Jobspec", "JobspecV1", "submit", "submit_async", "result", "result_async", "wait", "event_watch",
           "event_wait", "kill", "cancel", "EventLogEvent", "JobException", "JobInfo", "JobWaitResult",
           "FLUX_JOBID_ANY"]


def __getattr__(name):
    if name == "JobWaitResult":  # made on first use (flux_launch.job.wait)
        from flux_launch.job.wait import JobWaitResult

        return JobWaitResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
