"""``flux queue status|stop|start|disable|enable|idle|drain|list`` in real instances:
a stopped queue takes jobs and starts none until started, a disabled one refuses
submissions with its reason, ``idle`` waits for running jobs only (``drain`` for
every job), the state survives a restart unless ``--nocheckpoint``, and bad input
gets a one-line error with flux-core's exit code."""

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    with Instance(size=2) as i:
        yield i


@pytest.fixture
def clean(inst):
    """The queue enabled and started again after each test, and no job left."""
    yield inst
    inst.flux("queue", "start", "--quiet", check=False)
    inst.flux("queue", "enable", "--quiet", check=False)
    inst.flux("cancel", "--all", check=False)
    inst.flux("queue", "drain", "-t", "30", check=False, timeout=40)


def _state(inst, jobid):
    return inst.flux("jobs", "-a", "-n", "-o", "{state}", jobid).stdout.strip()


def test_status_of_a_new_instance(inst):
    out = inst.flux("queue", "status").stdout
    assert out == "Job submission is enabled\nScheduling is started\n", out
    out = inst.flux("queue", "status", "-v").stdout.splitlines()
    assert out[2:] == ["0 alloc requests queued", "0 alloc requests pending to scheduler", "0 running jobs"], out


def test_stop_keeps_jobs_pending_until_start(clean):
    inst = clean
    out = inst.flux("queue", "stop", "-m", "maintenance window").stdout
    assert out == "Scheduling is stopped: maintenance window\n", out
    assert inst.flux("queue", "status").stdout.splitlines()[1] == "Scheduling is stopped: maintenance window"
    jobid = inst.flux("submit", "true").stdout.strip()  # still accepted
    inst.flux("job", "wait-event", "-t", "20", jobid, "priority", timeout=30)
    assert _state(inst, jobid) == "SCHED", inst.job_eventlog(jobid)
    assert "1 alloc requests queued" in inst.flux("queue", "status", "-v").stdout
    assert inst.flux("queue", "stop").stdout == "Scheduling is stopped\n"  # no reason: none shown
    assert inst.flux("queue", "start").stdout == "Scheduling is started\n"
    r = inst.flux("job", "wait-event", "-t", "30", jobid, "clean", check=False, timeout=40)
    assert r.returncode == 0, inst.job_eventlog(jobid)
    assert inst.flux("jobs", "-a", "-n", "-o", "{result}", jobid).stdout.strip() == "COMPLETED"


def test_disable_refuses_submissions_with_the_reason(clean):
    inst = clean
    out = inst.flux("queue", "disable", "-m", "system upgrade").stdout
    assert out == "Job submission is disabled: system upgrade\n", out
    r = inst.flux("submit", "true", check=False)
    assert r.returncode == 1 and r.stderr.strip().endswith("job submission is disabled: system upgrade"), r.stderr
    r = inst.flux("run", "true", check=False)
    assert r.returncode == 1 and "job submission is disabled" in r.stderr, r.stderr
    inst.flux("queue", "disable", "--quiet")
    assert "disabled by administrator" in inst.flux("queue", "status").stdout
    assert inst.flux("queue", "enable").stdout == "Job submission is enabled\n"
    assert inst.flux("run", "echo", "ok").stdout == "ok\n"


def test_idle_waits_for_running_jobs_drain_for_all(clean):
    inst = clean
    running = inst.flux("submit", "sleep", "1").stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", running, "start", timeout=40)
    inst.flux("queue", "stop", "--quiet")
    pending = inst.flux("submit", "true").stdout.strip()
    out = inst.flux("queue", "idle", "-t", "30", timeout=40).stdout
    assert out == "1 jobs\n", out
    assert _state(inst, running) == "INACTIVE" and _state(inst, pending) == "SCHED"
    assert inst.flux("queue", "idle", "--quiet").stdout == "1 jobs\n"  # --quiet prints a nonzero count
    r = inst.flux("queue", "drain", "-t", "0.2", check=False)
    assert r.returncode == 1 and "not drained" in r.stderr, r.stderr
    inst.flux("queue", "start", "--quiet")
    inst.flux("queue", "drain", "-t", "30", timeout=40)
    assert inst.flux("queue", "idle", "--quiet").stdout == ""


def test_list(inst):
    out = inst.flux("queue", "list").stdout.splitlines()
    assert out[0].split() == ["EN", "ST"] and out[1].split() == ["✔", "✔"], out
    out = inst.flux("queue", "list", "-n", "-o", "{submission} {scheduling} {started.ascii}").stdout
    assert out == "enabled started y\n", out


@pytest.mark.parametrize("args, code, text", [
    (("stop", "batch"), 1, "'batch' is not a valid queue"),
    (("disable", "upgrade"), 1, "give a reason with -m REASON"),
    (("status", "debug"), 1, "'debug' is not a valid queue"),
    (("enable", "-q", "a", "b"), 1, "Conflicting queues"),
    (("idle", "-t", "soon"), 1, "soon"),
    (("drain", "-t", "-1"), 1, ""),
    (("frobnicate",), 2, "invalid choice"),
    (("stop", "-m"), 2, "expected one argument"),
])
def test_bad_input(inst, args, code, text):
    r = inst.flux("queue", *args, check=False)
    assert r.returncode == code and text in r.stderr, (r.returncode, r.stderr)
    if code == 1:
        assert len(r.stderr.splitlines()) == 1, r.stderr
    assert inst.flux("queue", "status").stdout == "Job submission is enabled\nScheduling is started\n"


def test_state_survives_a_restart_unless_nocheckpoint(make_instance, tmp_path):
    attrs = {"statedir": tmp_path / "state"}
    inst = make_instance(size=1, attrs=attrs)
    inst.flux("queue", "disable", "--quiet", "-m", "closed for the night")
    inst.flux("queue", "stop", "--quiet", "-m", "paused")
    assert inst.stop() == 0
    inst = make_instance(size=1, attrs=attrs)
    out = inst.flux("queue", "status").stdout
    assert out == "Job submission is disabled: closed for the night\nScheduling is stopped: paused\n", out
    inst.flux("queue", "enable", "--quiet")
    inst.flux("queue", "start", "--quiet")
    inst.flux("queue", "stop", "--quiet", "--nocheckpoint", "-m", "just now")
    assert inst.stop() == 0
    inst = make_instance(size=1, attrs=attrs)
    out = inst.flux("queue", "status").stdout
    assert out == "Job submission is enabled\nScheduling is started\n", out
