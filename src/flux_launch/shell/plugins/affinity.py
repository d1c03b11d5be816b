"""cpu-affinity: bind tasks to the CPUs of the job's cores on this node.

``-o cpu-affinity=on`` (default): every task is bound to all of the job's cores
here; ``per-task``: each task to its own share of them (spread in core order);
``off``: no binding; ``map:LIST``: task i to the i-th CPU set of LIST
(semicolon-separated idsets of CPU ids, e.g. ``map:0-1;2-3``).

Cores are the hwloc Cores of R, turned into their PUs with the node's topology.
A topology read from a file may describe CPUs this machine does not have: those
are left out, and if none is left the task is not bound (one log line says so).
Binding is applied to the child before it executes (the shell sets its own
affinity around the spawn; it is single-threaded). ``-o verbose`` logs the sets.

Topics: ``shell.init`` (check the option), ``task.init`` (the task's CPU set).
"""

import os

from flux_launch.shell.plugstack import Plugin


def share(items, i, n):
    """Item share of local task i of n: an even split, or one shared item each
    when there are fewer items than tasks."""
    if not items:
        return []
    if len(items) >= n:
        return items[i * len(items) // n:(i + 1) * len(items) // n]
    return [items[i * len(items) // n]]


def _init(shell, _task):
    from flux_launch.proto.shellopts import cpu_affinity

    mode, maps = cpu_affinity(shell.options.get("cpu-affinity"))
    shell.cpu_affinity = (mode, maps)
    here = os.sched_getaffinity(0)
    shell.cpu_here = here
    topo = (getattr(shell, "topology", None) or {}).get("cores") or []
    mine = shell.alloc.get(shell.rank, shell.alloc.get(str(shell.rank), {})).get("core", [])
    shell.job_cores = [c for c in mine if c < len(topo)]
    shell.core_pus = topo
    shell.affinity_warned = False


def _task_init(shell, task):
    mode, maps = shell.cpu_affinity
    if mode == "off":
        return
    n = len(shell.taskmap.local(shell.rank))
    if mode == "map":
        cpus = maps[task.local_id % len(maps)]
    else:
        cores = shell.job_cores if mode == "on" else share(shell.job_cores, task.local_id, n)
        cpus = {pu for c in cores for pu in shell.core_pus[c]}
    usable = cpus & shell.cpu_here
    if not usable:
        if not shell.affinity_warned:
            shell.affinity_warned = True
            shell.log("WARN", f"cpu-affinity: CPUs {sorted(cpus)[:8]}... do not exist on this machine; "
                      "tasks are not bound")
        return
    task.cpus = usable
    if shell.verbose:
        from flux_launch.core.idset import encode

        shell.log("INFO", f"cpu-affinity: task {task.id}: CPUs {encode(sorted(usable))}")


plugin = Plugin("cpu-affinity", {"shell.init": _init, "task.init": _task_init})
