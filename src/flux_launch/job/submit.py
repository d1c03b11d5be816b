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

    A JobSpec NG document (a dict, or its YAML/JSON text: ``job/ng``) is a
    workflow: checked whole, submitted whole or not at all, its local tasks run
    here; returns the ``JobID`` of its one job, or the list of its jobs' ids.

    Raises:
        OSError: the instance refused it (e.g. ``EOVERFLOW`` "unsatisfiable request").
        ValueError: a NG document that cannot be submitted (``NGError``, one line).
    """
    if not hasattr(jobspec, "jobspec"):
        obj = jobspec
        if isinstance(jobspec, (str, bytes)):
            from flux_launch.proto.jobspec import parse

            obj = parse(jobspec)
        from flux_launch.job.ng import is_ng

        if is_ng(obj):
            return _submit_ng(flux_handle, obj, urgency, waitable)
    return submit_async(flux_handle, jobspec, urgency, waitable, debug, novalidate).get_id()


def _submit_ng(flux_handle, doc, urgency, waitable):
    from flux_launch.job.ng import plan as ngplan
    from flux_launch.job.ng import run as ngrun

    done = ngrun.submit(flux_handle, ngplan.build(doc), waitable=waitable, urgency=urgency)
    ngrun.run_locals(flux_handle, done)
    ids = done.jobids()
    return ids[0] if len(ids) == 1 else ids
