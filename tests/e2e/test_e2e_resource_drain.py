"""``flux resource drain|undrain|status|reload`` in real instances: a drained node
gets no new job (running ones keep running, the node is ``draining`` until they
end), undrain makes it schedulable again, drains survive a restart on the same
statedir, ``flux resource list`` counts drained nodes down, and bad input gets a
one-line error with flux-core's exit code."""

import json
import os
import shutil
import signal

import pytest

from flux_launch.testing import Instance, poll

pytestmark = pytest.mark.e2e

DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "topologies")


@pytest.fixture(scope="module")
def inst():
    """A 4-broker instance; each test leaves no rank drained and no job running."""
    with Instance(size=4) as i:
        yield i


@pytest.fixture
def clean(inst):
    yield inst
    inst.flux("resource", "undrain", "-f", "0-3", check=False)
    inst.flux("cancel", "--all", check=False)
    inst.flux("queue", "drain", "-t", "30", check=False, timeout=40)


def _status(inst, *args):
    """``flux resource status -n -o '{state} {ranks}'`` as {state: ranks}."""
    out = inst.flux("resource", "status", "-n", "-o", "{state} {ranks}", *args).stdout
    return dict(line.split(None, 1) for line in out.splitlines() if len(line.split()) == 2)


def _list(inst):
    """``flux resource list -n -o '{state} {nnodes} {ranks}'`` as {state: (nnodes, ranks)}."""
    out = inst.flux("resource", "list", "-n", "-o", "{state} {nnodes} {ranks}").stdout
    rows = {}
    for line in out.splitlines():
        parts = line.split()
        rows[parts[0]] = (int(parts[1]), parts[2] if len(parts) > 2 else "")
    return rows


def _state(inst, jobid):
    return inst.flux("jobs", "-a", "-n", "-o", "{state}", jobid).stdout.strip()


def test_drain_lists_status_and_undrain(clean):
    inst = clean
    inst.flux("resource", "drain", "1", "bad", "disk")
    out = inst.flux("resource", "drain").stdout.splitlines()
    assert out[0].split() == ["TIME", "STATE", "REASON", "NODELIST"], out
    assert len(out) == 2 and out[1].split()[2:4] == ["drained", "bad"] and "bad disk" in out[1], out
    long = inst.flux("resource", "drain", "-n", "-o", "long").stdout.split()
    assert long[1:4] == ["drained", "1", "bad"], long
    assert _status(inst) == {"avail": "0,2-3", "drained": "1"}
    assert _list(inst) == {"free": (3, "0,2-3"), "allocated": (0, ""), "down": (1, "1")}
    status = inst.flux("resource", "status").stdout.splitlines()
    assert status[0].split() == ["STATE", "UP", "NNODES", "NODELIST"], status
    inst.flux("resource", "undrain", "1")
    assert _status(inst) == {"avail": "0-3"}
    assert inst.flux("resource", "drain", "-n").stdout == ""


def test_drained_ranks_get_no_jobs_until_undrained(clean):
    inst = clean
    inst.flux("resource", "drain", "1-3", "maintenance")
    one = inst.flux("run", "-N1", "-n1", "flux", "getattr", "rank").stdout.strip()
    assert one == "0"
    jobid = inst.flux("submit", "-N2", "-n2", "true").stdout.strip()  # feasible: drained ranks count
    # the scheduler saw the job (its priority event) and had only rank 0 to give it
    inst.flux("job", "wait-event", "-t", "20", jobid, "priority", timeout=30)
    assert _state(inst, jobid) == "SCHED", inst.job_eventlog(jobid)
    inst.flux("resource", "undrain", "2")
    r = inst.flux("job", "wait-event", "-t", "30", jobid, "clean", check=False, timeout=40)
    assert r.returncode == 0, inst.job_eventlog(jobid)
    ranks = inst.flux("jobs", "-a", "-n", "-o", "{ranks}", jobid).stdout.strip()
    assert ranks == "0,2", ranks


def test_a_busy_node_is_draining_then_drained(clean):
    inst = clean
    jobid = inst.flux("submit", "-N4", "-n4", "sleep", "300").stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", jobid, "start", timeout=40)
    inst.flux("resource", "drain", "2", "after", "this", "job")
    assert _status(inst) == {"avail": "0-1,3", "draining": "2"}
    assert _state(inst, jobid) == "RUN"  # draining does not touch running jobs
    rows = _list(inst)
    assert rows["down"] == (1, "2") and rows["allocated"] == (4, "0-3"), rows
    inst.flux("cancel", jobid)
    inst.flux("job", "wait-event", "-t", "30", jobid, "clean", timeout=40)
    assert _status(inst) == {"avail": "0-1,3", "drained": "2"}


def test_drain_by_hostname_and_force_update(clean):
    inst = clean
    host = inst.flux("resource", "status", "-n", "-o", "{nodelist}").stdout.split(",")[0].strip()
    inst.flux("resource", "drain", host, "first")  # every rank on that host
    drained = inst.flux("resource", "drain", "-n", "-o", "{ranks} {reason}").stdout.split()
    assert drained == ["0-3", "first"], drained
    r = inst.flux("resource", "drain", "1", "second", check=False)
    assert r.returncode == 1 and "already drained" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    inst.flux("resource", "drain", "-u", "1", "second")
    assert inst.flux("resource", "drain", "-n", "-o", "{reason}", "-i", "1").stdout.split() == ["first"]
    inst.flux("resource", "drain", "-f", "1", "second")
    assert inst.flux("resource", "drain", "-n", "-o", "{reason}", "-i", "1").stdout.split() == ["second"]
    inst.flux("resource", "undrain", host)
    assert _status(inst) == {"avail": "0-3"}


