"""``flux update [OPTIONS] JOBID KEY=VALUE...``: change a pending or running job's
jobspec (flux-core's flux-update(1)).

KEY is a dotted jobspec path; one that does not start with ``attributes.``,
``resources.`` or ``tasks.`` is taken under ``attributes.system.``; ``name`` is
``attributes.system.job.name``. VALUE is JSON when it parses as JSON, else a
string; a duration (``duration``) is an RFC 23 FSD (``60``, ``1m``, ``1.5h``,
``inf``), or ``+FSD``/``-FSD`` to lengthen or shorten the current one. The job
manager applies all the updates or none (``services/job_manager/update.py``).

``-n/--dry-run`` prints the updates as JSON and sends nothing; ``-v/--verbose``
says ``updated KEY to VALUE`` for each; ``--wait`` returns once the job's
``jobspec-update`` event is in its eventlog.

Exit status: 0; 1 for a refused update, an unknown or inactive job; 2 for a bad
command line.
"""

import json
import math
import sys
import time

from flux_launch.cli.base import Parser, handle
from flux_launch.core.jobid import JobID

ALIASES = {"name": "attributes.system.job.name"}
DURATION = "attributes.system.duration"


def _parser():
    p = Parser("update", description="Update a pending or running job's jobspec.",
               usage="flux update [OPTIONS] JOBID KEY=VALUE [KEY=VALUE...]")
    p.add_argument("-n", "--dry-run", action="store_true", help="print the updates as JSON; do not apply them")
    p.add_argument("-v", "--verbose", action="store_true", help="say what was updated")
    p.add_argument("--wait", action="store_true", help="wait for the update to be in the job's eventlog")
    p.add_argument("jobid", metavar="JOBID")
    p.add_argument("updates", nargs="+", metavar="KEY=VALUE", help="jobspec updates, e.g. duration=+10m name=x")
    return p


def main(cmd, argv):
    p = _parser()
    args = p.parse_args(argv)
    try:
        jobid = JobID(args.jobid)
    except ValueError:
        p.error(f"JOBID: invalid job id {args.jobid!r}")
    pairs = []
    for arg in args.updates:
        key, eq, value = arg.partition("=")
        if not eq or not key:
            p.error(f"{arg!r}: give KEY=VALUE (e.g. duration=1h, name=myjob)")
        key = ALIASES.get(key, key)
        if not key.startswith(("attributes.", "resources.", "tasks.")):
            key = f"attributes.system.{key}"
        pairs.append((key, value))
    h = None
    updates = {}
    for key, value in pairs:
        if key == DURATION:
            if value.startswith(("+", "-")) and h is None:
                h = handle()
            updates[key] = _duration(h, jobid, value)
        else:
            try:
                updates[key] = json.loads(value)
            except json.JSONDecodeError:
                updates[key] = value
    if args.dry_run:
        print(json.dumps(updates))
        return 0
    h = h or handle()
    t0 = time.time()
    h.rpc("job-manager.update", {"id": int(jobid), "updates": updates}).get()
    if args.wait:
        _wait(h, jobid, updates, t0)
    if args.verbose:
        for key, value in updates.items():
            sys.stderr.write(f"flux-update: updated {key} to {value}\n")
    return 0


def _duration(h, jobid, value):
    """The new duration in seconds (0: unlimited) of ``[+-]FSD``."""
    from flux_launch.core import fsd

    rel = value[:1] if value.startswith(("+", "-")) else ""
    try:
        amount = fsd.parse(value[1:] if rel else value)
    except ValueError as exc:
        raise ValueError(f"duration: {exc}") from None
    if rel:
        jobspec = h.rpc("job-info.lookup", {"id": int(jobid), "keys": ["jobspec"], "flags": 2}).get()["jobspec"]
        current = float(jobspec.get("attributes", {}).get("system", {}).get("duration", 0) or 0)
        if current == 0:
            raise ValueError(f"duration for {jobid} is unlimited, can't update by {value}")
        if rel == "-":
            if current - amount <= 0:
                raise ValueError(f"current duration for {jobid} ({fsd.format(current)}) cannot be reduced by "
                                 f"{value[1:]}")
            amount = current - amount
        else:
            amount = current + amount
    return 0.0 if math.isinf(amount) else amount


def _wait(h, jobid, updates, t0):
    """Return once a ``jobspec-update`` event posted since ``t0`` carries ``updates``."""
    from flux_launch.job.event import EventWatch

    watch = EventWatch(h, jobid)
    for ev in watch:
        if ev.name == "jobspec-update" and ev.timestamp >= t0 and all(
                ev.context.get(k) == v for k, v in updates.items()):
            watch.cancel()
            return
