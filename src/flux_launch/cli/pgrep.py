"""``flux pgrep [OPTIONS] EXPRESSION...`` and ``flux pkill [OPTIONS] EXPRESSION...``:
list, or cancel, the jobs whose name matches a pattern and/or whose id falls in a
range (flux-core's flux-pgrep(1)).

EXPRESSION: a regular expression searched in the job name, and/or ``ID1..ID2``
(any job id encoding; ids in that range, both ends included); both must match
when both are given. ``name:PATTERN`` forces a pattern that looks like a range.
Only one pattern may be given.

Selection (from job-list, as ``flux jobs``): the caller's active jobs; ``-a``
(pgrep) adds inactive ones, ``-A`` or ``-u all`` every user's, ``-u USER``
another's, ``-f STATE|RESULT,...`` those states or results, ``--queue Q``, at most
``--max-entries`` jobs searched and ``-c N`` matches kept.

pgrep prints the matches with ``-o FORMAT`` (default ``{id.f58}``, without a
header; named formats ``default``, ``full``, ``long``, ``deps``, and those of the
``flux-jobs`` configuration files; ``FLUX_PGREP_FORMAT_DEFAULT``); ``-n`` drops
the header. pkill cancels them, says ``Canceled N jobs`` on stderr and, with
``--wait``, waits for them to end.

Exit status: 0 when a job matched (pkill: and every cancel succeeded), 1 when
none matched or a cancel failed, 2 for a bad expression or command line.
"""

import os
import re
import sys

from flux_launch.cli.base import Parser, handle
from flux_launch.cli.jobfmt import ACTIVE_BITS, ALL_STATES, Format, Job, UnknownField, order, parse_filter
from flux_launch.core.jobid import JobID

FORMATS = {
    "default": {"description": "Default flux-pgrep format string", "format": "{id.f58}"},
    "full": {"description": "full flux-pgrep format string",
             "format": "{id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} {status_abbrev:>2.2} "
                       "{ntasks:>6} {nnodes:>6h} {contextual_time!F:>8h} {contextual_info}"},
    "long": {"description": "Extended flux-pgrep format string",
             "format": "{id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} {status:>9.9} {ntasks:>6} "
                       "{nnodes:>6h} {t_submit!d:%b%d %R::>12} {t_remaining!F:>12h} {contextual_time!F:>8h} "
                       "{contextual_info}"},
    "deps": {"description": "Show job urgency, priority, and dependencies",
             "format": "{id.f58:>12} ?:{queue:<8.8} {name:<10.10+} {urgency:<3} {priority:<12} {state:<8.8} "
                       "{dependencies}"},
}


class Expression:
    """What EXPRESSION... selects: a name pattern and/or an id range.

    Raises:
        ValueError: more than one pattern, or a pattern that is not a regular
            expression (the message says which).
    """

    def __init__(self, args):
        self.regex = None
        self.ids = None
        for arg in args:
            if ":" not in arg and ".." in arg:
                lo, _, hi = arg.partition("..")
                try:
                    self.ids = (int(JobID(lo)), int(JobID(hi)))
                    continue
                except ValueError:
                    pass  # not two job ids: a pattern
            if self.regex is not None:
                raise ValueError("Only one pattern can be provided")
            if arg.startswith("name:"):
                arg = arg[5:]
            try:
                self.regex = re.compile(arg)
            except re.error as exc:
                raise ValueError(f"{arg}: {exc}") from None

    def match(self, info):
        if self.regex is not None and not self.regex.search(info.get("name") or ""):
            return False
        return self.ids is None or self.ids[0] <= info["id"] <= self.ids[1]


def _parser(cmd):
    pgrep = cmd == "pgrep"
    p = Parser(cmd, description="List jobs matching an expression." if pgrep else "Cancel jobs matching an expression.",
               usage=f"flux {cmd} [OPTIONS] EXPRESSION...")
    if pgrep:
        p.add_argument("-a", action="store_true", help="target jobs in all states")
    p.add_argument("-A", action="store_true", help="target all users")
    p.add_argument("-u", "--user", metavar="USERNAME|UID", help="jobs of this user ('all' for all users)")
    p.add_argument("-f", "--filter", action="append", metavar="STATE|RESULT",
                   help="jobs with these states or results, comma-separated")
    p.add_argument("-q", "--queue", metavar="QUEUE", help="jobs of this queue only")
    p.add_argument("-c", "--count", type=int, default=1000, metavar="N", help="keep the first N matches")
    p.add_argument("--max-entries", type=int, default=1000, metavar="N",
                   help="search at most N jobs (default 1000)")
    if pgrep:
        p.add_argument("-n", "--no-header", action="store_true", help="suppress printing of the header line")
        p.add_argument("-o", "--format", default=os.environ.get("FLUX_PGREP_FORMAT_DEFAULT") or "default",
                       metavar="FORMAT", help="a format string, or a named format ('help' lists them)")
    else:
        p.add_argument("-w", "--wait", action="store_true", help="wait for the jobs to end after cancel")
    p.add_argument("expression", nargs="+", metavar="EXPRESSION", help="job name pattern or id range")
    return p


