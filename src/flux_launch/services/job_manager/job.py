"""A job's record in the job manager, and the states and results of RFC 21.

States: NEW, DEPEND, PRIORITY, SCHED, RUN, CLEANUP, INACTIVE. Results (once
inactive): COMPLETED (exit status 0), FAILED, CANCELED (a ``cancel`` exception),
TIMEOUT (a ``timeout`` exception). The record is rebuilt from the job's eventlog
when the instance restarts (``Job.replay``). The states, results, flags and
urgencies are proto/job.py's.
"""

from flux_launch.proto.job import (FLAG_WAITABLE, RESULT_BITS, STATE_BITS, URGENCY_DEFAULT, URGENCY_EXPEDITE,
                                   URGENCY_HOLD, exit_code, waitstatus)

# The wait status of a job (or one of its ranks) that failed without one of its own:
# its shell could not start or was lost, or the instance restarted under it.
FAILED = waitstatus(1)


def kvs_dir(jobid):
    """The job's KVS directory, ``job.0000.0004.b200.0000`` (RFC 19 kvs form)."""
    from flux_launch.core.jobid import encode

    return encode(jobid, "kvs")


def priority_of(urgency):
    """Priority from urgency (the default priority plugin): held 0, expedite max."""
    if urgency == URGENCY_HOLD:
        return 0
    if urgency == URGENCY_EXPEDITE:
        return 4294967295
    return urgency


