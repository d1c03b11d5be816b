"""``flux pstree [OPTIONS] [JOBID...]``: the tree of jobs by name, through nested
instances (flux-core's flux-pstree).

A job that runs and has a ``uri`` memo is an instance: ``flux pstree`` connects to
it and shows its jobs below it, down to ``-L`` levels. Identical leaf siblings
are combined as ``N*[label]`` (``-X``: not). Labels are formats as in ``flux
jobs`` (``{name}``; with ``-a``: ``{name}:{status_abbrev}``, parents ``{name}``).
``-x``/``-d NAME``/``--detail-format`` print a column of details before the tree
(with a header, ``-n``: without); then, and with JOBIDs, the root (the enclosing
instance: ``.``, or its job's label when it is itself a job) is not shown unless
``--skip-root=no``. Lines are cut at ``$COLUMNS`` (else the terminal's width, else
132) and end with ``+`` there, unless ``-l``.

Fields beyond the job's own: ``instance.stats`` (``PD:N R:N CD:N F:N``),
``instance.stats.total``, ``instance.progress`` (inactive / total),
``instance.utilization`` and ``instance.gpu_utilization`` (allocated / all),
``instance.resources.{all,up,down,allocated,free}.{nnodes,ncores,ngpus}``; empty
for a job that is not a running instance. Conversions: ``!F`` (a duration such as
``8.539s``), ``!H`` (``H:MM:SS``), ``!P`` (a percentage); a spec ending in ``h``
prints ``-`` for an empty value, one ending in ``+`` marks a cut with ``+``.
"""

import os
import pwd
import re
import string
import sys
import time

from flux_launch.cli.base import Parser
from flux_launch.core.jobid import JobID
from flux_launch.proto.job import PENDING, RESULT_ABBREV, RESULT_BITS, STATE_BITS, STATE_SINGLE, STATES

DETAILS = {
    "default": "{id.f58:>12} {username:<8.8} {status_abbrev:>2.2} {ntasks:>6h} {nnodes:>6h} {runtime!F:>8h}",
    "resources": "{id.f58:>12} {instance.resources.all.nnodes:>5} {instance.resources.allocated.nnodes:>5} "
                 "{instance.resources.all.ncores:>5} {instance.resources.allocated.ncores:>5} "
                 "{instance.resources.all.ngpus:>5} {instance.resources.allocated.ngpus:>5}",
    "progress": "{id.f58:>12} {ntasks:>6h} {instance.stats.total:>6} {instance.progress!P:>5} "
                "{instance.utilization!P:>5} {instance.gpu_utilization!P:>5} {runtime!H:>10}",
    "stats": "{id.f58:>12} {instance.stats:^25} {runtime!H:>10}",
}
STYLES = {  # PIPE, TEE, ELBOW, BLANK
    "box": ("│   ", "├── ", "└── ", "    "),
    "ascii": ("|   ", "|-- ", "`-- ", "    "),
    "compact": ("│ ", "├─", "└─", "  "),
}
HEADINGS = {
    "id": "JOBID", "userid": "UID", "username": "USER", "urgency": "URG", "priority": "PRI", "state": "STATE",
    "state_single": "S", "name": "NAME", "cwd": "CWD", "queue": "QUEUE", "ntasks": "NTASKS", "ncores": "NCORES",
    "duration": "DURATION", "nnodes": "NNODES", "expiration": "EXPIRATION", "ranks": "RANKS",
    "nodelist": "NODELIST", "success": "SUCCESS", "result": "RESULT", "result_abbrev": "RS",
    "t_submit": "T_SUBMIT", "t_depend": "T_DEPEND", "t_run": "T_RUN", "t_cleanup": "T_CLEANUP",
    "t_inactive": "T_INACTIVE", "runtime": "RUNTIME", "status": "STATUS", "status_abbrev": "ST",
    "waitstatus": "WSTATUS", "returncode": "RC", "contextual_time": "TIME", "uri": "URI",
    "instance.stats.total": "NJOBS", "instance.utilization": "CORE%", "instance.gpu_utilization": "GPU%",
    "instance.progress": "PROG", "instance.resources.all.ncores": "CORES", "instance.resources.all.ngpus": "GPUS",
    "instance.resources.all.nnodes": "NODES",
}
for _state, _title in (("up", "UP"), ("down", "DOWN"), ("allocated", "USED"), ("free", "FREE")):
    for _kind in ("nnodes", "ncores", "ngpus"):
        HEADINGS[f"instance.resources.{_state}.{_kind}"] = _title
