"""``flux job SUBCOMMAND``: attach, info, eventlog, wait-event, status, wait, last,
submit (``cli/jobsubmit.py``), kill, cancel, urgency, purge, id, hostpids; taskmap,
timeleft, raise, raiseall, killall, cancelall (``cli/jobextra.py``).

``attach --debug`` exposes the job's tasks to a parallel debugger through the
MPIR interface before it attaches as usual (``job/mpir.py``; ``--debug-emulate``,
hidden, does the same without a debugger, for tests). ``hostpids`` prints the
tasks' ``host:pid`` pairs (``job/proctable.py``).

``eventlog`` and ``wait-event`` print entries as flux-core does (cli/eventfmt.py):
``-f text|json``, ``-T raw|iso|offset|human``, ``-H`` (human times, colors on a
terminal), ``-L/--color[=WHEN]``; ``eventlog -F`` follows a job until it is
inactive, ``-p exec|output|input`` reads the guest eventlogs. ``info ID KEY...``
prints jobspec, R, eventlog, guest.exec.eventlog, guest.output, guest.input:
jobspec and R as ``flux update`` left them (``-b/--base``: as stored at submission
and allocation; ``-o/--original``: the jobspec as submitted, the same here: nothing
alters a jobspec at ingest).

Every job id may be given in any encoding (f58, decimal, hex, dothex, kvs, words).
An unknown job: ``flux-job: ƒXYZ: no such job``, exit 1.
"""

import json
import os
import sys
import time

from flux_launch.cli.base import Parser, handle
from flux_launch.core.jobid import JobID
from flux_launch.proto.job import (STATE_BITS, URGENCY_DEFAULT, URGENCY_EXPEDITE, URGENCY_HOLD, describe_status,
                                   raise_payload, term_signal)


def _jobid(p, text):
    try:
        return JobID(text)
    except ValueError as exc:
        p.error(str(exc))


