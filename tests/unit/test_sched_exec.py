"""The job manager's scheduling and exec path, on a fake broker (no processes): one
job's failure to start raises an exec exception on that job and frees what it held,
and the loop goes on; lost ranks go down in the pool and come back up."""

import logging

import pytest

from flux_launch.proto.jobspec import validate
from flux_launch.services.job_manager import JobManager
from flux_launch.services.kvs.service import KVSError
from flux_launch.services.sched.policy import Scheduler
from flux_launch.services.sched.pool import Pool


class FakeLoop:
    def __init__(self):
        self.soon = []

    def call_soon(self, fn, *args):
        self.soon.append((fn, args))

    def call_later(self, delay, fn, *args):
        return _Handle()

    def run(self):
        while self.soon:
            fn, args = self.soon.pop(0)
            fn(*args)


class _Handle:
    def cancel(self):
        pass


class FakeBroker:
    owner = 1000
    size = 3
    rank = 0
    parent_R = None

    def __init__(self):
        self.loop = FakeLoop()
        self.on_run = []
        self.subscribers = []
        self.lost = set()
        self.responses = []
        self.rpcs = []
        self.services = {}

    def register(self, name, fn):
        self.services[name] = fn

    def request(self, msg):
        """Deliver ``msg`` to the service its topic names, as the router does."""
        self.services[msg["topic"].split(".", 1)[0]](msg)

    def rpc(self, topic, payload, nodeid, callback=None, streaming=False):
        self.rpcs.append((topic, payload, nodeid, callback))

    def respond(self, msg, payload):
        self.responses.append((msg, payload))

    def respond_error(self, msg, errnum, text=""):
        self.responses.append((msg, {"errnum": errnum, "errstr": text}))


class FakeKVS:
    def __init__(self):
        self.ops = []

    def lookup(self, key):
        raise KVSError(2, f"{key}: no such key")

    def listdir(self, key):
        return []

    def commit(self, ops):
        self.ops.extend(ops)

    def end_watches(self, path):
        pass


