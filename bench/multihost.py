#!/usr/bin/env python3
"""MPICH hello across 4 hosts: ``flux run`` in an instance spanning them versus
``mpiexec.hydra`` across the same hosts (root only).

Usage: bench/multihost.py [-r REPEATS] [--quick] [--json FILE]

The hosts are network namespaces on this machine (``flux_launch.testing.netns``:
each with its own address on a private bridge, host name, ``/tmp`` and
``/etc/hosts``). An instance of 4 brokers, one per host, is started once by
``mpiexec.hydra -n4 flux start`` (its ssh launcher replaced by ``ip netns exec``);
its brokers talk TCP with CURVE. Then, alternating run by run:

- ``flux run -n8 mpi_hello`` in that instance (2 tasks per host);
- ``mpiexec.hydra -ppn 2 -n8 mpi_hello`` across the same 4 hosts, same launcher
  (2 ranks per host, in blocks, as ``flux run`` places them);
- ``flux run -N4 true`` and ``mpiexec.hydra -n4 true`` (one per host): the
  launch alone, without MPI;
- ``mpiexec.hydra -n4 flux start true``: starting and stopping an instance across
  the 4 hosts (for scale: what the ``flux run`` figures do not pay);
- ``true`` on host 0: the cost of entering a host (``ip netns exec``, ``unshare``,
  mounts), which every other figure includes once.

Every command is run on host 0 (as from a login node) and timed from fork to
waitpid. ``mpi_hello`` is tests/mpi/hello.c built with ``mpicc.mpich``. Each
figure is the median of REPEATS runs (default 9; 3 with ``--quick``), min and max
beside it, after one warm-up run each. A command that fails is an error.
"""

import argparse
import datetime
import importlib.util
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "src"))
from flux_launch.testing import BIN, clean_env  # noqa: E402
from flux_launch.testing.netns import Hosts, HostsUnavailable, HydraInstance  # noqa: E402

FLUX = os.path.join(BIN, "flux")
HOSTS = 4
TASKS = 8


def _bench_io():
    """bench/io.py (its ``timed``: a blocking wait, a watchdog for hangs)."""
    spec = importlib.util.spec_from_file_location("bench_io", os.path.join(HERE, "io.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def sizes(quick, repeats=None):
    return {"runs": repeats or (3 if quick else 9), "hosts": HOSTS, "tasks": TASKS}


def stats(ts):
    ts = sorted(ts)
    return {"median": statistics.median(ts), "min": ts[0], "max": ts[-1], "runs": ts}


def build_hello(hosts):
    out = os.path.join(hosts.shared, "mpi_hello")
    subprocess.run(["mpicc.mpich", "-O1", "-o", out, os.path.join(HERE, "..", "tests", "mpi", "hello.c")],
                   check=True, capture_output=True, text=True)
    return out


def ways(hosts, inst, hello):
    """{name: (argv, env)}, each argv run on host 0."""
    per_host = str(TASKS // HOSTS)
    plain = clean_env()
    return {f"flux run -n{TASKS} mpi_hello": (hosts.cmd(0, [FLUX, "run", f"-n{TASKS}", hello]), inst.env),
            f"mpiexec.hydra -n{TASKS} mpi_hello": (
                hosts.cmd(0, hosts.hydra(["-ppn", per_host, "-n", str(TASKS), hello])), plain),
            f"flux run -N{HOSTS} true": (hosts.cmd(0, [FLUX, "run", f"-N{HOSTS}", "true"]), inst.env),
            f"mpiexec.hydra -n{HOSTS} true": (hosts.cmd(0, hosts.hydra(["-n", str(HOSTS), "true"])), plain),
            f"mpiexec.hydra -n{HOSTS} flux start true": (
                hosts.cmd(0, hosts.hydra(["-n", str(HOSTS), FLUX, "start", "true"])), plain),
            "true on host 0 (netns entry)": (hosts.cmd(0, ["true"]), plain)}


def check_layout(hosts, cmds, hello):
    """Both launchers must put 2 ranks on each of the 4 hosts."""
    for name in (f"flux run -n{TASKS} mpi_hello", f"mpiexec.hydra -n{TASKS} mpi_hello"):
        argv, env = cmds[name]
        r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        nodes = sorted(line.rsplit(" on ", 1)[1].split(",")[0] for line in r.stdout.splitlines() if " on " in line)
        if r.returncode or nodes != sorted(hosts.names * (TASKS // HOSTS)):
            raise RuntimeError(f"{name} (exit {r.returncode}) placed ranks on {nodes}, not {TASKS // HOSTS} per "
                               f"host:\n{r.stdout}{r.stderr}")


def measure(hosts, cfg, progress=None):
    timed = _bench_io().timed
    hello = build_hello(hosts)
    with HydraInstance(hosts, timeout=120) as inst:
        cmds = ways(hosts, inst, hello)
        check_layout(hosts, cmds, hello)
        for argv, env in cmds.values():  # warm-up (and a check that each works)
            timed(argv, env)
        runs = {name: [] for name in cmds}
        for _ in range(cfg["runs"]):
            for name, (argv, env) in cmds.items():
                runs[name].append(timed(argv, env))
                if progress:
                    progress(f"multihost: {name}")
    return {"hosts": HOSTS, "tasks": TASKS, **{name: stats(ts) for name, ts in runs.items()}}


def table(res):
    names = [k for k in res if isinstance(res[k], dict)]
    lines = [f"MPICH hello across {res['hosts']} hosts (network namespaces), wall s, "
             f"median of {len(res[names[0]]['runs'])} (min-max)"]
    for name in names:
        s = res[name]
        lines.append(f"  {name:<36} {s['median']:7.3f}  ({s['min']:.3f}-{s['max']:.3f})")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-r", "--repeats", type=int, help="runs of each way (default 9; quick 3)")
    p.add_argument("--quick", action="store_true", help="three runs")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    cfg = sizes(args.quick, args.repeats)
    meta = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpus": os.cpu_count(),
            "load_average_before": os.getloadavg()[0], "config": cfg}
    try:
        with Hosts(HOSTS) as hosts:
            res = measure(hosts, cfg)
    except HostsUnavailable as exc:
        sys.exit(f"bench/multihost.py: cannot make hosts here: {exc}")
    meta["load_average_after"] = os.getloadavg()[0]
    print(table(res))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, **res}, f, indent=1)


if __name__ == "__main__":
    main()