def _parser():
    from argparse import SUPPRESS

    p = Parser("job")
    sub = p.add_subparsers(dest="sub", required=True, metavar="SUBCOMMAND")
    s = sub.add_parser("attach", help="print a job's output and wait for it")
    s.add_argument("-l", "--label-io", action="store_true")
    s.add_argument("--debug", action="store_true", help="enable a parallel debugger to attach to the running job")
    s.add_argument("--debug-emulate", action="store_true", help=SUPPRESS)
    s.add_argument("id")
    s = sub.add_parser("hostpids", help="print host:pid of every task of a running job")
    s.add_argument("-d", "--delimiter", default=",", metavar="STRING", help="output delimiter (default ',')")
    s.add_argument("-r", "--ranks", default="all", metavar="IDSET", help="only the tasks of these ranks")
    s.add_argument("-t", "--timeout", metavar="FSD", help="give up after this long")
    s.add_argument("id")
    s = sub.add_parser("info", help="print a job's jobspec, R, eventlog, guest.exec.eventlog, guest.output...")
    s.add_argument("-o", "--original", action="store_true",
                   help="for jobspec, the jobspec as submitted (here: the same, nothing alters it at ingest)")
    s.add_argument("-b", "--base", action="store_true",
                   help="for jobspec or R, the version before updates (flux update)")
    s.add_argument("id")
    s.add_argument("key", nargs="+", help="jobspec, R, eventlog, guest.exec.eventlog, guest.input, guest.output")
    s = sub.add_parser("eventlog", help="print a job's eventlog")
    _event_options(s)
    s.add_argument("-p", "--path", default="eventlog",
                   help="eventlog path, or exec, output, input for guest.exec.eventlog ... (default: eventlog)")
    s.add_argument("-F", "--follow", "-w", "--watch", dest="watch", action="store_true",
                   help="follow events until the job is inactive")
    s.add_argument("id")
    s = sub.add_parser("wait-event", help="wait for an event of a job")
    s.add_argument("-t", "--timeout", type=float, help="give up after this many seconds")
    s.add_argument("-p", "--path", default="eventlog", help="eventlog path, or exec, output, input")
    _event_options(s)
    s.add_argument("-q", "--quiet", action="store_true")
    s.add_argument("-v", "--verbose", action="store_true", help="print the events before it too")
    s.add_argument("id")
    s.add_argument("event")
    s = sub.add_parser("status", help="wait for jobs and exit with the highest exit code")
    s.add_argument("-v", "--verbose", action="count", default=0)
    s.add_argument("ids", nargs="+", metavar="ID")
    s = sub.add_parser("wait", help="wait for a waitable job (or --all)")
    s.add_argument("-a", "--all", action="store_true")
    s.add_argument("-v", "--verbose", action="store_true")
    s.add_argument("--progress", action="store_true", help="with --all, show the jobs' states as a progress bar")
    s.add_argument("--jps", action="store_true", help="with --progress, show jobs/s instead of the elapsed time")
    s.add_argument("id", nargs="?")
    s = sub.add_parser("last", help="print the id of your last submitted job")
    s = sub.add_parser("submit", help="submit a jobspec (V1, or a JobSpec NG workflow) from FILE or stdin")
    s.add_argument("-u", "--urgency", default="16", metavar="N", help="urgency 0-31 (default 16)")
    s.add_argument("-f", "--flags", default="", metavar="FLAGS", help="waitable, debug, novalidate")
    s.add_argument("--wait", action="store_true", help="wait for the jobs; exit with the highest exit code")
    s.add_argument("file", nargs="?", metavar="FILE")
    s = sub.add_parser("kill", help="send a signal to a job's tasks")
    s.add_argument("-s", "--signal", default="SIGTERM")
    s.add_argument("ids", nargs="+", metavar="ID")
    s = sub.add_parser("cancel", help="cancel jobs")
    s.add_argument("-m", "--message", default="")
    s.add_argument("ids", nargs="+", metavar="ID")
    s = sub.add_parser("urgency", help="change a pending job's urgency")
    s.add_argument("id")
    s.add_argument("urgency")
    s = sub.add_parser("purge", help="remove inactive jobs (oldest first) from the job manager and the KVS")
    s.add_argument("--age-limit", metavar="FSD", help="purge jobs that became inactive longer ago than FSD")
    s.add_argument("--num-limit", metavar="COUNT", help="purge oldest inactive jobs until COUNT are left")
    s.add_argument("--batch", metavar="COUNT", default="50", help="limit jobs per request (default 50)")
    s.add_argument("-f", "--force", action="store_true", help="perform the irreversible purge")
    s.add_argument("ids", nargs="*", metavar="ID", help="purge these inactive jobs")
    from flux_launch.cli.jobextra import add_parsers

    add_parsers(sub)
    s = sub.add_parser("id", help="convert job ids between encodings")
    s.add_argument("-t", "--to", default="dec",
                   choices=("dec", "hex", "dothex", "kvs", "f58", "f58plain", "words", "emoji"))
    s.add_argument("ids", nargs="*", metavar="ID")
    return p


def _event_options(s):
    """-f, -T, -H, -L of eventlog and wait-event (cli/eventfmt.py)."""
    s.add_argument("-f", "--format", default="text", metavar="FORMAT", help="text (default) or json")
    s.add_argument("-T", "--time-format", default="raw", metavar="FORMAT",
                   help="raw (default), iso, offset or human")
    s.add_argument("-H", "--human", action="store_true", help="human-readable output: -f text -T human, colored "
                   "on a terminal")
    s.add_argument("-L", "--color", default="auto", metavar="WHEN",
                   help="color the output: always (WHEN left out), never, or auto (default)")


def _color_argv(argv):
    """``argv`` with eventlog's and wait-event's -L/--color made explicit: as in
    flux-core (getopt's optional argument), WHEN counts only when attached
    (``-Lnever``, ``--color=never``); a bare ``-L`` or ``--color`` is ``always``."""
    if not argv or argv[0] not in ("eventlog", "wait-event"):
        return argv
    out = argv[:1]
    for i, arg in enumerate(argv[1:], 1):
        if arg == "--":
            return out + argv[i:]
        if arg in ("-L", "--color"):
            arg = "--color=always"
        elif arg.startswith("-L"):
            arg = "--color=" + arg[2:]
        out.append(arg)
    return out


