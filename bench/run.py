#!/usr/bin/env python3
"""Every benchmark in one process, launchers side by side: ``make bench``.

Usage: bench/run.py [--quick] [-r REPEATS] [--out DIR] [--only PART ...]

Parts (``--only`` picks some): ``latency`` (``true`` and an MPI hello at N = 1 .. 64
tasks under ``flux run`` in running instances of 1, 2 and 4 brokers, under
``mpiexec.hydra`` and under Open MPI's ``mpirun``), ``split`` (where the time of
one ``flux run`` goes, from the front end's, the job's and the shell's
timestamps), ``throughput`` (``flux submit --cc=1-N true`` to drained), ``io``
(labelled output MB/s, 2 and 8 tasks, C and Python paths, beside Hydra),
``nested`` (bench/nested.py: ``flux batch -N1``, ``flux alloc -N2`` and ``flux run
-N1`` side by side in the 2-broker instance, and jobs/s flat versus through 2
batch jobs), ``workflow`` (bench/workflow.py: a chain of 1,000 jobs, each
``afterok`` on the previous, and a fan-in of 1,000 jobs plus one that depends on
all of them, jobs/s), ``colocate`` (bench/colocate.py: a tool of ``true`` launched
beside a running 16-task job on 4 brokers, ``flux exec --jobid`` and ``flux run
--colocate``, wall time) and ``start`` (``flux start --test-size=N true``).

Launchers alternate run by run (a slow spell of the machine spreads over all of
them); each figure is the median of the repeats, with the spread (min, max,
quartiles) in the JSON. Results go to ``OUT/<date>.json`` and ``OUT/<date>-*.png``
(default OUT: bench/results), and a short table is printed. bench/README.md
explains each figure.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
from flux_launch.testing import Instance, clean_env  # noqa: E402


def _load(name):
    """bench/NAME.py, by path (io's name is the stdlib's)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{name}", os.path.join(HERE, f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bio = _load("io")  # the I/O part, and ``run``
nested = _load("nested")  # the nested part
workflow = _load("workflow")  # the workflow part
colocate = _load("colocate")  # the colocate part
run = bio.run

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")
HELLO = os.path.join(HERE, "..", "tests", "mpi", "hello.c")
OMPI_ROOT = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
PARTS = ("latency", "split", "throughput", "io", "nested", "workflow", "colocate", "start")
# A launch that takes longer hangs (Open MPI 4.1's mpirun sometimes does with many
# short-lived processes): it is killed and recorded as a failure.
LATENCY_TIMEOUT = {"true": 10, "hello": 40}


# ---- sizes ------------------------------------------------------------------------

def config(quick, repeats):
    if quick:  # the smoke test: every part, tiny
        return dict(ns=[1, 2], brokers=[1, 2], repeats=repeats or 1, jobs=[10], io_mb=4, io_tasks=[2],
                    io_check_mb=1, start_sizes=[1, 2], split_runs=2, nested=nested.sizes(True),
                    workflow=workflow.sizes(True), colocate=colocate.sizes(True))
    return dict(ns=[1, 2, 8, 16, 32, 64], brokers=[1, 2, 4], repeats=repeats or 5, jobs=[100, 1000],
                io_mb=200, io_tasks=[2, 8], io_check_mb=20, start_sizes=[1, 4, 16], split_runs=9,
                nested=nested.sizes(False), workflow=workflow.sizes(False), colocate=colocate.sizes(False))


def stats(ts):
    ts = sorted(ts)
    q = statistics.quantiles(ts, n=4) if len(ts) > 1 else [ts[0]] * 3
    return {"median": statistics.median(ts), "min": ts[0], "max": ts[-1], "q1": q[0], "q3": q[2], "runs": ts}


