"""flux watch: the output of inactive and running jobs (a batch job's with
--output=kvs too), the largest exit code, selection with -a/-A/-f, -l labels,
and one-line errors for an unknown job id or no selection."""

import subprocess

import pytest

from flux_launch.testing import Instance, poll

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    with Instance(size=2) as inst:
        yield inst


def _submit(inst, *cmd):
    return inst.flux("submit", *cmd).stdout.strip()


def _wait_clean(inst, jobid):
    inst.flux("job", "wait-event", "-t", "60", jobid, "clean")


def test_watch_inactive_job_prints_saved_output_and_exit_code(inst):
    jobid = _submit(inst, "-n2", "sh", "-c", "echo out-$FLUX_TASK_RANK; echo err-$FLUX_TASK_RANK >&2; exit 3")
    _wait_clean(inst, jobid)
    r = inst.flux("watch", jobid, check=False)
    assert r.returncode == 3, (r.stdout, r.stderr)
    assert sorted(r.stdout.splitlines()) == ["out-0", "out-1"], r.stdout
    assert sorted(r.stderr.splitlines()) == ["err-0", "err-1"], r.stderr


def test_watch_running_job_streams_then_waits(inst, tmp_path):
    go = tmp_path / "go"
    jobid = _submit(inst, "sh", "-c", f"echo first; while [ ! -e {go} ]; do sleep 0.05; done; echo second; exit 5")
    proc = subprocess.Popen(["flux", "watch", jobid], env=inst.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        # the first line arrives while the job still runs (it waits for "go")
        assert proc.stdout.readline() == "first\n"
        assert proc.poll() is None
        go.touch()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert (out, proc.returncode) == ("second\n", 5), err


def test_watch_batch_job_output_kvs(inst, tmp_path):
    script = tmp_path / "b.sh"
    script.write_text("#!/bin/sh\necho batch-start\necho batch-err >&2\nflux run -N2 -n2 flux getattr rank\n"
                      "echo batch-end\n")
    jobid = inst.flux("batch", "--output=kvs", "--error=kvs", "-N2", str(script)).stdout.strip()
    r = inst.flux("watch", jobid)
    lines = r.stdout.splitlines()
    assert lines[0] == "batch-start" and lines[-1] == "batch-end", r.stdout
    assert sorted(lines[1:-1]) == ["0", "1"], r.stdout
    assert r.stderr == "batch-err\n", r.stderr
    # watching it again, once inactive, prints the same saved output
    again = inst.flux("watch", jobid)
    assert (again.stdout, again.stderr) == (r.stdout, r.stderr)


def test_watch_several_jobs_largest_exit_code(inst):
    ids = [_submit(inst, "sh", "-c", f"echo job{code}; exit {code}") for code in (0, 7, 2)]
    r = inst.flux("watch", *ids, check=False)
    assert r.returncode == 7, r.stderr
    assert sorted(r.stdout.splitlines()) == ["job0", "job2", "job7"], r.stdout
    ok = inst.flux("watch", ids[0], ids[0])  # a repeated id is watched once
    assert ok.stdout == "job0\n"


def test_watch_label_io(inst):
    jobid = _submit(inst, "-n2", "sh", "-c", "echo hi")
    r = inst.flux("watch", "-l", jobid)
    assert sorted(r.stdout.splitlines()) == [f"{jobid}: 0: hi", f"{jobid}: 1: hi"], r.stdout


def test_watch_signalled_job_exit_code(inst):
    jobid = _submit(inst, "sh", "-c", "kill -9 $$")
    r = inst.flux("watch", jobid, check=False)
    assert r.returncode == 128 + 9, (r.stdout, r.stderr)


def test_watch_job_canceled_before_it_ran(inst):
    jobid = _submit(inst, "--urgency=hold", "true")
    inst.flux("cancel", jobid)
    r = inst.flux("watch", jobid, check=False)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.splitlines() == [f"flux-watch: job {jobid} cancel"], r.stderr


def test_watch_unknown_id_one_line_error(inst):
    r = inst.flux("watch", "ƒ2", check=False)
    assert r.returncode == 1
    assert r.stderr == "flux-watch: ƒ2: no such job\n"
    assert r.stdout == ""
    # the known jobs named with it are still watched
    jobid = _submit(inst, "echo", "known")
    r = inst.flux("watch", "ƒ2", jobid, check=False)
    assert (r.returncode, r.stdout, r.stderr) == (1, "known\n", "flux-watch: ƒ2: no such job\n")


@pytest.mark.parametrize("args, message", [
    ([], "at least one job selection option is required"),
    (["not-a-job-id"], "invalid job id 'not-a-job-id'"),
    (["-f", "bogus"], "invalid filter 'bogus'"),
    (["-c", "-1", "-A"], "-c/--count=-1: must be >= 0"),
    (["--since", "tomorrow-ish"], "--since: invalid value 'tomorrow-ish'"),
])
def test_watch_bad_options(inst, args, message):
    r = inst.flux("watch", *args, check=False)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("flux-watch: error: ") and message in last, r.stderr
    assert "Traceback" not in r.stderr


def test_watch_selection_options(make_instance, tmp_path):
    inst = make_instance(size=1)
    assert inst.flux("watch", "-A").stderr == "flux-watch: No matching jobs\n"
    done = _submit(inst, "sh", "-c", "echo done-job")
    failed = _submit(inst, "sh", "-c", "echo failed-job; exit 4")
    for jobid in (done, failed):
        _wait_clean(inst, jobid)
    go = tmp_path / "go"
    running = _submit(inst, "sh", "-c", f"echo running-job; while [ ! -e {go} ]; do sleep 0.05; done; echo end")
    poll(lambda: inst.flux("jobs", "-n", "-o", "{state}", running).stdout.strip() == "RUN", timeout=60)
    r = inst.flux("watch", "-f", "failed", check=False)
    assert (r.returncode, r.stdout) == (4, "failed-job\n")
    r = inst.flux("watch", "--since=-1h", "-f", "completed")
    assert r.stdout == "done-job\n"
    active = subprocess.Popen(["flux", "watch", "-a"], env=inst.env, stdout=subprocess.PIPE, text=True)
    assert active.stdout.readline() == "running-job\n"  # watching it: now let it end
    go.touch()
    assert active.communicate(timeout=60)[0] == "end\n"
    assert active.returncode == 0
    r = inst.flux("watch", "--all", check=False)
    assert r.returncode == 4
    assert sorted(r.stdout.splitlines()) == ["done-job", "end", "failed-job", "running-job"], r.stdout
    r = inst.flux("watch", "-c", "1", "-A")  # the newest job only
    assert r.stdout == "running-job\nend\n"
    r = inst.flux("watch", "-A", done)
    assert r.stdout == "done-job\n"
    assert r.stderr == "flux-watch: filtering options ignored with a job id list\n"


def test_watch_progress_plain_lines_without_a_tty(inst):
    jobid = _submit(inst, "echo", "p")
    r = inst.flux("watch", "--progress", jobid)
    assert r.stdout == "p\n"
    lines = r.stderr.splitlines()  # the states, ending with the job complete
    assert lines and lines[-1].startswith("PD:0 R:0 CD:1 F:0 1/1 "), r.stderr


def test_watch_progress_bar_on_a_tty(inst):
    import os
    import pty

    jobid = _submit(inst, "echo", "on-a-tty")
    master, slave = pty.openpty()
    proc = subprocess.Popen(["flux", "watch", "--progress", jobid], env=inst.env, stdout=slave,
                            stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the watch exited and closed the tty
                break
            if not chunk:
                break
            out += chunk
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(master)
        proc.kill()
        proc.wait()
    text = out.decode(errors="replace")
    assert "on-a-tty" in text
    assert "PD:0   R:0   CD:1   F:0   " in text and "100.0%" in text, text
