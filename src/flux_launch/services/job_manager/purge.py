"""Purging inactive jobs, as flux-core's job manager does: memory and disk stay
bounded however many jobs an instance runs.

Limits come from the broker attributes ``job-manager.inactive-age-limit`` (a
Flux Standard Duration: jobs inactive for longer are purged) and
``job-manager.inactive-num-limit`` (at most that many inactive jobs are kept).
Unset, nothing is purged automatically. They are read again at each pass, so a
``flux setattr`` takes effect; a bad value set that way is logged once and the
previous limits stay.

A purged job is forgotten by the job manager (job-list no longer shows it) and
its KVS directory ``job.<dothex>`` is unlinked with the directories it leaves
empty: its sqlite rows go, its output's blob files are removed, and a restart
loads only the jobs kept. Jobs are purged oldest-inactive first, at most
``BATCH_MAX`` to a KVS commit, and each batch is announced by the event
``job-purge-inactive {jobs}``.

Topics (methods of the job manager's ``job-manager`` service, ``methods()``):

- ``job-manager.purge {age_limit, num_limit, batch, force}`` -> ``{count}``:
  without ``force`` only counts the jobs that would be purged; ``-1`` for a
  limit means none.
- ``job-manager.purge-id {id, force}`` -> ``{count}``: one inactive job.
- ``job-manager.stats-get`` -> ``{active_jobs, inactive_jobs, max_jobid}``.
"""

import errno
import logging
import time
from collections import OrderedDict

from flux_launch.services.base import ServiceError

log = logging.getLogger("flux_launch.job-manager")

AGE_UNLIMITED = -1.0
NUM_UNLIMITED = -1
BATCH_MAX = 100  # flux-core's purge_batch_max: KVS ops in one commit
PASS_DELAY = 0.1  # seconds from a job's end to the automatic pass that may purge it
WATCHED_RETRY = 1.0  # seconds before a pass tries again the jobs it kept for their watches
AGE_ATTR = "job-manager.inactive-age-limit"
NUM_ATTR = "job-manager.inactive-num-limit"


def parse_limits(attrs):
    """``(age_limit, num_limit)`` from broker attributes (``-1`` where unset).

    Raises:
        ValueError: a value is not a duration or not an integer >= 0 (one line,
            naming the attribute).
    """
    from flux_launch.core import fsd

    age, num = AGE_UNLIMITED, NUM_UNLIMITED
    text = attrs.get(AGE_ATTR)
    if text is not None:
        try:
            age = fsd.parse(text)
        except ValueError:
            raise ValueError(f"{AGE_ATTR}: invalid FSD {text!r} (e.g. 30m, 7d)") from None
    text = attrs.get(NUM_ATTR)
    if text is not None:
        try:
            num = int(text)
        except ValueError:
            num = -2
        if num < 0:
            raise ValueError(f"{NUM_ATTR}: must be an integer >= 0, not {text!r}")
    return age, num


def _eligible(age, age_limit, num, num_limit):
    """flux-core's rule: a job goes if either limit is exceeded."""
    return (age_limit != AGE_UNLIMITED and age > age_limit) or (num_limit != NUM_UNLIMITED and num > num_limit)