class Progress:
    """A one-line progress bar on stderr (plain lines when it is not a terminal)."""

    def __init__(self, total):
        self.total = max(1, total)
        self.done = 0
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_line = 0.0

    def tick(self, what, n=1):
        self.done += n
        frac = min(1.0, self.done / self.total)
        elapsed = time.monotonic() - self.t0
        eta = elapsed / frac - elapsed if frac > 0 else 0
        bar = "#" * int(30 * frac) + "." * (30 - int(30 * frac))
        line = f"[{bar}] {100 * frac:3.0f}%  {elapsed:5.0f}s elapsed, ~{eta:4.0f}s left  {what[:40]}"
        if self.tty:
            sys.stderr.write("\r" + line.ljust(110))
        elif time.monotonic() - self.last_line > 10 or self.done >= self.total:
            sys.stderr.write(line + "\n")
            self.last_line = time.monotonic()
        sys.stderr.flush()

    def close(self):
        if self.tty:
            sys.stderr.write("\n")


def run_timed(cmd, env, expect_hello=0, timeout=300):
    dt, rc, out, err = run(cmd, env, timeout=timeout)
    out = out.decode(errors="replace")
    if rc != 0 or (expect_hello and out.count("hello from rank") != expect_hello):
        why = f"killed after {timeout} s" if rc == -9 else f"exit code {rc}"
        raise RuntimeError(f"bench: {' '.join(cmd)} failed ({why}): {out[-300:]}{err.decode(errors='replace')[-300:]}")
    return dt


# ---- launchers --------------------------------------------------------------------

def cores_per_broker():
    """Cores each test broker reports (they all discover this machine)."""
    from flux_launch.resource import discover_from_env

    return max(1, discover_from_env()["ncores"])


def flux_size(n, brokers, cores):
    """``flux run`` options for n tasks in an instance of ``brokers`` brokers with
    ``cores`` cores each: one slot per core, several tasks per slot past that
    (flux-core's ``per-resource`` shell option), as the machine is small."""
    slots = min(n, brokers * cores)
    while n % slots:
        slots -= 1
    opts = ["-n", str(slots)]
    if n > slots:
        opts += ["-o", "per-resource.type=core", "-o", f"per-resource.count={n // slots}"]
    return opts


def build_programs(tmp):
    progs = {"true": {"mpich": ["true"], "ompi": ["true"]}}
    hello = {}
    for mpi, cc in (("mpich", "mpicc.mpich"), ("ompi", "mpicc.openmpi")):
        if shutil.which(cc):
            path = os.path.join(tmp, f"hello-{mpi}")
            subprocess.run([cc, "-O1", "-o", path, HELLO], check=True)
            hello[mpi] = [path]
    progs["hello"] = hello
    return progs


def launchers(instances, cores):
    """name -> function(program_by_mpi, n) -> (cmd, env), or None if it cannot run it."""
    out = {}
    for b, inst in instances.items():
        def flux(prog, n, inst=inst, b=b):
            if "mpich" not in prog:
                return None
            return [FLUX, "run", *flux_size(n, b, cores), *prog["mpich"]], inst.env
        out[f"flux run ({b} broker{'s' if b > 1 else ''})"] = flux
    if shutil.which("mpiexec.hydra"):
        out["mpiexec.hydra"] = lambda prog, n: (["mpiexec.hydra", "-n", str(n), *prog["mpich"]], clean_env()) \
            if "mpich" in prog else None
    if shutil.which("mpirun.openmpi"):
        env = clean_env(OMPI_ROOT if os.geteuid() == 0 else None)
        out["Open MPI mpirun"] = lambda prog, n: (["mpirun.openmpi", "--oversubscribe", "-n", str(n),
                                                   *prog["ompi"]], env) if "ompi" in prog else None
    return out


# ---- parts ------------------------------------------------------------------------

