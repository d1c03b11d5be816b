"""``flux exec [-j JOBID] [-r IDSET|all] [-l] [-n] [-d DIR] COMMAND...``: run a
command on broker ranks, without the scheduler.

With ``-j/--jobid`` (as flux-core's) the command runs once on each node of a
running job, beside its tasks: ``-r``/``-x`` then index the job's nodes (``-r 0``
is the job's first node), and the command gets the job's environment, its
``FLUX_JOB_ID`` and that node's ``FLUX_JOB_TMPDIR``, in the job's cwd unless
``-d`` (``broker/rexec.py``). Only the job's owner or the instance owner may;
a job that is unknown, not running or another user's, or a rank the job does
not have, is one line on stderr and nothing is started.

The command runs under each chosen rank's broker with this command's environment,
``FLUX_URI`` pointing at that broker. Its stdout and stderr come back here (with
``-l``, each line prefixed ``RANK: ``); stdin is sent to every rank unless ``-n``.
The exit code is the highest of the commands' codes (128+N for a command killed by
signal N); a rank that cannot run the command counts as 1 (126 not executable,
127 not found) and is named on stderr.
"""

import argparse
import errno
import os
import sys

from flux_launch.cli.base import Parser, handle
from flux_launch.client.handle import NORESPONSE, STREAMING


def main(cmd, argv):
    p = Parser(cmd, description="Run COMMAND on broker ranks.")
    p.add_argument("-r", "--rank", default="all", help="ranks to run on: an idset or 'all' (default)")
    p.add_argument("-x", "--exclude", default="", help="ranks to leave out (an idset)")
    p.add_argument("-l", "--label-io", action="store_true", help="prefix output lines with 'RANK: '")
    p.add_argument("-n", "--noinput", action="store_true", help="do not send stdin to the commands")
    p.add_argument("-d", "--dir", help="run in this directory (default: the current one)")
    p.add_argument("-v", "--verbose", action="store_true", help="say when each command starts and ends")
    p.add_argument("-j", "--jobid", help="run on the nodes of this running job, in its environment")
    p.add_argument("command", nargs=argparse.REMAINDER)
    args = p.parse_args(argv)
    if not args.command:
        p.error("a COMMAND is required")
    from flux_launch.core.idset import IDset

    h = handle()
    if args.jobid is not None:
        return _run(h, _job_ranks(h, args), args)
    size = int(h.rpc("attr.get", {"name": "size"}).get()["value"])
    try:
        ranks = IDset(f"0-{size - 1}") if args.rank == "all" else IDset(args.rank)
        ranks = ranks - IDset(args.exclude)
    except ValueError as exc:
        p.error(str(exc))
    bad = [r for r in ranks if r >= size]
    if bad:
        p.error(f"rank {bad[0]} is not in this instance of size {size}")
    return _run(h, list(ranks), args)


def _job_ranks(h, args):
    """The broker ranks of the running job ``args.jobid`` that ``-r``/``-x`` pick
    (indexes into the job's nodes); sets ``args.job`` to its id.

    Raises:
        ValueError: a bad job id or idset, an index the job does not have.
        OSError: the job is unknown, not running, or not the requester's.
    """
    from flux_launch.core.idset import IDset
    from flux_launch.core.jobid import JobID

    try:
        jid = JobID(args.jobid)
    except ValueError:
        raise ValueError(f"--jobid={args.jobid}: not a job id") from None
    target = h.rpc("job-manager.target", {"id": int(jid)}).get()
    nodes = target["ranks"]
    n = len(nodes)
    try:
        index = IDset(f"0-{n - 1}") if args.rank == "all" else IDset(args.rank)
        index = index - IDset(args.exclude)
    except ValueError as exc:
        raise ValueError(f"--rank/--exclude: {exc}") from None
    bad = [i for i in index if i >= n]
    if bad:
        raise ValueError(f"job {jid} has no node {bad[0]}: its {n} node{'s' if n > 1 else ''} are 0-{n - 1} "
                         "(-r indexes the job's nodes)")
    args.job = int(jid)
    return [nodes[i] for i in index]


