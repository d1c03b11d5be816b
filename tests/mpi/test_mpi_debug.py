"""An MPICH job on 2 of 4 brokers under a debugger: stopped in exec, its tasks are
listed by flux job hostpids and by gdb in the MPIR proctable of flux job attach
--debug, and they run (and wire up through PMI) once the debugger continues them."""

import json
import os
import re
import shutil

import pytest

from flux_launch.proto import rv1
from flux_launch.testing import BIN, poll

pytestmark = [pytest.mark.mpi, pytest.mark.e2e]

HELLO = re.compile(r"hello from rank (\d+) of (\d+) on \S+")
GDB = shutil.which("gdb")
GDB_SCRIPT = """set breakpoint pending on
set pagination off
break MPIR_Breakpoint
run
print MPIR_proctable_size
python
n = int(gdb.parse_and_eval("MPIR_proctable_size"))
for i in range(n):
    e = gdb.parse_and_eval("MPIR_proctable[%d]" % i)
    pid = int(e["pid"])
    with open("/proc/%d/stat" % pid) as f:
        st = f.read()
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        cmd = f.read().split(b"\\0")[0].decode()
    print("TASK %d pid=%d state=%s cmd=%s" % (i, pid, st[st.rindex(")") + 2], cmd))
end
continue
"""


def _state(pid):
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    return st[st.rindex(")") + 2]


def _ranks(out, n):
    found = sorted((int(r), int(s)) for r, s in HELLO.findall(out))
    return found == [(r, n) for r in range(n)]


def test_mpich_held_in_exec_until_attach_debug_emulate(inst4, mpich):
    jobid = inst4.flux("submit", "-N2", "-n4", "-o", "stop-tasks-in-exec", mpich["hello"]).stdout.strip()
    out = inst4.flux("job", "hostpids", jobid, timeout=60).stdout.strip()
    pids = [int(pair.rpartition(":")[2]) for pair in out.split(",")]
    assert len(pids) == 4, out
    for pid in pids:
        assert poll(lambda pid=pid: _state(pid) in "tT", timeout=30), f"{pid}: {_state(pid)}"
        assert os.readlink(f"/proc/{pid}/exe") == os.path.realpath(mpich["hello"])
    R = json.loads(inst4.flux("job", "info", jobid, "R").stdout)
    assert len(rv1.decode(R).ranks) == 2, R  # two brokers of four
    res = inst4.flux("job", "attach", "--debug-emulate", jobid, timeout=120)
    assert _ranks(res.stdout, 4), res.stdout + res.stderr


@pytest.mark.skipif(GDB is None, reason="gdb is not installed (ci/setup.sh installs it)")
def test_gdb_reads_the_mpich_proctable(inst4, mpich, tmp_path):
    jobid = inst4.flux("submit", "-N2", "-n4", "-o", "stop-tasks-in-exec", mpich["hello"]).stdout.strip()
    script = tmp_path / "mpir.gdb"
    script.write_text(GDB_SCRIPT)
    res = inst4.run(GDB, "-q", "-batch", "-nx", "-x", str(script), "--args", os.path.join(BIN, "python"),
                    os.path.join(BIN, "flux"), "job", "attach", "--debug", jobid, timeout=180, check=False)
    out = res.stdout + res.stderr
    assert re.search(r"^\$1 = 4$", res.stdout, re.M), out
    tasks = re.findall(r"^TASK (\d) pid=(\d+) state=(\S) cmd=(\S+)$", res.stdout, re.M)
    assert [t[0] for t in tasks] == ["0", "1", "2", "3"], out
    assert all(t[2] in "tT" and t[3] == mpich["hello"] for t in tasks), out  # held until gdb continued
    assert _ranks(res.stdout, 4), out  # then MPI_Init wired the four up
    assert "exited normally" in out, out


def test_tools_colocated_one_per_node_see_the_mpich_tasks(inst4, mpich):
    """Issue 15's acceptance: an MPICH job on 2 of 4 brokers (held in exec, so its
    tasks stay put); a tool started one per node with flux run --colocate, and one
    with flux exec --jobid, finds each task of hostpids on its host in /proc; then
    the job is continued and completes."""
    jobid = inst4.flux("submit", "-N2", "-n4", "-o", "stop-tasks-in-exec", mpich["hello"]).stdout.strip()
    pairs = inst4.flux("job", "hostpids", jobid, timeout=60).stdout.strip().split(",")
    assert len(pairs) == 4, pairs
    # the test's brokers share one hostname: each tool checks every pid of its host
    check = ('echo "tool $FLUX_TARGET_JOBID $(flux getattr rank)"; for hp in $PAIRS; do h=${hp%%:*}; '
             'p=${hp##*:}; [ "$h" = "$(hostname)" ] || continue; '
             'test -d /proc/$p && echo "seen $p" || echo "missing $p"; done')
    env = {"PAIRS": " ".join(pairs)}
    tool = inst4.flux("run", f"--colocate={jobid}", "--env=PAIRS", "sh", "-c", check, env=env, timeout=60)
    lines = tool.stdout.splitlines()
    R = json.loads(inst4.flux("job", "info", jobid, "R").stdout)
    job_ranks = sorted(rv1.decode(R).ranks)
    tools = sorted(int(line.split()[2]) for line in lines if line.startswith("tool "))
    assert tools == job_ranks and all(line.split()[1] == jobid for line in lines if line.startswith("tool ")), lines
    seen = sorted(line.split()[1] for line in lines if line.startswith("seen "))
    assert not any(line.startswith("missing") for line in lines), lines
    pids = [p.rpartition(":")[2] for p in pairs]
    assert set(seen) == set(pids) and len(seen) in (len(pids), len(pids) * len(tools)), (seen, pairs)
    ranks = inst4.flux("exec", f"--jobid={jobid}", "sh", "-c", 'echo "$FLUX_JOB_ID"', timeout=60).stdout.split()
    assert ranks == [jobid, jobid], ranks  # one per node of the job
    res = inst4.flux("job", "attach", "--debug-emulate", jobid, timeout=120)
    assert _ranks(res.stdout, 4), res.stdout