def _jobspec(nnodes=1, cores=1):
    return validate({"version": 1, "resources": [{"type": "node", "count": nnodes, "with": [
        {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": cores}]}]}],
        "tasks": [{"command": ["true"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": 0}}})


@pytest.fixture
def jm():
    broker = FakeBroker()
    jm = JobManager(broker, FakeKVS())
    ranks = {r: {"cores": [0, 1], "gpus": [], "hostname": f"node{r}", "properties": []} for r in range(3)}
    jm.sched = Scheduler(Pool(ranks))
    jm.hostnames = {r: f"node{r}" for r in range(3)}
    jm.pool_ready = True
    return jm


def _submit(jm, nnodes=1, cores=1):
    msg = {"topic": "job-ingest.submit", "userid": 1000, "rolemask": 1}
    js = _jobspec(nnodes, cores)
    jm.broker.request({**msg, "payload": {"jobspec": js}})
    payload = jm.broker.responses[-1][1]
    assert "id" in payload, payload
    return jm.jobs[payload["id"]]


def _lost(jm, ranks):
    ev = {"topic": "overlay.lost", "payload": {"ranks": ranks}}
    for prefix, fn in jm.broker.subscribers:
        if "overlay.lost".startswith(prefix):
            fn(ev)


def _online(jm, ranks):
    ev = {"topic": "overlay.online", "payload": {"ranks": ranks}}
    for prefix, fn in jm.broker.subscribers:
        if "overlay.online".startswith(prefix):
            fn(ev)


def test_exec_start_failure_fails_only_that_job(jm, caplog):
    real_start = jm.exec.start
    bad = []

    def start(job):
        if not bad:
            bad.append(job.id)
            raise AttributeError("'int' object has no attribute 'get'")
        real_start(job)

    jm.exec.start = start
    first = _submit(jm, nnodes=3)  # all the nodes: the next job waits for them
    second = _submit(jm, nnodes=3)
    with caplog.at_level(logging.DEBUG, logger="flux_launch.job-manager"):
        jm.broker.loop.run()
    assert first.state == "INACTIVE", first.state
    assert first.exception["type"] == "exec" and "AttributeError" in first.exception["note"]
    assert first.result == "FAILED"
    # its resources were freed: the second job (needing every node) started
    assert second.state == "RUN", second.state
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0].getMessage(), [r.getMessage() for r in errors]
    assert any(r.levelno == logging.DEBUG and r.exc_info for r in caplog.records)


def test_rv1_failure_before_alloc_frees_resources(jm, monkeypatch):
    from flux_launch.proto import rv1

    calls = []
    real = rv1.encode

    def encode(*a, **kw):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("bad R")
        return real(*a, **kw)

    monkeypatch.setattr(rv1, "encode", encode)
    first = _submit(jm, nnodes=3)
    second = _submit(jm, nnodes=3)
    jm.broker.loop.run()
    assert first.state == "INACTIVE" and first.exception["type"] == "exec"
    assert second.state == "RUN"


def test_lost_rank_goes_down_and_comes_back(jm):
    _lost(jm, [1])
    assert not jm.sched.pool.is_up(1)
    jobs = [_submit(jm) for _ in range(4)]
    jm.broker.loop.run()
    placed = {int(r) for job in jobs if job.alloc for r in job.alloc}
    assert placed and 1 not in placed, placed
    _online(jm, [1])
    assert jm.sched.pool.is_up(1)


@pytest.mark.parametrize("system", [{"job": {"na\nme": 1}}, {"environment": {"A\r\nB": 1}},
                                    {"constraints": {"x\ny": []}}])
def test_jobspec_error_with_user_key_is_one_line(system):
    from flux_launch.proto.jobspec import JobspecError

    js = _jobspec()
    js["attributes"]["system"].update(system)
    with pytest.raises(JobspecError) as info:
        validate(js)
    assert "\n" not in str(info.value) and "\r" not in str(info.value), str(info.value)
    assert "\\n" in str(info.value)


def test_bad_shell_response_fails_the_job_and_frees_it(jm, caplog):
    job = _submit(jm, nnodes=3)
    waiting = _submit(jm, nnodes=3, cores=2)
    jm.broker.loop.run()
    assert job.state == "RUN" and waiting.state == "SCHED"
    shells = [(nodeid, cb) for topic, _p, nodeid, cb in jm.broker.rpcs if topic == "rexec.shell"]
    assert len(shells) == 3
    with caplog.at_level(logging.ERROR, logger="flux_launch.job-exec"):
        for _rank, cb in shells:
            cb({"type": "started"}, 0, None)
        shells[0][1]({"type": "finished"}, 0, None)  # no status: a malformed response
    assert job.exception["type"] == "exec" and "KeyError" in job.exception["note"], job.exception
    kills = [nodeid for topic, _p, nodeid, _cb in jm.broker.rpcs if topic == "rexec.shell-kill"]
    assert sorted(kills) == [0, 1, 2], kills  # every shell is told to stop (rank 0 may still run)
    for _rank, cb in shells[1:]:
        cb({"type": "finished", "status": 15}, 0, None)
    jm.broker.loop.run()
    assert job.state == "INACTIVE" and waiting.state == "RUN"
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 1


def test_rank_that_never_answered_is_listed_down():
    broker = FakeBroker()
    jm = JobManager(broker, FakeKVS())
    for hook in broker.on_run:
        hook()
    calls = [(nodeid, cb) for topic, _p, nodeid, cb in broker.rpcs if topic == "resource.info"]
    assert [n for n, _ in calls] == [0, 1, 2]
    for nodeid, cb in calls:
        if nodeid == 1:
            cb(None, 113, "rank 1 is unreachable")
        else:
            cb({"rank": nodeid, "ncores": 2, "gpus": [], "hostname": f"node{nodeid}", "source": "test"}, 0, None)
    assert jm.pool_ready and not jm.sched.pool.is_up(1)
    broker.request({"topic": "sched.resource-status", "payload": {}})
    status = broker.responses[-1][1]
    assert status["down"]["ranks"] == "1" and status["down"]["nnodes"] == 1, status
    assert status["free"]["ranks"] == "0,2" and status["free"]["ncores"] == 4, status
    job = _submit(jm, nnodes=2)
    broker.loop.run()
    assert sorted(int(r) for r in job.alloc) == [0, 2]
