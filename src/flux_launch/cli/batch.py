"""``flux batch [OPTIONS] SCRIPT [ARGS...]`` (or ``--wrap COMMAND...``, or the
script on stdin): submit a job that starts a nested instance on its resources
(one broker per node) whose initial program is the script, and print its id.

Resources are slots: ``-n/--nslots`` (``-N`` alone: one slot per node, the nodes
whole), ``-c/--cores-per-slot``, ``-g/--gpus-per-slot``, ``-N/--nodes``,
``-x/--exclusive``. ``#FLUX:`` directives in the script (RFC 36,
``job/directives.py``) are read first; the command line overrides them (options
that add up, such as ``-o``, ``-S``, ``--env``, add to theirs). Output goes to
``flux-{{id}}.out`` in the submit directory unless ``--output`` says otherwise
(``--output=kvs``: the job's output eventlog). The script travels in the jobspec
(RFC 37 file ``script``) and is written into the job's tmpdir.

``flux alloc`` (``cli/alloc.py``) shares the options and the jobspec.
"""

import os
import sys

from flux_launch.cli import submitbase
from flux_launch.cli.base import handle


class BatchError(ValueError):
    """A one-line reason not to submit; ``code`` is the exit status."""

    def __init__(self, text, code=1):
        super().__init__(text)
        self.code = code


def parser(cmd, description, usage):
    from flux_launch.cli.base import Parser
    from flux_launch.cli.fastparse import REMAINDER

    p = Parser(cmd, description=description, usage=usage)
    p.add_argument("-n", "--nslots", type=int, metavar="N", help="number of slots (default: one per node)")
    p.add_argument("-c", "--cores-per-slot", type=int, default=1, metavar="N", help="cores per slot (default 1)")
    p.add_argument("-g", "--gpus-per-slot", type=int, metavar="N", help="GPUs per slot")
    p.add_argument("-N", "--nodes", type=int, metavar="N", help="number of nodes (whole nodes without -n)")
    p.add_argument("-x", "--exclusive", action="store_true", help="allocate whole nodes")
    p.add_argument("--broker-opts", action="append", default=[], metavar="OPTS",
                   help="options for the nested instance's brokers (comma-separated, e.g. -Sattr=val)")
    p.add_argument("--quiet", action="store_true", help="do not print the job id")
    submitbase.add_common_options(p)
    p.add_argument("command", nargs=REMAINDER, metavar="ARGS")
    return p


_SLOT_COUNTS = (("-n/--nslots", "nslots", 1), ("-c/--cores-per-slot", "cores_per_slot", 1),
                ("-g/--gpus-per-slot", "gpus_per_slot", 0), ("-N/--nodes", "nodes", 1))


def nest_jobspec(args, command=None, script=None, jobname=None):
    """The jobspec of a nested instance (``flux batch`` with ``script``, ``flux
    alloc`` with ``command``) for parsed ``args``.

    Raises:
        BatchError: an option's value, or the script, is not right (one line).
    """
    from flux_launch.job.jobspec import JobspecV1

    for opt, dest, minimum in _SLOT_COUNTS:
        value = getattr(args, dest)
        if value is not None and value < minimum:
            raise BatchError(f"{opt}={value}: must be an integer >= {minimum}")
    nslots, exclusive = args.nslots, args.exclusive
    if nslots is None:
        if args.nodes is None:
            raise BatchError("Number of slots to allocate must be specified (use -n/--nslots or -N/--nodes)")
        nslots, exclusive = args.nodes, True  # -N alone: the nodes whole, as flux-core
    if args.nodes is not None and args.nodes > nslots:
        raise BatchError(f"-N/--nodes={args.nodes}: more nodes than the {nslots} slots of -n "
                         "(every node needs at least one slot)")
    if exclusive and args.nodes is None:
        raise BatchError("-x/--exclusive can only be used with -N/--nodes")
    broker_opts = [opt for value in args.broker_opts for opt in value.split(",") if opt]
    try:
        submitbase.check_common(args)
        if script is not None:
            js = JobspecV1.from_batch_command(script, jobname, args=command, num_slots=nslots,
                                              cores_per_slot=args.cores_per_slot,
                                              gpus_per_slot=args.gpus_per_slot, num_nodes=args.nodes,
                                              broker_opts=broker_opts, exclusive=exclusive)
        else:
            js = JobspecV1.from_nest_command(command, num_slots=nslots, cores_per_slot=args.cores_per_slot,
                                             gpus_per_slot=args.gpus_per_slot, num_nodes=args.nodes,
                                             broker_opts=broker_opts, exclusive=exclusive)
        submitbase.apply_common(js, args)
    except ValueError as exc:
        raise BatchError(str(exc)) from None
    return js


