"""``submit`` / ``submit_async``: send a jobspec to the instance.

Failures: a jobspec that does not validate raises ``ValueError`` here (nothing is
sent); the instance's refusal (invalid jobspec, "unsatisfiable request: ...")
raises ``OSError(errno, text)`` from ``get_id()``/``submit``.
"""

from flux_launch.proto import fastjson

from flux_launch.core.jobid import JobID
from flux_launch.proto.job import FLAG_DEBUG, FLAG_NOVALIDATE, FLAG_WAITABLE, URGENCY_DEFAULT

__all__ = ["FLAG_DEBUG", "FLAG_NOVALIDATE", "FLAG_WAITABLE", "SubmitFuture", "submit", "submit_async"]


def _payload(jobspec, urgency, waitable, debug, novalidate):
    if hasattr(jobspec, "jobspec"):  # a Jobspec object
        obj = jobspec.jobspec
    elif isinstance(jobspec, (str, bytes)):
        obj = fastjson.loads(jobspec)
    else:
        obj = jobspec
    flags = (FLAG_WAITABLE if waitable else 0) | (FLAG_DEBUG if debug else 0) | \
        (FLAG_NOVALIDATE if novalidate else 0)
    return {"jobspec": obj, "urgency": urgency, "flags": flags}


class SubmitFuture:
    """The pending id of a submitted job."""

    def __init__(self, fut):
        self._fut = fut

    def get_id(self):
        """The ``JobID``; raises ``OSError`` if the instance refused the job."""
        return JobID(self._fut.get()["id"])

    def get(self):
        return self.get_id()

    def then(self, callback, *args):
        self._fut.then(lambda _f: callback(self, *args))
        return self


def submit_async(flux_handle, jobspec, urgency=URGENCY_DEFAULT, waitable=False, debug=False, novalidate=False):
    """Submit without waiting; returns a ``SubmitFuture``."""
    return SubmitFuture(flux_handle.rpc("job-ingest.submit",
                                        _payload(jobspec, urgency, waitable, debug, novalidate)))


def submit(flux_handle, jobspec, urgency=URGENCY_DEFAULT, waitable=False, debug=False, novalidate=False):
    """Submit a job and return its ``JobID``.

    Raises:
        OSError: the instance refused it (e.g. ``EOVERFLOW`` "unsatisfiable request").
    """
    return submit_async(flux_handle, jobspec, urgency, waitable, debug, novalidate).get_id()
