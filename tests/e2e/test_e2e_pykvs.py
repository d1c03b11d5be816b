"""``flux.kvs`` (flux-core's Python KVS API) and ``flux.Flux().rpc`` as flux-core
has them, as scripts inside a 2-broker instance; what they write is read back
with ``flux kvs``."""

import json
import sys
import textwrap

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    with Instance(size=2) as inst:
        yield inst


def _script(inst, tmp_path, text, env=None):
    path = tmp_path / "script.py"
    path.write_text("import errno, json, sys\nimport flux, flux.kvs\nh = flux.Flux()\n" + textwrap.dedent(text))
    r = inst.run(sys.executable, str(path), check=False, timeout=60, env=env)
    if r.returncode != 0:
        pytest.fail(f"script exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    return json.loads(r.stdout)


def test_put_commit_get(inst, tmp_path):
    r = _script(inst, tmp_path, """
        flux.kvs.put(h, "t1.obj", {"a": [1, 2]})
        flux.kvs.put(h, "t1.text", "hello")
        flux.kvs.put(h, "t1.raw", b"bytes")
        flux.kvs.put_mkdir(h, "t1.empty")
        r = {"before_commit": flux.kvs.exists(h, "t1.obj")}
        flux.kvs.commit(h)
        flux.kvs.commit(h)  # nothing staged: nothing sent
        r["values"] = [flux.kvs.get(h, "t1.obj"), flux.kvs.get(h, "t1.text"), flux.kvs.get(h, "t1.raw")]
        r["exists"] = [flux.kvs.exists(h, k) for k in ("t1", "t1.obj", "t1.empty", "t1.nope")]
        r["isdir"] = [flux.kvs.isdir(h, k) for k in ("t1", "t1.obj", "t1.empty", "t1.nope")]
        r["dirtype"] = type(flux.kvs.get(h, "t1")).__name__
        flux.kvs.put_unlink(h, "t1.text")
        flux.kvs.commit(h)
        r["unlinked"] = flux.kvs.exists(h, "t1.text")
        try:
            flux.kvs.get(h, "t1.nope")
        except OSError as exc:
            r["missing"] = exc.errno
        try:
            flux.kvs.put(h, "t1.bad", object())
        except TypeError:
            r["typeerror"] = True
        print(json.dumps(r))
    """)
    assert r["before_commit"] is False
    assert r["values"] == [{"a": [1, 2]}, "hello", "bytes"]
    assert r["exists"] == [True, True, True, False]
    assert r["isdir"] == [True, False, True, False]
    assert r["dirtype"] == "KVSDir"
    assert r["unlinked"] is False
    assert r["missing"] == 2
    assert r["typeerror"] is True
    assert json.loads(inst.flux("kvs", "get", "t1.obj").stdout) == {"a": [1, 2]}


def test_kvsdir_mapping(inst, tmp_path):
    r = _script(inst, tmp_path, """
        d0 = flux.kvs.get_dir(h)
        d0.mkdir("t2", {"x": 1, "sub.y": 2})
        d = flux.kvs.get_dir(h, "t2")
        r = {"keys": sorted(d), "len": len(d), "x": d["x"], "y": d["sub"]["y"],
             "files": sorted(d.files()), "dirs": sorted(d.directories()), "all": d.list_all(),
             "key_at": d.key_at("x"), "exists": [d.exists("x"), d.exists("nope")], "in": "x" in d}
        try:
            d["nope"]
        except KeyError:
            r["keyerror"] = True
        with flux.kvs.get_dir(h, "t2") as w:
            w["z"] = "new"
            w["sub"]["deep"] = 3  # a subdirectory read through it shares its transaction
            del w["x"]
        d = flux.kvs.get_dir(h, "t2")
        r["after"] = sorted(d)
        r["deep"] = flux.kvs.get(h, "t2.sub.deep")
        r["walk"] = [(p, sorted(ds), sorted(fs)) for p, ds, fs in flux.kvs.walk("t2", topdown=True, flux_handle=h)]
        try:
            flux.kvs.get_dir(h, "t2.z")
        except OSError as exc:
            r["notdir"] = exc.errno
        try:
            flux.kvs.get_dir(h, "t2.none")
        except OSError as exc:
            r["nodir"] = exc.errno
        with flux.kvs.KVSTxn(h, "t2.txn") as t:
            t.put("a", 1)
            t.mkdir("b")
        r["txn"] = [flux.kvs.get(h, "t2.txn.a"), flux.kvs.isdir(h, "t2.txn.b")]
        print(json.dumps(r))
    """)
    assert r["keys"] == ["sub", "x"] and r["len"] == 2
    assert (r["x"], r["y"]) == (1, 2)
    assert r["files"] == ["x"] and r["dirs"] == ["sub"] and r["all"] == [["x"], ["sub"]]
    assert r["key_at"] == "t2.x"
    assert r["exists"] == [True, False] and r["in"] is True
    assert r["keyerror"] is True
    assert r["after"] == ["sub", "z"]
    assert r["deep"] == 3
    assert r["walk"] == [["", ["sub"], ["z"]], ["sub", [], ["deep", "y"]]]
    assert r["notdir"] == 20 and r["nodir"] == 2
    assert r["txn"] == [1, True]
    assert inst.flux("kvs", "get", "t2.z").stdout.strip() == "new"


def test_commit_is_all_or_nothing_and_namespaces(inst, tmp_path):
    r = _script(inst, tmp_path, """
        flux.kvs.put(h, "t3.num", 1)
        flux.kvs.commit(h)
        flux.kvs.put(h, "t3.other", 2)
        flux.kvs.put(h, ".", 3)  # the root cannot be a value: the commit fails whole
        r = {}
        try:
            flux.kvs.commit(h)
        except OSError as exc:
            r["refused"] = exc.errno != 0
        r["other"] = flux.kvs.exists(h, "t3.other")
        flux.kvs.put(h, "t3.after", "ok")  # the failed commit's operations are gone
        flux.kvs.commit(h)
        r["after"] = flux.kvs.get(h, "t3.after")
        flux.kvs.namespace_create(h, "t3ns")
        r["spaces"] = "t3ns" in flux.kvs.namespace_list(h)
        flux.kvs.put(h, "k", "in-ns")
        flux.kvs.commit(h, namespace="t3ns")
        r["ns"] = [flux.kvs.get(h, "k", namespace="t3ns"), flux.kvs.exists(h, "k")]
        flux.kvs.namespace_remove(h, "t3ns")
        print(json.dumps(r))
    """)
    assert r == {"refused": True, "other": False, "after": "ok", "spaces": True, "ns": ["in-ns", False]}


def test_kvs_namespace_from_the_environment(inst, tmp_path):
    inst.flux("kvs", "namespace", "create", "t4ns")
    r = _script(inst, tmp_path, """
        flux.kvs.put(h, "envkey", 7)
        flux.kvs.commit(h)
        print(json.dumps([flux.kvs.get(h, "envkey"), flux.kvs.get_dir(h).list_all()]))
    """, env={"FLUX_KVS_NAMESPACE": "t4ns"})
    assert r == [7, [["envkey"], []]]
    assert inst.flux("kvs", "-N", "t4ns", "get", "envkey").stdout.strip() == "7"
    assert inst.flux("kvs", "get", "envkey", check=False).returncode != 0


def test_flux_rpc_as_flux_core(inst, tmp_path):
    r = _script(inst, tmp_path, """
        f = h.rpc("kvs.get", '{"key": "t5"}')  # a JSON text payload, as flux-core takes it
        r = {}
        try:
            f.get()
        except OSError as exc:
            r["err"] = [exc.errno, f.done]
        try:
            f.get()  # the answer stays: raised again, never a hang
        except OSError as exc:
            r["again"] = exc.errno
        p = h.rpc("broker.ping", {"seq": 9})
        r["ping"] = [p.get()["seq"], p.get()["seq"], json.loads(h.rpc("broker.ping", {"seq": 1}).get_str())["seq"]]
        got = []
        h.rpc("broker.ping", {"seq": 2}).then(lambda fut, tag: got.append([tag, fut.get()["seq"]]), "t")
        h.reactor_run()
        r["then"] = got
        print(json.dumps(r))
    """)
    assert r == {"err": [2, True], "again": 2, "ping": [9, 9, 1], "then": [["t", 2]]}
