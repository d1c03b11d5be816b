"""flux.job's JobInfo, JobList, output events and flux.kvs, without an instance:
records and answers are given by a fake handle."""

import base64
import errno

import pytest

from flux_launch.client import kvs
from flux_launch.job import list as joblist
from flux_launch.job import output
from flux_launch.job.info import JobInfo
from flux_launch.proto.job import RESULT_BITS, STATE_BITS


class FakeFuture:
    def __init__(self, payload=None, error=None):
        self.payload, self.error = payload, error

    def get(self):
        if self.error:
            raise OSError(self.error, "fake error")
        return self.payload

    def is_ready(self):
        return True


class FakeHandle:
    """Answers ``rpc(topic, payload)`` from ``answers[topic]`` (a payload, or an
    errno, or a function of the payload) and records what was sent."""

    def __init__(self, **answers):
        self.answers = {k.replace("_", "-").replace("--", "."): v for k, v in answers.items()}
        self.sent = []

    def rpc(self, topic, payload=None, **kw):
        self.sent.append((topic, payload))
        ans = self.answers.get(topic, {})
        if callable(ans):
            ans = ans(payload)
        return FakeFuture(error=ans) if isinstance(ans, int) else FakeFuture(ans)


def record(**kw):
    rec = {"id": 1 << 30, "userid": 0, "urgency": 16, "priority": 16, "t_submit": 100.0, "state": STATE_BITS["RUN"],
           "name": "app", "ntasks": 4, "ncores": 4, "nnodes": 2, "t_depend": 100.0, "t_run": 101.0,
           "nodelist": "n[0-1]", "exception_occurred": False}
    rec.update(kw)
    return rec


def inactive(result, waitstatus=None, **kw):
    rec = record(**{"state": STATE_BITS["INACTIVE"], "result": RESULT_BITS[result], "result_str": result,
                    "t_cleanup": 103.5, "t_inactive": 104.0, "success": result == "COMPLETED", **kw})
    if waitstatus is not None:
        rec["waitstatus"] = waitstatus
    return rec


def test_jobinfo_of_a_running_job():
    info = JobInfo(record())
    assert (info.state, info.state_single, info.status, info.status_abbrev) == ("RUN", "R", "RUN", "R")
    assert (info.result, info.result_id, info.returncode, info.waitstatus) == ("", "", "", "")
    assert info.id.f58.startswith("ƒ") and int(info.id) == 1 << 30
    assert info.runtime > 0 and info.t_cleanup == 0.0 and info.t_inactive == 0.0
    assert info.contextual_info == "n[0-1]" and info.inactive_reason == ""
    assert info.exception.occurred is False and info.exception.type == ""
    assert str(info.annotations) == "" and str(info.annotations.user.missing.deeper) == ""
    assert info.username  # a name, or the uid as text


@pytest.mark.parametrize("result,waitstatus,code,reason", [
    ("COMPLETED", 0, 0, "Exit 0"),
    ("FAILED", 3 << 8, 3, "Exit 3"),
    ("FAILED", 9, -9, "Exit -9"),  # the shell itself signaled
    ("FAILED", 137 << 8, 137, "Killed"),  # a task killed: the shell exits 128+9
    ("CANCELED", None, -128, "Canceled"),  # before it ran
    ("FAILED", None, 1, "Exit 1"),
    ("TIMEOUT", 15, -15, "Timeout"),
])
def test_jobinfo_returncode_as_flux_core(result, waitstatus, code, reason):
    info = JobInfo(inactive(result, waitstatus))
    assert (info.state, info.result, info.returncode, info.inactive_reason) == ("INACTIVE", result, code, reason)
    assert info.runtime == pytest.approx(2.5)


def test_jobinfo_exception_and_unknown_attribute():
    info = JobInfo(inactive("CANCELED", None, exception_occurred=True, exception_type="cancel",
                            exception_severity=0, exception_note="by me"))
    assert (info.exception.occurred, info.exception.type, info.exception.note) == (True, "cancel", "by me")
    assert info.inactive_reason == "Canceled: by me"
    with pytest.raises(AttributeError, match="invalid JobInfo attribute 'bogus'"):
        _ = info.bogus
    assert info["result"] == "CANCELED"
    with pytest.raises(KeyError):
        info["bogus"]


def test_jobinfo_to_dict_filters_empty_values():
    d = JobInfo(inactive("COMPLETED", 0, cwd=None)).to_dict()
    assert d["id"] == 1 << 30 and d["result"] == "COMPLETED" and d["returncode"] == 0
    assert d["exception"] == {"occurred": False}
    assert "cwd" not in d and "queue" not in d and "expiration" not in d
    full = JobInfo(inactive("COMPLETED", 0)).to_dict(filtered=False)
    assert full["queue"] == "" and full["exception"]["type"] == "" and full["expiration"] == 0.0


def test_jobinfo_pending_contextual_info():
    held = JobInfo(record(state=STATE_BITS["SCHED"], priority=0, urgency=0, t_run=None))
    assert (held.contextual_info, held.runtime, held.returncode) == ("held", 0.0, "")
    dep = JobInfo(record(state=STATE_BITS["DEPEND"], dependencies=["afterok:ƒ1"], t_run=None))
    assert dep.contextual_info == "depends:afterok:ƒ1" and dep.dependencies == ["afterok:ƒ1"]


