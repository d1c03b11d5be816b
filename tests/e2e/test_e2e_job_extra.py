"""``flux job taskmap``, ``timeleft``, ``raise``, ``raiseall``, ``killall`` and
``cancelall`` (flux-core's flux-job(1)), with their bad inputs."""

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    with Instance(size=2, args=["--test-hosts=node[0-1]"]) as i:
        yield i


def out(inst, *args, **kw):
    return inst.flux(*args, **kw).stdout.strip()


def fails(inst, *args, code=1):
    r = inst.flux(*args, check=False)
    assert r.returncode == code and "Traceback" not in r.stderr, r.stderr
    if code == 2:  # argparse: the usage, then one error line
        assert r.stderr.startswith("usage: flux job"), r.stderr
        return r.stderr.splitlines()[-1]
    assert len(r.stderr.splitlines()) == 1, r.stderr
    return r.stderr.strip()


@pytest.fixture
def job(inst):
    jobid = out(inst, "submit", "-N2", "-n4", "-t", "10m", "sleep", "300")
    inst.flux("job", "wait-event", "-t", "30", jobid, "start")
    yield jobid
    inst.flux("cancel", jobid, check=False)


def test_taskmap_of_a_job(inst, job):
    assert out(inst, "job", "taskmap", job) == '{"version":1,"map":[[0,2,2,1]]}'
    assert out(inst, "job", "taskmap", "--to=raw", job) == "0-1;2-3"
    assert out(inst, "job", "taskmap", "--to=pmi", job) == "(vector,(0,2,2))"
    assert out(inst, "job", "taskmap", "--to=multiline", job).split() == ["0", "0", "1", "1"]
    assert out(inst, "job", "taskmap", "--taskids=1", job) == "2-3"
    assert out(inst, "job", "taskmap", "--ntasks=0", job) == "2"
    assert out(inst, "job", "taskmap", "--nodeid=3", job) == "1"
    assert out(inst, "job", "taskmap", "--hostname=3", job) == "node1"
    assert fails(inst, "job", "taskmap", "--hostname=9", job) == "flux-job: task 9 is not in the taskmap (tasks 0-3)"
    assert fails(inst, "job", "taskmap", "--taskids=5", job) == "flux-job: node 5 is not in the taskmap (nodes 0-1)"


def test_taskmap_conversions(inst):
    assert out(inst, "job", "taskmap", "0-3;4-7") == '{"version":1,"map":[[0,2,4,1]]}'
    assert out(inst, "job", "taskmap", "--to=raw", "(vector,(0,2,4))") == "0-3;4-7"
    assert out(inst, "job", "taskmap", "--to=raw", "[[0,2,1,2]]") == "0,2;1,3"  # cyclic: repeat 2
    assert out(inst, "job", "taskmap", "--to=pmi", "0,2;1,3") == "(vector,(0,2,1),(0,2,1))"
    assert fails(inst, "job", "taskmap", "bad;x") == ("flux-job: invalid taskmap 'bad;x' (give JSON, raw like 0-3;4-7, "
                                                      "or PMI like (vector,(0,2,4)))")
    assert fails(inst, "job", "taskmap", "0-1;1-2") == "flux-job: invalid taskmap '0-1;1-2': task 1 on nodes 0 and 1"
    assert "--hostname needs a job id" in fails(inst, "job", "taskmap", "--hostname=0", "0-3")
    assert fails(inst, "job", "taskmap", "") == ("flux-job: invalid taskmap '': give a job id, or a map as JSON, "
                                                 "raw (0-3;4-7) or PMI")
    assert "not allowed with" in fails(inst, "job", "taskmap", "--to=raw", "--ntasks=0", "0-3", code=2)


def test_taskmap_of_jobs_that_never_ran_or_do_not_exist(inst):
    held = out(inst, "submit", "--urgency=hold", "true")
    inst.flux("cancel", held)
    assert fails(inst, "job", "taskmap", held).endswith("the job has no task map: it ended before its shells started")
    assert fails(inst, "job", "taskmap", "f123").endswith("no such job")


