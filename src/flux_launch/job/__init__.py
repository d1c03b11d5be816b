"""The Python API, mirroring ``flux.job``: jobspecs, submission, events, results.

    import flux, flux.job
    h = flux.Flux()
    jobid = flux.job.submit(h, flux.job.JobspecV1.from_command(["hostname"]))
    print(flux.job.result(h, jobid).result)
"""

from flux_launch.core.jobid import JobID
from flux_launch.job.event import EventLogEvent, JobException, event_wait, event_watch
from flux_launch.job.jobspec import Jobspec, JobspecV1
from flux_launch.job.kill import cancel, kill
from flux_launch.job.submit import submit, submit_async
from flux_launch.job.wait import FLUX_JOBID_ANY, JobInfo, result, result_async, wait

__all__ = ["JobID", "Jobspec", "JobspecV1", "submit", "submit_async", "result", "result_async", "wait", "event_watch",
           "event_wait", "kill", "cancel", "EventLogEvent", "JobException", "JobInfo", "JobWaitResult",
           "FLUX_JOBID_ANY"]


def __getattr__(name):
    if name == "JobWaitResult":  # made on first use (flux_launch.job.wait)
        from flux_launch.job.wait import JobWaitResult

        return JobWaitResult
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
