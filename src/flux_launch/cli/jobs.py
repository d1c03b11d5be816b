"""``flux jobs [OPTIONS] [ID...]``: list jobs (flux-core's flux-jobs).

Formats use Flux's field names and conversions (cli/jobfmt.py): ``{id.f58:>12}``,
``{name:<10.10+}`` (``+``: mark truncation), a trailing ``h`` in a spec prints ``-``
for an empty value, ``!F`` formats seconds as a duration, ``!d`` a time
(``{t_submit!d:%H:%M::>8}``), ``!P`` a percentage, ``?:`` before a field drops the
column when it is empty for every job, ``+:`` widens it to fit its widest value;
a format may start ``sort:KEY,... ``.
Named formats (``-o help`` lists them, ``-o get-config=NAME`` prints one as
configuration): ``default``, ``long``, ``deps``, ``endreason`` and those of
``flux-jobs.{json,toml}`` files (cli/jobsopts.py); ``FLUX_JOBS_FORMAT_DEFAULT``
replaces ``default`` as the one used without ``-o``.

Selection: ``-a``, ``-A``, ``-u``, ``-f`` (states and results), ``--since``,
``--name``, ``-q/--queue``, ``-i/--include`` (jobs allocated these ranks or hosts;
implies ``-A`` unless ``-u`` is given), ``-c`` (default 1000; a cut listing says so
on stderr). ``--sort=[-]KEY,...`` orders by format fields. ``--json`` prints the
jobs as flux-core does (``{"jobs": [...]}``, or the one job asked for by id).
``--stats`` prints ``N running, N completed, N failed, N pending, N inactive
purged`` first; ``--stats-only`` prints only that, and exits 1 when no job is
active (``while flux jobs --stats-only; do sleep 2; done``). ``--color`` colors
lines by result (``auto``: on a terminal).

``instance.*`` fields (``{instance.stats}``, ``{instance.progress!P:>5}``...) show
what runs inside a job that is itself a running instance: only a format that
names one connects to the instances. ``-R`` lists, after the jobs, the jobs of
each such instance of the user (of any user with ``--recurse-all``) below a line
``PATH:`` (its id, ``ƒA/ƒB`` one level down), ``-L N`` levels deep.

Unknown job ids are each named on stderr (``ƒXYZ: no such job``), the others
listed, and the exit status is 1 (flux-core exits 0).
"""

import os
import pwd
import sys

from flux_launch.cli.base import Parser, handle
# FILTERS, RESULT_FILTERS: flux watch takes -f/--filter's words from here
from flux_launch.cli.jobfmt import (ACTIVE_BITS, ALL_STATES, FILTERS, RESULT_FILTERS, Format, Job,  # noqa: F401
                                    UnknownField, connect, fetch_instances, known, order, parse_filter)
from flux_launch.cli.jobsopts import COLOR_RESET, job_stats, line_color
from flux_launch.core.jobid import JobID

FORMATS = {
    "default": "{id.f58:>12} ?:{queue:<8.8} +:{username:<8.8} {name:<10.10+} {status_abbrev:>2.2} {ntasks:>6} "
               "{nnodes:>6h} {contextual_time!F:>8h} {contextual_info}",
    "long": "{id.f58:>12} ?:{queue:<8.8} +:{username:<8.8} {name:<10.10+} {status:>9.9} {ntasks:>6} {nnodes:>6h} "
            "{t_submit!d:%b%d %R::>12} {t_remaining!F:>12h} {contextual_time!F:>8h} {contextual_info}",
    "deps": "{id.f58:>12} ?:{queue:<8.8} {name:<10.10+} {urgency:<3} {priority:<12} {state:<8.8} {dependencies}",
    "endreason": "{id.f58:>12} ?:{queue:<8.8} +:{username:<8.8} {name:<10.10+} {status_abbrev:>2.2} "
                 "{t_inactive!d:%b%d %R::>12h} {inactive_reason}",
}
DESCRIPTIONS = {"default": "Default flux-jobs format string", "long": "Extended flux-jobs format string",
                "deps": "Show job urgency, priority, and dependencies", "endreason": "Show why each job ended"}


