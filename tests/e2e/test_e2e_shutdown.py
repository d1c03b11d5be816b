"""A normal shutdown of an instance with work in flight (running jobs with output,
watches open on every rank, attached clients, flux exec processes) logs no Python
traceback, nor asyncio's warning of a child process reaped after its loop closed."""

import os
import subprocess

import pytest

from flux_launch.testing import BIN

pytestmark = pytest.mark.e2e

FLUX = os.path.join(BIN, "flux")


def _rank_uris(inst):
    out = inst.flux("exec", "-r", "all", "-l", "flux", "getattr", "local-uri").stdout
    return dict((int(r), uri) for r, _, uri in (line.partition(": ") for line in out.splitlines()))


@pytest.mark.parametrize("attempt", range(3))
def test_shutdown_with_work_in_flight_logs_no_traceback(make_instance, attempt):
    inst = make_instance(size=4)
    uris = _rank_uris(inst)
    clients = []
    try:
        jobid = inst.flux("submit", "-N4", "-n4", "sh", "-c", "seq 100000; exec sleep 60").stdout.strip()
        inst.flux("submit", "-N2", "true")  # pending behind it
        inst.flux("job", "wait-event", jobid, "start", timeout=30)
        for rank, uri in uris.items():  # clients of every broker, with watches open
            env = dict(inst.env, FLUX_URI=uri)
            for cmd in (["kvs", "get", "-w", "-W", f"sd.key{rank}"], ["job", "attach", jobid],
                        ["job", "eventlog", "-F", jobid]):
                clients.append(subprocess.Popen([FLUX, *cmd], stdout=subprocess.DEVNULL,
                                                stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, env=env))
        # processes of flux exec on other ranks, killed at shutdown
        clients.append(subprocess.Popen([FLUX, "exec", "-r", "1-3", "flux", "kvs", "get", "-w", "-W", "sd.exec"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL, env=inst.env))
        # every watch is registered once the key it waits for is seen by all of them
        inst.flux("kvs", "put", *(f"sd.key{r}=1" for r in uris), "sd.exec=1")
        assert inst.stop(timeout=60) == 0, inst.log()
    finally:
        for proc in clients:
            proc.kill()
            proc.wait()
    log = inst.log()
    assert "Traceback" not in log and "Exception in callback" not in log, log
    assert "is closed" not in log, log  # asyncio: a child process reaped after its loop closed