class Purge:
    """The inactive jobs of a job manager, oldest first, and their purging."""

    def __init__(self, jm):
        self.jm = jm
        self._order = None  # jobid -> time it became inactive, oldest first; made on first use
        self._raw = None
        self.limits = (AGE_UNLIMITED, NUM_UNLIMITED)
        self._scheduled = False
        self._deferred = False  # a pass kept jobs for their open watches
        self.max_purged = 0  # stats-get's max_jobid survives the purge of that job
        self.purged = {}  # queue name ("": none) -> jobs purged (job-list.job-stats' inactive_purged)
        self._timer = None
        self.kick()  # after a restart: the jobs kept may exceed the limits

    @property
    def order(self):
        # Made once the job manager has rebuilt its jobs from the KVS (it makes this
        # object first, and jobs end during the restart), in order of their end.
        if self._order is None:
            self._order = OrderedDict(
                (job.id, job.t_inactive or 0.0)
                for job in sorted((j for j in self.jm.jobs.values() if j.state == "INACTIVE"),
                                  key=lambda j: (j.t_inactive or 0.0, j.id)))
        return self._order

    def inactive(self, job):
        """``job`` became inactive (called by the job manager)."""
        if self._order is not None:
            self._order[job.id] = job.t_inactive
        self.kick()

    def _limits(self):
        attrs = getattr(self.jm.broker, "attrs", {})
        raw = (attrs.get(AGE_ATTR), attrs.get(NUM_ATTR))
        if raw != self._raw:
            self._raw = raw
            try:
                self.limits = parse_limits(attrs)
            except ValueError as exc:
                log.error("job-manager: %s; keeping the previous purge limits", exc)
        return self.limits

    def kick(self):
        """Run an automatic pass in ``PASS_DELAY`` if limits are set: jobs that end
        meanwhile are purged with it, in a few commits instead of one each (as
        flux-core purges on its heartbeat, not per job)."""
        if not self._scheduled and self._limits() != (AGE_UNLIMITED, NUM_UNLIMITED):
            self._scheduled = True
            self.jm.broker.loop.call_later(PASS_DELAY, self._auto)

    def _auto(self):
        self._scheduled = False
        age_limit, num_limit = self._limits()
        self._deferred = False
        while self._purge(age_limit, num_limit, BATCH_MAX) == BATCH_MAX:
            pass
        if self._deferred and not self._scheduled:  # try the watched jobs again soon
            self._scheduled = True
            self.jm.broker.loop.call_later(WATCHED_RETRY, self._auto)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if age_limit != AGE_UNLIMITED and self.order and age_limit < 1e9:
            oldest = next(iter(self.order.values()))
            delay = max(oldest + age_limit - time.time(), 0.0) + 0.01
            self._timer = self.jm.broker.loop.call_later(delay, self.kick)

    def count(self, age_limit, num_limit):
        """How many jobs a purge with these limits would remove."""
        now = time.time()
        size = len(self.order)
        n = 0
        for t in self.order.values():
            if not _eligible(now - t, age_limit, size - n, num_limit):
                break
            n += 1
        return n

    def _purge(self, age_limit, num_limit, batch):
        from flux_launch.services.job_manager.job import kvs_dir

        now = time.time()
        ids = []
        watched = self._watched()
        for jobid, t in self.order.items():
            if len(ids) >= batch or not _eligible(now - t, age_limit, len(self.order) - len(ids), num_limit):
                break
            if kvs_dir(jobid) in watched:  # a client still reads it (flux run's output): later
                self._deferred = True
                continue
            ids.append(jobid)
        self.remove(ids)
        return len(ids)

    def _watched(self):
        """The KVS directories of jobs that have a watch open under them."""
        return {".".join(key.split(".", 5)[:5]) for _, key in getattr(self.jm.kvs, "watches", ())
                if key.startswith("job.")}

    def remove(self, ids):
        """Forget the inactive jobs ``ids`` and unlink their KVS directories (one commit)."""
        if not ids:
            return
        from flux_launch.services.job_manager.job import kvs_dir

        jm = self.jm
        if getattr(jm.kvs, "closed", False):  # a pass that was due as the instance shut down
            return
        jm.flush()  # their last events go first, so nothing writes below a removed directory
        self.max_purged = max(self.max_purged, *ids)
        for jobid in ids:
            self.order.pop(jobid, None)
            job = jm.jobs.pop(jobid, None)
            queue = (job.queue or "") if job is not None else ""
            self.purged[queue] = self.purged.get(queue, 0) + 1
        jm.kvs.unlink_pruning([kvs_dir(jobid) for jobid in ids], stop="job")
        jm.kvs.store.vacuum()
        jm.broker.publish("job-purge-inactive", {"jobs": ids})
        log.debug("job-manager: purged %d inactive jobs", len(ids))

    # ---- RPC (methods of the job manager's job-manager service) ---------------

    def methods(self):
        """The ``job-manager`` methods served here: ``{method: handler}``."""
        return {"purge": self._purge_rpc, "purge-id": self._purge_id, "stats-get": self._stats_get}

    def _purge_rpc(self, msg, p):
        age_limit = p.get("age_limit", AGE_UNLIMITED)
        num_limit = p.get("num_limit", NUM_UNLIMITED)
        batch = p.get("batch", 50)
        force = p.get("force", False)
        if (not isinstance(age_limit, (int, float)) or isinstance(age_limit, bool) or type(num_limit) is not int
                or type(batch) is not int or type(force) is not bool):
            raise ServiceError(errno.EPROTO, "job-manager.purge: age_limit (a number), num_limit, batch "
                               "(integers) and force (a boolean) are required")
        if age_limit != AGE_UNLIMITED and age_limit < 0:
            raise ServiceError(errno.EINVAL, "if set, age limit must be >= 0")
        if num_limit != NUM_UNLIMITED and num_limit < 0:
            raise ServiceError(errno.EINVAL, "if set, num limit must be >= 0")
        if not 1 <= batch <= BATCH_MAX:
            raise ServiceError(errno.EINVAL, f"batch must be >= 1 and <= {BATCH_MAX}")
        self._owner_only(msg)
        if force:
            count = self._purge(float(age_limit), num_limit, batch)
        else:
            count = self.count(float(age_limit), num_limit)
        self.jm.broker.respond(msg, {"count": count})

    def _purge_id(self, msg, p):
        from flux_launch.core.jobid import JobID
        jobid = p.get("id")
        force = p.get("force", False)
        if type(jobid) is not int or jobid < 0 or type(force) is not bool:
            raise ServiceError(errno.EPROTO, "job-manager.purge-id: id (a job id) and force are required")
        self._owner_only(msg)
        job = self.jm.jobs.get(jobid)
        if job is None:
            raise ServiceError(errno.ENOENT, f"{JobID(jobid)}: id not found")
        if jobid not in self.order:
            raise ServiceError(errno.EINVAL, f"{JobID(jobid)}: cannot purge an active job")
        if force:
            self.remove([jobid])
        self.jm.broker.respond(msg, {"count": 1})

    def _stats_get(self, msg, p):
        jobs = self.jm.jobs
        self.jm.broker.respond(msg, {"active_jobs": len(jobs) - len(self.order), "inactive_jobs": len(self.order),
                                     "max_jobid": max(max(jobs, default=0), self.max_purged)})

    def _owner_only(self, msg):
        if msg.get("rolemask", 1) != 1:
            raise ServiceError(errno.EPERM, "only the instance owner may purge jobs")
