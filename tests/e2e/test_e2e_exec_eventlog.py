"""The exec eventlog (``guest.exec.eventlog``, ``flux job eventlog -p exec``) has
flux-core's job-exec events around the shells' own: ``init`` and ``starting``
before any shell's, ``complete {status}`` (the job's finish status) and ``done``
last, so that ``flux.job.event_wait(h, id, "done", "guest.exec.eventlog")``
returns, as tools written for flux-core expect."""

import json
import sys
import textwrap

import pytest

pytestmark = pytest.mark.e2e

SHELL_EVENTS = ("shell.init", "shell.start", "shell.task-exit")


@pytest.fixture(scope="module")
def inst():
    from flux_launch.testing import Instance

    with Instance(size=2) as i:
        yield i


def _events(inst, jobid):
    """The job's exec eventlog, once it is inactive: a list of (name, context)."""
    inst.flux("job", "wait-event", "-t", "30", jobid, "clean")
    out = inst.flux("job", "eventlog", "-f", "json", "-p", "exec", jobid).stdout
    return [(e["name"], e.get("context", {})) for e in map(json.loads, out.splitlines())]


def _finish_status(inst, jobid):
    out = inst.flux("job", "eventlog", "-f", "json", jobid).stdout
    return next(e["context"]["status"] for e in map(json.loads, out.splitlines()) if e["name"] == "finish")


def _why(inst, jobid, events):
    return f"exec eventlog of {jobid}: {events}\n{inst.log()}"


@pytest.mark.parametrize("nodes", [1, 2])
def test_exec_eventlog_has_job_exec_events_in_order(inst, nodes):
    jobid = inst.flux("submit", "-N", str(nodes), "-n", str(nodes), "true").stdout.strip()
    events = _events(inst, jobid)
    names = [name for name, _ in events]
    assert names[:2] == ["init", "starting"], _why(inst, jobid, events)
    assert names[-2:] == ["complete", "done"], _why(inst, jobid, events)
    middle = names[2:-2]
    assert sorted(middle) == sorted(["shell.init", "shell.start"] + ["shell.task-exit"] * nodes), \
        _why(inst, jobid, events)
    assert middle.index("shell.init") < middle.index("shell.start"), _why(inst, jobid, events)
    assert dict(events)["init"] == {} and dict(events)["starting"] == {} and dict(events)["done"] == {}
    if nodes == 1:  # one shell: its events in its own order
        assert middle == ["shell.init", "shell.start", "shell.task-exit"], _why(inst, jobid, events)


@pytest.mark.xfail(reason="a remote shell's events can be committed before the leader's shell.init, until "
                          "shells other than the leader hold theirs back (see services/exec/job_exec.py)",
                   strict=False)
def test_leader_shell_init_comes_before_every_shell_event(inst):
    # rank 1's task ends at once, the leader's later: rank 1's shell.task-exit races the
    # leader's shell.init (about 4 jobs in 10 lose here)
    jobids = [inst.flux("submit", "-N2", "-n2", "sh", "-c", 'test "$FLUX_TASK_RANK" = 1 || sleep 0.2').stdout.strip()
              for _ in range(8)]
    for jobid in jobids:
        events = _events(inst, jobid)
        shell = [name for name, _ in events if name.startswith("shell.")]
        assert shell[0] == "shell.init", _why(inst, jobid, events)


@pytest.mark.parametrize("nodes,command,status", [
    (1, "exit 3", 3 << 8),
    (2, 'test "$FLUX_TASK_RANK" = 1 && exit 5; exit 0', 5 << 8),
    (1, "kill -TERM $$", 128 + 15 << 8),  # the shell's status: 128+N for a task killed by signal N
])
def test_complete_status_is_the_jobs_finish_status(inst, nodes, command, status):
    jobid = inst.flux("submit", "-N", str(nodes), "-n", str(nodes), "sh", "-c", command).stdout.strip()
    events = _events(inst, jobid)
    complete = [ctx for name, ctx in events if name == "complete"]
    assert complete == [{"status": _finish_status(inst, jobid)}], _why(inst, jobid, events)
    assert complete[0]["status"] == status, _why(inst, jobid, events)


def test_testexec_job_has_job_exec_events(inst):
    jobid = inst.flux("submit", "-S", "exec.test.run_duration=0.01s", "-S", "exec.test.wait_status=512",
                      "true").stdout.strip()
    events = _events(inst, jobid)
    assert events == [("init", {}), ("starting", {}), ("complete", {"status": 512}), ("done", {})], \
        _why(inst, jobid, events)
    assert _finish_status(inst, jobid) == 512


def test_event_wait_for_done_returns(inst):
    code = """
        import flux, flux.job
        from flux.job import JobspecV1
        h = flux.Flux()
        for nodes in (1, 2):
            j = flux.job.submit(h, JobspecV1.from_command(["true"], num_nodes=nodes, num_tasks=nodes))
            ev = flux.job.event_wait(h, j, "done", "guest.exec.eventlog")
            status = flux.job.event_wait(h, j, "complete", "guest.exec.eventlog").context["status"]
            print(ev.name, status)
    """
    r = inst.run(sys.executable, "-c", textwrap.dedent(code), check=False, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ["done", "0", "done", "0"], \
        f"stdout: {r.stdout}\nstderr: {r.stderr}\n{inst.log()}"