def main(cmd, argv):
    p = _parser(cmd)
    args = p.parse_args(argv)
    if args.count < 0 or args.max_entries < 0:
        p.error("-c/--count and --max-entries must be >= 0")
    fmt = None
    if cmd == "pgrep":
        text = _format_string(args.format)
        if text is None:
            return 0
        fmt = _format(text)
        if args.format == "default":
            args.no_header = True
    try:
        expr = Expression(args.expression)
    except ValueError as exc:
        sys.stderr.write(f"flux-{cmd}: expression error: {exc}\n")
        return 2
    query = _query(p, args)
    h = handle()
    infos = h.rpc("job-list.list", query).get()["jobs"]
    infos.sort(key=order)
    if args.max_entries:
        infos = infos[:args.max_entries]
    if args.queue:
        infos = [i for i in infos if i.get("queue") == args.queue]
    matched = [i for i in infos if expr.match(i)][:args.count or None]
    if not matched:
        return 1
    if cmd == "pkill":
        return _pkill(h, matched, args.wait)
    jobs = [Job(i) for i in matched]
    fmt = fmt.filter(jobs, header=not args.no_header)
    if not args.no_header:
        print(fmt.header().rstrip())
    for job in jobs:
        print(fmt.format(job).rstrip())
    return 0


def _query(p, args):
    """The ``job-list.list`` payload of -a, -A, -u and -f."""
    states, results = ACTIVE_BITS, 0
    if args.filter:
        try:
            states, results = parse_filter(",".join(args.filter))
        except ValueError as exc:
            p.error(str(exc))
        if getattr(args, "a", False):
            states |= ALL_STATES
    elif getattr(args, "a", False):
        states = ALL_STATES
    userid = os.getuid()
    if args.A or args.user == "all":
        userid = -1
    elif args.user:
        import pwd

        try:
            userid = int(args.user) if args.user.isdigit() else pwd.getpwnam(args.user).pw_uid
        except KeyError:
            raise ValueError(f"-u/--user {args.user}: no such user (give a name, a uid or all)") from None
    return {"states": states, "results": results, "userid": userid, "max_entries": 0}


def _format_string(name):
    """The format ``-o NAME`` asks for, or None after ``help`` listed them.

    Raises:
        ValueError: no such named format, or a configuration file's error.
    """
    if "{" in name:
        return name
    from flux_launch.cli.jobsopts import load_formats

    formats = load_formats(FORMATS)
    if name == "help":
        print("\nConfigured flux-pgrep output formats:\n")
        for n, entry in formats.items():
            print(f"  {n:<12} {entry.get('description', '')}".rstrip())
        return None
    if name not in formats:
        raise ValueError(f"-o/--format: no such format {name!r} (use {', '.join(formats)}, or help)")
    return formats[name]["format"]


def _format(text):
    try:
        return Format(text)
    except UnknownField as exc:
        raise ValueError(f"Error in user format: unknown field {exc.field!r} (e.g. id, name, status)") from None
    except ValueError as exc:
        raise ValueError(f"Error in user format: {exc}") from None


def _pkill(h, infos, wait):
    """Cancel the jobs of ``infos`` (then, with ``wait``, wait for each to end);
    returns the exit status."""
    from flux_launch.job.kill import cancel_async

    futures = [(JobID(i["id"]), cancel_async(h, i["id"])) for i in infos]
    canceled, code = [], 0
    for jobid, fut in futures:
        try:
            fut.get()
            canceled.append(jobid)
        except OSError as exc:
            code = 1
            sys.stderr.write(f"flux-pkill: {jobid.f58}: cancel: {exc.strerror}\n")
    if wait:
        from flux_launch.job.wait import result

        for jobid in canceled:
            result(h, jobid)
    n = len(canceled)
    sys.stderr.write(f"flux-pkill: Canceled {n} job{'' if n == 1 else 's'}\n")
    return code
