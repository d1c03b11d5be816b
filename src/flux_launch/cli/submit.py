"""``flux submit [OPTIONS] COMMAND...``: submit a job and print its id.

``--cc=IDSET`` submits one copy per id (``FLUX_JOB_CC`` set to it, ``{cc}`` in
the command replaced by it; ``--bcc``: without ``FLUX_JOB_CC``); ``--wait`` waits for the jobs and exits with the
highest exit code; ``--watch`` also prints their output. ``--progress`` (as
flux-core's): with ``--wait``/``--watch`` the jobs' states (PD, R, CD, F) as a bar,
without them the submissions answered; ``--jps`` shows jobs/s instead of the
elapsed time (a bar on a terminal, else plain lines on stderr: ``cli/progress.py``).
"""

import sys
import time

from flux_launch.cli import submitbase
from flux_launch.cli.base import handle


def main(cmd, argv):
    p = submitbase.make_parser(cmd, "Submit a job to the queue.")
    add_submit_options(p)
    p.add_argument("--jobspec", metavar="FILE", help="submit FILE (a Jobspec V1 or a JobSpec NG workflow, "
                   "YAML or JSON) instead of a COMMAND")
    args = p.parse_args(argv)
    if args.jobspec and args.command:
        p.error("--jobspec=FILE takes the place of a COMMAND: give one or the other")
    if not args.command and not args.jobspec:
        p.error("a COMMAND is required")
    flags = submitbase.flags(args)  # checked before --dry-run returns, as before any submit
    urgency = submitbase.urgency(args)
    if args.jobspec:
        return _jobspec_file(cmd, args, flags, urgency)
    specs = expand_cc(p, args, args.command)
    if args.dry_run:
        for js in specs:
            print(js.dumps())
        return 0
    return submit_and_report(cmd, specs, args, flags, urgency)


def _jobspec_file(cmd, args, flags, urgency):
    """``--jobspec=FILE``: a V1 jobspec as one job (``--cc``, ``--wait``, ``--watch``
    apply), a NG workflow as ``flux job submit`` does."""
    from flux_launch.job.ng import is_ng
    from flux_launch.job.ng.run import base_dir, load

    doc = load(args.jobspec)
    if is_ng(doc):
        if args.cc or args.bcc or args.dry_run:
            raise ValueError("--jobspec: --cc, --bcc and --dry-run apply to one job, not to a JobSpec NG workflow")
        from flux_launch.cli.jobsubmit import run_workflow

        return run_workflow(handle(), doc, base_dir(args.jobspec), urgency, flags.get("waitable", False),
                            args.wait or args.watch)
    if args.dry_run:
        from flux_launch.proto import fastjson

        print(fastjson.dumps(doc))
        return 0
    return submit_and_report(cmd, [doc], args, flags, urgency)


def add_submit_options(p):
    p.add_argument("--cc", metavar="IDSET", help="submit a copy of the job for each id")
    p.add_argument("--bcc", metavar="IDSET", help="like --cc, without FLUX_JOB_CC in the jobs' environment")
    p.add_argument("--quiet", action="store_true", help="do not print job ids")
    p.add_argument("--wait", action="store_true", help="wait for the jobs to finish")
    p.add_argument("--watch", action="store_true", help="wait, and print the jobs' output")
    p.add_argument("--progress", action="store_true",
                   help="show the jobs' progress (of completion with --wait/--watch, else of submission)")
    p.add_argument("--jps", action="store_true", help="with --progress, show jobs/s instead of the elapsed time")


def expand_cc(p, args, command):
    """The jobspecs of ``command``: one, or one per id of ``--cc``/``--bcc`` with
    ``{cc}`` in its arguments replaced by the id."""
    ccs = [None]
    cc = args.cc or args.bcc
    if args.cc and args.bcc:
        p.error("--cc and --bcc are mutually exclusive")
    if cc:
        from flux_launch.core.idset import IDset

        try:
            ccs = list(IDset(cc))
        except ValueError as exc:
            p.error(f"--{'cc' if args.cc else 'bcc'}: {exc}")
    env = submitbase.environment(args)
    specs = []
    for cc in ccs:
        cmd = command if cc is None else [a.replace("{cc}", str(cc)) for a in command]
        specs.append(submitbase.jobspec(args, cmd, dict(env, FLUX_JOB_CC=str(cc)) if cc is not None and args.cc
                                        else env))
    return specs


def submit_and_report(cmd, specs, args, flags, urgency, out=None):
    """Submit ``specs``, print their ids (unless ``--quiet``; to ``out``, default
    stdout), and with ``--wait``/``--watch`` wait for them; the exit code."""
    from flux_launch.job.submit import submit_async

    h = handle()
    t0 = time.time()
    # All submissions go out before any answer is read: one round trip in all.
    futures = [submit_async(h, js, urgency=urgency, **flags) for js in specs]
    jobids = []
    rc = 0
    progress = None
    if args.progress and not (args.wait or args.watch):
        from flux_launch.cli.progress import Progress

        answered = []  # as a list, for the closure
        progress = Progress(len(futures), lambda: ((("submitted", len(jobids)),), len(answered)), args.jps, t0)
        progress.start()
    for fut in futures:
        try:
            jobids.append(fut.get_id())
        except OSError as exc:
            sys.stderr.write(f"flux-{cmd}: {exc.strerror}\n")
            rc = 1
        if progress is not None:
            answered.append(fut)
            progress.update()
    if progress is not None:
        progress.stop()
    if not args.quiet:
        out = out or sys.stdout
        out.write("".join(f"{j}\n" for j in jobids))
        out.flush()
    if (args.wait or args.watch) and args.progress:
        return max(rc, _wait_progress(h, cmd, jobids, args, t0))
    if args.wait or args.watch:
        from flux_launch.cli.attach import attach
        from flux_launch.job.wait import result

        for jobid in jobids:
            if args.watch:
                rc = max(rc, attach(h, jobid, cmd=cmd, label=args.label_io))
            else:
                info = result(h, jobid)
                rc = max(rc, info.returncode if hasattr(info, "returncode") else 0)
    return rc


def _wait_progress(h, cmd, jobids, args, t0):
    """``--wait``/``--watch`` with ``--progress``: the jobs followed all at once,
    their states shown; the largest exit code."""
    from flux_launch.cli.progress import JobStates, Progress

    progress = Progress(len(jobids), None, args.jps, t0)
    if args.watch:
        from flux_launch.cli.watch import follow

        return follow(h, jobids, args.label_io, progress, cmd)
    states = JobStates(h, jobids, progress.update)
    progress.poll = states.counts
    progress.start(h)
    try:
        return states.run()
    finally:
        progress.stop()
