"""``flux update`` end to end (flux-core's flux-update(1)): a pending or running
job's duration (absolute, +/-, moving a running job's time limit both ways) and
name, what ``flux jobs``, ``flux job info`` and the eventlog show after, a
restart on the same statedir, and every refused update (one line, exit 1, job
unchanged)."""

import json
import time

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    with Instance(size=1) as i:
        yield i


def _jobs(inst, job, fmt):
    return inst.flux("jobs", "-no", fmt, job).stdout.strip()


def _system(inst, *args):
    return json.loads(inst.flux("job", "info", *args, "jobspec").stdout)["attributes"]["system"]


@pytest.fixture
def pending(inst):
    """A job held in DEPEND (it waits for a job that never ends until the test is over)."""
    blocker = inst.flux("submit", "sleep", "300").stdout.strip()
    job = inst.flux("submit", f"--dependency=afterany:{blocker}", "-t", "10m", "--job-name=first",
                    "true").stdout.strip()
    yield job
    inst.flux("cancel", job, blocker, check=False)


@pytest.fixture
def running(inst):
    job = inst.flux("submit", "-t", "1h", "sleep", "300").stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", job, "start")
    yield job
    inst.flux("cancel", job, check=False)


def test_pending_job_duration_and_name(inst, pending):
    r = inst.flux("update", "-v", pending, "duration=+5m", "name=second")
    assert r.stderr.splitlines() == ["flux-update: updated attributes.system.duration to 900.0",
                                     "flux-update: updated attributes.system.job.name to second"]
    assert _jobs(inst, pending, "{name} {duration!F}") == "second 15m"
    current, base = _system(inst, pending), _system(inst, "-b", pending)
    assert (current["duration"], current["job"]["name"]) == (900.0, "second")
    assert (base["duration"], base["job"]["name"]) == (600.0, "first")
    events = [ln.split(" ", 2)[1:] for ln in inst.flux("job", "eventlog", pending).stdout.splitlines()]
    assert ["jobspec-update", 'attributes.system.duration=900.0 attributes.system.job.name="second"'] in events
    inst.flux("update", pending, "duration=-14m")
    assert _jobs(inst, pending, "{duration!F}") == "1m"
    inst.flux("update", pending, "duration=inf")  # unlimited: 0 in jobspec
    assert _system(inst, pending)["duration"] == 0


def test_running_job_time_limit_moves_later(inst):
    job = inst.flux("submit", "-t", "2s", "sleep", "300").stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", job, "start")
    inst.flux("update", job, "duration=+1h")
    time.sleep(3)  # past the first limit
    assert _jobs(inst, job, "{state}") == "RUN"
    R = json.loads(inst.flux("job", "info", job, "R").stdout)
    base = json.loads(inst.flux("job", "info", "-b", job, "R").stdout)
    assert R["execution"]["expiration"] - base["execution"]["expiration"] == pytest.approx(3600, abs=0.01)
    assert "resource-update" in inst.flux("job", "eventlog", job).stdout
    inst.flux("cancel", job)


def test_running_job_time_limit_moves_sooner(inst, running):
    inst.flux("update", running, "duration=3s")
    r = inst.flux("job", "wait-event", "-t", "30", running, "clean")
    assert r.returncode == 0
    assert _jobs(inst, running, "{result}") == "TIMEOUT"


def test_running_job_duration_in_the_past_is_refused(inst, running):
    time.sleep(1.2)
    r = inst.flux("update", running, "duration=1s", check=False)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert "a duration of 1s would have ended the job" in r.stderr, r.stderr
    assert _jobs(inst, running, "{state} {duration!F}") == "RUN 1h"


def test_running_job_name(inst, running):
    inst.flux("update", "--wait", running, "name=renamed")
    assert _jobs(inst, running, "{name}") == "renamed"


def test_dry_run_prints_and_changes_nothing(inst, pending):
    r = inst.flux("update", "-n", pending, "duration=1h", "name=x", "myattr=[1,2]", "note=plain text")
    assert json.loads(r.stdout) == {"attributes.system.duration": 3600.0, "attributes.system.job.name": "x",
                                    "attributes.system.myattr": [1, 2], "attributes.system.note": "plain text"}
    assert _jobs(inst, pending, "{name} {duration!F}") == "first 10m"
    assert "jobspec-update" not in inst.flux("job", "eventlog", pending).stdout


