#!/usr/bin/env python3
"""Workflows of dependent jobs: a chain and a fan-in of ``true`` jobs, jobs/s.

Usage: bench/workflow.py [--jobs N] [-r REPEATS] [--quick] [--json FILE]

Both shapes run in one 1-broker instance (``flux start --test-size=1``), submitted
with the Python API (``flux.job.submit``) as a workflow script would: a chain has
to know job i's id before it can submit job i+1, and one process submitting
1,000 jobs is ~50x faster than 1,000 ``flux submit`` commands (each pays a Python
start-up).

- chain: N jobs, job i+1 submitted with ``attributes.system.dependencies``
  ``[{"scheme": "afterok", "value": ID_i}]`` (what ``flux submit
  --dependency=afterok:ID`` sets); all N submitted up front, then the script
  waits for the last to be inactive. jobs/s from the first submit to the last
  job's ``clean``; and, from the eventlogs, the median and p90 of one link: job
  i's ``clean`` to job i+1's ``start`` (the dependency's release, scheduling and
  exec start).
- fan-in: N independent jobs (submitted without waiting for each id), then one
  job with N ``afterok`` dependencies, one on each. jobs/s ((N+1) jobs) from the
  first submit to the fan-in job's ``clean``; the time from the last of the N
  finishing (the latest ``clean``: afterok is met when the target is inactive)
  to the fan-in job's ``start``; the fan-in job's submit round trip (its
  jobspec carries N dependencies); and how many of the N were already inactive
  when it was submitted (those are met at once, the others as they end).
- the same from the command line, alternating with the above run by run: a
  chain of min(N, 100) jobs as a shell loop of ``id=$(flux submit
  --dependency=afterok:$id true)``, and a fan-in as ``flux submit --cc=1-N true``
  then one ``flux submit`` with N ``--dependency=afterok:ID`` options.

A job that fails, or a shape that does not end within 600 s, is an error (a
figure never counts failed jobs). Each figure is the median of REPEATS runs (default 3; 1 with ``--quick``, which
also sets N to 20). ``make bench`` runs it as the ``workflow`` part of
bench/run.py; bench/README.md explains the figures.
"""

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
from flux_launch.core.jobid import JobID  # noqa: E402 - after the path is set
from flux_launch.testing import Instance  # noqa: E402

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")
# a chain of flux submit commands pays a Python start-up per job: this many is enough
CLI_CHAIN_JOBS = 100
# one period of a chain, job i+1's eventlog from job i's clean: (stage, from, to)
CHAIN_STAGES = [("dependency release", "prev clean", "depend"), ("to scheduler", "depend", "priority"),
                ("scheduling", "priority", "alloc"), ("exec start", "alloc", "start"),
                ("run", "start", "finish"), ("cleanup", "finish", "clean")]
# a shape that does not end within this long is reported as hung
TIMEOUT_S = 600


def sizes(quick, repeats=None, jobs=None):
    if quick:
        jobs = jobs or 20
        return {"jobs": jobs, "runs": repeats or 1, "cli_chain_jobs": min(jobs, 10)}
    jobs = jobs or 1000
    return {"jobs": jobs, "runs": repeats or 3, "cli_chain_jobs": min(jobs, CLI_CHAIN_JOBS)}


def stats(ts):
    ts = sorted(ts)
    if len(ts) > 1:
        q = statistics.quantiles(ts, n=4, method="inclusive")
        p90 = statistics.quantiles(ts, n=10, method="inclusive")[8]
    else:
        q, p90 = [ts[0]] * 3, ts[0]
    return {"median": statistics.median(ts), "p90": p90, "min": ts[0], "max": ts[-1], "q1": q[0], "q3": q[2],
            "runs": ts}


def _jobspec(env):
    from flux_launch.job import JobspecV1

    return JobspecV1.from_command(["true"], environment=env).jobspec


def _with_deps(base, deps):
    """A copy of jobspec ``base`` (a dict) with ``attributes.system.dependencies``."""
    js = dict(base, attributes=dict(base["attributes"], system=dict(base["attributes"]["system"])))
    js["attributes"]["system"]["dependencies"] = deps
    return js


