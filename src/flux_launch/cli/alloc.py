"""``flux alloc [OPTIONS] [COMMAND...]``: a nested instance on new resources, used
interactively: its initial program (COMMAND, default ``$SHELL``) gets this
terminal's input and output, and the command exits with its exit status when it
ends (and with it the instance). ``--bg``: start the instance with no initial
program, wait until it is up (its URI published), print its job id and return;
``flux proxy JOBID`` enters it, ``flux shutdown``/``flux cancel`` ends it.

Options as ``flux batch`` (``cli/batch.py``). The initial program reads stdin
through the job's input; when this command's stdin is a terminal, it runs on a
pty (``-o pty.interactive``, with this terminal's size) and the terminal runs raw:
an interactive shell prompts, edits lines, and gets Ctrl-C and Ctrl-D.
"""

import sys

from flux_launch.cli.batch import BatchError, nest_jobspec, parser, submit_nest


def main(cmd, argv):
    p = parser(cmd, "Run a nested instance interactively, or COMMAND in one.",
               "flux alloc [OPTIONS...] [COMMAND...]")
    p.add_argument("--bg", action="store_true", help="start the instance in the background, print its id")
    p.add_argument("-v", "--verbose", action="count", default=0, help="say what is being done")
    args = p.parse_args(argv)
    if args.bg and not args.command:
        args.broker_opts.append("-Sbroker.rc2_none=1")
    try:
        js = nest_jobspec(args, command=list(args.command))
        interactive = not args.bg and sys.stdin.isatty()
        if not args.bg:
            # stdin goes to the initial program, under the first broker
            js.setattr_shell_option("input", {"stdin": {"type": "kvs"}})
        if interactive:  # a pty for the first broker, so for its initial program
            import shutil

            cols, rows = shutil.get_terminal_size()
            js.setattr_shell_option("pty", {"interactive": {"winsize": [rows, cols]}})
        if args.job_name is None:
            js.setattr("system.job.name", "flux")  # flux-core's: its command is flux broker ...
        jobid = submit_nest(cmd, js, args)
    except (BatchError, ValueError) as exc:
        sys.stderr.write(f"flux-{cmd}: {exc}\n")
        return getattr(exc, "code", 1)
    except OSError as exc:
        sys.stderr.write(f"flux-{cmd}: {exc.strerror or exc}\n")
        return 1
    if jobid is None:  # --dry-run
        return 0
    if args.verbose:
        sys.stderr.write(f"jobid: {jobid}\n")
    from flux_launch.cli.base import handle

    h = handle()
    if args.bg:
        return _wait_ready(h, jobid, cmd)
    from flux_launch.cli.attach import attach

    return attach(h, jobid, cmd=cmd, stdin="0", pty=interactive)


def _wait_ready(h, jobid, cmd):
    """Wait for the instance's ``uri`` memo (it is up), then print the id."""
    from flux_launch.job.event import event_watch

    for ev in event_watch(h, jobid):
        ctx = ev.get("context") or {}
        if ev["name"] == "memo" and "uri" in ctx:
            print(jobid)
            return 0
        if ev["name"] == "exception" and ctx.get("severity", 0) == 0:
            sys.stderr.write(f"flux-{cmd}: {jobid}: instance startup failed: {ctx.get('note', '')}\n")
            return 1
        if ev["name"] in ("finish", "clean"):
            sys.stderr.write(f"flux-{cmd}: {jobid}: unexpectedly exited\n")
            return 1
    sys.stderr.write(f"flux-{cmd}: {jobid}: unexpectedly exited\n")
    return 1
