"""``flux cancel [-m MESSAGE] [--all] [ID...]``: cancel jobs (a pending job never
runs; a running one is killed). ``--all`` cancels every active job of yours."""

import os
import sys

from flux_launch.cli.base import Parser, handle
from flux_launch.core.jobid import JobID
from flux_launch.proto.job import STATE_BITS, raise_payload

_ACTIVE = sum(STATE_BITS.values()) & ~STATE_BITS["INACTIVE"]  # job-list's states of every active job


def main(cmd, argv):
    p = Parser(cmd, description="Cancel jobs.")
    p.add_argument("-m", "--message", default="", help="a note stored with the cancel exception")
    p.add_argument("--all", action="store_true", help="cancel all your active jobs")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing with --all")
    p.add_argument("ids", nargs="*", metavar="ID")
    args = p.parse_args(argv)
    if not args.ids and not args.all:
        p.error("give job ids, or --all")
    if args.ids and args.all:
        p.error("give job ids or --all, not both")
    h = handle()
    if args.all:
        jobs = h.rpc("job-list.list", {"states": _ACTIVE, "userid": os.getuid()}).get()["jobs"]
        ids = [JobID(j["id"]) for j in jobs]
    else:
        try:
            ids = [JobID(text) for text in args.ids]
        except ValueError as exc:
            p.error(str(exc))
    futures = [(j, h.rpc("job-manager.raise", raise_payload(j, "cancel", args.message))) for j in ids]
    errors = 0
    for _jobid, fut in futures:
        try:
            fut.get()
        except OSError as exc:
            errors += 1
            sys.stderr.write(f"flux-{cmd}: {exc.strerror}\n")
    if args.all and not args.quiet:
        sys.stderr.write(f"flux-{cmd}: Canceled {len(ids) - errors} jobs ({errors} errors)\n")
    return 1 if errors else 0
