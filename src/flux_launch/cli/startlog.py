"""``flux startlog [--check] [--quiet] [-v]``: the instance's starts and stops
from ``admin.eventlog`` (flux-core's flux-startlog(1)), one run per line::

    2026-12-06 20:30 - 2026-12-06 20:41 (11m)
    2026-12-06 20:42 - crashed
    2026-12-06 20:45 - running (2.1m)

A ``start`` without its ``finish`` is a run that crashed (the broker was killed or
the machine went down; what it wrote last may be lost). ``--check`` exits 1 when
the last run before this one crashed; ``--quiet`` prints nothing; ``-v`` shows the
version each run started with.
"""

import sys
import time

from flux_launch.cli.base import Parser, handle


def main(cmd, argv):
    p = Parser("startlog", description="List the instance's starts and stops (admin.eventlog).",
               usage="flux startlog [OPTIONS]")
    p.add_argument("--check", action="store_true", help="exit 1 if the instance last restarted from a crash")
    p.add_argument("--quiet", action="store_true", help="print nothing (useful with --check)")
    p.add_argument("-v", "--show-version", action="store_true", help="show the version of each start")
    args = p.parse_args(argv)
    from flux_launch.services.startlog import KEY, events

    h = handle()
    try:
        text = h.rpc("kvs.get", {"key": KEY}, nodeid=0).get()["value"]
    except FileNotFoundError:
        text = ""
    except IsADirectoryError:
        raise ValueError(f"{KEY} is a directory, not an eventlog (flux kvs unlink -R {KEY} repairs it)") from None
    if not isinstance(text, str):
        raise ValueError(f"{KEY} holds {type(text).__name__} JSON, not an eventlog (flux kvs unlink {KEY} "
                         "repairs it)")
    write = (lambda s: None) if args.quiet else sys.stdout.write
    started, crashed, last = False, False, 0.0
    for ev in events(text):  # entries not ours are tolerated, skipped
        ctx = ev.get("context") or {}
        when = _when(ev["timestamp"])
        if ev["name"] == "start":
            if started:
                write("crashed\n")
                crashed = True
            if args.show_version:
                write(f"{ctx.get('core_version', ''):>25}  ")
            write(f"{when} - ")
            started = True
        elif started:
            write(f"{when} ({_fsd(ev['timestamp'] - last)})\n")
            started, crashed = False, False
        last = ev["timestamp"]
    if started:
        write(f"running ({_fsd(time.time() - last)})\n")
    return 1 if args.check and crashed else 0


def _when(ts):
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _fsd(seconds):
    from flux_launch.core import fsd

    return fsd.format(max(0.0, seconds), precision=2)
