"""job-ingest: the checks a submission must pass before it becomes a job.

Topic: ``job-ingest.submit {jobspec, urgency?, flags?}`` -> ``{id}``. The
jobspec is validated (RFC 25), the request must be able to fit the instance
some day ("unsatisfiable request: ..."), the queue must be enabled ("job
submission is disabled: REASON"), and a guest may neither submit
waitable jobs nor raise urgency above the default. An accepted job is the state
machine's (``JobManager.add``): its FLUID, ``job.<dothex>.{jobspec,eventlog}``.
"""

import errno

from flux_launch.proto.job import FLAG_WAITABLE, URGENCY_DEFAULT, URGENCY_EXPEDITE
from flux_launch.services.base import Service, ServiceError


def check(p, owner, feasible=None):
    """The submission ``p`` checked: ``(jobspec, summary, urgency, flags)``.

    Args:
        p: the request's payload.
        owner: whether the instance owner submits.
        feasible: ``feasible(summary) -> (ok, reason)`` of the resource pool, or
            None while the pool is not known (nothing is refused for its size then).

    Raises:
        ServiceError: EINVAL (a bad jobspec, a named queue, a bad urgency),
            EPROTO (flags not an integer), EPERM (a guest's waitable job or
            urgency above the default), EOVERFLOW (it can never fit).
    """
    from flux_launch.proto.jobspec import JobspecError, summary, validate

    try:
        jobspec = validate(p.get("jobspec"))
        summ = summary(jobspec)
    except JobspecError as exc:
        raise ServiceError(errno.EINVAL, str(exc)) from None
    queue = jobspec.get("attributes", {}).get("system", {}).get("queue")
    if queue is not None:  # this instance has only flux-core's anonymous queue
        raise ServiceError(errno.EINVAL, f"{queue!r} is not a valid queue (this instance has no named "
                           "queues: submit without -q/--queue)")
    urgency = p.get("urgency", URGENCY_DEFAULT)
    if type(urgency) is not int or not 0 <= urgency <= URGENCY_EXPEDITE:
        raise ServiceError(errno.EINVAL, f"urgency must be an integer 0-{URGENCY_EXPEDITE}")
    flags = p.get("flags", 0)
    if type(flags) is not int:
        raise ServiceError(errno.EPROTO, "flags must be an integer")
    if flags & FLAG_WAITABLE and not owner:
        raise ServiceError(errno.EPERM, "only the instance owner may submit waitable jobs")
    if urgency > URGENCY_DEFAULT and not owner:
        raise ServiceError(errno.EPERM, f"only the instance owner may set urgency above {URGENCY_DEFAULT}")
    if feasible is not None and "alloc-bypass" not in jobspec.get("attributes", {}).get("system", {}):
        ok, reason = feasible(summ)
        if not ok:
            raise ServiceError(errno.EOVERFLOW, reason)
    return jobspec, summ, urgency, flags


class Ingest:
    """The ``job-ingest`` service of a job manager (registered at creation)."""

    def __init__(self, jm):
        self.jm = jm
        Service(jm.broker, "job-ingest", {"submit": self._submit}).register()
        Service(jm.broker, "feasibility", {"check": self._check}).register()

    def _check(self, msg, p):
        """``feasibility.check {jobspec}``: what submit would say, nothing submitted
        (so a workflow can be checked whole before any of it is)."""
        jm = self.jm
        feasible = jm.sched.pool.feasible if jm.pool_ready else None
        jobspec = check({"urgency": 0, "flags": 0, **p}, msg.get("rolemask", 1) == 1, feasible)[0]
        if "dependencies" in jobspec.get("attributes", {}).get("system", {}):
            jm.depend.precheck(msg.get("userid", jm.broker.owner), jobspec)
        jm.bypass.check(jobspec, msg.get("userid", jm.broker.owner), msg.get("rolemask", 1) == 1)
        jm.broker.respond(msg, {})

    def _submit(self, msg, p):
        jm = self.jm
        feasible = jm.sched.pool.feasible if jm.pool_ready else None
        jobspec, summ, urgency, flags = check(p, msg.get("rolemask", 1) == 1, feasible)
        jm.queue.check_submit(jobspec)  # flux queue disable: refused, with its reason
        userid = msg.get("userid", jm.broker.owner)
        if "dependencies" in jobspec.get("attributes", {}).get("system", {}):
            jm.depend.precheck(userid, jobspec)
        rset = jm.bypass.check(jobspec, userid, msg.get("rolemask", 1) == 1)
        job = jm.add(userid, jobspec, summ, urgency, flags, bypass=rset)
        jm.broker.respond(msg, {"id": job.id})
