"""Debugger support in a real 2-broker instance: -o stop-tasks-in-exec holds every
task stopped until flux job attach --debug(-emulate) continues it, flux job
hostpids, and gdb (Debian's) reading the MPIR proctable of flux job attach
--debug and attaching to rank 0 by the pid it found there."""

import os
import re
import shutil
import subprocess

import pytest

from flux_launch.testing import BIN, Instance, poll, wait_gone

pytestmark = pytest.mark.e2e

GDB = shutil.which("gdb")
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed (ci/setup.sh installs it)")

PROG = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* a frame gdb's backtrace must show */
__attribute__((noinline)) void wait_here(int tenths)
{
    for (int i = 0; i < tenths; i++)
        usleep(100000);
}

int main(int argc, char **argv)
{
    wait_here(argc > 1 ? atoi(argv[1]) * 10 : 0);
    printf("done %s\n", getenv("FLUX_TASK_RANK"));
    return 0;
}
"""

# gdb runs `flux job attach --debug ID` and stops in MPIR_Breakpoint: it prints the
# table's size and pids, then (python) each task's state and command as /proc shows
# them at that moment, while the tasks still wait for the debugger.
GDB_MPIR = """set breakpoint pending on
set pagination off
set confirm off
break MPIR_Breakpoint
run
print MPIR_proctable_size
print MPIR_debug_state
print MPIR_being_debugged
{prints}
python
n = int(gdb.parse_and_eval("MPIR_proctable_size"))
for i in range(n):
    e = gdb.parse_and_eval("MPIR_proctable[%d]" % i)
    pid = int(e["pid"])
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        cmd = f.read().split(b"\\0")[0].decode()
    print("TASK %d pid=%d host=%s exe=%s state=%s cmd=%s" % (
        i, pid, e["host_name"].string(), e["executable_name"].string(), st[st.rindex(")") + 2], cmd))
end
{after}
"""
TASK = re.compile(r"^TASK (\d+) pid=(\d+) host=(\S+) exe=(\S+) state=(\S) cmd=(\S+)$", re.M)


@pytest.fixture(scope="module")
def inst():
    with Instance(size=2) as i:
        yield i


@pytest.fixture(scope="module")
def prog(tmp_path_factory):
    d = tmp_path_factory.mktemp("dbg")
    src = d / "prog.c"
    src.write_text(PROG)
    out = str(d / "prog")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler: ci/setup.sh installs gcc")
    subprocess.run([cc, "-g", "-O0", "-o", out, str(src)], check=True, capture_output=True, text=True)
    return out


def state(pid):
    """The process state letter of /proc/PID/stat (``T`` stopped, ``t`` traced)."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    return st[st.rindex(")") + 2]


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().split(b"\0")[0].decode()


def submit(inst, *args):
    return inst.flux("submit", *args).stdout.strip()


def hostpids(inst, jobid, *opts):
    out = inst.flux("job", "hostpids", *opts, jobid, timeout=60).stdout.strip()
    return [(h, int(p)) for h, _, p in (pair.rpartition(":") for pair in out.split(","))]


def wait_clean(inst, jobid):
    inst.flux("job", "wait-event", "-t", "60", jobid, "clean", timeout=90)


def task_exit_pids(inst, jobid):
    """{rank: pid} from the exec eventlog's shell.task-exit events (the shells' own record)."""
    out = inst.flux("job", "eventlog", "-f", "json", "-p", "exec", jobid).stdout
    import json

    evs = [json.loads(line) for line in out.splitlines() if line.strip()]
    return {e["context"]["rank"]: e["context"]["pid"] for e in evs if e["name"] == "shell.task-exit"}


def test_stop_tasks_in_exec_holds_tasks_until_attach_debug_emulate(inst, prog):
    jobid = submit(inst, "-N2", "-n4", "-o", "stop-tasks-in-exec", prog)
    pairs = hostpids(inst, jobid)
    assert len(pairs) == 4, pairs
    for _host, pid in pairs:
        assert poll(lambda pid=pid: state(pid) in "tT", timeout=30), f"task {pid} not stopped: {state(pid)}"
        assert cmdline(pid) == prog  # stopped after its exec: its own program
    exec_log = inst.flux("job", "eventlog", "-p", "exec", jobid).stdout
    assert "sync=true" in exec_log, exec_log  # shell.start tells the front end the tasks wait
    assert "shell.task-exit" not in exec_log, exec_log
    assert all(state(pid) in "tT" for _h, pid in pairs)  # still held: nobody continued them
    res = inst.flux("job", "attach", "--debug-emulate", jobid, timeout=60)
    assert sorted(res.stdout.splitlines()) == [f"done {r}" for r in range(4)], res.stdout + res.stderr
    # continued, they exited and were reaped by their shells like any task
    assert task_exit_pids(inst, jobid) == {r: pid for r, (_h, pid) in enumerate(pairs)}
    assert inst.flux("job", "status", jobid, check=False).returncode == 0