EMPTY = ("", "0", "0.0", "0s", "0:00:00", "None")
RUN = STATE_BITS["RUN"]
PENDING_BITS = sum(STATE_BITS[s] for s in PENDING)
RUNNING_BITS = STATE_BITS["RUN"] | STATE_BITS["CLEANUP"]
FILTERS = {**{s.lower(): STATE_BITS[s] for s in STATES}, "pending": PENDING_BITS, "running": RUNNING_BITS,
           "active": sum(STATE_BITS.values()) & ~STATE_BITS["INACTIVE"]}
RESULT_FILTERS = {**{r.lower(): b for r, b in RESULT_BITS.items()}, "cancelled": RESULT_BITS["CANCELED"]}


# ---- the tree ---------------------------------------------------------------------

class Tree:
    """A node: its ``label``, the details ``prefix`` printed before the tree part,
    and children. With ``combine``, a leaf child whose prefix and label equal an
    earlier leaf's counts as one more of it (shown ``N*[label]``)."""

    def __init__(self, label, prefix="", combine=False):
        self.label = label
        self.prefix = f"{prefix} " if prefix else ""
        self.combine = combine
        self.children = []
        self.count = 1
        self._seen = {}

    def append(self, tree):
        """Add ``tree`` as the last child (or count it into an identical leaf); returns the child."""
        if not self.combine or tree.children:
            self.children.append(tree)
            return tree
        key = tree.prefix + tree.label
        same = self._seen.get(key)
        if same is not None:
            same.count += 1
            return same
        self._seen[key] = tree
        self.children.append(tree)
        return tree

    def lines(self, style="box", skip_root=False, width=None):
        """The rendered lines; ``width``: cut longer lines there, ending them with ``+``."""
        out = []
        if skip_root:
            for child in self.children:
                child._render(out, [], "", STYLES[style], width)
        else:
            self._render(out, [], "", STYLES[style], width)
        return out

    def _render(self, out, stack, connector, style, width):
        label = f"{self.count}*[{self.label}]" if self.count > 1 else self.label
        line = f"{self.prefix}{''.join(stack[:-1])}{connector}{label}"
        if width and len(line) > width:
            line = line[:width - 1] + "+"
        out.append(line)
        pipe, tee, elbow, blank = style
        for i, child in enumerate(self.children):
            last = i == len(self.children) - 1
            stack.append(blank if last else pipe)
            child._render(out, stack, elbow if last else tee, style, width)
            stack.pop()


# ---- fields -----------------------------------------------------------------------

class _Empty:
    """A missing value: every attribute is missing too; formats as empty."""

    def __getattr__(self, name):
        return self

    def __str__(self):
        return ""

    def __format__(self, spec):
        return format("", re.sub(r"[bcdoxXeEfFgGn%]$", "", spec))


EMPTY_VALUE = _Empty()


class _Obj:
    """A dict seen through attributes (missing keys: empty)."""

    def __init__(self, d):
        self._d = d

    def __getattr__(self, name):
        v = self._d.get(name, EMPTY_VALUE) if isinstance(self._d, dict) else EMPTY_VALUE
        return _Obj(v) if isinstance(v, dict) else v

    def __format__(self, spec):
        return format(str(self._d) if self._d else "", spec)


class _ID:
    """``id`` with its encodings (``id.f58``...); the mock root's encode as ``.``."""

    def __init__(self, value):
        self.value = value

    def __getattr__(self, enc):
        if self.value is None:
            return "."
        return JobID(self.value).encode(enc)

    def __format__(self, spec):
        return format("." if self.value is None else str(self.value), spec)


