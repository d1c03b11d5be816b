"""What a node has: cores (hwloc Cores, with their PUs) and GPUs.

``discover(xmlpath=None)`` reads the live machine, or the hwloc XML file named by
``FLUX_HWLOC_XMLFILE`` (flux-core's variable) taken as written: a file describes
another machine, so it is not restricted to this one's cpuset. hwloc is used
through cffi (``csrc/topo.c``); without it, the Python twin reads
``/sys/devices/system/cpu`` and finds no GPUs, and says so in ``source``.

GPUs: hwloc shows one physical GPU as several OS devices (cuda0, nvml0, opencl0d0,
card1, renderD128, rsmi0). A GPU is counted once: per PCI device, the largest
number of OS devices of one family (cuda, nvml, rsmi, opencl, ...; the DRM
card/renderD entries do not count), so an MI300A split in six partitions (six
rsmi devices on one PCI device) is six GPUs. GPUs are numbered in PCI bus order.
"""

import os

VENDORS = {0x10DE: "nvidia", 0x1002: "amd", 0x8086: "intel"}
_FAMILY_VENDOR = {"cuda": "nvidia", "nvml": "nvidia", "rsmi": "amd"}


class TopologyError(RuntimeError):
    """The topology cannot be read; the message names the file and the cause."""


def _family(name):
    if name.startswith("opencl"):  # opencl0d0: platform 0, device 0
        return "opencl"
    fam = name.rstrip("0123456789") or name
    return None if fam in ("card", "renderD", "controlD") else fam


def group_gpus(osdevs):
    """GPUs from ``(name, busid, vendor_id, is_gpu)`` OS devices (see the module
    docstring); returns ``[{"index", "busid", "vendor", "names"}]`` in bus order."""
    by_bus = {}
    for name, busid, vendor_id, is_gpu in osdevs:
        fam = _family(name)
        if not is_gpu or not busid or fam is None:
            continue
        dev = by_bus.setdefault(busid, {"vendor": VENDORS.get(vendor_id) or _FAMILY_VENDOR.get(fam, "unknown"),
                                        "families": {}})
        dev["families"].setdefault(fam, []).append(name)
    gpus = []
    for busid in sorted(by_bus):
        dev = by_bus[busid]
        count = max(len(v) for v in dev["families"].values())
        for k in range(count):
            names = [v[k] for v in dev["families"].values() if k < len(v)]
            gpus.append({"index": len(gpus), "busid": busid, "vendor": dev["vendor"], "names": names})
    return gpus


def discover_from_env(environ=None):
    """``discover()`` of ``$FLUX_HWLOC_XMLFILE`` or the live machine.

    Raises:
        TopologyError: one line naming the variable, the file and the cause.
    """
    xml = (os.environ if environ is None else environ).get("FLUX_HWLOC_XMLFILE") or None
    try:
        return discover(xml)
    except TopologyError as exc:
        raise TopologyError(f"FLUX_HWLOC_XMLFILE: {exc}" if xml else str(exc)) from None


def discover(xmlpath=None):
    """``{"source", "ncores", "npus", "cores": [[PU os index...] per core], "gpus": [...]}``.

    Raises:
        TopologyError: ``xmlpath`` is missing or not a valid hwloc XML file.
    """
    if xmlpath is not None and not os.path.isfile(xmlpath):
        raise TopologyError(f"{xmlpath}: no such file")
    try:
        from flux_launch.resource import _hwloc
    except ImportError:
        if xmlpath is not None:
            raise TopologyError(f"{xmlpath}: hwloc is not available to read it (install libhwloc-dev and "
                                "reinstall)") from None
        from flux_launch.resource import _sysfs

        return _sysfs.discover()
    ffi, lib = _hwloc.ffi, _hwloc.lib
    err = ffi.new("char[]", 256)
    topo = lib.flx_topo_load(xmlpath.encode() if xmlpath else ffi.NULL, err, 256)
    if topo == ffi.NULL:
        raise TopologyError(f"{xmlpath or 'this machine'}: {ffi.string(err).decode()}")
    try:
        ncores = lib.flx_topo_ncores(topo)
        if ncores == 0:
            raise TopologyError(f"{xmlpath or 'this machine'}: the topology has no cores")
        pus = ffi.new("int[]", 1024)
        cores = []
        for c in range(ncores):
            n = lib.flx_topo_core_pus(topo, c, pus, 1024)
            cores.append([pus[i] for i in range(max(0, min(n, 1024)))])
        name, busid, vendor, kind = ffi.new("char[]", 64), ffi.new("char[]", 32), ffi.new("unsigned *"), \
            ffi.new("int *")
        gpu_kinds = (lib.flx_topo_kind_gpu(), lib.flx_topo_kind_coproc())
        osdevs = []
        for i in range(lib.flx_topo_nosdev(topo)):
            if lib.flx_topo_osdev(topo, i, name, 64, busid, 32, vendor, kind) == 0:
                osdevs.append((ffi.string(name).decode(), ffi.string(busid).decode(), vendor[0],
                               kind[0] in gpu_kinds))
        return {"source": f"hwloc ({xmlpath})" if xmlpath else "hwloc", "ncores": ncores,
                "npus": lib.flx_topo_npus(topo), "cores": cores, "gpus": group_gpus(osdevs)}
    finally:
        lib.flx_topo_destroy(topo)
