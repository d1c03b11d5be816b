"""Resources from hwloc in real instances: what flux resource list shows, what
GPUs and CPUs tasks see, and requests that can never fit."""

import os

import pytest

from flux_launch.proto.shellopts import gpu_affinity
from flux_launch.testing import Instance, flux

pytestmark = pytest.mark.e2e

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "topologies")


def xml(name):
    return {"FLUX_HWLOC_XMLFILE": os.path.join(DATA, f"{name}.xml")}


@pytest.fixture(scope="module")
def corona2():
    with Instance(size=2, env=xml("corona")) as inst:
        yield inst


def test_corona_resource_list(corona2):
    out = corona2.flux("resource", "list").stdout.splitlines()
    assert out[0].split() == ["STATE", "NNODES", "NCORES", "NGPUS", "NODELIST"]
    free = out[1].split()
    assert free[:4] == ["free", "2", "96", "16"], out


def test_rocr_visible_devices_per_task(corona2):
    r = corona2.flux("run", "-N1", "-n8", "-g1", "-o", "gpu-affinity=per-task", "printenv",
                     "ROCR_VISIBLE_DEVICES")
    assert sorted(r.stdout.split(), key=int) == [str(i) for i in range(8)]


def test_gpu_affinity_on_and_none(corona2):
    r = corona2.flux("run", "-N1", "-n2", "-g2", "-o", "gpu-affinity=on", "printenv", "ROCR_VISIBLE_DEVICES")
    assert r.stdout.split() == ["0,1,2,3", "0,1,2,3"]
    r = corona2.flux("run", "-N1", "-n2", "printenv", "ROCR_VISIBLE_DEVICES")
    assert r.stdout.split() == ["-1", "-1"]  # a job without GPUs sees none, not all


def test_more_gpus_per_task_than_a_node_has(corona2):
    r = corona2.flux("run", "-n1", "-g9", "true", check=False)
    assert r.returncode == 1 and "unsatisfiable" in r.stderr and "8 GPUs" in r.stderr, r.stderr


def test_cores_of_a_file_topology_that_do_not_exist_here_are_skipped(corona2):
    r = corona2.flux("run", "-N1", "-n1", "-c", "48", "-o", "cpu-affinity=on", "sh", "-c",
                     "grep Cpus_allowed_list /proc/self/status")
    assert r.returncode == 0 and "Cpus_allowed_list" in r.stdout


def test_ipa20_cuda_visible_devices():
    r = flux("start", "sh", "-c",
             'flux run -n4 -g1 -o gpu-affinity=per-task sh -c "echo \\$CUDA_VISIBLE_DEVICES \\$CUDA_DEVICE_ORDER"',
             env=xml("ipa20"))
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == [f"{i} PCI_BUS_ID" for i in range(4)]


def test_cpu_affinity_per_task_and_off():
    script = ("flux run -n2 -o cpu-affinity=per-task sh -c 'grep Cpus_allowed_list /proc/self/status'; "
              "echo --; flux run -n2 -o cpu-affinity=off sh -c 'grep Cpus_allowed_list /proc/self/status'")
    r = flux("start", "sh", "-c", script)
    assert r.returncode == 0, r.stderr
    per_task, off = r.stdout.split("--\n")
    cpus = [line.split()[1] for line in per_task.splitlines()]
    assert len(cpus) == 2 and len(set(cpus)) == 2, per_task
    allowed = sorted(os.sched_getaffinity(0))
    for line in off.splitlines():
        assert line.split()[1] in (f"{allowed[0]}-{allowed[-1]}", ",".join(map(str, allowed))), off


def test_gpus_on_an_instance_without_gpus_are_unsatisfiable():
    r = flux("start", "flux", "run", "-n1", "-g1", "true")
    assert r.returncode == 1 and "unsatisfiable" in r.stderr and "no GPUs" in r.stderr, r.stderr


@pytest.mark.parametrize("content,why", [(None, "no such file"), ("<topology", "cannot load")])
def test_broker_refuses_a_bad_topology_file(tmp_path, content, why):
    path = tmp_path / "t.xml"
    if content is not None:
        path.write_text(content)
    r = flux("start", "--test-size=2", "true", env={"FLUX_HWLOC_XMLFILE": str(path)})
    assert r.returncode != 0
    assert "FLUX_HWLOC_XMLFILE" in r.stderr and why in r.stderr and str(path) in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_bad_affinity_map_fails_at_submit():
    r = flux("start", "flux", "run", "-o", "cpu-affinity=map:x", "true")
    assert r.returncode == 1 and "cpu-affinity" in r.stderr, r.stderr


def test_gpus_per_node_and_verbose_sources(corona2):
    r = corona2.flux("run", "-N2", "-n4", "--gpus-per-node=4", "-o", "gpu-affinity=per-task",
                     "printenv", "ROCR_VISIBLE_DEVICES")
    assert sorted(r.stdout.split()) == ["0,1", "0,1", "2,3", "2,3"]
    out = corona2.flux("resource", "list", "-v").stdout
    assert "rank 0: hwloc" in out and "corona.xml" in out and "rank 1: hwloc" in out


def test_cores_total_option(corona2):
    import json

    js = json.loads(corona2.flux("run", "--cores=4", "--dry-run", "true").stdout)
    assert js["resources"][0]["count"] == 4 and js["resources"][0]["with"][0]["count"] == 1
    js = json.loads(corona2.flux("run", "--cores=8", "-n2", "--dry-run", "true").stdout)
    assert js["resources"][0]["count"] == 2 and js["resources"][0]["with"][0]["count"] == 4
    r = corona2.flux("run", "--cores=5", "-n2", "true", check=False)
    assert r.returncode == 1 and "not a multiple" in r.stderr


# gpu-affinity defaults to on as in flux-core: every task sees all of the job's GPUs
# on its node; -o gpu-affinity=per-task splits them.

def test_default_gives_every_task_all_the_jobs_gpus(corona2):
    r = corona2.flux("run", "-N1", "-n2", "-g2", "printenv", "ROCR_VISIBLE_DEVICES")
    assert r.stdout.split() == ["0,1,2,3", "0,1,2,3"], r.stdout


def test_per_task_splits_them(corona2):
    r = corona2.flux("run", "-N1", "-n2", "-g2", "-o", "gpu-affinity=per-task", "printenv", "ROCR_VISIBLE_DEVICES")
    assert sorted(r.stdout.split()) == ["0,1", "2,3"], r.stdout


def test_default_with_one_gpu_per_task(corona2):
    r = corona2.flux("run", "-N1", "-n8", "-g1", "printenv", "ROCR_VISIBLE_DEVICES")
    assert r.stdout.split() == ["0,1,2,3,4,5,6,7"] * 8, r.stdout


def test_nvidia_default_is_on():
    r = flux("start", "flux", "run", "-n2", "-g1", "printenv", "CUDA_VISIBLE_DEVICES", env=xml("ipa20"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0,1", "0,1"], r.stdout


def test_the_option_default_is_on():
    assert gpu_affinity(None) == ("on", None)
