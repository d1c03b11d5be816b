"""The job manager's parts on a fake broker (no sockets, no processes) and a real
KVS in a temporary directory: ingest's checks, the state machine from submit to
inactive with the exec service's shells answered by hand, raise and cancel,
wait, job-list's filters, and errors through the service framework."""

import errno

import pytest
from fake_broker import ServiceBroker

from flux_launch.proto import eventlog
from flux_launch.proto.job import FLAG_WAITABLE, RESULT_BITS, STATE_BITS
from flux_launch.services.base import ServiceError
from flux_launch.services.job_manager import JobManager
from flux_launch.services.job_manager.info import selected
from flux_launch.services.job_manager.ingest import check
from flux_launch.services.job_manager.job import Job, kvs_dir
from flux_launch.services.kvs.service import KVSService

OWNER = 1000
GUEST = 2000


class FakeLoop:
    """call_soon runs at ``run()``; call_later timers wait for ``fire()``."""

    def __init__(self):
        self.soon = []
        self.timers = []

    def call_soon(self, fn, *args):
        self.soon.append((fn, args))

    def call_later(self, delay, fn, *args):
        handle = _Handle(delay, fn, args)
        self.timers.append(handle)
        return handle

    def run(self):
        while self.soon:
            fn, args = self.soon.pop(0)
            fn(*args)

    def fire(self):
        """Run the timers due (not cancelled) so far, then what they queued."""
        due, self.timers = [t for t in self.timers if not t.cancelled], []
        for t in due:
            t.fn(*t.args)
        self.run()


class _Handle:
    def __init__(self, delay, fn, args):
        self.delay, self.fn, self.args = delay, fn, args
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class FakeBroker(ServiceBroker):
    """A rank-0 broker of ``size`` ranks: services by name, responses, in-process
    RPCs kept with their callbacks (answered by the test), events published."""

    owner = OWNER

    def __init__(self, size=2):
        super().__init__()
        self.size = size
        self.loop = FakeLoop()
        self.on_run = []
        self.subscribers = []
        self.lost = set()
        self.rpcs = []  # (topic, payload, nodeid, callback)
        self.events = []

    def rpc(self, topic, payload=None, nodeid=-1, callback=None, streaming=False):
        self.rpcs.append((topic, payload, nodeid, callback))

    def publish(self, topic, payload=None):
        self.events.append((topic, payload))

    def local_client(self, req):
        return None

    def call(self, topic, payload=None, **kw):
        """One request that must succeed at once: its payload."""
        [(_tag, out, errnum, errstr)] = self.request(topic, payload, **kw)
        assert not errnum, (topic, errnum, errstr)
        return out

    def error(self, topic, payload=None, **kw):
        """One request that must fail at once: ``(errnum, errstr)``."""
        [(_tag, _out, errnum, errstr)] = self.request(topic, payload, **kw)
        assert errnum, (topic, _out)
        return errnum, errstr