def test_hostpids_of_a_running_job(inst, tmp_path):
    jobid = submit(inst, "-N2", "-n4", "sh", "-c", f'echo $FLUX_TASK_RANK > {tmp_path}/$$; exec sleep 300')
    try:
        pairs = hostpids(inst, jobid)
        assert len(pairs) == 4
        for rank, (host, pid) in enumerate(pairs):  # in task rank order
            assert poll(lambda pid=pid: (tmp_path / str(pid)).exists() and cmdline(pid) == "sleep", timeout=30)
            assert (tmp_path / str(pid)).read_text().strip() == str(rank)
            assert host == os.uname().nodename
        lines = inst.flux("job", "hostpids", "-d", "\\n", jobid).stdout.splitlines()
        assert lines == [f"{h}:{p}" for h, p in pairs]
        picked = inst.flux("job", "hostpids", "-r", "1,3", jobid).stdout.strip()
        assert picked == ",".join(f"{h}:{p}" for h, p in (pairs[1], pairs[3]))
    finally:
        inst.flux("cancel", jobid)
    wait_clean(inst, jobid)
    r = inst.flux("job", "hostpids", jobid, check=False)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "not running" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = inst.flux("job", "hostpids", "123456789", check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no such job" in r.stderr, r.stderr
    r = inst.flux("job", "attach", "--debug-emulate", jobid, check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "not running" in r.stderr, r.stderr


def test_hostpids_waits_for_a_pending_job_up_to_its_timeout(inst):
    jobid = submit(inst, "--urgency=hold", "true")
    try:
        r = inst.flux("job", "hostpids", "-t", "0.3", jobid, check=False)
        assert r.returncode == 1 and r.stdout == "", r
        assert r.stderr.count("\n") == 1 and "timed out waiting" in r.stderr, r.stderr
        r = inst.flux("job", "hostpids", "-r", "nope", jobid, check=False)
        assert r.returncode == 2 and "--ranks=nope" in r.stderr, r.stderr
    finally:
        inst.flux("cancel", jobid)
    wait_clean(inst, jobid)


@pytest.mark.parametrize("how", ["cancel", "SIGKILL"])
def test_a_held_job_can_be_cancelled_or_killed(inst, prog, how):
    jobid = submit(inst, "-N2", "-n2", "-o", "stop-tasks-in-exec", prog, "300")
    pairs = hostpids(inst, jobid)
    assert all(poll(lambda pid=pid: state(pid) in "tT", timeout=30) for _h, pid in pairs)
    if how == "cancel":
        inst.flux("cancel", jobid)
    else:
        inst.flux("job", "kill", "-s", "SIGKILL", jobid)
    wait_clean(inst, jobid)
    for _h, pid in pairs:
        assert wait_gone(pid), f"task {pid} still there: {state(pid)}"
    assert set(task_exit_pids(inst, jobid)) == {0, 1}  # both reaped and reported


def _gdb_attach_debug(inst, jobid, script, tmp_path, timeout=120):
    path = tmp_path / "mpir.gdb"
    path.write_text(script)
    return inst.run(GDB, "-q", "-batch", "-nx", "-x", str(path), "--args", os.path.join(BIN, "python"),
                    os.path.join(BIN, "flux"), "job", "attach", "--debug", jobid, timeout=timeout, check=False)


@needs_gdb
def test_gdb_reads_the_proctable_of_attach_debug(inst, prog, tmp_path):
    """gdb stops flux job attach --debug in MPIR_Breakpoint: the table has every
    task, stopped in exec, and continuing gdb lets the job run to its end."""
    jobid = submit(inst, "-N2", "-n2", "-o", "stop-tasks-in-exec", prog)
    prints = "\n".join(f"print MPIR_proctable[{i}].pid" for i in range(2))
    res = _gdb_attach_debug(inst, jobid, GDB_MPIR.format(prints=prints, after="continue"), tmp_path)
    out = res.stdout + res.stderr
    assert "Breakpoint 1, " in out and "MPIR_Breakpoint" in out, out
    values = re.findall(r"^\$\d+ = (\d+)$", res.stdout, re.M)
    assert values[:3] == ["2", "1", "1"], out  # size, MPIR_DEBUG_SPAWNED, being debugged
    tasks = TASK.findall(res.stdout)
    assert [int(t[0]) for t in tasks] == [0, 1], out
    pids = [int(t[1]) for t in tasks]
    assert values[3:5] == [str(p) for p in pids], out
    for _i, _pid, host, exe, st, cmd in tasks:
        assert st in "tT" and cmd == prog and exe == prog and host == os.uname().nodename, out
    assert sorted(line for line in res.stdout.splitlines() if line.startswith("done")) == ["done 0", "done 1"], out
    assert "exited normally" in out, out
    assert task_exit_pids(inst, jobid) == dict(enumerate(pids))  # those were the job's tasks


@needs_gdb
def test_attach_debug_to_a_running_job_and_gdb_backtrace_of_rank0(inst, prog, tmp_path):
    """A job started without stop-in-exec: attach --debug still fills the table (its
    tasks run on: no SIGCONT needed); a gdb batch script attaches to rank 0 by the
    pid found there and prints its backtrace."""
    jobid = submit(inst, "-N2", "-n2", prog, "300")
    try:
        prints = "\n".join(f"print MPIR_proctable[{i}].pid" for i in range(2))
        res = _gdb_attach_debug(inst, jobid, GDB_MPIR.format(prints=prints, after="kill"), tmp_path)
        out = res.stdout + res.stderr
        tasks = TASK.findall(res.stdout)
        assert [int(t[0]) for t in tasks] == [0, 1], out
        assert all(t[4] in "SR" and t[5] == prog for t in tasks), out  # running, not held
        pid0 = int(tasks[0][1])
        assert [p for _h, p in hostpids(inst, jobid)] == [int(t[1]) for t in tasks]
        assert poll(lambda: state(pid0) == "S", timeout=30)  # in wait_here's usleep
        bt = tmp_path / "bt.gdb"
        bt.write_text(f"set pagination off\nattach {pid0}\nbacktrace\ndetach\nquit\n")
        res = inst.run(GDB, "-q", "-batch", "-nx", "-x", str(bt), timeout=120, check=False)
        out = res.stdout + res.stderr
        frames = [line for line in res.stdout.splitlines() if line.startswith("#")]
        assert any(" wait_here " in f for f in frames) and any(" main " in f for f in frames), out
        assert state(pid0) in "SR"  # detached: it runs on
    finally:
        inst.flux("cancel", jobid)
    wait_clean(inst, jobid)
