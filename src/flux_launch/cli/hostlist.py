"""``flux hostlist [OPTIONS] [SOURCES...]``: host lists of the instance, its jobs
or the command line, combined and printed as one RFC 29 hostlist (flux-core's
flux-hostlist(1)).

SOURCES: ``instance`` (the broker attribute ``hostlist``), a job id (the job's
nodes), ``local`` (the job of ``FLUX_JOB_ID`` when set, else ``instance``),
``avail``/``available`` (the instance's hosts less those down or drained),
``stdin``/``-`` (host lists on standard input, one or more per line), or a
literal hostlist. The default is ``stdin`` (``-l``: ``local``).

By default the sources are concatenated; ``-i`` intersects them, ``-m``
subtracts the rest from the first, ``-X`` keeps what is in an odd number of
them. Then ``-x`` removes hosts (or, when none of them is present, the indices of
an idset), ``-S`` sorts, ``-u`` sorts and drops duplicates, ``-L N`` keeps the
first N (``-N``: the last N), ``-n IDS`` the hosts at those indices (``-IDS``:
counted from the end). Output: the hostlist, or ``-e`` the hosts joined by
``-d S`` (``\\n`` for newlines), ``-c`` their count, ``-F HOSTS`` their indices;
``-q`` prints nothing and exits 1 when the result is empty.

Exit status: 0; 1 for a bad source, a job not found, an index out of range, a
host ``-F`` cannot find, or an empty result with ``-q``; 2 for a bad command line.
"""

import os
import sys

from flux_launch.cli.base import Parser, handle
from flux_launch.core.hostlist import Hostlist
from flux_launch.core.idset import IDset

KEYWORDS = ("instance", "local", "avail", "available", "stdin", "-")


class SourceError(ValueError):
    """A source that names no job and is no hostlist, or a job not found."""


def _parser():
    p = Parser("hostlist", description="Combine and print host lists of the instance, its jobs or the command line.",
               usage="flux hostlist [OPTIONS] [SOURCES...]",
               epilog="SOURCES: instance, JOBID, local, avail[able], stdin or -, or a literal hostlist "
                      "(default: stdin; with -l: local)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-e", "--expand", action="store_true", help="expand the hostlist, joined by the delimiter")
    p.add_argument("-d", "--delimiter", default=" ", metavar="S", help="delimiter for --expand (default ' ')")
    out.add_argument("-c", "--count", action="store_true", help="print the number of hosts")
    p.add_argument("-n", "--nth", metavar="[-]IDS", help="the hosts at the indices of idset IDS (-IDS: from the end)")
    p.add_argument("-F", "--find", metavar="HOSTS", help="print the indices of HOSTS in the result")
    p.add_argument("-L", "--limit", type=int, metavar="N", help="at most N hosts (-N: the last N)")
    p.add_argument("-S", "--sort", action="store_true", help="sort the result")
    p.add_argument("-x", "--exclude", metavar="HOSTS|IDS", help="drop these hosts (or indices) from the result")
    p.add_argument("-u", "--union", "--unique", action="store_true", help="unique hosts only (implies --sort)")
    op = p.add_mutually_exclusive_group()
    op.add_argument("-i", "--intersect", action="store_true", help="the intersection of all hostlists")
    op.add_argument("-m", "--minus", action="store_true", help="subtract all hostlists from the first")
    op.add_argument("-X", "--xor", action="store_true", help="the symmetric difference of all hostlists")
    p.add_argument("-f", "--fallback", action="store_true",
                   help="a job id that is not found is taken as a host name (hosts like f1, foo1)")
    p.add_argument("-l", "--local", action="store_true", help="the default source is 'local' instead of 'stdin'")
    p.add_argument("-q", "--quiet", action="store_true", help="no output; exit 1 if the result is empty")
    p.add_argument("sources", nargs="*", metavar="SOURCES", help="where the hosts come from")
    return p