def _wait_clean(h, jobid, timeout=TIMEOUT_S):
    """Block until the job is inactive (its ``clean`` event, as ``flux.job.result``
    waits for it).

    Raises:
        RuntimeError: it did not complete with success (an exception or a nonzero
            status), or was not inactive after ``timeout`` s.
    """
    from flux_launch.client.handle import NORESPONSE, STREAMING
    from flux_launch.proto.eventlog import EventlogParser

    fut = h.rpc("job-info.eventlog-watch", {"id": int(jobid), "path": "eventlog"}, flags=STREAMING)
    parser = EventlogParser()
    deadline = time.monotonic() + timeout
    failed = None
    while True:
        try:
            value = fut.get(timeout=max(0.0, deadline - time.monotonic()))["value"]
        except TimeoutError:
            raise RuntimeError(f"bench: job {jobid} not inactive after {timeout} s") from None
        for ev in parser.feed(value):
            ctx = ev.get("context") or {}
            if ev["name"] == "exception" and ctx.get("severity") == 0:
                failed = f"exception {ctx.get('type')}: {ctx.get('note')}"
            elif ev["name"] == "finish" and ctx.get("status"):
                failed = failed or f"status {ctx['status']}"
            elif ev["name"] == "clean":
                h.rpc("job-info.eventlog-watch-cancel", {"matchtag": fut.matchtag}, flags=NORESPONSE)
                if failed:
                    raise RuntimeError(f"bench: job {jobid} failed ({failed})")
                return


def eventlogs(h, ids):
    """``[{name: timestamp}]`` (first of each name) of each job, asked for all at once."""
    futs = [h.rpc("job-info.lookup", {"id": int(j), "keys": ["eventlog"]}) for j in ids]
    out = []
    for f in futs:
        marks = {}
        for line in f.get()["eventlog"].splitlines():
            if line:
                ev = json.loads(line)
                marks.setdefault(ev["name"], ev["timestamp"])
        out.append(marks)
    return out


def chain_once(h, env, njobs):
    """One chain of ``njobs``: ``{"jobs_per_s", "submit_s", "link_ms": [...]}``."""
    from flux_launch.job import submit

    base = _jobspec(env)
    ids = []
    t0 = time.time()
    prev = submit(h, base)
    ids.append(prev)
    for _ in range(njobs - 1):
        prev = submit(h, _with_deps(base, [{"scheme": "afterok", "value": str(prev)}]))
        ids.append(prev)
    t_submitted = time.time()
    _wait_clean(h, prev)
    logs = eventlogs(h, ids)
    t_end = logs[-1]["clean"]
    links = [1000 * (b["start"] - a["clean"]) for a, b in zip(logs, logs[1:])]
    periods = [dict(b, **{"prev clean": a["clean"]}) for a, b in zip(logs, logs[1:])]
    stages = {name: [1000 * (m[y] - m[x]) for m in periods] for name, x, y in CHAIN_STAGES}
    return {"jobs_per_s": njobs / (t_end - t0), "submit_s": t_submitted - t0, "link_ms": links,
            "stages_ms": stages}


def fanin_once(h, env, njobs):
    """N independent jobs and one that depends on all of them (afterok)."""
    from flux_launch.job import submit, submit_async

    base = _jobspec(env)
    t0 = time.time()
    futs = [submit_async(h, base) for _ in range(njobs)]
    ids = [f.get_id() for f in futs]
    t_sub = time.time()
    fan = submit(h, _with_deps(base, [{"scheme": "afterok", "value": str(j)} for j in ids]))
    t_fan = time.time()
    _wait_clean(h, fan)
    logs = eventlogs(h, ids)
    (flog,) = eventlogs(h, [fan])
    last_clean = max(m["clean"] for m in logs)
    return {"jobs_per_s": (njobs + 1) / (flog["clean"] - t0),
            "fanout_jobs_per_s": njobs / (last_clean - t0),
            "release_ms": 1000 * (flog["start"] - last_clean),
            "release_to_depend_ms": 1000 * (flog["depend"] - last_clean),
            "submit_fanin_ms": 1000 * (t_fan - t_sub),
            "met_at_submit": sum(m["clean"] < flog["submit"] for m in logs)}


