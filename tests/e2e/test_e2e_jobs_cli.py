"""Job states and the job commands end to end: submit, cancel, jobs, queue drain,
resource list and the ``flux job`` subcommands (ids in every encoding, status,
wait, last, kill, urgency, attach), and scheduling when every core is busy."""

import json
import re

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e

ENCODINGS = ("f58", "f58plain", "dec", "hex", "dothex", "kvs", "words")


@pytest.fixture(scope="module")
def cli2():
    """A 2-broker instance shared by the tests that do not need it empty or idle."""
    with Instance(size=2) as inst:
        yield inst


def _submit(inst, *args):
    jobid = inst.flux("submit", *args).stdout.strip()
    assert jobid.startswith("ƒ"), jobid
    return jobid


def _wait_event(inst, jobid, event, timeout=30, path=None):
    extra = ["-p", path] if path else []
    r = inst.flux("job", "wait-event", "-t", str(timeout), *extra, jobid, event, check=False, timeout=timeout + 10)
    assert r.returncode == 0, f"{jobid}: no {event} event: {r.stderr}\n{inst.job_eventlog(jobid)}"
    return r.stdout


def _field(inst, jobid, field):
    return inst.flux("jobs", "-n", "-o", "{" + field + "}", jobid).stdout.strip()


def _events(inst, jobid):
    """[(name, timestamp, line)] of the job's eventlog."""
    out = []
    for line in inst.flux("job", "eventlog", jobid).stdout.splitlines():
        ts, name = line.split()[:2]
        out.append((name, float(ts), line))
    return out


def _ts(events, name):
    found = [t for n, t, _ in events if n == name]
    assert found, f"no {name} event in {events}"
    return found[0]


def _ncores(inst):
    out = inst.flux("resource", "list", "-n", "-s", "free").stdout.split()
    # STATE NNODES NCORES NGPUS NODELIST
    assert out[0] == "free", out
    return int(out[2])


# ---- cancel ------------------------------------------------------------------------------

def test_cancel_running_job(cli2):
    jobid = _submit(cli2, "sleep", "60")
    _wait_event(cli2, jobid, "start")
    cli2.flux("cancel", jobid)
    _wait_event(cli2, jobid, "clean")
    rows = cli2.flux("jobs", "-a", "-o", "{id.f58} {result}").stdout.splitlines()
    assert rows[0].split() == ["JOBID", "RESULT"]
    assert f"{jobid} CANCELED" in rows, rows
    log = cli2.job_eventlog(jobid)
    assert re.search(r'exception type="cancel" severity=0', log), log
    assert _field(cli2, jobid, "status_abbrev") == "CA"


def test_cancel_with_message(cli2):
    jobid = _submit(cli2, "sleep", "60")
    cli2.flux("cancel", "-m", "because I said so", jobid)
    _wait_event(cli2, jobid, "clean")
    log = cli2.job_eventlog(jobid)
    assert 'note="because I said so"' in log, log
    assert _field(cli2, jobid, "result") == "CANCELED"


def test_cancel_inactive_job_fails(cli2):
    jobid = _submit(cli2, "true")
    _wait_event(cli2, jobid, "clean")
    r = cli2.flux("cancel", jobid, check=False)
    assert r.returncode == 1, r
    assert "inactive" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert _field(cli2, jobid, "result") == "COMPLETED"


def test_unsatisfiable_request_is_refused(cli2):
    before = cli2.flux("jobs", "-a", "-n", "-o", "{id}").stdout.splitlines()
    r = cli2.flux("run", "-n", "1000", "true", check=False, timeout=20)
    assert r.returncode == 1, r
    assert "unsatisfiable request" in r.stderr, r.stderr
    after = cli2.flux("jobs", "-a", "-n", "-o", "{id}").stdout.splitlines()
    assert after == before, "an unsatisfiable job was queued"
    r = cli2.flux("submit", "-N", "3", "true", check=False, timeout=20)
    assert r.returncode == 1 and "unsatisfiable request" in r.stderr, r
    assert cli2.flux("jobs", "-a", "-n", "-o", "{id}").stdout.splitlines() == before


# ---- flux jobs -----------------------------------------------------------------------------

