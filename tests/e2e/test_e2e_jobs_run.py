"""``flux run`` end to end: exit codes, labelled output, stdin, the job's
environment and the run/submit options, and how failures of tasks and shells end
a job."""

import json
import os
import socket
import sys
import time

import pytest

from flux_launch.testing import Instance, flux

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def run2():
    """A 2-broker instance shared by this module's tests (none needs it empty)."""
    with Instance(size=2) as inst:
        yield inst


def _last(inst):
    return inst.flux("job", "last").stdout.strip()


def _why(inst, r, jobid=None):
    """A failure message: the command's output and the job's eventlog."""
    jobid = jobid or _last(inst)
    return f"rc={r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}\n{inst.job_eventlog(jobid)}"


def _result(inst, jobid):
    return inst.flux("jobs", "-n", "-o", "{result}", jobid).stdout.strip()


# ---- acceptance: flux start ... flux run ---------------------------------------------

def test_run_labelled_output_over_two_brokers():
    r = flux("start", "--test-size=2", "flux", "run", "-N2", "-n4", "-l", "hostname", timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4, r.stdout
    host = socket.gethostname()
    assert sorted(lines) == [f"{i}: {host}" for i in range(4)], r.stdout


@pytest.mark.parametrize("script, code", [("exit 3", 3), ("kill -9 $$", 137)])
def test_run_exit_code_from_flux_start(script, code):
    r = flux("start", "flux", "run", "sh", "-c", script, timeout=60)
    assert r.returncode == code, f"stdout: {r.stdout}\nstderr: {r.stderr}"


@pytest.mark.parametrize("script, code", [("exit 0", 0), ("exit 7", 7), ("kill -TERM $$", 143)])
def test_run_exit_code_in_instance(run2, script, code):
    r = run2.flux("run", "sh", "-c", script, check=False)
    assert r.returncode == code, _why(run2, r)
    expected = "COMPLETED" if code == 0 else "FAILED"
    assert _result(run2, _last(run2)) == expected


def test_run_highest_exit_code_of_tasks(run2):
    r = run2.flux("run", "-n2", "-o", "exit-timeout=none", "sh", "-c", "exit $((FLUX_TASK_RANK + 4))", check=False)
    assert r.returncode == 5, _why(run2, r)


# ---- stdin -----------------------------------------------------------------------------

def test_stdin_broadcast_to_all_tasks(run2):
    r = run2.flux("run", "-n2", "-l", "cat", input="hello\n", timeout=30)
    assert sorted(r.stdout.splitlines()) == ["0: hello", "1: hello"], _why(run2, r)


def test_stdin_multiple_lines(run2):
    text = "".join(f"line {i}\n" for i in range(100))
    r = run2.flux("run", "cat", input=text, timeout=30)
    assert r.stdout == text, _why(run2, r)


def test_stdin_devnull_ends(run2):
    r = run2.flux("run", "cat", timeout=30)  # stdin is /dev/null
    assert r.returncode == 0 and r.stdout == "", _why(run2, r)


# ---- the job's environment ----------------------------------------------------------------

def test_job_environment_variables(run2):
    r = run2.flux("run", "-N2", "-n4", "-l", "sh", "-c",
                  'echo "$FLUX_JOB_ID $FLUX_JOB_SIZE $FLUX_JOB_NNODES $FLUX_TASK_RANK $FLUX_TASK_LOCAL_ID '
                  '$FLUX_JOB_TMPDIR $(test -d "$FLUX_JOB_TMPDIR" && echo exists)"')
    jobid = _last(run2)
    rows = {}
    for line in r.stdout.splitlines():
        label, _, rest = line.partition(": ")
        rows[int(label)] = rest.split()
    assert sorted(rows) == [0, 1, 2, 3], _why(run2, r, jobid)
    tmpdirs = set()
    for rank, fields in rows.items():
        job_id, size, nnodes, task_rank, local_id, tmpdir, exists = fields
        assert job_id == jobid
        assert (size, nnodes, task_rank) == ("4", "2", str(rank)), fields
        assert local_id == str(rank % 2), fields  # tasks 0,1 on the first node, 2,3 on the second
        assert exists == "exists", fields
        tmpdirs.add(tmpdir)
    assert len(tmpdirs) == 2  # one per node
    for path in tmpdirs:
        assert not os.path.exists(path), f"FLUX_JOB_TMPDIR {path} left behind"


def test_flux_job_id_is_what_submit_printed(run2, tmp_path):
    out = tmp_path / "id.txt"
    jobid = run2.flux("submit", "sh", "-c", f'echo "$FLUX_JOB_ID" > {out}').stdout.strip()
    assert jobid.startswith("ƒ")
    r = run2.flux("job", "wait-event", "-t", "30", jobid, "clean", check=False, timeout=40)
    assert r.returncode == 0, _why(run2, r, jobid)
    assert out.read_text().strip() == jobid, run2.job_eventlog(jobid)


def test_flux_uri_talks_to_the_tasks_broker(run2):
    r = run2.flux("run", "-N2", "-n2", "-l", "flux", "getattr", "rank")
    assert sorted(r.stdout.splitlines()) == ["0: 0", "1: 1"], _why(run2, r)


def test_env_set(run2):
    r = run2.flux("run", "--env=FOO=bar", "--env=EXPANDED=x$HOME", "sh", "-c", 'echo "$FOO $EXPANDED"')
    assert r.stdout.strip() == f"bar x{os.environ.get('HOME', '')}", _why(run2, r)


def test_env_passes_callers_environment(run2):
    r = run2.flux("run", "printenv", "CALLER_VAR", env={"CALLER_VAR": "from-caller"})
    assert r.stdout.strip() == "from-caller", _why(run2, r)


def test_env_remove(run2):
    r = run2.flux("run", "--env-remove=FOO*", "env", env={"FOO1": "a", "FOO2": "b", "KEEPME": "c"})
    names = {line.partition("=")[0] for line in r.stdout.splitlines()}
    assert "FOO1" not in names and "FOO2" not in names, r.stdout
    assert "KEEPME" in names, r.stdout


def test_env_file(run2, tmp_path):
    rules = tmp_path / "env.rules"
    rules.write_text("# a comment\nFROMFILE=yes\n-DROP*\n\n")
    r = run2.flux("run", f"--env-file={rules}", "env", env={"DROPME": "1", "KEEPME": "2"})
    env = dict(line.split("=", 1) for line in r.stdout.splitlines() if "=" in line)
    assert env.get("FROMFILE") == "yes", r.stdout
    assert "DROPME" not in env and env.get("KEEPME") == "2", r.stdout


def test_env_remove_all_then_import_path(run2):
    r = run2.flux("run", "--env=-*", "--env=PATH", "env", env={"SOMEVAR": "x"})
    names = {line.partition("=")[0] for line in r.stdout.splitlines()}
    assert "PATH" in names, r.stdout
    assert not names & {"SOMEVAR", "HOME"}, r.stdout
    # only PATH and what the shell itself sets remain (FLUX_*, and PMI_* and the Open MPI
    # shared-memory directory for MPI)
    assert all(n == "PATH" or n.startswith(("FLUX_", "PMI_", "OMPI_MCA_btl_vader")) for n in names), r.stdout


def test_env_file_missing_fails(run2, tmp_path):
    r = run2.flux("run", f"--env-file={tmp_path / 'absent'}", "true", check=False)
    assert r.returncode != 0
    assert "absent" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_cwd(run2, tmp_path):
    r = run2.flux("run", "--cwd", str(tmp_path), "pwd")
    assert r.stdout.strip() == str(tmp_path), _why(run2, r)
    # by default the tasks run where flux run was started
    here = run2.run("sh", "-c", f"cd {tmp_path} && flux run pwd")
    assert here.stdout.strip() == str(tmp_path)


def test_cwd_missing_fails(run2, tmp_path):
    r = run2.flux("run", "--cwd", str(tmp_path / "nowhere"), "pwd", check=False)
    assert r.returncode != 0, _why(run2, r)
    assert "nowhere" in r.stderr, r.stderr


def test_job_name(run2):
    run2.flux("run", "--job-name=my-run-name", "true")
    jobid = _last(run2)
    assert run2.flux("jobs", "-n", "-o", "{name}", jobid).stdout.strip() == "my-run-name"
    jobid = run2.flux("submit", "--job-name=subname", "true").stdout.strip()
    assert run2.flux("jobs", "-n", "-o", "{name}", jobid).stdout.strip() == "subname"
    # without a name, the command's basename
    run2.flux("run", "/bin/true")
    assert run2.flux("jobs", "-n", "-o", "{name}", _last(run2)).stdout.strip() == "true"


def _dry_run(inst, *args, cmd="run"):
    before = inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout
    out = inst.flux(cmd, "--dry-run", *args, "hostname").stdout
    assert inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout == before, "--dry-run submitted a job"
    return json.loads(out)


def test_dry_run_counts(run2):
    js = _dry_run(run2, "-n4")
    assert js["version"] == 1
    assert js["resources"] == [{"type": "slot", "count": 4, "label": "task",
                                "with": [{"type": "core", "count": 1}]}]
    assert js["tasks"][0]["command"] == ["hostname"]
    assert js["tasks"][0]["count"] == {"per_slot": 1}

    js = _dry_run(run2, "-n3", "-c2")
    slot = js["resources"][0]
    assert (slot["type"], slot["count"]) == ("slot", 3)
    assert slot["with"] == [{"type": "core", "count": 2}]

    js = _dry_run(run2, "-N2", "-n4", "-c2", cmd="submit")
    node = js["resources"][0]
    assert (node["type"], node["count"]) == ("node", 2)
    slot = node["with"][0]
    assert (slot["type"], slot["count"]) == ("slot", 2)
    assert slot["with"] == [{"type": "core", "count": 2}]
    assert js["tasks"][0]["count"] == {"per_slot": 1}

    js = _dry_run(run2, "-N2", "-n3")
    assert js["resources"][0]["with"][0]["count"] == 2
    assert js["tasks"][0]["count"] == {"total": 3}


def test_dry_run_attributes(run2, tmp_path):
    js = _dry_run(run2, "-t", "90s", "--job-name=dry", "--cwd", str(tmp_path), "--env=DRY=1")
    system = js["attributes"]["system"]
    assert system["duration"] == 90
    assert system["job"]["name"] == "dry"
    assert system["cwd"] == str(tmp_path)
    assert system["environment"]["DRY"] == "1"


def test_time_limit_timeout(run2):
    r = run2.flux("run", "-t", "1s", "sleep", "10", check=False, timeout=30)
    jobid = _last(run2)
    assert r.returncode != 0, _why(run2, r, jobid)
    assert _result(run2, jobid) == "TIMEOUT", _why(run2, r, jobid)
    log = run2.job_eventlog(jobid)
    assert 'exception type="timeout"' in log, log
    assert "timeout" in r.stderr, r.stderr


# ---- failures --------------------------------------------------------------------------

def test_command_not_found(run2):
    r = run2.flux("run", "no-such-command-xyz", check=False)
    assert r.returncode == 127, _why(run2, r)
    assert "No such file or directory" in r.stderr and "no-such-command-xyz" in r.stderr, r.stderr
    assert _result(run2, _last(run2)) == "FAILED"
    # the instance still works
    r = run2.flux("run", "-n2", "echo", "still-ok")
    assert r.stdout.splitlines() == ["still-ok", "still-ok"], _why(run2, r)


def test_exit_timeout_kills_remaining_tasks(run2):
    r = run2.flux("run", "-n2", "-o", "exit-timeout=1s", "sh", "-c",
                  'if [ "$FLUX_TASK_RANK" = 0 ]; then exit 2; else sleep 30; fi', check=False, timeout=20)
    assert r.returncode >= 2, _why(run2, r)
    assert "exit-timeout" in r.stderr, r.stderr


def test_output_before_task_dies_is_kept(run2):
    r = run2.flux("run", "sh", "-c", "seq 1 20000; kill -9 $$", check=False, timeout=60)
    assert r.returncode == 137, _why(run2, r)
    lines = r.stdout.splitlines()
    assert len(lines) == 20000, f"{len(lines)} lines, last: {lines[-3:]}\n{r.stderr}"
    assert lines == [str(i) for i in range(1, 20001)]


def test_stderr_is_separate(run2):
    r = run2.flux("run", "sh", "-c", "echo to-out; echo to-err >&2")
    assert r.stdout == "to-out\n", _why(run2, r)
    assert "to-err" in r.stderr and "to-err" not in r.stdout


def test_killed_job_shell_raises_exec_exception(run2):
    # The task's parent is its job shell: kill that shell with SIGKILL.
    r = run2.flux("run", "sh", "-c", "kill -9 $PPID; sleep 1", check=False, timeout=30)
    jobid = _last(run2)
    log = run2.job_eventlog(jobid)
    assert r.returncode != 0, _why(run2, r, jobid)
    assert 'exception type="exec"' in log, log
    assert _result(run2, jobid) == "FAILED", log
    # the instance goes on
    assert run2.flux("run", "echo", "after").stdout == "after\n"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_killed_job_shell_leaves_no_task(tmp_path):
    pidfile = tmp_path / "task.pid"
    pid = None
    try:
        with Instance(size=1) as inst:
            r = inst.flux("run", "sh", "-c", f"echo $$ > {pidfile}; kill -9 $PPID; exec sleep 120",
                          check=False, timeout=30)
            assert r.returncode != 0, r.stderr
            pid = int(pidfile.read_text())
            deadline = time.monotonic() + 10  # the job's kill-timeout is 5 s
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not _alive(pid), f"task {pid} still runs after its job ended:\n{inst.job_eventlog(_last(inst))}"
    finally:
        if pid is not None and _alive(pid):
            os.kill(pid, 9)


def test_unlabelled_lines_of_tasks_never_splice():
    """Each task writes every line in two pieces; the tasks' lines must still come out whole."""
    code = ("import os\n"
            "for _ in range(300):\n"
            "    os.write(1, b'ab'); os.write(1, b'cd\\n')\n")
    r = flux("start", "--test-size=2", "flux", "run", "-N2", "-n4", sys.executable, "-c", code, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 1200 and set(lines) == {"abcd"}, set(lines)
