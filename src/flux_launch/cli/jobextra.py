"""More ``flux job`` subcommands (flux-core's flux-job(1)): ``taskmap``,
``timeleft``, ``raise``, and the bulk ``raiseall``, ``killall`` and ``cancelall``.

- ``taskmap [--taskids=NODEID | --ntasks=NODEID | --nodeid=TASKID |
  --hostname=TASKID | --to=raw|pmi|multiline] ID|TASKMAP``: a job's RFC 34 task
  map (from its ``shell.start`` exec event, waited for), or a map given as JSON,
  raw (``0-3;4-7``) or PMI (``(vector,(0,2,4))``), printed or converted.
- ``timeleft [-H] [ID]``: whole seconds left before the time limit of job ID, of
  ``FLUX_JOB_ID``, or of the job this instance runs as (batch/alloc); 0 once it
  ended, 4294967295 (UINT_MAX) without a limit; ``-H``: as an FSD.
- ``raise [-s N] [-t TYPE] [-m NOTE] IDS... [--] [MESSAGE...]``: an exception
  (default type ``cancel``, severity 0: fatal).
- ``raiseall TYPE [MESSAGE...]`` (``-s`` default 7), ``killall [-s SIG]``,
  ``cancelall [MESSAGE...]``: on every job of ``-u USER`` (default you; ``all``)
  in ``-S STATES`` (default active; killall: running); without ``-f`` they only
  say how many jobs match.
"""

import os
import sys

from flux_launch.cli.base import handle
from flux_launch.core.jobid import JobID

UINT_MAX = 4294967295


def add_parsers(sub):
    s = sub.add_parser("taskmap", help="print a job's task map, or convert or query one")
    q = s.add_mutually_exclusive_group()
    q.add_argument("--taskids", metavar="NODEID", type=int, help="the tasks (an idset) on node NODEID")
    q.add_argument("--ntasks", metavar="NODEID", type=int, help="the number of tasks on node NODEID")
    q.add_argument("--nodeid", metavar="TASKID", type=int, help="the node of task TASKID")
    q.add_argument("--hostname", metavar="TASKID", type=int, help="the host of task TASKID (a job id only)")
    q.add_argument("--to", choices=("raw", "pmi", "multiline"), help="convert the map")
    s.add_argument("id", metavar="ID|TASKMAP")
    s = sub.add_parser("timeleft", help="seconds left before a job's time limit")
    s.add_argument("-H", "--human", action="store_true", help="as a Flux Standard Duration")
    s.add_argument("id", nargs="?", metavar="ID")
    s = sub.add_parser("raise", help="raise an exception on jobs")
    s.add_argument("-s", "--severity", type=int, default=0, metavar="N", help="0 (fatal, default) to 7")
    s.add_argument("-t", "--type", default="cancel", metavar="TYPE", help="exception type (default cancel)")
    s.add_argument("-m", "--message", metavar="NOTE", help="the exception note")
    s.add_argument("words", nargs="+", metavar="IDS... [--] [MESSAGE...]")
    for name, text in (("raiseall", "raise an exception on all matching jobs"),
                       ("killall", "signal all your running jobs"),
                       ("cancelall", "cancel all matching jobs")):
        s = sub.add_parser(name, help=text)
        s.add_argument("-u", "--user", metavar="USER", help="another user's jobs, or all")
        s.add_argument("-f", "--force", action="store_true", help="do it (without -f: count the jobs)")
        if name == "killall":
            s.add_argument("-s", "--signal", default="SIGTERM", metavar="SIG")
            continue
        s.add_argument("-S", "--states", default="active", metavar="STATES", help="job states (default active)")
        if name == "raiseall":
            s.add_argument("-s", "--severity", type=int, default=7, metavar="N", help="0 (fatal) to 7 (default)")
            s.add_argument("type", metavar="TYPE")
        else:
            s.add_argument("-q", "--quiet", action="store_true", help="say nothing when no job matches")
        s.add_argument("message", nargs="*", metavar="MESSAGE")


