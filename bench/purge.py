#!/usr/bin/env python3
"""Inactive-job purge under load: memory and disk stay bounded.

Usage: bench/purge.py [--jobs N] [--bursts B] [--limit L] [--exec testexec|true] [--size S]

Starts an instance of S brokers (default 1) with
``-Sjob-manager.inactive-num-limit=L`` (default 1000) on a fresh statedir, then
runs B bursts (default 3) of ``flux submit --cc=1-N`` (default 10,000) jobs, each
burst waited for with ``flux queue drain``. The jobs are ``true`` under the test
exec method (``-S system.exec.test.run_duration=0``: no processes, so the job
manager, KVS and purge are what is measured) or, with ``--exec true``, real
``true`` processes. After each burst it prints the burst's jobs/s (submit to
drained), rank 0's RSS (VmRSS of the broker), the inactive jobs kept, and the
statedir's size (all files, and without sqlite's -wal/-shm). The bar: the RSS
after burst 3 within 1.5x of the RSS after burst 1, and a statedir that stops
growing. The figures go to stdout as a table and, with ``--json FILE``, as JSON.
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
from flux_launch.testing import Instance  # noqa: E402


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _sizes(statedir):
    total = core = 0
    for root, _dirs, files in os.walk(statedir):
        for name in files:
            size = os.path.getsize(os.path.join(root, name))
            total += size
            if not name.endswith(("-wal", "-shm")):
                core += size
    return total, core


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=10000, help="jobs per burst (default 10000)")
    ap.add_argument("--bursts", type=int, default=3, help="bursts (default 3)")
    ap.add_argument("--limit", type=int, default=1000, help="job-manager.inactive-num-limit (default 1000)")
    ap.add_argument("--exec", choices=("testexec", "true"), default="testexec",
                    help="testexec (no processes, default) or real true processes")
    ap.add_argument("--size", type=int, default=1, help="brokers in the instance (default 1)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-purge-") as tmp:
        statedir = os.path.join(tmp, "state")
        attrs = {"statedir": statedir, "job-manager.inactive-num-limit": args.limit}
        with Instance(size=args.size, attrs=attrs, timeout=120) as inst:
            pid = int(inst.flux("getattr", "broker.pid").stdout)
            rss0 = _rss_kib(pid)
            submit = ["submit", f"--cc=1-{args.jobs}"]
            if args.exec == "testexec":
                submit += ["--setattr=system.exec.test.run_duration=0"]
            submit += ["true"]
            for burst in range(1, args.bursts + 1):
                t0 = time.monotonic()
                inst.flux(*submit, timeout=3600)
                inst.flux("queue", "drain", timeout=3600)
                elapsed = time.monotonic() - t0
                kept = len(inst.flux("jobs", "-a", "-n", "-o", "{id}", timeout=600).stdout.split())
                total, core = _sizes(statedir)
                rows.append({"burst": burst, "jobs": args.jobs, "seconds": round(elapsed, 2),
                             "jobs_per_s": round(args.jobs / elapsed, 1), "rss_kib": _rss_kib(pid),
                             "kept": kept, "statedir_bytes": total, "statedir_bytes_no_wal": core})
                r = rows[-1]
                print(f"burst {burst}: {r['jobs']} jobs in {r['seconds']} s ({r['jobs_per_s']} jobs/s), "
                      f"rank-0 RSS {r['rss_kib'] / 1024:.1f} MiB, {kept} inactive jobs kept, statedir "
                      f"{total / 1e6:.2f} MB ({core / 1e6:.2f} MB without -wal/-shm)", flush=True)
            assert inst.stop() == 0, inst.log()
    ratio = rows[-1]["rss_kib"] / rows[0]["rss_kib"]
    print(f"RSS at start {rss0 / 1024:.1f} MiB; after burst {len(rows)} / after burst 1: {ratio:.2f} "
          f"({'within' if ratio <= 1.5 else 'OVER'} the 1.5x bar)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rss_start_kib": rss0, "bursts": rows, "rss_ratio": ratio}, f, indent=1)
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
