"""Tests for the scheduler engine (flux_launch.services.sched)."""

import heapq
import itertools
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flux_launch.proto import rv1
from flux_launch.services.sched.policy import Scheduler
from flux_launch.services.sched.pool import Pool, Request


def make_pool(nranks=2, ncores=4, ngpus=0, props=None):
    return Pool({r: {"cores": list(range(ncores)), "gpus": list(range(ngpus)),
                     "hostname": f"node{r}", "properties": (props or {}).get(r, [])}
                 for r in range(nranks)})


def cores(alloc):
    return {r: v["core"] for r, v in alloc.items()}


# -- requests -------------------------------------------------------------

def test_request_defaults_and_normalization():
    r = Request.from_dict({})
    assert (r.nslots, r.cores_per_slot, r.gpus_per_slot, r.nnodes) == (1, 1, 0, 0)
    assert r.slots_per_node is None and not r.exclusive and r.duration == 0.0
    r = Request.from_dict({"nnodes": 2, "slots_per_node": 3, "constraints": ["a", "a"]})
    assert r.nslots == 6 and r.constraints == ("a",)
    # slots_per_node means nothing without a node count
    assert Request.from_dict({"slots_per_node": 2, "nslots": 3}).slots_per_node is None


@pytest.mark.parametrize("d,msg", [
    ({"nslots": 0}, "nslots"),
    ({"cores_per_slot": 0}, "cores_per_slot"),
    ({"gpus_per_slot": -1}, "gpus_per_slot"),
    ({"nnodes": 1.5}, "nnodes"),
    ({"duration": -1}, "duration"),
    ({"duration": "1h"}, "duration"),
    ({"constraints": "a"}, "constraints"),
    ({"nnodes": 2, "slots_per_node": 2, "nslots": 3}, "nslots=3"),
])
def test_request_invalid(d, msg):
    with pytest.raises(ValueError, match=msg):
        Request.from_dict(d)
    ok, why = make_pool().feasible(d)
    assert not ok and why.startswith("invalid request")


# -- pool: placement ------------------------------------------------------

def test_pack_in_rank_order():
    p = make_pool()
    assert cores(p.alloc({"nslots": 3})) == {0: [0, 1, 2]}
    assert cores(p.alloc({"nslots": 2})) == {0: [3], 1: [0]}
    assert p.free_counts() == (3, 0)


def test_slot_never_split_across_ranks():
    p = make_pool()
    assert cores(p.alloc({"cores_per_slot": 3})) == {0: [0, 1, 2]}
    # rank 0 has one core left: the 2-core slot goes to rank 1
    assert cores(p.alloc({"cores_per_slot": 2})) == {1: [0, 1]}
    assert cores(p.alloc({"cores_per_slot": 2})) == {1: [2, 3]}
    assert p.alloc({"cores_per_slot": 2}) is None  # 1 core free, but never split
    assert cores(p.alloc({})) == {0: [3]}


def test_alloc_failure_leaves_pool_unchanged():
    p = make_pool()
    p.alloc({"nslots": 5})
    before = [p.free_resources(r) for r in p.ranks]
    assert p.alloc({"nslots": 4}) is None
    assert [p.free_resources(r) for r in p.ranks] == before


def test_nnodes_spreads_evenly_lowest_ranks_first():
    p = make_pool(nranks=3)
    assert cores(p.alloc({"nnodes": 2, "nslots": 3})) == {0: [0, 1], 1: [0]}
    p = make_pool(nranks=3)
    assert cores(p.alloc({"nnodes": 3, "nslots": 3})) == {0: [0], 1: [0], 2: [0]}
    p = make_pool(nranks=3)
    a = p.alloc({"nnodes": 2, "slots_per_node": 2, "cores_per_slot": 2})
    assert cores(a) == {0: [0, 1, 2, 3], 1: [0, 1, 2, 3]}


def test_nnodes_spread_respects_room():
    p = make_pool(nranks=2)
    p.claim({0: {"core": [0, 1, 2]}})
    assert cores(p.alloc({"nnodes": 2, "nslots": 4})) == {0: [3], 1: [0, 1, 2]}