class Stats:
    """An instance's job counts (``PD:N R:N CD:N F:N``)."""

    def __init__(self, jobs):
        self.pending = self.running = self.successful = self.failed = 0
        self.canceled = self.timeout = self.inactive = 0
        for job in jobs:
            state = job.get("state", 0)
            if state & PENDING_BITS:
                self.pending += 1
            elif state & RUNNING_BITS:
                self.running += 1
            elif state == STATE_BITS["INACTIVE"]:
                self.inactive += 1
                if job.get("success"):
                    self.successful += 1
                elif job.get("exception_type") == "cancel" and job.get("exception_occurred"):
                    self.canceled += 1
                elif job.get("exception_type") == "timeout" and job.get("exception_occurred"):
                    self.timeout += 1
                else:
                    self.failed += 1
        self.total = len(jobs)

    def __str__(self):
        return f"PD:{self.pending} R:{self.running} CD:{self.successful} F:{self.failed}"

    def __format__(self, spec):
        return format(str(self), spec)


class Instance:
    """What ``instance.*`` fields show of a running instance (fetched from it)."""

    def __init__(self, h):
        jobs = h.rpc("job-list.list", {"states": 0, "results": 0, "userid": -1}).get()["jobs"]
        self.stats = Stats(jobs)
        status = h.rpc("sched.resource-status").get()
        self.resources = _Obj(_resources(status))
        all_, gpus = self.resources.all.ncores, self.resources.all.ngpus
        self.utilization = self.resources.allocated.ncores / all_ if all_ else ""
        self.gpu_utilization = self.resources.allocated.ngpus / gpus if gpus else ""
        self.progress = self.stats.inactive / self.stats.total if self.stats.total else ""


def _resources(status):
    """``{all, up, down, allocated, free}: {nnodes, ncores, ngpus}`` from ``sched.resource-status``."""
    from flux_launch.core.idset import decode

    ranks = {k: set(decode(status.get(k, {}).get("ranks", "") or "")) for k in ("free", "allocated", "down")}
    out = {}
    for name, parts in (("all", ("free", "allocated", "down")), ("up", ("free", "allocated")),
                        ("down", ("down",)), ("allocated", ("allocated",)), ("free", ("free",))):
        out[name] = {"nnodes": len(set().union(*(ranks[p] for p in parts))),
                     "ncores": sum(status.get(p, {}).get("ncores", 0) for p in parts),
                     "ngpus": sum(status.get(p, {}).get("ngpus", 0) for p in parts)}
    return out


class Job:
    """One job-list record with the fields formats name (``flux jobs``'s, and
    ``instance.*``)."""

    _users = {}

    def __init__(self, info, instance=None, root=False):
        self.info = info
        self.instance = instance
        self.root = root

    @property
    def state(self):
        return STATES[self.info.get("state", 1).bit_length() - 1]

    @property
    def uri(self):
        return ((self.info.get("annotations") or {}).get("user") or {}).get("uri")

    @property
    def is_parent(self):
        """A running job that is an instance (it published its URI)."""
        return bool(self.uri) and self.info.get("state") == RUN

    def get(self, name):
        info = self.info
        if name == "id":
            return _ID(None if self.root else info["id"])
        if name == "instance":
            return self.instance if self.instance is not None else EMPTY_VALUE
        if name == "username":
            uid = info.get("userid", 0)
            if uid not in self._users:
                try:
                    self._users[uid] = pwd.getpwuid(uid).pw_name
                except KeyError:
                    self._users[uid] = str(uid)
            return self._users[uid]
        if name in ("user", "annotations"):
            ann = info.get("annotations") or {}
            return _Obj(ann.get("user", {}) if name == "user" else ann)
        if name == "uri":
            return self.uri or ""
        state = self.state
        inactive = state == "INACTIVE"
        if name == "state":
            return state
        if name == "state_single":
            return STATE_SINGLE[state]
        if name == "status":
            return info.get("result_str", "") if inactive else state
        if name == "status_abbrev":
            return RESULT_ABBREV.get(info.get("result_str", ""), "") if inactive else STATE_SINGLE[state]
        if name == "result":
            return info.get("result_str", "")
        if name == "result_abbrev":
            return RESULT_ABBREV.get(info.get("result_str", ""), "")
        if name in ("runtime", "contextual_time"):
            if not info.get("t_run"):
                return 0.0
            return (info.get("t_cleanup") or time.time()) - info["t_run"]
        return info.get(name, "")


