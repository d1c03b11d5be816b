"""``gpu-affinity`` defaults to ``on`` as in flux-core: every task sees all of
the job's GPUs on its node; ``-o gpu-affinity=per-task`` splits them. GPUs come
from hwloc XML topologies (``FLUX_HWLOC_XMLFILE``): corona (8 AMD GPUs a node)
and ipa20 (NVIDIA)."""

import os

import pytest

from flux_launch.proto.shellopts import gpu_affinity
from flux_launch.testing import Instance, flux

pytestmark = pytest.mark.e2e

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "topologies")


def xml(name):
    return {"FLUX_HWLOC_XMLFILE": os.path.join(DATA, f"{name}.xml")}


@pytest.fixture(scope="module")
def corona():
    with Instance(size=1, env=xml("corona")) as inst:
        yield inst


def test_default_gives_every_task_all_the_jobs_gpus(corona):
    r = corona.flux("run", "-N1", "-n2", "-g2", "printenv", "ROCR_VISIBLE_DEVICES")
    assert r.stdout.split() == ["0,1,2,3", "0,1,2,3"], r.stdout


def test_per_task_splits_them(corona):
    r = corona.flux("run", "-N1", "-n2", "-g2", "-o", "gpu-affinity=per-task", "printenv", "ROCR_VISIBLE_DEVICES")
    assert sorted(r.stdout.split()) == ["0,1", "2,3"], r.stdout


def test_default_with_one_gpu_per_task(corona):
    r = corona.flux("run", "-N1", "-n8", "-g1", "printenv", "ROCR_VISIBLE_DEVICES")
    assert r.stdout.split() == ["0,1,2,3,4,5,6,7"] * 8, r.stdout


def test_nvidia_default_is_on():
    r = flux("start", "flux", "run", "-n2", "-g1", "printenv", "CUDA_VISIBLE_DEVICES", env=xml("ipa20"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0,1", "0,1"], r.stdout


def test_the_option_default_is_on():
    assert gpu_affinity(None) == ("on", None)
