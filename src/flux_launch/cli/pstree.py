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

Fields and conversions are flux jobs' (cli/jobfmt.py), ``instance.*`` included
(``-d stats``, ``-d progress``, ``-d resources``): an instance's jobs' counts,
progress, utilization and resources, empty for a job that is not a running
instance.
"""

import os
import sys

from flux_launch.cli.base import Parser
from flux_launch.cli.jobfmt import RUN, Format, Job, connect, instance, order, parse_filter
from flux_launch.core.jobid import JobID

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


# ---- loading the tree ---------------------------------------------------------------

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
        self.need_instance = any(f.need_instance for f in (label_fmt, parent_fmt, detail_fmt) if f)

    def prefix(self, job):
        return self.detail_fmt.format(job) if self.detail_fmt else ""

    def node(self, job, h, level, jobids=None):
        """The tree of ``job`` whose instance is open on ``h`` (its children: the
        jobs of that instance, unless deeper than ``max_level``)."""
        if self.need_instance and job.instance is None:
            job.instance = instance(h)
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
                infos.sort(key=order)
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
            h = connect(job.uri)
        except OSError:  # gone since it was listed: a leaf
            return Tree(self.parent_fmt.format(job), self.prefix(job))
        try:
            return self.node(job, h, level + 1)
        finally:
            h.close()


def root_job(h):
    """The enclosing instance as a job: its job-list record in the parent when it
    is a job, else a stand-in named ``.``."""
    def attr(name):
        return h.rpc("attr.get", {"name": name}).get()["value"]

    size = int(attr("size"))
    try:
        jobid = JobID(attr("jobid"))
        with connect(attr("parent-uri")) as parent:
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
    states, results = parse_filter("pending,running,inactive" if args.all else args.filter or "running")
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
