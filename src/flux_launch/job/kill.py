"""``kill`` (send a signal to a running job's tasks) and ``cancel`` (raise a
``cancel`` exception: a pending job never runs, a running one is killed), and
their ``_async`` forms, which return the RPC's future (``get()``, ``then()``).

Failures raise ``OSError`` (from ``get()`` for the async forms): ENOENT for no
such job, EINVAL for a job that is not running (kill) or already inactive (cancel).
"""

from flux_launch.proto.job import raise_payload


def kill_async(flux_handle, jobid, signum=None):
    """Send ``signum`` (default SIGTERM) to the job's tasks; returns the future."""
    return flux_handle.rpc("job-manager.kill", {"id": int(jobid), "signum": signum or 15})


def kill(flux_handle, jobid, signum=None):
    kill_async(flux_handle, jobid, signum).get()


def cancel_async(flux_handle, jobid, reason=None):
    """Cancel the job (with ``reason`` as the exception's note); returns the future."""
    return flux_handle.rpc("job-manager.raise", raise_payload(jobid, "cancel", reason or ""))


def cancel(flux_handle, jobid, reason=None):
    cancel_async(flux_handle, jobid, reason).get()