def _parser(cmd):
    p = Parser(cmd, description="List jobs.", usage="flux jobs [OPTIONS] [JOBID...]")
    p.add_argument("-a", action="store_true", help="all jobs of the user, including inactive ones")
    p.add_argument("-A", action="store_true", help="jobs of all users")
    p.add_argument("-u", "--user", help="jobs of this user (name, id or 'all')")
    p.add_argument("-f", "--filter", action="append", help="states or results to list, comma-separated")
    p.add_argument("--since", metavar="WHEN", help="jobs active since WHEN (-6h, a timestamp, a date; implies -a "
                   "unless -f is given)")
    p.add_argument("--name", help="jobs of this name only")
    p.add_argument("-q", "--queue", action="append", metavar="QUEUE,...", help="jobs of these queues only")
    p.add_argument("-i", "--include", metavar="HOSTS|RANKS", help="jobs allocated one of these ranks or hosts")
    p.add_argument("-n", "--no-header", "--suppress-header", action="store_true", help="print no header")
    p.add_argument("-c", "--count", type=int, default=1000, help="list at most N jobs (default 1000; 0: all)")
    p.add_argument("-o", "--format", default=os.environ.get("FLUX_JOBS_FORMAT_DEFAULT") or "default",
                   help="a format, or a named one (default, long, deps, endreason; 'help' lists them)")
    p.add_argument("--sort", default="", metavar="KEY,...", help="sort by these fields (-KEY: descending)")
    p.add_argument("--json", action="store_true", help="print the jobs as JSON (the format is ignored)")
    p.add_argument("--color", nargs="?", const="always", default="auto", choices=("never", "always", "auto"),
                   metavar="WHEN", help="color lines by result: never, always, or auto (default)")
    p.add_argument("--stats", action="store_true", help="print job statistics before the header")
    p.add_argument("--stats-only", action="store_true",
                   help="print job statistics only; exit 1 when no job is active")
    p.add_argument("-R", "--recursive", action="store_true", help="list the jobs of nested instances too")
    p.add_argument("-L", "--level", type=int, default=9999, metavar="N", help="with -R, descend at most N levels")
    p.add_argument("--recurse-all", action="store_true",
                   help="with -R, list the jobs of other users' instances too (implies -R)")
    p.add_argument("--threads", type=int, metavar="N", help="accepted for flux-core's sake (queries run in turn)")
    p.add_argument("ids", nargs="*", metavar="ID")
    return p


def main(cmd, argv):
    p = _parser(cmd)
    args = p.parse_args(argv)
    if args.count < 0:
        p.error(f"-c/--count={args.count}: must be >= 0 (0: no limit)")
    if args.level < 0:
        p.error(f"-L/--level={args.level}: must be >= 0")
    if args.json and (args.stats or args.stats_only):
        raise ValueError("--json incompatible with --stats or --stats-only (use one or the other)")
    args.recursive = args.recursive or args.recurse_all
    args.filter = ",".join(args.filter) if args.filter is not None else None
    if args.filter is not None and not args.filter.strip(","):
        p.error("-f/--filter: empty (use states such as pending,running or results such as failed)")
    args.queue = [q for text in args.queue or () for q in text.split(",") if q]
    for text in args.ids:  # a malformed id is a usage error (2), as flux-core's
        try:
            JobID(text)
        except ValueError as exc:
            p.error(str(exc))
    text = _format_string(args.format)
    if text is None:
        return 0
    from flux_launch.cli.jobsopts import sort_keys, split_sort

    keys, text = split_sort(text)
    fmt = _check_format(text)
    args.sort = sort_keys(args.sort or keys, known)
    if args.stats_only:
        stats = job_stats(handle(), args.queue)
        print(stats.line())
        return 0 if stats.active else 1
    query, wanted = _query(p, args)
    _warn(args)
    h = handle()
    if args.stats:
        print(job_stats(h, args.queue).line())
    missing = []
    if args.ids:
        jobs = []
        for text in args.ids:
            try:
                jobs.append(Job(h.rpc("job-list.list-id", {"id": int(JobID(text))}).get()["job"]))
            except FileNotFoundError as exc:
                missing.append(exc.strerror)
        truncated = False
        if fmt.need_instance and not args.json:
            fetch_instances(jobs)
    else:
        jobs, truncated = _fetch(h, query, wanted, fmt, args)
    lister = _Lister(args, query, wanted, fmt)
    lister.run(jobs)
    for text in missing:
        sys.stderr.write(f"flux-jobs: {text}\n")
    if truncated and not args.no_header and not args.json:
        sys.stderr.write(f"warning: output truncated at {args.count} jobs.\n"
                         "Use --count to increase returned results or use filters to alter results.\n")
    return 1 if missing else 0


def _format_string(name):
    """The format ``-o NAME`` asks for (a format string stays as it is); None after
    ``help`` or ``get-config=NAME`` printed what they print.

    Raises:
        ValueError: ``-o/--format: no such format 'X'``, or a configuration file's error.
    """
    if "{" in name:
        return name
    from flux_launch.cli.jobsopts import load_formats

    builtin = {n: {"format": f, "description": DESCRIPTIONS[n]} for n, f in FORMATS.items()}
    formats = load_formats(builtin) if name.strip() else builtin
    if name == "help":
        print("\nConfigured flux-jobs output formats:\n")
        for n, entry in formats.items():
            print(f"  {n:<12} {entry.get('description', '')}".rstrip())
        return None
    if name.startswith("get-config="):
        n = name.partition("=")[2]
        if n not in formats:
            raise ValueError(f"-o/--format: no such format {n!r} (use {', '.join(formats)})")
        print(f"[formats.{n}]")
        if "description" in formats[n]:
            print(f'description = "{formats[n]["description"]}"')
        print(f'format = "{formats[n]["format"]}"')
        return None
    if name.strip() and name not in formats:
        raise ValueError(f"-o/--format: no such format {name!r} (use {', '.join(formats)}, or help)")
    return formats[name]["format"] if name in formats else name


