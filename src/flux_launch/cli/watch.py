"""``flux watch [-a] [-A] [-f STATES] [--since WHEN] [-c N] [--progress [--jps]] [-l] [JOBID...]``:
print the output of jobs, running or already inactive, and wait for them to end.

As flux-core's flux-watch(1): the jobs are named by id, or selected as ``flux jobs``
selects them (``-a``/``--active``: pending and running; ``-A``/``--all``: every job
of the user; ``-f``: states or results; ``--since``: jobs active since WHEN, which
implies ``--all`` without ``-f``); ids and selection options together: the
options are ignored, with a warning. Each job is followed as ``flux job attach``
follows it (``cli/attach.py``, whose machinery is reused: output as it arrives,
shell messages, a fatal exception as one line), all at once on one connection,
but nothing is forwarded to the jobs (no stdin, no signals): Ctrl-C only stops
watching. ``-l`` prefixes each line with the job id and the task rank.
``--progress``: the jobs' states as a bar (or plain lines: ``cli/progress.py``).

Exit code: the largest of the jobs' (as ``flux job attach`` computes it: the exit
code, 128+N for signal N, 1 for a job that failed with an exception before its
tasks ran); 0 when nothing matches; 1 when a job id is unknown (the other jobs are
still watched: ``flux-watch: ƒXYZ: no such job``); 2 for bad options.
"""

import errno
import os
import sys
import time

from flux_launch.cli.base import Parser, handle
from flux_launch.core.jobid import JobID


def _parser(cmd):
    p = Parser(cmd, description="Watch the output and state of jobs until they end.",
               usage="flux watch [OPTIONS] [JOBID...]")
    p.add_argument("-a", "--active", action="store_true", help="watch all active jobs (pending and running)")
    p.add_argument("-A", "--all", action="store_true", help="watch all jobs, inactive ones too")
    p.add_argument("-c", "--count", type=int, default=1000, metavar="N",
                   help="watch at most N jobs (default 1000, 0: no limit)")
    p.add_argument("-f", "--filter", metavar="STATE|RESULT", action="append", default=[],
                   help="watch jobs in these states or with these results (comma-separated)")
    p.add_argument("--since", metavar="WHEN",
                   help="only jobs active since WHEN (-FSD: that long ago; a date; implies --all without -f)")
    p.add_argument("--progress", action="store_true",
                   help="show a progress bar (plain lines on stderr when stdout is not a terminal)")
    p.add_argument("--jps", action="store_true", help="with --progress, show jobs/s instead of the elapsed time")
    p.add_argument("-l", "--label-io", action="store_true", help="label lines of output with job id and task rank")
    p.add_argument("ids", nargs="*", metavar="JOBID")
    return p


def main(cmd, argv):
    p = _parser(cmd)
    args = p.parse_args(argv)
    if args.count < 0:
        p.error(f"-c/--count={args.count}: must be >= 0 (0: no limit)")
    since = _since(p, args.since) if args.since is not None else 0.0
    selecting = args.active or args.all or args.filter or args.since is not None
    if args.ids:
        jobids = list({int(j): j for j in (_jobid(p, text) for text in args.ids)}.values())
        if selecting:
            sys.stderr.write("flux-watch: filtering options ignored with a job id list\n")
    elif not selecting:
        p.error("at least one job selection option is required (JOBID..., -a, -A, -f or --since)")
    states, results = _filters(p, args)
    h = handle()
    if args.ids:
        infos, code = _lookup(h, jobids)
    else:
        infos, code = _list(h, states, results, since, args.count), 0
    if not infos:
        if not code:
            sys.stderr.write("flux-watch: No matching jobs\n")
        return code
    progress = None
    if args.progress:
        from flux_launch.cli.progress import Progress

        progress = Progress(len(infos), None, args.jps, min(i.get("t_submit", time.time()) for i in infos))
    return max(code, follow(h, [i["id"] for i in infos], args.label_io, progress, "watch"))


def _jobid(p, text):
    try:
        return JobID(text)
    except ValueError as exc:
        p.error(str(exc))


def _since(p, text):
    """``--since``: ``-FSD`` (that long ago), seconds since the epoch, or an ISO date."""
    from flux_launch.core import fsd

    try:
        if text.startswith("-"):
            when = time.time() - fsd.parse(text[1:])
        else:
            try:
                when = float(text)
            except ValueError:
                from datetime import datetime

                when = datetime.fromisoformat(text).timestamp()
    except ValueError:
        p.error(f"--since: invalid value '{text}' (e.g. -6h, -1d, 2024-06-21T06:00)")
    if when > time.time():
        p.error(f"--since={text} appears to be in the future")
    return when


