"""``job-manager.update {id, updates: {KEY: VALUE...}}``: change an active job's
jobspec after submission (flux-core's job-manager update service with its
duration, name and queue update plugins); ``flux update`` sends it.

Keys are dotted jobspec paths:

- ``attributes.system.duration``: seconds, 0 for unlimited. A pending job takes
  any such value; a running one moves its expiration to its start time plus the
  new duration, which must lie ahead (its time-limit timer moves with it, and a
  ``resource-update {expiration}`` event records the new end).
- ``attributes.system.job.name``: a non-empty string, pending or running.
- ``attributes.system.queue``: refused with the reason (this instance has only
  flux-core's anonymous queue).

Every update of a request is checked before any is applied: all apply, in one
``jobspec-update {KEY: VALUE...}`` event, or the request fails with EINVAL and
the job is unchanged. A job that has finished (CLEANUP, INACTIVE) or has a fatal
exception is not updated. A new duration reaches the scheduler (backfill plans with it).
"""

import copy
import errno
import math
import time

from flux_launch.core.jobid import JobID
from flux_launch.proto.job import PENDING
from flux_launch.services.base import ServiceError

DURATION = "attributes.system.duration"
NAME = "attributes.system.job.name"
QUEUE = "attributes.system.queue"


def apply_updates(jobspec, updates):
    """A copy of ``jobspec`` with each dotted ``KEY`` of ``updates`` set to its value."""
    new = copy.deepcopy(jobspec)
    for key, value in updates.items():
        node = new
        *path, last = key.split(".")
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return new


class Update:
    """The ``update`` method of ``job-manager``."""

    def __init__(self, jm):
        self.jm = jm

    def methods(self):
        return {"update": self._update}

    def _update(self, msg, p):
        jm = self.jm
        job = jm.job_of(msg, p)
        updates = p.get("updates")
        if not isinstance(updates, dict) or not updates or not all(isinstance(k, str) for k in updates):
            raise ServiceError(errno.EPROTO, "job-manager.update: updates must be a non-empty object of KEY: VALUE")
        jobid = JobID(job.id)
        if job.state not in PENDING and job.state != "RUN":
            raise ServiceError(errno.EINVAL, f"{jobid}: job has finished ({job.state}): only pending or running "
                                             "jobs can be updated")
        if job.exception is not None and job.exception.get("severity", 0) == 0:
            raise ServiceError(errno.EINVAL, f"{jobid}: job is ending (a {job.exception.get('type')} exception): "
                                             "it cannot be updated")
        expiration = None
        for key, value in updates.items():
            if key == DURATION:
                expiration = self._check_duration(job, jobid, value)
            elif key == NAME:
                if not isinstance(value, str) or not value:
                    raise ServiceError(errno.EINVAL, f"{jobid}: job name must be a non-empty string")
            elif key == QUEUE:
                raise ServiceError(errno.EINVAL, f"{jobid}: queue {value!r} is not a valid queue (this instance "
                                                 "has only the anonymous queue)")
            else:
                raise ServiceError(errno.EINVAL, f"{jobid}: update of {key} is not supported (keys: duration, "
                                                 "name)")
        from flux_launch.proto.jobspec import summary

        jobspec = apply_updates(job.jobspec, updates)
        job.set_jobspec(jobspec, summary(jobspec))
        jm.post(job, "jobspec-update", dict(updates))
        if expiration is not None:
            self._move_expiration(job, expiration)
        if DURATION in updates:
            self._tell_scheduler(job)
        jm.broker.respond(msg, {})

    def _tell_scheduler(self, job):
        """The scheduler plans with durations (backfill, the head job's reservation):
        a queued job goes back in with its new request (its place kept: same
        priority and submit time), a running one gets its new end."""
        jm = self.jm
        sched = jm.sched
        if sched is None:
            return
        if job.state == "SCHED" and sched.cancel(job.id):
            jm.enqueue(job)
        elif job.state == "RUN" and job.id in sched.running:
            sched.running[job.id].end = job.expiration or math.inf
        jm.schedule()

    def _check_duration(self, job, jobid, value):
        """Validate a new duration; returns the new expiration of a running job
        (0 for none), None for a pending one."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ServiceError(errno.EINVAL, f"{jobid}: duration must be a number of seconds >= 0 (0: unlimited), "
                                             f"not {value!r}")
        if job.state != "RUN":
            return None
        if value == 0:
            return 0.0
        from flux_launch.core import fsd

        expiration = (job.t_run or time.time()) + value
        now = time.time()
        if expiration <= now:
            raise ServiceError(errno.EINVAL, f"{jobid}: a duration of {fsd.format(value)} would have ended the job "
                                             f"{fsd.format(now - expiration)} ago (it has run "
                                             f"{fsd.format(now - (job.t_run or now))})")
        return expiration

    def _move_expiration(self, job, expiration):
        # as a replayed resource-update event: the job's expiration, its R's, its timer
        job.replay({"name": "resource-update", "context": {"expiration": expiration}, "timestamp": time.time()})
        job.apply_resource_updates()
        self.jm.arm_timer(job)
        self.jm.post(job, "resource-update", {"expiration": expiration})
