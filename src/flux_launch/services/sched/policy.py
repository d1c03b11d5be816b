"""Queue policy: priority-ordered FCFS with EASY backfill.

Pending jobs are ordered by priority (higher first), then submit time
(earlier first), then jobid.  :meth:`Scheduler.schedule` starts jobs from
the front of the queue while they fit.  The first job that does not fit
(the *head*) gets a reservation: the earliest time it could start if every
running job ended at its expected end (``start + duration``), found by
replaying those ends on a copy of the pool, together with the exact
resources it would get then.  Later jobs may then *backfill* (EASY): a job
starts now if it fits now and either

* fits without touching the head's reserved resources, or
* has a known duration and ends no later than the reservation time.

Either way the head still starts by its reservation time if running jobs
keep to their durations.  Unknown durations (0 = unlimited):

* a running job with no duration is taken to run forever, so it never frees
  its resources in the replay;
* if the head cannot fit even after every job with a known end has ended
  (or it is blocked by down ranks), it gets no reservation and any later
  job that fits now may start (as fluxion does when a reservation fails);
  otherwise a backfill candidate with no duration may only use resources
  outside the reservation.

Nothing here does I/O; times are plain floats supplied by the caller.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections.abc import Mapping
from dataclasses import dataclass

from flux_launch.services.sched.pool import Pool, Request, coerce_request

__all__ = ["Reservation", "RunningJob", "Scheduler"]

Alloc = dict[int, dict[str, list[int]]]


@dataclass(slots=True)
class PendingJob:
    """A queued job."""

    jobid: int
    request: Request
    priority: int
    t_submit: float

    def key(self) -> tuple:
        return (-self.priority, self.t_submit, self.jobid)


@dataclass(slots=True)
class RunningJob:
    """A started job: ``alloc`` is what it still holds; ``end`` is
    ``start + duration``, or ``math.inf`` when the duration is unknown."""

    jobid: int
    request: Request
    alloc: Alloc
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Reservation:
    """The head job's reservation made by the last :meth:`Scheduler.schedule`."""

    jobid: int
    start: float
    alloc: Alloc


def _subtract(have: Alloc, part: Mapping[int, Mapping], jobid: object) -> Alloc:
    """Return ``have`` minus ``part``; ValueError if part is not a subset."""
    out = {r: {"core": list(v["core"]), "gpu": list(v["gpu"])} for r, v in have.items()}
    for rank, res in part.items():
        cur = out.get(rank)
        for kind in ("core", "gpu"):
            ids = list(res.get(kind, ()))
            if not ids:
                continue
            if cur is None or not set(ids) <= set(cur[kind]):
                raise ValueError(f"release: job {jobid} does not hold rank {rank} "
                                 f"{kind} {sorted(ids)}")
            drop = set(ids)
            cur[kind] = [i for i in cur[kind] if i not in drop]
        if cur is not None and not cur["core"] and not cur["gpu"]:
            del out[rank]
    return out


