"""The job manager's state machine: each job's events and states (RFC 21), and
what moves a job along them: the scheduler, the exec service, exceptions.

A job goes DEPEND -> PRIORITY -> SCHED on submission (``add``; it stays in
DEPEND while a dependency holds it: ``depend.py``), RUN when the
scheduler gives it resources (``_start``: its ``alloc`` event, then exec starts
its shells), and CLEANUP -> INACTIVE when exec reports its end (``finish``) or an
exception ends it before it ran (``raise_exception``). Every state change is an
event appended to the job's eventlog; events posted in the same turn of the loop
go to the KVS in one commit (one sqlite transaction), which keeps a job's life
to a few commits.

Topics:

- ``job-manager.raise {id, type, severity, note}`` (``flux cancel`` raises
  type=cancel), ``job-manager.kill {id, signum}``, ``job-manager.urgency {id,
  urgency}`` -> ``{old_urgency}``, ``job-manager.update {id, updates}`` (``update.py``),
  ``job-manager.wait {id}`` (waitable jobs; ``id``
  0 waits for any) -> ``{id, success, errstr}``, ``job-manager.drain`` (answered
  once no job is active); the purge topics are ``purge.py``'s, the queue's
  (``queue-status``, ``queue-start``, ``idle``...) ``queue.py``'s.
- ``resource.drain|undrain|status|reload`` and ``sched.resource-status``:
  ``resources.py`` (drained ranks get no new jobs).

A restarted instance rebuilds its jobs from their eventlogs; a job that was
running gets an exec exception (its shells belonged to the previous instance),
a pending one is queued again once resources are known.
"""

import errno
import logging
import signal
import time

from flux_launch.core.jobid import JobID
from flux_launch.proto.job import PENDING, URGENCY_EXPEDITE, describe_status, exception_context
from flux_launch.services.base import Service, ServiceError
from flux_launch.services.job_manager.bypass import Bypass, bypass_R
from flux_launch.services.job_manager.depend import Depend, dependencies
from flux_launch.services.job_manager.info import Info
from flux_launch.services.job_manager.ingest import Ingest
from flux_launch.services.job_manager.job import FAILED, Job, kvs_dir, priority_of
from flux_launch.services.job_manager.purge import Purge
from flux_launch.services.job_manager.queue import Queue
from flux_launch.services.job_manager.resources import Resources
from flux_launch.services.job_manager.update import Update
from flux_launch.services.kvs.service import KVSError

log = logging.getLogger("flux_launch.job-manager")