# ---- taskmap ---------------------------------------------------------------------

def parse_taskmap(text):
    """RFC 34 ``[[nodeid, nnodes, ppn, repeat], ...]`` of a JSON, raw or PMI task map.

    Raises:
        ValueError: none of the three.
    """
    import json

    t = text.strip()
    if not t:
        raise ValueError("invalid taskmap '': give a job id, or a map as JSON, raw (0-3;4-7) or PMI")
    if t.startswith(("{", "[")):
        try:
            obj = json.loads(t)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid taskmap {text!r}: {exc.msg}") from None
        blocks = obj.get("map") if isinstance(obj, dict) else obj
        if not isinstance(blocks, list) or not all(
                isinstance(b, list) and len(b) == 4 and all(type(x) is int and x >= 0 for x in b) and b[1] and b[3]
                for b in blocks):
            raise ValueError(f"invalid taskmap {text!r}: expected [[nodeid,nnodes,ppn,repeat],...]")
        return blocks
    if t.startswith("(vector"):
        from flux_launch.proto.pmi1 import mapping_nodes

        body = t.replace(" ", "")[len("(vector,"):-1]
        blocks = []
        for part in body.split("),"):
            fields = part.strip("()").split(",")
            if len(fields) != 3 or not all(f.isdigit() for f in fields):
                raise ValueError(f"invalid taskmap {text!r}: not a PMI process mapping")
            node, nnodes, ppn = map(int, fields)
            blocks.append([node, nnodes, ppn, 1])
        mapping_nodes(t, 1)  # its own checks
        return blocks
    from flux_launch.core.idset import IDset

    nodes = []
    try:
        for part in t.split(";"):
            nodes.append(list(IDset(part)))
    except ValueError:
        raise ValueError(f"invalid taskmap {text!r} (give JSON, raw like 0-3;4-7, or PMI like (vector,(0,2,4)))") \
            from None
    owner = {}
    for nodeid, tasks in enumerate(nodes):
        for t_ in tasks:
            if t_ in owner:
                raise ValueError(f"invalid taskmap {text!r}: task {t_} on nodes {owner[t_]} and {nodeid}")
            owner[t_] = nodeid
    if sorted(owner) != list(range(len(owner))):
        raise ValueError(f"invalid taskmap {text!r}: task ids must be 0..N-1")
    return _compress([owner[i] for i in range(len(owner))])


def expand(blocks):
    """The node id of each task, in task order."""
    out = []
    for nodeid, nnodes, ppn, repeat in blocks:
        for _ in range(repeat):
            for node in range(nodeid, nodeid + nnodes):
                out.extend([node] * ppn)
    return out


def _compress(nodes):
    """RFC 34 blocks of a task -> node list (runs of consecutive nodes with equal counts)."""
    runs = []  # (node, count)
    for node in nodes:
        if runs and runs[-1][0] == node:
            runs[-1][1] += 1
        else:
            runs.append([node, 1])
    blocks = []
    for node, count in runs:
        last = blocks[-1] if blocks else None
        if last and last[3] == 1 and last[2] == count and last[0] + last[1] == node:
            last[1] += 1
        else:
            blocks.append([node, 1, count, 1])
    return blocks


