"""``flux jobs [-a] [-A] [-f STATES] [-n] [-c N] [-o FORMAT] [-R [-L N] [--recurse-all]] [ID...]``:
list jobs (flux-core's flux-jobs).

Formats use Flux's field names and conversions (cli/jobfmt.py): ``{id.f58:>12}``,
``{name:<10.10+}`` (``+``: mark truncation), a trailing ``h`` in a spec prints ``-``
for an empty value, ``!F`` formats seconds as a duration, ``!d`` a time
(``{t_submit!d:%H:%M::>8}``), ``!P`` a percentage, ``?:`` before a field drops the
column when it is empty for every job. Named formats (``-o help`` lists them):
``default``, ``long``, ``deps``, ``endreason``.

``instance.*`` fields (``{instance.stats}``, ``{instance.progress!P:>5}``...) show
what runs inside a job that is itself a running instance: only a format that
names one connects to the instances. ``-R`` lists, after the jobs, the jobs of
each such instance of the user (of any user with ``--recurse-all``) below a line
``PATH:`` (its id, ``ƒA/ƒB`` one level down), ``-L N`` levels deep.
"""

import os
import pwd

from flux_launch.cli.base import Parser, handle
# FILTERS, RESULT_FILTERS: flux watch takes -f/--filter's words from here
from flux_launch.cli.jobfmt import (ACTIVE_BITS, ALL_STATES, FILTERS, RESULT_FILTERS, Format, Job,  # noqa: F401
                                    UnknownField, connect, fetch_instances, order, parse_filter)
from flux_launch.core.jobid import JobID

FORMATS = {
    "default": "{id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} {status_abbrev:>2.2} {ntasks:>6} "
               "{nnodes:>6h} {contextual_time!F:>8h} {contextual_info}",
    "long": "{id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} {status:>9.9} {ntasks:>6} {nnodes:>6h} "
            "{t_submit!d:%b%d %R::>12} {t_remaining!F:>12h} {contextual_time!F:>8h} {contextual_info}",
    "deps": "{id.f58:>12} ?:{queue:<8.8} {name:<10.10+} {urgency:<3} {priority:<12} {state:<8.8} {dependencies}",
    "endreason": "{id.f58:>12} ?:{queue:<8.8} {username:<8.8} {name:<10.10+} {status_abbrev:>2.2} "
                 "{t_inactive!d:%b%d %R::>12h} {inactive_reason}",
}
DESCRIPTIONS = {"default": "Default flux-jobs format string", "long": "Extended flux-jobs format string",
                "deps": "Show job urgency, priority, and dependencies", "endreason": "Show why each job ended"}


def main(cmd, argv):
    p = Parser(cmd, description="List jobs.", usage="flux jobs [OPTIONS] [JOBID...]")
    p.add_argument("-a", action="store_true", help="all jobs of the user, including inactive ones")
    p.add_argument("-A", action="store_true", help="jobs of all users")
    p.add_argument("-u", "--user", help="jobs of this user (name, id or 'all')")
    p.add_argument("-f", "--filter", help="states or results to list, comma-separated")
    p.add_argument("-n", "--no-header", action="store_true", help="print no header")
    p.add_argument("-c", "--count", type=int, default=0, help="list at most N jobs")
    p.add_argument("-o", "--format", default="default",
                   help="a format, or a named one (default, long, deps, endreason; 'help' lists them)")
    p.add_argument("-R", "--recursive", action="store_true", help="list the jobs of nested instances too")
    p.add_argument("-L", "--level", type=int, default=9999, metavar="N", help="with -R, descend at most N levels")
    p.add_argument("--recurse-all", action="store_true",
                   help="with -R, list the jobs of other users' instances too (implies -R)")
    p.add_argument("ids", nargs="*", metavar="ID")
    args = p.parse_args(argv)
    if args.count < 0:
        p.error(f"-c/--count={args.count}: must be >= 0 (0: no limit)")
    if args.level < 0:
        p.error(f"-L/--level={args.level}: must be >= 0")
    args.recursive = args.recursive or args.recurse_all
    if args.filter is not None and not args.filter.strip(","):
        p.error("-f/--filter: empty (use states such as pending,running or results such as failed)")
    if args.format == "help":
        print("\nConfigured flux-jobs output formats:\n")
        for name in FORMATS:
            print(f"  {name:<12} {DESCRIPTIONS[name]}")
        return 0
    if "{" not in args.format and args.format.strip() and args.format not in FORMATS:
        raise ValueError(f"-o/--format: no such format {args.format!r} (use {', '.join(FORMATS)}, or help)")
    fmt = _check_format(FORMATS.get(args.format, args.format))
    query = _query(p, args)
    h = handle()
    if args.ids:
        jobs = [Job(h.rpc("job-list.list-id", {"id": int(JobID(text))}).get()["job"]) for text in args.ids]
        if fmt.need_instance:
            fetch_instances(jobs)
    else:
        jobs = _fetch(h, query, fmt)
    fmt = fmt.filter(jobs)
    lines = [] if args.no_header else [fmt.header().rstrip()]
    _list(jobs, fmt, query, args, lines)
    if lines:
        print("\n".join(lines))
    return 0


