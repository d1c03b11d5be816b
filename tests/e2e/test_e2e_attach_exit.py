"""``flux run`` and ``flux job attach`` as flux-core's attach: exit 1 when the job
ended with a fatal exception even if every task exited 0; SIGINT or SIGTERM to a
``flux run`` whose job is still pending cancels the job and exits (``timeout 5
flux run ...`` on a full instance used to hang); while the job runs SIGTERM goes
to its tasks and one Ctrl-C only warns (two within 2 s cancel)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e

FLUX = os.path.join(os.path.dirname(sys.executable), "flux")

# A task that survives its own job's cancel and exits 0: the job ends with a
# cancel exception while every task exited 0.
SURVIVOR = 'trap "exit 0" TERM; flux cancel "$FLUX_JOB_ID"; sleep 30 & wait'


@pytest.fixture(scope="module")
def inst():
    with Instance(size=1) as inst:
        yield inst


def _result(inst, jobid):
    return inst.flux("jobs", "-n", "-o", "{result}", jobid).stdout.strip()


def _last(inst):
    return inst.flux("job", "last").stdout.strip()


def test_run_exits_1_on_exception_though_tasks_exit_0(inst):
    r = inst.flux("run", "sh", "-c", SURVIVOR, check=False)
    jobid = _last(inst)
    assert r.returncode == 1, f"rc={r.returncode} stderr={r.stderr}\n{inst.job_eventlog(jobid)}"
    assert "cancel" in r.stderr, r.stderr
    assert _result(inst, jobid) == "CANCELED"


def test_job_attach_exits_1_on_exception_though_tasks_exit_0(inst):
    inst.flux("run", "sh", "-c", SURVIVOR, check=False)
    r = inst.flux("job", "attach", _last(inst), check=False)
    assert r.returncode == 1, r.stderr


def test_attach_to_a_job_that_succeeded_exits_0(inst):
    inst.flux("run", "true")
    assert inst.flux("job", "attach", _last(inst), check=False).returncode == 0


def _start_pending_run(inst):
    """A sleep job holding every core, then a ``flux run`` that must wait; returns
    (the blocker's id, the pending run's process)."""
    blocker = inst.flux("submit", "-n", str(os.cpu_count()), "sleep", "300").stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", blocker, "start")
    proc = subprocess.Popen([FLUX, "run", "true"],
                            env=inst.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pending = inst.flux("jobs", "-n", "-o", "{id}", "--filter=pending").stdout.split()
        if pending:
            return blocker, proc, pending[0]
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("the second job never became pending")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_cancels_a_pending_run(inst, sig):
    blocker, proc, pending = _start_pending_run(inst)
    try:
        time.sleep(0.3)  # flux run is watching the job's eventlog by now
        proc.send_signal(sig)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"flux run did not exit after {sig!r}: {err}") from None
        assert proc.returncode == 1, err
        assert _result(inst, pending) == "CANCELED", inst.job_eventlog(pending)
    finally:
        inst.flux("cancel", blocker, check=False)
        inst.flux("job", "wait-event", "-t", "30", blocker, "clean", check=False)


def test_one_ctrl_c_while_running_only_warns(inst):
    proc = subprocess.Popen([FLUX, "run", "sh", "-c",
                             'trap "echo got-int" INT; echo started; sleep 3; echo done'],
                            env=inst.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.split() == ["done"], out
    assert "Ctrl-C" in err, err