def _taskmap(p, args):
    from flux_launch.core.idset import IDset

    text, jobid = args.id, None
    try:
        jobid = JobID(text)
    except ValueError:
        pass
    if jobid is not None and not text.lstrip().startswith(("{", "[", "(")):
        h = handle()
        blocks = _job_taskmap(h, jobid)
    else:
        h = None
        blocks = parse_taskmap(text)
    nodes = expand(blocks)
    nnodes = max(nodes) + 1 if nodes else 0

    def task(n):
        if not 0 <= n < len(nodes):
            raise ValueError(f"task {n} is not in the taskmap (tasks 0-{len(nodes) - 1})")
        return nodes[n]

    def node(n):
        if not 0 <= n < nnodes:
            raise ValueError(f"node {n} is not in the taskmap (nodes 0-{nnodes - 1})")
        return [t for t, nd in enumerate(nodes) if nd == n]

    if args.taskids is not None:
        print(IDset(node(args.taskids)).encode())
    elif args.ntasks is not None:
        print(len(node(args.ntasks)))
    elif args.nodeid is not None:
        print(task(args.nodeid))
    elif args.hostname is not None:
        if h is None:
            raise ValueError("--hostname needs a job id (a taskmap alone has no host names)")
        print(_hosts(h, jobid)[task(args.hostname)])
    elif args.to == "raw":
        print(";".join(IDset(node(n)).encode() for n in range(nnodes)))
    elif args.to == "pmi":
        from flux_launch.proto.pmi1 import process_mapping

        print(process_mapping([(b[0], b[1], b[2]) for b in blocks for _ in range(b[3])]))
    elif args.to == "multiline":
        print("\n".join(str(n) for n in nodes))
    else:
        import json

        print(json.dumps({"version": 1, "map": blocks}, separators=(",", ":")))
    return 0


def _job_taskmap(h, jobid):
    from flux_launch.job.event import EventWatch

    watch = EventWatch(h, jobid, "guest.exec.eventlog")
    try:
        for ev in watch:
            if ev.name == "shell.start":
                watch.cancel()
                tm = ev.context.get("taskmap") or {}
                return tm.get("map") or []
    except FileNotFoundError:
        h.rpc("job-list.list-id", {"id": int(jobid)}).get()  # no such job: its error
    raise ValueError(f"{jobid.f58}: the job has no task map: it ended before its shells started")


def _hosts(h, jobid):
    from flux_launch.core.hostlist import Hostlist

    R = h.rpc("job-info.lookup", {"id": int(jobid), "keys": ["R"], "flags": 2}).get()["R"]
    return list(Hostlist(",".join(R.get("execution", {}).get("nodelist") or [])))


# ---- timeleft ------------------------------------------------------------------------

def _timeleft(p, args):
    import time

    h = handle()
    if args.id is not None:
        jobid = _parse_id(p, args.id)
    else:
        # a job's task (FLUX_JOB_ID, a job of this instance), or this instance's initial
        # program or a command in it: the job it runs as in its parent (batch, alloc)
        attrs = {n: h.rpc("attr.get", {"name": n}) for n in ("jobid", "parent-uri")}
        env_id = os.environ.get("FLUX_JOB_ID")
        try:
            own, uri = JobID(attrs["jobid"].get()["value"]), attrs["parent-uri"].get()["value"]
        except OSError:
            own = uri = None
        if env_id and (own is None or _parse_id(p, env_id) != own):
            jobid = _parse_id(p, env_id)
        elif own is not None:
            from flux_launch.client.handle import Flux

            jobid, h = own, Flux(uri)
        else:
            raise ValueError("timeleft: not in a job (give a job id, or run it in a job or in a batch or alloc "
                             "instance)")
    job = h.rpc("job-list.list-id", {"id": int(jobid)}).get()["job"]
    from flux_launch.proto.job import STATE_BITS

    state = job.get("state", 0)
    if state & (STATE_BITS["DEPEND"] | STATE_BITS["PRIORITY"] | STATE_BITS["SCHED"] | STATE_BITS["NEW"]):
        raise ValueError(f"timeleft: job {jobid.f58} has not started")
    exp = job.get("expiration") or 0
    if state & (STATE_BITS["CLEANUP"] | STATE_BITS["INACTIVE"]):
        left = 0
    else:
        left = UINT_MAX if not exp else max(0, int(exp - time.time()))
    if args.human:
        from flux_launch.core import fsd

        print("infinity" if left == UINT_MAX else fsd.format(float(left)))
    else:
        print(left)
    return 0


def _parse_id(p, text):
    try:
        return JobID(text)
    except ValueError:
        p.error(f"invalid job id {text!r}")


# ---- exceptions ----------------------------------------------------------------------