def _read_script(args):
    """``(script text, job name, args for it)`` from the command line or stdin.

    Raises:
        BatchError: the file cannot be read or is not text.
    """
    if args.wrap:
        if args.command:
            text = " ".join(args.command) + "\n"
        else:
            text = sys.stdin.read()
        return "#!/bin/sh\n" + text, args.command[0] if args.command else "wrap", []
    if args.command:
        path = args.command[0]
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise BatchError(f"{path}: {exc.strerror}") from None
        name, rest = path, args.command[1:]
    else:
        if sys.stdin.isatty():
            raise BatchError("no batch script: give SCRIPT, --wrap COMMAND, or the script on stdin", 2)
        raw, name, rest = sys.stdin.buffer.read(), "stdin", []
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BatchError(f"{name} does not appear to be a script, or failed to encode as utf-8") from None
    return text, ("batch" if name == "stdin" else name), rest


def apply_directives(p, text, name, argv):
    """Parse ``argv`` over the script's directives (the command line wins).

    Raises:
        BatchError: a directive cannot be parsed or names an unknown option.
    """
    from flux_launch.job.directives import DirectiveError, parse

    try:
        directives = parse(text)
    except DirectiveError as exc:
        raise BatchError(f"{name}: {exc}") from None
    import argparse

    ns = argparse.Namespace()
    for d in directives:
        try:
            p.parse_args(d.args, namespace=ns)
        except SystemExit:
            raise BatchError(f"argument parsing failed at {name} line {d.lineno}", 2) from None
        if ns.command:
            raise BatchError(f"{name}: line {d.lineno}: unexpected argument {ns.command[0]!r} in a directive "
                             "(directives hold options only)")
    return p.parse_args(argv, namespace=ns)


def submit_nest(cmd, js, args):
    """Submit ``js``; returns the job id (or prints the jobspec with --dry-run and
    returns None)."""
    if args.dry_run:
        print(js.dumps())
        return None
    from flux_launch.job.submit import submit

    flags = submitbase.flags(args)
    return submit(handle(), js, urgency=submitbase.urgency(args), **flags)


def main(cmd, argv):
    p = parser(cmd, "Submit a batch script: a job that runs it in a nested instance.",
               "flux batch [OPTIONS...] SCRIPT [ARGS...]")
    p.add_argument("--wrap", action="store_true", help="wrap ARGS (or stdin) in a /bin/sh script")
    first = p.parse_args(argv)
    try:
        text, name, script_args = _read_script(first)
        args = apply_directives(p, text, name, argv) if not first.wrap else first
        jobname = args.job_name or name
        if not text.startswith("#!"):
            raise BatchError(f"{jobname} does not appear to start with '#!' (a batch script needs a "
                             "shebang line, e.g. #!/bin/sh)")
        js = nest_jobspec(args, command=script_args, script=text, jobname=jobname)
        if args.output is None:
            js.output = js.error = "flux-{{id}}.out"
            js.cwd = args.cwd or os.getcwd()
        jobid = submit_nest(cmd, js, args)
    except BatchError as exc:
        sys.stderr.write(f"flux-{cmd}: {exc}\n")
        return exc.code
    except ValueError as exc:
        sys.stderr.write(f"flux-{cmd}: {exc}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"flux-{cmd}: {exc.strerror or exc}\n")
        return 1
    if jobid is not None and not args.quiet:
        print(jobid)
    return 0
