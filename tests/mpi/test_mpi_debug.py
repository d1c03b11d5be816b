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