def _query(p, args):
    """The ``job-list.list`` payload that -f/-a/-A/-u/-c ask for."""
    if args.filter:
        try:
            states, results = parse_filter(args.filter)
        except ValueError as exc:
            p.error(str(exc))
    else:
        states, results = (ALL_STATES if args.a else ACTIVE_BITS), 0
    userid = os.getuid()
    if args.A or args.user == "all":
        userid = -1
    elif args.user:
        try:
            userid = int(args.user) if args.user.isdigit() else pwd.getpwnam(args.user).pw_uid
        except KeyError:
            raise ValueError(f"-u/--user {args.user}: no such user (give a name, a uid or all)") from None
    return {"states": states, "results": results, "userid": userid, "max_entries": args.count}


def _fetch(h, query, fmt):
    """The jobs ``query`` selects on ``h``, in flux-core's order, with what their
    ``instance.*`` fields need when ``fmt`` names one."""
    infos = h.rpc("job-list.list", query).get()["jobs"]
    infos.sort(key=order)
    jobs = [Job(i) for i in infos]
    if fmt.need_instance:
        fetch_instances(jobs)
    return jobs


def _list(jobs, fmt, query, args, lines, path="", level=0):
    """Add the lines of ``jobs`` and, with -R, the jobs of each instance among them
    (after a blank line and ``PATH:``, as flux-core), down to -L levels."""
    lines.extend(fmt.format(job).rstrip() for job in jobs)
    if not args.recursive or level >= args.level:
        return
    for job in jobs:
        if not job.is_parent or not (args.recurse_all or job.info.get("userid") == os.getuid()):
            continue
        try:  # an instance that does not answer (gone, not ours): listed with no jobs
            with connect(job.uri) as h:
                inner = _fetch(h, query, fmt)
        except OSError:
            inner = []
        here = f"{path}{JobID(job.info['id']).f58}"
        lines.extend(("", f"{here}:"))
        _list(inner, fmt, query, args, lines, here + "/", level + 1)


def _check_format(fmt):
    """The ``Format`` of ``fmt``.

    Raises:
        ValueError: ``-o/--format: ...`` naming an unknown field, or what is wrong
            with a spec or conversion.
    """
    if not fmt.strip():
        raise ValueError("-o/--format: empty format (e.g. '{id} {name}', or default, long, deps)")
    try:
        return Format(fmt)
    except UnknownField as exc:
        raise ValueError(f"-o/--format: unknown field {exc.field!r} (e.g. id, name, status, ntasks, nodelist, "
                         "instance.stats)") from None
    except ValueError as exc:
        raise ValueError(f"-o/--format: {exc}") from None

