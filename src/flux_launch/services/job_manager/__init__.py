"""The job manager on rank 0: ingest, states, eventlogs, scheduling and listing.

Topics:

- ``job-ingest.submit {jobspec, urgency?, flags?}`` -> ``{id}``: validate (RFC
  25), check the request can ever fit the instance ("unsatisfiable request: ..."),
  assign a FLUID, write ``job.<dothex>.{jobspec,eventlog}``.
- ``job-manager.raise {id, type, severity, note}`` (``flux cancel`` raises
  type=cancel), ``job-manager.kill {id, signum}``, ``job-manager.urgency {id,
  urgency}``, ``job-manager.wait {id}`` (waitable jobs; ``id`` 0 waits for any).
- ``job-info.lookup {id, keys}``, ``job-info.eventlog-watch {id, path, raw?}``
  (streaming; ``path`` ``eventlog`` or ``guest.output`` ...; with ``raw`` the
  text comes as bytes in a raw attachment, with flow control),
  ``job-info.eventlog-watch-cancel``.
- ``job-list.list {max_entries?, states?, results?, userid?}``, ``job-list.list-id {id}``.

Every state change is an event appended to the job's eventlog (RFC 21). Events
posted in the same turn of the loop go to the KVS in one commit (one sqlite
transaction), which keeps a job's life to a few commits.
"""

import errno
import logging
import signal
import time

from flux_launch.services.job_manager.job import (FLAG_WAITABLE, PENDING, RESULT_BITS, STATE_BITS,
                                                  URGENCY_DEFAULT, URGENCY_EXPEDITE, Job, kvs_dir, priority_of)
from flux_launch.core.jobid import JobID
from flux_launch.services.kvs.service import KVSError

log = logging.getLogger("flux_launch.job-manager")

_SUBMIT_FLAGS = {"waitable": FLAG_WAITABLE, "debug": 1, "novalidate": 8}


class RequestError(Exception):
    def __init__(self, errnum, text):
        super().__init__(text)
        self.errnum = errnum
        self.text = text


