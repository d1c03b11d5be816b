"""alloc-bypass and job-manager.target on a fake broker: a bypass job runs on the R
it names while the scheduler's pool is full, marks nothing used and frees nothing;
bad R, another user's resources and a guest's bypass onto their own running job;
what a tool learns of its target (and what it is refused)."""

import errno

import pytest
from test_job_manager import GUEST, OWNER, _events, _jobspec, _run_to_end, _shells, make_manager

from flux_launch.proto import eventlog
from flux_launch.services.job_manager.job import kvs_dir


@pytest.fixture
def jm(tmp_path):
    """A job manager of two ranks of two cores each."""
    manager, kvs = make_manager(tmp_path)
    yield manager
    kvs.close()


def _submit_as(jm, jobspec, userid=OWNER):
    out = jm.broker.call("job-ingest.submit", {"jobspec": jobspec}, userid=userid)
    jm.broker.loop.run()
    return jm.jobs[out["id"]]


def _start(jm, job):
    for cb in _shells(jm, job).values():
        cb({"type": "started", "pid": 1}, 0, None)
    jm.broker.loop.run()


def _full(jm, userid=OWNER):
    """A running job holding every core of both ranks."""
    job = _submit_as(jm, _jobspec(nnodes=2, cores=2), userid)
    assert job.state == "RUN"
    _start(jm, job)
    return job


def _bypass(R):
    return _jobspec(nnodes=1, cores=1, **{"alloc-bypass": {"R": R}})


def test_bypass_runs_on_its_R_beside_a_full_pool(jm):
    target = _full(jm)
    normal = _submit_as(jm, _jobspec())
    assert normal.state == "SCHED"  # no core is free
    tool = _submit_as(jm, _jobspec(nnodes=1, cores=1, **{"alloc-bypass": {"R": target.R}}))
    assert tool.state == "RUN" and sorted(_shells(jm, tool)) == [0, 1]
    jm.flush()
    alloc = [ev for ev in eventlog.decode(jm.kvs.lookup(f"{kvs_dir(tool.id)}.eventlog")) if ev["name"] == "alloc"]
    assert alloc[0]["context"] == {"bypass": True}
    assert jm.kvs.lookup(f"{kvs_dir(tool.id)}.R")["execution"]["R_lite"] == target.R["execution"]["R_lite"]
    _run_to_end(jm, tool)
    assert tool.state == "INACTIVE" and tool.result == "COMPLETED"
    assert target.state == "RUN" and normal.state == "SCHED"  # the tool's end freed nothing of the target's
    assert jm.sched.pool.free_resources(0)["core"] == []
    assert "free" in _events(jm, tool)


@pytest.mark.parametrize("R, words", [
    ("not json", "not a JSON object"),
    ({"version": 2}, "invalid R"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "5", "children": {"core": "0"}}]}}, "rank 5"),
    ({"version": 1, "execution": {"R_lite": []}}, "holds no rank"),
])
def test_bad_R_refused_nothing_submitted(jm, R, words):
    errnum, text = jm.broker.error("job-ingest.submit", {"jobspec": _bypass(R)})
    assert errnum == errno.EINVAL and words in text and "\n" not in text, text
    assert jm.jobs == {}


def test_guest_bypass_onto_anothers_job_refused(jm):
    target = _full(jm)
    errnum, text = jm.broker.error("job-ingest.submit", {"jobspec": _bypass(target.R)}, userid=GUEST)
    assert errnum == errno.EPERM and "permission denied" in text, text
    assert list(jm.jobs) == [target.id]
    errnum, _ = jm.broker.error("feasibility.check", {"jobspec": _bypass(target.R)}, userid=GUEST)
    assert errnum == errno.EPERM


def test_guest_bypass_onto_own_running_job(jm):
    target = _full(jm, userid=GUEST)
    tool = _submit_as(jm, _bypass(target.R), userid=GUEST)
    assert tool.state == "RUN" and sorted(_shells(jm, tool)) == [0, 1]


def test_held_bypass_job_waits_for_its_urgency(jm):
    target = _full(jm)
    out = jm.broker.call("job-ingest.submit", {"jobspec": _bypass(target.R), "urgency": 0})
    jm.broker.loop.run()
    tool = jm.jobs[out["id"]]
    assert tool.state == "SCHED"
    jm.broker.call("job-manager.urgency", {"id": tool.id, "urgency": 16})
    jm.broker.loop.run()
    assert tool.state == "RUN"


def test_target_of_running_job(jm):
    job = _full(jm)
    out = jm.broker.call("job-manager.target", {"id": job.id})
    assert out["ranks"] == [0, 1] and out["userid"] == OWNER and out["R"] == job.R
    assert out["jobspec"]["tasks"] == job.jobspec["tasks"]


def test_target_refusals(jm):
    job = _submit_as(jm, _jobspec(nnodes=2, cores=2))
    errnum, text = jm.broker.error("job-manager.target", {"id": job.id})
    assert errnum == errno.EINVAL and "not running (it is starting)" in text, text  # shells not started yet
    pending = _submit_as(jm, _jobspec())
    errnum, text = jm.broker.error("job-manager.target", {"id": pending.id})
    assert errnum == errno.EINVAL and "not running (it is SCHED)" in text
    assert jm.broker.error("job-manager.target", {"id": 12345})[0] == errno.ENOENT
    _start(jm, job)
    errnum, text = jm.broker.error("job-manager.target", {"id": job.id}, userid=GUEST)
    assert errnum == errno.EPERM and "not your job" in text
    # the rexec service asks on a guest's behalf (its own request is the owner's)
    errnum, text = jm.broker.error("job-manager.target", {"id": job.id, "userid": GUEST})
    assert errnum == errno.EPERM
    _run_to_end(jm, job)
    errnum, text = jm.broker.error("job-manager.target", {"id": job.id})
    assert errnum == errno.EINVAL and "INACTIVE" in text