# ---- the same from the command line ---------------------------------------------

def _sh(cmd, env, timeout=TIMEOUT_S):
    """Run ``cmd`` (a list) to its end with a blocking wait (a watchdog kills a
    hang): ``(seconds, the job ids it printed)``.

    Raises:
        RuntimeError: it failed, or ran past ``timeout`` seconds.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    watchdog = threading.Timer(timeout, proc.kill)
    watchdog.start()
    try:
        out, err = proc.communicate()
    finally:
        watchdog.cancel()
    if proc.returncode:
        why = f"killed after {timeout} s" if proc.returncode == -9 else f"exit code {proc.returncode}"
        raise RuntimeError(f"bench: {' '.join(cmd)[:200]} failed ({why}): {err.decode(errors='replace')[-300:]}")
    return time.perf_counter() - t0, [JobID(word) for word in out.decode().split()]


def cli_chain_once(h, env, njobs):
    """A chain as a shell script builds it: one ``flux submit --dependency=afterok:$id``
    per job."""
    script = (f'id=$({FLUX} submit true) && echo $id && i=1 && while [ $i -lt {njobs} ]; do '
              f'id=$({FLUX} submit --dependency=afterok:$id true) && echo $id && i=$((i+1)) || exit 1; done')
    t0 = time.time()
    t_sub, ids = _sh(["sh", "-c", script], env)
    _wait_clean(h, ids[-1])
    (last,) = eventlogs(h, ids[-1:])
    return {"jobs_per_s": njobs / (last["clean"] - t0), "submit_s": t_sub}


def cli_fanin_once(h, env, njobs):
    """``flux submit --cc=1-N true``, then one ``flux submit`` with N ``--dependency``."""
    t0 = time.time()
    _, ids = _sh([FLUX, "submit", f"--cc=1-{njobs}", "true"], env)
    t_fan, (fan,) = _sh([FLUX, "submit", *(f"--dependency=afterok:{j}" for j in ids), "true"], env)
    _wait_clean(h, fan)
    logs = eventlogs(h, ids)
    (flog,) = eventlogs(h, [fan])
    last_clean = max(m["clean"] for m in logs)
    return {"jobs_per_s": (njobs + 1) / (flog["clean"] - t0), "release_ms": 1000 * (flog["start"] - last_clean),
            "submit_fanin_ms": 1000 * t_fan}


def ng_once(h, env, njobs, shape):
    """A JobSpec NG document of the shape (``depends_on`` by task name) through
    ``flux job submit FILE``: jobs/s to the last job's clean, and the submit's
    seconds (a chain is submitted link by link: each needs the previous id)."""
    import tempfile

    if shape == "chain":
        tasks = [{"name": f"t{i}", "command": ["true"], **({"depends_on": [f"t{i - 1}"]} if i else {})}
                 for i in range(njobs)]
    else:
        tasks = [{"name": f"t{i}", "command": ["true"]} for i in range(njobs)]
        tasks.append({"name": "fan", "command": ["true"], "depends_on": [f"t{i}" for i in range(njobs)]})
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump({"version": 1, "tasks": tasks}, f)
    try:
        t0 = time.time()
        t_sub, ids = _sh([FLUX, "job", "submit", f.name], env)
    finally:
        os.unlink(f.name)
    _wait_clean(h, ids[-1])
    (last,) = eventlogs(h, ids[-1:])
    return {"jobs_per_s": len(tasks) / (last["clean"] - t0), "submit_s": t_sub}


_PYAPI = {
    "executor": """
import sys, time, concurrent.futures, flux.job
js = flux.job.JobspecV1.from_command(["true"])
t0 = time.time()
with flux.job.FluxExecutor() as ex:
    futs = [ex.submit(js) for _ in range({n})]
    bad = sum(f.result() != 0 for f in concurrent.futures.as_completed(futs))
print({n} / (time.time() - t0), bad)
""",
    "asyncio": """
import asyncio, time, flux.asyncio, flux.job
js = flux.job.JobspecV1.from_command(["true"])
async def main():
    t0 = time.time()
    ids = await asyncio.gather(*(flux.asyncio.submit(js) for _ in range({n})))
    infos = await asyncio.gather(*(flux.asyncio.result(i) for i in ids))
    print({n} / (time.time() - t0), sum(i.returncode != 0 for i in infos))