@pytest.mark.parametrize("args, code, text", [
    (("drain", "9"), 1, "idset is out of range"),
    (("drain", "no-such-host"), 1, "invalid targets"),
    (("undrain", "1"), 1, "not drained"),
    (("undrain",), 2, "targets"),
    (("drain", "-f", "-u", "1"), 1, "Only one of --force and --update"),
    (("list", "-s", "bogus"), 1, "Invalid resource state bogus"),
    (("status", "-s", "bogus"), 1, "Invalid resource state bogus"),
    (("list", "-o", "{bogus}"), 1, "Unknown format field: bogus"),
    (("drain", "-o", "{nodelist"), 1, "invalid format"),
    (("reload",), 2, "path"),
    (("reload", "/no/such/R.json"), 1, "no such file"),
    (("frobnicate",), 2, "invalid choice"),
])
def test_bad_input(inst, args, code, text):
    r = inst.flux("resource", *args, check=False)
    assert r.returncode == code and text in r.stderr, (r.returncode, r.stderr)
    if code == 1:
        assert len(r.stderr.splitlines()) == 1, r.stderr


def test_offline_nodes_get_a_star(make_instance):
    inst = make_instance(size=3)
    pids = inst.broker_pids()
    inst.flux("resource", "drain", "2", "dying")
    os.kill(pids[1], signal.SIGKILL)
    os.kill(pids[2], signal.SIGKILL)
    assert poll(lambda: "lost: 1-2" in inst.flux("uptime", check=False, timeout=20).stdout), inst.log()
    assert poll(lambda: _status(inst) == {"avail": "0", "avail*": "1", "drained*": "2"}), _status(inst)
    out = inst.flux("resource", "drain", "-n", "-o", "{state} {status} {up.ascii} {reason}").stdout
    assert out == "drained* offline n dying\n", out
    assert _status(inst, "-s", "offline") == {"avail*": "1", "drained*": "2"}


def test_drains_survive_a_restart(make_instance, tmp_path):
    attrs = {"statedir": tmp_path / "state"}
    inst = make_instance(size=2, attrs=attrs)
    inst.flux("resource", "drain", "1", "keep", "me")
    inst.flux("resource", "drain", "0", "gone")
    inst.flux("resource", "undrain", "0")
    assert inst.stop() == 0
    inst = make_instance(size=2, attrs=attrs)
    rows = inst.flux("resource", "drain", "-n", "-o", "{state} {ranks} {reason}").stdout.splitlines()
    assert rows == ["drained 1 keep me"], rows
    assert inst.flux("run", "-N1", "flux", "getattr", "rank").stdout.strip() == "0"


def test_reload_R_and_xml(make_instance, tmp_path):
    inst = make_instance(size=2)
    R = {"version": 1, "execution": {"R_lite": [{"rank": "0-1", "children": {"core": "0-3"}}],
                                     "nodelist": ["big[0-1]"], "starttime": 0, "expiration": 0}}
    path = tmp_path / "R.json"
    path.write_text(json.dumps(R))
    inst.flux("resource", "reload", str(path))
    out = inst.flux("resource", "list", "-n", "-s", "free").stdout.split()
    assert out == ["free", "2", "8", "0", "big[0-1]"], out
    back = json.loads(inst.flux("resource", "R").stdout)["execution"]
    assert back["R_lite"] == [{"rank": "0-1", "children": {"core": "0-3"}}], back
    assert back["nodelist"] in (["big[0-1]"], ["big0", "big1"]), back
    too_big = tmp_path / "R3.json"
    R["execution"]["R_lite"][0]["rank"] = "0-2"
    del R["execution"]["nodelist"]
    too_big.write_text(json.dumps(R))
    r = inst.flux("resource", "reload", str(too_big), check=False)
    assert r.returncode == 1 and "exceeding size=2" in r.stderr and "-f" in r.stderr, r.stderr
    inst.flux("resource", "reload", "-f", str(too_big))
    assert inst.flux("resource", "info").stdout.strip() == "2 Nodes, 8 Cores, 0 GPUs"

    xmldir = tmp_path / "xml"
    xmldir.mkdir()
    for rank in (0, 1):
        shutil.copy(os.path.join(DATA, "corona.xml"), xmldir / f"{rank}.xml")
    inst.flux("resource", "reload", "-x", str(xmldir))
    assert inst.flux("resource", "info").stdout.strip() == "2 Nodes, 96 Cores, 16 GPUs"
    r = inst.flux("resource", "reload", "-x", str(path), check=False)
    assert r.returncode == 1 and "not a directory" in r.stderr, r.stderr

    jobid = inst.flux("submit", "sleep", "300").stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", jobid, "start", timeout=40)
    r = inst.flux("resource", "reload", str(path), check=False)
    assert r.returncode == 1 and "busy" in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    inst.flux("cancel", jobid)
