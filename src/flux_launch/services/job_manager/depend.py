"""Job dependencies (RFC 26): ``attributes.system.dependencies``, a list of
``{scheme, value}``, holds a job in DEPEND until each is satisfied, as flux-core's
dependency-after plugin does.

Each dependency is a ``dependency-add {description}`` event in the dependent
job's eventlog (``after-success=ƒ2jV4...``: the kind, then the target as given);
a satisfied one is ``dependency-remove`` with the same description. Once none is
left the job gets its ``depend`` event and goes on to PRIORITY. A dependency that
can never be met (an unknown or unparsable target, another user's job, an
``afterok`` target that failed...) is a fatal ``dependency`` exception on the
dependent job, with flux-core's note.

Schemes (the target is a job id in any encoding): ``afterany`` (the target is
inactive), ``afterok`` (it completed with success), ``afternotok`` (it ran and
failed), ``after``/``afterstart``/``afterstarted`` (it started), ``afterexcept``
(it ended with an exception). All but ``afterany`` need the target to have run.

Beyond flux-core: each of those takes ``name=JOBNAME`` for the target: the
latest job of the same user named JOBNAME submitted before the dependent job
(so a restart finds the same one). ``singleton`` holds the job until no job of
the same user and name submitted before it is active (one at a time, in submit
order, as Slurm's). ``begin-time`` (flux-core's) holds it until a timestamp
(the value, seconds since the epoch; description ``begin-time=%.3f``).

A target that is not a job id, does not exist or is another user's job refuses
the submission itself (``precheck``: one clear error, nothing submitted).
A restarted instance replays the events; a job still in DEPEND registers its
remaining dependencies again (``restore``).
"""

import time

from flux_launch.core.jobid import parse as parse_jobid

# scheme -> kind: the kinds are flux-core's descriptions' prefixes
KINDS = {"after": "after-start", "afterstart": "after-start", "afterstarted": "after-start",
         "afterany": "after-finish", "afterok": "after-success", "afternotok": "after-failure",
         "afterexcept": "after-except"}


def _description(scheme, value):
    if scheme == "singleton":
        return "singleton"
    if scheme == "begin-time":
        return f"begin-time={float(value):.3f}"
    return f"{KINDS[scheme]}={value}"


def dependencies(job):
    """The ``(scheme, value, description)`` of the job's jobspec dependencies."""
    deps = (job.jobspec or {}).get("attributes", {}).get("system", {}).get("dependencies") or ()
    return [(d["scheme"], d["value"], _description(d["scheme"], d["value"])) for d in deps]