def part_latency(cfg, instances, cores, progs, progress):
    res = {}
    lmap = launchers(instances, cores)
    for pname in ("true", "hello"):
        prog = progs[pname]
        res[pname] = {name: {} for name in lmap}
        for n in cfg["ns"]:
            cmds = {name: fn(prog, n) for name, fn in lmap.items()}
            cmds = {k: v for k, v in cmds.items() if v is not None}
            expect = n if pname == "hello" else 0
            times = {name: [] for name in cmds}
            failed = {name: [] for name in cmds}

            def attempt(name, cmd, env, keep, expect=expect, pname=pname, failed=failed, times=times):
                try:
                    dt = run_timed(cmd, env, expect, timeout=LATENCY_TIMEOUT[pname])
                except RuntimeError as exc:  # recorded, not fatal: see "failures" in the JSON
                    failed[name].append(str(exc)[:300])
                    return
                if keep:
                    times[name].append(dt)

            for name, (cmd, env) in cmds.items():  # warm-up: page cache, .pyc files
                attempt(name, cmd, env, False)
            for _ in range(cfg["repeats"]):
                for name, (cmd, env) in cmds.items():
                    attempt(name, cmd, env, True)
                    progress.tick(f"{pname} N={n} {name}")
            for name, ts in times.items():
                if ts:
                    res[pname][name][n] = stats(ts)
                if failed[name]:
                    res[pname][name].setdefault("failures", {})[n] = failed[name]
    return res


def _eventlog(inst, jobid, path):
    from flux_launch.client.handle import Flux

    with Flux(inst.uri) as h:
        text = h.rpc("job-info.lookup", {"id": jobid, "keys": [path]}).get()[path]
    return [json.loads(line) for line in text.splitlines() if line]


STAGES = [("python start", "t0", "imported"),
          ("CLI (imports, jobspec)", "imported", "built"),
          ("submit round trip", "built", "submitted"),
          ("scheduling", "submit", "alloc"),
          ("shell start", "alloc", "shell.init"),
          ("task spawn", "shell.init", "shell.start"),
          ("PMI wire-up", "shell.start", "shell.pmi-barrier"),
          ("tasks run", "shell.pmi-barrier", "task-exit"),
          ("exit collection", "task-exit", "finish"),
          ("cleanup", "finish", "clean"),
          ("front end exit", "clean", "t_end")]


def part_split(cfg, instances, cores, progs, progress):
    """Stages of one ``flux run``: the front end's timestamps (FLUX_LAUNCH_TIMING),
    the job's eventlog and the shell's (guest.exec.eventlog)."""
    cases = [("flux run -n1 true", 1, progs["true"]["mpich"], 1)]
    if "mpich" in progs["hello"]:
        b = max(instances)
        n = min(8, b * cores)
        cases.append((f"flux run -n{n} hello ({b} brokers)", b, progs["hello"]["mpich"], n))
    res = {}
    for label, b, prog, n in cases:
        inst = instances[b]
        tfile = tempfile.NamedTemporaryFile(prefix="bench-timing-", delete=False).name
        env = dict(inst.env, FLUX_LAUNCH_TIMING=tfile)
        rows = []
        for i in range(cfg["split_runs"] + 1):
            t0 = time.time()
            _, rc, _, err = run([FLUX, "run", *flux_size(n, b, cores), *prog], env, stdout=subprocess.DEVNULL)
            t_end = time.time()
            if rc:
                raise RuntimeError(f"bench: flux run failed ({rc}): {err.decode(errors='replace')[-500:]}")
            with open(tfile) as f:
                front = json.loads(f.read().splitlines()[-1])
            if i == 0:
                continue  # warm-up
            marks = {"t0": t0, "t_end": t_end, **front}
            for ev in _eventlog(inst, front["id"], "eventlog"):
                marks.setdefault(ev["name"], ev["timestamp"])
            exits = []
            for ev in _eventlog(inst, front["id"], "guest.exec.eventlog"):
                if ev["name"] == "shell.task-exit":
                    exits.append(ev["timestamp"])
                else:
                    marks.setdefault(ev["name"], ev["timestamp"])
            marks["task-exit"] = max(exits) if exits else marks.get("finish")
            if "shell.pmi-barrier" not in marks:
                marks["shell.pmi-barrier"] = marks.get("shell.start")
            rows.append({stage: 1000 * (marks[b_] - marks[a]) for stage, a, b_ in STAGES
                         if a in marks and b_ in marks})
            rows[-1]["total"] = 1000 * (t_end - t0)
            if os.environ.get("BENCH_DEBUG"):
                print({k: round(1000 * (v - t0), 1) for k, v in marks.items() if isinstance(v, float)})
            progress.tick(label)
        os.unlink(tfile)
        res[label] = {stage: statistics.median(r[stage] for r in rows) for stage in rows[0]}
    return res


