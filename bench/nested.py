#!/usr/bin/env python3
"""Nested instances: an instance's start inside a job, and throughput through two levels.

Usage: bench/nested.py [--quick] [-r REPEATS] [-k JOBS] [--json FILE]

Everything runs in one 2-broker instance (``flux start --test-size=2``):

- start: ``flux batch -N1 --wrap true`` from submit to complete (``flux batch
  --flags=waitable``, then ``flux job wait ID``, timed from the fork of the first
  to the exit of the second), ``flux alloc -N2 true`` and, as the baseline, ``flux
  run -N1 true``. The three alternate run by run; median and p90 of REPEATS
  (default 10), plus each job's own submit-to-clean from its eventlog (without the
  front ends' Python start-ups). Goal: batch -N1 on 1 node in 0.2 s or less.
- throughput: JOBS (default 200) jobs of ``true``, flat (``flux submit --cc=1-JOBS``
  in the instance) versus 2 levels (``flux batch -N1`` twice, one per node, each
  script running ``flux submit --cc=1-JOBS/2`` and waiting for them), jobs per
  second from the first submit until every job has completed. All jobs are
  submitted with ``--flags=waitable`` and waited for with ``flux job wait --all``,
  which fails if one of them did, so a figure never counts failed jobs.

``make bench`` runs it as the ``nested`` part of bench/run.py; bench/README.md
explains the figures.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
from flux_launch.testing import Instance  # noqa: E402 - after the path is set

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")
GOAL_BATCH_S = 0.2
START_CASES = ("flux batch -N1 --wrap true", "flux alloc -N2 true", "flux run -N1 true")
# the batch job's eventlog, consecutive: (stage, from event, to event)
BATCH_STAGES = [("scheduling", "submit", "alloc"), ("exec start", "alloc", "start"),
                ("instance up", "start", "memo"), ("script and shutdown", "memo", "finish"),
                ("cleanup", "finish", "clean")]


def sizes(quick, repeats=None, jobs=None):
    if quick:
        return {"start_runs": repeats or 2, "throughput_runs": 1, "jobs": jobs or 10}
    return {"start_runs": repeats or 10, "throughput_runs": 3, "jobs": jobs or 200}


def stats(ts):
    ts = sorted(ts)
    if len(ts) > 1:
        q = statistics.quantiles(ts, n=4, method="inclusive")
        p90 = statistics.quantiles(ts, n=10, method="inclusive")[8]
    else:
        q, p90 = [ts[0]] * 3, ts[0]
    return {"median": statistics.median(ts), "p90": p90, "min": ts[0], "max": ts[-1], "q1": q[0], "q3": q[2],
            "runs": ts}


def _load_io():
    """bench/io.py (by path: its name is the stdlib's), for its ``run``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_io", os.path.join(HERE, "io.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bio = _load_io()


def run(cmd, env, timeout):
    """Run ``cmd`` to its end with a blocking wait (bench/io.py's ``run``: a
    watchdog kills a hang): ``(seconds, stdout)``.

    Raises:
        RuntimeError: it failed, or ran past ``timeout`` seconds.
    """
    dt, rc, out, err = bio.run(cmd, env, timeout=timeout)
    if rc:
        why = f"killed after {timeout} s" if rc == -9 else f"exit code {rc}"
        raise RuntimeError(f"bench: {' '.join(cmd)} failed ({why}): "
                           f"{out.decode(errors='replace')[-300:]}{err.decode(errors='replace')[-300:]}")
    return dt, out.decode().strip()


def eventlog(inst, jobid):
    """The job's eventlog: ``{name: timestamp}`` (first of each name)."""
    from flux_launch.client.handle import Flux
    from flux_launch.core.jobid import parse

    with Flux(inst.uri) as h:
        text = h.rpc("job-info.lookup", {"id": parse(jobid), "keys": ["eventlog"]}).get()["eventlog"]
    marks = {}
    for line in text.splitlines():
        if line:
            ev = json.loads(line)
            marks.setdefault(ev["name"], ev["timestamp"])
    return marks


# ---- start of a nested instance ------------------------------------------------

def start_once(case, inst, timeout=60):
    """Wall time of one run of ``case``, and its job's eventlog."""
    env = inst.env
    if case.startswith("flux batch"):
        t_submit, jobid = run([FLUX, "batch", "-N1", "--flags=waitable", "--output=/dev/null", "--wrap", "true"],
                              env, timeout)
        t_wait, _ = run([FLUX, "job", "wait", jobid], env, timeout)
        return t_submit + t_wait, eventlog(inst, jobid)
    if case.startswith("flux alloc"):
        dt, _ = run([FLUX, "alloc", "-N2", "true"], env, timeout)
    else:
        dt, _ = run([FLUX, "run", "-N1", "true"], env, timeout)
    return dt, eventlog(inst, run([FLUX, "job", "last"], env, timeout)[1])


def measure_start(inst, runs, progress=None):
    """``{case: stats of the wall time (s) + "job": stats of submit->clean (s)}``, and
    for the batch job ``"stages"``: the median ms of each stage of its eventlog."""
    walls = {c: [] for c in START_CASES}
    jobs = {c: [] for c in START_CASES}
    stages = {name: [] for name, _, _ in BATCH_STAGES}
    for case in START_CASES:  # warm-up: page cache, .pyc files
        start_once(case, inst)
    for _ in range(runs):
        for case in START_CASES:
            dt, marks = start_once(case, inst)
            walls[case].append(dt)
            jobs[case].append(marks["clean"] - marks["submit"])
            if case == START_CASES[0]:
                for name, a, b in BATCH_STAGES:
                    if a in marks and b in marks:
                        stages[name].append(1000 * (marks[b] - marks[a]))
            if progress:
                progress(case)
    res = {c: {**stats(walls[c]), "job": stats(jobs[c])} for c in START_CASES}
    res[START_CASES[0]]["stages_ms"] = {k: statistics.median(v) for k, v in stages.items() if v}
    return res


# ---- throughput: flat versus 2 levels ------------------------------------------

def flat_once(inst, njobs, timeout=300):
    t0 = time.perf_counter()
    run([FLUX, "submit", f"--cc=1-{njobs}", "--quiet", "--flags=waitable", "true"], inst.env, timeout)
    run([FLUX, "job", "wait", "--all"], inst.env, timeout)
    return njobs / (time.perf_counter() - t0)


def nested_once(inst, script, njobs, timeout=300):
    """2 batch jobs of -N1 (one per node), each submitting njobs/2 and waiting."""
    t0 = time.perf_counter()
    ids = [run([FLUX, "batch", "-N1", "--flags=waitable", "--output=/dev/null", script], inst.env, timeout)[1]
           for _ in range(2)]
    for jobid in ids:
        run([FLUX, "job", "wait", jobid], inst.env, timeout)
    return njobs / (time.perf_counter() - t0)


def batch_script(tmp, per_batch):
    path = os.path.join(tmp, f"submit-{per_batch}.sh")
    with open(path, "w") as f:
        f.write(f"#!/bin/sh\nset -e\nflux submit --cc=1-{per_batch} --quiet --flags=waitable true\n"
                "flux job wait --all\n")
    os.chmod(path, 0o755)
    return path


def measure_throughput(inst, njobs, runs, progress=None):
    """jobs/s: ``{"flat": stats, "2 levels": stats, "jobs": njobs}``."""
    njobs -= njobs % 2
    tmp = tempfile.mkdtemp(prefix="bench-nested-")
    try:
        script = batch_script(tmp, njobs // 2)
        flat_once(inst, 10)  # warm-up
        nested_once(inst, batch_script(tmp, 5), 10)
        rates = {"flat": [], "2 levels": []}
        for _ in range(runs):
            rates["flat"].append(flat_once(inst, njobs))
            rates["2 levels"].append(nested_once(inst, script, njobs))
            if progress:
                progress(f"throughput {njobs} jobs")
        return {"jobs": njobs, **{k: stats(v) for k, v in rates.items()}}
    finally:
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)


def measure(inst, cfg, progress=None):
    """Both parts in the 2-broker instance ``inst``; ``cfg`` from ``sizes()``."""
    return {"start": measure_start(inst, cfg["start_runs"], progress),
            "throughput": measure_throughput(inst, cfg["jobs"], cfg["throughput_runs"], progress)}


def progress_steps(cfg):
    return cfg["start_runs"] * len(START_CASES) + cfg["throughput_runs"]


# ---- report --------------------------------------------------------------------

def table(res):
    lines = ["nested instance start, 2 brokers (s; wall: submit to complete as a user times it, "
             "job: submit->clean in its eventlog)",
             f"  {'':34} {'wall median':>11} {'p90':>7} {'job median':>11} {'p90':>7}"]
    for case, s in res["start"].items():
        lines.append(f"  {case:34} {s['median']:11.3f} {s['p90']:7.3f} {s['job']['median']:11.3f} "
                     f"{s['job']['p90']:7.3f}")
    batch = res["start"][START_CASES[0]]
    verdict = "met" if batch["median"] <= GOAL_BATCH_S else "missed"
    lines.append(f"  goal: batch -N1 <= {GOAL_BATCH_S} s: {verdict} (wall median {batch['median']:.3f} s, "
                 f"job {batch['job']['median']:.3f} s)")
    lines.append("  batch job stages (median ms): " + ", ".join(f"{k} {v:.0f}" for k, v in batch["stages_ms"].items()))
    tp = res["throughput"]
    n = tp["jobs"]
    lines.append(f"hierarchical throughput, {n} jobs of true (jobs/s, first submit to all complete)")
    lines.append(f"  {'flat: flux submit --cc=1-' + str(n):44} {tp['flat']['median']:8.0f}")
    lines.append(f"  {'2 levels: 2 x flux batch -N1, --cc=1-' + str(n // 2) + ' each':44} "
                 f"{tp['2 levels']['median']:8.0f}")
    return "\n".join(lines)


def plot(res, plt):
    """A figure of both parts (matplotlib's pyplot passed in)."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
    cases = list(res["start"])
    med = [res["start"][c]["median"] for c in cases]
    p90 = [res["start"][c]["p90"] - res["start"][c]["median"] for c in cases]
    ax1.bar(range(len(cases)), med, yerr=[[0] * len(cases), p90], capsize=3, color="tab:blue", label="wall")
    ax1.plot(range(len(cases)), [res["start"][c]["job"]["median"] for c in cases], "o", color="tab:orange",
             label="job submit->clean")
    ax1.axhline(GOAL_BATCH_S, color="gray", ls="--", label=f"goal for batch ({GOAL_BATCH_S} s)")
    ax1.set_xticks(range(len(cases)), [c.replace(" true", "").replace(" --wrap", "") for c in cases], fontsize=8)
    ax1.set_ylabel("s, median (bar: to p90)")
    ax1.set_ylim(0, 1.4 * max(res["start"][c]["p90"] for c in cases))  # room for the legend
    ax1.set_title("nested instance start (2 brokers)")
    ax1.legend(fontsize=7)
    tp = res["throughput"]
    ax2.bar(["flat", "2 levels"], [tp["flat"]["median"], tp["2 levels"]["median"]], color="tab:green")
    ax2.set_ylabel("jobs/s, first submit to all complete")
    ax2.set_title(f"{tp['jobs']} jobs of true")
    return fig


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes")
    p.add_argument("-r", "--repeats", type=int, help="runs of each start case (default 10; quick 2)")
    p.add_argument("-k", "--jobs", type=int, help="jobs for the throughput part (default 200; quick 10)")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    cfg = sizes(args.quick, args.repeats, args.jobs)
    with Instance(size=2, timeout=120) as inst:
        res = measure(inst, cfg)
    print(table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
