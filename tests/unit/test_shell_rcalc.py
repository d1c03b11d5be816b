"""flux_launch.shell.rcalc.compute: which tasks run on which rank (pure)."""

import pytest

from flux_launch.job.jobspec import JobspecV1
from flux_launch.proto.jobspec import summary
from flux_launch.shell.rcalc import compute


def _summ(per_slot=None, total=None, cores_per_slot=1):
    s = {"cores_per_slot": cores_per_slot, "per_slot": per_slot, "total": total}
    s["ntasks"] = total
    return s


def _layout(tm):
    return {r: tm.local(r) for r in tm.ranks}


def test_per_slot_one_rank():
    tm = compute({0: {"core": [0, 1, 2, 3]}}, _summ(per_slot=1))
    assert tm.ranks == [0]
    assert tm.counts == [4]
    assert tm.ntasks == 4
    assert tm.local(0) == [0, 1, 2, 3]


def test_per_slot_more_than_one_task_per_slot():
    tm = compute({0: {"core": [0, 1]}, 1: {"core": [0, 1]}}, _summ(per_slot=3))
    assert tm.counts == [6, 6]
    assert _layout(tm) == {0: list(range(0, 6)), 1: list(range(6, 12))}


def test_string_rank_keys_are_sorted_numerically():
    tm = compute({"10": {"core": [0]}, "2": {"core": [0, 1]}}, _summ(per_slot=1))
    assert tm.ranks == [2, 10]
    assert tm.counts == [2, 1]
    assert _layout(tm) == {2: [0, 1], 10: [2]}
    assert tm.node_index(2) == 0 and tm.node_index(10) == 1


def test_total_even():
    tm = compute({0: {"core": [0, 1]}, 1: {"core": [0, 1]}}, _summ(total=4))
    assert tm.counts == [2, 2]
    assert _layout(tm) == {0: [0, 1], 1: [2, 3]}


def test_total_with_remainder_goes_to_first_slots():
    # 3 slots on rank 0, 3 on rank 1; 8 tasks: base 1, the first 2 slots take one more
    tm = compute({0: {"core": [0, 1, 2]}, 1: {"core": [0, 1, 2]}}, _summ(total=8))
    assert tm.counts == [5, 3]
    assert tm.ntasks == 8
    assert _layout(tm) == {0: [0, 1, 2, 3, 4], 1: [5, 6, 7]}


def test_total_remainder_spills_to_second_rank():
    # 2 slots per rank, 4 slots; 7 tasks: base 1, slots 0-2 take one more
    tm = compute({0: {"core": [0, 1]}, 1: {"core": [2, 3]}}, _summ(total=7))
    assert tm.counts == [4, 3]


def test_total_fewer_tasks_than_slots():
    tm = compute({0: {"core": [0, 1]}, 1: {"core": [0, 1]}, 2: {"core": [0, 1]}}, _summ(total=3))
    assert tm.counts == [2, 1, 0]
    assert tm.ntasks == 3
    assert tm.local(2) == []


def test_multi_rank_block_distribution():
    alloc = {0: {"core": [0]}, 1: {"core": [0, 1, 2]}, 3: {"core": [5, 6]}}
    tm = compute(alloc, _summ(per_slot=1))
    assert tm.ranks == [0, 1, 3]
    assert tm.counts == [1, 3, 2]
    assert _layout(tm) == {0: [0], 1: [1, 2, 3], 3: [4, 5]}
    assert [tm.node_index(r) for r in (0, 1, 3)] == [0, 1, 2]


def test_cores_per_slot_greater_than_one():
    # 4 cores, 2 cores per slot: 2 slots per rank; 3 cores: 1 complete slot
    tm = compute({0: {"core": [0, 1, 2, 3]}, 1: {"core": [0, 1, 2]}}, _summ(per_slot=1, cores_per_slot=2))
    assert tm.counts == [2, 1]
    tm = compute({0: {"core": [0, 1, 2, 3]}, 1: {"core": [0, 1, 2]}}, _summ(total=5, cores_per_slot=2))
    assert tm.counts == [4, 1]


def test_total_absent_falls_back_to_ntasks_then_slots():
    tm = compute({0: {"core": [0, 1, 2]}}, {"cores_per_slot": 1, "ntasks": 2})
    assert tm.counts == [2]
    tm = compute({0: {"core": [0, 1, 2]}}, {"cores_per_slot": 1})
    assert tm.counts == [3]


@pytest.mark.parametrize("alloc, cps", [
    ({0: {"core": []}}, 1),
    ({0: {"gpu": [0]}}, 1),
    ({0: {"core": [0]}, 1: {"core": [1]}}, 2),  # no rank holds 2 cores
    ({}, 1),
])
def test_no_complete_slot_is_an_error(alloc, cps):
    with pytest.raises(ValueError, match="no complete slot"):
        compute(alloc, _summ(per_slot=1, cores_per_slot=cps))


def test_with_real_jobspec_summaries():
    # the shapes flux run builds: -N2 -n4 (per_slot 1), -N2 -n3 (total 3), -n3 -c2
    s = summary(JobspecV1.from_command(["true"], num_tasks=4, num_nodes=2, environment={}).jobspec)
    tm = compute({0: {"core": [0, 1]}, 1: {"core": [0, 1]}}, s)
    assert _layout(tm) == {0: [0, 1], 1: [2, 3]}
    s = summary(JobspecV1.from_command(["true"], num_tasks=3, num_nodes=2, environment={}).jobspec)
    tm = compute({0: {"core": [0, 1]}, 1: {"core": [0, 1]}}, s)
    assert tm.counts == [2, 1]
    s = summary(JobspecV1.from_command(["true"], num_tasks=3, cores_per_task=2, environment={}).jobspec)
    tm = compute({0: {"core": [0, 1, 2, 3]}, 1: {"core": [4, 5]}}, s)
    assert tm.counts == [2, 1]