class Job:
    """One job as the job manager sees it."""

    __slots__ = ("id", "userid", "urgency", "priority", "flags", "state", "jobspec", "summary",
                 "alloc", "R", "t_submit", "t_depend", "t_run", "t_cleanup", "t_inactive", "status",
                 "exception", "result", "name", "waited", "kill_timer", "expiration", "has_started",
                 "exec", "cwd", "queue", "memo", "deps", "deps_done", "bypass", "resource_updated")

    def __init__(self, jobid, userid, urgency=URGENCY_DEFAULT, flags=0, jobspec=None, t_submit=0.0):
        self.id = jobid
        self.userid = userid
        self.urgency = urgency
        self.priority = None
        self.flags = flags
        self.state = "NEW"
        self.jobspec = jobspec
        self.summary = None
        self.alloc = None
        self.R = None
        self.t_submit = t_submit
        self.t_depend = None
        self.t_run = None
        self.t_cleanup = None
        self.t_inactive = None
        self.status = None  # wait status from the finish event
        self.exception = None  # the first severity-0 exception: {type, severity, note, userid}
        self.result = None
        self.memo = None  # job-manager.memo annotations (annotations.user), e.g. a nested instance's uri
        self.name = None
        self.waited = False
        self.kill_timer = None
        self.expiration = 0.0
        self.has_started = False
        self.exec = None
        self.cwd = None
        self.queue = None
        self.deps = {}  # descriptions of the dependencies not yet satisfied (RFC 26), in order
        self.deps_done = set()  # and of those satisfied
        self.bypass = None  # the ResourceSet of an alloc-bypass job's R: it runs there, unscheduled
        self.resource_updated = False  # a resource-update event moved the expiration of its R

    @property
    def waitable(self):
        return bool(self.flags & FLAG_WAITABLE)

    def set_jobspec(self, jobspec, summary):
        self.jobspec = jobspec
        self.summary = summary
        attrs = jobspec.get("attributes", {}).get("system", {})
        name = attrs.get("job", {}).get("name")
        if not name:
            cmd = jobspec["tasks"][0]["command"]
            name = cmd[0].rsplit("/", 1)[-1] if cmd else "?"
        self.name = name
        self.cwd = attrs.get("cwd")
        self.queue = attrs.get("queue")

    def replay(self, ev):
        """Apply one event of the job's eventlog (RFC 21) to the record: a restarted
        instance rebuilds its jobs this way."""
        name, ctx, ts = ev["name"], ev.get("context") or {}, ev["timestamp"]
        if name == "submit":
            self.userid = ctx.get("userid", 0)
            self.urgency = ctx.get("urgency", URGENCY_DEFAULT)
            self.flags = ctx.get("flags", 0)
            self.t_submit = ts
            self.t_depend = ts
            self.state = "DEPEND"
        elif name == "dependency-add":
            self.deps.setdefault(ctx.get("description"))
        elif name == "dependency-remove":
            desc = ctx.get("description")
            self.deps.pop(desc, None)
            self.deps_done.add(desc)
        elif name == "depend":
            self.state = "PRIORITY"
        elif name == "priority":
            self.priority = ctx.get("priority")
            if self.state == "PRIORITY":
                self.state = "SCHED"
        elif name == "urgency":
            self.urgency = ctx.get("urgency", self.urgency)
        elif name == "jobspec-update":
            from flux_launch.proto.jobspec import summary
            from flux_launch.services.job_manager.update import apply_updates

            jobspec = apply_updates(self.jobspec, ctx)
            self.set_jobspec(jobspec, summary(jobspec))
        elif name == "resource-update":
            if "expiration" in ctx:
                self.expiration = ctx["expiration"]
                self.resource_updated = True
        elif name == "alloc":
            self.state = "RUN"
            self.t_run = ts
            self.alloc = {}
        elif name == "start":
            self.has_started = True
        elif name == "finish":
            self.status = ctx.get("status")
            self.state = "CLEANUP"
            self.t_cleanup = ts
        elif name == "exception":
            if ctx.get("severity", 0) == 0 and self.exception is None:
                self.exception = ctx
                if self.state != "INACTIVE" and self.state != "RUN":
                    self.state = "CLEANUP"
                    self.t_cleanup = ts
        elif name == "memo":
            self.apply_memo(ctx)
        elif name == "clean":
            self.state = "INACTIVE"
            self.t_inactive = ts
            self.finish_result()

    def apply_resource_updates(self):
        """After a replay: the R read back from the KVS (as allocated) with the
        expiration of its last ``resource-update`` event."""
        if self.resource_updated and self.R:
            self.R = {**self.R, "execution": {**self.R.get("execution", {}), "expiration": self.expiration}}

    def apply_memo(self, memo):
        """Merge a memo into the annotations (a key set to None is removed)."""
        merged = dict(self.memo or {})
        for key, value in memo.items():
            if value is None:
                merged.pop(key, None)
            else:
                merged[key] = value
        self.memo = merged or None

    def finish_result(self):
        """Decide the result once the job is inactive."""
        exc = self.exception
        if exc is not None:
            self.result = {"cancel": "CANCELED", "timeout": "TIMEOUT"}.get(exc["type"], "FAILED")
        elif self.status is not None and self.status != 0:
            self.result = "FAILED"
        elif self.status is None and not self.has_started:
            self.result = "FAILED"
        else:
            self.result = "COMPLETED"

    @property
    def success(self):
        return self.result == "COMPLETED"

    def returncode(self):
        """Exit code as a shell reports it: the exit status, 128+N for a signal N;
        for a job that never ran, 1 if it had an exception, else 0."""
        if self.status is None:
            return 1 if self.exception else 0
        return exit_code(self.status)

    def info(self):
        """The job-list record (the attributes ``flux jobs`` formats)."""
        s = self.summary or {}
        R = self.R or {}
        ranks = None
        nodelist = None
        if self.alloc:
            from flux_launch.core.idset import encode

            ranks = encode(sorted(int(r) for r in self.alloc))
            nodelist = R.get("execution", {}).get("nodelist")
        exc = self.exception or {}
        d = {
            "id": self.id, "userid": self.userid, "urgency": self.urgency,
            "priority": self.priority if self.priority is not None else 0,
            "t_submit": self.t_submit, "state": STATE_BITS[self.state], "name": self.name,
            "ntasks": s.get("ntasks", 0), "ncores": s.get("nslots", 0) * s.get("cores_per_slot", 1),
            "nnodes": len(self.alloc) if self.alloc else s.get("nnodes", 0),
            "duration": s.get("duration", 0.0), "cwd": self.cwd, "waitable": self.waitable,
        }
        for key in ("t_depend", "t_run", "t_cleanup", "t_inactive"):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        if ranks is not None:
            d["ranks"] = ranks
        if nodelist:
            d["nodelist"] = ",".join(nodelist) if isinstance(nodelist, list) else nodelist
        if self.expiration:
            d["expiration"] = self.expiration
        if self.queue:
            d["queue"] = self.queue
        if self.memo:
            d["annotations"] = {"user": self.memo}
        if self.deps:
            d["dependencies"] = list(self.deps)
        if self.exception is not None:
            d.update(exception_occurred=True, exception_type=exc.get("type"),
                     exception_severity=exc.get("severity"), exception_note=exc.get("note", ""))
        else:
            d["exception_occurred"] = False
        if self.state == "INACTIVE":
            d["result"] = RESULT_BITS.get(self.result, 0)
            d["result_str"] = self.result
            d["success"] = self.success
            if self.status is not None:
                d["waitstatus"] = self.status
            d["returncode"] = self.returncode()
        return d
