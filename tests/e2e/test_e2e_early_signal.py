"""A signal sent to a job as soon as it is in RUN (right after its ``start``
event, before its shell has spawned the tasks) reaches the tasks: the job ends
by it instead of running on. SIGKILL, which the fork server cannot leave to the
shell, was lost in that window; catchable signals go through the shell."""

import json
import sys
import textwrap

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e

ROUNDS = 5

# Submit ``sleep 300`` jobs and signal each right after its ``alloc`` (the job is
# in RUN, its shells are being started) or ``start`` event; print their ids (the
# test then waits for each to end).
SCRIPT = """
import sys
import flux, flux.job
h = flux.Flux()
sig, nodes, rounds, event = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
for _ in range(rounds):
    spec = flux.job.JobspecV1.from_command(["sleep", "300"], num_tasks=nodes, num_nodes=nodes)
    jobid = flux.job.submit(h, spec)
    flux.job.event_wait(h, jobid, event)
    flux.job.kill(h, jobid, sig)
    print(int(jobid), flush=True)
"""


@pytest.fixture(scope="module")
def inst():
    with Instance(size=2) as inst:
        yield inst


def _ended(inst, jobid):
    """The job's finish event context, once it has ended (fails, with the job's
    eventlogs, if it has not within 30 s)."""
    r = inst.flux("job", "wait-event", "-t", "30", "-f", "json", str(jobid), "finish", check=False)
    if r.returncode != 0:
        inst.flux("job", "kill", "-s", "KILL", str(jobid), check=False)
        exec_log = inst.flux("job", "eventlog", "-p", "exec", str(jobid), check=False).stdout
        pytest.fail(f"job {jobid} still runs 30 s after its signal: {r.stderr}\n{inst.job_eventlog(jobid)}\n"
                    f"exec eventlog:\n{exec_log}")
    return json.loads(r.stdout)["context"]


@pytest.mark.parametrize("event", ["alloc", "start"])
@pytest.mark.parametrize("nodes", [1, 2])
@pytest.mark.parametrize("signum", [9, 15, 2])
def test_signal_right_after_start_ends_the_job(inst, tmp_path, signum, nodes, event):
    path = tmp_path / "early.py"
    path.write_text(textwrap.dedent(SCRIPT))
    r = inst.run(sys.executable, str(path), str(signum), str(nodes), str(ROUNDS), event, timeout=120)
    jobids = r.stdout.split()
    assert len(jobids) == ROUNDS
    for jobid in jobids:
        status = _ended(inst, jobid)["status"]
        # the shell's exit code is its task's: 128 + the signal
        assert status >> 8 == 128 + signum or status & 0x7F == signum, (jobid, status)


@pytest.mark.parametrize("signame", ["KILL", "TERM"])
def test_cli_kill_right_after_submit(inst, signame):
    """``flux job kill`` from the command line as soon as the job runs."""
    for _ in range(ROUNDS):
        jobid = inst.flux("submit", "sleep", "300").stdout.strip()
        inst.flux("job", "wait-event", "-t", "30", jobid, "start")
        inst.flux("job", "kill", "-s", signame, jobid)
        _ended(inst, jobid)


def test_any_signal_goes_to_the_tasks_not_the_shell(inst):
    """A signal the shell has no handler for (SIGQUIT) is forwarded to the tasks,
    as flux-core's shell does with every signal: the job ends with its task's
    status, without an exec exception from a shell killed by it."""
    jobid = inst.flux("submit", "-N2", "-n2", "sleep", "300").stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", "-p", "exec", jobid, "shell.start")
    inst.flux("job", "kill", "-s", "QUIT", jobid)
    status = _ended(inst, jobid)["status"]
    events = inst.flux("job", "eventlog", jobid).stdout
    assert status >> 8 == 128 + 3 and "exception" not in events, (status, events)