def test_nnodes_picks_roomiest_when_lowest_ranks_lack_room():
    p = make_pool(nranks=3)
    p.claim({0: {"core": [0, 1, 2]}, 1: {"core": [0, 1, 2]}})
    assert cores(p.alloc({"nnodes": 2, "nslots": 5})) == {0: [3], 2: [0, 1, 2, 3]}


def test_nnodes_shares_nodes_unless_exclusive():
    p = make_pool(nranks=2)
    a = p.alloc({"nnodes": 2, "nslots": 2})
    assert cores(a) == {0: [0], 1: [0]}
    assert cores(p.alloc({"nnodes": 2, "nslots": 2})) == {0: [1], 1: [1]}
    assert p.alloc({"nnodes": 1, "nslots": 1, "exclusive": True}) is None


def test_exclusive_allocates_whole_idle_ranks():
    p = make_pool(nranks=3, ngpus=2)
    p.alloc({})  # rank 0 busy
    a = p.alloc({"nnodes": 1, "nslots": 1, "exclusive": True})
    assert a == {1: {"core": [0, 1, 2, 3], "gpu": [0, 1]}}
    assert p.alloc({"nnodes": 2, "nslots": 2, "exclusive": True}) is None
    a = p.alloc({"nslots": 1, "exclusive": True})  # no nnodes: whole idle ranks
    assert a == {2: {"core": [0, 1, 2, 3], "gpu": [0, 1]}}


def test_gpus():
    p = make_pool(nranks=2, ngpus=2)
    a = p.alloc({"nslots": 3, "gpus_per_slot": 1})
    assert a == {0: {"core": [0, 1], "gpu": [0, 1]}, 1: {"core": [0], "gpu": [0]}}
    assert p.alloc({"gpus_per_slot": 1, "nslots": 2}) is None
    assert p.alloc({"nslots": 5}) == {0: {"core": [2, 3], "gpu": []},
                                      1: {"core": [1, 2, 3], "gpu": []}}


def test_constraints():
    p = make_pool(nranks=3, props={1: ["big"], 2: ["big", "fast"]})
    assert cores(p.alloc({"constraints": ["big"]})) == {1: [0]}
    assert cores(p.alloc({"constraints": ["big", "fast"], "nslots": 4})) == {2: [0, 1, 2, 3]}
    assert p.alloc({"constraints": ["fast"]}) is None
    ok, why = p.feasible({"constraints": ["fast"], "nnodes": 2, "nslots": 2})
    assert not ok and why == ("unsatisfiable request: 2 nodes requested, "
                              "the instance has 1 with properties fast")
    ok, why = p.feasible({"constraints": ["nope"]})
    assert not ok and "no node has properties nope" in why


def test_down_ranks():
    p = make_pool()
    p.set_down(0)
    assert not p.is_up(0)
    assert cores(p.alloc({})) == {1: [0]}
    assert p.alloc({"nslots": 4}) is None
    assert p.feasible({"nslots": 8}) == (True, "")  # down ranks still exist
    p.set_up(0)
    assert cores(p.alloc({"nslots": 4})) == {0: [0, 1, 2, 3]}
    with pytest.raises(ValueError, match="unknown rank"):
        p.set_down(7)


def test_free_and_errors():
    p = make_pool()
    a = p.alloc({"nslots": 6})
    p.free({1: {"core": [1]}})  # partial
    assert p.free_resources(1)["core"] == [1, 2, 3]
    with pytest.raises(ValueError, match="not allocated"):
        p.free({1: {"core": [1]}})  # double free
    with pytest.raises(ValueError, match="not allocated"):
        p.free({0: {"core": [0]}, 1: {"core": [2]}})
    assert p.free_resources(0)["core"] == []  # nothing freed by the failed call
    with pytest.raises(ValueError, match="has no core 9"):
        p.free({0: {"core": [9]}})
    p.free({0: a[0], 1: {"core": [0]}})
    assert p.is_idle()
    p.claim({0: {"core": [0]}, 1: {"core": [0]}})
    with pytest.raises(ValueError, match="rank 1 core 0 is not free"):
        p.claim({0: {"core": [1]}, 1: {"core": [0]}})
    assert p.free_resources(0)["core"] == [1, 2, 3]  # failed claim changed nothing


