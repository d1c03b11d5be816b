"""Time limits end a job as flux-core's do: SIGALRM to the tasks first (exit 142), then
SIGKILL kill-timeout (5 s) later to what is left; the job's exception is ``timeout``."""

import json

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    from flux_launch.testing import Instance

    with Instance(size=1) as inst:
        yield inst


def _last_job(inst):
    out = inst.flux("jobs", "-a", "-n", "-c", "1", "-o", "{id}").stdout.strip()
    return out


def _exception(inst, jobid):
    for line in inst.flux("job", "eventlog", "-f", "json", jobid).stdout.splitlines():
        ev = json.loads(line)
        if ev["name"] == "exception":
            return ev["context"]
    return None


def test_time_limit_sends_sigalrm(inst):
    r = inst.flux("run", "-t", "1s", "sleep", "30", check=False, timeout=30)
    jobid = _last_job(inst)
    assert r.returncode == 142, f"rc {r.returncode}\n{r.stderr}\n{inst.job_eventlog(jobid)}"
    exc = _exception(inst, jobid)
    assert exc is not None and exc["type"] == "timeout", inst.job_eventlog(jobid)
    res = inst.flux("jobs", "-n", "-o", "{result}", jobid).stdout.strip()
    assert res == "TIMEOUT", res


def test_time_limit_sigkill_when_sigalrm_ignored(inst):
    r = inst.flux("run", "-t", "1s", "sh", "-c", 'trap "" ALRM; sleep 30', check=False, timeout=25)
    jobid = _last_job(inst)
    assert r.returncode == 137, f"rc {r.returncode}\n{r.stderr}\n{inst.job_eventlog(jobid)}"
    exc = _exception(inst, jobid)
    assert exc is not None and exc["type"] == "timeout", inst.job_eventlog(jobid)
