"""A lost rank leaves scheduling: ``flux resource list`` shows it down and no new job
is placed on it; the jobs go to the ranks that are left."""

import os
import signal

import pytest

from flux_launch.testing import poll

pytestmark = pytest.mark.e2e


def _resource_rows(inst):
    """``flux resource list`` as {state: nnodes}."""
    out = inst.flux("resource", "list", timeout=20).stdout
    return {line.split()[0]: int(line.split()[1]) for line in out.splitlines()[1:]}


def test_lost_rank_is_down_and_skipped(make_instance):
    inst = make_instance(size=3)
    pids = inst.broker_pids()
    os.kill(pids[1], signal.SIGKILL)
    assert poll(lambda: "lost: 1" in inst.flux("uptime", check=False, timeout=20).stdout), inst.log()

    def down():
        rows = _resource_rows(inst)
        return rows if rows.get("down") == 1 else None

    rows = poll(down, 10) or _resource_rows(inst)
    assert rows.get("down") == 1 and rows.get("free") == 2, rows

    ids = [inst.flux("submit", "-N1", "sleep", "0.3").stdout.strip() for _ in range(6)]
    for jobid in ids:
        inst.flux("job", "wait-event", "-t", "30", jobid, "clean", timeout=40)
    out = inst.flux("jobs", "-n", "-o", "{id} {ranks} {result}", *ids).stdout
    placed = {}
    for line in out.splitlines():
        jobid, ranks, result = line.split()
        placed[jobid] = ranks
        assert result == "COMPLETED", out
    assert sorted(placed) == sorted(ids), out
    assert set(placed.values()) == {"0", "2"}, out
    assert inst.stop(timeout=30) == 0
