"""The Python twin of hwloc discovery: cores and their CPUs from
``/sys/devices/system/cpu`` (restricted to this process's affinity), no GPUs."""

import os


def discover(root="/sys/devices/system/cpu"):
    allowed = sorted(os.sched_getaffinity(0))
    cores = {}
    for cpu in allowed:
        topo = os.path.join(root, f"cpu{cpu}", "topology")
        try:
            with open(os.path.join(topo, "physical_package_id")) as f:
                pkg = int(f.read())
            with open(os.path.join(topo, "core_id")) as f:
                core = int(f.read())
        except (OSError, ValueError):
            pkg, core = 0, cpu
        cores.setdefault((pkg, core), []).append(cpu)
    ordered = [sorted(pus) for _, pus in sorted(cores.items(), key=lambda kv: min(kv[1]))]
    return {"source": "sysfs (hwloc not built: no GPU discovery)", "ncores": len(ordered),
            "npus": len(allowed), "cores": ordered, "gpus": []}