def _query(p, args):
    """The ``job-list.list`` payload that -f/-a/-A/-u ask for, and the predicate
    of --since, --name, -q and -i (None: none given)."""
    from flux_launch.cli.jobsopts import parse_include, parse_since, selector

    since = parse_since(args.since) if args.since else 0.0
    include = parse_include(args.include) if args.include else None
    if args.filter:
        try:
            states, results = parse_filter(args.filter)
        except ValueError as exc:
            p.error(str(exc))
    else:
        states, results = (ALL_STATES if args.a or args.since else ACTIVE_BITS), 0
    userid = os.getuid()
    if args.A or args.user == "all" or (include and not args.user):
        userid = -1
    elif args.user:
        try:
            userid = int(args.user.lstrip("+")) if args.user.lstrip("+").isdigit() else pwd.getpwnam(args.user).pw_uid
        except KeyError:
            raise ValueError(f"-u/--user {args.user}: no such user (give a name, a uid or all)") from None
    wanted = None
    if since or args.name or args.queue or include:
        wanted = selector(since, {args.name} if args.name else None, set(args.queue), include)
    return {"states": states, "results": results, "userid": userid, "max_entries": 0}, wanted


def _warn(args):
    """flux-core's warnings about options that have no effect."""
    if args.ids and not args.recursive and (args.a or args.A or args.filter or args.since or args.user
                                            or args.name or args.queue or args.count != 1000):
        sys.stderr.write("flux-jobs: WARNING: Filtering options ignored with jobid list\n")
    elif args.a and args.filter:
        sys.stderr.write("flux-jobs: WARNING: Both -a and --filter specified, ignoring -a\n")


def _fetch(h, query, wanted, fmt, args):
    """``(jobs, truncated)``: the jobs ``query`` and ``wanted`` select on ``h``, in
    flux-core's order, at most -c of them, with what their ``instance.*`` fields
    need when ``fmt`` names one."""
    infos = h.rpc("job-list.list", query).get()["jobs"]
    infos.sort(key=order)
    if wanted is not None:
        infos = [i for i in infos if wanted(i)]
    truncated = bool(args.count) and len(infos) > args.count
    if truncated:
        infos = infos[:args.count]
    jobs = [Job(i) for i in infos]
    if fmt.need_instance and not args.json:
        fetch_instances(jobs)
    return jobs, truncated


class _Lister:
    """Prints jobs (lines or --json) and, with -R, the jobs of the instances
    among them (after a blank line and ``PATH:``, as flux-core), down to -L levels."""

    def __init__(self, args, query, wanted, fmt):
        from flux_launch.cli.jobsopts import use_color

        self.args, self.query, self.wanted, self.fmt = args, query, wanted, fmt
        self.color = use_color(args.color)

    def run(self, jobs):
        args = self.args
        self._sort(jobs)
        if args.json:
            result = self._json(jobs, 0)
            if args.ids and len(args.ids) == 1:
                if result:
                    print(_dumps(result[0]))
            else:
                print(_dumps({"jobs": result}))
            return
        fmt = self.fmt.filter(jobs, header=not args.no_header)
        if not args.no_header:
            print(fmt.header().rstrip())
        self._lines(jobs, fmt, "", 0)

    def _sort(self, jobs):
        if self.args.sort:
            from flux_launch.cli.jobsopts import sort_jobs

            sort_jobs(jobs, self.args.sort, lambda job, field: self.fmt.value(job, field))

    def _children(self, jobs, level):
        """``[(job, handle or None)]``: the instances of ``jobs`` -R descends into."""
        args = self.args
        if not args.recursive or level >= args.level:
            return []
        return [job for job in jobs
                if job.is_parent and (args.recurse_all or job.info.get("userid") == os.getuid())]

    def _inner(self, job):
        """``(jobs, stats)`` of the instance ``job`` (nothing when it does not answer)."""
        try:  # an instance that does not answer (gone, not ours): listed with no jobs
            with connect(job.uri) as h:
                jobs, _ = _fetch(h, self.query, self.wanted, self.fmt, self.args)
                stats = job_stats(h) if self.args.stats else None
        except (OSError, ValueError):
            return [], None
        self._sort(jobs)
        return jobs, stats

    def _lines(self, jobs, fmt, path, level):
        for job in jobs:
            line = fmt.format(job).rstrip()
            color = line_color(job.info, job.is_parent) if self.color else ""
            print(f"{color}{line}{COLOR_RESET}" if color else line)
        for job in self._children(jobs, level):
            inner, stats = self._inner(job)
            here = f"{path}{JobID(job.info['id']).f58}"
            print(f"\n{here}:")
            if stats is not None:
                print(stats.line(purged=False))
            self._lines(inner, fmt, here + "/", level + 1)

    def _json(self, jobs, level):
        from flux_launch.job.info import JobInfo

        out = [JobInfo(job.info).to_dict() for job in jobs]
        children = {id(job): job for job in self._children(jobs, level)}
        for job, d in zip(jobs, out):
            if id(job) in children:
                d["jobs"] = self._json(self._inner(job)[0], level + 1)
        return out


def _dumps(obj):
    import json

    return json.dumps(obj, ensure_ascii=False)


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
