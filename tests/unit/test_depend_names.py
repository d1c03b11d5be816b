"""The job manager's dependencies beyond flux-core's after* on ids: ``name=JOBNAME``
targets, ``singleton`` and ``begin-time``, on the fake broker of
test_job_manager (timers fire by hand)."""

import errno
import time

import pytest
from test_job_manager import OWNER, GUEST, _events, _jobspec, _run_to_end, jm  # noqa: F401

from flux_launch.proto.jobspec import JobspecError, validate


def _sub(jm, name="app", deps=(), userid=OWNER, **payload):  # noqa: F811
    js = _jobspec(dependencies=list(deps), job={"name": name})
    out = jm.broker.call("job-ingest.submit", {"jobspec": js, **payload}, userid=userid)
    jm.broker.loop.run()
    return jm.jobs[out["id"]]


def test_name_targets_latest_earlier_job_of_that_name(jm):  # noqa: F811
    old = _sub(jm, "build")
    _run_to_end(jm, old)
    new = _sub(jm, "build")
    job = _sub(jm, deps=[{"scheme": "afterok", "value": "name=build"}])
    assert job.state == "DEPEND" and list(job.deps) == ["after-success=name=build"]
    _run_to_end(jm, new)
    assert job.state in ("SCHED", "RUN"), _events(jm, job)
    assert _events(jm, job)[2:5] == ["dependency-add", "dependency-remove", "depend"]


def test_name_of_other_users_job_is_refused_at_submit(jm):  # noqa: F811
    _sub(jm, "build", userid=GUEST)
    before = len(jm.jobs)
    js = _jobspec(dependencies=[{"scheme": "afterany", "value": "name=build"}], job={"name": "app"})
    errnum, errstr = jm.broker.error("job-ingest.submit", {"jobspec": js})
    assert (errnum, errstr) == (errno.ENOENT, "afterany: no job of yours is named 'build'")
    assert len(jm.jobs) == before


def test_name_resolves_only_to_earlier_jobs_after_restart(jm):  # noqa: F811
    first = _sub(jm, "build")
    job = _sub(jm, deps=[{"scheme": "afterok", "value": "name=build"}])
    _sub(jm, "build")  # a later job of that name is not the target
    assert jm.depend._named(job, "build") is first


def test_name_target_that_failed_rejects(jm):  # noqa: F811
    target = _sub(jm, "build")
    job = _sub(jm, deps=[{"scheme": "afterok", "value": "name=build"}])
    _run_to_end(jm, target, status=256)
    assert job.state == "INACTIVE" and "failed" in job.exception["note"]


def test_singleton_runs_one_at_a_time_in_submit_order(jm):  # noqa: F811
    first = _sub(jm, "solo")
    other = _sub(jm, "else")  # another name: not held
    second = _sub(jm, "solo", deps=[{"scheme": "singleton", "value": ""}])
    third = _sub(jm, "solo", deps=[{"scheme": "singleton", "value": ""}])
    assert other.state in ("SCHED", "RUN")
    assert second.state == third.state == "DEPEND" and list(second.deps) == ["singleton"]
    _run_to_end(jm, first)
    assert second.state in ("SCHED", "RUN") and third.state == "DEPEND"
    _run_to_end(jm, second)
    assert third.state in ("SCHED", "RUN")
    assert jm.depend.singles == {}


def test_singleton_alone_goes_at_once_and_cancel_releases_next(jm):  # noqa: F811
    alone = _sub(jm, "solo", deps=[{"scheme": "singleton", "value": ""}])
    assert alone.state in ("SCHED", "RUN") and "dependency-remove" in _events(jm, alone)
    second = _sub(jm, "solo", deps=[{"scheme": "singleton", "value": ""}])
    third = _sub(jm, "solo", deps=[{"scheme": "singleton", "value": ""}])
    jm.broker.call("job-manager.raise", {"id": second.id, "type": "cancel", "severity": 0, "note": ""})
    jm.broker.loop.run()
    assert second.state == "INACTIVE" and third.state == "DEPEND"  # alone still runs
    _run_to_end(jm, alone)
    assert third.state in ("SCHED", "RUN")


def test_begin_time_future_waits_for_timer_past_goes(jm):  # noqa: F811
    later = _sub(jm, deps=[{"scheme": "begin-time", "value": f"{time.time() + 3600:.3f}"}])
    assert later.state == "DEPEND" and list(later.deps)[0].startswith("begin-time=")
    assert 3500 < jm.broker.loop.timers[-1].delay <= 3600.01  # the value has 3 decimals
    past = _sub(jm, deps=[{"scheme": "begin-time", "value": "1000.5"}])
    assert past.state in ("SCHED", "RUN") and "dependency-remove" in _events(jm, past)
    jm.broker.loop.fire()
    assert later.state in ("SCHED", "RUN")
    assert jm.depend.timers == {}


def test_begin_time_job_canceled_drops_timer(jm):  # noqa: F811
    job = _sub(jm, deps=[{"scheme": "begin-time", "value": f"{time.time() + 60:.3f}"}])
    jm.broker.call("job-manager.raise", {"id": job.id, "type": "cancel", "severity": 0, "note": ""})
    jm.broker.loop.run()
    assert job.state == "INACTIVE" and jm.depend.timers == {}
    assert all(t.cancelled for t in jm.broker.loop.timers if t.args[:1] == (job,))


@pytest.mark.parametrize("dep, why", [
    ({"scheme": "begin-time", "value": "soon"}, "Invalid begin-time=soon"),
    ({"scheme": "begin-time", "value": "nan"}, "Invalid begin-time=nan"),
    ({"scheme": "begin-time", "value": "-5"}, "Invalid begin-time=-5"),
    ({"scheme": "afterok", "value": "name="}, "afterok: a job id or name=JOBNAME is required"),
    ({"scheme": "afterok", "value": ""}, "afterok: a job id or name=JOBNAME is required"),
])
def test_bad_values_refused_at_submit(dep, why):
    with pytest.raises(JobspecError, match=why):
        validate(_jobspec(dependencies=[dep]))