class Scheduler:
    """FCFS + EASY backfill over a :class:`Pool`.

    Args:
        pool: the resources; the scheduler allocates from and frees to it.
        backfill: False for strict FCFS (nothing passes a blocked head).
        backfill_depth: at most this many jobs behind the head are tried
            per :meth:`schedule` (None: all).
    """

    def __init__(self, pool: Pool, backfill: bool = True,
                 backfill_depth: int | None = None) -> None:
        self.pool = pool
        self.backfill = backfill
        self.backfill_depth = backfill_depth
        self._pending: dict[object, PendingJob] = {}
        self._order: list[tuple] = []  # sorted (key, jobid)
        self.running: dict[object, RunningJob] = {}
        self.reservation: Reservation | None = None

    # -- queue ------------------------------------------------------------

    @property
    def pending(self) -> list:
        """Pending jobids in queue order."""
        return [jobid for _, jobid in self._order]

    def submit(self, jobid: int, request: Request | Mapping, priority: int = 16,
               t_submit: float = 0.0) -> Request:
        """Queue a job.

        Returns:
            The normalized request.

        Raises:
            ValueError: if the jobid is already pending or running, the
                request is malformed, or it can never be satisfied by the
                pool (message from :meth:`Pool.feasible`, e.g.
                ``"unsatisfiable request: ..."``); the job is not queued.
        """
        if jobid in self._pending or jobid in self.running:
            raise ValueError(f"job {jobid} is already known")
        req = coerce_request(request)
        ok, why = self.pool.feasible(req)
        if not ok:
            raise ValueError(why)
        job = PendingJob(jobid, req, priority, t_submit)
        self._pending[jobid] = job
        insort(self._order, (job.key(), jobid))
        return req

    def _unqueue(self, job: PendingJob) -> None:
        i = bisect_left(self._order, (job.key(), job.jobid))
        del self._order[i]
        del self._pending[job.jobid]

    def cancel(self, jobid: object) -> bool:
        """Remove a pending job; return False if it is not pending."""
        job = self._pending.get(jobid)
        if job is None:
            return False
        self._unqueue(job)
        return True

    def set_priority(self, jobid: object, priority: int) -> bool:
        """Change a pending job's priority; return False if it is not pending."""
        job = self._pending.get(jobid)
        if job is None:
            return False
        self._unqueue(job)
        job.priority = priority
        self._pending[jobid] = job
        insort(self._order, (job.key(), jobid))
        return True

    # -- running jobs -----------------------------------------------------

    def _start(self, job: PendingJob, alloc: Alloc, now: float) -> None:
        self._unqueue(job)
        dur = job.request.duration
        alloc = {r: {"core": list(v["core"]), "gpu": list(v["gpu"])} for r, v in alloc.items()}
        self.running[job.jobid] = RunningJob(job.jobid, job.request, alloc, now,
                                             now + dur if dur > 0 else math.inf)

    def restore(self, jobid: object, request: Request | Mapping, alloc: Alloc,
                start: float) -> None:
        """Re-attach a job that is already running (e.g. after a restart):
        its resources are claimed from the pool.

        Raises:
            ValueError: if the jobid is known, the request is malformed, or
                the resources are unknown or already allocated.
        """
        if jobid in self._pending or jobid in self.running:
            raise ValueError(f"job {jobid} is already known")
        req = coerce_request(request)
        alloc = {r: {"core": list(v.get("core", ())), "gpu": list(v.get("gpu", ()))}
                 for r, v in alloc.items()}
        self.pool.claim(alloc)
        self.running[jobid] = RunningJob(jobid, req, alloc, start,
                                         start + req.duration if req.duration > 0 else math.inf)

    def release(self, jobid: object, alloc: Mapping[int, Mapping] | None = None,
                now: float = 0.0) -> bool:
        """Free resources of a running job: all of them (``alloc=None``) or
        part of them.  ``now`` is informational.

        Returns:
            True once the job holds nothing more (it is then forgotten).

        Raises:
            ValueError: if the job is not running or ``alloc`` contains
                resources the job does not hold; nothing is freed then.
        """
        rj = self.running.get(jobid)
        if rj is None:
            raise ValueError(f"release: job {jobid} is not running")
        part = rj.alloc if alloc is None else alloc
        left = _subtract(rj.alloc, part, jobid) if alloc is not None else {}
        self.pool.free(part)
        rj.alloc = left
        if not left:
            del self.running[jobid]
            return True
        return False

    # -- scheduling -------------------------------------------------------

    def _reserve(self, req: Request, now: float) -> tuple[float, Alloc | None]:
        """Earliest (time, alloc) at which ``req`` fits if running jobs end
        at their expected ends; (inf, None) if never."""
        ends = sorted((rj.end, i) for i, rj in enumerate(self.running.values())
                      if rj.end != math.inf)
        if not ends:
            return math.inf, None
        jobs = list(self.running.values())
        sim = self.pool.copy()
        k = 0
        while k < len(ends):
            t = ends[k][0]
            while k < len(ends) and ends[k][0] == t:  # all jobs ending at t
                sim.free(jobs[ends[k][1]].alloc)
                k += 1
            alloc = sim.alloc(req)
            if alloc is not None:
                return max(t, now), alloc
        return math.inf, None

    def schedule(self, now: float) -> list[tuple[object, Alloc]]:
        """Start what can start at time ``now``.

        Returns:
            ``[(jobid, alloc)]`` for the jobs started, in start order; they
            move from the queue to :attr:`running`.  :attr:`reservation` is
            set to the blocked head job's reservation when one exists and
            there were jobs behind it to consider for backfill, else None.
        """
        started: list[tuple[object, Alloc]] = []
        self.reservation = None
        pool = self.pool
        queue = [self._pending[jobid] for _, jobid in self._order]
        i = 0
        while i < len(queue):  # FCFS from the front
            alloc = pool.alloc(queue[i].request)
            if alloc is None:
                break
            self._start(queue[i], alloc, now)
            started.append((queue[i].jobid, alloc))
            i += 1
        rest = queue[i + 1:]
        if not self.backfill or not rest:
            return started
        if self.backfill_depth is not None:
            rest = rest[: self.backfill_depth]
        head = queue[i]
        shadow, resv = self._reserve(head.request, now)
        held: Alloc = {}
        if resv is not None:
            self.reservation = Reservation(head.jobid, shadow, resv)
            held = pool.hold(resv)
        # Resources only shrink during a pass: a request shape that did not fit
        # will not fit later in the pass (this keeps a long queue of like jobs linear).
        failed = set()
        try:
            for job in rest:
                if job.request in failed:
                    continue
                alloc = pool.alloc(job.request)
                if alloc is None and held and job.request.duration > 0 \
                        and now + job.request.duration <= shadow:
                    pool.free(held)  # short job: may use reserved resources
                    alloc = pool.alloc(job.request)
                    held = pool.hold(resv)  # type: ignore[arg-type]
                if alloc is not None:
                    self._start(job, alloc, now)
                    started.append((job.jobid, alloc))
                else:
                    failed.add(job.request)
        finally:
            if held:
                pool.free(held)
        return started
