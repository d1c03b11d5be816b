"""``flux job submit [-u N] [-f FLAGS] [--wait] [FILE]``: submit a jobspec read
from FILE (or stdin), YAML or JSON, and print the id of each job.

A Jobspec V1 is one job, as flux-core's ``flux job submit``. A JobSpec Next
Generation document (seed 002: ``tasks``, ``groups``, named ``resources``...;
``job/ng``) is a workflow: it is checked whole (errors name the path, e.g.
``tasks[2].depends_on[0]: no task named "prep"``), submitted whole or not at all,
its local tasks run here in order, its ``watch: true`` tasks' output followed
here. ``--wait``: wait for every job, exit with the highest exit code.
"""

import sys

from flux_launch.cli.base import handle


def _read(args):
    from flux_launch.job.ng.run import base_dir, load

    if args.file and args.file != "-":
        return load(args.file), base_dir(args.file)
    import os
    import tempfile

    data = sys.stdin.buffer.read()
    with tempfile.NamedTemporaryFile(suffix=".yaml") as f:  # one parser, one set of errors
        f.write(data)
        f.flush()
        try:
            return load(f.name), os.getcwd()
        except ValueError as exc:
            raise ValueError(str(exc).replace(f.name, "stdin")) from None


def main(p, args):
    from flux_launch.cli import submitbase
    from flux_launch.job.ng import is_ng

    urgency = submitbase.urgency(args)
    flags = submitbase.flags(args)
    doc, where = _read(args)
    h = handle()
    if not is_ng(doc):
        from flux_launch.job.submit import submit

        jobid = submit(h, doc, urgency=urgency, **flags)
        print(jobid.f58, flush=True)
        if args.wait:
            from flux_launch.job.wait import result

            code = result(h, jobid).returncode
            return code if isinstance(code, int) and code >= 0 else 1
        return 0
    return run_workflow(h, doc, where, urgency, flags.get("waitable", False), args.wait)


def run_workflow(h, doc, where, urgency=16, waitable=False, wait=False):
    """Check, submit and run a NG document; the exit code."""
    from flux_launch.job.ng import plan as ngplan
    from flux_launch.job.ng import run as ngrun

    plan = ngplan.build(doc, base_dir=where)
    import signal

    def ended(signum, _frame):  # SIGTERM/SIGHUP as SIGINT: what is held for us is cancelled, not left held
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, ended)

    def on_id(_unit, jobid):
        print(jobid.f58, flush=True)

    done = ngrun.submit(h, plan, waitable=waitable, on_id=on_id, urgency=urgency)
    watched = [j for u in plan.units if u.watch for j in done.ids.get(id(u), ())]
    watcher = None
    if watched:
        import subprocess

        watcher = subprocess.Popen(["flux", "watch", *(j.f58 for j in watched)])
    code = ngrun.run_locals(h, done)
    if watcher is not None:
        code = max(code, watcher.wait())
    if wait:
        code = max(code, ngrun.wait_all(h, done))
    return code