def _jobspec(nnodes=1, cores=1, **system):
    return {"version": 1, "resources": [{"type": "node", "count": nnodes, "with": [
        {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": cores}]}]}],
        "tasks": [{"command": ["app"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": 0, **system}}}


def make_manager(tmp_path):
    """``(job manager, its KVS)`` on a fake broker whose two ranks of two cores each
    answered resource.info (close the KVS when done)."""
    broker = FakeBroker()
    kvs = KVSService(broker, str(tmp_path / "state"))
    kvs.handle.register()
    jm = JobManager(broker, kvs)
    for hook in broker.on_run:
        hook()
    for topic, _p, nodeid, cb in broker.rpcs:
        assert topic == "resource.info"
        cb({"rank": nodeid, "ncores": 2, "gpus": [], "hostname": f"node{nodeid}", "source": "test"}, 0, None)
    broker.rpcs.clear()
    return jm, kvs


@pytest.fixture
def jm(tmp_path):
    """A job manager whose two ranks of two cores each answered resource.info."""
    manager, kvs = make_manager(tmp_path)
    yield manager
    kvs.close()


def _submit(jm, nnodes=1, cores=1, **payload):
    out = jm.broker.call("job-ingest.submit", {"jobspec": _jobspec(nnodes, cores), **payload})
    jm.broker.loop.run()
    return jm.jobs[out["id"]]


def _shells(jm, job):
    """The rexec.shell RPCs of ``job``: {rank: callback}."""
    return {nodeid: cb for topic, p, nodeid, cb in jm.broker.rpcs if topic == "rexec.shell" and p["id"] == job.id}


def _events(jm, job):
    jm.flush()
    return [ev["name"] for ev in eventlog.decode(jm.kvs.lookup(f"{kvs_dir(job.id)}.eventlog"))]


def _run_to_end(jm, job, status=0):
    shells = _shells(jm, job)
    for cb in shells.values():
        cb({"type": "started", "pid": 1}, 0, None)
    for cb in shells.values():
        cb({"type": "finished", "status": status}, 0, None)
        cb(None, errno.ENODATA, None)
    jm.broker.loop.run()


# ---- ingest -----------------------------------------------------------------------

@pytest.mark.parametrize("payload, owner, want", [
    ({"jobspec": {"version": 9}}, True, errno.EINVAL),
    ({"jobspec": _jobspec(queue="batch")}, True, errno.EINVAL),
    ({"jobspec": _jobspec(), "urgency": 32}, True, errno.EINVAL),
    ({"jobspec": _jobspec(), "urgency": "16"}, True, errno.EINVAL),
    ({"jobspec": _jobspec(), "flags": "waitable"}, True, errno.EPROTO),
    ({"jobspec": _jobspec(), "flags": FLAG_WAITABLE}, False, errno.EPERM),
    ({"jobspec": _jobspec(), "urgency": 17}, False, errno.EPERM),
])
def test_ingest_check_refuses(payload, owner, want):
    with pytest.raises(ServiceError) as info:
        check(payload, owner)
    assert info.value.errnum == want and "\n" not in info.value.text, info.value.text


def test_ingest_check_accepts_and_asks_the_pool():
    jobspec, summary, urgency, flags = check({"jobspec": _jobspec(), "flags": FLAG_WAITABLE}, True)
    assert (urgency, flags, summary["nnodes"]) == (16, FLAG_WAITABLE, 1)
    with pytest.raises(ServiceError) as info:
        check({"jobspec": _jobspec()}, True, feasible=lambda s: (False, "unsatisfiable request: too big"))
    assert info.value.errnum == errno.EOVERFLOW and info.value.text == "unsatisfiable request: too big"


def test_submit_refused_adds_no_job(jm):
    assert jm.broker.error("job-ingest.submit", {"jobspec": _jobspec(nnodes=3)})[0] == errno.EOVERFLOW
    errnum, text = jm.broker.error("job-ingest.submit", {"jobspec": _jobspec(), "urgency": 20}, userid=GUEST)
    assert errnum == errno.EPERM and text == "only the instance owner may set urgency above 16"
    assert jm.jobs == {}


# ---- the state machine ------------------------------------------------------------

def test_submit_run_inactive(jm):
    job = _submit(jm, nnodes=2)
    assert job.state == "RUN" and sorted(_shells(jm, job)) == [0, 1]
    assert jm.kvs.lookup(f"{kvs_dir(job.id)}.R")["execution"]["nodelist"] == ["node[0-1]"]
    _run_to_end(jm, job)
    assert job.state == "INACTIVE" and job.result == "COMPLETED" and job.status == 0
    assert _events(jm, job) == ["submit", "validate", "depend", "priority", "alloc", "start", "finish",
                                "release", "free", "clean"]
    assert jm.sched.pool.free_resources(0)["core"] == [0, 1]  # its resources went back


def test_the_queue_moves_when_a_job_ends(jm):
    first = _submit(jm, nnodes=2, cores=2)
    second = _submit(jm, nnodes=2, cores=2)
    assert first.state == "RUN" and second.state == "SCHED"
    _run_to_end(jm, first, status=3 << 8)
    assert first.result == "FAILED" and second.state == "RUN"


def test_cancel_pending_job(jm):
    _submit(jm, nnodes=2, cores=2)
    job = _submit(jm, nnodes=2, cores=2)
    assert jm.broker.call("job-manager.raise", {"id": job.id, "type": "cancel", "severity": 0, "note": "x"}) == {}
    assert job.state == "INACTIVE" and job.result == "CANCELED"
    assert job.id not in jm.sched.pending
    errnum, text = jm.broker.error("job-manager.raise", {"id": job.id})
    assert errnum == errno.EINVAL and text.endswith(": job is inactive")


def test_cancel_running_job_signals_its_shells(jm):
    job = _submit(jm, flags=FLAG_WAITABLE)
    jm.broker.call("job-manager.raise", {"id": job.id, "type": "cancel", "severity": 0, "note": "stop"})
    kills = [(p["signum"], nodeid) for topic, p, nodeid, _cb in jm.broker.rpcs if topic == "rexec.shell-kill"]
    assert kills == [(15, 0)] and job.state == "RUN"
    assert jm.broker.request("job-manager.wait", {"id": job.id}, tag=7) == []  # answered at its end
    _run_to_end(jm, job, status=15)
    assert job.result == "CANCELED"
    assert jm.broker.responses[-1] == (7, {"id": job.id, "success": False, "errstr": "job canceled: stop"}, 0, None)


def test_severity_above_zero_does_not_end_the_job(jm):
    job = _submit(jm)
    jm.broker.call("job-manager.raise", {"id": job.id, "type": "note", "severity": 3, "note": "fyi"})
    assert job.state == "RUN" and job.exception is None
    assert _events(jm, job)[-1] == "exception"


@pytest.mark.parametrize("status, errstr", [(0, ""), (3 << 8, "exited with exit code 3"),
                                            (137 << 8, "exited with exit code 137")])
def test_wait_status_text(jm, status, errstr):
    job = _submit(jm, flags=FLAG_WAITABLE)
    _run_to_end(jm, job, status=status)
    out = jm.broker.call("job-manager.wait", {"id": job.id})
    assert out == {"id": job.id, "success": status == 0, "errstr": errstr}
    assert jm.broker.error("job-manager.wait", {"id": job.id})[0] == errno.ECHILD  # already waited for


def test_wait_status_of_a_signal(jm):
    """A test-exec job (no shells) dies of the signal it is sent: its wait status is that signal."""
    spec = _jobspec(exec={"test": {"run_duration": "1h"}})
    out = jm.broker.call("job-ingest.submit", {"jobspec": spec, "flags": FLAG_WAITABLE})
    jm.broker.loop.run()
    job = jm.jobs[out["id"]]
    assert job.state == "RUN" and not _shells(jm, job)
    jm.broker.call("job-manager.kill", {"id": job.id, "signum": 9})
    jm.broker.loop.run()
    assert job.state == "INACTIVE" and job.status == 9
    assert jm.broker.call("job-manager.wait", {"id": job.id})["errstr"] == "killed by signal 9"


def test_time_limit_raises_timeout_and_sigalrm(jm):
    out = jm.broker.call("job-ingest.submit", {"jobspec": {**_jobspec(), "attributes": {"system": {"duration": 5}}}})
    jm.broker.loop.run()
    job = jm.jobs[out["id"]]
    jm.broker.loop.fire()  # the time limit
    kills = [p["signum"] for topic, p, _n, _cb in jm.broker.rpcs if topic == "rexec.shell-kill"]
    assert kills == [14] and job.exception["type"] == "timeout"
    _run_to_end(jm, job, status=14)
    assert job.result == "TIMEOUT"


def test_kill_and_urgency_checks(jm):
    job = _submit(jm)
    assert jm.broker.error("job-manager.kill", {"id": job.id, "signum": 99})[0] == errno.EINVAL
    assert jm.broker.call("job-manager.kill", {"id": job.id, "signum": 10}) == {}
    assert jm.broker.error("job-manager.urgency", {"id": job.id, "urgency": 3})[1].endswith(
        "urgency can only change while the job is pending")
    held = _submit(jm, urgency=0)
    assert held.state == "SCHED" and held.priority == 0 and held.id not in jm.sched.pending
    assert jm.broker.call("job-manager.urgency", {"id": held.id, "urgency": 16}) == {"old_urgency": 0}
    jm.broker.loop.run()
    assert held.state == "RUN"


def test_requests_naming_a_job(jm):
    job = _submit(jm)
    assert jm.broker.error("job-manager.raise", {"id": "x"}) == (
        errno.EPROTO, "job-manager.raise: id must be a job id (an integer)")
    assert jm.broker.error("job-list.list-id", {"id": 12345})[0] == errno.ENOENT
    errnum, text = jm.broker.error("job-manager.raise", {"id": job.id}, userid=GUEST)
    assert errnum == errno.EPERM and text.endswith("permission denied: not your job")
    assert jm.broker.error("job-manager.frob", {"id": job.id}) == (errno.ENOSYS, "unknown method job-manager.frob")
    assert jm.broker.call("job-info.lookup", {"id": job.id, "keys": ["jobspec"]})["jobspec"]["version"] == 1
    assert jm.broker.error("job-info.lookup", {"id": job.id, "keys": ["nope"]})[0] == errno.ENOENT


def test_drain_and_disconnect(jm):
    job = _submit(jm, flags=FLAG_WAITABLE)
    assert jm.broker.request("job-manager.drain", tag=3) == []
    assert jm.broker.request("job-manager.wait", {"id": job.id}, tag=4) == []
    jm.broker.request("job-manager.disconnect", tag=4)  # the waiter's client went away
    assert jm.waiters == [] and len(jm.drainers) == 1
    _run_to_end(jm, job)
    assert jm.broker.responses[-1] == (3, {}, 0, None)  # the drain, not the dropped wait


def test_restart_rebuilds_jobs(jm):
    done = _submit(jm)
    _run_to_end(jm, done)
    running = _submit(jm)
    jm.flush()
    again = JobManager(jm.broker, jm.kvs)
    assert again.jobs[done.id].state == "INACTIVE" and again.jobs[done.id].result == "COMPLETED"
    lost = again.jobs[running.id]
    assert lost.state == "INACTIVE" and lost.result == "FAILED" and lost.exception["type"] == "exec"


# ---- dependencies (RFC 26) ------------------------------------------------------------

def _dep_submit(jm, scheme, target, userid=OWNER, **payload):
    deps = [{"scheme": scheme, "value": str(target.id)}]
    out = jm.broker.call("job-ingest.submit", {"jobspec": _jobspec(dependencies=deps), **payload}, userid=userid)
    jm.broker.loop.run()
    return jm.jobs[out["id"]]


def test_dependency_on_another_users_job_is_refused_at_submit(jm):
    target = _submit(jm)
    before = len(jm.jobs)
    js = _jobspec(dependencies=[{"scheme": "afterany", "value": str(target.id)}])
    for topic in ("job-ingest.submit", "feasibility.check"):
        errnum, errstr = jm.broker.error(topic, {"jobspec": js}, userid=GUEST)
        assert (errnum, errstr) == (errno.EPERM, f"afterany: Permission denied for job {target.id}")
    assert len(jm.jobs) == before  # nothing submitted


def test_job_in_depend_canceled_and_urgency(jm):
    target = _submit(jm)
    job = _dep_submit(jm, "afterok", target)
    assert job.state == "DEPEND" and job.info()["dependencies"] == [f"after-success={target.id}"]
    jm.broker.call("job-manager.urgency", {"id": job.id, "urgency": 20})
    assert "priority" not in _events(jm, job)  # it gets one once released
    jm.broker.call("job-manager.raise", {"id": job.id, "type": "cancel", "severity": 0, "note": ""})
    jm.broker.loop.run()
    assert job.state == "INACTIVE" and job.result == "CANCELED"
    _run_to_end(jm, target)  # its end touches the canceled job no more
    assert _events(jm, job)[-1] == "clean" and "depend" not in _events(jm, job)


def test_restart_decides_dependencies_on_jobs_it_ended(jm):
    target = _submit(jm)  # running when the instance stops
    never = _dep_submit(jm, "afterok", target)
    held = _dep_submit(jm, "afterany", target, urgency=0)
    jm.flush()
    again = JobManager(jm.broker, jm.kvs)  # the restart fails the running target
    again.broker.loop.run()
    never, held = again.jobs[never.id], again.jobs[held.id]
    assert never.state == "INACTIVE" and never.exception["note"] == f"afterok: job {target.id} failed or was canceled"
    assert held.state == "SCHED" and held.priority == 0 and not held.deps  # released, still held by its urgency
    assert _events(again, held).count("dependency-remove") == 1


# ---- job-list -----------------------------------------------------------------------

def _job(state, result=None, userid=OWNER):
    job = Job(1, userid)
    job.state, job.result = state, result
    return job


@pytest.mark.parametrize("states, results, want", [
    (0, 0, ["RUN", "SCHED", "COMPLETED", "FAILED"]),
    (STATE_BITS["RUN"], 0, ["RUN"]),
    (STATE_BITS["SCHED"] | STATE_BITS["RUN"], 0, ["RUN", "SCHED"]),
    (0, RESULT_BITS["FAILED"], ["FAILED"]),
    (STATE_BITS["RUN"], RESULT_BITS["COMPLETED"], ["RUN", "COMPLETED"]),
    (STATE_BITS["INACTIVE"], 0, ["COMPLETED", "FAILED"]),
])
def test_selected_by_state_and_result_bits(states, results, want):
    jobs = [_job("RUN"), _job("SCHED"), _job("INACTIVE", "COMPLETED"), _job("INACTIVE", "FAILED")]
    got = [j.result or j.state for j in jobs if selected(j, states, results)]
    assert got == want


def test_selected_by_user():
    assert selected(_job("RUN", userid=5), userid=5) and selected(_job("RUN", userid=5), userid=-1)
    assert not selected(_job("RUN", userid=5), userid=6)


def test_list_through_the_service(jm):
    done = _submit(jm, nnodes=2, cores=2)
    _run_to_end(jm, done, status=1 << 8)
    running = _submit(jm, nnodes=2, cores=2)
    pending = _submit(jm, nnodes=2, cores=2)

    def ids(**p):
        return [j["id"] for j in jm.broker.call("job-list.list", p)["jobs"]]

    assert ids() == [pending.id, running.id, done.id]  # newest first
    assert ids(states=STATE_BITS["RUN"]) == [running.id]
    assert ids(results=RESULT_BITS["FAILED"]) == [done.id]
    assert ids(states=STATE_BITS["SCHED"], results=RESULT_BITS["FAILED"]) == [pending.id, done.id]
    assert ids(max_entries=1) == [pending.id]
    assert ids(userid=GUEST) == []
    info = jm.broker.call("job-list.list-id", {"id": done.id})["job"]
    assert info["result"] == RESULT_BITS["FAILED"] and info["returncode"] == 1