def test_timeleft(inst, job):
    left = int(out(inst, "job", "timeleft", job))
    assert 590 <= left <= 600
    assert out(inst, "job", "timeleft", "-H", job).endswith("m")
    inst.flux("update", job, "duration=1h")  # the limit moved: so does timeleft
    assert 3590 <= int(out(inst, "job", "timeleft", job)) <= 3600
    # in a job: FLUX_JOB_ID; without a limit, UINT_MAX
    inst.flux("cancel", job)
    inst.flux("job", "wait-event", "-t", "30", job, "clean")
    assert out(inst, "job", "timeleft", job) == "0"  # ended
    assert out(inst, "run", "flux", "job", "timeleft") == "4294967295"
    assert out(inst, "run", "-t", "5m", "flux", "job", "timeleft", "-H").endswith("m")
    held = out(inst, "submit", "--urgency=hold", "true")
    try:
        assert fails(inst, "job", "timeleft", held) == f"flux-job: timeleft: job {held} has not started"
    finally:
        inst.flux("cancel", held)
    r = inst.flux("job", "timeleft", check=False, env={"FLUX_JOB_ID": ""})
    assert r.returncode == 1 and "timeleft: not in a job" in r.stderr, r.stderr


def test_timeleft_in_a_batch_instance(inst, tmp_path):
    script = tmp_path / "b.sh"
    script.write_text("#!/bin/sh\nflux job timeleft\n")
    jobid = out(inst, "batch", "-N1", "-t", "10m", f"--output={tmp_path}/out", str(script))
    inst.flux("job", "wait-event", "-t", "60", jobid, "clean", timeout=90)
    assert 500 <= int((tmp_path / "out").read_text()) <= 600


def test_raise(inst, job):
    inst.flux("job", "raise", "-t", "test", "-s", "3", job, "--", "just", "a", "note")
    events = inst.flux("job", "eventlog", job).stdout
    assert 'exception type="test" severity=3 note="just a note"' in events, events
    assert out(inst, "jobs", "-no", "{state}", job) == "RUN"  # severity 3: not fatal
    inst.flux("job", "raise", "-m", "stop now", job)
    inst.flux("job", "wait-event", "-t", "30", job, "clean")
    assert out(inst, "jobs", "-no", "{result}", job) == "CANCELED"
    assert fails(inst, "job", "raise", job, "late").endswith("job is inactive")
    assert "not both" in fails(inst, "job", "raise", "-m", "x", job, "y", code=2)
    assert "severity must be" in fails(inst, "job", "raise", "-s", "9", job, code=2)


def test_bulk_commands_count_then_act(inst):
    jobs = [out(inst, "submit", "sleep", "300") for _ in range(2)]
    held = out(inst, "submit", "--urgency=hold", "true")
    for j in jobs:
        inst.flux("job", "wait-event", "-t", "30", j, "start")
    r = inst.flux("job", "killall")
    assert r.stderr == "flux-job: Command matched 2 jobs (-f to confirm)\n"
    r = inst.flux("job", "raiseall", "test", "a", "note")
    assert r.stderr == "flux-job: Command matched 3 jobs (-f to confirm)\n"
    r = inst.flux("job", "raiseall", "-f", "-S", "pending", "test", "a", "note")
    assert r.stderr == "flux-job: Raised 1 job\n"
    assert 'type="test" severity=7 note="a note"' in inst.flux("job", "eventlog", held).stdout
    r = inst.flux("job", "killall", "-f", "-s", "KILL")
    assert r.stderr == "flux-job: Killed 2 jobs\n"
    for j in jobs:
        inst.flux("job", "wait-event", "-t", "30", j, "clean")
    r = inst.flux("job", "cancelall", "-f", "bye")
    assert r.stderr == "flux-job: Canceled 1 job\n"
    inst.flux("job", "wait-event", "-t", "30", held, "clean")
    assert out(inst, "jobs", "-no", "{result}", held) == "CANCELED"
    r = inst.flux("job", "cancelall", "-q")
    assert (r.returncode, r.stderr) == (0, "")
    assert "invalid state" in fails(inst, "job", "cancelall", "-S", "bogus", code=2)
    assert "no such user" in fails(inst, "job", "killall", "-u", "nosuchuser_x", code=2)
    assert "invalid signal" in fails(inst, "job", "killall", "-s", "NOPE", code=2)


def test_jobs_in_a_nested_instance_end_with_it(inst):
    """A job in a batch/alloc instance has at most the instance's own time left:
    none outlives the job the instance runs as (flux-core's)."""
    r = inst.flux("alloc", "-N1", "-t", "10m", "sh", "-c",
                  "flux run -n1 flux job timeleft; flux run -n1 -t 1h flux job timeleft; "
                  "flux run -n1 -t 1m flux job timeleft", timeout=90)
    unlimited, capped, own = (int(x) for x in r.stdout.split())
    assert 500 <= unlimited <= 600 and 500 <= capped <= 600 and 50 <= own <= 60, r.stdout