def part_throughput(cfg, instances, progress):
    inst = instances[1]
    res = {}
    run_timed([FLUX, "submit", "--cc=1-20", "--quiet", "true"], inst.env)  # warm-up
    run_timed([FLUX, "queue", "drain"], inst.env)
    for njobs in cfg["jobs"]:
        rates = []
        for _ in range(cfg["repeats"] if njobs <= 100 else max(1, cfg["repeats"] // 2)):
            t0 = time.perf_counter()
            run_timed([FLUX, "submit", f"--cc=1-{njobs}", "--quiet", "true"], inst.env)
            run_timed([FLUX, "queue", "drain"], inst.env)
            rates.append(njobs / (time.perf_counter() - t0))
            progress.tick(f"throughput {njobs} jobs")
        res[njobs] = stats(rates)
    return res


def part_io(cfg, instances, progress):
    res = {}
    for n in cfg["io_tasks"]:
        out = bio.measure(instances[1], n, cfg["io_mb"], cfg["repeats"], cfg["io_check_mb"],
                          progress=lambda n=n: progress.tick(f"io {n} tasks"))
        res[n] = {name: {**stats([r["mb"] / t for t in r["seconds"]]), "check": r.get("check")}
                  for name, r in out.items()}
    return res


def part_start(cfg, progress):
    env = clean_env()
    times = {n: [] for n in cfg["start_sizes"]}
    for n in times:
        run_timed([FLUX, "start", f"--test-size={n}", "true"], env)
    for _ in range(cfg["repeats"]):
        for n in times:
            times[n].append(run_timed([FLUX, "start", f"--test-size={n}", "true"], env))
            progress.tick(f"flux start --test-size={n}")
    return {n: stats(ts) for n, ts in times.items()}


# ---- report -----------------------------------------------------------------------

def table(results):
    lines = []
    lat = results.get("latency")
    if lat:
        for pname, per in lat.items():
            names = [k for k, v in per.items() if v]
            ns = sorted({n for v in per.values() for n in v if n != "failures"})
            lines.append(f"launch latency, {pname} (median s)")
            lines.append("  " + f"{'N':>4} " + "".join(f"{n[:22]:>24}" for n in names))
            for n in ns:
                cells = "".join(f"{per[k][n]['median']:24.3f}" if n in per[k] else f"{'-':>24}" for k in names)
                lines.append(f"  {n:>4} {cells}")
            for k in names:
                for n, errs in per[k].get("failures", {}).items():
                    lines.append(f"  note: {k} failed {len(errs)} time(s) at N={n}: {errs[0][:120]}")
    if results.get("split"):
        for label, stages in results["split"].items():
            lines.append(f"cost split of {label} (median ms)")
            for stage, ms in stages.items():
                lines.append(f"  {stage:<28} {ms:8.1f}")
    if results.get("throughput"):
        lines.append("throughput, flux submit --cc=1-N true to drained (jobs/s)")
        for n, s in results["throughput"].items():
            lines.append(f"  N={n:<6} {s['median']:8.0f}")
    if results.get("io"):
        for n, per in results["io"].items():
            lines.append(f"labelled output, {n} tasks (MB/s; broken lines)")
            for name, s in per.items():
                check = s.get("check") or {}
                lines.append(f"  {name:<24} {s['median']:8.1f}  {check.get('broken_lines', '-')}")
    if results.get("nested"):
        lines.append(nested.table(results["nested"]))
    if results.get("workflow"):
        lines.append(workflow.table(results["workflow"]))
    if results.get("colocate"):
        lines.append(colocate.table(results["colocate"]))
    if results.get("start"):
        lines.append("flux start --test-size=N true (median s)")
        for n, s in results["start"].items():
            lines.append(f"  N={n:<4} {s['median']:8.3f}")
    return "\n".join(lines)


def plots(results, prefix):
    """PNG files next to the JSON; returns their paths ([] without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.stderr.write("bench: matplotlib is not installed: no plots (pip install matplotlib)\n")
        return []
    paths = []

    def save(fig, name):
        path = f"{prefix}-{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)

    for pname, per in (results.get("latency") or {}).items():
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, byn in per.items():
            ns = sorted((n for n in byn if n != "failures"), key=int)
            if not ns:
                continue
            med = [byn[n]["median"] for n in ns]
            lo = [byn[n]["median"] - byn[n]["min"] for n in ns]
            hi = [byn[n]["max"] - byn[n]["median"] for n in ns]
            ax.errorbar([int(n) for n in ns], med, yerr=[lo, hi], marker="o", capsize=3, label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("tasks (N)")
        ax.set_ylabel("wall time (s), median, bars: min-max")
        ax.set_title(f"launch latency: {pname}" + (" (MPI hello)" if pname == "hello" else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, f"latency-{pname}")
    if results.get("throughput"):
        fig, ax = plt.subplots(figsize=(5, 4))
        ns = list(results["throughput"])
        ax.bar([str(n) for n in ns], [results["throughput"][n]["median"] for n in ns], color="tab:blue")
        ax.axhline(30, color="gray", ls="--", label="flux-core 0.88 (ANCHORS.md)")
        ax.set_xlabel("jobs submitted (flux submit --cc=1-N true)")
        ax.set_ylabel("jobs/s, submit to drained")
        ax.set_title("throughput")
        ax.legend(fontsize=8)
        save(fig, "throughput")
    if results.get("io"):
        fig, ax = plt.subplots(figsize=(7, 4))
        groups = list(results["io"])
        names = list(next(iter(results["io"].values())))
        width = 0.8 / len(names)
        for i, name in enumerate(names):
            xs = [g + (i - (len(names) - 1) / 2) * width for g in range(len(groups))]
            ax.bar(xs, [results["io"][g][name]["median"] for g in groups], width, label=name)
        ax.set_xticks(range(len(groups)), [f"{g} tasks" for g in groups])
        ax.set_ylabel("MB/s, labelled output to /dev/null")
        ax.set_title("I/O: flux run -l vs mpiexec.hydra -l")
        ax.legend(fontsize=8)
        save(fig, "io")
    if results.get("start"):
        fig, ax = plt.subplots(figsize=(5, 4))
        ns = list(results["start"])
        ax.plot([int(n) for n in ns], [results["start"][n]["median"] for n in ns], marker="o")
        ax.set_xlabel("brokers (flux start --test-size=N true)")
        ax.set_ylabel("wall time (s), median")
        ax.set_title("instance start")
        ax.grid(True, alpha=0.3)
        save(fig, "start")
    if results.get("nested"):
        save(nested.plot(results["nested"], plt), "nested")
    if results.get("workflow"):
        save(workflow.plot(results["workflow"], plt), "workflow")
    if results.get("colocate"):
        save(colocate.plot(results["colocate"], plt), "colocate")
    if results.get("split"):
        fig, ax = plt.subplots(figsize=(9, 2.4 + 0.6 * len(results["split"])))
        colors = plt.get_cmap("tab20").colors
        shown = set()
        for row, (_label, stages) in enumerate(results["split"].items()):
            left = 0.0
            for i, (stage, _a, _b) in enumerate(STAGES):
                ms = stages.get(stage)
                if ms is None or ms <= 0:
                    continue
                ax.barh(row, ms, left=left, color=colors[(2 * i) % 20 + (i >= 10)],
                        label=None if stage in shown else stage)
                shown.add(stage)
                left += ms
        ax.set_yticks(range(len(results["split"])), list(results["split"]))
        ax.set_xlabel("ms (median of each stage)")
        ax.set_title("where the time of one flux run goes")
        ax.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.45))
        save(fig, "split")
    return paths


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (the smoke test)")
    p.add_argument("-r", "--repeats", type=int, help="repetitions per figure (default 5; quick 1)")
    p.add_argument("--out", default=os.path.join(HERE, "results"), help="directory for the JSON and plots")
    p.add_argument("--only", nargs="+", choices=PARTS, help="run only these parts")
    args = p.parse_args()
    cfg = config(args.quick, args.repeats)
    parts = args.only or PARTS
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y-%m-%d")
    prefix = os.path.join(args.out, stamp)
    tmp = tempfile.mkdtemp(prefix="flux-bench-")
    progs = build_programs(tmp)
    cores = cores_per_broker()
    nl = len(launchers({b: None for b in cfg["brokers"]}, cores))
    total = (("latency" in parts) * 2 * len(cfg["ns"]) * cfg["repeats"] * nl
             + ("split" in parts) * 2 * cfg["split_runs"]
             + ("throughput" in parts) * sum(cfg["repeats"] if n <= 100 else max(1, cfg["repeats"] // 2)
                                             for n in cfg["jobs"])
             + ("io" in parts) * len(cfg["io_tasks"]) * cfg["repeats"] * 3
             + ("nested" in parts) * nested.progress_steps(cfg["nested"])
             + ("workflow" in parts) * workflow.progress_steps(cfg["workflow"])
             + ("colocate" in parts) * colocate.progress_steps(cfg["colocate"])
             + ("start" in parts) * len(cfg["start_sizes"]) * cfg["repeats"])
    progress = Progress(total)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "host": platform.node(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "cores_per_broker": cores,
            "python": platform.python_version(), "quick": args.quick, "config": cfg,
            "backend": __import__("flux_launch._accel", fromlist=["BACKEND"]).BACKEND}
    results = {"meta": meta}
    t0 = time.monotonic()
    instances = {}
    try:
        need = [b for b in cfg["brokers"]] if {"latency", "split"} & set(parts) else []
        if {"throughput", "io", "workflow"} & set(parts) and 1 not in need:
            need.append(1)
        if "nested" in parts and 2 not in need:
            need.append(2)
        if "colocate" in parts and colocate.BROKERS not in need:
            need.append(colocate.BROKERS)
        for b in need:
            instances[b] = Instance(size=b, timeout=120).start()
        if "latency" in parts:
            results["latency"] = part_latency(cfg, instances, cores, progs, progress)
        if "split" in parts:
            results["split"] = part_split(cfg, instances, cores, progs, progress)
        if "throughput" in parts:
            results["throughput"] = part_throughput(cfg, instances, progress)
        if "io" in parts:
            results["io"] = part_io(cfg, instances, progress)
        if "nested" in parts:
            results["nested"] = nested.measure(instances[2], cfg["nested"], progress=progress.tick)
        if "workflow" in parts:
            results["workflow"] = workflow.measure(instances[1], cfg["workflow"], progress=progress.tick)
        if "colocate" in parts:
            results["colocate"] = colocate.measure(instances[colocate.BROKERS], cfg["colocate"],
                                                   progress=progress.tick)
    finally:
        for inst in instances.values():
            inst.close()
    if "start" in parts:
        results["start"] = part_start(cfg, progress)
    progress.close()
    meta["seconds"] = time.monotonic() - t0
    with open(prefix + ".json", "w") as f:
        json.dump(results, f, indent=1)
    paths = plots(results, prefix)
    print(table(results))
    print(f"\nwrote {prefix}.json" + "".join(f"\n      {p}" for p in paths) + f"\n({meta['seconds']:.0f} s)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
