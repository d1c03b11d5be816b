"""The KVS end to end: persistence across instances, the flux kvs commands,
eventlogs, watches, namespaces, and malformed commits through the Python handle."""

import json
import os
import re
import selectors
import subprocess
import time

import pytest

from flux_launch.client.handle import STREAMING, Flux
from flux_launch.testing import BIN, Instance, flux

pytestmark = pytest.mark.e2e

FLUX = os.path.join(BIN, "flux")


@pytest.fixture(scope="module")
def kvs2():
    """A 2-broker instance for this module (tests use their own keys)."""
    with Instance(size=2) as inst:
        yield inst


def _readline(proc, timeout=15.0):
    """One line of a Popen's stdout, or '' after ``timeout`` seconds."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return ""
        return proc.stdout.readline()
    finally:
        sel.close()


def _popen(inst, *args):
    return subprocess.Popen([FLUX, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=inst.env)


def _finish(proc, timeout=15):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"command did not finish in {timeout}s: stdout={out!r} stderr={err!r}")
    return proc.returncode, out, err


# ---- persistence --------------------------------------------------------------------

@pytest.mark.parametrize("size", [1, 2])
def test_statedir_persists_between_instances(tmp_path, size):
    statedir = tmp_path / "state"
    r = flux("start", f"--test-size={size}", f"-Sstatedir={statedir}",
             "sh", "-c", "flux kvs put -j a.b=42 && flux kvs put s=text")
    assert r.returncode == 0, r.stderr
    r = flux("start", f"--test-size={size}", f"-Sstatedir={statedir}", "flux", "kvs", "get", "a.b", "s")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["42", "text"]
    # and a fresh statedir starts empty
    r = flux("start", f"--test-size={size}", f"-Sstatedir={tmp_path / 'other'}", "flux", "kvs", "get", "a.b")
    assert r.returncode == 1
    assert "no such key" in r.stderr


def test_namespace_persists(tmp_path):
    statedir = tmp_path / "state"
    r = flux("start", f"-Sstatedir={statedir}", "sh", "-c",
             "flux kvs namespace create keep && flux kvs -N keep put k=v")
    assert r.returncode == 0, r.stderr
    r = flux("start", f"-Sstatedir={statedir}", "flux", "kvs", "-N", "keep", "get", "k")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "v"


# ---- put / get / ls / dir / unlink / mkdir --------------------------------------------

def test_put_get_string_and_json(kvs2):
    kvs2.flux("kvs", "put", "pg.s=hello world", "pg.num=42")
    kvs2.flux("kvs", "put", "-j", 'pg.j={"x":[1,2],"y":null}', "pg.n=42")
    out = kvs2.flux("kvs", "get", "pg.s", "pg.num", "pg.j", "pg.n").stdout.splitlines()
    assert out[0] == "hello world"
    assert out[1] == "42"  # a string
    assert json.loads(out[2]) == {"x": [1, 2], "y": None}
    assert out[3] == "42"
    with Flux(kvs2.uri) as h:
        assert h.rpc("kvs.get", {"key": "pg.num"}).get(timeout=10)["value"] == "42"
        assert h.rpc("kvs.get", {"key": "pg.n"}).get(timeout=10)["value"] == 42


def test_get_from_other_rank(kvs2):
    kvs2.flux("kvs", "put", "other.rank=seen")
    out = kvs2.flux("exec", "-r", "1", "flux", "kvs", "get", "other.rank").stdout
    assert out.strip() == "seen"


def test_get_missing_key_fails(kvs2):
    r = kvs2.flux("kvs", "get", "missing.key", check=False)
    assert r.returncode == 1
    assert "missing.key" in r.stderr and "no such key" in r.stderr
    assert "Traceback" not in r.stderr


def test_put_bad_json_fails(kvs2):
    r = kvs2.flux("kvs", "put", "-j", "bj={bad", check=False)
    assert r.returncode == 1
    assert "not JSON" in r.stderr


def test_multi_key_put_is_atomic(kvs2):
    kvs2.flux("kvs", "put", "-j", "at.num=5")
    # appending to a number fails, so the whole put (at.str too) must not happen
    r = kvs2.flux("kvs", "put", "-A", "at.str=abc", "at.num=x", check=False)
    assert r.returncode == 1
    assert "string" in r.stderr
    r = kvs2.flux("kvs", "get", "at.str", check=False)
    assert r.returncode == 1, f"at.str was written by a failed commit: {r.stdout}"
    # a good multi-key put is seen as one change by a watcher
    with Flux(kvs2.uri) as h:
        h.rpc("kvs.commit", {"ops": [{"op": "put", "key": "at.w", "value": 0}]}).get(timeout=10)
        watch = h.rpc("kvs.watch", {"key": "at.w"}, flags=STREAMING)
        assert watch.get(timeout=10)["value"] == 0
        kvs2.flux("kvs", "put", "-j", "at.w=1", "at.w2=2", "at.w=3")
        assert watch.get(timeout=10)["value"] == 3
        # nothing else queued: the next value comes only from the next commit
        kvs2.flux("kvs", "put", "-j", "at.w=4")
        assert watch.get(timeout=10)["value"] == 4
    assert kvs2.flux("kvs", "get", "at.w2").stdout.strip() == "2"


def test_append(kvs2):
    kvs2.flux("kvs", "put", "ap.s=hello")
    kvs2.flux("kvs", "put", "-A", "ap.s= world")
    assert kvs2.flux("kvs", "get", "ap.s").stdout == "hello world\n"


def test_ls_and_dir(kvs2):
    kvs2.flux("kvs", "put", "ld.a.x=1", "ld.a.y=2", "ld.b=3")
    kvs2.flux("kvs", "mkdir", "ld.empty")
    assert kvs2.flux("kvs", "ls", "ld").stdout.split() == ["a", "b", "empty"]
    assert kvs2.flux("kvs", "ls", "-F", "ld").stdout.split() == ["a.", "b", "empty."]
    rec = kvs2.flux("kvs", "ls", "-R", "ld").stdout
    assert "ld.a:" in rec and "x" in rec.split("ld.a:")[1]
    assert kvs2.flux("kvs", "dir", "ld").stdout.splitlines() == ["ld.a.", "ld.b = 3", "ld.empty."]
    assert kvs2.flux("kvs", "dir", "-R", "ld").stdout.splitlines() == ["ld.a.x = 1", "ld.a.y = 2", "ld.b = 3"]
    # ls of a value prints its name
    assert kvs2.flux("kvs", "ls", "ld.b").stdout.strip() == "ld.b"


def test_unlink(kvs2):
    kvs2.flux("kvs", "put", "ul.d.k=1", "ul.v=2")
    r = kvs2.flux("kvs", "unlink", "ul.missing", check=False)
    assert r.returncode == 1
    assert "no such key" in r.stderr
    kvs2.flux("kvs", "unlink", "-f", "ul.missing")
    r = kvs2.flux("kvs", "unlink", "ul.d", check=False)
    assert r.returncode == 1
    assert "directory" in r.stderr
    assert kvs2.flux("kvs", "get", "ul.d.k").stdout.strip() == "1"
    kvs2.flux("kvs", "unlink", "ul.v")
    kvs2.flux("kvs", "unlink", "-R", "ul.d")
    assert kvs2.flux("kvs", "get", "ul.d.k", check=False).returncode == 1
    assert kvs2.flux("kvs", "get", "ul.v", check=False).returncode == 1
    assert kvs2.flux("kvs", "ls", "ul").stdout.strip() == ""


def test_mkdir(kvs2):
    kvs2.flux("kvs", "mkdir", "mk.one", "mk.two.deep")
    assert kvs2.flux("kvs", "ls", "-F", "mk").stdout.split() == ["one.", "two."]
    r = kvs2.flux("kvs", "get", "mk.one", check=False)
    assert r.returncode == 1
    assert "directory" in r.stderr


# ---- namespaces ---------------------------------------------------------------------

def test_namespaces(kvs2):
    kvs2.flux("kvs", "namespace", "create", "nsa", "nsb")
    listing = kvs2.flux("kvs", "namespace", "list").stdout.split()
    assert {"nsa", "nsb", "primary"} <= set(listing)
    kvs2.flux("kvs", "-N", "nsa", "put", "nk=in-nsa")
    assert kvs2.flux("kvs", "-N", "nsa", "get", "nk").stdout.strip() == "in-nsa"
    assert kvs2.flux("kvs", "get", "nk", check=False).returncode == 1  # not in primary
    assert kvs2.flux("kvs", "-N", "nsb", "get", "nk", check=False).returncode == 1
    r = kvs2.flux("kvs", "namespace", "create", "nsa", check=False)
    assert r.returncode == 1 and "exists" in r.stderr
    kvs2.flux("kvs", "namespace", "remove", "nsa", "nsb")
    listing = kvs2.flux("kvs", "namespace", "list").stdout.split()
    assert "nsa" not in listing and "nsb" not in listing and "primary" in listing
    r = kvs2.flux("kvs", "-N", "nsa", "get", "nk", check=False)
    assert r.returncode == 1
    assert "nsa" in r.stderr
    r = kvs2.flux("kvs", "namespace", "remove", "primary", check=False)
    assert r.returncode == 1


# ---- eventlogs ----------------------------------------------------------------------

def test_eventlog_append_get(kvs2):
    kvs2.flux("kvs", "eventlog", "append", "el.log", "first", '{"a":1}')
    kvs2.flux("kvs", "eventlog", "append", "-t", "1.5", "el.log", "second")
    lines = kvs2.flux("kvs", "eventlog", "get", "el.log").stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].split()[1:] == ["first", "a=1"]
    assert lines[1].split() == ["1.500000", "second"]
    raw = [json.loads(x) for x in kvs2.flux("kvs", "eventlog", "get", "-u", "el.log").stdout.splitlines()]
    assert [e["name"] for e in raw] == ["first", "second"]
    assert raw[0]["context"] == {"a": 1}
    r = kvs2.flux("kvs", "eventlog", "append", "el.log", "bad", "[1]", check=False)
    assert r.returncode == 1 and "object" in r.stderr


def test_eventlog_wait_event_existing_from_rank1(kvs2):
    kvs2.flux("kvs", "eventlog", "append", "we1.log", "start")
    kvs2.flux("kvs", "eventlog", "append", "we1.log", "done")
    out = kvs2.flux("exec", "-r", "1", "flux", "kvs", "eventlog", "wait-event", "we1.log", "done",
                    timeout=30).stdout
    assert out.split()[1] == "done"


def test_eventlog_wait_event_future_from_rank1(kvs2):
    kvs2.flux("kvs", "eventlog", "append", "we2.log", "start")
    proc = _popen(kvs2, "exec", "-r", "1", "flux", "kvs", "eventlog", "wait-event", "-v", "we2.log", "finish")
    try:
        line = _readline(proc)  # -v prints "start" once the watch is in place
        assert line.split()[1:2] == ["start"], line
        kvs2.flux("kvs", "eventlog", "append", "we2.log", "other")
        kvs2.flux("kvs", "eventlog", "append", "we2.log", "finish", '{"rc":0}')
        rc, out, err = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, err
    names = [line.split()[1] for line in out.splitlines()]
    assert names == ["other", "finish"]


def test_eventlog_wait_event_timeout(kvs2):
    kvs2.flux("kvs", "eventlog", "append", "wt.log", "start")
    r = kvs2.flux("kvs", "eventlog", "wait-event", "-t", "0.5", "wt.log", "never", check=False, timeout=30)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("flux-kvs: ") and len(r.stderr.splitlines()) == 1, r.stderr


def test_eventlog_wait_event_timeout_message(kvs2):
    kvs2.flux("kvs", "eventlog", "append", "wt2.log", "start")
    r = kvs2.flux("kvs", "eventlog", "wait-event", "-t", "0.3", "wt2.log", "never", check=False, timeout=30)
    assert r.returncode == 1
    assert "None" not in r.stderr, r.stderr
    assert "never" in r.stderr, r.stderr


# ---- watches ------------------------------------------------------------------------

def test_get_watch_sees_successive_values(kvs2):
    kvs2.flux("kvs", "put", "wa.k=v0")
    proc = _popen(kvs2, "kvs", "get", "-w", "-c", "3", "wa.k")
    try:
        assert _readline(proc) == "v0\n"
        kvs2.flux("kvs", "put", "wa.k=v1")
        assert _readline(proc) == "v1\n"
        kvs2.flux("kvs", "put", "wa.k=v2")
        rc, out, err = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, err
    assert out == "v2\n"


def test_get_watch_waitcreate_cli(kvs2):
    proc = _popen(kvs2, "kvs", "get", "-w", "-W", "-c", "2", "wc.k")
    try:
        time.sleep(0.3)  # not needed for correctness: a late watch sees the value as current
        kvs2.flux("kvs", "put", "wc.k=first")
        assert _readline(proc) == "first\n"
        kvs2.flux("kvs", "put", "wc.k=second")
        rc, out, err = _finish(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, err
    assert out == "second\n"


def test_watch_without_waitcreate_missing_key_fails(kvs2):
    r = kvs2.flux("kvs", "get", "-w", "nw.missing", check=False)
    assert r.returncode == 1
    assert "no such key" in r.stderr


def test_watch_waitcreate_handle(kvs2):
    """The watch is in place before the key exists (a later request on the same
    connection has been answered), then sees it created."""
    with Flux(kvs2.uri) as h:
        watch = h.rpc("kvs.watch", {"key": "wh.k", "waitcreate": True}, flags=STREAMING)
        with pytest.raises(OSError):
            h.rpc("kvs.get", {"key": "wh.k"}).get(timeout=10)
        assert not watch._queue
        kvs2.flux("kvs", "put", "-j", "wh.k=7")
        assert watch.get(timeout=10) == {"key": "wh.k", "value": 7}
        kvs2.flux("kvs", "unlink", "wh.k")
        with pytest.raises(OSError) as exc:
            watch.get(timeout=10)
        assert exc.value.errno == 2  # ENOENT: the key was removed


# ---- malformed commits --------------------------------------------------------------

@pytest.mark.parametrize("payload,errnum,text", [
    ({"ops": "put x"}, 71, "ops must be a non-empty list"),
    ({"ops": []}, 71, "ops must be a non-empty list"),
    ({"ops": [5]}, 71, "must be an object"),
    ({"ops": [{"op": "frob", "key": "mc.a"}]}, 71, "unknown op"),
    ({"ops": [{"op": "append", "key": "mc.s", "value": 5}]}, 22, "must be a string"),
    ({"ops": [{"op": "put", "key": "mc.ok", "value": 1},
              {"op": "append", "key": "mc.num", "value": "x"}]}, 22, "not a string"),
    ({"ops": [{"op": "put", "key": ".", "value": 1}]}, 22, "root"),
    ({"ops": [{"op": "put", "key": 5, "value": 1}]}, 22, "key must be a string"),
    ("not an object", 71, "ops must be a non-empty list"),
])
def test_malformed_commit(kvs2, payload, errnum, text):
    with Flux(kvs2.uri) as h:
        h.rpc("kvs.commit", {"ops": [{"op": "put", "key": "mc.num", "value": 1}]}).get(timeout=10)
        with pytest.raises(OSError) as exc:
            h.rpc("kvs.commit", payload).get(timeout=10)
        assert exc.value.errno == errnum
        assert text in str(exc.value)
        # nothing of a rejected commit is applied, and the KVS still works
        with pytest.raises(OSError):
            h.rpc("kvs.get", {"key": "mc.ok"}).get(timeout=10)
        assert h.rpc("kvs.get", {"key": "mc.num"}).get(timeout=10)["value"] == 1
        h.rpc("kvs.commit", {"ops": [{"op": "put", "key": "mc.after", "value": "fine"}]}).get(timeout=10)
        assert h.rpc("kvs.get", {"key": "mc.after"}).get(timeout=10)["value"] == "fine"
    assert kvs2.flux("kvs", "get", "mc.after").stdout.strip() == "fine"


def test_restart_restores_same_tree(tmp_path):
    """What ls -R shows after a restart on the same statedir is what it showed before."""
    statedir = tmp_path / "state"
    ops = ("flux kvs put a=1 && flux kvs put a.b=2 && flux kvs put -j c.d='{\"x\":1}' c.e=3 && "
           "flux kvs put c=5 && flux kvs mkdir m.n && flux kvs put m.n.o=1 && flux kvs unlink m.n.o && "
           "flux kvs put -j z.y=1 z=2 z.w=3 && flux kvs eventlog append ev.log e1 && "
           "flux kvs namespace create rs && flux kvs -N rs put k.l=1 && flux kvs dir -R .")
    before = flux("start", "--test-size=2", f"-Sstatedir={statedir}", "sh", "-c", ops)
    assert before.returncode == 0, before.stderr
    after = flux("start", f"-Sstatedir={statedir}", "sh", "-c", "flux kvs dir -R . && flux kvs -N rs get k.l")
    assert after.returncode == 0, after.stderr
    # admin.eventlog (flux startlog) gains each run's finish and start: the rest is as it was
    def user(text):
        return re.sub(r"admin\.eventlog = (\{.*\}\n)+\n", "", text).splitlines()
    assert user(after.stdout) == user(before.stdout) + ["1"]
    assert "a.b = 2" in after.stdout and "c = 5" in after.stdout and "z.w = 3" in after.stdout


def test_restart_keeps_emptied_directory(tmp_path):
    statedir = tmp_path / "state"
    before = flux("start", f"-Sstatedir={statedir}", "sh", "-c",
                  "flux kvs put p.q=1 && flux kvs unlink p.q && flux kvs ls -F")
    assert before.returncode == 0, before.stderr
    assert before.stdout.split() == ["admin.", "p."]  # admin.: the start log (flux startlog)
    after = flux("start", f"-Sstatedir={statedir}", "flux", "kvs", "ls", "-F")
    assert after.returncode == 0, after.stderr
    assert after.stdout.split() == ["admin.", "p."]