def _raise(p, args):
    from flux_launch.proto.job import raise_payload

    ids, words = [], list(args.words)
    while words:
        w = words[0]
        if w == "--":
            words.pop(0)
            break
        try:
            ids.append(JobID(w))
        except ValueError:
            break
        words.pop(0)
    if not ids:
        p.error("give at least one job id")
    if words and args.message is not None:
        p.error("give the message with -m or after the job ids, not both")
    note = args.message if args.message is not None else " ".join(words)
    if not 0 <= args.severity <= 7:
        p.error("-s/--severity must be 0 (fatal) to 7")
    h = handle()
    futures = [(j, h.rpc("job-manager.raise", raise_payload(j, args.type, note, args.severity))) for j in ids]
    return _report(futures)


def _report(futures):
    code = 0
    for jobid, fut in futures:
        try:
            fut.get()
        except OSError as exc:
            sys.stderr.write(f"flux-job: {jobid.f58}: {exc.strerror or exc}\n")
            code = 1
    return code


def _matching(p, args, states):
    from flux_launch.cli.jobfmt import parse_filter

    userid = os.getuid()
    if args.user == "all":
        userid = -1
    elif args.user:
        import pwd

        try:
            userid = int(args.user) if args.user.isdigit() else pwd.getpwnam(args.user).pw_uid
        except KeyError:
            p.error(f"-u/--user {args.user}: no such user (give a name, a uid or all)")
    try:
        bits, _ = parse_filter(states)
    except ValueError:
        p.error(f"-S/--states={states}: invalid state (use e.g. pending, running, active, sched, run)")
    from flux_launch.proto.job import STATE_BITS

    bits &= ~STATE_BITS["INACTIVE"]  # an inactive job takes no exception or signal
    h = handle()
    jobs = h.rpc("job-list.list", {"states": bits, "results": 0, "userid": userid, "max_entries": 0}).get()["jobs"]
    return h, [JobID(j["id"]) for j in jobs if j.get("state", 0) & bits]


def _bulk(p, args, states, send, what):
    h, jobs = _matching(p, args, states)
    if not args.force:
        if jobs or not getattr(args, "quiet", False):
            sys.stderr.write(f"flux-job: Command matched {len(jobs)} job{'' if len(jobs) == 1 else 's'} "
                             "(-f to confirm)\n")
        return 0
    code = _report([(j, send(h, j)) for j in jobs])
    if jobs or not getattr(args, "quiet", False):
        sys.stderr.write(f"flux-job: {what} {len(jobs)} job{'' if len(jobs) == 1 else 's'}\n")
    return code


def _raiseall(p, args):
    from flux_launch.proto.job import raise_payload

    if not 0 <= args.severity <= 7:
        p.error("-s/--severity must be 0 (fatal) to 7")
    note = " ".join(args.message)
    return _bulk(p, args, args.states,
                 lambda h, j: h.rpc("job-manager.raise", raise_payload(j, args.type, note, args.severity)), "Raised")


def _cancelall(p, args):
    from flux_launch.proto.job import raise_payload

    note = " ".join(args.message)
    return _bulk(p, args, args.states, lambda h, j: h.rpc("job-manager.raise", raise_payload(j, "cancel", note)),
                 "Canceled")


def signum(p, text):
    """The number of signal ``text`` (``15``, ``TERM``, ``SIGTERM``); a usage error otherwise."""
    import signal

    name = text.upper()
    try:
        return int(name) if name.isdigit() else int(signal.Signals[name if name.startswith("SIG") else "SIG" + name])
    except (KeyError, ValueError):
        p.error(f"invalid signal {text!r}")


def _killall(p, args):
    sig = signum(p, args.signal)
    return _bulk(p, args, "run", lambda h, j: h.rpc("job-manager.kill", {"id": int(j), "signum": sig}), "Killed")


HANDLERS = {"taskmap": _taskmap, "timeleft": _timeleft, "raise": _raise, "raiseall": _raiseall,
            "killall": _killall, "cancelall": _cancelall}