def main(cmd, argv):
    p = _parser()
    args = p.parse_args(argv)
    for opt, text in (("-x/--exclude", args.exclude), ("-F/--find", args.find)):
        if text is not None:
            try:
                Hostlist(text)
            except ValueError as exc:
                p.error(f"{opt}: {exc}")
    sources = args.sources or ["local" if args.local else "stdin"]
    try:
        lists = Resolver(args.fallback).resolve(sources)
        hosts = _combine(lists, args)
        hosts = _select(hosts, args)
        return _output(hosts, args)
    except (SourceError, IndexError) as exc:
        sys.stderr.write(f"flux-hostlist: {exc}\n")
        return 1


class Resolver:
    """Turns SOURCES into lists of host names, asking the instance only what they need:
    every job's nodes are requested before any answer is awaited."""

    def __init__(self, fallback=False):
        self.fallback = fallback
        self._h = None
        self._local = ()  # _local_job's answer, once asked

    @property
    def h(self):
        if self._h is None:
            self._h = handle()
        return self._h

    def resolve(self, sources):
        pending = [self._start(arg) for arg in sources]
        return [get() for get in pending]

    def _start(self, arg):
        """A function that returns the hosts of ``arg`` (its RPC, if any, already sent)."""
        if arg in ("stdin", "-"):
            hosts = _stdin()
            return lambda: hosts
        if arg == "instance":
            return self._instance()
        if arg == "local":
            jobid = self._local_job()
            return self._job(jobid, jobid) if jobid else self._instance()
        if arg in ("avail", "available"):
            return self._avail()
        from flux_launch.core.jobid import JobID

        try:
            jobid = JobID(arg)
        except ValueError:
            try:
                hosts = list(Hostlist(arg))
            except ValueError:
                raise SourceError(f"invalid jobid or hostlist {arg!r} (give instance, local, avail, stdin, "
                                  "a job id or hosts like node[0-3])") from None
            return lambda: hosts
        return self._job(jobid, arg)

    def _local_job(self):
        """FLUX_JOB_ID when it names a job of this instance; None in a batch or alloc
        instance's own script (there FLUX_JOB_ID is the job the instance runs as, in
        its parent: its hosts are this instance's). Asked once."""
        if self._local == ():
            self._local = self._ask_local_job()
        return self._local

    def _ask_local_job(self):
        jobid = os.environ.get("FLUX_JOB_ID")
        if not jobid:
            return None
        try:
            own = self.h.rpc("attr.get", {"name": "jobid"}).get()["value"]
        except OSError:
            return jobid
        from flux_launch.core.jobid import JobID

        try:
            return None if JobID(own) == JobID(jobid) else jobid
        except ValueError:
            return jobid

    def _attr_hostlist(self):
        return self.h.rpc("attr.get", {"name": "hostlist"})

    def _instance(self):
        fut = self._attr_hostlist()
        return lambda: list(Hostlist(fut.get()["value"]))

    def _job(self, jobid, arg):
        from flux_launch.core.jobid import JobID

        fut = self.h.rpc("job-list.list-id", {"id": int(JobID(jobid))})

        def get():
            try:
                nodelist = fut.get()["job"].get("nodelist") or ""
            except FileNotFoundError:
                if self.fallback:
                    try:
                        return list(Hostlist(arg))
                    except ValueError:
                        pass
                raise SourceError(f"job {arg} not found (with -f/--fallback, a job id not found is a host name)"
                                  ) from None
            except OSError as exc:
                raise SourceError(f"job {arg}: {exc.strerror or exc}") from None
            return list(Hostlist(nodelist))
        return get

    def _avail(self):
        attr = self._attr_hostlist()
        status = self.h.rpc("sched.resource-status", {}, nodeid=0)
        local = self._start("local") if self._local_job() else None

        def get():
            every = list(Hostlist(attr.get()["value"]))
            ok = {n["rank"] for n in status.get()["nodes"] if n.get("up") and not n.get("drained")}
            hosts = [h for r, h in enumerate(every) if r in ok]
            if local is not None:  # in a job: its hosts that are available
                mine = set(local())
                hosts = [h for h in hosts if h in mine]
            return hosts
        return get


