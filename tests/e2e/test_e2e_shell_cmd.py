"""``python -m flux_launch.shell JOBID`` (flux-core's ``flux-shell JOBID``): one job
shell run by hand, for a job the instance runs no shell for (the test exec)."""

import json
import sys

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst2():
    with Instance(size=2) as inst:
        yield inst


def _shell(inst, jobid, uri=None):
    env = {"FLUX_URI": uri} if uri else None
    return inst.run(sys.executable, "-m", "flux_launch.shell", jobid, check=False, env=env, timeout=60)


def _held(inst, *args):
    """A job allocated one node and left running without a shell for 10 minutes;
    returns its id and its rank."""
    jobid = inst.flux("submit", "-N1", "-S", "exec.test.run_duration=600", *args).stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", jobid, "start")
    R = json.loads(inst.flux("job", "info", jobid, "R").stdout)
    return jobid, int(R["execution"]["R_lite"][0]["rank"])


def _uri(inst, rank):
    return inst.flux("exec", "-r", str(rank), "flux", "getattr", "local-uri").stdout.strip()


def test_runs_the_shell_of_a_job_by_hand_and_only_on_its_rank(inst2):
    jobid, rank = _held(inst2, "-n2", "sh", "-c", "echo hi from $FLUX_TASK_RANK; exit $FLUX_TASK_RANK")
    try:
        r = _shell(inst2, jobid, uri=_uri(inst2, 1 - rank))
        assert r.returncode == 1
        assert r.stderr.startswith("flux-shell: ") and f"broker rank {1 - rank} runs no part of the job" in r.stderr
        assert r.stderr.count("\n") == 1, r.stderr
        r = _shell(inst2, jobid, uri=_uri(inst2, rank))
        assert r.returncode == 1, f"{r.returncode}\n{r.stderr}\n{inst2.job_eventlog(jobid)}"  # task 1's exit
        out = inst2.flux("job", "eventlog", "-p", "output", jobid).stdout
        assert "hi from 0" in out and "hi from 1" in out, out
        events = inst2.flux("job", "eventlog", "-p", "exec", jobid).stdout
        for name in ("shell.init", "shell.start", "shell.task-exit"):
            assert name in events, events
    finally:
        inst2.flux("cancel", jobid, check=False)


def test_unknown_job_is_one_line(inst2):
    r = _shell(inst2, "f1234")
    assert r.returncode == 1
    assert r.stderr.endswith(": unknown job id\n") and r.stderr.count("\n") == 1, r.stderr