class _Task:
    __slots__ = ("rank", "fut", "pid", "status", "partial", "prefix")

    def __init__(self, rank, fut):
        self.rank = rank
        self.fut = fut
        self.pid = None
        self.status = None
        self.partial = {"stdout": b"", "stderr": b""}


def _run(h, ranks, args):
    """Run the command on ``ranks`` and relay its I/O, in the handle's reactor: one
    continuation per rank's ``rexec.exec`` stream, a watcher on stdin. Returns the
    exit code."""
    from flux_launch._accel import label_flush, label_lines
    from flux_launch.proto.rexec import decode_data, encode_data

    payload = {"cmd": args.command, "env": dict(os.environ), "cwd": args.dir or os.getcwd(),
               "stdin": not args.noinput}
    if getattr(args, "job", None) is not None:  # the job's environment and cwd (rexec's)
        payload = {"cmd": args.command, "jobid": args.job, "cwd": args.dir, "stdin": not args.noinput}
    tasks = [_Task(r, h.rpc("rexec.exec", payload, nodeid=r, flags=STREAMING)) for r in ranks]
    for t in tasks:
        t.prefix = f"{t.rank}: ".encode() if args.label_io else b""
    out = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    state = {"rc": 0, "live": len(tasks)}
    pending_input = []  # stdin read before every command had started
    stdin_w = None

    def on_stdin(_h, watcher, fd, _revents, _args):
        data = os.read(fd, 65536)
        if not data:
            watcher.stop()
        pending_input.append(data)
        _send_input(h, tasks, pending_input, encode_data)

    def on_response(fut, t):
        while fut.is_ready():
            try:
                resp = fut.get()
            except OSError as exc:
                t.fut = None
                state["live"] -= 1
                if exc.errno != errno.ENODATA:
                    code = {errno.ENOENT: 127, errno.EACCES: 126, errno.ENOEXEC: 126}.get(exc.errno, 1)
                    state["rc"] = max(state["rc"], code)
                    sys.stderr.write(f"flux-exec: Error: rank {t.rank}: {exc.strerror}\n")
                for stream, part in t.partial.items():
                    if part:
                        out[stream].write(label_flush(t.prefix, part) if args.label_io else part)
                if not state["live"] and stdin_w is not None:
                    stdin_w.stop()  # the commands are over: stdin no longer keeps the reactor running
                return
            kind = resp.get("type")
            if kind == "output":
                data = decode_data(resp["data"])
                stream = resp["stream"]
                # whole lines only, so that ranks' lines never splice
                data, t.partial[stream] = label_lines(t.prefix, data, t.partial[stream])
                dest = out[stream]
                dest.write(data)
                dest.flush()
            elif kind == "started":
                t.pid = resp["pid"]
                if args.verbose:
                    sys.stderr.write(f"flux-exec: rank {t.rank}: started pid {t.pid}\n")
                if pending_input:
                    _send_input(h, [t], pending_input, encode_data, replay=True)
            elif kind == "finished":
                t.status = resp["status"]
                state["rc"] = max(state["rc"], t.status)
                if args.verbose:
                    sys.stderr.write(f"flux-exec: rank {t.rank}: exit {t.status}\n")

    if not args.noinput:
        try:
            stdin_w = h.fd_watcher_create(sys.stdin.fileno(), on_stdin).start()
        except (ValueError, OSError, AttributeError):
            stdin_w = None
    for t in tasks:
        t.fut.then(on_response, t)
    if not tasks and stdin_w is not None:
        stdin_w.stop()
    try:
        h.reactor_run()
    finally:
        if stdin_w is not None:
            stdin_w.stop()
    sys.stdout.flush()
    sys.stderr.flush()
    return state["rc"]


def _send_input(h, tasks, pending, encode_data, replay=False):
    """Send stdin to the tasks that have started (all of what was read, for a task that
    starts late); an empty chunk is EOF."""
    chunks = pending if replay else pending[-1:]
    for t in tasks:
        if t.pid is None or t.fut is None:
            continue
        for data in chunks:
            h.rpc("rexec.write", {"pid": t.pid, "data": encode_data(data) if data else "", "eof": not data},
                  nodeid=t.rank, flags=NORESPONSE)