def _filters(p, args):
    """job-list's state and result masks for -a, -A, -f and --since."""
    from flux_launch.cli.jobs import ALL_STATES, FILTERS, RESULT_FILTERS

    masks = {**{word: (bit, 0) for word, bit in FILTERS.items()},
             **{word: (0, bit) for word, bit in RESULT_FILTERS.items()}}  # word -> (states, results)
    states, results = 0, 0
    for word in filter(None, ",".join(args.filter).lower().split(",")):
        if word not in masks:
            p.error(f"invalid filter {word!r}: use states (pending, running, inactive, ...) "
                    "or results (completed, failed, canceled, timeout)")
        states |= masks[word][0]
        results |= masks[word][1]
    if args.active:
        states |= FILTERS["pending"] | FILTERS["running"]
    if args.all or (args.since is not None and not args.filter):
        states |= ALL_STATES
    return states, results


def _lookup(h, jobids):
    """The job-list records of ``jobids`` and 1 if one is unknown (said on stderr), else 0."""
    infos, code = [], 0
    for jobid in jobids:
        try:
            infos.append(h.rpc("job-list.list-id", {"id": int(jobid)}).get()["job"])
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            sys.stderr.write(f"flux-watch: {exc.strerror}\n")
            code = 1
    return infos, code


def _list(h, states, results, since, count):
    """The user's jobs in ``states`` or with ``results`` (newest first), active since ``since``."""
    jobs = h.rpc("job-list.list", {"states": states, "results": results, "userid": os.getuid(),
                                   "max_entries": 0 if since else count}).get()["jobs"]
    if since:
        jobs = [j for j in jobs if j.get("t_inactive", since) >= since]
    return jobs[:count] if count else jobs


class _Group:
    """The jobs watched on one handle: the reactor stops once every one has ended."""

    def __init__(self, h):
        self.h = h
        self.left = 0


class _JobHandle:
    """The handle one job's attach is given: its ``reactor_stop`` (the job is clean,
    or its eventlog ended) counts the job out, and only the last one stops the reactor."""

    def __init__(self, group):
        self._group = group
        self.ended = False

    def __getattr__(self, name):
        return getattr(self._group.h, name)

    def reactor_stop(self):
        group = self._group
        if not self.ended:
            self.ended = True
            group.left -= 1
            if group.left <= 0:
                group.h.reactor_stop()


class _Labelled:
    """A stream whose every line starts with ``ƒID: `` (``-l``, as flux-core labels
    watched output: the job id before the task rank)."""

    def __init__(self, sink, jobid):
        self.sink = sink
        self.prefix = f"{jobid}: ".encode()
        self.at_start = True

    def write(self, data):
        lines = data.splitlines(keepends=True)
        self.sink.write(b"".join(self.prefix + line if i or self.at_start else line for i, line in enumerate(lines)))
        self.at_start = data.endswith(b"\n")

    def flush(self):
        self.sink.flush()


def follow(h, ids, label, progress=None, cmd="watch"):
    """Follow the jobs ``ids`` to their end, printing their output as it comes (also
    ``flux submit --watch``); ``progress``: a ``Progress`` without its ``poll``,
    given the jobs' states. Returns the largest exit code."""
    from flux_launch.cli.attach import _Attach

    group = _Group(h)
    watches = []
    for jid in ids:
        jobid = JobID(jid)
        a = _Attach(_JobHandle(group), jobid, cmd, label, False)
        if label:
            a.sinks = {name: _Labelled(sink, jobid) for name, sink in a.sinks.items()}
        group.left += 1
        a.output.then(a._on_output)
        a.main.then(_on_main, a, progress)
        watches.append(a)
    if progress is not None:
        from flux_launch.cli.progress import state_counts

        progress.poll = lambda: state_counts(watches)
        progress.start(h)
    try:
        h.reactor_run()
        for a in watches:
            a._finish_output()
    except ConnectionError as exc:
        sys.stderr.write(f"flux-{cmd}: {exc}\n")
        return 1
    finally:
        if progress is not None:
            progress.stop()
        sys.stdout.flush()
        sys.stderr.flush()
    return max(_exit_code(a) for a in watches)


def _on_main(main, a, progress):
    a._on_main(main)
    if progress is not None:
        progress.update()


def _exit_code(a):
    """A watched job's exit code, as ``flux job attach`` would return it."""
    from flux_launch.proto.job import exit_code

    if a.status is None:  # it never ran to its finish
        return 1
    return exit_code(a.status) or (1 if a.exception else 0)