def test_jobs_default_header_and_running_state(cli2):
    jobid = _submit(cli2, "--job-name=runner", "sleep", "60")
    try:
        _wait_event(cli2, jobid, "start")
        out = cli2.flux("jobs").stdout.splitlines()
        assert out[0].split() == ["JOBID", "USER", "NAME", "ST", "NTASKS", "NNODES", "TIME", "INFO"], out
        row = [line.split() for line in out[1:] if line.split()[0] == jobid]
        assert row, out
        assert row[0][2:6] == ["runner", "R", "1", "1"], row
        assert _field(cli2, jobid, "state") == "RUN"
    finally:
        cli2.flux("cancel", jobid)
    _wait_event(cli2, jobid, "clean")
    # inactive jobs only show with -a
    ids = [line.split()[0] for line in cli2.flux("jobs", "-n").stdout.splitlines()]
    assert jobid not in ids
    ids = [line.split()[0] for line in cli2.flux("jobs", "-a", "-n").stdout.splitlines()]
    assert jobid in ids


def test_jobs_filters(cli2):
    ok = _submit(cli2, "true")
    bad = _submit(cli2, "sh", "-c", "exit 1")
    canceled = _submit(cli2, "sleep", "60")
    cli2.flux("cancel", canceled)
    for j in (ok, bad, canceled):
        _wait_event(cli2, j, "clean")

    def ids(*args):
        return {line.split()[0] for line in cli2.flux("jobs", "-n", *args).stdout.splitlines()}

    assert bad in ids("-f", "failed") and not {ok, canceled} & ids("-f", "failed")
    assert canceled in ids("-f", "canceled") and not {ok, bad} & ids("-f", "canceled")
    assert ok in ids("-f", "completed") and not {bad, canceled} & ids("-f", "completed")
    assert {ok, bad, canceled} <= ids("-f", "inactive")
    assert {bad, canceled} <= ids("-f", "failed,canceled")
    r = cli2.flux("jobs", "-f", "bogus", check=False)
    assert r.returncode == 2 and "bogus" in r.stderr, r


def test_jobs_no_header_and_count(cli2):
    for _ in range(2):
        _wait_event(cli2, _submit(cli2, "true"), "clean")
    out = cli2.flux("jobs", "-a", "-n").stdout.splitlines()
    assert len(out) >= 2 and not out[0].startswith("JOBID") and not any("NTASKS" in line for line in out)
    out = cli2.flux("jobs", "-a", "-c", "1").stdout.splitlines()
    assert len(out) == 2 and out[0].split()[0] == "JOBID", out
    assert len(cli2.flux("jobs", "-a", "-n", "-c", "2").stdout.splitlines()) == 2


def test_jobs_long_format(cli2):
    jobid = _submit(cli2, "--job-name=longfmt", "true")
    _wait_event(cli2, jobid, "clean")
    out = cli2.flux("jobs", "-a", "-o", "long").stdout.splitlines()
    header = out[0].split()
    for col in ("JOBID", "USER", "NAME", "STATUS", "NTASKS", "NNODES", "T_SUBMIT", "T_REMAINING"):
        assert col in header, header
    row = [line for line in out if line.split()[0] == jobid]
    assert row and "COMPLETED" in row[0] and "longfmt" in row[0], out


def test_jobs_custom_format(cli2):
    jobid = _submit(cli2, "-n2", "sh", "-c", "exit 3")
    _wait_event(cli2, jobid, "clean")
    out = cli2.flux("jobs", "-o", "{id.dec} {ntasks} {result} {returncode}", jobid).stdout.splitlines()
    assert out[0].split() == ["JOBID", "NTASKS", "RESULT", "RC"]
    dec = cli2.flux("job", "id", "--to=dec", jobid).stdout.strip()
    assert out[1].split() == [dec, "2", "FAILED", "3"], out


# ---- job ids in every encoding ---------------------------------------------------------------

def test_job_id_conversions_round_trip(cli2):
    jobid = _submit(cli2, "true")
    encoded = {enc: cli2.flux("job", "id", f"--to={enc}", jobid).stdout.strip() for enc in ENCODINGS}
    assert encoded["f58"] == jobid
    assert encoded["f58plain"] == "f" + jobid[1:]
    assert encoded["hex"].startswith("0x") and int(encoded["hex"], 16) == int(encoded["dec"])
    assert encoded["kvs"] == "job." + encoded["dothex"]
    assert "--" in encoded["words"]
    for text in encoded.values():
        assert cli2.flux("job", "id", text).stdout.strip() == encoded["dec"], text


def test_job_commands_accept_every_encoding(cli2):
    jobid = _submit(cli2, "--job-name=encoded", "true")
    _wait_event(cli2, jobid, "clean")
    for enc in ENCODINGS:
        text = cli2.flux("job", "id", f"--to={enc}", jobid).stdout.strip()
        js = json.loads(cli2.flux("job", "info", text, "jobspec").stdout)
        assert js["tasks"][0]["command"] == ["true"], (enc, js)
        assert js["attributes"]["system"]["job"]["name"] == "encoded"
        log = cli2.flux("job", "eventlog", text).stdout
        assert log.splitlines()[0].split()[1] == "submit" and "clean" in log, (enc, log)
        assert cli2.flux("jobs", "-n", "-o", "{id.f58}", text).stdout.strip() == jobid