class Depend:
    """The dependencies of a job manager's jobs: who waits on which target."""

    def __init__(self, jm):
        self.jm = jm
        self.waiting = {}  # target id -> [(job, scheme, value, description)]
        self.singles = {}  # (userid, name) -> [jobs held by singleton], in submit order
        self.timers = {}  # job id -> the begin-time timer's handle

    @property
    def pending(self):
        """Whether a job's end may satisfy (or cancel) a dependency."""
        return bool(self.waiting or self.singles or self.timers)

    def add(self, job, deps):
        """Post ``dependency-add`` for each of ``deps`` (``dependencies(job)``), all
        of them before any is resolved (one met at once must not release the job
        while the others are unknown), then resolve what can be at once. Returns
        whether the caller should release the job now: none was left to wait for
        (when the last one is met here, ``_remove`` has released it already)."""
        left = [d for d in deps if d[2] not in job.deps_done]  # not satisfied before a restart
        for _scheme, _value, desc in left:
            if desc not in job.deps:
                job.deps[desc] = None
                self.jm.post(job, "dependency-add", {"description": desc})
        for scheme, value, desc in left:
            self._check(job, scheme, value, desc)
            if job.state != "DEPEND":  # rejected (an exception ended it), or released
                return False
        return not job.deps

    def precheck(self, userid, jobspec):
        """At submit: a target that does not exist, cannot be a job id, or is
        another user's job refuses the submission (``ServiceError``), so nothing
        is submitted; a dependency that can never be met on a real target is an
        exception on the job later, as flux-core's."""
        import errno

        from flux_launch.services.base import ServiceError

        deps = jobspec.get("attributes", {}).get("system", {}).get("dependencies") or ()
        for d in deps:
            scheme, value = d["scheme"], d["value"]
            if scheme in ("singleton", "begin-time"):
                continue
            if value.startswith("name="):
                name = value[5:]
                if not any(j.name == name and j.userid == userid for j in reversed(self.jm.jobs.values())):
                    raise ServiceError(errno.ENOENT, f"{scheme}: no job of yours is named {name!r}")
                continue
            try:
                target = self.jm.jobs.get(parse_jobid(value))
            except (ValueError, TypeError):
                raise ServiceError(errno.EINVAL, f'{scheme}: "{value}" is not a valid jobid') from None
            if target is None:
                raise ServiceError(errno.ENOENT, f"{scheme}: id {value}: job not found")
            if target.userid != userid:
                raise ServiceError(errno.EPERM, f"{scheme}: Permission denied for job {value}")

    def _reject(self, job, note):
        self.jm.raise_exception(job, "dependency", 0, note)

    def _check(self, job, scheme, value, desc):
        if scheme == "singleton":
            return self._singleton(job, desc)
        if scheme == "begin-time":
            return self._begin_time(job, float(value), desc)
        if value.startswith("name="):
            target = self._named(job, value[5:])
            if target is None:
                return self._reject(job, f"{scheme}: no earlier job of yours is named {value[5:]!r}")
        else:
            try:
                target = self.jm.jobs.get(parse_jobid(value))
            except (ValueError, TypeError):
                return self._reject(job, f'{scheme}: "{value}" is not a valid jobid')
        if target is None or target is job:
            return self._reject(job, f"{scheme}: id {value}: job not found")
        if target.userid != job.userid:
            return self._reject(job, f"{scheme}: Permission denied for job {value}")
        if target.state == "INACTIVE":
            return self._inactive(job, target, scheme, value, desc)
        if KINDS[scheme] == "after-start" and target.has_started:
            return self._remove(job, desc)
        self.waiting.setdefault(target.id, []).append((job, scheme, value, desc))

    def _named(self, job, name):
        """The latest job of ``job``'s user named ``name`` submitted before it."""
        for other in reversed(self.jm.jobs.values()):
            if other.id < job.id and other.name == name and other.userid == job.userid:
                return other
        return None

    def _earlier_active(self, job):
        """Whether a job of the same user and name submitted before ``job`` is active."""
        for other in reversed(self.jm.jobs.values()):
            if (other.id < job.id and other.state != "INACTIVE" and other.name == job.name
                    and other.userid == job.userid):
                return True
        return False

    def _singleton(self, job, desc):
        key = (job.userid, job.name)
        if key not in self.singles and not self._earlier_active(job):
            return self._remove(job, desc)
        self.singles.setdefault(key, []).append(job)

    def _begin_time(self, job, when, desc):
        delay = when - time.time()
        if delay <= 0:
            return self._remove(job, desc)
        self.timers[job.id] = self.jm.broker.loop.call_later(delay, self._begin, job, desc)

    def _begin(self, job, desc):
        self.timers.pop(job.id, None)
        if job.state == "DEPEND" and desc in job.deps:
            self._remove(job, desc)

    def _inactive(self, job, target, scheme, value, desc):
        """The target is inactive: the dependency is met now, or never."""
        kind = KINDS[scheme]
        if kind != "after-finish" and (target.t_run is None or (kind == "after-start" and not target.has_started)):
            return self._reject(job, f"{scheme}: {value} never started")
        if kind == "after-success" and not target.success:
            return self._reject(job, f"{scheme}: job {value} failed or was canceled")
        if kind == "after-failure" and target.success:
            return self._reject(job, f"{scheme}: job {value} succeeded")
        if kind == "after-except" and target.exception is None:
            return self._reject(job, f"{scheme}: job {value}: no exception")
        self._remove(job, desc)

    def _remove(self, job, desc):
        del job.deps[desc]
        job.deps_done.add(desc)
        self.jm.post(job, "dependency-remove", {"description": desc})
        if not job.deps and job.state == "DEPEND":
            self.jm.released(job)

    def started(self, target):
        """The target's ``start`` event: its after-start dependents are satisfied."""
        entries = self.waiting.get(target.id)
        if not entries:
            return
        keep = []
        for entry in entries:
            job, scheme, _value, desc = entry
            if job.state != "DEPEND":
                continue
            if KINDS[scheme] == "after-start":
                self._remove(job, desc)
            else:
                keep.append(entry)
        if keep:
            self.waiting[target.id] = keep
        else:
            del self.waiting[target.id]

    def inactive(self, target):
        """The target is inactive: every dependency on it is decided; the first job
        a singleton held behind it may go on."""
        for job, scheme, value, desc in self.waiting.pop(target.id, ()):
            if job.state == "DEPEND" and desc in job.deps:
                self._inactive(job, target, scheme, value, desc)
        timer = self.timers.pop(target.id, None)
        if timer is not None:
            timer.cancel()
        key = (target.userid, target.name)
        held = self.singles.get(key)
        while held:
            first = held[0]
            if first.state != "DEPEND" or "singleton" not in first.deps:
                held.pop(0)  # ended in DEPEND (canceled), or released
                continue
            if self._earlier_active(first):
                break
            held.pop(0)
            self._remove(first, "singleton")
            break  # the next one waits on this one, now active
        if not held:
            self.singles.pop(key, None)

    def restore(self, jobs):
        """After a restart: the jobs still in DEPEND wait again on what is left."""
        for job in jobs:
            if job.state == "DEPEND" and self.add(job, dependencies(job)):
                self.jm.released(job)