def _stdin():
    import select

    timeout = float(os.environ.get("FLUX_HOSTLIST_STDIN_TIMEOUT", "15"))
    if sys.stdin is None:
        raise SourceError("stdin is closed (give SOURCES, or -l for this job's hosts)")
    if not select.select([sys.stdin], [], [], timeout)[0]:
        raise SourceError(f"timeout after {timeout:g}s waiting for stdin (give SOURCES, or -l for this job's hosts)")
    hosts = []
    for n, line in enumerate(sys.stdin, 1):
        try:
            hosts += Hostlist(line.strip())
        except ValueError as exc:
            raise SourceError(f"stdin line {n}: {exc}") from None
    return hosts


def _uniq_sorted(hosts):
    hl = Hostlist(hosts)
    hl.uniq()
    return list(hl)


def _combine(lists, args):
    if args.intersect:
        result = lists[0]
        for other in lists[1:]:
            keep = set(other)
            result = [h for h in result if h in keep]
        return _uniq_sorted(result)
    if args.minus:
        result = lists[0]
        for other in lists[1:]:
            drop = set(other)
            result = [h for h in result if h not in drop]
        return result
    if args.xor:
        result = lists[0]
        for other in lists[1:]:
            a, b = set(result), set(other)
            result = _uniq_sorted([h for h in result if h not in b] + [h for h in other if h not in a])
        return result
    return [h for hosts in lists for h in hosts]


def _select(hosts, args):
    if args.exclude is not None:
        drop = set(Hostlist(args.exclude))
        kept = [h for h in hosts if h not in drop]
        if len(kept) == len(hosts):  # no such host: indices, if it is an idset
            try:
                ids = set(IDset(args.exclude))
                kept = [h for i, h in enumerate(hosts) if i not in ids]
            except ValueError:
                pass
        hosts = kept
    if args.sort or args.union:
        hl = Hostlist(hosts)
        hl.uniq() if args.union else hl.sort()
        hosts = list(hl)
    if args.limit:
        hosts = hosts[:args.limit] if args.limit > 0 else hosts[args.limit:]
    if args.nth is not None:
        hosts = _nth(hosts, args.nth)
    return hosts


def _nth(hosts, spec):
    back = spec.startswith("-")
    try:
        ids = list(IDset(spec[1:] if back else spec))
    except ValueError:
        raise SourceError(f"-n/--nth={spec}: not an idset (give indices like 0, 0-2 or -1)") from None
    n = len(hosts)
    # -IDS: index i counts from the end, -1 the last host (so 0 and i > n do not exist)
    bad = [i for i in ids if i == 0 or i > n] if back else [i for i in ids if i >= n]
    if bad:
        raise IndexError(f"-n/--nth={spec}: index {'-' if back else ''}{bad[0]} is out of range "
                         f"(the result has {n} host{'' if n == 1 else 's'})")
    if back:  # in the result's order, not reversed
        return [hosts[-i] for i in reversed(ids)]
    return [hosts[i] for i in ids]


def _output(hosts, args):
    if args.find is not None:
        where = {}
        for i, h in enumerate(hosts):
            where.setdefault(h, i)
        missing = [h for h in Hostlist(args.find) if h not in where]
        if missing:
            raise SourceError(f"-F/--find: {Hostlist(missing)} not found in the result")
        text = " ".join(str(where[h]) for h in Hostlist(args.find))
    elif args.count:
        text = str(len(hosts))
    elif args.expand:
        text = args.delimiter.replace("\\n", "\n").join(hosts) if hosts else None
    else:
        text = str(Hostlist(hosts)) if hosts else None
    if not args.quiet and text is not None:
        print(text)
    return 1 if args.quiet and not hosts else 0
