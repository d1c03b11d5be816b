#!/usr/bin/env python3
"""Labelled output throughput: ``flux run -n2 -l`` of a command that writes 100-byte
lines, to /dev/null, with the C and the Python labeller, beside ``mpiexec.hydra -l``.

Usage: bench/io.py [-r REPEATS] [--mb MB] [--json FILE]

Each task writes MB/2 megabytes (default 200 MB in all). Figures are MB/s of
output over the whole command's wall time (median). For reference
(../shared/ANCHORS.md): flux-core 1.4 MB/s, Slurm 33 MB/s, Hydra 15 MB/s (splices
lines), Open MPI 81 MB/s (loses lines), a plain pipe ~600 MB/s.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from flux_launch.testing import Instance, clean_env  # noqa: E402

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")
LINE = "x" * 99


def timed(cmd, env):
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True, timeout=600)
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-r", "--repeats", type=int, default=3)
    p.add_argument("--mb", type=int, default=200, help="megabytes in all (default 200)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    per_task = args.mb * 1000 * 1000 // 2
    gen = ["sh", "-c", f"yes {LINE} | head -c {per_task}"]
    results = {}
    with Instance(size=1) as inst:
        runs = {"flux run -l (C)": ([FLUX, "run", "-n2", "-l", *gen], dict(inst.env, FLUX_LAUNCH_ACCEL="c")),
                "flux run -l (Python)": ([FLUX, "run", "-n2", "-l", *gen], dict(inst.env, FLUX_LAUNCH_ACCEL="py")),
                "mpiexec.hydra -l": (["mpiexec.hydra", "-l", "-n", "2", *gen], clean_env())}
        times = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, (cmd, env) in runs.items():
                times[name].append(timed(cmd, env))
    print(f"{'labelled output, 2 tasks':<26} {'MB/s':>8}   ({args.mb} MB, median of {args.repeats})")
    for name, ts in times.items():
        rate = args.mb / statistics.median(ts)
        results[name] = {"mb_per_s": rate, "seconds": ts}
        print(f"{name:<26} {rate:8.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
