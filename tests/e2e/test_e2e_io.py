"""Job I/O: labelled lines in order, stdin to all tasks, to some or from a file,
output to files from templates, and bad paths."""

import base64
import glob
import os
import subprocess
import time

import pytest

from flux_launch.testing import BIN, Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst2():
    with Instance(size=2) as inst:
        yield inst


def test_labelled_lines_each_rank_in_order(inst2):
    r = inst2.flux("run", "-n2", "-l", "sh", "-c", "seq 3")
    lines = r.stdout.splitlines()
    assert sorted(lines) == ["0: 1", "0: 2", "0: 3", "1: 1", "1: 2", "1: 3"]
    for rank in "01":
        mine = [ln for ln in lines if ln.startswith(f"{rank}: ")]
        assert mine == [f"{rank}: 1", f"{rank}: 2", f"{rank}: 3"]


def test_stdin_to_all_tasks_or_to_rank_0(inst2):
    r = inst2.flux("run", "-n3", "cat", input="a\nb\n")
    assert sorted(r.stdout.splitlines()) == ["a", "a", "a", "b", "b", "b"]
    r = inst2.flux("run", "-n3", "--input=0", "cat", input="a\nb\n")
    assert r.stdout.splitlines() == ["a", "b"]


def test_stdin_from_a_file_for_every_task(inst2, tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("x\ny\n")
    r = inst2.flux("run", "-N2", "-n2", "-l", f"--input={path}", "cat")
    assert sorted(r.stdout.splitlines()) == ["0: x", "0: y", "1: x", "1: y"]


def test_stdin_redirected_from_a_regular_file_reaches_the_tasks(inst2, tmp_path):
    """`flux run cat < FILE`: a regular file as stdin (epoll refuses those) is forwarded whole."""
    path = tmp_path / "in.txt"
    path.write_text("".join(f"line {i}\n" for i in range(20000)))
    with open(path) as stdin:
        r = subprocess.run([os.path.join(BIN, "flux"), "run", "-n2", "-l", "cat"], stdin=stdin,
                           capture_output=True, text=True,
                           env=inst2.env, timeout=60)
    assert r.returncode == 0, r.stderr
    for rank in "01":
        mine = [ln for ln in r.stdout.splitlines() if ln.startswith(f"{rank}: ")]
        assert mine == [f"{rank}: line {i}" for i in range(20000)]


def test_missing_input_file_fails_the_job_naming_it(inst2):
    r = inst2.flux("run", "--input=/nonexistent/in.txt", "cat", check=False)
    assert r.returncode != 0 and "/nonexistent/in.txt" in r.stderr, r.stderr


def test_output_file_per_task(inst2, tmp_path):
    inst2.flux("run", "-N2", "-n4", f"--cwd={tmp_path}", "--output=out.{{taskid}}", "sh", "-c",
               "echo task $FLUX_TASK_RANK")
    files = sorted(os.path.basename(p) for p in glob.glob(str(tmp_path / "out.*")))
    assert files == ["out.0", "out.1", "out.2", "out.3"]
    assert (tmp_path / "out.2").read_text() == "task 2\n"


def test_one_output_file_for_the_job(inst2, tmp_path):
    r = inst2.flux("run", "-N2", "-n4", f"--cwd={tmp_path}", "--output=out.{{id}}", "sh", "-c",
                   "echo task $FLUX_TASK_RANK; echo err >&2")
    assert r.stdout == ""
    files = glob.glob(str(tmp_path / "out.*"))
    assert len(files) == 1
    lines = sorted(open(files[0]).read().splitlines())
    assert lines == ["err"] * 4 + [f"task {i}" for i in range(4)]


def test_error_file_apart_from_output(inst2, tmp_path):
    inst2.flux("run", "-n1", f"--output={tmp_path}/o.txt", f"--error={tmp_path}/e.txt", "sh", "-c",
               "echo out; echo err >&2")
    assert (tmp_path / "o.txt").read_text() == "out\n" and (tmp_path / "e.txt").read_text() == "err\n"


def test_unwritable_output_path_fails_naming_it(inst2):
    r = inst2.flux("run", "--output=/nonexistent/dir/x", "true", check=False)
    assert r.returncode != 0
    assert "/nonexistent/dir/x" in r.stderr and "exception" not in r.stdout, r.stderr
    assert inst2.flux("run", "true").returncode == 0  # the instance goes on


def test_output_over_the_limit_is_truncated_with_a_message(inst2):
    r = inst2.flux("run", "-o", "output.limit=10k", "sh", "-c", "seq 100000")
    assert len(r.stdout.encode()) == 10240
    assert "output limit of 10240 bytes exceeded" in r.stderr, r.stderr
    assert inst2.flux("run", "echo", "ok").stdout == "ok\n"  # the instance stays responsive


def test_output_written_before_a_task_is_killed_is_all_there(inst2, tmp_path):
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(3_000_000))
    expected = base64.encodebytes(data.read_bytes()).decode()  # 76-column lines
    r = inst2.flux("run", "sh", "-c", f"base64 -w 76 {data}; kill -9 $$", check=False, timeout=120)
    assert r.returncode == 137
    assert r.stdout == expected


def test_output_stays_when_the_shell_is_killed(inst2):
    """A shell killed by SIGKILL: what it forwarded stays, the job gets an exec
    exception, and a later attach shows the output."""
    jobid = inst2.flux("submit", "sh", "-c", "echo shell=$PPID; seq 1000; sleep 60").stdout.strip()
    deadline = time.monotonic() + 30
    shell_pid = None
    while shell_pid is None and time.monotonic() < deadline:
        out = inst2.flux("job", "info", jobid, "guest.output", check=False).stdout
        if "1000\\n" in out:
            shell_pid = int(out.split("shell=")[1].split("\\n")[0])
        else:
            time.sleep(0.05)
    assert shell_pid, "the job's output never arrived"
    os.kill(shell_pid, 9)
    inst2.flux("job", "wait-event", "-t", "30", jobid, "clean")
    assert 'type="exec"' in inst2.flux("job", "eventlog", jobid).stdout
    r = inst2.flux("job", "attach", jobid, check=False)
    assert r.returncode != 0
    assert r.stdout.splitlines() == [f"shell={shell_pid}"] + [str(i) for i in range(1, 1001)]
