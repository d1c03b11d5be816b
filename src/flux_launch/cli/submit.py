"""``flux submit [OPTIONS] COMMAND...``: submit a job and print its id.

``--cc=IDSET`` submits one copy per id (``FLUX_JOB_CC`` set to it, ``{cc}`` in
the command replaced by it); ``--wait`` waits for the jobs and exits with the
highest exit code; ``--watch`` also prints their output.
"""

import sys

from flux_launch.cli import submitbase
from flux_launch.cli.base import handle


def main(cmd, argv):
    p = submitbase.make_parser(cmd, "Submit a job to the queue.")
    p.add_argument("--cc", metavar="IDSET", help="submit a copy of the job for each id")
    p.add_argument("--quiet", action="store_true", help="do not print job ids")
    p.add_argument("--wait", action="store_true", help="wait for the jobs to finish")
    p.add_argument("--watch", action="store_true", help="wait, and print the jobs' output")
    args = p.parse_args(argv)
    if not args.command:
        p.error("a COMMAND is required")
    flags = submitbase.flags(args)
    urgency = submitbase.urgency(args)
    ccs = [None]
    if args.cc:
        from flux_launch.core.idset import IDset

        try:
            ccs = list(IDset(args.cc))
        except ValueError as exc:
            p.error(f"--cc: {exc}")
    env = submitbase.environment(args)
    specs = []
    for cc in ccs:
        command = args.command if cc is None else [a.replace("{cc}", str(cc)) for a in args.command]
        js = submitbase.jobspec(args, command, dict(env, FLUX_JOB_CC=str(cc)) if cc is not None else env)
        specs.append(js)
    if args.dry_run:
        for js in specs:
            print(js.dumps())
        return 0
    from flux_launch.job.submit import submit_async

    h = handle()
    # All submissions go out before any answer is read: one round trip in all.
    futures = [submit_async(h, js, urgency=urgency, **flags) for js in specs]
    jobids = []
    rc = 0
    for fut in futures:
        try:
            jobids.append(fut.get_id())
        except OSError as exc:
            sys.stderr.write(f"flux-{cmd}: {exc.strerror}\n")
            rc = 1
    if not args.quiet:
        sys.stdout.write("".join(f"{j}\n" for j in jobids))
        sys.stdout.flush()
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
