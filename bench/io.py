#!/usr/bin/env python3
"""Labelled output throughput: ``flux run -nN -l`` of a command that writes 100-byte
lines, to /dev/null, with the C and the Python path, beside ``mpiexec.hydra -l``.

Usage: bench/io.py [-r REPEATS] [--mb MB] [-n TASKS ...] [--check-mb MB] [--json FILE]

The tasks write MB megabytes in all (default 200 MB), each MB/N. Figures are MB/s
of output over the whole command's wall time (median of the repeats; the
launchers alternate run by run). ``--check-mb`` then runs each launcher once more
with output to a file and counts the lines that did not come out whole (a
``RANK: `` label and 99 bytes of payload): Hydra splices lines of different
ranks, we must not. For reference (../shared/ANCHORS.md): flux-core 1.4 MB/s,
Slurm 33 MB/s, Hydra 15 MB/s (splices lines), Open MPI 81 MB/s (loses lines), a
plain pipe ~600 MB/s.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from flux_launch.testing import Instance, clean_env

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")
LINE = "x" * 99
WHOLE = re.compile(rb"^(?:[0-9]+: |\[[0-9]+\] )x{99}$")  # ours, or Hydra's "[RANK] "


def generator(total_mb, ntasks):
    per_task = total_mb * 1000 * 1000 // ntasks // 100 * 100
    return ["sh", "-c", f"yes {LINE} | head -c {per_task}"], per_task * ntasks


def launchers(inst, ntasks, gen):
    # this machine has 2 cores: more tasks run several per core (flux-core's per-resource)
    size = [f"-n{ntasks}"] if ntasks <= 2 else ["-n2", "-o", "per-resource.type=core",
                                                 "-o", f"per-resource.count={ntasks // 2}"]
    flux = [FLUX, "run", "-l", *size, *gen]
    return {"flux run -l (C)": (flux, dict(inst.env, FLUX_LAUNCH_ACCEL="c")),
            "flux run -l (Python)": (flux, dict(inst.env, FLUX_LAUNCH_ACCEL="py")),
            "mpiexec.hydra -l": (["mpiexec.hydra", "-l", "-n", str(ntasks), *gen], clean_env())}


def run(cmd, env, stdout=subprocess.PIPE, timeout=600):
    """Run ``cmd`` to its end: ``(seconds, returncode, stdout, stderr)``; stdin is
    /dev/null (Open MPI's mpirun waits on an inherited one).

    Not ``subprocess.run(timeout=...)``: waiting with a timeout polls with sleeps of
    up to 50 ms, which would be measured as launch time. A watchdog thread kills a
    command that hangs instead, and the wait blocks in waitpid.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=stdout, stderr=subprocess.PIPE)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        out, err = proc.communicate()
    finally:
        watchdog.cancel()
    return time.perf_counter() - t0, proc.returncode, out, err


def timed(cmd, env, stdout=subprocess.DEVNULL):
    """Seconds ``cmd`` takes.

    Raises:
        subprocess.CalledProcessError: it failed.
    """
    dt, rc, _, err = run(cmd, env, stdout)
    if rc:
        raise subprocess.CalledProcessError(rc, cmd, stderr=err)
    return dt


def broken_lines(cmd, env):
    """Run once with output to a file: (bytes, lines that are not whole)."""
    with tempfile.TemporaryFile() as f:
        timed(cmd, env, stdout=f)
        f.seek(0)
        data = f.read()
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return len(data), sum(1 for ln in lines if not WHOLE.match(ln))


def measure(inst, ntasks, mb, repeats, check_mb, progress=None):
    """MB/s per launcher for ``ntasks`` tasks writing ``mb`` MB: a dict of name ->
    ``{mb_per_s, seconds, [broken_lines]}``."""
    gen, total = generator(mb, ntasks)
    runs = launchers(inst, ntasks, gen)
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, (cmd, env) in runs.items():
            times[name].append(timed(cmd, env))
            if progress:
                progress()
    out = {name: {"mb_per_s": total / 1e6 / statistics.median(ts), "seconds": ts, "mb": total / 1e6}
           for name, ts in times.items()}
    if check_mb:
        gen, total = generator(check_mb, ntasks)
        for name, (cmd, env) in launchers(inst, ntasks, gen).items():
            size, broken = broken_lines(cmd, env)
            out[name]["check"] = {"mb": total / 1e6, "bytes_out": size, "broken_lines": broken}
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-r", "--repeats", type=int, default=3)
    p.add_argument("--mb", type=int, default=200, help="megabytes in all (default 200)")
    p.add_argument("-n", "--tasks", type=int, nargs="+", default=[2], help="task counts (default 2)")
    p.add_argument("--check-mb", type=int, default=20, help="megabytes for the whole-lines check (0: none)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    results = {}
    with Instance(size=1) as inst:
        for n in args.tasks:
            results[n] = measure(inst, n, args.mb, args.repeats, args.check_mb)
    for n, res in results.items():
        print(f"labelled output, {n} tasks ({args.mb} MB, median of {args.repeats})")
        print(f"  {'launcher':<24} {'MB/s':>8} {'broken lines':>14}")
        for name, r in res.items():
            check = r.get("check")
            broken = f"{check['broken_lines']}" if check else "-"
            print(f"  {name:<24} {r['mb_per_s']:8.1f} {broken:>14}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