def main(cmd, argv):
    p = _parser()
    args = p.parse_args(_color_argv(list(argv)))
    fn = globals().get("_" + args.sub.replace("-", "_"))
    if fn is None:
        from flux_launch.cli.jobextra import HANDLERS

        fn = HANDLERS[args.sub]
    return fn(p, args)


def _submit(p, args):
    from flux_launch.cli.jobsubmit import main as submit_main

    return submit_main(p, args)


def _attach(p, args):
    from flux_launch.cli.attach import attach

    jobid = _jobid(p, args.id)
    h = handle()
    if args.debug or args.debug_emulate:
        from flux_launch.job import mpir

        mpir.setup(h, jobid, emulate=args.debug_emulate)
    return attach(h, jobid, cmd="job", label=args.label_io)


def _hostpids(p, args):
    """flux-core's flux job hostpids: waits for the job's tasks to start."""
    from flux_launch.core import fsd
    from flux_launch.job.proctable import proctable

    ranks = None
    if args.ranks != "all":
        from flux_launch.core.idset import decode

        try:
            ranks = set(decode(args.ranks))
        except ValueError as exc:
            p.error(f"--ranks={args.ranks}: {exc}")
    timeout = None
    if args.timeout is not None:
        try:
            timeout = fsd.parse(args.timeout)
        except ValueError as exc:
            p.error(f"--timeout: {exc}")
    delim = "\n" if args.delimiter == "\\n" else args.delimiter
    table = proctable(handle(), _jobid(p, args.id), timeout, what="hostpids")
    if not table.entries:
        raise OSError(2, "hostpids: the job's shells report no task")
    print(delim.join(f"{e['host']}:{e['pid']}" for e in table.entries if ranks is None or e["rank"] in ranks))
    return 0


def _info(p, args):
    """flux-core's flux job info: the current jobspec and R, or with -o/--original
    or -b/--base those stored before any update."""
    jobid = _jobid(p, args.id)
    h = handle()
    try:
        flags = 0 if args.base or args.original else 2  # flux-core's FLUX_JOB_LOOKUP_CURRENT
        resp = h.rpc("job-info.lookup", {"id": int(jobid), "keys": args.key, "flags": flags}).get()
    except FileNotFoundError:
        _missing(h, jobid, args.key, "no such key {key!r} (keys: jobspec, R, eventlog, guest.exec.eventlog, "
                 "guest.input, guest.output)")
        raise
    for key in args.key:
        value = resp[key]
        print(value.rstrip("\n") if isinstance(value, str) else json.dumps(value, separators=(",", ":")))
    return 0


def _missing(h, jobid, keys, text):
    """After a lookup of ``keys`` answered ENOENT: when the job exists, raise the
    first of ``keys`` it lacks as ``OSError(ENOENT, text)`` (``{key}`` in ``text``
    names it); when the job does not, return (the caller raises the lookup's error)."""
    try:
        h.rpc("job-info.lookup", {"id": int(jobid), "keys": ["eventlog"]}).get()
    except FileNotFoundError:
        return
    for key in keys:
        try:
            h.rpc("job-info.lookup", {"id": int(jobid), "keys": [key]}).get()
        except FileNotFoundError:
            raise FileNotFoundError(2, f"{jobid}: " + text.format(key=key)) from None


def _formatter(args):
    """The ``EventFormatter`` of -f, -T, -H and -L (-H: text, human times, colors on a terminal).

    Raises:
        ValueError: flux-core's ``invalid format type 'X'``, ``invalid
            time-format type 'X'``, ``invalid value: --color=X``.
    """
    from flux_launch.cli.eventfmt import EventFormatter, color_wanted

    fmt, time_format, when = args.format, args.time_format, args.color
    if args.human:
        fmt, time_format, when = "text", "human", "auto"
    evf = EventFormatter(fmt, time_format)
    evf.color = color_wanted(when, sys.stdout)
    return evf


# flux-core's short names for the guest eventlogs
_PATHS = {"exec": "guest.exec.eventlog", "output": "guest.output", "input": "guest.input"}


