#!/usr/bin/env python3
"""Instance start-up: median wall time of ``flux start --test-size=N true``.

Usage: bench/start.py [-r REPEATS] [--json FILE] [N ...]   (default N: 1 4 16)

Each figure is the median (and min/max) of REPEATS runs of the whole command,
from fork to exit, as a user would time it. Runs alternate between sizes so that
a slow spell of the machine spreads over all of them. For reference, flux-core
0.88 takes 1.43 s (N=1) and 2.18 s (N=4) on a 2-core machine (../shared/ANCHORS.md).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")


def once(n):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLUX_", "PMI_"))}
    t0 = time.perf_counter()
    res = subprocess.run([FLUX, "start", f"--test-size={n}", "true"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"bench: flux start --test-size={n} true failed ({res.returncode}): {res.stderr.decode()}")
    return dt


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-r", "--repeats", type=int, default=11)
    p.add_argument("--json", help="also write the results to this file")
    p.add_argument("sizes", nargs="*", type=int, default=[1, 4, 16])
    args = p.parse_args()
    times = {n: [] for n in args.sizes}
    for n in args.sizes:  # warm-up: page cache, .pyc files
        once(n)
    for _ in range(args.repeats):
        for n in args.sizes:
            times[n].append(once(n))
    print(f"{'flux start --test-size=N true':<32} {'median':>8} {'min':>8} {'max':>8}   (s, {args.repeats} runs)")
    results = {}
    for n, ts in times.items():
        med = statistics.median(ts)
        results[n] = {"median": med, "min": min(ts), "max": max(ts), "runs": ts}
        print(f"{'N=' + str(n):<32} {med:8.3f} {min(ts):8.3f} {max(ts):8.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"benchmark": "flux start --test-size=N true", "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
