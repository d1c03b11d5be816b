"""gpu-affinity: which GPUs each task sees.

``on`` (the default, as in flux-core): every task sees all of the job's GPUs on
this node; ``-o gpu-affinity=per-task``: each task gets its share of them;
``off``: nothing is set; ``map:LIST``: task i gets the i-th GPU list
(semicolon-separated idsets of node GPU indexes).

NVIDIA GPUs go in ``CUDA_VISIBLE_DEVICES`` (with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``,
since indexes follow PCI bus order), AMD GPUs in ``ROCR_VISIBLE_DEVICES``; the
numbers are each vendor's own device indexes. On a node with GPUs, a job (or a
task) with none gets ``-1``: it sees no GPU, not every GPU.

Topics: ``shell.init`` (check the option), ``task.init`` (the task's variables).
"""

from flux_launch.shell.plugins.affinity import share
from flux_launch.shell.plugstack import Plugin

VARS = {"nvidia": "CUDA_VISIBLE_DEVICES", "amd": "ROCR_VISIBLE_DEVICES"}


class _GPUs:
    """The plugin's state: the option, this node's GPUs and the job's among them."""

    __slots__ = ("mode", "maps", "node_gpus", "job_gpus")

    def __init__(self, shell):
        from flux_launch.proto.shellopts import gpu_affinity

        self.mode, self.maps = gpu_affinity(shell.options.get("gpu-affinity"))
        gpus = (shell.topology or {}).get("gpus") or []
        self.node_gpus = gpus
        mine = shell.alloc.get(shell.rank, shell.alloc.get(str(shell.rank), {})).get("gpu", [])
        self.job_gpus = [g for g in mine if g < len(gpus)]


def _init(shell, _task):
    shell.aux_set("gpu-affinity", _GPUs(shell))


def _vendor_index(gpus, index):
    vendor = gpus[index]["vendor"]
    return vendor, sum(1 for g in gpus[:index] if g["vendor"] == vendor)


def _task_init(shell, task):
    st = shell.aux_get("gpu-affinity")
    gpus = st.node_gpus
    if st.mode == "off" or not gpus:
        return
    n = len(shell.taskmap.local(shell.rank))
    if st.mode == "map":
        mine = [g for g in st.maps[task.local_id % len(st.maps)] if g < len(gpus)]  # node GPU indexes
    elif st.mode == "on":
        mine = st.job_gpus
    else:
        mine = share(st.job_gpus, task.local_id, n)
    visible = {}
    for g in mine:
        vendor, idx = _vendor_index(gpus, g)
        visible.setdefault(vendor, []).append(str(idx))
    for vendor in {g["vendor"] for g in gpus}:
        var = VARS.get(vendor)
        if var:
            task.env[var] = ",".join(visible.get(vendor, [])) or "-1"
    if "nvidia" in visible or any(g["vendor"] == "nvidia" for g in gpus):
        task.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"


plugin = Plugin("gpu-affinity", {"shell.init": _init, "task.init": _task_init})