def test_copy_is_independent():
    p = make_pool()
    q = p.copy()
    q.alloc({"nslots": 8})
    q.set_down(1)
    assert p.is_idle() and p.is_up(1) and not q.alloc({})


def test_to_R_and_from_R():
    p = make_pool(nranks=2, ngpus=1, props={1: ["gpu-node"]})
    a = p.alloc({"nnodes": 2, "nslots": 2, "gpus_per_slot": 1})
    R = p.to_R(a, starttime=5.0, expiration=65.0)
    assert R["execution"]["R_lite"] == [{"rank": "0-1", "children": {"core": "0", "gpu": "0"}}]
    assert R["execution"]["nodelist"] == ["node[0-1]"]
    assert R["execution"]["properties"] == {"gpu-node": "1"}
    q = Pool.from_R(rv1.encode({0: {"core": range(4)}, 1: {"core": range(2), "gpu": [0]}},
                               nodelist=["a", "b"], properties={"x": [1]}))
    assert q.ncores == 6 and q.ngpus == 1 and q.hostname(1) == "b"
    assert cores(q.alloc({"constraints": ["x"], "nslots": 2})) == {1: [0, 1]}


# -- feasibility ----------------------------------------------------------

def test_feasible_messages():
    p = make_pool(nranks=1, ncores=4)
    assert p.feasible({"nslots": 4}) == (True, "")
    assert p.feasible({"nslots": 1000}) == (
        False, "unsatisfiable request: 1000 slots of 1 core requested, "
               "the instance has 4 cores")
    assert p.feasible({"gpus_per_slot": 1}) == (
        False, "unsatisfiable request: gpus requested, the instance has no GPUs")
    p2 = make_pool(nranks=2, ncores=4, ngpus=1)
    assert p2.feasible({"nnodes": 3, "nslots": 3}) == (
        False, "unsatisfiable request: 3 nodes requested, the instance has 2")
    assert p2.feasible({"nslots": 3, "gpus_per_slot": 1}) == (
        False, "unsatisfiable request: 3 slots of 1 GPU requested, the instance has 2 GPUs")
    assert p2.feasible({"cores_per_slot": 5}) == (
        False, "unsatisfiable request: slots of 5 cores requested, "
               "the largest node has 4 cores")
    assert p2.feasible({"nnodes": 2, "nslots": 1}) == (
        False, "unsatisfiable request: 2 nodes requested for only 1 slot")
    ok, why = p2.feasible({"nslots": 3, "cores_per_slot": 3})  # 9 <= 8? no: cores
    assert not ok and "requested, the instance has 8 cores" in why
    ok, why = p2.feasible({"nslots": 3, "cores_per_slot": 2, "nnodes": 1})
    assert not ok and why.startswith("unsatisfiable request: 3 slots of 2 cores do not fit")


def test_feasible_ignores_current_use_and_down_ranks():
    p = make_pool()
    p.alloc({"nslots": 8})
    p.set_down(0)
    assert p.feasible({"nnodes": 2, "nslots": 8, "exclusive": True}) == (True, "")


def brute_feasible(caps_total, req):
    """Independent check: does some placement exist on an empty pool?"""
    caps = [min(c // req.cores_per_slot,
                g // req.gpus_per_slot if req.gpus_per_slot else 10**9)
            for c, g in caps_total]
    n, need = req.nnodes, req.nslots
    if n == 0:
        return sum(caps) >= need
    for combo in itertools.combinations(caps, n):
        if req.slots_per_node:
            if all(c >= req.slots_per_node for c in combo):
                return True
        elif n <= need and all(c >= 1 for c in combo):
            # counts in [1, c] summing to need: exists iff n <= need <= sum(c)
            if sum(combo) >= need:
                return True
    return False


rank_shapes = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 2)), min_size=1, max_size=5)
requests = st.builds(
    dict,
    nslots=st.integers(1, 12), cores_per_slot=st.integers(1, 4),
    gpus_per_slot=st.integers(0, 2), nnodes=st.integers(0, 4),
    exclusive=st.booleans(),
    slots_per_node=st.one_of(st.none(), st.integers(1, 3)),
)


