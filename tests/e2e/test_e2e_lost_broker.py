"""A broker killed with SIGKILL: the instance notices, reports it, serves the rest,
and still shuts down."""

import os
import signal

import pytest

from flux_launch.testing import poll

pytestmark = pytest.mark.e2e


def test_lost_broker(make_instance):
    inst = make_instance(size=4)
    pids = inst.broker_pids()
    assert sorted(pids) == [0, 1, 2, 3]
    assert int(inst.flux("exec", "-r", "1", "flux", "getattr", "broker.pid").stdout) == pids[1]
    os.kill(pids[1], signal.SIGKILL)

    def uptime_reports_lost():
        r = inst.flux("uptime", check=False, timeout=20)
        return r if r.returncode == 0 and "lost: 1" in r.stdout else None

    r = poll(uptime_reports_lost)
    assert r, f"flux uptime never reported rank 1 lost:\n{inst.flux('uptime', check=False).stdout}\n{inst.log()}"
    assert "offline" in r.stdout
    assert "size 4" in r.stdout
    # rank 3 (child of 1) is cut off too: 2 offline, lost 1 and 3
    assert "2 offline (lost: 1,3)" in r.stdout, r.stdout

    status = inst.flux("overlay", "status", timeout=30).stdout
    lines = status.splitlines()
    assert lines[0].startswith("0 ") and lines[0].endswith("partial"), status
    assert any(line.endswith("1: lost") for line in lines), status
    assert any("2 " in line and line.endswith("full") for line in lines), status

    ok = inst.flux("exec", "-r", "0,2", "-l", "flux", "getattr", "rank", timeout=30)
    assert sorted(ok.stdout.splitlines()) == ["0: 0", "2: 2"]

    r = inst.flux("exec", "-r", "1", "true", check=False, timeout=30)
    assert r.returncode != 0
    assert "rank 1" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr

    r = inst.flux("ping", "-c", "1", "1", check=False, timeout=30)
    assert r.returncode == 1
    assert "rank 1" in r.stderr and "Traceback" not in r.stderr

    # rank 3 has lost its parent: it exits on its own
    def rank3_gone():
        try:
            os.kill(pids[3], 0)
        except ProcessLookupError:
            return True
        # still a process: maybe an unreaped zombie of flux start
        try:
            with open(f"/proc/{pids[3]}/stat") as f:
                return f.read().split(") ", 1)[1].startswith("Z")
        except OSError:
            return True

    assert poll(rank3_gone, 45.0), "rank 3 did not exit after losing its parent"

    assert inst.stop(timeout=30) == 0
    log = inst.log()
    assert "Traceback" not in log, log
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
