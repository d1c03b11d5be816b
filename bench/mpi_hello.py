#!/usr/bin/env python3
"""MPICH hello (rank, size, one MPI_Allreduce) under ``flux run`` and under
``mpiexec.hydra``, alternating run by run, in one process.

Usage: bench/mpi_hello.py [-r REPEATS] [--json FILE]

For N = 2, 8, 16: ``flux run`` inside an instance already running with 1 broker
(N=2) or 4 brokers (N=8, and N=16 with two tasks per core through ``-o
per-resource``, as this machine has 2 cores); ``mpiexec.hydra -n N`` on this host.
Medians of the whole command's wall time. For reference (../shared/ANCHORS.md):
flux-core 0.88 takes 0.260 / 0.546 s for N = 2 / 8; Hydra 0.063 / 0.351 / 1.78 s
for N = 2 / 8 / 32.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from flux_launch.testing import Instance, clean_env  # noqa: E402

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "mpi", "hello.c")


def timed(cmd, env, n):
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    dt = time.perf_counter() - t0
    if res.returncode != 0 or res.stdout.count("hello from rank") != n:
        sys.exit(f"bench: {' '.join(cmd)} failed ({res.returncode}): {res.stdout}{res.stderr}")
    return dt


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-r", "--repeats", type=int, default=7)
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-mpi-")
    hello = os.path.join(tmp, "hello")
    subprocess.run(["mpicc.mpich", "-O1", "-o", hello, SRC], check=True)
    cases = [(2, 1, []), (8, 4, ["-N4", "-n8"]), (16, 4, ["-N4", "-n8", "-o", "per-resource.type=core",
                                                          "-o", "per-resource.count=2"])]
    results = {}
    print(f"{'MPICH hello':<14} {'flux run':>10} {'(brokers)':>9} {'hydra':>10}   (median s, {args.repeats} runs)")
    for n, size, fargs in cases:
        with Instance(size=size) as inst:
            fcmd = [FLUX, "run"] + (fargs or ["-n", str(n)]) + [hello]
            hcmd = ["mpiexec.hydra", "-n", str(n), hello]
            henv = clean_env()
            timed(fcmd, inst.env, n)
            timed(hcmd, henv, n)
            ft, ht = [], []
            for _ in range(args.repeats):
                ft.append(timed(fcmd, inst.env, n))
                ht.append(timed(hcmd, henv, n))
        results[n] = {"flux_run": statistics.median(ft), "brokers": size, "hydra": statistics.median(ht),
                      "flux_runs": ft, "hydra_runs": ht}
        print(f"{'-n ' + str(n):<14} {results[n]['flux_run']:10.3f} {size:>9} {results[n]['hydra']:10.3f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