def _eventlog(p, args):
    from flux_launch.job.event import EventWatch

    jobid = _jobid(p, args.id)
    evf = _formatter(args)
    args.path = _PATHS.get(args.path, args.path)
    h = handle()
    if not args.watch:
        from flux_launch.proto.eventlog import decode

        try:
            value = h.rpc("job-info.lookup", {"id": int(jobid), "keys": [args.path]}).get()[args.path]
        except FileNotFoundError:  # flux-core's words for a path the job lacks
            _missing(h, jobid, [args.path], "eventlog path {key} not found (e.g. eventlog, exec, output, input)")
            raise
        for entry in decode(value):
            print(evf.format(entry))
        sys.stdout.flush()
        return 0
    watch = EventWatch(h, jobid, args.path)
    for ev in watch:
        print(evf.format(ev), flush=True)
        if args.path == "eventlog" and ev.name == "clean":
            break
    return 0


def _wait_event(p, args):
    from flux_launch.job.event import EventWatch

    jobid = _jobid(p, args.id)
    args.path = _PATHS.get(args.path, args.path)
    evf = _formatter(args)
    h = handle()
    if args.timeout is not None:
        import signal

        def expire(_sig, _frame):
            raise TimeoutError

        signal.signal(signal.SIGALRM, expire)
        signal.setitimer(signal.ITIMER_REAL, args.timeout)
    try:
        for ev in EventWatch(h, jobid, args.path):
            evf.seen(ev)
            if ev.name == args.event or args.verbose:
                if not args.quiet:
                    print(evf.format(ev), flush=True)
            if ev.name == args.event:
                return 0
            if args.path == "eventlog" and ev.name == "clean":
                break
    except TimeoutError:
        sys.stderr.write(f"flux-job: wait-event timeout on event '{args.event}'\n")
        return 1
    sys.stderr.write(f"flux-job: {jobid}: the job ended without event '{args.event}'\n")
    return 1


def _status(p, args):
    from flux_launch.job.wait import result

    h = handle()
    rc = 0
    for text in args.ids:
        jobid = _jobid(p, text)
        info = result(h, jobid)
        code = info.returncode
        if args.verbose:
            ws = info._info.get("waitstatus")
            what = describe_status(ws) if ws is not None and term_signal(ws) else f"exited with exit code {code}"
            if info._info.get("exception_occurred"):
                what = f"exception {info._info.get('exception_type')}: {info._info.get('exception_note')}"
            sys.stderr.write(f"{jobid}: {what}\n")
        rc = max(rc, code)
    return rc


def _wait(p, args):
    from flux_launch.job.wait import wait

    h = handle()
    if args.progress and not args.all:
        p.error("--progress needs --all (the progress of every waitable job)")
    if args.all:
        failed = 0
        if args.progress:
            failed = _wait_progress(h, args)
        while True:  # (after --progress: the jobs submitted since)
            try:
                res = wait(h)
            except OSError as exc:
                if exc.errno == 10:  # ECHILD: nothing left to wait for
                    break
                raise
            failed += _report(res, args.verbose)
        return 1 if failed else 0
    res = wait(h, _jobid(p, args.id) if args.id else 0)
    if not args.id:
        print(res.jobid)
    if not res.success:
        sys.stderr.write(f"flux-job: {res.jobid}: {res.errstr}\n")
        return 1
    return 0


def _report(res, verbose):
    """Say how a waited job ended (a failure always, a success with -v); 1 if it failed."""
    if not res.success:
        sys.stderr.write(f"{res.jobid}: {res.errstr}\n")
        return 1
    if verbose:
        sys.stderr.write(f"{res.jobid}: Success\n")
    return 0


