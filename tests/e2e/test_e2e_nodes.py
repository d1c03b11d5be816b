"""``-N`` without ``-n`` runs one task per node, as flux-core's ``flux run``:
the nodes are allocated whole (exclusive), and the shell runs the jobspec's task
count on them, not one task per allocated core. ``-N2 -n4``, ``--tasks-per-node``
and ``--exclusive`` keep their own counts; the Python API agrees with the CLI."""

import json

import pytest

from flux_launch.job.jobspec import JobspecV1
from flux_launch.proto.jobspec import summary
from flux_launch.shell.rcalc import compute
from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst2():
    with Instance(size=2) as inst:
        yield inst


def _ranks(inst, *args):
    r = inst.flux("run", *args, "printenv", "FLUX_TASK_RANK")
    return sorted(int(x) for x in r.stdout.split())


@pytest.mark.parametrize("args, ntasks", [
    (["-N1"], 1),
    (["-N2"], 2),
    (["-N2", "-n4"], 4),
    (["-N2", "-n3"], 3),
    (["-N1", "--exclusive", "-n1"], 1),
    (["-N2", "--tasks-per-node=2"], 4),
    (["-N2", "--tasks-per-node=1"], 2),
])
def test_task_count(inst2, args, ntasks):
    assert _ranks(inst2, *args) == list(range(ntasks))
    listed = inst2.flux("jobs", "-n", "-o", "{ntasks}", inst2.flux("job", "last").stdout.strip()).stdout
    assert int(listed) == ntasks


def test_nodes_alone_one_task_on_each_node(inst2):
    r = inst2.flux("run", "-N2", "-l", "flux", "getattr", "rank")
    assert sorted(r.stdout.splitlines()) == ["0: 0", "1: 1"], r.stdout


def test_submit_nodes_alone_starts_one_broker_per_node(inst2, tmp_path):
    out = tmp_path / "nested.out"
    inst2.flux("submit", "--wait", "-N2", f"--output={out}", "flux", "start", "flux", "getattr", "size",
               timeout=120)
    assert out.read_text().split() == ["2"], out.read_text()


def test_python_api_num_nodes_is_one_task_per_node(inst2, tmp_path):
    from flux_launch.client.handle import Flux
    from flux_launch.job import result, submit

    js = JobspecV1.from_command(["printenv", "FLUX_TASK_RANK"], num_tasks=2, num_nodes=2, exclusive=True)
    js.cwd = str(tmp_path)
    jobid = submit(Flux(inst2.uri), js)
    assert result(Flux(inst2.uri), jobid).ntasks == 2
    out = inst2.flux("job", "attach", str(jobid)).stdout
    assert sorted(out.split()) == ["0", "1"], out


def test_rcalc_exclusive_node_runs_the_jobspec_count():
    # node[2]>slot[1]>core[1], exclusive: R gives each rank all 4 cores
    js = JobspecV1.from_command(["true"], num_tasks=2, num_nodes=2, exclusive=True).jobspec
    alloc = {0: {"core": [0, 1, 2, 3]}, 1: {"core": [0, 1, 2, 3]}}
    tm = compute(alloc, summary(js))
    assert tm.counts == [1, 1]


def test_rcalc_exclusive_uneven_total():
    js = JobspecV1.from_command(["true"], num_tasks=3, num_nodes=2, exclusive=True).jobspec
    alloc = {0: {"core": [0, 1, 2, 3]}, 1: {"core": [0, 1, 2, 3]}}
    assert compute(alloc, summary(js)).counts == [2, 1]


def test_dry_run_nodes_alone_is_exclusive_one_slot_per_node(inst2):
    spec = json.loads(inst2.flux("run", "--dry-run", "-N2", "true").stdout)
    node = spec["resources"][0]
    assert node["type"] == "node" and node["count"] == 2 and node["exclusive"] is True
    assert node["with"][0]["count"] == 1
