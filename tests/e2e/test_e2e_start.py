"""flux start: sizes, exit codes, labelled output, and nothing left behind."""

import os

import pytest

from flux_launch.testing import flux, wait_gone

pytestmark = pytest.mark.e2e



def test_exec_all_ranks_of_size4():
    # PYTHONUNBUFFERED makes `flux getattr` write "N" and "\n" separately: flux exec
    # must still keep each rank's lines whole.
    r = flux("start", "--test-size=4", "flux", "exec", "-r", "all", "flux", "getattr", "rank",
             env={"PYTHONUNBUFFERED": "1"})
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.split(), key=int) == ["0", "1", "2", "3"]
    assert "Traceback" not in r.stderr


def test_exec_labelled_output():
    r = flux("start", "--test-size=4", "flux", "exec", "-r", "all", "-l", "flux", "getattr", "rank")
    assert r.returncode == 0, r.stderr
    assert sorted(r.stdout.splitlines()) == ["0: 0", "1: 1", "2: 2", "3: 3"]


def test_test_size_1():
    r = flux("start", "--test-size=1", "sh", "-c", "flux getattr size; flux getattr rank")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["1", "0"]


def test_plain_start_is_size_1():
    r = flux("start", "flux", "getattr", "size")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "1"


def test_plain_start_default_shell_reads_stdin():
    r = flux("start", env={"SHELL": "/bin/sh"}, input="flux getattr size\nexit 3\n")
    assert r.returncode == 3, r.stderr
    assert r.stdout.strip() == "1"


def test_exit_code_propagates_and_no_broker_remains(tmp_path):
    info = tmp_path / "info"
    prog = (f"flux exec -r all -l flux getattr broker.pid > {info}; "
            f"flux getattr rundir >> {info}; exit 7")
    r = flux("start", "--test-size=4", "sh", "-c", prog)
    assert r.returncode == 7, r.stderr
    lines = info.read_text().splitlines()
    pids = {}
    for line in lines[:-1]:
        rank, _, pid = line.partition(": ")
        pids[int(rank)] = int(pid)
    assert sorted(pids) == [0, 1, 2, 3], lines
    assert len(set(pids.values())) == 4
    alive = [pid for pid in pids.values() if not wait_gone(pid)]
    assert alive == [], f"broker processes still alive after flux start exited: {alive}"
    rundir = lines[-1]
    assert rundir.startswith("/")
    assert not os.path.exists(rundir), f"flux start left its rundir {rundir} behind"


def test_exit_code_size1_singleton():
    r = flux("start", "sh", "-c", "exit 5")
    assert r.returncode == 5


def test_initial_program_not_found():
    r = flux("start", "--test-size=2", "no-such-command-xyz")
    assert r.returncode == 127
    assert "no-such-command-xyz" in r.stderr
    assert "Traceback" not in r.stderr


def test_clean_shutdown_logs_no_error():
    """A normal end of the instance loses no rank and prints no traceback."""
    for _ in range(5):
        r = flux("start", "--test-size=4", "true")
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr, r.stderr
        assert "lost" not in r.stderr, r.stderr


def test_exec_command_killed_at_instance_exit(tmp_path):
    """A command still running under flux exec when the initial program exits does not
    outlive the instance."""
    pidfile = tmp_path / "pid"
    prog = (f'flux exec -r 1 sh -c "echo \\$\\$ > {pidfile}; exec sleep 100" 2>/dev/null & '
            f'n=0; while [ ! -s {pidfile} ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done; exit 0')
    r = flux("start", "--test-size=2", "sh", "-c", prog)
    assert r.returncode == 0, r.stderr
    pid = int(pidfile.read_text())
    assert wait_gone(pid), f"sleep (pid {pid}) started by flux exec outlived the instance"


@pytest.mark.parametrize("accel", ["c", "py"])
def test_labelled_exec_on_each_backend(accel):
    r = flux("start", "--test-size=2", "flux", "exec", "-r", "all", "-l", "printf", "a\\nb\\npartial",
             env={"FLUX_LAUNCH_ACCEL": accel})
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert sorted(lines) == ["0: a", "0: b", "0: partial", "1: a", "1: b", "1: partial"]
    assert lines.index("0: a") < lines.index("0: b") < lines.index("0: partial")


def test_start_puts_its_own_flux_first_on_path():
    """An instance started by a flux that is not on PATH still runs that flux inside."""
    r = flux("start", "--test-size=2", "sh", "-c", "command -v flux; flux getattr size",
             env={"PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    where, size = r.stdout.split()
    assert os.path.dirname(where) == os.path.dirname(__import__("sys").executable)
    assert size == "2"
