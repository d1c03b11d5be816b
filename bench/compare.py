#!/usr/bin/env python3
"""Side by side: the launch path of an older commit and of this tree, in one run.

``bench/compare.py OLD [-r N] [--json FILE]`` checks OLD out in a temporary git
worktree (with this tree's built C accelerators copied in), starts one 1-broker
instance of each version, and alternates the two run by run (a slow spell of the
machine spreads over both) for:

- ``flux run -n1 true`` and ``flux run -n2 hello`` (MPICH, one MPI_Allreduce);
- ``flux submit --cc=1-50 true`` + ``flux queue drain`` (jobs per second);
- ``flux run -n2 -l`` writing 64 MB of lines (MB/s);
- ``flux start --test-size=1 true`` (an instance's start and stop).

It prints the medians with their spread, the ratio new/old and the speed (above 1:
the new tree is faster), and writes them as JSON. Use it for a restructuring
that must not cost latency: a ratio within the runs' spread is noise.
"""

import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "src"))
from flux_launch.testing import Instance  # noqa: E402 - after the path is set

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")
HELLO = os.path.join(REPO, "tests", "mpi", "hello.c")
LINE = "x" * 99


def timed(cmd, env, expect=None):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=300)
    dt = time.perf_counter() - t0
    if r.returncode != 0 or (expect is not None and expect not in r.stdout):
        raise RuntimeError(f"{' '.join(cmd)} failed (exit code {r.returncode}): {r.stderr.decode()[-500:]}")
    return dt


def worktree(commit, tmp):
    path = os.path.join(tmp, "old")
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", "-q", path, commit], check=True)
    for so in glob.glob(os.path.join(REPO, "src", "flux_launch", "_accel", "_c*.so")):
        shutil.copy(so, os.path.join(path, "src", "flux_launch", "_accel"))
    return path


def cases(hello):
    """name -> (function(env) -> seconds, unit, higher_is_better)"""
    per_task = 32 * 1000 * 1000

    def run_true(env):
        return timed([FLUX, "run", "-n1", "true"], env)

    def run_hello(env):
        return timed([FLUX, "run", "-n2", hello], env, expect=b"hello from rank 1")

    def throughput(env):
        t = timed([FLUX, "submit", "--cc=1-50", "--quiet", "true"], env)
        return 50 / (t + timed([FLUX, "queue", "drain"], env))

    def io(env):
        cmd = [FLUX, "run", "-n2", "-l", "sh", "-c", f"yes {LINE} | head -c {per_task}"]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
        if r.returncode:
            raise RuntimeError(f"io run failed: {r.stderr.decode()[-500:]}")
        return 2 * per_task / 1e6 / (time.perf_counter() - t0)

    def start(env):
        env = {k: v for k, v in env.items() if k != "FLUX_URI"}
        return timed([FLUX, "start", "--test-size=1", "true"], env)

    out = {"flux run -n1 true (s)": (run_true, False), "flux submit 50 + drain (jobs/s)": (throughput, True),
           "flux run -n2 -l 64 MB (MB/s)": (io, True), "flux start --test-size=1 true (s)": (start, False)}
    if hello:
        out["flux run -n2 hello (s)"] = (run_hello, False)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old", help="the commit to compare this tree with")
    p.add_argument("-r", "--repeats", type=int, default=15)
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="flux-compare-")
    old = worktree(args.old, tmp)
    hello = None
    if shutil.which("mpicc.mpich"):
        hello = os.path.join(tmp, "hello")
        subprocess.run(["mpicc.mpich", "-O1", "-o", hello, HELLO], check=True)
    trees = {"old": os.path.join(old, "src"), "new": os.path.join(REPO, "src")}
    for src in trees.values():  # both compiled: PYTHONDONTWRITEBYTECODE=1 would recompile a fresh tree every run
        subprocess.run([sys.executable, "-m", "compileall", "-q", src], check=True, stdout=subprocess.DEVNULL)
    results = {"old_commit": subprocess.run(["git", "-C", old, "rev-parse", "HEAD"], capture_output=True,
                                            text=True).stdout.strip(),
               "new_commit": subprocess.run(["git", "-C", REPO, "describe", "--always", "--dirty"],
                                            capture_output=True, text=True).stdout.strip(),
               "repeats": args.repeats, "figures": {}}
    insts = {}
    try:
        for name, src in trees.items():
            insts[name] = Instance(size=1, timeout=120, env={"PYTHONPATH": src}).start()
        todo = cases(hello)
        vals = {case: {name: [] for name in trees} for case in todo}
        for case, (fn, _) in todo.items():
            for name in trees:  # warm-up
                fn(insts[name].env)
            for _ in range(args.repeats):
                for name in trees:
                    vals[case][name].append(fn(insts[name].env))
        print(f"old {results['old_commit'][:10]}  new {results['new_commit']}  ({args.repeats} runs each)")
        print(f"{'':36} {'old median [min-max]':>26} {'new median [min-max]':>26}  new/old  speed")
        for case, (_, higher) in todo.items():
            row = {}
            for name in trees:
                ts = vals[case][name]
                row[name] = {"median": statistics.median(ts), "min": min(ts), "max": max(ts), "runs": ts}
            ratio = row["new"]["median"] / row["old"]["median"]
            row["ratio"] = ratio
            row["speed"] = ratio if higher else 1 / ratio  # > 1: the new tree is faster
            results["figures"][case] = row
            cells = [f"{row[n]['median']:.4g} [{row[n]['min']:.3g}-{row[n]['max']:.3g}]" for n in trees]
            print(f"{case:36} {cells[0]:>26} {cells[1]:>26}  {ratio:.3f}    {row['speed']:.3f}")
    finally:
        for inst in insts.values():
            inst.close()
        subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", old], check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