def fsd(secs):
    """flux-core's short duration: ``8.539s``, ``10.68s``, ``2.5m``..."""
    if secs < 1.0e-3:
        return "0s"
    if secs < 10.0:
        return "%.03fs" % secs
    for limit, div, unit in ((60.0, 1.0, "s"), (3600.0, 60.0, "m"), (86400.0, 3600.0, "h")):
        if secs < limit:
            return "%.4g%s" % (secs / div, unit)
    return "%.4gd" % (secs / 86400.0)


class _Formatter(string.Formatter):
    def get_field(self, field_name, args, kwargs):
        job = args[0]
        first, _, rest = field_name.partition(".")
        obj = job.get(first)
        for part in filter(None, rest.split(".")):
            obj = getattr(obj, part)
        return obj, first

    def convert_field(self, value, conversion):
        if isinstance(value, _Empty) or (value == "" and conversion in ("F", "H", "P")):
            return ""
        if conversion == "F":
            return fsd(float(value))
        if conversion == "H":
            value = float(value)
            value = 1 if 0 < value < 1 else round(value)
            return f"{value // 3600}:{value % 3600 // 60:02d}:{value % 60:02d}"
        if conversion == "P":
            value = float(value) * 100
            return f"{value:.2f}%" if 0 < value < 1 else f"{value:.3g}%"
        return super().convert_field(value, conversion)

    def format_field(self, value, spec):
        mark = spec.endswith("+")
        if mark:
            spec = spec[:-1]
        if spec.endswith("h"):
            value = "-" if str(value) in EMPTY else str(value)
            spec = spec[:-1]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and "." in spec:
            value = str(value)  # {ntasks:>6.6}: a width and a cut, as for text
        elif value == "":  # a field this job lacks, in a numeric spec: blank
            spec = re.sub(r"[bcdoxXeEfFgGn%]$", "", spec)
        out = format(value, spec)
        if mark and len(out) < len(str(value)):
            out = out[:-1] + "+"
        return out