@settings(max_examples=500)
@given(rank_shapes, requests)
def test_feasible_is_exact(shapes, d):
    d = dict(d)
    if d["slots_per_node"] is not None and d["nnodes"]:
        d["nslots"] = d["nnodes"] * d["slots_per_node"]
    pool = Pool({r: {"cores": list(range(c)), "gpus": list(range(g))}
                 for r, (c, g) in enumerate(shapes)})
    req = Request.from_dict(d)
    ok, why = pool.feasible(req)
    assert ok == brute_feasible(shapes, req), why
    assert (pool.copy().alloc(req) is not None) == ok  # empty pool: alloc iff feasible
    if ok:
        a = pool.alloc(req)
        per = [(len(v["core"]), len(v["gpu"])) for v in a.values()]
        if req.nnodes:
            assert len(a) == req.nnodes
        if req.exclusive:
            assert all(per[i] == shapes[r] for i, r in enumerate(a))
        else:
            assert sum(c for c, _ in per) == req.nslots * req.cores_per_slot
            assert sum(g for _, g in per) == req.nslots * req.gpus_per_slot
            assert all(c % req.cores_per_slot == 0 for c, _ in per)


@settings(max_examples=150)
@given(st.lists(st.tuples(st.booleans(), requests, st.integers(0, 1000)), max_size=40),
       st.lists(st.integers(0, 3), max_size=3))
def test_random_alloc_free_never_double_allocates(ops, down):
    shapes = {0: 4, 1: 2, 2: 6, 3: 3}
    pool = Pool({r: {"cores": list(range(n)), "gpus": [0, 1] if r % 2 else []}
                 for r, n in shapes.items()})
    for r in down:
        pool.set_down(r)
    live = []
    for is_alloc, d, pick in ops:
        if is_alloc or not live:
            d = dict(d, slots_per_node=None)
            a = pool.alloc(d)
            if a is not None:
                for r in a:
                    assert r not in down
                live.append(a)
        else:
            pool.free(live.pop(pick % len(live)))
        used = {}
        for a in live:
            for r, v in a.items():
                for kind in ("core", "gpu"):
                    for i in v[kind]:
                        key = (r, kind, i)
                        assert key not in used, f"{key} allocated twice"
                        used[key] = True
        for r in shapes:
            free = pool.free_resources(r)
            assert not any((r, "core", i) in used for i in free["core"])
            assert len(free["core"]) + sum(1 for k in used if k[:2] == (r, "core")) \
                == shapes[r]
    for a in live:
        pool.free(a)
    assert pool.is_idle()


def test_alloc_is_fast_for_small_instances():
    pool = make_pool(nranks=16, ncores=32, ngpus=4)
    reqs = [{"nslots": 4}, {"nnodes": 2, "nslots": 8}, {"nslots": 2, "gpus_per_slot": 1},
            {"nnodes": 1, "nslots": 1, "exclusive": True}]
    reqs = [Request.from_dict(r) for r in reqs]
    t0 = time.perf_counter()
    n = 0
    for _ in range(250):
        for r in reqs:
            a = pool.alloc(r)
            pool.free(a)
            n += 1
    assert (time.perf_counter() - t0) / n < 1e-3


# -- scheduler ------------------------------------------------------------

def ids(started):
    return [j for j, _ in started]


def test_fcfs_order():
    s = Scheduler(make_pool(nranks=1, ncores=2))
    s.submit(1, {"nslots": 2})
    s.submit(2, {"nslots": 1})
    s.submit(3, {"nslots": 1})
    assert ids(s.schedule(0)) == [1]
    assert s.pending == [2, 3]
    assert s.release(1, now=5) is True
    assert ids(s.schedule(5)) == [2, 3]
    assert s.pending == [] and set(s.running) == {2, 3}


