"""Submitting a JobSpec NG plan (``plan.py``): whole or not at all, then the
local tasks in order, then (``wait``) the jobs' ends.

1. Every job's jobspec (each resource alternative) is checked by the instance
   (``feasibility.check``: what submit would say); a unit none of whose
   alternatives fits is an error before anything is submitted.
2. The jobs are submitted in dependency order, a task's ``depends_on`` an
   ``afterok`` on each replica of each job it names. Jobs that depend on no other
   job, and jobs that wait for a local task, are submitted held (urgency 0): a
   submission that fails then cancels what was submitted before any of it ran.
3. The held jobs that wait for no local task are released (urgency 16).
4. The local tasks run here, in order, each once the jobs it depends on
   completed with success; a job waiting for a local task is released when its
   local tasks succeeded, else it gets a fatal ``dependency`` exception.
"""

import os
import subprocess
import sys

from flux_launch.job.ng.schema import NGError

URGENCY_HOLD, URGENCY_DEFAULT = 0, 16


class Submitted:
    """What a plan became: ``ids`` per unit (in plan order), local exit codes."""

    def __init__(self, plan):
        self.plan = plan
        self.ids = {}  # id(unit) -> [JobID]
        self.local_status = {}  # id(unit) -> exit code (None: not run)
        self.urgency = URGENCY_DEFAULT  # the jobs' once released

    def jobids(self):
        return [j for u in self.plan.units for j in self.ids.get(id(u), ())]


def _job_deps(unit):
    return [d for d in unit.deps if d.kind in ("job", "group")]


def _local_deps(unit):
    return [d for d in unit.deps if d.kind == "local"]


def _choose(h, plan):
    """Each job unit's first alternative the instance accepts (1.)."""
    futures = [(u, [h.rpc("feasibility.check", {"jobspec": js}) for js in u.alternatives]) for u in plan.jobs()]
    for unit, futs in futures:
        reasons = []
        for js, fut in zip(unit.alternatives, futs):
            try:
                fut.get()
            except OSError as exc:
                reasons.append(exc.strerror or str(exc))
                continue
            unit.chosen = js
            break
        else:
            why = reasons[0] if len(reasons) == 1 else "; ".join(f"choice {k + 1}: {r}" for k, r in enumerate(reasons))
            raise NGError(f"{unit.path}.resources: {why}")


def submit(h, plan, waitable=False, on_id=None, urgency=URGENCY_DEFAULT):
    """Submit the jobs of ``plan`` (1.-3.); returns ``Submitted``. ``on_id(unit,
    jobid)`` is called for each job as it is submitted; ``urgency`` is the jobs'
    once released.

    Raises:
        NGError: a job the instance would refuse (nothing submitted), or a
            submission that failed (what was submitted is canceled).
    """
    from flux_launch.job.submit import submit_async

    _choose(h, plan)
    done = Submitted(plan)
    held = []
    wave_of = {}
    for unit in plan.units:
        if unit.kind in ("job", "group"):
            wave_of[id(unit)] = 1 + max((wave_of[id(d)] for d in _job_deps(unit)), default=-1)
    waves = {}
    for unit in plan.jobs():
        waves.setdefault(wave_of[id(unit)], []).append(unit)
    try:
        for w in sorted(waves):
            pending = []
            for unit in waves[w]:
                js = unit.chosen
                deps = [{"scheme": "afterok", "value": str(j)} for d in _job_deps(unit) for j in done.ids[id(d)]]
                if deps:
                    js = {**js, "attributes": {**js["attributes"], "system": {
                        **js["attributes"]["system"], "dependencies": deps}}}
                hold = not _job_deps(unit) or bool(_local_deps(unit))
                futs = [submit_async(h, js, urgency=URGENCY_HOLD if hold else urgency, waitable=waitable)
                        for _ in range(unit.replicas)]
                pending.append((unit, hold, futs))
            for unit, hold, futs in pending:
                ids = done.ids.setdefault(id(unit), [])
                for fut in futs:
                    ids.append(fut.get_id())
                    if on_id is not None:
                        on_id(unit, ids[-1])
                if hold:
                    held.append(unit)
    except OSError as exc:
        _cancel(h, done.jobids(), f"workflow not submitted: {exc.strerror or exc}")
        raise NGError(f"{unit.path}: the instance refused it: {exc.strerror or exc} (nothing was submitted)") from None
    except BaseException:
        _cancel(h, done.jobids(), "workflow not submitted: interrupted")
        raise
    done.urgency = urgency
    _urgency(h, [j for u in held if not _local_deps(u) for j in done.ids[id(u)]], urgency)
    return done