class Format:
    """A job format: ``format(job)`` and its ``header()``.

    Raises:
        ValueError: an unknown field or a malformed format.
    """

    def __init__(self, fmt):
        self.fmt = fmt
        try:
            self.parts = list(string.Formatter().parse(fmt))
        except ValueError as exc:
            raise ValueError(f"invalid format {fmt!r}: {exc}") from None
        for _text, field, _spec, _conv in self.parts:
            if field is None:
                continue
            base = field.split(".", 1)[0]
            if field not in HEADINGS and base not in HEADINGS and base not in ("annotations", "user", "instance"):
                raise ValueError(f"Unknown format field: {field}")
        self._f = _Formatter()
        try:  # a bad attribute, spec or conversion: refused now, not on the first job
            self.format(Job({"id": 1, "state": RUN, "name": "x", "userid": 0, "ntasks": 1, "t_run": 1.0}))
        except (AttributeError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise ValueError(f"invalid format {fmt!r}: {exc}") from None

    def format(self, job):
        return self._f.format(self.fmt, job)

    def header(self):
        out = []
        for text, field, spec, _conv in self.parts:
            out.append(text)
            if field is None:
                continue
            spec = re.sub(r"(0?\.)?(\d+)?[bcdoxXeEfFgGn%]$", r"\2", spec or "")
            m = re.search(r"([<>=^])?(\d+)", spec)
            out.append(format(_heading(field), m[0] if m else ""))
        return "".join(out)


def _heading(field):
    if field in HEADINGS:
        return HEADINGS[field]
    if field.startswith("annotations."):
        return field[len("annotations."):].upper()
    if field.startswith("instance."):
        title = field[len("instance."):].upper()
        return title[len("RESOURCES."):] if title.startswith("RESOURCES.") else title
    return HEADINGS.get(field.split(".", 1)[0], field.upper())


# ---- loading the tree ---------------------------------------------------------------

def _order(info):
    """job-list's order: pending (by priority, oldest first), running, inactive (newest first)."""
    state = info.get("state", 1)
    if state & PENDING_BITS or state == 1:
        return (0, -info.get("priority", 0), info.get("id", 0))
    if state & RUNNING_BITS:
        return (1, -info.get("t_run", 0), -info.get("id", 0))
    return (2, -info.get("t_inactive", 0), -info.get("id", 0))


def _open(uri):
    from flux_launch.client.handle import Flux

    return Flux(uri)


class Loader:
    """Builds the tree: ``states``/``results`` (job-list bits) select the jobs
    of each instance, ``count`` at most, ``max_level`` deep."""

    def __init__(self, label_fmt, parent_fmt, detail_fmt, states, results, count, max_level, combine):
        self.label_fmt = label_fmt
        self.parent_fmt = parent_fmt
        self.detail_fmt = detail_fmt
        self.states = states
        self.results = results
        self.count = count
        self.max_level = max_level
        self.combine = combine
        fmts = [label_fmt.fmt, parent_fmt.fmt, detail_fmt.fmt if detail_fmt else ""]
        self.need_instance = any("{instance." in f or "{instance:" in f or "{instance}" in f for f in fmts)

    def prefix(self, job):
        return self.detail_fmt.format(job) if self.detail_fmt else ""

    def node(self, job, h, level, jobids=None):
        """The tree of ``job`` whose instance is open on ``h`` (its children: the
        jobs of that instance, unless deeper than ``max_level``)."""
        if self.need_instance and job.instance is None:
            job.instance = _instance(h)
        parent_label = self.parent_fmt.format(job)
        tree = Tree(parent_label, self.prefix(job), self.combine)
        if level > self.max_level:
            return tree
        try:
            if jobids:
                infos = [h.rpc("job-list.list-id", {"id": int(j)}).get()["job"] for j in jobids]
            else:
                infos = h.rpc("job-list.list", {"states": self.states, "results": self.results,
                                                "userid": os.getuid(), "max_entries": self.count}).get()["jobs"]
                infos.sort(key=_order)
        except OSError:
            if jobids:
                raise
            return tree
        for info in infos:
            tree.append(self.child(Job(info), level))
        return tree

    def child(self, job, level):
        if not job.is_parent:
            return Tree(self.label_fmt.format(job), self.prefix(job))
        try:
            h = _open(job.uri)
        except OSError:  # gone since it was listed: a leaf
            return Tree(self.parent_fmt.format(job), self.prefix(job))
        try:
            return self.node(job, h, level + 1)
        finally:
            h.close()


def _instance(h):
    try:
        return Instance(h)
    except OSError:
        return None


def root_job(h):
    """The enclosing instance as a job: its job-list record in the parent when it
    is a job, else a stand-in named ``.``."""
    def attr(name):
        return h.rpc("attr.get", {"name": name}).get()["value"]

    size = int(attr("size"))
    try:
        jobid = JobID(attr("jobid"))
        with _open(attr("parent-uri")) as parent:
            info = parent.rpc("job-list.list-id", {"id": int(jobid)}).get()["job"]
        job = Job(info)
    except (OSError, ValueError):
        info = {"id": 0, "userid": int(attr("security.owner")), "state": RUN, "name": ".", "ntasks": size,
                "nnodes": size, "annotations": {"user": {"uri": attr("local-uri")}}}
        try:
            info["t_run"] = float(attr("broker.starttime"))
        except OSError:
            pass
        job = Job(info, root=True)
    info["ranks"] = f"0-{size - 1}"
    return job


def _width():
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        return 132


def _filters(text):
    states = results = 0
    for word in filter(None, text.lower().split(",")):
        if word in FILTERS:
            states |= FILTERS[word]
        elif word in RESULT_FILTERS:
            results |= RESULT_FILTERS[word]
        else:
            raise ValueError(f"-f/--filter: invalid state or result {word!r} (use e.g. pending,running,inactive "
                             "or completed,failed,canceled,timeout)")
    return states, results


def main(cmd, argv):
    p = Parser(cmd, description="Show the tree of jobs, through nested instances.",
               usage="flux pstree [OPTIONS] [JOBID...]")
    p.add_argument("-a", "--all", action="store_true", help="jobs in all states (pending,running,inactive)")
    p.add_argument("-c", "--count", type=int, default=1000, metavar="N", help="at most N jobs per instance")
    p.add_argument("-f", "--filter", metavar="STATE|RESULT", help="job states or results to show (default running)")
    p.add_argument("-x", "--extended", action="store_true", help="print details before the tree (-d default)")
    p.add_argument("-d", "--details", metavar="NAME", help="named details format: " + ",".join(DETAILS))
    p.add_argument("--detail-format", metavar="FORMAT", help="details format (implies -x)")
    p.add_argument("-n", "--no-header", action="store_true", help="no header row with details")
    p.add_argument("-l", "--long", action="store_true", help="do not cut long lines at the terminal width")
    p.add_argument("-L", "--level", type=int, default=999, metavar="N", help="descend at most N levels")
    p.add_argument("-p", "--parent-ids", action="store_true", help="prepend job ids to parent labels")
    p.add_argument("-X", "--no-combine", action="store_true", help="do not combine identical leaves")
    p.add_argument("-o", "--label", metavar="FORMAT", help="label format (default {name})")
    p.add_argument("--parent-label", metavar="FORMAT", help="label format of parents")
    p.add_argument("--skip-root", choices=("yes", "no"), help="leave out (yes) or show (no) the enclosing instance")
    p.add_argument("-C", "--compact", action="store_true", help="compact connectors")
    p.add_argument("--ascii", action="store_true", help="ASCII connectors")
    p.add_argument("jobids", nargs="*", metavar="JOBID", help="only these jobs")
    args = p.parse_args(argv)
    if args.ascii and args.compact:
        p.error("choose only one of --ascii, --compact")
    try:
        jobids = [JobID(j) for j in args.jobids]
    except ValueError as exc:
        p.error(str(exc))
    if args.count < 0 or args.level < 0:
        p.error("-c/--count and -L/--level must be >= 0")
    if jobids and (args.filter or args.all):
        sys.stderr.write("flux-pstree: filtering options ignored with jobid list\n")
    states, results = _filters("pending,running,inactive" if args.all else args.filter or "running")
    label = args.label or ("{name}:{status_abbrev}" if args.all else "{name}")
    parent_label = args.parent_label or (args.label if args.label else "{name}")
    if args.parent_ids:
        parent_label = "{id.f58} " + parent_label
    detail = None
    if args.extended or args.details or args.detail_format:
        if args.detail_format:
            detail = args.detail_format
        elif (args.details or "default") in DETAILS:
            detail = DETAILS[args.details or "default"]
        else:
            raise ValueError(f"Unknown --details format '{args.details}' (use {', '.join(DETAILS)})")
    loader = Loader(Format(label), Format(parent_label), Format(detail) if detail else None,
                    states, results, args.count, args.level, not args.no_combine)
    skip_root = bool(detail) or bool(jobids)
    if args.skip_root is not None:
        skip_root = args.skip_root == "yes"
    from flux_launch.cli.base import handle

    h = handle()
    root = Job({"id": 0, "name": ".", "state": RUN}, root=True) if skip_root else root_job(h)
    tree = loader.node(root, h, 0, jobids)
    if skip_root:
        tree.label, tree.prefix = ".", ""
    style = "compact" if args.compact else "ascii" if args.ascii else "box"
    lines = tree.lines(style, skip_root=skip_root, width=None if args.long else _width())
    if detail and not args.no_header:
        lines.insert(0, loader.detail_fmt.header())
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")
    return 0
