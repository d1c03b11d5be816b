#!/usr/bin/env python3
"""Co-launching a tool onto a running job: wall time of each way, 16-task target.

Usage: bench/colocate.py [-r REPEATS] [--quick] [--json FILE]

In a 4-broker instance (``flux start --test-size=4``) a target job of 16 tasks,
4 per broker (``flux submit -N4 -o per-resource.type=node -o
per-resource.count=4 sleep``: whole nodes, so the instance is full and a normal
job would wait), runs while tools of ``true`` are launched beside it, one way
after the other, run by run:

- ``flux exec --jobid=T true``: one process per node of T, through each broker's
  rexec service (no job);
- ``flux run --colocate=T true``: a job of one task per node of T on its R
  (alloc-bypass), the target's R looked up first;
- ``flux run --colocate=T --per-task true``: one task per task of T (16);
- ``flux run -N4 -S alloc-bypass.R=R true``: the same job without the lookup
  (R fetched once beforehand, as a script that already has it would);
- ``flux exec -r all true``: the instance-wide exec, for comparison;
- ``flux run -N4 true`` before the target is submitted (the instance idle): a
  normal job through the scheduler, for comparison.

Each figure is the wall time of the command (its Python start-up included), median
of REPEATS runs (default 9; 2 with ``--quick``), min and max beside it. A command
that fails is an error. ``make bench`` runs it as the ``colocate`` part of
bench/run.py; bench/README.md explains the figures.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
from flux_launch.testing import Instance  # noqa: E402

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")
BROKERS = 4
PER_NODE = 4  # target tasks per broker: 16 in all
TIMEOUT_S = 120


def sizes(quick, repeats=None):
    return {"runs": repeats or (2 if quick else 9), "brokers": BROKERS, "tasks": BROKERS * PER_NODE}


def stats(ts):
    ts = sorted(ts)
    return {"median": statistics.median(ts), "min": ts[0], "max": ts[-1], "runs": ts}


def _timed(cmd, env):
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT_S, stdin=subprocess.DEVNULL)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}: {r.stderr.strip()[:300]}")
    return dt


def ways(target, R):
    return {"exec --jobid": [FLUX, "exec", f"--jobid={target}", "-n", "true"],
            "run --colocate": [FLUX, "run", f"--colocate={target}", "true"],
            "run --colocate --per-task": [FLUX, "run", f"--colocate={target}", "--per-task", "true"],
            "run -S alloc-bypass.R": [FLUX, "run", f"-N{BROKERS}", "-S", f"alloc-bypass.R={R}", "true"],
            "exec -r all (no job)": [FLUX, "exec", "-n", "true"]}


def measure(inst, cfg, progress=None):
    """Every way in ``inst`` (4 brokers) beside one running target, alternating run
    by run; ``cfg`` from ``sizes()``. The target is canceled at the end."""
    env = inst.env
    baseline = [FLUX, "run", f"-N{BROKERS}", "true"]
    _timed(baseline, env)
    idle = []
    for _ in range(cfg["runs"]):
        idle.append(_timed(baseline, env))
    if progress:
        progress("colocate: run -N4 (idle)")
    target = inst.flux("submit", f"-N{BROKERS}", "-o", "per-resource.type=node", "-o",
                       f"per-resource.count={PER_NODE}", "sleep", "3600").stdout.strip()
    try:
        inst.flux("job", "wait-event", "-t", "60", target, "start")
        R = inst.flux("job", "info", target, "R").stdout.strip()
        # one tool task per target task: the target has its 16 tasks, 4 on each broker
        out = inst.flux("run", f"--colocate={target}", "--per-task", "flux", "getattr", "rank").stdout.split()
        if sorted(out) != sorted(str(r) for r in range(BROKERS) for _ in range(PER_NODE)):
            raise RuntimeError(f"--per-task ran on ranks {sorted(out)}, not {PER_NODE} on each of {BROKERS}")
        cmds = ways(target, R)
        for cmd in cmds.values():  # warm-up (and a check that each works)
            _timed(cmd, env)
        runs = {name: [] for name in cmds}
        for _ in range(cfg["runs"]):
            for name, cmd in cmds.items():
                runs[name].append(_timed(cmd, env))
                if progress:
                    progress(f"colocate: {name}")
        state = inst.flux("jobs", "-n", "-o", "{state_single}", target).stdout.strip()
        if state != "R":
            raise RuntimeError(f"the target is no longer running (state {state})")
    finally:
        inst.flux("cancel", target, check=False)
    return {"brokers": BROKERS, "target_tasks": cfg["tasks"],
            **{name: stats(ts) for name, ts in runs.items()}, "run -N4 (idle, no target)": stats(idle)}


def progress_steps(cfg):
    return 5 * cfg["runs"] + 1


def table(res):
    names = [k for k in res if isinstance(res[k], dict)]
    lines = [f"co-launching true beside a running {res['target_tasks']}-task job on {res['brokers']} brokers "
             f"(wall s, median of {len(res[names[0]]['runs'])}; min-max)"]
    for name in names:
        s = res[name]
        lines.append(f"  {name:<28} {s['median']:7.3f}  ({s['min']:.3f}-{s['max']:.3f})")
    return "\n".join(lines)


def plot(res, plt):
    """A figure: wall time of each way (matplotlib's pyplot passed in)."""
    names = [k for k in res if isinstance(res[k], dict)]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    med = [res[n]["median"] for n in names]
    lo = [res[n]["median"] - res[n]["min"] for n in names]
    hi = [res[n]["max"] - res[n]["median"] for n in names]
    ax.barh(range(len(names)), med, xerr=[lo, hi], capsize=3, color="tab:blue")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("wall time (s), median (bars: min-max)")
    ax.set_title(f"a tool beside a running {res['target_tasks']}-task job, {res['brokers']} brokers")
    fig.tight_layout()
    return fig


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-r", "--repeats", type=int, help="runs of each way (default 9; quick 2)")
    p.add_argument("--quick", action="store_true", help="two runs")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    cfg = sizes(args.quick, args.repeats)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg()[0], "config": cfg}
    with Instance(size=BROKERS, timeout=120) as inst:
        res = measure(inst, cfg)
    meta["load_average_after"] = os.getloadavg()[0]
    print(table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, **res}, f, indent=1)


if __name__ == "__main__":
    main()