def test_priority_then_submit_time_then_jobid():
    s = Scheduler(make_pool(nranks=1, ncores=1))
    s.submit(10, {}, priority=16, t_submit=1.0)
    s.submit(11, {}, priority=20, t_submit=2.0)
    s.submit(12, {}, priority=16, t_submit=0.5)
    s.submit(9, {}, priority=16, t_submit=0.5)
    assert s.pending == [11, 9, 12, 10]
    assert s.set_priority(10, 31) and s.pending == [10, 11, 9, 12]
    order = []
    for t in range(4):
        started = s.schedule(t)
        order += ids(started)
        s.release(started[0][0])
    assert order == [10, 11, 9, 12]


def test_submit_rejects_unsatisfiable_and_duplicates():
    s = Scheduler(make_pool(nranks=1, ncores=4))
    with pytest.raises(ValueError, match="1000 slots of 1 core requested, the instance has 4"):
        s.submit(1, {"nslots": 1000})
    assert s.pending == []
    s.submit(1, {})
    with pytest.raises(ValueError, match="already known"):
        s.submit(1, {})


def test_cancel():
    s = Scheduler(make_pool(nranks=1, ncores=1))
    s.submit(1, {})
    s.submit(2, {})
    assert s.cancel(2) and not s.cancel(2) and not s.cancel(99)
    assert ids(s.schedule(0)) == [1]
    assert not s.cancel(1)  # running, not pending
    s.release(1)
    assert s.schedule(1) == []


def test_partial_release():
    s = Scheduler(make_pool(nranks=2, ncores=2))
    s.submit(1, {"nslots": 4})
    [(_, a)] = s.schedule(0)
    assert s.release(1, {0: a[0]}, now=1) is False
    with pytest.raises(ValueError, match="does not hold"):
        s.release(1, {0: {"core": [0]}})
    assert s.release(1, {1: {"core": [0, 1]}}) is True
    assert s.pool.is_idle() and not s.running
    with pytest.raises(ValueError, match="not running"):
        s.release(1)


def test_backfill_short_job_that_ends_before_reservation():
    s = Scheduler(make_pool(nranks=1, ncores=4))
    s.submit(1, {"nslots": 2, "duration": 100})
    assert ids(s.schedule(0)) == [1]
    s.submit(2, {"nslots": 4, "duration": 10}, t_submit=1)   # head: blocked until 100
    s.submit(3, {"nslots": 2, "duration": 200}, t_submit=2)  # would delay the head
    s.submit(4, {"nslots": 2}, t_submit=3)                   # unknown duration
    s.submit(5, {"nslots": 2, "duration": 50}, t_submit=4)   # ends at 60 <= 100
    assert ids(s.schedule(10)) == [5]
    assert s.reservation.jobid == 2 and s.reservation.start == 100
    assert s.running[5].end == 60
    s.release(5, now=60)
    assert s.schedule(60) == []
    s.release(1, now=100)
    assert ids(s.schedule(100)) == [2]


def test_backfill_long_job_outside_reservation():
    s = Scheduler(make_pool(nranks=3, ncores=2))
    s.submit(1, {"nslots": 2, "cores_per_slot": 2, "duration": 100})
    assert cores(s.schedule(0)[0][1]) == {0: [0, 1], 1: [0, 1]}
    s.submit(2, {"nslots": 2, "cores_per_slot": 2}, t_submit=1)  # head, reserved ranks 0-1
    s.submit(3, {"nslots": 1, "cores_per_slot": 2}, t_submit=2)  # unlimited, fits rank 2
    started = s.schedule(1)
    assert ids(started) == [3] and cores(started[0][1]) == {2: [0, 1]}
    assert s.reservation.start == 100 and set(s.reservation.alloc) == {0, 1}
    s.release(1, now=100)
    assert cores(s.schedule(100)[0][1]) == {0: [0, 1], 1: [0, 1]}