@pytest.mark.parametrize("update, message", [
    ("queue=batch", "queue 'batch' is not a valid queue (this instance has only the anonymous queue)"),
    ("myattr=1", "update of attributes.system.myattr is not supported (keys: duration, name)"),
    ("name=", "job name must be a non-empty string"),
    ("duration=-20m", "current duration for {job} (10m) cannot be reduced by 20m"),
    ("duration=soon", "duration: "),
])
def test_refused_updates_leave_the_job(inst, pending, update, message):
    r = inst.flux("update", pending, "name=ok", update, check=False)
    assert r.returncode == 1 and len(r.stderr.splitlines()) == 1, r.stderr
    assert message.format(job=inst.flux("job", "id", "-t", "f58", pending).stdout.strip()) in r.stderr, r.stderr
    assert _jobs(inst, pending, "{name} {duration!F}") == "first 10m"  # name=ok was not applied either


def test_unlimited_duration_cannot_be_relative(inst):
    blocker = inst.flux("submit", "sleep", "300").stdout.strip()
    job = inst.flux("submit", f"--dependency=afterany:{blocker}", "true").stdout.strip()
    try:
        r = inst.flux("update", job, "duration=+1m", check=False)
        assert r.returncode == 1 and "is unlimited, can't update by +1m" in r.stderr, r.stderr
    finally:
        inst.flux("cancel", job, blocker)


def test_inactive_unknown_and_bad_command_line(inst):
    done = inst.flux("submit", "true").stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", done, "clean")
    r = inst.flux("update", done, "name=x", check=False)
    assert r.returncode == 1 and "job has finished (INACTIVE): only pending or running jobs can be updated" in \
        r.stderr, r.stderr
    r = inst.flux("update", "f123", "name=x", check=False)
    assert r.returncode == 1 and r.stderr.strip().endswith("no such job"), r.stderr
    for args in (["f123"], ["f123", "name"], ["notajob", "name=x"]):
        r = inst.flux("update", *args, check=False)
        assert r.returncode == 2 and "usage: flux update" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_update_survives_a_restart(tmp_path):
    attrs = {"statedir": tmp_path / "state"}
    with Instance(size=1, attrs=attrs) as inst:
        blocker = inst.flux("submit", "sleep", "300").stdout.strip()
        job = inst.flux("submit", f"--dependency=afterany:{blocker}", "-t", "10m", "true").stdout.strip()
        inst.flux("update", job, "name=kept", "duration=20m")
    with Instance(size=1, attrs=attrs) as inst:
        assert _jobs(inst, job, "{name} {duration!F}") == "kept 20m"
        assert _system(inst, job)["job"]["name"] == "kept"
        inst.flux("cancel", job, check=False)


def test_backfill_plans_with_the_new_duration():
    """A queued job lengthened by flux update is no longer backfilled into a gap it
    would overrun (delaying the job at the head of the queue): the scheduler holds
    its new duration, not the one it was queued with."""
    with Instance(size=1) as inst:
        ncores = int(_jobs_all(inst, "resource", "list", "-no", "{ncores}"))
        a = inst.flux("submit", f"-n{max(ncores - 1, 1)}", "-t", "100s", "sleep", "100").stdout.strip()
        a2 = inst.flux("submit", "-n1", "-t", "10s", "sleep", "1").stdout.strip() if ncores > 1 else None
        head = inst.flux("submit", f"-n{ncores}", "true").stdout.strip()  # waits for a: reserved at its end
        small = inst.flux("submit", "-n1", "-t", "5s", "true").stdout.strip()
        inst.flux("update", small, "duration=1000s")  # now it would overrun head's reservation
        if a2 is not None:
            inst.flux("job", "wait-event", "-t", "30", a2, "clean")
        time.sleep(0.5)
        try:
            assert _jobs(inst, small, "{state}") == "SCHED", inst.flux("job", "eventlog", small).stdout
            assert _jobs(inst, head, "{state}") == "SCHED"
        finally:
            inst.flux("cancel", a, head, small, check=False)


def _jobs_all(inst, *args):
    return inst.flux(*args).stdout.strip()


def test_update_after_a_fatal_exception_is_refused(inst):
    job = inst.flux("submit", "-t", "1h", "sh", "-c", 'trap "" TERM; sleep 20').stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", job, "start")
    inst.flux("cancel", job)
    r = inst.flux("update", job, "duration=2h", check=False)
    inst.flux("job", "kill", "-s", "KILL", job, check=False)
    assert r.returncode == 1 and "job is ending (a cancel exception): it cannot be updated" in r.stderr, r.stderr


def test_python_api_sees_the_update(inst, pending):
    import sys

    inst.flux("update", pending, "name=renamed")
    code = ("import flux, flux.job, sys; h = flux.Flux(); j = flux.job.JobID(sys.argv[1]); "
            "cur = flux.job.job_kvs_lookup(h, j)['jobspec']; "
            "base = flux.job.job_kvs_lookup(h, j, base=True)['jobspec']; "
            "print(cur['attributes']['system']['job']['name'], base['attributes']['system']['job']['name'])")
    assert inst.run(sys.executable, "-c", code, pending).stdout.split() == ["renamed", "first"]
