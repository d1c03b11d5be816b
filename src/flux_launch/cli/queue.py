"""``flux queue status|enable|disable|start|stop|drain|idle|list``: the job queue's
state, as flux-core's flux-queue(1).

``disable`` refuses new submissions (they fail with "job submission is disabled:
REASON"), ``enable`` accepts them again; ``stop`` stops scheduling (jobs are still
submitted and wait in SCHED, running ones go on), ``start`` resumes it. ``drain``
waits until no job is left at all, ``idle`` until none is running (it prints how
many still wait). This instance has flux-core's one anonymous queue: a QUEUE
argument is refused, ``-a/--all`` is accepted.
"""

import sys

from flux_launch.cli.base import Parser, handle


def main(cmd, argv):
    p = Parser(cmd)
    sub = p.add_subparsers(dest="sub", required=True,
                           metavar="{list,status,enable,disable,start,stop,drain,idle}")
    ls = sub.add_parser("list", help="list queues and their state")
    ls.add_argument("-q", "--queue", metavar="QUEUE,...", help="only these queues")
    ls.add_argument("-n", "--no-header", action="store_true", help="no header")
    ls.add_argument("-o", "--format", default="?:{queuem:<8.8} {enabled:>2} {started:>2}",
                    help="output format: {queue} {submission} {scheduling} {enabled} {started}...")
    for name, what in (("status", "show whether jobs are accepted and scheduled"),
                       ("enable", "accept new submissions"), ("disable", "refuse new submissions"),
                       ("start", "start scheduling"), ("stop", "stop scheduling (jobs wait in SCHED)")):
        sp = sub.add_parser(name, help=what)
        if name != "status":
            sp.add_argument("-a", "--all", action="store_true", help="all queues")
            sp.add_argument("--quiet", action="store_true", help="print only errors")
        sp.add_argument("-v", "--verbose", action="store_true", help="also show the job manager's counts")
        if name in ("stop", "disable"):
            sp.add_argument("--nocheckpoint", action="store_true",
                            help="do not keep this state across a restart of the instance")
            sp.add_argument("-m", "--message", metavar="REASON", help="why (shown to users)")
        sp.add_argument("-q", "--queue", dest="old_queue", metavar="NAME", help="the queue (as QUEUE)")
        sp.add_argument("queue", metavar="QUEUE", nargs="?", help="the queue")
    for name, what in (("drain", "wait until no job is pending or running"),
                       ("idle", "wait until no job is running")):
        sp = sub.add_parser(name, help=what)
        sp.add_argument("-t", "--timeout", metavar="DURATION", help="give up after this long (FSD)")
        if name == "idle":
            sp.add_argument("--quiet", action="store_true", help="print the pending count only if not zero")
    args = p.parse_args(argv)
    if getattr(args, "old_queue", None) is not None:
        if args.queue is not None:
            raise ValueError(f"Conflicting queues specified as --queue={args.old_queue} and {args.queue}")
        args.queue = args.old_queue
    with handle() as h:
        if args.sub in ("stop", "disable") and args.queue and not _get(h, "job-manager.queue-list")["queues"]:
            # older flux-core took the reason here: say where it goes now
            raise ValueError(f"'{args.queue}' is not a valid queue (this instance has only the anonymous "
                             "queue; give a reason with -m REASON)")
        return globals()[f"_{args.sub}"](h, args)


def _get(h, topic, payload=None, timeout=None):
    return h.rpc(topic, payload or {}, nodeid=0).get(timeout=timeout)


def _status_of(h, args):
    payload = {"name": args.queue} if args.queue else {}
    return _get(h, "job-manager.queue-status", payload)


def _print_enable(st):
    print("Job submission is enabled" if st["enable"] else f"Job submission is disabled: {st['disable_reason']}")


def _print_start(st):
    reason = f": {st['stop_reason']}" if st.get("stop_reason") else ""
    print("Scheduling is started" if st["start"] else f"Scheduling is stopped{reason}")


def _alloc_query(h):
    q = _get(h, "job-manager.alloc-query")
    print(f"{q['queue_length']} alloc requests queued")
    print(f"{q['alloc_pending']} alloc requests pending to scheduler")
    print(f"{q['running']} running jobs")


def _status(h, args):
    st = _status_of(h, args)
    _print_enable(st)
    _print_start(st)
    if args.verbose:
        _alloc_query(h)
    return 0


def _enable_rpc(h, args, enable, reason=None):
    payload = {"enable": enable, "all": args.all}
    if args.queue:
        payload["name"] = args.queue
    if reason:
        payload["reason"] = reason
    _get(h, "job-manager.queue-enable", payload)
    if not args.quiet:
        _print_enable(_status_of(h, args))
    return 0


def _enable(h, args):
    return _enable_rpc(h, args, True)


def _disable(h, args):
    return _enable_rpc(h, args, False, args.message or "disabled by administrator")


def _start_rpc(h, args, start, reason=None, nocheckpoint=False):
    payload = {"start": start, "all": args.all, "nocheckpoint": nocheckpoint}
    if args.queue:
        payload["name"] = args.queue
    if reason:
        payload["reason"] = reason
    _get(h, "job-manager.queue-start", payload)
    if not args.quiet:
        _print_start(_status_of(h, args))
        if args.verbose:
            _alloc_query(h)
    return 0


def _start(h, args):
    return _start_rpc(h, args, True)


def _stop(h, args):
    return _start_rpc(h, args, False, args.message, args.nocheckpoint)


def _timeout(args):
    if not args.timeout:
        return None
    from flux_launch.core import fsd

    return fsd.parse(args.timeout)


def _drain(h, args):
    try:
        _get(h, "job-manager.drain", timeout=_timeout(args))
    except TimeoutError:
        raise OSError(110, f"queue not drained after {args.timeout}") from None
    return 0


def _idle(h, args):
    try:
        pending = _get(h, "job-manager.idle", timeout=_timeout(args))["pending"]
    except TimeoutError:
        raise OSError(110, f"queue not idle after {args.timeout}") from None
    if not args.quiet or pending > 0:
        print(f"{pending} jobs")
    return 0


def _list(h, args):
    if args.queue:
        raise ValueError(f"'{args.queue.split(',')[0]}' is not a valid queue (this instance has only the "
                         "anonymous queue)")
    from flux_launch.cli.outfmt import OutputFormat

    st = _get(h, "job-manager.queue-status")
    row = {"queue": "", "queuem": "", "submission": "enabled" if st["enable"] else "disabled",
           "scheduling": "started" if st["start"] else "stopped", "enabled": "✔" if st["enable"] else "✗",
           "started": "✔" if st["start"] else "✗", "enabled.ascii": "y" if st["enable"] else "n",
           "started.ascii": "y" if st["start"] else "n"}
    headings = {"queue": "QUEUE", "queuem": "QUEUE", "submission": "SUBMIT", "scheduling": "SCHED",
                "enabled": "EN", "started": "ST", "enabled.ascii": "EN", "started.ascii": "ST"}
    OutputFormat(args.format, headings).print_rows([row], args.no_header)
    sys.stdout.flush()
    return 0
