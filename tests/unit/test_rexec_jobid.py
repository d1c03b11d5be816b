"""``rexec.exec`` with ``jobid`` (``flux exec --jobid``) on one broker, in process:
the job's environment, tmpdir and cwd; a job without a shell here is ESRCH; a guest
runs tools only in their own job (rank 0's ``job-manager.target`` decides) and
signals only their own tools; nothing is started for a refused request."""

import asyncio
import errno
import os

from fake_broker import ServiceBroker

from flux_launch.broker.rexec import RexecServer
from flux_launch.core.jobid import JobID

OWNER = 1000
GUEST = 2000
JOBID = 123456789


class Broker(ServiceBroker):
    owner = OWNER

    def __init__(self, rundir, job_owner):
        super().__init__()
        self.attrs = {"rundir": rundir, "local-uri": f"local://{rundir}/local-0"}
        self.job_owner = job_owner
        self.asked = []

    def child_env(self, env=None):
        return dict(env or {}, PATH=os.environ["PATH"], FLUX_URI=self.attrs["local-uri"])

    def rpc(self, topic, payload=None, nodeid=-1, callback=None, streaming=False):
        """rank 0's job-manager.target, as it answers for a guest."""
        self.asked.append((topic, payload))
        ok = payload["userid"] == self.job_owner
        asyncio.get_running_loop().call_soon(callback, {} if ok else None, 0 if ok else errno.EPERM,
                                             None if ok else "permission denied: not your job")


def _exec(server, broker, payload, userid, tag=1):
    """Deliver a request and let the server run until it answered its last response."""
    async def go():
        broker.responses.clear()
        broker.request("rexec.exec", payload, tag=tag, userid=userid)
        for _ in range(500):
            await asyncio.sleep(0.01)
            if broker.responses and broker.responses[-1][2]:  # ENODATA or an error ends it
                return list(broker.responses)
        raise AssertionError(f"no end: {broker.responses}")
    return asyncio.run(go())


def _server(tmp_path, job_owner=GUEST):
    broker = Broker(str(tmp_path), job_owner)
    server = RexecServer(broker)
    broker.register("rexec", server.service)
    jobspec = {"attributes": {"system": {"environment": {"MARK": "m1", "PMI_RANK": "9"}, "cwd": str(tmp_path)}}}
    server.jobs[JOBID] = {"id": JOBID, "jobspec": jobspec}
    return server, broker


CMD = ["sh", "-c", 'echo "$MARK ${PMI_RANK:-none} ${CALLER:-none} $FLUX_JOB_ID $FLUX_JOB_TMPDIR $(pwd)"']


def test_tool_gets_the_jobs_environment(tmp_path):
    server, broker = _server(tmp_path)
    out = _exec(server, broker, {"cmd": CMD, "jobid": JOBID, "env": {"CALLER": "x"}}, OWNER)
    text = "".join(p["data"] for _t, p, _e, _s in out if p and p.get("type") == "output")
    jid = JobID(JOBID)
    assert text == f"m1 none none {jid} {tmp_path}/jobtmp-0-{jid.f58plain} {tmp_path}\n"
    assert out[-1][2] == errno.ENODATA and broker.asked == []  # the owner is not asked about


def test_job_without_a_shell_here(tmp_path):
    server, broker = _server(tmp_path)
    out = _exec(server, broker, {"cmd": ["true"], "jobid": JOBID + 1}, OWNER)
    assert len(out) == 1 and out[0][2] == errno.ESRCH and "is not running on rank 0" in out[0][3]


def test_guest_in_own_job(tmp_path):
    server, broker = _server(tmp_path, job_owner=GUEST)
    out = _exec(server, broker, {"cmd": CMD, "jobid": JOBID}, GUEST)
    assert out[0][1]["type"] == "started" and out[-1][2] == errno.ENODATA
    assert broker.asked == [("job-manager.target", {"id": JOBID, "userid": GUEST})]


def test_guest_refused_nothing_started(tmp_path):
    server, broker = _server(tmp_path, job_owner=OWNER)
    out = _exec(server, broker, {"cmd": ["touch", str(tmp_path / "x")], "jobid": JOBID}, GUEST)
    assert len(out) == 1 and out[0][2] == errno.EPERM and "not your job" in out[0][3]
    out = _exec(server, broker, {"cmd": ["touch", str(tmp_path / "x")]}, GUEST)  # no job: the owner's service
    assert len(out) == 1 and out[0][2] == errno.EPERM
    assert not (tmp_path / "x").exists() and server.procs == {}


def test_guest_cannot_signal_anothers_tool(tmp_path):
    server, broker = _server(tmp_path)

    async def go():
        broker.request("rexec.exec", {"cmd": ["sleep", "30"], "jobid": JOBID}, tag=1, userid=OWNER)
        for _ in range(500):
            await asyncio.sleep(0.01)
            if server.procs:
                break
        pid = next(iter(server.procs))
        refused = broker.request("rexec.kill", {"pid": pid, "signum": 9}, tag=2, userid=GUEST)
        server._job_ended(JOBID)  # the job's shell exits here: its tools are killed
        for _ in range(500):
            await asyncio.sleep(0.01)
            if broker.responses[-1][2] == errno.ENODATA:
                break
        return refused

    refused = asyncio.run(go())
    assert refused[0][2] == errno.EPERM and "not your process" in refused[0][3]
    finished = [p for _t, p, _e, _s in broker.responses if p and p.get("type") == "finished"]
    assert finished[0]["status"] == 128 + 9
