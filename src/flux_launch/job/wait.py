"""``result`` and ``wait``: the outcome of a job.

``result`` works for any job (it waits for the job to become inactive);
``wait`` only for jobs submitted with the waitable flag, and each job can be
waited for once (``OSError(ECHILD)`` after that, or when none is left).
"""

from collections import namedtuple

from flux_launch.core.jobid import JobID

FLUX_JOBID_ANY = 0

JobWaitResult = namedtuple("JobWaitResult", ["jobid", "success", "errstr"])


class JobInfo:
    """What ``flux jobs`` knows of a job: attributes of the job-list record, plus
    ``id`` (a ``JobID``), ``result`` ("COMPLETED", "FAILED", ...) and ``returncode``."""

    def __init__(self, info):
        self._info = info
        self.id = JobID(info["id"])

    def __getattr__(self, name):
        try:
            return self._info[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def result(self):
        return self._info.get("result_str", "")

    def get_info(self):
        return dict(self._info, id=self.id, result=self.result)

    def __repr__(self):
        return f"JobInfo(id={self.id}, result={self.result}, returncode={self._info.get('returncode')})"


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
    return JobInfo(flux_handle.rpc("job-list.list-id", {"id": int(jobid)}).get()["job"])


def wait(flux_handle, jobid=FLUX_JOBID_ANY):
    """Wait for a waitable job (any, by default); returns a ``JobWaitResult``.

    Raises:
        OSError: ECHILD (no waitable job left, or already waited), EINVAL (not
            waitable), ENOENT (no such job).
    """
    resp = flux_handle.rpc("job-manager.wait", {"id": int(jobid)}).get()
    return JobWaitResult(JobID(resp["id"]), resp["success"], resp["errstr"])