class JobManager:
    """Job services of rank 0 (ingest, manager, list, info) over one KVS."""

    def __init__(self, broker, kvs):
        from flux_launch.core.jobid import FluidGenerator
        from flux_launch.services.exec.job_exec import JobExec

        self.broker = broker
        self.kvs = kvs
        self.jobs = {}
        self.sched = None
        self.pool_ready = False
        self.waiters = []  # (req, jobid or 0)
        self.drainers = []  # job-manager.drain requests
        self.exec = JobExec(self)
        self._pending_ops = []
        self._flush_scheduled = False
        self._sched_scheduled = False
        from flux_launch.services.job_manager.purge import Purge

        self.purge = Purge(self)  # inactive jobs: their limits, purge and stats RPCs
        epoch, last = self._restore()
        self.fluid = FluidGenerator(0, epoch_ms=epoch, start_timestamp=last)
        for prefix in ("job-ingest", "job-manager", "job-info", "job-list", "sched"):
            broker.register(prefix, self.handle)
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
                self._replay(job, ev)
            try:
                job.R = self.kvs.lookup(f"{path}.R")
            except KVSError:
                pass
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
                self.post(job, "exception", {"type": "exec", "severity": 0, "userid": self.broker.owner,
                                             "note": "the instance restarted while the job ran"})
                if job.exception is None:
                    job.exception = {"type": "exec", "severity": 0, "note": "instance restarted"}
                self.finish(job, 1 << 8)
            else:
                job.state = "SCHED"  # still pending: queued again once resources are known
        now = int(time.time() * 1000) - epoch
        return epoch, max(now, last or 0)

    def _replay(self, job, ev):
        name, ctx, ts = ev["name"], ev.get("context") or {}, ev["timestamp"]
        if name == "submit":
            job.userid = ctx.get("userid", 0)
            job.urgency = ctx.get("urgency", URGENCY_DEFAULT)
            job.flags = ctx.get("flags", 0)
            job.t_submit = ts
            job.state = "DEPEND"
        elif name == "depend":
            job.t_depend = ts
            job.state = "PRIORITY"
        elif name == "priority":
            job.priority = ctx.get("priority")
            if job.state == "PRIORITY":
                job.state = "SCHED"
        elif name == "urgency":
            job.urgency = ctx.get("urgency", job.urgency)
        elif name == "alloc":
            job.state = "RUN"
            job.t_run = ts
            job.alloc = {}
        elif name == "start":
            job.has_started = True
        elif name == "finish":
            job.status = ctx.get("status")
            job.state = "CLEANUP"
            job.t_cleanup = ts
        elif name == "exception":
            if ctx.get("severity", 0) == 0 and job.exception is None:
                job.exception = ctx
                if job.state != "INACTIVE" and job.state != "RUN":
                    job.state = "CLEANUP"
                    job.t_cleanup = ts
        elif name == "clean":
            job.state = "INACTIVE"
            job.t_inactive = ts
            job.finish_result()

    # ---- posting events -----------------------------------------------------------

    def post(self, job, name, context=None, extra_ops=()):
        """Append an event to the job's eventlog (committed with this turn's others)."""
        from flux_launch.proto.eventlog import encode_event

        line = encode_event(name, context, time.time())
        self._pending_ops.extend(extra_ops)
        self._pending_ops.append({"op": "append", "key": f"{kvs_dir(job.id)}.eventlog", "value": line})
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.broker.loop.call_soon(self.flush)

    def flush(self):
        self._flush_scheduled = False
        ops, self._pending_ops = self._pending_ops, []
        if ops:
            self.kvs.commit(ops)

    # ---- resources and scheduling ---------------------------------------------------

    def _fetch_resources(self):
        """At quorum: ask every rank what it has, then build the pool."""
        from flux_launch.services.sched.policy import Scheduler
        from flux_launch.services.sched.pool import Pool

        info = {}
        size = self.broker.size

        def got(rank):
            def cb(payload, errnum, errstr):
                info[rank] = payload if not errnum else None
                if len(info) == size:
                    ranks = {r: {"cores": list(range(p["ncores"])), "gpus": list(range(len(p.get("gpus", ())))),
                                 "hostname": p["hostname"], "properties": []}
                             for r, p in info.items() if p}
                    self.rank_info = {r: p for r, p in info.items() if p}
                    for r, p in info.items():
                        if not p:  # never answered: listed down, with nothing known of it
                            ranks[r] = {"cores": [], "gpus": [], "hostname": f"rank{r}", "properties": []}
                    self.sched = Scheduler(Pool(ranks))
                    self.hostnames = {r: p["hostname"] for r, p in info.items() if p}
                    for r, p in info.items():
                        if not p or r in self.broker.lost:
                            self.sched.pool.set_down(r)
                    self.pool_ready = True
                    for job in sorted(self.jobs.values(), key=lambda j: j.id):
                        if job.state == "SCHED" and job.priority and self._check_feasible(job):
                            self.sched.submit(job.id, job.summary, job.priority, job.t_submit)
                    self.schedule()
            return cb

        for rank in range(size):
            self.broker.rpc("resource.info", None, rank, got(rank))

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
        if self.sched is None:
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
            self.sched.release(job.id, alloc, time.time())
            self.raise_exception(job, "exec", 0, note)
            self.schedule()
        elif job.state == "RUN":
            self.raise_exception(job, "exec", 0, note)
            if job.state == "RUN" and (job.exec is None or not job.exec.ranks):
                job.exec = None  # no shell was asked to start: nothing will report its end
                self.finish(job, 1 << 8)

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
            if rank in self.sched.pool.ranks and self.hostnames.get(rank):
                self.sched.pool.set_up(rank)
        self.schedule()

    def _start(self, job, alloc):
        from flux_launch.proto import rv1

        now = time.time()
        duration = job.summary.get("duration") or 0.0
        job.expiration = now + duration if duration else 0.0
        nodelist = [self.hostnames.get(int(r), "localhost") for r in sorted(alloc, key=int)]
        job.R = rv1.encode(alloc, nodelist=nodelist, starttime=now, expiration=job.expiration)
        job.alloc = alloc
        job.state = "RUN"
        job.t_run = now
        self.post(job, "alloc", None, extra_ops=[{"op": "put", "key": f"{kvs_dir(job.id)}.R", "value": job.R}])
        if duration:
            job.kill_timer = self.broker.loop.call_later(duration, self._expire, job)
        self.exec.start(job)

    def _expire(self, job):
        job.kill_timer = None
        if job.state == "RUN":
            self.raise_exception(job, "timeout", 0, "resource allocation expired")

    # ---- transitions ------------------------------------------------------------

    def raise_exception(self, job, etype, severity, note, userid=None):
        ctx = {"type": etype, "severity": severity, "note": note, "userid": userid or self.broker.owner}
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
        if self.sched is not None and job.alloc:
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
        self._notify_waiters(job)
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
                errstr = f"exited with exit code {job.returncode()}" if job.status and not job.status & 0x7f \
                    else f"killed by signal {job.status & 0x7f}" if job.status else "failed"
        self.broker.respond(req, {"id": job.id, "success": job.success, "errstr": errstr})

    # ---- RPC ----------------------------------------------------------------------

    def handle(self, msg):
        topic = msg["topic"]
        name = "_rpc_" + topic.replace("-", "_").replace(".", "__")
        fn = getattr(self, name, None) or getattr(self.purge, name, None)
        if fn is None:
            if topic.endswith(".disconnect"):
                self._disconnect(msg)
                return
            self.broker.respond_error(msg, errno.ENOSYS, f"unknown method {topic}")
            return
        p = msg.get("payload")
        try:
            fn(msg, p if isinstance(p, dict) else {})
        except RequestError as exc:
            self.broker.respond_error(msg, exc.errnum, exc.text)
        except KVSError as exc:
            self.broker.respond_error(msg, exc.errnum, exc.text)

    def _job(self, msg, p):
        jobid = p.get("id")
        if type(jobid) is not int or jobid < 0:  # noqa: E721
            raise RequestError(errno.EPROTO, f"{msg['topic']}: id must be a job id (an integer)")
        job = self.jobs.get(jobid)
        if job is None:
            raise RequestError(errno.ENOENT, f"{JobID(jobid)}: no such job")
        if msg.get("rolemask", 1) != 1 and job.userid != msg.get("userid"):
            raise RequestError(errno.EPERM, f"{JobID(job.id)}: permission denied: not your job")
        return job

    def _rpc_job_ingest__submit(self, msg, p):
        from flux_launch.proto.jobspec import JobspecError, summary, validate

        try:
            jobspec = validate(p.get("jobspec"))
            summ = summary(jobspec)
        except JobspecError as exc:
            raise RequestError(errno.EINVAL, str(exc)) from None
        queue = jobspec.get("attributes", {}).get("system", {}).get("queue")
        if queue is not None:  # this instance has only flux-core's anonymous queue
            raise RequestError(errno.EINVAL, f"{queue!r} is not a valid queue (this instance has no named "
                               "queues: submit without -q/--queue)")
        urgency = p.get("urgency", URGENCY_DEFAULT)
        if type(urgency) is not int or not 0 <= urgency <= URGENCY_EXPEDITE:  # noqa: E721
            raise RequestError(errno.EINVAL, f"urgency must be an integer 0-{URGENCY_EXPEDITE}")
        flags = p.get("flags", 0)
        if type(flags) is not int:  # noqa: E721
            raise RequestError(errno.EPROTO, "flags must be an integer")
        if flags & FLAG_WAITABLE and msg.get("rolemask", 1) != 1:
            raise RequestError(errno.EPERM, "only the instance owner may submit waitable jobs")
        if urgency > URGENCY_DEFAULT and msg.get("rolemask", 1) != 1:
            raise RequestError(errno.EPERM, f"only the instance owner may set urgency above {URGENCY_DEFAULT}")
        if self.pool_ready:
            ok, reason = self.sched.pool.feasible(summ)
            if not ok:
                raise RequestError(errno.EOVERFLOW, reason)
        now = time.time()
        job = Job(self.fluid.next(), msg.get("userid", self.broker.owner), urgency, flags, t_submit=now)
        job.set_jobspec(jobspec, summ)
        self.jobs[job.id] = job
        path = kvs_dir(job.id)
        ops = [{"op": "put", "key": f"{path}.jobspec", "value": jobspec}]
        if not self._epoch_saved:  # FLUIDs of a restarted instance count from the same epoch
            ops.append({"op": "put", "key": "job-manager.epoch", "value": self._epoch})
            self._epoch_saved = True
        self.post(job, "submit", {"userid": job.userid, "urgency": urgency, "flags": flags, "version": 1},
                  extra_ops=ops)
        self.broker.respond(msg, {"id": job.id})
        self.post(job, "validate")
        job.state = "DEPEND"
        self.post(job, "depend")
        job.t_depend = now
        job.state = "PRIORITY"
        job.priority = priority_of(urgency)
        self.post(job, "priority", {"priority": job.priority})
        job.state = "SCHED"
        if self.sched is not None and job.priority > 0:  # priority 0: held
            self.sched.submit(job.id, summ, job.priority, now)
            self.schedule()

    def _rpc_job_manager__raise(self, msg, p):
        job = self._job(msg, p)
        etype = p.get("type", "cancel")
        severity = p.get("severity", 0)
        note = p.get("note", "")
        if not isinstance(etype, str) or not etype or type(severity) is not int or not isinstance(note, str):
            raise RequestError(errno.EPROTO, "job-manager.raise: type, severity and note are required")
        if job.state == "INACTIVE":
            raise RequestError(errno.EINVAL, f"{JobID(job.id)}: job is inactive")
        self.raise_exception(job, etype, severity, note, msg.get("userid"))
        self.broker.respond(msg, {})

    def _rpc_job_manager__kill(self, msg, p):
        job = self._job(msg, p)
        signum = p.get("signum", 15)
        if type(signum) is not int or not 0 < signum < 65:  # noqa: E721
            raise RequestError(errno.EINVAL, f"invalid signal number {signum!r}")
        if job.state != "RUN":
            raise RequestError(errno.EINVAL, f"{JobID(job.id)}: job is not running")
        self.exec.kill(job, signum)
        self.broker.respond(msg, {})

    def _rpc_job_manager__urgency(self, msg, p):
        job = self._job(msg, p)
        urgency = p.get("urgency")
        if type(urgency) is not int or not 0 <= urgency <= URGENCY_EXPEDITE:  # noqa: E721
            raise RequestError(errno.EINVAL, f"urgency must be an integer 0-{URGENCY_EXPEDITE}")
        if job.state not in PENDING:
            raise RequestError(errno.EINVAL, f"{JobID(job.id)}: urgency can only change while the job is pending")
        old = job.urgency
        job.urgency = urgency
        job.priority = priority_of(urgency)
        self.post(job, "urgency", {"urgency": urgency, "userid": msg.get("userid")})
        self.post(job, "priority", {"priority": job.priority})
        if job.state == "SCHED" and self.sched is not None:
            self.sched.cancel(job.id)
            if job.priority > 0:
                self.sched.submit(job.id, job.summary, job.priority, job.t_submit)
                self.schedule()
        self.broker.respond(msg, {"old_urgency": old})

    def _rpc_job_manager__wait(self, msg, p):
        jobid = p.get("id", 0)
        if jobid == 0:
            done = [j for j in self.jobs.values() if j.waitable and not j.waited and j.state == "INACTIVE"]
            if done:
                done[0].waited = True
                self._respond_wait(msg, done[0])
            elif not any(j.waitable and not j.waited for j in self.jobs.values()):
                raise RequestError(errno.ECHILD, "there are no waitable jobs")
            else:
                self.waiters.append((msg, 0))
            return
        job = self._job(msg, p)
        if not job.waitable:
            raise RequestError(errno.EINVAL, f"{JobID(job.id)}: job was not submitted with --flags=waitable")
        if job.waited:
            raise RequestError(errno.ECHILD, f"{JobID(job.id)}: job was already waited for")
        if job.state == "INACTIVE":
            job.waited = True
            self._respond_wait(msg, job)
        else:
            self.waiters.append((msg, job.id))

    def _rpc_job_manager__drain(self, msg, p):
        if self._active():
            self.drainers.append(msg)
        else:
            self.broker.respond(msg, {})

    def _rpc_sched__resource_status(self, msg, p):
        if self.sched is None:
            raise RequestError(errno.EAGAIN, "resources are not known yet: the instance is still starting")
        from flux_launch.services.sched.status import resource_status

        sources = {r: p.get("source", "?") for r, p in getattr(self, "rank_info", {}).items()}
        self.broker.respond(msg, resource_status(self.sched.pool, sources))

    def _disconnect(self, msg):
        route = msg.get("route")
        self.waiters = [(r, j) for r, j in self.waiters if r.get("route") != route]
        self.drainers = [r for r in self.drainers if r.get("route") != route]
        self.kvs.handle({**msg, "topic": "kvs.disconnect"})

    def _rpc_job_info__lookup(self, msg, p):
        job = self._job(msg, p)
        keys = p.get("keys", [])
        if not isinstance(keys, list):
            raise RequestError(errno.EPROTO, "job-info.lookup: keys must be a list")
        out = {"id": job.id}
        for key in keys:
            out[key] = self.kvs.lookup(f"{kvs_dir(job.id)}.{key}")
        self.broker.respond(msg, out)

    def _rpc_job_info__eventlog_watch(self, msg, p):
        job = self._job(msg, p)
        path = p.get("path", "eventlog")
        if not isinstance(path, str) or not path:
            raise RequestError(errno.EPROTO, "job-info.eventlog-watch: path must be a string")
        if job.state == "INACTIVE":  # what it has, then the end; its "clean" committed first
            self.flush()
        # The watch is the KVS's own, answered on this request's route.
        self.kvs.handle({**msg, "topic": "kvs.watch",
                         "payload": {"key": f"{kvs_dir(job.id)}.{path}", "append": True, "waitcreate": True,
                                     "raw": p.get("raw") is True, "once": job.state == "INACTIVE"}})

    def _rpc_job_info__eventlog_watch_cancel(self, msg, p):
        self.kvs.handle({**msg, "topic": "kvs.unwatch"})

    def _rpc_job_list__list(self, msg, p):
        states = p.get("states", 0)
        results = p.get("results", 0)
        userid = p.get("userid")
        maxn = p.get("max_entries", 0)
        out = []
        for job in sorted(self.jobs.values(), key=lambda j: (-j.t_submit, -j.id)):
            if states or results:
                st = STATE_BITS[job.state] & states
                rs = job.state == "INACTIVE" and RESULT_BITS.get(job.result, 0) & results
                if not (st or rs):
                    continue
            if userid not in (None, -1) and job.userid != userid:
                continue
            info = job.info()
            out.append(info)
            if maxn and len(out) >= maxn:
                break
        self.broker.respond(msg, {"jobs": out})

    def _rpc_job_list__list_id(self, msg, p):
        self.broker.respond(msg, {"job": self._job(msg, p).info()})