def test_no_backfill_onto_reserved_free_resources():
    s = Scheduler(make_pool(nranks=2, ncores=2))
    s.submit(1, {"nslots": 1, "cores_per_slot": 2, "duration": 100})
    s.schedule(0)
    s.submit(2, {"nslots": 2, "cores_per_slot": 2}, t_submit=1)  # needs both ranks at 100
    s.submit(3, {"nslots": 1, "cores_per_slot": 2, "duration": 500}, t_submit=2)
    s.submit(4, {"nslots": 1, "cores_per_slot": 2}, t_submit=3)
    s.submit(5, {"nslots": 1, "cores_per_slot": 2, "duration": 90}, t_submit=4)
    started = s.schedule(5)   # 5 ends at 95 <= 100: the only one allowed on rank 1
    assert ids(started) == [5] and cores(started[0][1]) == {1: [0, 1]}
    assert s.pending == [2, 3, 4]


def test_unknown_duration_blocker_means_no_reservation():
    s = Scheduler(make_pool(nranks=1, ncores=4))
    s.submit(1, {"nslots": 2})  # runs forever as far as we know
    s.schedule(0)
    s.submit(2, {"nslots": 4}, t_submit=1)
    s.submit(3, {"nslots": 2}, t_submit=2)
    assert ids(s.schedule(1)) == [3]
    assert s.reservation is None


def test_strict_fcfs_without_backfill():
    s = Scheduler(make_pool(nranks=1, ncores=4), backfill=False)
    s.submit(1, {"nslots": 2, "duration": 10})
    s.submit(2, {"nslots": 4}, t_submit=1)
    s.submit(3, {"nslots": 1, "duration": 1}, t_submit=2)
    assert ids(s.schedule(0)) == [1]
    assert s.schedule(1) == []


def test_scheduler_down_ranks():
    s = Scheduler(make_pool(nranks=2, ncores=2))
    s.pool.set_down(1)
    s.submit(1, {"nnodes": 2, "nslots": 2})  # feasible: rank 1 exists
    assert s.schedule(0) == []
    s.pool.set_up(1)
    assert cores(s.schedule(1)[0][1]) == {0: [0], 1: [0]}


def test_restore_running_job():
    s = Scheduler(make_pool(nranks=1, ncores=2))
    s.restore(7, {"duration": 10}, {0: {"core": [1]}}, start=3)
    assert s.running[7].end == 13 and s.pool.free_resources(0)["core"] == [0]
    s.submit(8, {"nslots": 2})
    assert s.schedule(4) == []
    s.release(7)
    assert ids(s.schedule(13)) == [8]
    with pytest.raises(ValueError):
        s.restore(9, {}, {0: {"core": [0]}}, start=0)  # already allocated


jobs_strategy = st.lists(
    st.tuples(st.integers(1, 6), st.integers(1, 30), st.integers(0, 20)),
    min_size=1, max_size=25,
)


@settings(max_examples=100, deadline=None)
@given(jobs_strategy)
def test_easy_backfill_never_delays_head_reservation(jobs):
    """Discrete-event simulation with exact durations: a job never starts
    later than the first reservation it was given, and nothing is ever
    double allocated (the pool would raise)."""
    s = Scheduler(make_pool(nranks=2, ncores=3))
    events = []  # (time, order, kind, jobid)
    for jobid, (_nslots, _dur, t) in enumerate(jobs):
        heapq.heappush(events, (t, 1, "submit", jobid))
    promised = {}
    started_at = {}
    while events:
        t = events[0][0]
        while events and events[0][0] == t:
            _, _, kind, jobid = heapq.heappop(events)
            if kind == "end":
                assert s.release(jobid, now=t)
            else:
                nslots, dur, _ = jobs[jobid]
                s.submit(jobid, {"nslots": nslots, "duration": dur}, t_submit=t)
        for jobid, _alloc in s.schedule(t):
            started_at[jobid] = t
            heapq.heappush(events, (t + jobs[jobid][1], 0, "end", jobid))
        if s.reservation is not None:
            promised.setdefault(s.reservation.jobid, s.reservation.start)
    assert len(started_at) == len(jobs) and s.pool.is_idle()
    for jobid, when in promised.items():
        assert started_at[jobid] <= when, (jobid, started_at[jobid], when)
    assert all(math.isfinite(v) for v in promised.values())