def _urgency(h, ids, urgency):
    futs = [h.rpc("job-manager.urgency", {"id": int(j), "urgency": urgency}) for j in ids]
    for fut in futs:
        fut.get()


def _cancel(h, ids, note, kind="cancel"):
    futs = [h.rpc("job-manager.raise", {"id": int(j), "type": kind, "severity": 0, "note": note}) for j in ids]
    for fut in futs:
        try:
            fut.get()
        except OSError:
            pass  # already inactive


def run_locals(h, done, out=None):
    """Run the local tasks (4.) in order; returns the highest exit code among them."""
    from flux_launch.job.wait import result

    plan, worst = done.plan, 0
    locals_ = [u for u in plan.units if u.kind == "local"]
    if not locals_:
        return 0
    try:
        for unit in locals_:
            failed = [d for d in unit.deps if d.kind == "local" and done.local_status.get(id(d)) != 0]
            for dep in _job_deps(unit):
                for j in done.ids[id(dep)]:
                    if result(h, j).returncode != 0:
                        failed.append(dep)
            if failed:
                done.local_status[id(unit)] = None
                _msg(out, f"{unit.path}: not run: {failed[0].name or failed[0].path} did not succeed")
                worst = max(worst, 1)
            else:
                done.local_status[id(unit)] = _run_local(unit, out)
                worst = max(worst, done.local_status[id(unit)])
            _release_ready(h, done, unit)
    finally:  # interrupted: nothing stays held for a local task that will never run
        for unit in plan.jobs():
            if any(id(d) not in done.local_status for d in _local_deps(unit)):
                _cancel(h, done.ids.get(id(unit), ()), "local task not run: the submitting command ended",
                        kind="dependency")
    return worst


def _run_local(unit, out):
    try:
        return subprocess.run(unit.command, env=unit.env, cwd=unit.cwd).returncode
    except OSError as exc:
        _msg(out, f"{unit.path}.command: cannot run {unit.command[0]}: {exc.strerror}")
        return 127


def _release_ready(h, done, local):
    """After ``local`` ran: release (or fail) the jobs that waited for it."""
    for unit in done.plan.jobs():
        locs = _local_deps(unit)
        if local not in locs or any(id(d) not in done.local_status for d in locs):
            continue
        bad = next((d for d in locs if done.local_status[id(d)] != 0), None)
        ids = done.ids[id(unit)]
        if bad is None:
            _urgency(h, ids, done.urgency)
        else:
            status = done.local_status[id(bad)]
            why = "was not run" if status is None else f"failed (exit {status})"
            _cancel(h, ids, f"local task {bad.name or bad.path} {why}", kind="dependency")


def wait_all(h, done):
    """Wait for every job; the highest exit code (1 for a job that never ran)."""
    from flux_launch.job.wait import result_async

    futs = [result_async(h, j) for j in done.jobids()]
    worst = 0
    for fut in futs:
        info = fut.get()
        code = info.returncode
        worst = max(worst, code if isinstance(code, int) and code >= 0 else 1)
    return worst


def _msg(out, text):
    (out or sys.stderr).write(f"flux-job: {text}\n")
    (out or sys.stderr).flush()


def load(path):
    """A NG (or V1) document from a YAML or JSON file (``NGError``: one line naming
    the file, and the line for a syntax error)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise NGError(f"{path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NGError(f"{path}: not UTF-8 text") from None
    import yaml  # JSON is YAML too

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
        problem = getattr(exc, "problem", None) or str(exc)
        raise NGError(f"{where}: invalid YAML: {' '.join(str(problem).split())} (check the indentation)") from None
    if not isinstance(doc, dict):
        kind = {list: "a list: put a list of tasks under 'tasks:'", str: "a string",
                type(None): "empty"}.get(type(doc), type(doc).__name__)
        raise NGError(f"{path}: a jobspec must be a mapping (this file is {kind})")
    return doc


def base_dir(path):
    return os.path.dirname(os.path.abspath(path))