def test_job_list_filters_here_what_the_service_does_not():
    jobs = [inactive("COMPLETED", 0, id=3, name="a", t_inactive=50.0), record(id=2, name="b"),
            inactive("FAILED", 256, id=1, name="a", t_inactive=10.0)]
    h = FakeHandle(**{"job_list.list": {"jobs": jobs}})
    assert [j["id"] for j in joblist.job_list(h, name="a").get_jobs()] == [3, 1]
    assert [j["id"] for j in joblist.job_list(h, since=20.0).get_jobs()] == [3, 2]
    assert [j["id"] for j in joblist.job_list(h, name="a", max_entries=1).get_jobs()] == [3]
    assert h.sent[-1][1]["max_entries"] == 0  # the cut is made here, after the filter
    joblist.job_list(h, max_entries=7, userid=joblist.FLUX_USERID_UNKNOWN, states=2, results=4)
    assert h.sent[-1][1] == {"max_entries": 7, "states": 2, "results": 4, "userid": -1}


def test_joblist_filters_users_and_ids():
    h = FakeHandle(**{"job_list.list-id": lambda p: {"job": record(id=p["id"])} if p["id"] == 5 else errno.ENOENT})
    q = joblist.JobList(h, filters=["pending,running", "failed"], user="all")
    assert q.states == joblist.JobList.STATES["pending"] | joblist.JobList.STATES["running"]
    assert q.results == RESULT_BITS["FAILED"] and q.userid == joblist.FLUX_USERID_UNKNOWN
    with pytest.raises(ValueError, match="Invalid filter specified: nope"):
        joblist.JobList(h, filters=["nope"])
    with pytest.raises(ValueError, match="Invalid user"):
        joblist.JobList(h, user="no-such-user-here")
    q = joblist.JobList(h, ids=[5, 6])
    assert [int(i.id) for i in q.jobs()] == [5] and len(q.errors) == 1 and "unknown" in q.errors[0]
    assert joblist.get_job(h, 6) is None and joblist.get_job(h, 5)["state"] == "RUN"


def test_output_events():
    data = output.OutputEvent({"timestamp": 1.0, "name": "data", "context": {
        "stream": "stdout", "rank": "0-1", "data": base64.b64encode(b"ab\n").decode(), "encoding": "base64",
        "repeat": 2}}, labelio=True)
    assert (data.stream, str(data.rank), data.eof, data.data) == ("stdout", "0-1", False, "0-1: ab\n0-1: ab\n")
    eof = output.OutputEvent({"timestamp": 1.0, "name": "data", "context": {"stream": "stderr", "rank": "3",
                                                                             "eof": True}})
    assert eof.data is None and eof.eof
    log = output.LogEvent({"timestamp": 1.0, "name": "log", "context": {"level": 3, "rank": 0, "message": "no",
                                                                         "component": "shell"}})
    assert log.render() == "flux-shell[0]: ERROR: shell: no"
    assert output.Taskset("0-3").intersect("2,5").ids.encode() == "2"
    assert not output.Taskset("1").intersect("2") and output.Taskset("*").intersect("4")
    with pytest.raises(ValueError):
        output.LogEvent({"timestamp": 1.0, "name": "data", "context": {}})


def test_kvs_stages_and_commits_once():
    h = FakeHandle()
    kvs.put(h, "a.b", {"x": 1})
    kvs.put(h, "a.raw", b"text")
    kvs.put_mkdir(h, "a.d")
    kvs.put_unlink(h, "a.old")
    assert h.sent == []
    kvs.commit(h)
    assert h.sent == [("kvs.commit", {"ops": [{"op": "put", "key": "a.b", "value": {"x": 1}},
                                              {"op": "put", "key": "a.raw", "value": "text"},
                                              {"op": "mkdir", "key": "a.d"}, {"op": "unlink", "key": "a.old"}]})]
    kvs.commit(h)  # nothing staged
    assert len(h.sent) == 1
    with pytest.raises(TypeError):
        kvs.put(h, "k", object())
    with pytest.raises(TypeError):
        kvs.put(h, "k", b"\xff\xfe")
    with pytest.raises(OSError) as exc:
        kvs.put_symlink(h, "l", "a.b")
    assert exc.value.errno == errno.ENOSYS


def test_kvs_exists_isdir_and_namespace(monkeypatch):
    answers = {"a": {"value": 1}, "d": errno.EISDIR, "n": errno.ENOENT}
    h = FakeHandle(**{"kvs.get": lambda p: answers[p["key"]]})
    assert [kvs.exists(h, k) for k in "adn"] == [True, True, False]
    assert [kvs.isdir(h, k) for k in "adn"] == [False, True, False]
    monkeypatch.setenv("FLUX_KVS_NAMESPACE", "ns1")
    kvs.get(h, "a")
    assert h.sent[-1] == ("kvs.get", {"key": "a", "namespace": "ns1"})


def test_flux_constants_are_what_the_calls_take():
    import flux.constants as c

    assert c.FLUX_JOB_STATE_PENDING == joblist.JobList.STATES["pending"]
    assert c.FLUX_JOB_STATE_ACTIVE == joblist.JobList.STATES["active"]
    assert c.FLUX_JOB_RESULT_CANCELED == joblist.JobList.RESULTS["canceled"]
    assert c.FLUX_USERID_UNKNOWN == joblist.FLUX_USERID_UNKNOWN
    from flux_launch.client.handle import STREAMING

    assert c.FLUX_RPC_STREAMING == STREAMING
