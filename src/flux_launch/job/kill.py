"""``kill`` (send a signal to a running job's tasks) and ``cancel`` (raise a
``cancel`` exception: a pending job never runs, a running one is killed).

Failures raise ``OSError``: ENOENT for no such job, EINVAL for a job that is not
running (kill) or already inactive (cancel).
"""

from flux_launch.proto.job import raise_payload


def kill(flux_handle, jobid, signum=None):
    flux_handle.rpc("job-manager.kill", {"id": int(jobid), "signum": signum or 15}).get()


def cancel(flux_handle, jobid, reason=None):
    flux_handle.rpc("job-manager.raise", raise_payload(jobid, "cancel", reason or "")).get()