class JobManager:
    """Job services of rank 0 (ingest, manager, list, info, purge) over one KVS.

    Registers ``job-ingest``, ``job-manager``, ``job-info``, ``job-list`` and
    ``sched`` with ``broker``; builds its scheduler once the broker reaches its
    quorum (``on_run``).
    """

    def __init__(self, broker, kvs):
        from flux_launch.core.jobid import FluidGenerator
        from flux_launch.services.exec.job_exec import JobExec

        self.broker = broker
        self.kvs = kvs
        self.jobs = {}
        self.sched = None
        self.pool_ready = False
        self.hostnames = {}
        self.rank_info = {}
        self.waiters = []  # (req, jobid or 0)
        self.drainers = []  # job-manager.drain requests
        self.exec = JobExec(self)
        self._pending_ops = []
        self._flush_scheduled = False
        self._sched_scheduled = False
        self.purge = Purge(self)  # inactive jobs: their limits, purge and stats RPCs
        self.depend = Depend(self)  # jobs held in DEPEND (RFC 26)
        self.bypass = Bypass(self)  # jobs run on the R they name (alloc-bypass), tools' targets
        self.queue = Queue(self)  # enabled/disabled, started/stopped
        self.resources = Resources(self)  # drained ranks, resource.* and sched.resource-status
        epoch, last = self._restore()
        self.fluid = FluidGenerator(0, epoch_ms=epoch, start_timestamp=last)
        Ingest(self)
        Info(self)
        Service(broker, "job-manager", {
            "raise": self._raise, "kill": self._kill, "urgency": self._urgency, "wait": self._wait,
            "drain": self._drain, "memo": self._memo, "disconnect": self._disconnect,
            **self.purge.methods(), **self.bypass.methods(), **self.queue.methods(),
            **Update(self).methods()}).register()
        broker.on_run.append(self._fetch_resources)
        broker.subscribers.append(("overlay.lost", self._ranks_lost))
        broker.subscribers.append(("overlay.online", self._ranks_online))

    # ---- restart --------------------------------------------------------------

    def _restore(self):
        """Rebuild job records from the KVS; returns the FLUID epoch and start."""
        from flux_launch.proto import eventlog
        from flux_launch.proto.jobspec import summary

        try:
            epoch = int(self.kvs.lookup("job-manager.epoch"))
            self._epoch_saved = True
        except KVSError:
            epoch = int(time.time() * 1000)  # saved with the first job
            self._epoch_saved = False
        self._epoch = epoch
        last = None
        stale = []
        leftovers = []
        names = [""]
        for _ in range(4):  # job.XXXX.XXXX.XXXX.XXXX (dothex)
            names = [f"{n}.{c}" if n else c for n in names for c in self.kvs.listdir(f"job.{n}" if n else "job")]
        for name in names:
            path = f"job.{name}"
            try:
                jobid = int(name.replace(".", ""), 16)
                events = eventlog.decode(self.kvs.lookup(f"{path}.eventlog"))
                jobspec = self.kvs.lookup(f"{path}.jobspec")
            except (KVSError, ValueError) as exc:
                if not {"eventlog", "jobspec"} & set(self.kvs.listdir(path)):
                    leftovers.append(path)  # a straggler's write after its job was purged
                    continue
                log.error("job-manager: skipping unreadable job %s: %s", path, exc)
                continue
            job = Job(jobid, 0)
            job.set_jobspec(jobspec, summary(jobspec))
            for ev in events:
                job.replay(ev)
            try:
                job.R = self.kvs.lookup(f"{path}.R")
            except KVSError:
                pass
            job.apply_resource_updates()
            self.jobs[jobid] = job
            ts = (jobid >> 24) + 1
            last = ts if last is None or ts > last else last
            if job.state != "INACTIVE":
                stale.append(job)
        if leftovers:
            log.info("job-manager: removing %d job directories with neither jobspec nor eventlog", len(leftovers))
            self.kvs.unlink_pruning(leftovers, stop="job")
        for job in stale:
            if job.state in ("RUN", "CLEANUP"):
                # Its shells belonged to the previous instance: nothing runs it any more.
                job.alloc = None
                self.post(job, "exception", exception_context("exec", "the instance restarted while the job ran",
                                                              userid=self.broker.owner))
                if job.exception is None:
                    job.exception = exception_context("exec", "instance restarted")
                self.finish(job, FAILED)
            elif job.state != "DEPEND":
                job.state = "SCHED"  # still pending: queued again once resources are known
        # waiting again on what they waited on (targets that ended above included)
        self.depend.restore([j for j in stale if j.state == "DEPEND"])
        now = int(time.time() * 1000) - epoch
        return epoch, max(now, last or 0)

    # ---- posting events -----------------------------------------------------------

    def post(self, job, name, context=None, extra_ops=()):
        """Append an event to the job's eventlog (committed with this turn's others)."""
        from flux_launch.proto.eventlog import encode_event

        line = encode_event(name, context, time.time())
        if name == "start" and self.depend.waiting:
            self.depend.started(job)
        self._pending_ops.extend(extra_ops)
        self._pending_ops.append({"op": "append", "key": f"{kvs_dir(job.id)}.eventlog", "value": line})
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.broker.loop.call_soon(self.flush)

    def stage(self, ops):
        """Add KVS ``ops`` to this turn's commit (with the events posted in it): e.g.
        the exec eventlog's entries that go with ``alloc`` or ``finish``."""
        self._pending_ops.extend(ops)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.broker.loop.call_soon(self.flush)

    def flush(self):
        """Commit the events posted so far (the loop runs it once per turn)."""
        self._flush_scheduled = False
        ops, self._pending_ops = self._pending_ops, []
        if ops:
            self.kvs.commit(ops)

    # ---- submission -----------------------------------------------------------------

    def add(self, userid, jobspec, summary, urgency, flags, bypass=None):
        """A new job, accepted by ingest: its FLUID, its jobspec and ``submit`` event,
        then DEPEND -> PRIORITY -> SCHED, queued unless held (``bypass``: the
        ResourceSet of its alloc-bypass R, run without the scheduler). Returns the Job."""
        now = time.time()
        job = Job(self.fluid.next(), userid, urgency, flags, t_submit=now)
        job.set_jobspec(jobspec, summary)
        job.bypass = bypass
        self.jobs[job.id] = job
        ops = [{"op": "put", "key": f"{kvs_dir(job.id)}.jobspec", "value": jobspec}]
        if not self._epoch_saved:  # FLUIDs of a restarted instance count from the same epoch
            ops.append({"op": "put", "key": "job-manager.epoch", "value": self._epoch})
            self._epoch_saved = True
        self.post(job, "submit", {"userid": job.userid, "urgency": urgency, "flags": flags, "version": 1},
                  extra_ops=ops)
        self.post(job, "validate")
        job.state = "DEPEND"
        job.t_depend = now
        if "dependencies" in jobspec.get("attributes", {}).get("system", {}):
            if not self.depend.add(job, dependencies(job)):
                return job  # held in DEPEND, or rejected
        self.released(job)
        return job

    def released(self, job):
        """DEPEND -> PRIORITY -> SCHED: no dependency holds the job any more; it is
        queued unless held (priority 0) or resources are not known yet."""
        self.post(job, "depend")
        job.state = "PRIORITY"
        job.priority = priority_of(job.urgency)
        self.post(job, "priority", {"priority": job.priority})
        job.state = "SCHED"
        if job.priority > 0:  # priority 0: held
            self.enqueue(job)

    def enqueue(self, job):
        """A job in SCHED with a priority: an alloc-bypass job runs now on its R,
        another goes to the scheduler (once there is one)."""
        if job.bypass is None and bypass_R(job.jobspec) is not None:  # restored from the KVS
            from flux_launch.proto import rv1

            job.bypass = rv1.decode(bypass_R(job.jobspec))
        if job.bypass is not None:
            try:
                self.bypass.start(job)
            except Exception as exc:  # noqa: BLE001 - as a scheduled start's failure
                self._start_failed(job, None, exc)
        elif self.sched is not None:
            self.sched.submit(job.id, job.summary, job.priority, job.t_submit)
            self.schedule()

    # ---- resources and scheduling ---------------------------------------------------

    def _fetch_resources(self):
        """At quorum: ask every rank what it has, then build the pool."""
        info = {}
        size = self.broker.size

        def got(rank):
            def cb(payload, errnum, errstr):
                info[rank] = payload if not errnum else None
                if len(info) == size:
                    self._pool_known(info)
            return cb

        for rank in range(size):
            self.broker.rpc("resource.info", None, rank, got(rank))

    def _pool_known(self, info):
        """Every rank answered ``resource.info`` (``None`` for one that could not):
        the scheduler starts (on a reloaded inventory if there was one), with the
        pending jobs that can ever run."""
        ranks = {r: {"cores": list(range(p["ncores"])), "gpus": list(range(len(p.get("gpus", ())))),
                     "hostname": p["hostname"], "properties": []}
                 for r, p in info.items() if p}
        given = self.broker.parent_R  # a nested instance has its job's cores and GPUs, no more
        if given is not None:
            for r, p in info.items():
                if p and r in given.ranks:
                    ranks[r].update(cores=given.ranks[r]["core"], gpus=given.ranks[r]["gpu"])
                    p["source"] = f"{p.get('source', '?')}, confined to job {self.broker.attrs.get('jobid')}"
        self.rank_info = {r: p for r, p in info.items() if p}
        for r, p in info.items():
            if not p:  # never answered: listed down, with nothing known of it
                ranks[r] = {"cores": [], "gpus": [], "hostname": f"rank{r}", "properties": []}
        self.hostnames = {r: p["hostname"] for r, p in info.items() if p}
        self.install_pool(self.resources.reloaded(ranks))

    def install_pool(self, ranks):
        """A scheduler over ``ranks`` (``Pool``'s form): ranks lost or never heard
        from are down, drained ones drained, and the pending jobs that can ever run
        are queued (the others get an exception)."""
        from flux_launch.services.sched.policy import Scheduler
        from flux_launch.services.sched.pool import Pool

        self.sched = Scheduler(Pool(ranks))
        for r in ranks:
            if r not in self.rank_info or r in self.broker.lost:
                self.sched.pool.set_down(r)
        self.resources.apply(self.sched.pool)
        self.pool_ready = True
        for job in sorted(self.jobs.values(), key=lambda j: j.id):
            if job.state == "SCHED" and job.priority and bypass_R(job.jobspec) is None and self._check_feasible(job):
                self.sched.submit(job.id, job.summary, job.priority, job.t_submit)
        self.schedule()

    def _check_feasible(self, job):
        ok, reason = self.sched.pool.feasible(job.summary)
        if not ok:
            self.raise_exception(job, "alloc", 0, reason)
        return ok

    def schedule(self):
        """Run the scheduler soon (once per turn of the loop)."""
        if not self._sched_scheduled:
            self._sched_scheduled = True
            self.broker.loop.call_soon(self._schedule)

    def _schedule(self):
        self._sched_scheduled = False
        if self.sched is None or not self.queue.start:  # flux queue stop: jobs wait in SCHED
            return
        for jobid, alloc in self.sched.schedule(time.time()):
            job = self.jobs.get(jobid)
            if job is None or job.state != "SCHED":
                self.sched.release(jobid, alloc, time.time())
                continue
            try:
                self._start(job, alloc)
            except Exception as exc:  # noqa: BLE001 - one job's failure must not stop the others
                self._start_failed(job, alloc, exc)

    def _start_failed(self, job, alloc, exc):
        """A job that could not be started: an exec exception on it, its resources
        freed, and scheduling goes on."""
        log.error("job-manager: %s: start failed: %s: %s", JobID(job.id), type(exc).__name__, exc)
        log.debug("job-manager: %s: start failed", JobID(job.id), exc_info=exc)
        note = f"start failed: {type(exc).__name__}: {exc}"
        if job.state == "SCHED":  # failed before the alloc event: the scheduler still holds alloc
            if job.bypass is None:
                self.sched.release(job.id, alloc, time.time())
            self.raise_exception(job, "exec", 0, note)
            self.schedule()
        elif job.state == "RUN":
            self.raise_exception(job, "exec", 0, note)
            if job.state == "RUN" and (job.exec is None or not job.exec.ranks):
                job.exec = None  # no shell was asked to start: nothing will report its end
                self.finish(job, FAILED)

    def _ranks_lost(self, ev):
        """Lost ranks leave scheduling (``down``) until they come back; their jobs fail."""
        ranks = (ev.get("payload") or {}).get("ranks", ())
        if self.sched is not None:
            for rank in ranks:
                if rank in self.sched.pool.ranks:
                    self.sched.pool.set_down(rank)
        self.exec.ranks_lost(ev)

    def _ranks_online(self, ev):
        if self.sched is None:
            return
        for rank in (ev.get("payload") or {}).get("ranks", ()):
            if rank not in self.sched.pool.ranks:
                continue
            if self.hostnames.get(rank):
                self.sched.pool.set_up(rank)
            else:  # a broker that joined after the quorum timeout: learn what it has
                self.broker.rpc("resource.info", None, rank, self._late_rank(rank))
        self.schedule()

    def _late_rank(self, rank):
        def cb(p, errnum, errstr):
            if errnum or not p or rank in self.broker.lost:
                return
            gpus = list(range(len(p.get("gpus", ()))))
            try:
                self.sched.pool.set_resources(rank, list(range(p["ncores"])), gpus, p["hostname"])
            except (ValueError, KeyError, TypeError) as exc:
                log.error("job-manager: rank %d joined late with resources that cannot be used: %s", rank, exc)
                return
            self.rank_info[rank] = p
            self.hostnames[rank] = p["hostname"]
            self.sched.pool.set_up(rank)
            self.schedule()
        return cb

    def _start(self, job, alloc):
        from flux_launch.proto import rv1

        now = time.time()
        duration = job.summary.get("duration") or 0.0
        job.expiration = now + duration if duration else 0.0
        # a nested instance ends with its own job: no job in it outlives that (flux-core's)
        limit = self.broker.parent_R.expiration if self.broker.parent_R is not None else 0.0
        if limit and (not job.expiration or job.expiration > limit):
            job.expiration = max(limit, now)
        nodelist = [self.hostnames.get(int(r), "localhost") for r in sorted(alloc, key=int)]
        job.R = rv1.encode(alloc, nodelist=nodelist, starttime=now, expiration=job.expiration)
        job.alloc = alloc
        job.state = "RUN"
        job.t_run = now
        self.post(job, "alloc", None, extra_ops=[{"op": "put", "key": f"{kvs_dir(job.id)}.R", "value": job.R}])
        self.arm_timer(job)
        self.exec.start(job)

    def arm_timer(self, job):
        """(Re)arm the job's time-limit timer for ``job.expiration`` (none when 0)."""
        if job.kill_timer is not None:
            job.kill_timer.cancel()
            job.kill_timer = None
        if job.expiration:
            job.kill_timer = self.broker.loop.call_later(max(0.0, job.expiration - time.time()), self.expire, job)

    def expire(self, job):
        """A running job's time limit is reached: a timeout exception ends it."""
        job.kill_timer = None
        if job.state == "RUN":
            self.raise_exception(job, "timeout", 0, "resource allocation expired")

    # ---- transitions ------------------------------------------------------------

    def raise_exception(self, job, etype, severity, note, userid=None):
        """Post an exception; one of severity 0 ends the job: a pending one is
        cleaned up at once, a running one's shells are signalled."""
        ctx = exception_context(etype, note, severity, userid or self.broker.owner)
        self.post(job, "exception", ctx)
        if severity != 0:
            return
        if job.exception is None:
            job.exception = ctx
        if job.state in PENDING or job.state == "NEW":
            if job.state == "SCHED" and self.sched is not None:
                self.sched.cancel(job.id)
            self._cleanup(job)
        elif job.state == "RUN":
            # As flux-core: a time limit is SIGALRM (exit 142), other exceptions SIGTERM;
            # SIGKILL follows kill-timeout later either way.
            self.exec.kill(job, int(signal.SIGALRM if etype == "timeout" else signal.SIGTERM), escalate=True)

    def finish(self, job, status):
        """Called by exec when every shell has exited."""
        if job.kill_timer is not None:
            job.kill_timer.cancel()
            job.kill_timer = None
        job.status = status
        self.post(job, "finish", {"status": status})
        self.post(job, "release", {"ranks": "all", "final": True})
        if self.sched is not None and job.alloc and job.bypass is None:  # a bypass job held nothing
            self.sched.release(job.id, job.alloc, time.time())
        self.post(job, "free")
        self._cleanup(job)
        self.schedule()

    def _cleanup(self, job):
        now = time.time()
        job.state = "CLEANUP"
        job.t_cleanup = now
        self.post(job, "clean")
        # once "clean" is committed (the flush runs first), watches of its eventlogs end
        self.broker.loop.call_soon(self.kvs.end_watches, kvs_dir(job.id))
        job.state = "INACTIVE"
        job.t_inactive = now
        self.purge.inactive(job)
        job.finish_result()
        if self.depend.pending:
            self.depend.inactive(job)
        self._notify_waiters(job)
        self.queue.job_done()
        if self.drainers and not self._active():
            for req in self.drainers:
                self.broker.respond(req, {})
            self.drainers = []

    def _active(self):
        return any(j.state != "INACTIVE" for j in self.jobs.values())

    def _notify_waiters(self, job):
        if not job.waitable:
            return
        for entry in list(self.waiters):
            req, want = entry
            if want in (0, job.id) and not job.waited:
                job.waited = True
                self.waiters.remove(entry)
                self._respond_wait(req, job)
                return

    def _respond_wait(self, req, job):
        errstr = ""
        if not job.success:
            exc = job.exception
            if exc:
                errstr = f"job {'canceled' if exc['type'] == 'cancel' else exc['type']}: {exc.get('note', '')}"
            else:
                errstr = describe_status(job.status) if job.status else "failed"
        self.broker.respond(req, {"id": job.id, "success": job.success, "errstr": errstr})

    # ---- RPC ----------------------------------------------------------------------

    def job_of(self, msg, p):
        """The job a request names by ``id``, if the requester may see it.

        Raises:
            ServiceError: EPROTO (no job id), ENOENT (unknown), EPERM (a guest's
                request about another user's job).
        """
        jobid = p.get("id")
        if type(jobid) is not int or jobid < 0:
            raise ServiceError(errno.EPROTO, f"{msg['topic']}: id must be a job id (an integer)")
        job = self.jobs.get(jobid)
        if job is None:
            raise ServiceError(errno.ENOENT, f"{JobID(jobid)}: no such job")
        if msg.get("rolemask", 1) != 1 and job.userid != msg.get("userid"):
            raise ServiceError(errno.EPERM, f"{JobID(job.id)}: permission denied: not your job")
        return job

    def _raise(self, msg, p):
        job = self.job_of(msg, p)
        etype = p.get("type", "cancel")
        severity = p.get("severity", 0)
        note = p.get("note", "")
        if not isinstance(etype, str) or not etype or type(severity) is not int or not isinstance(note, str):
            raise ServiceError(errno.EPROTO, "job-manager.raise: type, severity and note are required")
        if job.state == "INACTIVE":
            raise ServiceError(errno.EINVAL, f"{JobID(job.id)}: job is inactive")
        self.raise_exception(job, etype, severity, note, msg.get("userid"))
        self.broker.respond(msg, {})

    def _kill(self, msg, p):
        job = self.job_of(msg, p)
        signum = p.get("signum", 15)
        if type(signum) is not int or not 0 < signum < 65:
            raise ServiceError(errno.EINVAL, f"invalid signal number {signum!r}")
        if job.state != "RUN":
            raise ServiceError(errno.EINVAL, f"{JobID(job.id)}: job is not running")
        self.exec.kill(job, signum)
        self.broker.respond(msg, {})

    def _urgency(self, msg, p):
        job = self.job_of(msg, p)
        urgency = p.get("urgency")
        if type(urgency) is not int or not 0 <= urgency <= URGENCY_EXPEDITE:
            raise ServiceError(errno.EINVAL, f"urgency must be an integer 0-{URGENCY_EXPEDITE}")
        if job.state not in PENDING:
            raise ServiceError(errno.EINVAL, f"{JobID(job.id)}: urgency can only change while the job is pending")
        old = job.urgency
        job.urgency = urgency
        job.priority = priority_of(urgency)
        self.post(job, "urgency", {"urgency": urgency, "userid": msg.get("userid")})
        if job.state != "DEPEND":  # a job in DEPEND gets its priority once released
            self.post(job, "priority", {"priority": job.priority})
        if job.state == "SCHED":
            if self.sched is not None:
                self.sched.cancel(job.id)
            if job.priority > 0:
                self.enqueue(job)
        self.broker.respond(msg, {"old_urgency": old})

    def _wait(self, msg, p):
        jobid = p.get("id", 0)
        if jobid == 0:
            done = [j for j in self.jobs.values() if j.waitable and not j.waited and j.state == "INACTIVE"]
            if done:
                done[0].waited = True
                self._respond_wait(msg, done[0])
            elif not any(j.waitable and not j.waited for j in self.jobs.values()):
                raise ServiceError(errno.ECHILD, "there are no waitable jobs")
            else:
                self.waiters.append((msg, 0))
            return
        job = self.job_of(msg, p)
        if not job.waitable:
            raise ServiceError(errno.EINVAL, f"{JobID(job.id)}: job was not submitted with --flags=waitable")
        if job.waited:
            raise ServiceError(errno.ECHILD, f"{JobID(job.id)}: job was already waited for")
        if job.state == "INACTIVE":
            job.waited = True
            self._respond_wait(msg, job)
        else:
            self.waiters.append((msg, job.id))

    def _memo(self, msg, p):
        """``job-manager.memo {id, memo}``: the job's owner annotates it (``memo``
        event; a key set to null is removed), e.g. a nested instance's ``uri``."""
        job = self.job_of(msg, p)
        memo = p.get("memo")
        if not isinstance(memo, dict) or not memo:
            raise ServiceError(errno.EPROTO, "job-manager.memo: memo must be a non-empty object")
        if msg.get("userid") != job.userid:
            raise ServiceError(errno.EPERM, f"{JobID(job.id)}: only the job's owner may add a memo")
        if job.state == "INACTIVE":
            raise ServiceError(errno.EINVAL, f"{JobID(job.id)}: job is inactive")
        job.apply_memo(memo)
        self.post(job, "memo", memo)
        self.broker.respond(msg, {})

    def _drain(self, msg, p):
        if self._active():
            self.drainers.append(msg)
        else:
            self.broker.respond(msg, {})

    def _disconnect(self, msg, p):
        """A client went away: its waits and drains are dropped."""
        route = msg.get("route")
        self.waiters = [(r, j) for r, j in self.waiters if r.get("route") != route]
        self.drainers = [r for r in self.drainers if r.get("route") != route]
        self.queue.disconnect(route)