def test_cancel_accepts_every_encoding(cli2):
    for enc in ENCODINGS:
        jobid = _submit(cli2, "sleep", "60")
        text = cli2.flux("job", "id", f"--to={enc}", jobid).stdout.strip()
        cli2.flux("cancel", text)
        _wait_event(cli2, jobid, "clean")
        assert _field(cli2, jobid, "result") == "CANCELED", (enc, cli2.job_eventlog(jobid))


@pytest.mark.parametrize("cmd", [("job", "info", "{id}", "jobspec"), ("job", "eventlog", "{id}"),
                                 ("cancel", "{id}"), ("job", "status", "{id}"), ("job", "kill", "{id}"),
                                 ("job", "attach", "{id}"), ("job", "wait-event", "{id}", "start"),
                                 ("jobs", "{id}")])
def test_unknown_job_id(cli2, cmd):
    for missing in ("ƒ4fr", "12345", "0x3039"):
        r = cli2.flux(*[a.format(id=missing) for a in cmd], check=False, timeout=20)
        assert r.returncode == 1, (missing, r)
        assert "no such job" in r.stderr and "ƒ4fr" in r.stderr, (missing, r.stderr)
        assert "Traceback" not in r.stderr


def test_invalid_job_id(cli2):
    r = cli2.flux("job", "eventlog", "not-a-job-id!", check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r
    assert "not-a-job-id!" in r.stderr


# ---- status / wait / last / attach / submit --wait -----------------------------------------------

def test_job_status_exit_code(cli2):
    jobs = [_submit(cli2, "sh", "-c", f"exit {code}") for code in (0, 5)]
    assert cli2.flux("job", "status", jobs[0], check=False).returncode == 0
    r = cli2.flux("job", "status", jobs[1], check=False)
    assert r.returncode == 5, (r, cli2.job_eventlog(jobs[1]))
    r = cli2.flux("job", "status", *jobs, check=False)
    assert r.returncode == 5
    killed = _submit(cli2, "sh", "-c", "kill -9 $$")
    assert cli2.flux("job", "status", killed, check=False).returncode == 137


def test_job_wait_waitable(cli2):
    good = _submit(cli2, "--flags=waitable", "true")
    bad = _submit(cli2, "--flags=waitable", "sh", "-c", "exit 3")
    r = cli2.flux("job", "wait", good, check=False)
    assert r.returncode == 0, (r, cli2.job_eventlog(good))
    r = cli2.flux("job", "wait", bad, check=False)
    assert r.returncode == 1, r
    assert "exit code 3" in r.stderr, r.stderr
    # each job can be waited for once
    r = cli2.flux("job", "wait", good, check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr, r
    # a job submitted without the flag cannot be waited for
    plain = _submit(cli2, "true")
    r = cli2.flux("job", "wait", plain, check=False)
    assert r.returncode != 0 and "waitable" in r.stderr, r


def test_job_wait_any(cli2):
    jobs = {_submit(cli2, "--flags=waitable", "true") for _ in range(3)}
    got = set()
    for _ in range(3):
        r = cli2.flux("job", "wait", timeout=30)
        got.add(r.stdout.strip())
    assert got == jobs
    r = cli2.flux("job", "wait", "--all", check=False, timeout=30)
    assert r.returncode == 0, r  # none left


def test_job_last(cli2):
    jobid = _submit(cli2, "true")
    assert cli2.flux("job", "last").stdout.strip() == jobid
    cli2.flux("run", "true")
    last = cli2.flux("job", "last").stdout.strip()
    assert last != jobid and last.startswith("ƒ")
    assert int(cli2.flux("job", "id", last).stdout) > int(cli2.flux("job", "id", jobid).stdout)


def test_job_kill_signal(cli2):
    jobid = _submit(cli2, "sh", "-c", 'trap "echo got USR1; exit 0" USR1; echo ready; '
                                      'while :; do sleep 0.1; done')
    _wait_event(cli2, jobid, "data", path="guest.output")  # "ready": the trap is set
    cli2.flux("job", "kill", "-s", "SIGUSR1", jobid)
    _wait_event(cli2, jobid, "clean")
    out = cli2.flux("job", "eventlog", "-p", "guest.output", jobid).stdout
    assert "got USR1" in out, out + cli2.job_eventlog(jobid)
    assert _field(cli2, jobid, "result") == "COMPLETED", cli2.job_eventlog(jobid)


@pytest.mark.parametrize("sig, code", [(None, 143), ("9", 137), ("INT", 130)])
def test_job_kill_other_signals(cli2, sig, code):
    jobid = _submit(cli2, "sh", "-c", "echo ready; exec sleep 60")
    _wait_event(cli2, jobid, "data", path="guest.output")  # the task runs
    cli2.flux("job", "kill", *(["-s", sig] if sig else []), jobid)
    _wait_event(cli2, jobid, "clean")
    log = cli2.job_eventlog(jobid)
    assert _field(cli2, jobid, "returncode") == str(code), log
    assert _field(cli2, jobid, "result") == "FAILED"
    if sig != "9":  # SIGKILL cannot be forwarded: it ends the shell itself (an exec exception)
        assert "exception" not in log, log  # the task was signaled, not its shell


def test_job_kill_not_running(cli2):
    jobid = _submit(cli2, "true")
    _wait_event(cli2, jobid, "clean")
    r = cli2.flux("job", "kill", jobid, check=False)
    assert r.returncode == 1 and "not running" in r.stderr, r
    r = cli2.flux("job", "kill", "-s", "SIGBOGUS", jobid, check=False)
    assert r.returncode != 0 and "SIGBOGUS" in r.stderr, r


def test_attach_running_job(cli2):
    jobid = _submit(cli2, "sh", "-c", "echo before; sleep 1; echo after; exit 6")
    _wait_event(cli2, jobid, "start")
    r = cli2.flux("job", "attach", jobid, check=False, timeout=30)
    assert r.returncode == 6, (r, cli2.job_eventlog(jobid))
    assert r.stdout == "before\nafter\n", r


def test_attach_finished_job_replays_output(cli2):
    # several jobs: one attach alone may win the race
    jobs = [_submit(cli2, "sh", "-c", f"echo out-{i}; echo err-{i} >&2; exit {i + 1}") for i in range(8)]
    for jobid in jobs:
        _wait_event(cli2, jobid, "clean")
    for i, jobid in enumerate(jobs):
        r = cli2.flux("job", "attach", jobid, check=False, timeout=30)
        assert r.returncode == i + 1, r
        assert r.stdout == f"out-{i}\n", (r, cli2.flux("job", "eventlog", "-p", "guest.output", jobid).stdout)
        assert f"err-{i}" in r.stderr, r


def test_attach_finished_job_exit_code(cli2):
    jobid = _submit(cli2, "sh", "-c", "exit 6")
    _wait_event(cli2, jobid, "clean")
    r = cli2.flux("job", "attach", jobid, check=False, timeout=30)
    assert r.returncode == 6, r


def test_submit_wait_exit_code(cli2):
    r = cli2.flux("submit", "--wait", "sh", "-c", "exit 4", check=False, timeout=30)
    assert r.returncode == 4, r
    assert r.stdout.strip().startswith("ƒ")
    r = cli2.flux("submit", "--wait", "--cc=1-3", "sh", "-c", "exit {cc}", check=False, timeout=30)
    assert r.returncode == 3, r
    assert len(r.stdout.split()) == 3
    r = cli2.flux("submit", "--wait", "true", check=False, timeout=30)
    assert r.returncode == 0, r


def test_submit_cc_sets_job_cc(cli2, tmp_path):
    js = json.loads(cli2.flux("submit", "--dry-run", "--cc=2", "true").stdout)
    assert js["attributes"]["system"]["environment"]["FLUX_JOB_CC"] == "2"
    r = cli2.flux("submit", "--cc=1-3", "sh", "-c", f"echo $FLUX_JOB_CC > {tmp_path}/cc.{{cc}}")
    jobs = r.stdout.split()
    assert len(jobs) == 3
    for jobid in jobs:
        _wait_event(cli2, jobid, "clean")
    for i in (1, 2, 3):
        assert (tmp_path / f"cc.{i}").read_text().strip() == str(i)


def test_submit_bad_options(cli2):
    before = cli2.flux("jobs", "-a", "-n", "-o", "{id}").stdout
    for args in (["--flags=bogus", "true"], ["-n", "0", "true"], ["--urgency=99", "true"], ["-t", "xyz", "true"]):
        r = cli2.flux("submit", *args, check=False)
        assert r.returncode != 0, (args, r)
        assert "Traceback" not in r.stderr, (args, r.stderr)
    assert cli2.flux("jobs", "-a", "-n", "-o", "{id}").stdout == before


# ---- tests that need an instance of their own ----------------------------------------------------

def test_submit_cc_50_then_drain(make_instance):
    inst = make_instance(size=1)
    r = inst.flux("submit", "--cc=1-50", "--quiet", "true", timeout=60)
    assert r.stdout == "", r
    inst.flux("queue", "drain", timeout=120)
    out = inst.flux("jobs", "-a", "-f", "completed", "-n").stdout.splitlines()
    assert len(out) == 50, "\n".join(out) + inst.flux("jobs", "-a").stdout
    assert inst.flux("jobs", "-n").stdout == ""  # nothing active


def test_queue_drain_timeout(make_instance):
    inst = make_instance(size=1)
    jobid = _submit(inst, "sleep", "60")
    r = inst.flux("queue", "drain", "-t", "0.5s", check=False, timeout=20)
    assert r.returncode != 0 and "drain" in r.stderr, r
    inst.flux("cancel", jobid)
    inst.flux("queue", "drain", timeout=30)


def test_job_waits_for_busy_cores(make_instance):
    inst = make_instance(size=1)
    ncores = _ncores(inst)
    sleeper = _submit(inst, f"-n{ncores}", "sleep", "2")
    _wait_event(inst, sleeper, "start")
    out = inst.flux("resource", "list", "-n", "-s", "allocated").stdout.split()
    assert int(out[2]) == ncores, out
    r = inst.flux("run", "-n1", "echo", "ran", check=False, timeout=60)
    assert r.returncode == 0 and r.stdout == "ran\n", r
    waiter = inst.flux("job", "last").stdout.strip()
    s_ev, w_ev = _events(inst, sleeper), _events(inst, waiter)
    why = inst.job_eventlog(sleeper) + inst.job_eventlog(waiter)
    assert _ts(w_ev, "submit") < _ts(s_ev, "finish"), why  # it was submitted while the cores were busy
    assert _ts(w_ev, "alloc") >= _ts(s_ev, "free"), why
    assert _field(inst, sleeper, "result") == "COMPLETED"


def test_jobs_pending_state(make_instance):
    inst = make_instance(size=1)
    ncores = _ncores(inst)
    sleeper = _submit(inst, f"-n{ncores}", "sleep", "60")
    _wait_event(inst, sleeper, "start")
    pending = _submit(inst, "--job-name=pend", "true")
    _wait_event(inst, pending, "priority")
    out = inst.flux("jobs").stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows[pending][2:4] == ["pend", "S"], out
    assert rows[sleeper][3] == "R", out
    # a pending job is canceled without running
    inst.flux("cancel", pending)
    _wait_event(inst, pending, "clean")
    assert "alloc" not in [n for n, _, _ in _events(inst, pending)]
    assert _field(inst, pending, "result") == "CANCELED"
    inst.flux("cancel", sleeper)
    _wait_event(inst, sleeper, "clean")


def test_urgency_hold_keeps_job_pending(make_instance):
    inst = make_instance(size=1)
    ncores = _ncores(inst)
    sleeper = _submit(inst, f"-n{ncores}", "sleep", "2")
    _wait_event(inst, sleeper, "start")
    held = _submit(inst, "--job-name=held", "true")
    inst.flux("job", "urgency", held, "hold")
    _wait_event(inst, sleeper, "clean")
    # a later job runs on the freed cores while the held one stays pending
    r = inst.flux("run", "echo", "later", check=False, timeout=30)
    assert r.returncode == 0, r
    why = inst.job_eventlog(held)
    assert _field(inst, held, "status_abbrev") == "S", why
    assert _field(inst, held, "contextual_info") == "held", why
    out = inst.flux("jobs").stdout
    assert "held" in out.split("\n", 1)[1], out
    inst.flux("job", "urgency", held, "default")
    _wait_event(inst, held, "clean")
    assert _field(inst, held, "result") == "COMPLETED", inst.job_eventlog(held)


def test_submit_urgency_zero_is_held(make_instance):
    inst = make_instance(size=1)
    held = _submit(inst, "--urgency=0", "true")
    _wait_event(inst, held, "priority")
    inst.flux("run", "true", timeout=30)  # the scheduler has had its chance
    assert _field(inst, held, "status_abbrev") == "S", inst.job_eventlog(held)
    inst.flux("job", "urgency", held, "16")
    _wait_event(inst, held, "clean")
    assert _field(inst, held, "result") == "COMPLETED"


def test_urgency_errors(cli2):
    jobid = _submit(cli2, "true")
    _wait_event(cli2, jobid, "clean")
    r = cli2.flux("job", "urgency", jobid, "hold", check=False)
    assert r.returncode == 1 and "pending" in r.stderr, r
    r = cli2.flux("job", "urgency", jobid, "bogus", check=False)
    assert r.returncode == 2 and "bogus" in r.stderr, r