def _wait_progress(h, args):
    """``wait --all --progress``: the user's waitable jobs not yet waited for are
    each waited for by id (all requests at once; one already waited for answers
    ECHILD and is left out), their states shown as they go; the number that failed."""
    import errno

    from flux_launch.cli.progress import JobStates, Progress
    from flux_launch.job.wait import JobWaitResult

    every_state = sum(STATE_BITS.values())
    jobs = h.rpc("job-list.list", {"states": every_state, "userid": os.getuid(), "max_entries": 0}).get()["jobs"]
    waits = [(j, h.rpc("job-manager.wait", {"id": j["id"]})) for j in jobs if j.get("waitable")]
    done = {}  # the answers of the inactive jobs, which come at once
    for job, fut in waits:
        if job["state"] == STATE_BITS["INACTIVE"]:
            try:
                done[job["id"]] = fut.get()
            except OSError as exc:
                if exc.errno != errno.ECHILD:
                    raise
                done[job["id"]] = None  # already waited for: not ours to show
    waits = [(job, fut) for job, fut in waits if done.get(job["id"], True) is not None]
    if not waits:
        return 0
    t0 = min(job.get("t_submit", time.time()) for job, _ in waits)
    states = JobStates(h, [JobID(job["id"]) for job, _ in waits])
    progress = Progress(len(waits), states.counts, args.jps, t0)
    states.on_change = progress.update
    progress.start(h)
    try:
        states.run()
    finally:
        progress.stop()
    failed = 0
    for job, fut in waits:
        try:
            resp = done.get(job["id"]) or fut.get()
        except OSError as exc:
            if exc.errno != errno.ECHILD:  # (another waiter took it meanwhile)
                raise
            continue
        failed += _report(JobWaitResult(JobID(resp["id"]), resp["success"], resp["errstr"]), args.verbose)
    return failed


def _last(p, args):
    every_state = sum(STATE_BITS.values())
    jobs = handle().rpc("job-list.list", {"states": every_state, "userid": os.getuid(), "max_entries": 1}).get()["jobs"]
    if not jobs:
        raise OSError(2, "you have submitted no job")
    print(JobID(jobs[0]["id"]))
    return 0


def _kill(p, args):
    from flux_launch.cli.jobextra import signum as parse_signal

    signum = parse_signal(p, args.signal)
    h = handle()
    for text in args.ids:
        h.rpc("job-manager.kill", {"id": int(_jobid(p, text)), "signum": signum}).get()
    return 0


def _cancel(p, args):
    h = handle()
    for text in args.ids:
        h.rpc("job-manager.raise", raise_payload(_jobid(p, text), "cancel", args.message)).get()
    return 0


def _urgency(p, args):
    words = {"hold": URGENCY_HOLD, "expedite": URGENCY_EXPEDITE, "default": URGENCY_DEFAULT}
    value = words.get(args.urgency.lower())
    if value is None:
        try:
            value = int(args.urgency)
        except ValueError:
            p.error(f"invalid urgency {args.urgency!r}: 0-31, hold, default or expedite")
    handle().rpc("job-manager.urgency", {"id": int(_jobid(p, args.id)), "urgency": value}).get()
    return 0


def _purge(p, args):
    """flux-core's flux job purge: without --force, only say how many would go."""
    from flux_launch.core import fsd

    def integer(option, text):
        try:
            return int(text)
        except ValueError:
            p.error(f"{option}: invalid value {text!r}: expected an integer")

    age = -1.0
    if args.age_limit is not None:
        try:
            age = fsd.parse(args.age_limit)
        except ValueError as exc:
            p.error(f"--age-limit: {exc}")
    num = -1 if args.num_limit is None else integer("--num-limit", args.num_limit)
    batch = integer("--batch", args.batch)
    h = handle()
    total = 0
    try:
        if args.ids:
            if args.age_limit is not None or args.num_limit is not None:
                p.error("job IDs cannot be combined with --age-limit or --num-limit")
            for jobid in [_jobid(p, text) for text in args.ids]:
                total += h.rpc("job-manager.purge-id", {"id": int(jobid), "force": args.force}).get()["count"]
        else:
            while True:
                count = h.rpc("job-manager.purge", {"age_limit": age, "num_limit": num, "batch": batch,
                                                    "force": args.force}).get()["count"]
                total += count
                if not args.force or count != batch:
                    break
        inactive = h.rpc("job-manager.stats-get").get()["inactive_jobs"]
    except OSError as exc:
        raise OSError(exc.errno, f"purge: {exc.strerror}") from None
    if args.force:
        print(f"purged {total} inactive jobs, {inactive} remaining")
    else:
        print(f"use --force to purge {total} of {inactive} inactive jobs")
    return 0


def _id(p, args):
    ids = args.ids or [line.strip() for line in sys.stdin if line.strip()]
    for text in ids:
        print(_jobid(p, text).encode(args.to))
    return 0
