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


class _Affinity:
    """The plugin's state: the option, and this node's CPUs."""

    __slots__ = ("mode", "maps", "here", "job_cores", "core_pus", "warned")

    def __init__(self, shell):
        from flux_launch.proto.shellopts import cpu_affinity

        self.mode, self.maps = cpu_affinity(shell.options.get("cpu-affinity"))
        self.here = os.sched_getaffinity(0)
        topo = (shell.topology or {}).get("cores") or []
        mine = shell.alloc.get(shell.rank, shell.alloc.get(str(shell.rank), {})).get("core", [])
        self.job_cores = [c for c in mine if c < len(topo)]
        self.core_pus = topo
        self.warned = False


def _init(shell, _task):
    shell.aux_set("cpu-affinity", _Affinity(shell))


def _task_init(shell, task):
    st = shell.aux_get("cpu-affinity")
    if st.mode == "off":
        return
    n = len(shell.taskmap.local(shell.rank))
    if st.mode == "map":
        cpus = st.maps[task.local_id % len(st.maps)]
    else:
        cores = st.job_cores if st.mode == "on" else share(st.job_cores, task.local_id, n)
        cpus = {pu for c in cores for pu in st.core_pus[c]}
    usable = cpus & st.here
    if not usable:
        if not st.warned:
            st.warned = True
            shell.log("WARN", f"cpu-affinity: CPUs {sorted(cpus)[:8]}... do not exist on this machine; "
                      "tasks are not bound")
        return
    task.cpus = usable
    if shell.verbose:
        from flux_launch.core.idset import encode

        shell.log("INFO", f"cpu-affinity: task {task.id}: CPUs {encode(sorted(usable))}")


plugin = Plugin("cpu-affinity", {"shell.init": _init, "task.init": _task_init})