asyncio.run(main())
""",
}


def pyapi_once(env, njobs, kind):
    """N ``true`` jobs submitted and awaited from Python (``FluxExecutor``, or
    ``flux.asyncio``), or by ``flux submit --cc=1-N --wait`` (``kind`` "cli"):
    jobs/s from the first submit to the last result."""
    if kind == "cli":
        t, _ids = _sh([FLUX, "submit", "--quiet", f"--cc=1-{njobs}", "--wait", "true"], env)
        return {"jobs_per_s": njobs / t}
    proc = subprocess.run([sys.executable, "-c", _PYAPI[kind].format(n=njobs)], env=env, capture_output=True,
                          text=True, timeout=TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError(f"bench: {kind} failed: {proc.stderr[-300:]}")
    rate, bad = proc.stdout.split()
    if int(bad):
        raise RuntimeError(f"bench: {kind}: {bad} jobs failed")
    return {"jobs_per_s": float(rate)}


def measure(inst, cfg, progress=None):
    """Both shapes in ``inst`` (1 broker), from the Python API and from the command
    line, alternating run by run; ``cfg`` from ``sizes()``."""
    from flux_launch.client.handle import Flux

    njobs, ncli = cfg["jobs"], cfg["cli_chain_jobs"]
    env = {"PATH": inst.env["PATH"], "HOME": os.environ.get("HOME", "/")}
    shapes = {"chain": lambda h: chain_once(h, env, njobs), "fanin": lambda h: fanin_once(h, env, njobs),
              "cli chain": lambda h: cli_chain_once(h, inst.env, ncli),
              "cli fanin": lambda h: cli_fanin_once(h, inst.env, njobs),
              "ng chain": lambda h: ng_once(h, inst.env, njobs, "chain"),
              "ng fanin": lambda h: ng_once(h, inst.env, njobs, "fanin"),
              "executor": lambda h: pyapi_once(inst.env, njobs, "executor"),
              "asyncio": lambda h: pyapi_once(inst.env, njobs, "asyncio"),
              "cli wait": lambda h: pyapi_once(inst.env, njobs, "cli")}
    runs = {name: [] for name in shapes}
    with Flux(inst.uri) as h:
        chain_once(h, env, 5)  # warm-up
        fanin_once(h, env, 5)
        cli_chain_once(h, inst.env, 2)
        for _ in range(cfg["runs"]):
            for name, once in shapes.items():
                runs[name].append(once(h))
                if progress:
                    progress(f"{name} of {ncli if name == 'cli chain' else njobs}")
    res = {"jobs": njobs, "cli_chain_jobs": ncli}
    for name, rs in runs.items():
        res[name] = {k: stats([r[k] for r in rs]) for k in rs[0] if k not in ("link_ms", "stages_ms")}
    chains = runs["chain"]
    res["chain"]["link_ms"] = {k: v for k, v in stats([ms for c in chains for ms in c["link_ms"]]).items()
                               if k != "runs"}
    res["chain"]["stages_ms"] = {name: statistics.median(ms for c in chains for ms in c["stages_ms"][name])
                                 for name, _, _ in CHAIN_STAGES}
    return res


def progress_steps(cfg):
    return 9 * cfg["runs"]


# ---- report --------------------------------------------------------------------

def table(res):
    n, k = res["jobs"], res["cli_chain_jobs"]
    c, f, cc, cf = res["chain"], res["fanin"], res["cli chain"], res["cli fanin"]
    return "\n".join([
        f"workflows of true, 1 broker (median of {len(c['jobs_per_s']['runs'])}; jobs/s from the first submit "
        "to the last clean)",
        f"  chain of {n}, Python API (afterok on the previous): {c['jobs_per_s']['median']:7.0f} jobs/s; "
        f"submitting took {c['submit_s']['median']:.2f} s",
        f"    one link (clean -> next start): median {c['link_ms']['median']:.1f} ms, p90 {c['link_ms']['p90']:.1f} ms;"
        " one period (median ms): " + ", ".join(f"{s} {v:.1f}" for s, v in c["stages_ms"].items()),
        f"  chain of {k}, flux submit --dependency=afterok:$id in a shell loop: {cc['jobs_per_s']['median']:7.0f} "
        "jobs/s",
        f"  fan-in of {n} + 1, Python API (afterok on each): {f['jobs_per_s']['median']:7.0f} jobs/s "
        f"({f['fanout_jobs_per_s']['median']:.0f} jobs/s for the {n} alone)",
        f"    last of the {n} clean -> fan-in start {f['release_ms']['median']:.1f} ms; its submit "
        f"{f['submit_fanin_ms']['median']:.1f} ms ({f['met_at_submit']['median']:.0f} of {n} met at submit)",
        f"  fan-in of {n} + 1, flux submit --cc=1-{n}, then {n} --dependency options: "
        f"{cf['jobs_per_s']['median']:7.0f} jobs/s; last clean -> fan-in start {cf['release_ms']['median']:.1f} ms,"
        f" its flux submit {cf['submit_fanin_ms']['median']:.0f} ms",
        f"  JobSpec NG (flux job submit FILE, depends_on by name): chain of {n} "
        f"{res['ng chain']['jobs_per_s']['median']:7.0f} jobs/s (submit {res['ng chain']['submit_s']['median']:.2f} s)"
        f"; fan-in of {n} + 1 {res['ng fanin']['jobs_per_s']['median']:7.0f} jobs/s "
        f"(submit {res['ng fanin']['submit_s']['median']:.2f} s)",
        f"  {n} independent jobs submitted and awaited: FluxExecutor {res['executor']['jobs_per_s']['median']:7.0f}"
        f" jobs/s, flux.asyncio {res['asyncio']['jobs_per_s']['median']:7.0f} jobs/s, flux submit --cc --wait "
        f"{res['cli wait']['jobs_per_s']['median']:7.0f} jobs/s"])


def plot(res, plt):
    """A figure: jobs/s of each shape (matplotlib's pyplot passed in)."""
    n, k = res["jobs"], res["cli_chain_jobs"]
    bars = [(f"chain {n}\nAPI", res["chain"]), (f"chain {k}\nCLI loop", res["cli chain"]),
            (f"fan-in {n}+1\nAPI", res["fanin"]), (f"fan-in {n}+1\nCLI", res["cli fanin"]),
            (f"chain {n}\nNG", res["ng chain"]), (f"fan-in {n}+1\nNG", res["ng fanin"]),
            (f"{n} jobs\nExecutor", res["executor"]), (f"{n} jobs\nasyncio", res["asyncio"]),
            (f"{n} jobs\nCLI --wait", res["cli wait"])]
    fig, ax = plt.subplots(figsize=(6, 4))
    med = [b["jobs_per_s"]["median"] for _, b in bars]
    lo = [b["jobs_per_s"]["median"] - b["jobs_per_s"]["min"] for _, b in bars]
    hi = [b["jobs_per_s"]["max"] - b["jobs_per_s"]["median"] for _, b in bars]
    ax.bar(range(len(bars)), med, yerr=[lo, hi], capsize=3, color=["tab:blue", "tab:cyan", "tab:green", "tab:olive"])
    ax.set_xticks(range(len(bars)), [name for name, _ in bars], fontsize=8)
    ax.set_ylabel("jobs/s, first submit to last clean (bars: min-max)")
    ax.set_title("dependent jobs of true, 1 broker")
    return fig


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-k", "--jobs", type=int, help="jobs in the chain and in the fan-in (default 1000; quick 20)")
    p.add_argument("-r", "--repeats", type=int, help="runs of each shape (default 3; quick 1)")
    p.add_argument("--quick", action="store_true", help="tiny sizes")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    if args.jobs is not None and args.jobs < 2:
        p.error("--jobs: at least 2")
    cfg = sizes(args.quick, args.repeats, args.jobs)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg()[0], "config": cfg}
    with Instance(size=1, timeout=120) as inst:
        res = measure(inst, cfg)
    meta["load_average_after"] = os.getloadavg()[0]
    print(table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, **res}, f, indent=1)


if __name__ == "__main__":
    main()
