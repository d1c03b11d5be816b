"""``flux run [OPTIONS] COMMAND...``: submit a job and attach to it (stream its
output, forward stdin and signals), exiting with the job's exit code.

``--progress [--jps]`` (beyond flux-core's run): the job's state (PD, R, CD, F) as
a bar below its output, or plain lines on stderr when stdout is not a terminal
(``cli/progress.py``, imported only then).

``--colocate=JOBID [--tasks-per-node=K | --per-task]`` (beyond flux-core): run a
tool on the resources of the caller's running job JOBID, beside its tasks, one
per node (K per node, or one per target task), with ``FLUX_TARGET_JOBID`` set;
built on alloc-bypass (``submitbase.colocate``)."""

import os
import sys
import time

T_IMPORTED = time.time()  # for FLUX_LAUNCH_TIMING (bench/)

from flux_launch.cli import submitbase  # noqa: E402 - after T_IMPORTED
from flux_launch.cli.base import handle  # noqa: E402


def main(cmd, argv):
    p = submitbase.make_parser(cmd, "Run a parallel job interactively.")
    p.add_argument("--progress", action="store_true", help="show the job's state as a progress bar")
    p.add_argument("--jps", action="store_true", help="with --progress, show jobs/s instead of the elapsed time")
    p.add_argument("--colocate", metavar="JOBID", help="run on the nodes of this running job of yours, beside it")
    p.add_argument("--per-task", action="store_true", help="with --colocate, one task per task of the target")
    args = p.parse_args(argv)
    if not args.command:
        p.error("a COMMAND is required")
    h = None
    if args.colocate is not None:
        h = handle()
        js = submitbase.colocate(args, h)
    elif args.per_task:
        p.error("--per-task needs --colocate=JOBID")
    else:
        if not args.dry_run and not submitbase.resource_options_given(args):
            h = handle()
            submitbase.whole_instance(args, h)
        js = submitbase.jobspec(args)
    flags = submitbase.flags(args)
    urgency = submitbase.urgency(args)
    ranks = "all"
    if args.input:
        ranks = submitbase.input_ranks(args.input)
    if ranks is not None:  # stdin of flux run goes to these tasks (a file: the shells read it)
        js.setattr_shell_option("input", {"stdin": {"type": "kvs"}})
    if args.dry_run:
        print(js.dumps())
        return 0
    from flux_launch.cli.attach import attach
    from flux_launch.job.submit import submit

    t_built = time.time()
    h = h or handle()
    jobid = submit(h, js, urgency=urgency, **flags)
    t_submitted = time.time()
    if flags.get("debug") or args.setopt and "verbose" in ",".join(args.setopt):
        sys.stderr.write(f"jobid: {jobid}\n")
    if args.progress:
        from flux_launch.cli import progress

        code = progress.attach(h, jobid, cmd, args.label_io, ranks, args.jps)
    else:
        code = attach(h, jobid, cmd=cmd, label=args.label_io, stdin=ranks)
    timing = os.environ.get("FLUX_LAUNCH_TIMING")
    if timing:  # where the front end's time goes, for bench/run.py's cost split
        from flux_launch.proto import fastjson

        with open(timing, "a") as f:
            f.write(fastjson.dumps({"id": int(jobid), "imported": T_IMPORTED, "built": t_built,
                                "submitted": t_submitted, "done": time.time()}) + "\n")
    return code
