"""Drained ranks in the scheduler's pool: no new allocations (what they hold stays
until freed), still counted for feasibility, and shown ``down`` (with their
allocated part ``allocated``) by ``sched.resource-status``."""

from flux_launch.services.sched.policy import Scheduler
from flux_launch.services.sched.pool import Pool
from flux_launch.services.sched.status import resource_status


def make_pool(nranks=3, ncores=2):
    return Pool({r: {"cores": list(range(ncores)), "hostname": f"node{r}"} for r in range(nranks)})


def test_drained_rank_gets_nothing_new_but_counts_for_feasibility():
    pool = make_pool()
    pool.set_drained(1)
    assert pool.is_drained(1) and not pool.is_drained(0)
    alloc = pool.alloc({"nnodes": 2, "nslots": 4})
    assert sorted(alloc) == [0, 2]
    assert pool.alloc({"nnodes": 1, "nslots": 1}) is None  # only rank 1 has room: drained
    assert pool.feasible({"nnodes": 3, "nslots": 3}) == (True, "")
    assert pool.free_counts() == (0, 0)  # rank 1's cores do not count as usable
    pool.set_drained(1, False)
    assert sorted(pool.alloc({"nnodes": 1, "nslots": 1})) == [1]


def test_copy_keeps_drained():
    pool = make_pool()
    pool.set_drained(2)
    assert pool.copy().is_drained(2)


def test_scheduler_waits_for_undrain():
    pool = make_pool()
    sched = Scheduler(pool)
    pool.set_drained(1)
    pool.set_drained(2)
    sched.submit(1, {"nnodes": 2, "nslots": 2})
    assert sched.schedule(0.0) == [] and sched.pending == [1]
    pool.set_drained(2, False)
    started = sched.schedule(1.0)
    assert [(j, sorted(a)) for j, a in started] == [(1, [0, 2])]


def test_draining_rank_is_down_and_allocated():
    pool = make_pool()
    alloc = pool.alloc({"nnodes": 1, "nslots": 1})  # rank 0, core 0
    pool.set_drained(0)
    pool.set_drained(2)
    st = resource_status(pool, {})
    assert st["down"]["ranks"] == "0,2" and st["down"]["ncores"] == 4, st
    assert st["allocated"]["ranks"] == "0" and st["allocated"]["ncores"] == 1, st
    assert st["free"]["ranks"] == "1" and st["free"]["ncores"] == 2, st
    node0 = st["nodes"][0]
    assert node0["drained"] and node0["up"] and node0["free_core"] == "1" and node0["core"] == "0-1", node0
    pool.free(alloc)
    assert pool.is_rank_idle(0)
