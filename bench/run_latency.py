#!/usr/bin/env python3
"""Launch latency and throughput inside a running instance.

Usage: bench/run_latency.py [-r REPEATS] [--json FILE]

- ``flux run -n N true`` for N = 1, 2, 8, in an instance of N brokers (at most
  4; this machine's brokers share its cores): median, min and max wall time of
  the whole command as a user times it.
- ``flux submit --cc=1-500 --quiet true`` then ``flux queue drain``: jobs per
  second from the first submit to the queue drained, in a 1-broker instance.

For reference (../shared/ANCHORS.md, same kind of machine): flux-core 0.88 takes
0.200 s for ``flux run -n1 true`` and drains 30 jobs/s; Slurm's srun 0.034 s.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from flux_launch.testing import Instance  # noqa: E402

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")


def timed(inst, *args):
    t0 = time.perf_counter()
    inst.run(FLUX, *args, timeout=300)
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-r", "--repeats", type=int, default=21)
    p.add_argument("--jobs", type=int, default=500, help="jobs for the throughput figure")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    results = {"latency": {}, "throughput": {}}
    print(f"{'flux run -n N true':<28} {'brokers':>7} {'median':>8} {'min':>8} {'max':>8}   (s, {args.repeats} runs)")
    for n in (1, 2, 8):
        size = min(n, 4)
        with Instance(size=size) as inst:
            for _ in range(3):
                timed(inst, "run", "-n", str(n), "true")
            ts = [timed(inst, "run", "-n", str(n), "true") for _ in range(args.repeats)]
        med = statistics.median(ts)
        results["latency"][n] = {"brokers": size, "median": med, "min": min(ts), "max": max(ts)}
        print(f"{'N=' + str(n):<28} {size:>7} {med:8.3f} {min(ts):8.3f} {max(ts):8.3f}")
    with Instance(size=1) as inst:
        timed(inst, "submit", "--cc=1-20", "--quiet", "true")
        timed(inst, "queue", "drain")
        t0 = time.perf_counter()
        inst.run(FLUX, "submit", f"--cc=1-{args.jobs}", "--quiet", "true", timeout=600)
        inst.run(FLUX, "queue", "drain", timeout=600)
        dt = time.perf_counter() - t0
    rate = args.jobs / dt
    results["throughput"] = {"jobs": args.jobs, "seconds": dt, "jobs_per_s": rate}
    print(f"flux submit --cc=1-{args.jobs} true, to drained: {dt:.2f} s, {rate:.0f} jobs/s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
