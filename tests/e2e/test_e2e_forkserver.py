"""A job shell fork server or a job shell killed with SIGKILL during a ``-N2`` job: the
job fails with an exec exception, its shells and tasks on that rank are killed (no
orphans), and the broker starts a new fork server, so later jobs run."""

import json
import os
import signal

import pytest

from flux_launch.testing import poll

pytestmark = pytest.mark.e2e


def _children(pid):
    """Pids whose parent is ``pid`` (live ones only)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(name))
    return out


def _with_arg(token):
    """Live processes (not zombies) with ``token`` as one of their arguments."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as f:
                args = f.read().split(b"\0")
            with open(f"/proc/{name}/stat") as f:
                state = f.read().rsplit(") ", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in args and state != "Z":
            out.append(int(name))
    return out


def _events(inst, jobid):
    out = inst.flux("job", "eventlog", "-f", "json", jobid).stdout
    return [json.loads(line) for line in out.splitlines()]


def _forkservers(pid):
    """Children of broker ``pid`` that run Python (its fork server; rank 0's initial
    program is a shell)."""
    exe = os.readlink(f"/proc/{pid}/exe")
    out = []
    for kid in _children(pid):
        try:
            if os.readlink(f"/proc/{kid}/exe") == exe:
                out.append(kid)
        except OSError:
            pass
    return out


def _forkserver(inst, rank):
    """The fork server of ``rank``."""
    kids = _forkservers(inst.broker_pids()[rank])
    assert len(kids) == 1, f"broker {rank} has Python children {kids}, not just its fork server"
    return kids[0]


def _start_job(inst, token):
    """A -N2 job whose tasks (a shell and its sleep) carry ``token``; returns its id
    once both tasks run."""
    jobid = inst.flux("submit", "-N2", "-n2", "sh", "-c", f"sleep {token}; :", token).stdout.strip()
    # each rank: the sh (token is its $0) and the sleep
    assert poll(lambda: len(_with_arg(token)) >= 4), f"tasks never started\n{inst.job_eventlog(jobid)}"
    return jobid


def _check_failed_and_clean(inst, jobid, token, note_part, etype="exec"):
    assert poll(lambda: inst.flux("jobs", "-n", "-o", "{state}", jobid).stdout.strip() == "INACTIVE", 30), \
        f"job stayed active\n{inst.job_eventlog(jobid)}\n{inst.log()}"
    excs = [e["context"] for e in _events(inst, jobid) if e["name"] == "exception"]
    assert excs and excs[0]["type"] == etype, inst.job_eventlog(jobid)
    assert note_part in excs[0]["note"], excs[0]
    left = poll(lambda: not _with_arg(token), 10) or _with_arg(token)
    assert left is True, f"task processes survived: {left}"


@pytest.mark.parametrize("rank", [1, 0])
def test_forkserver_killed(make_instance, rank):
    inst = make_instance(size=2)
    token = f"300.{17 + rank}"
    jobid = _start_job(inst, token)
    fs = _forkserver(inst, rank)
    os.kill(fs, signal.SIGKILL)
    _check_failed_and_clean(inst, jobid, token, "fork server")
    r = inst.flux("run", "-N2", "-l", "flux", "getattr", "rank", timeout=30)
    assert sorted(r.stdout.splitlines()) == ["0: 0", "1: 1"], r.stdout
    assert _forkserver(inst, rank) != fs
    assert inst.stop(timeout=30) == 0
    assert "Traceback" not in inst.log(), inst.log()


def test_shell_killed(make_instance):
    inst = make_instance(size=2)
    token = "300.23"
    jobid = _start_job(inst, token)
    shells = _children(_forkserver(inst, 1))
    assert len(shells) == 1, shells
    os.kill(shells[0], signal.SIGKILL)
    _check_failed_and_clean(inst, jobid, token, "job shell on rank 1 was killed by SIGKILL")
    inst.flux("run", "-N2", "true", timeout=30)
    assert inst.stop(timeout=30) == 0


def test_forkserver_killed_while_idle(make_instance):
    inst = make_instance(size=2)
    broker = inst.broker_pids()[1]
    fs = _forkserver(inst, 1)
    os.kill(fs, signal.SIGKILL)
    new = poll(lambda: [p for p in _forkservers(broker) if p != fs], 10)
    assert len(new) == 1, f"no new fork server: {new}\n{inst.log()}"
    r = inst.flux("run", "-N2", "-l", "flux", "getattr", "rank", timeout=30)
    assert sorted(r.stdout.splitlines()) == ["0: 0", "1: 1"], r.stdout
    assert inst.stop(timeout=30) == 0


def test_stopped_shell_is_killed_after_cancel(make_instance):
    """A shell that cannot report (SIGSTOP): cancel, SIGKILL to its tasks, and a
    kill-timeout later SIGKILL to the shell itself; the job ends."""
    inst = make_instance(size=1)
    token = "300.29"
    jobid = inst.flux("submit", "sh", "-c", f"sleep {token}; :", token).stdout.strip()
    assert poll(lambda: len(_with_arg(token)) >= 2), f"tasks never started\n{inst.job_eventlog(jobid)}"
    shells = _children(_forkserver(inst, 0))
    assert len(shells) == 1, shells
    os.kill(shells[0], signal.SIGSTOP)
    inst.flux("cancel", jobid)
    _check_failed_and_clean(inst, jobid, token, "", etype="cancel")
    inst.flux("run", "true", timeout=30)


def test_broker_killed_with_a_stopped_shell_leaves_no_tasks(make_instance):
    """Broker 1 dies while its shell of a -N2 job cannot act (SIGSTOP): its fork
    server kills the shell and the tasks (they ignore SIGTERM); the job fails."""
    inst = make_instance(size=2)
    token = "300.37"
    jobid = inst.flux("submit", "-N2", "-n2", "sh", "-c", f'trap "" TERM; sleep {token}; :', token).stdout.strip()
    assert poll(lambda: len(_with_arg(token)) >= 4), f"tasks never started\n{inst.job_eventlog(jobid)}"
    broker = inst.broker_pids()[1]
    shells = _children(_forkserver(inst, 1))
    assert len(shells) == 1, shells
    os.kill(shells[0], signal.SIGSTOP)
    os.kill(broker, signal.SIGKILL)
    _check_failed_and_clean(inst, jobid, token, "lost contact with rank 1")


def test_stopped_forkserver_is_killed_after_cancel(make_instance):
    """The fork server of rank 1 stops (SIGSTOP) during a -N2 job: the cancel's
    SIGKILL goes unreported, so the broker kills the server, which ends its shells,
    tasks and job, and starts a new one; the job does not stay in RUN."""
    inst = make_instance(size=2)
    token = "300.41"
    jobid = _start_job(inst, token)
    fs = _forkserver(inst, 1)
    os.kill(fs, signal.SIGSTOP)
    inst.flux("cancel", jobid)
    assert poll(lambda: inst.flux("jobs", "-n", "-o", "{state}", jobid).stdout.strip() == "INACTIVE", 40), \
        f"job stayed active\n{inst.job_eventlog(jobid)}\n{inst.log()}"
    excs = [e["context"] for e in _events(inst, jobid) if e["name"] == "exception"]
    assert [e["type"] for e in excs][:2] == ["cancel", "exec"], inst.job_eventlog(jobid)
    assert "fork server was killed by SIGKILL" in excs[1]["note"], excs
    left = poll(lambda: not _with_arg(token), 10) or _with_arg(token)
    assert left is True, f"task processes survived: {left}"
    r = inst.flux("run", "-N2", "-l", "flux", "getattr", "rank", timeout=30)
    assert sorted(r.stdout.splitlines()) == ["0: 0", "1: 1"], r.stdout
    assert _forkserver(inst, 1) != fs


def test_a_users_sigkill_kills_only_that_jobs_tasks(make_instance):
    """flux job kill -s SIGKILL goes to the job's tasks only, even when its shell then
    waits on a descendant that holds its output open (in a session of its own, out
    of reach of the task's process group, as in flux-core without cgroups): the other
    job on the rank runs on, the fork server is not taken for a stuck one, and a
    later cancel still ends the first job through the kill escalation."""
    inst = make_instance(size=1)
    token_a, token_b, escaped = "300.43", "300.47", "300.53"
    a = inst.flux("submit", "sh", "-c", f"setsid sleep {escaped} & sleep {token_a}; :", token_a).stdout.strip()
    b = inst.flux("submit", "sh", "-c", f"sleep {token_b}; :", token_b).stdout.strip()
    try:
        assert poll(lambda: len(_with_arg(token_a)) >= 2 and len(_with_arg(token_b)) >= 2 and _with_arg(escaped)), \
            f"tasks never started\n{inst.job_eventlog(a)}\n{inst.job_eventlog(b)}"
        fs = _forkserver(inst, 0)
        inst.flux("job", "kill", "-s", "SIGKILL", a)
        poll(lambda: False, 17)  # past the fork server watchdog (10 s after a final kill; it was 15 s after any)
        assert inst.flux("jobs", "-n", "-o", "{state}", b).stdout.strip() == "RUN", \
            f"{inst.job_eventlog(b)}\n{inst.log()}"
        assert _forkserver(inst, 0) == fs, inst.log()
        assert not _with_arg(token_a), "the job's tasks survived its SIGKILL"
        inst.flux("cancel", a, b)
        for jobid in (a, b):
            def inactive(jobid=jobid):
                return inst.flux("jobs", "-n", "-o", "{state}", jobid).stdout.strip() == "INACTIVE"

            assert poll(inactive, 30), \
                f"job stayed active\n{inst.job_eventlog(jobid)}\n{inst.log()}"
        left = poll(lambda: not _with_arg(token_b), 10) or _with_arg(token_b)
        assert left is True, f"task processes survived: {left}"
        assert "does not answer" not in inst.log(), inst.log()
    finally:
        for pid in _with_arg(escaped):
            os.kill(pid, signal.SIGKILL)
