"""alloc-bypass and co-location: jobs run on resources they name, and what a tool
needs to know of the running job it joins.

``attributes.system.alloc-bypass.R`` (flux-core's alloc-bypass jobtap plugin): the
job skips the scheduler and runs on exactly that R (RFC 20). Its ``alloc`` event
says ``{"bypass": true}``; the resources are not marked used, so the job runs
beside whatever holds them (a debugger beside the job it debugs), and its end
frees nothing. The R is checked at submission (one line, nothing submitted): a
valid R of ranks this instance has. flux-core lets only the instance owner bypass
(``Guest user cannot use alloc bypass``); here a guest may too, but only onto
resources that one of their own running jobs holds (``flux run --colocate``).

``job-manager.target {id}`` -> ``{id, userid, R, jobspec, ranks}``: a running
job that a tool may join (``flux exec --jobid``, ``flux run --colocate``); the
requester must be its owner or the instance owner (EPERM), the job must be
running with every shell started (EINVAL ``not running``), an unknown id is
ENOENT. A request from inside the broker may ask on behalf of ``userid``.
"""

import errno

from flux_launch.core.jobid import JobID
from flux_launch.services.base import ServiceError


def bypass_R(jobspec):
    """The ``alloc-bypass.R`` a jobspec asks for, or None."""
    system = jobspec.get("attributes", {}).get("system", {})
    ab = system.get("alloc-bypass")
    if ab is None:
        return None
    if not isinstance(ab, dict) or "R" not in ab:
        raise ServiceError(errno.EINVAL, "invalid system.alloc-bypass: expected alloc-bypass.R=R (an R object, "
                           "e.g. from flux job info JOBID R)")
    return ab["R"]


class Bypass:
    """The alloc-bypass checks and starts of a job manager."""

    def __init__(self, jm):
        self.jm = jm

    def methods(self):
        return {"target": self._target}

    # ---- submission -------------------------------------------------------------

    def check(self, jobspec, userid, owner):
        """Refuse a submission whose alloc-bypass R is unusable. Returns the R's
        ResourceSet, or None when the jobspec asks for no bypass.

        Raises:
            ServiceError: EINVAL (not a valid R, ranks this instance lacks), EPERM
                (a guest's R that no running job of theirs holds).
        """
        from flux_launch.proto import rv1

        R = bypass_R(jobspec)
        if R is None:
            return None
        if isinstance(R, str):  # -S alloc-bypass.R='...' that was not valid JSON
            raise ServiceError(errno.EINVAL, "alloc-bypass: invalid R: not a JSON object")
        try:
            rset = rv1.decode(R)
        except ValueError as exc:
            raise ServiceError(errno.EINVAL, f"alloc-bypass: invalid {exc}") from None
        if not rset.ranks:
            raise ServiceError(errno.EINVAL, "alloc-bypass: invalid R: it holds no rank")
        size = self.jm.broker.size
        bad = [r for r in rset.ranks if int(r) >= size]
        if bad:
            raise ServiceError(errno.EINVAL, f"alloc-bypass: R names rank {bad[0]}, which this instance of "
                               f"size {size} does not have")
        if not owner and not self._held_by(userid, rset):
            raise ServiceError(errno.EPERM, "alloc-bypass: permission denied: a guest may only use the "
                               "resources of a running job of their own")
        return rset

    def _held_by(self, userid, rset):
        from flux_launch.proto import rv1

        for job in self.jm.jobs.values():
            if job.userid == userid and job.state == "RUN" and job.R and not job.bypass:
                try:
                    if not rset.difference(rv1.decode(job.R)).ranks:
                        return True
                except ValueError:
                    continue
        return False

    # ---- start ------------------------------------------------------------------

    def start(self, job):
        """Run a bypass job on its R now (it reached SCHED with a priority): its
        ``alloc`` event (``bypass``), R in the KVS, then its shells."""
        import time

        from flux_launch.proto import rv1

        jm = self.jm
        rset = job.bypass
        now = time.time()
        duration = job.summary.get("duration") or 0.0
        job.expiration = now + duration if duration else 0.0
        hosts = rset.hosts()
        nodelist = [hosts.get(r) or jm.hostnames.get(int(r), "localhost") for r in sorted(rset.ranks, key=int)]
        job.R = rv1.encode(rset.ranks, nodelist=nodelist, starttime=now, expiration=job.expiration)
        job.alloc = {int(r): v for r, v in rset.ranks.items()}
        job.state = "RUN"
        job.t_run = now
        jm.post(job, "alloc", {"bypass": True},
                extra_ops=[{"op": "put", "key": f"{_kvs_dir(job.id)}.R", "value": job.R}])
        jm.arm_timer(job)
        jm.exec.start(job)

    # ---- job-manager.target -----------------------------------------------------

    def _target(self, msg, p):
        jm = self.jm
        job = jm.job_of(msg, p)
        if msg.get("rolemask", 1) == 1 and "userid" in p:  # the rexec service asks for a guest
            if p["userid"] not in (job.userid, jm.broker.owner):
                raise ServiceError(errno.EPERM, f"{JobID(job.id)}: permission denied: not your job")
        if job.state != "RUN" or not job.has_started or job.exec is None:
            state = "starting" if job.state == "RUN" else job.state
            raise ServiceError(errno.EINVAL, f"{JobID(job.id)}: job is not running (it is {state})")
        jm.broker.respond(msg, {"id": job.id, "userid": job.userid, "R": job.R, "jobspec": job.jobspec,
                                "ranks": sorted(int(r) for r in job.alloc)})


def _kvs_dir(jobid):
    from flux_launch.services.job_manager.job import kvs_dir

    return kvs_dir(jobid)
