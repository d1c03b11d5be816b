"""Resource discovery from real hwloc XML topologies (tests/data/topologies, from
../shared/topologies), GPU grouping, the sysfs twin, and the builtin plugin order."""

import os

import pytest

from flux_launch.resource import TopologyError, discover, group_gpus

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "topologies")


@pytest.mark.parametrize("name,cores,pus,gpus,vendor", [
    ("corona", 48, 96, 8, "amd"),
    ("ipa20", 112, 224, 4, "nvidia"),
    ("sierra", 44, 176, 4, "nvidia"),
    ("tuo.SPX", 96, 192, 4, "amd"),
    ("tuo.CPX", 96, 192, 24, "amd"),   # six partitions of each MI300A: 24 GPUs
])
def test_counts_per_topology(name, cores, pus, gpus, vendor):
    t = discover(os.path.join(DATA, f"{name}.xml"))
    assert (t["ncores"], t["npus"], len(t["gpus"])) == (cores, pus, gpus)
    assert {g["vendor"] for g in t["gpus"]} == {vendor}
    assert [g["index"] for g in t["gpus"]] == list(range(gpus))
    busids = [g["busid"] for g in t["gpus"]]
    assert busids == sorted(busids)  # numbered in PCI bus order
    assert sum(len(c) for c in t["cores"]) == pus  # every PU in exactly one core
    assert len({pu for c in t["cores"] for pu in c}) == pus


def test_one_gpu_seen_many_times_counts_once():
    osdevs = [("cuda0", "0000:4e:00.0", 0x10DE, True), ("nvml0", "0000:4e:00.0", 0x10DE, True),
              ("opencl0d0", "0000:4e:00.0", 0x10DE, True), ("card1", "0000:4e:00.0", 0x10DE, True),
              ("renderD128", "0000:4e:00.0", 0x10DE, True), ("cuda1", "0000:03:00.0", 0x10DE, True),
              ("nvml1", "0000:03:00.0", 0x10DE, True), ("eth0", "0000:01:00.0", 0x8086, False)]
    gpus = group_gpus(osdevs)
    assert [(g["index"], g["busid"], g["vendor"]) for g in gpus] == [(0, "0000:03:00.0", "nvidia"),
                                                                       (1, "0000:4e:00.0", "nvidia")]


def test_partitions_on_one_pci_device_are_several_gpus():
    osdevs = [(f"rsmi{i}", "0000:02:00.0", 0x1002, True) for i in range(6)] + [("card0", "0000:02:00.0", 0x1002, True)]
    assert len(group_gpus(osdevs)) == 6


@pytest.mark.parametrize("content,why", [(None, "no such file"), ("<not xml", "cannot load")])
def test_bad_xml_is_a_clear_error(tmp_path, content, why):
    path = tmp_path / "topo.xml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(TopologyError, match=why) as exc:
        discover(str(path))
    assert str(path) in str(exc.value)


def test_live_machine_and_sysfs_twin_agree():
    from flux_launch.resource import _sysfs

    live, twin = discover(), _sysfs.discover()
    assert live["ncores"] == twin["ncores"] and live["npus"] == twin["npus"]
    assert sorted(map(sorted, live["cores"])) == sorted(map(sorted, twin["cores"]))
    assert twin["gpus"] == [] and "no GPU" in twin["source"]
    assert {pu for c in live["cores"] for pu in c} <= os.sched_getaffinity(0)


def test_builtin_shell_plugins_in_order():
    from flux_launch.shell.plugins import BUILTIN_NAMES, builtins

    assert tuple(p.name for p in builtins()) == BUILTIN_NAMES
    assert BUILTIN_NAMES[:2] == ("tmpdir", "output")  # output before anything that logs


@pytest.mark.parametrize("value,ok", [("on", True), ("off", True), ("per-task", True), ("map:0;1-3", True),
                                      ("map:", False), ("map:x", False), ("bogus", False)])
def test_affinity_options_checked_at_submit(value, ok):
    from flux_launch.proto.shellopts import check

    if ok:
        check({"cpu-affinity": value, "gpu-affinity": value})
    else:
        with pytest.raises(ValueError, match="affinity"):
            check({"cpu-affinity": value})


def test_share_spreads_items_over_tasks():
    from flux_launch.shell.plugins.affinity import share

    assert [share(list(range(8)), i, 4) for i in range(4)] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert [share([0, 1], i, 4) for i in range(4)] == [[0], [0], [1], [1]]
    assert share([], 0, 2) == []


@pytest.mark.parametrize("text,size", [("512", 512), ("10k", 10240), ("1.5M", 1572864), ("1G", 1 << 30)])
def test_output_limit_sizes(text, size):
    from flux_launch.proto.shellopts import parse_size

    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "abc", "-1k", "1T"])
def test_bad_output_limit_sizes(text):
    from flux_launch.proto.shellopts import check

    with pytest.raises(ValueError, match="output.limit"):
        check({"output": {"limit": text}})
