"""``flux run [OPTIONS] COMMAND...``: submit a job and attach to it (stream its
output, forward stdin and signals), exiting with the job's exit code."""

import sys

from flux_launch.cli import submitbase
from flux_launch.cli.base import handle


def main(cmd, argv):
    p = submitbase.make_parser(cmd, "Run a parallel job interactively.")
    args = p.parse_args(argv)
    if not args.command:
        p.error("a COMMAND is required")
    js = submitbase.jobspec(args)
    flags = submitbase.flags(args)
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

    h = handle()
    jobid = submit(h, js, urgency=args.urgency, **flags)
    if flags.get("debug") or args.setopt and "verbose" in ",".join(args.setopt):
        sys.stderr.write(f"jobid: {jobid}\n")
    return attach(h, jobid, cmd=cmd, label=args.label_io, stdin=ranks)
