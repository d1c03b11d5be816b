"""Tests for flux_launch.proto.jobspec (RFC 25 validation) and flux_launch.job.jobspec."""

import copy
import datetime
import importlib.util
import json
import math
import os
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flux_launch.job.jobspec import BROKER_COMMAND, Jobspec, JobspecV1
from flux_launch.proto import jobspec as pj
from flux_launch.proto.jobspec import JobspecError

HAVE_YAML = importlib.util.find_spec("yaml") is not None


def test_dumps_takes_json_dumps_options():
    js = JobspecV1.from_command(["true"])
    js.setattr("user.when", datetime.date(2026, 1, 2))
    assert json.loads(js.dumps(default=str))["attributes"]["user"]["when"] == "2026-01-02"
    assert js.dumps(indent=2, default=str) == json.dumps(js.jobspec, indent=2, default=str, ensure_ascii=False)
    js.setattr("user.when", "x")
    assert js.dumps(separators=[",", ":"], sort_keys=True) == json.dumps(
        js.jobspec, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def _roundtrip(js):
    """dumps() -> decode() must give back an equal dict."""
    text = js.dumps()
    assert text == json.dumps(js.jobspec, separators=(",", ":"), ensure_ascii=False)  # compact
    obj = pj.decode(text)
    assert obj == json.loads(json.dumps(js.jobspec))
    return obj


def test_seed_bin_true_exact_structure():
    js = JobspecV1.from_command(["/bin/true"], environment={})
    assert js.jobspec == {
        "resources": [{"type": "slot", "count": 1, "with": [{"type": "core", "count": 1}],
                       "label": "task"}],
        "tasks": [{"command": ["/bin/true"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": {"duration": 0, "environment": {}}},
        "version": 1,
    }
    assert js.version == 1 and js.duration == 0 and js.cwd is None  # flux-core leaves cwd unset
    assert pj.summary(_roundtrip(js)) == {
        "nnodes": 0, "nslots": 1, "slots_per_node": None, "cores_per_slot": 1, "gpus_per_slot": 0,
        "exclusive": False, "duration": 0.0, "ntasks": 1, "per_slot": 1, "total": None}


def test_seed_hostname_four_tasks_two_cores():
    js = JobspecV1.from_command(command=["hostname"], num_tasks=4, cores_per_task=2)
    assert js.resources == [{"type": "slot", "count": 4,
                             "with": [{"type": "core", "count": 2}], "label": "task"}]
    assert js.tasks[0]["count"] == {"per_slot": 1}
    s = pj.summary(_roundtrip(js))
    assert (s["nslots"], s["cores_per_slot"], s["ntasks"], s["nnodes"]) == (4, 2, 4, 0)
    js = JobspecV1.from_command(("echo", "hi"), environment={})  # a tuple is fine
    assert js.tasks[0]["command"] == ["echo", "hi"]


def test_environment_defaults_to_os_environ_copy(monkeypatch):
    monkeypatch.setenv("JOBSPEC_TEST_VAR", "hello")
    js = JobspecV1.from_command(["true"])
    assert js.environment["JOBSPEC_TEST_VAR"] == "hello"
    assert js.environment == dict(os.environ) and js.environment is not os.environ


COMBOS = [
    # kwargs, (nnodes, nslots, slots_per_node, cores, gpus, exclusive, ntasks, per_slot, total)
    (dict(num_tasks=1), (0, 1, None, 1, 0, False, 1, 1, None)),
    (dict(num_tasks=8, cores_per_task=4), (0, 8, None, 4, 0, False, 8, 1, None)),
    (dict(num_tasks=2, gpus_per_task=1), (0, 2, None, 1, 1, False, 2, 1, None)),
    (dict(num_tasks=2, gpus_per_task=0), (0, 2, None, 1, 0, False, 2, 1, None)),
    (dict(num_tasks=4, num_nodes=2), (2, 4, 2, 1, 0, False, 4, 1, None)),
    (dict(num_tasks=4, num_nodes=4, exclusive=True), (4, 4, 1, 1, 0, True, 4, 1, None)),
    (dict(num_tasks=5, num_nodes=4), (4, 8, 2, 1, 0, False, 5, None, 5)),
    (dict(num_tasks=7, num_nodes=3, cores_per_task=2, gpus_per_task=2), (3, 9, 3, 2, 2, False, 7, None, 7)),
    (dict(num_tasks=16, num_nodes=4, gpus_per_task=1, exclusive=True), (4, 16, 4, 1, 1, True, 16, 1, None)),
]


@pytest.mark.parametrize("kwargs,expected", COMBOS)
def test_from_command_combinations(kwargs, expected):
    js = JobspecV1.from_command(["app", "-x"], environment={}, **kwargs)
    s = pj.summary(_roundtrip(js))
    got = (s["nnodes"], s["nslots"], s["slots_per_node"], s["cores_per_slot"],
           s["gpus_per_slot"], s["exclusive"], s["ntasks"], s["per_slot"], s["total"])
    assert got == expected
    has_gpu = any(v["type"] == "gpu" for v in js)
    assert has_gpu == bool(kwargs.get("gpus_per_task"))
    if kwargs.get("exclusive"):
        assert js.resources[0]["exclusive"] is True
    else:
        assert "exclusive" not in js.resources[0]


@pytest.mark.parametrize("duration,seconds", [
    (0, 0.0), (60, 60.0), (1.5, 1.5), ("30s", 30.0), ("10m", 600.0), ("2h", 7200.0),
    ("1d", 86400.0), ("500ms", 0.5), (datetime.timedelta(minutes=3), 180.0),
])
def test_duration_number_fsd_timedelta(duration, seconds):
    js = JobspecV1.from_command(["true"], duration=duration, environment={})
    assert js.duration == pytest.approx(seconds)
    assert isinstance(js.duration, float)
    assert pj.summary(_roundtrip(js))["duration"] == pytest.approx(seconds)


@pytest.mark.parametrize("bad,exc", [
    (-1, JobspecError), ("-5s", JobspecError), ("10x", JobspecError), ("inf", JobspecError),
    (math.nan, JobspecError), (math.inf, JobspecError), ([1], TypeError), (True, TypeError),
])
def test_duration_setter_rejects(bad, exc):
    js = JobspecV1.from_command(["true"], environment={})
    with pytest.raises(exc):
        js.duration = bad
    assert js.duration == 0


def test_extra_options():
    js = JobspecV1.from_command(
        ["app"], environment={"A": "1"}, env_expand={"B": "{{id}}"}, cwd=pathlib.Path("/tmp"),
        rlimits={"nofile": 100}, name="myjob", input="in.txt", output="out.txt",
        error=pathlib.Path("err.txt"), label_io=True, unbuffered=True, queue="batch", bank="b1")
    system = js.attributes["system"]
    assert system["cwd"] == "/tmp" and js.cwd == "/tmp"
    assert system["job"] == {"name": "myjob"}
    assert system["queue"] == "batch" and js.queue == "batch" and system["bank"] == "b1"
    opts = system["shell"]["options"]
    assert opts["env-expand"] == {"B": "{{id}}"} and opts["rlimit"] == {"nofile": 100}
    assert opts["input"]["stdin"] == {"type": "file", "path": "in.txt"}
    assert opts["output"]["stdout"] == {"type": "file", "path": "out.txt", "label": True,
                                        "buffer": {"type": "none"}}
    assert opts["output"]["stderr"]["path"] == "err.txt" and opts["output"]["stderr"]["label"]
    assert (js.input, js.output, js.error) == ("in.txt", "out.txt", "err.txt")
    assert (js.stdin, js.stdout, js.stderr) == ("in.txt", "out.txt", "err.txt")
    assert js.unbuffered is True
    js.unbuffered = False
    assert js.unbuffered is False
    assert "buffer" not in opts["output"]["stdout"] and "buffer" not in opts["output"]["stderr"]
    assert "batch-timeout" not in opts["output"] and opts["input"] == {"stdin": {
        "type": "file", "path": "in.txt"}}
    js2 = JobspecV1.from_command(["app"], environment={}, unbuffered=True)
    js2.unbuffered = False
    assert js2.attributes["system"]["shell"]["options"] == {}
    _roundtrip(js)
    for attr in ("output", "error", "input", "queue", "unbuffered"):
        with pytest.raises(TypeError):
            setattr(js, attr, 5)


@pytest.mark.parametrize("out", ["none", "kvs"])
def test_output_none_or_kvs_sets_no_file(out):
    js = JobspecV1.from_command(["app"], environment={}, output=out, error=out, label_io=True)
    assert js.output is None and js.error is None
    assert "shell" not in js.attributes["system"]


def test_setattr_getattr_prefixes():
    js = JobspecV1.from_command(["true"], environment={})
    js.setattr("foo.bar", 1)  # no prefix: under system
    assert js.attributes["system"]["foo"] == {"bar": 1}
    js.setattr("user.x", "y")
    assert js.attributes["user"] == {"x": "y"}
    js.setattr("attributes.system.z", 3)
    assert js.getattr("z") == 3 and js.getattr("system.z") == 3
    assert js.getattr("attributes.system.foo.bar") == 1 and js.getattr("user.x") == "y"
    with pytest.raises(KeyError):
        js.getattr("nope.nothing")
    js.setattr_shell_option("verbose", 2)
    assert js.getattr("shell.options.verbose") == 2
    with pytest.raises(TypeError):
        js.setattr("z.deeper", 1)  # system.z is an int


def test_environment_setter():
    js = JobspecV1.from_command(["true"], environment={})
    env = {"PATH": "/bin", "UNSET_ME": None}
    js.environment = env
    assert js.environment is env
    _roundtrip(js)
    with pytest.raises(JobspecError, match=r"environment\.X"):
        js.environment = {"X": 1}
    with pytest.raises(JobspecError, match="environment"):
        js.environment = ["X=1"]
    with pytest.raises(JobspecError, match="environment"):
        JobspecV1.from_command(["true"], environment={"A": b"x"})


@pytest.mark.parametrize("kwargs,field", [
    (dict(num_tasks=0), "num_tasks"), (dict(num_tasks=-1), "num_tasks"),
    (dict(num_tasks=1.5), "num_tasks"), (dict(num_tasks=True), "num_tasks"),
    (dict(cores_per_task=0), "cores_per_task"), (dict(gpus_per_task=-1), "gpus_per_task"),
    (dict(num_nodes=0), "num_nodes"), (dict(num_tasks=2, num_nodes=3), "num_nodes"),
    (dict(exclusive=True), "exclusive"), (dict(env_expand=["x"]), "env_expand"),
    (dict(rlimits=5), "rlimits"), (dict(name=5), "job.name"), (dict(cwd=5), "cwd"),
])
def test_from_command_bad_args(kwargs, field):
    with pytest.raises(JobspecError, match=field.replace(".", r"\.")):
        JobspecV1.from_command(["true"], environment={}, **kwargs)


@pytest.mark.parametrize("command", ["hostname", [], ["a", 1], [None], 42])
def test_from_command_bad_command(command):
    with pytest.raises(JobspecError, match=r"tasks\[0\]\.command: must be a non-empty list"):
        JobspecV1.from_command(command, environment={})


def test_from_nest_command():
    js = JobspecV1.from_nest_command(["sleep", "1"], num_slots=2, cores_per_slot=4,
                                     num_nodes=2, broker_opts=["-Sfoo=bar"],
                                     conf={"resource": {"noverify": True}}, environment={})
    assert js.tasks[0]["command"] == [*BROKER_COMMAND, "-Sfoo=bar", "-c{{tmpdir}}/conf.json",
                                      "sleep", "1"]
    opts = js.attributes["system"]["shell"]["options"]
    assert opts["per-resource"] == {"type": "node"}
    assert (opts["mpi"], opts["exit-timeout"], opts["pmi"]) == ("none", "none", "simple")
    conf = js.attributes["system"]["files"]["conf.json"]
    assert conf["data"] == {"resource": {"noverify": True}} and conf["mode"] == 0o100600
    s = pj.summary(_roundtrip(js))
    assert (s["nnodes"], s["nslots"], s["cores_per_slot"], s["ntasks"]) == (2, 2, 4, 2)


def test_from_batch_command():
    script = "#!/bin/sh\nflux run hostname\n"
    js = JobspecV1.from_batch_command(script, "myscript", args=["a", "b"], num_slots=3,
                                      gpus_per_slot=1, environment={}, duration="1h")
    assert js.tasks[0]["command"] == [*BROKER_COMMAND, "{{tmpdir}}/script", "a", "b"]
    files = js.attributes["system"]["files"]
    assert files["script"] == {"mode": 0o100700, "data": script, "encoding": "utf-8"}
    assert js.getattr("job.name") == "myscript" and js.duration == 3600.0
    s = pj.summary(_roundtrip(js))
    assert (s["nslots"], s["gpus_per_slot"], s["ntasks"]) == (3, 1, 3)
    with pytest.raises(JobspecError, match="#!"):
        JobspecV1.from_batch_command("echo hi\n", "bad", environment={})


def test_add_file_from_path(tmp_path):
    p = tmp_path / "data.bin"
    p.write_bytes(b"\xff\x00")
    js = JobspecV1.from_command(["true"], environment={})
    js.add_file("blob", str(p))
    ref = js.attributes["system"]["files"]["blob"]
    assert ref["encoding"] == "base64" and ref["data"] == "/wA=" and ref["size"] == 2
    with pytest.raises(TypeError):
        js.add_file("x", 5)


BASE = {
    "resources": [{"type": "node", "count": 2, "with": [
        {"type": "slot", "count": 2, "label": "task",
         "with": [{"type": "core", "count": 2}, {"type": "gpu", "count": 1}]}]}],
    "tasks": [{"command": ["app"], "slot": "task", "count": {"per_slot": 1}}],
    "attributes": {"system": {"duration": 0}}, "version": 1,
}


def _slot(js):
    return js["resources"][0]["with"][0]


def _res(**kw):
    return lambda j: j["resources"][0].update(**kw)


def _sys(**kw):
    return lambda j: j["attributes"]["system"].update(**kw)


def _task(**kw):
    return lambda j: j["tasks"][0].update(**kw)


def _mutate(fn):
    js = copy.deepcopy(BASE)
    fn(js)
    return js


def test_base_is_valid():
    assert pj.validate(copy.deepcopy(BASE)) == BASE
    assert pj.summary(BASE)["ntasks"] == 4


INVALID = [
    ("missing version", lambda j: j.pop("version"), "jobspec: version: missing"),
    ("version 2", lambda j: j.update(version=2), "jobspec: version: unsupported version 2"),
    ("version str", lambda j: j.update(version="1"), "jobspec: version:"),
    ("version bool", lambda j: j.update(version=True), "jobspec: version:"),
    ("extra top key", lambda j: j.update(foo=1), "jobspec: foo: unknown top-level key"),
    ("missing tasks", lambda j: j.pop("tasks"), "jobspec: tasks: missing"),
    ("empty command", _task(command=[]), r"tasks\[0\]\.command"),
    ("string command", _task(command="app"), r"tasks\[0\]\.command"),
    ("non-str arg", _task(command=["app", 3]), r"tasks\[0\]\.command"),
    ("node count 0", _res(count=0), r"resources\[0\]\.count"),
    ("node count float", _res(count=2.0), r"resources\[0\]\.count"),
    ("node count bool", _res(count=True), r"resources\[0\]\.count"),
    ("node count range", _res(count={"min": 1}), r"resources\[0\]\.count: .*range"),
    ("slot count 0", lambda j: _slot(j).update(count=0), r"resources\[0\]\.with\[0\]\.count"),
    ("core count 0", lambda j: _slot(j)["with"][0].update(count=0),
     r"resources\[0\]\.with\[0\]\.with\[0\]\.count"),
    ("gpu count 0", lambda j: _slot(j)["with"][1].update(count=0),
     r"resources\[0\]\.with\[0\]\.with\[1\]\.count"),
    ("gpus without cores", lambda j: _slot(j)["with"].pop(0),
     r"resources\[0\]\.with\[0\]\.with: must contain a core"),
    ("two cores", lambda j: _slot(j)["with"].__setitem__(1, {"type": "core", "count": 1}),
     r"with\[1\]\.type: duplicate core"),
    ("memory vertex", lambda j: _slot(j)["with"].__setitem__(1, {"type": "memory", "count": 1}),
     r"with\[1\]\.type"),
    ("no slot", lambda j: j["resources"][0].pop("with"),
     r"resources\[0\]\.with: a node must have exactly one slot"),
    ("two resources", lambda j: j["resources"].append(copy.deepcopy(j["resources"][0])),
     "jobspec: resources:"),
    ("top-level core", lambda j: j.update(resources=[{"type": "core", "count": 1}]),
     r"resources\[0\]\.type"),
    ("slot label missing", lambda j: _slot(j).pop("label"), r"with\[0\]\.label"),
    ("unknown vertex key", lambda j: _slot(j).update(color="red"), r"with\[0\]\.color"),
    ("exclusive non-bool", _res(exclusive="yes"), r"resources\[0\]\.exclusive"),
    ("two tasks", lambda j: j["tasks"].append(copy.deepcopy(j["tasks"][0])),
     "jobspec: tasks: must be a list of exactly one task"),
    ("slot label mismatch", _task(slot="other"),
     r"tasks\[0\]\.slot: 'other' does not match the slot label 'task'"),
    ("per_slot and total", lambda j: j["tasks"][0]["count"].update(total=4),
     r"tasks\[0\]\.count: must have exactly one of per_slot or total"),
    ("no count key", _task(count={}), r"tasks\[0\]\.count"),
    ("per_resource", _task(count={"per_resource": {"type": "core"}}),
     r"tasks\[0\]\.count\.per_resource"),
    ("per_slot 0", _task(count={"per_slot": 0}), r"tasks\[0\]\.count\.per_slot"),
    ("total float", _task(count={"total": 2.5}), r"tasks\[0\]\.count\.total"),
    ("total > slots", _task(count={"total": 5}), r"tasks\[0\]\.count\.total: must be between"),
    ("total < nodes", _task(count={"total": 1}), r"tasks\[0\]\.count\.total: must be between"),
    ("unknown task key", _task(distribution="x"), r"tasks\[0\]\.distribution"),
    ("no system", lambda j: j.update(attributes={}), r"attributes\.system: missing"),
    ("no duration", lambda j: j["attributes"].update(system={"cwd": "/"}),
     r"attributes\.system\.duration: missing"),
    ("negative duration", _sys(duration=-1), r"attributes\.system\.duration"),
    ("string duration", _sys(duration="10m"), r"attributes\.system\.duration"),
    ("bool duration", _sys(duration=True), r"attributes\.system\.duration"),
    ("env non-string", _sys(environment={"A": 1}), r"attributes\.system\.environment\.A"),
    ("env list", _sys(environment=["A=1"]), r"attributes\.system\.environment"),
    ("cwd int", _sys(cwd=1), r"attributes\.system\.cwd"),
    ("queue int", _sys(queue=1), r"system\.queue"),
    ("job name int", _sys(job={"name": 1}), r"system\.job\.name"),
    ("shell options list", _sys(shell={"options": []}), r"system\.shell\.options"),
    ("dependency no scheme", _sys(dependencies=[{"value": "x"}]),
     r"system\.dependencies\[0\]\.scheme"),
    ("constraint bad op", _sys(constraints={"xor": []}), r"system\.constraints\.xor"),
    ("unknown attributes section", lambda j: j["attributes"].update(foo={}), r"attributes\.foo"),
    ("user not dict", lambda j: j["attributes"].update(user=[]), r"attributes\.user"),
]


@pytest.mark.parametrize("why,mutate,pattern", INVALID, ids=[c[0] for c in INVALID])
def test_validate_rejects(why, mutate, pattern):
    js = _mutate(mutate)
    with pytest.raises(JobspecError, match=pattern) as info:
        pj.validate(js)
    assert str(info.value).startswith("jobspec: ") and "\n" not in str(info.value)
    with pytest.raises(JobspecError):
        pj.decode(json.dumps(js))
    if set(js) == Jobspec.top_level_keys:
        with pytest.raises(ValueError, match=pattern):  # JobspecV1 raises it too
            JobspecV1(**js)


VALID_EXTRAS = [
    _sys(unknown_thing={"a": [1]}),  # RFC 14: no error
    lambda j: j["attributes"].update(user={"anything": [1, {"x": None}]}),
    _sys(environment={"A": "1", "B": None}),
    _sys(duration=12.5, cwd="/tmp", queue="q"),
    _sys(dependencies=[{"scheme": "afterok", "value": "f1"}],
         constraints={"and": [{"properties": ["amd"]}, {"not": [{"hostlist": ["n1"]}]}]}),
    _task(count={"total": 3}),
    _task(count={"per_slot": 2}),  # flux-core accepts > 1
    _task(attributes={"x": 1}),
    lambda j: _slot(j)["with"].pop(1),  # no gpu
    _res(exclusive=False, unit="x"),
    lambda j: j.update(resources=[_slot(j)]),  # top-level slot
]


@pytest.mark.parametrize("mutate", VALID_EXTRAS)
def test_validate_accepts(mutate):
    js = _mutate(mutate)
    assert pj.validate(js) is js
    assert pj.decode(json.dumps(js).encode()) == js


def test_summary_per_slot_and_top_slot():
    js = _mutate(_task(count={"per_slot": 2}))
    assert pj.summary(js)["ntasks"] == 8
    js = _mutate(lambda j: j.update(resources=[_slot(j)]))
    s = pj.summary(js)
    assert (s["nnodes"], s["nslots"], s["slots_per_node"], s["gpus_per_slot"]) == (0, 2, None, 1)
    with pytest.raises(JobspecError, match="cannot summarize"):
        pj.summary({"resources": []})


@pytest.mark.parametrize("data", [b"{", '{"version": 1', b"\xff\xfe", "[1, 2", b"{} x",
                                  '{"x": NaN}', "", "  "])
def test_decode_bad_json(data):
    with pytest.raises(JobspecError, match="jobspec: invalid JSON"):
        pj.decode(data)
    with pytest.raises(JobspecError, match="jobspec: must be a mapping"):
        pj.decode("[1]")


RFC25_YAML = """\
version: 1
resources:
  - type: node
    count: 4
    with:
      - {type: slot, count: 1, label: default, with: [{type: core, count: 2}]}
tasks:
  - {command: [ "app" ], slot: default, count: {per_slot: 1}}
attributes:
  system: {duration: 3600., cwd: /home/flux, environment: {HOME: /home/flux}}
"""


def test_yaml_rfc25_example():
    js = pj.decode(RFC25_YAML)
    s = pj.summary(js)
    assert (s["nnodes"], s["nslots"], s["cores_per_slot"], s["ntasks"]) == (4, 4, 2, 4)
    assert s["duration"] == 3600.0
    assert JobspecV1.from_yaml_stream(RFC25_YAML).cwd == "/home/flux"
    with pytest.raises(JobspecError, match="invalid YAML"):
        pj.decode("a: [1\nb: :")


def test_yaml_without_pyyaml_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "yaml", None)  # import yaml now fails
    with pytest.raises(JobspecError, match="YAML jobspecs need PyYAML"):
        pj.decode(RFC25_YAML)
    with pytest.raises(JobspecError, match="YAML jobspecs need PyYAML"):
        JobspecV1.from_yaml_stream(RFC25_YAML)


def test_from_yaml_file_with_json(tmp_path):
    src = JobspecV1.from_command(["hostname"], num_tasks=3, environment={})
    path = tmp_path / "js.json"
    path.write_text(src.dumps(indent=2))
    js = JobspecV1.from_yaml_file(path)
    assert isinstance(js, JobspecV1) and js.jobspec == src.jobspec
    with pytest.raises(JobspecError, match="jobspec: version: missing"):
        JobspecV1.from_yaml_stream(json.dumps({k: v for k, v in BASE.items() if k != "version"}))


def test_jobspecv1_constructor():
    js = JobspecV1(**copy.deepcopy(BASE))
    assert js.resource_counts() == {"node": 2, "slot": 4, "core": 8, "gpu": 4}
    assert [v["type"] for v in js] == ["node", "slot", "core", "gpu"]
    with pytest.raises(JobspecError, match="version: unsupported version 2"):
        JobspecV1(BASE["resources"], BASE["tasks"], BASE["attributes"], version=2)
    assert "JobspecV1(" in repr(js) and str(js) == str(js.jobspec)


def test_canonical_jobspec_is_looser():
    rfc14 = {
        "version": 2,
        "resources": [{"type": "cluster", "count": 1, "with": [
            {"type": "node", "count": {"min": 3, "max": 30, "operator": "+", "operand": 1},
             "with": [{"type": "slot", "label": "x", "count": 1,
                       "with": [{"type": "socket", "count": 2}]}]}]}],
        "tasks": [{"command": ["a"], "slot": "x", "count": {"per_resource": {"type": "node"}}},
                  {"command": ["b"], "slot": "x", "count": {"total": 2}}],
        "attributes": {},
    }
    js = Jobspec(**rfc14)
    assert js.version == 2 and js.duration is None
    with pytest.raises(JobspecError):
        JobspecV1(**rfc14)
    bad = copy.deepcopy(rfc14)
    bad["resources"][0]["with"][0]["count"] = {"min": 3, "max": 2}
    with pytest.raises(JobspecError, match=r"count\.max"):
        Jobspec(**bad)
    bad["resources"][0]["with"][0]["count"] = {"min": 1, "operator": "^", "operand": 2}
    with pytest.raises(JobspecError, match=r"count\.min"):
        Jobspec(**bad)
    with pytest.raises(JobspecError, match=r"tasks\[0\]\.command"):
        Jobspec(rfc14["resources"], [{"command": [], "slot": "x", "count": {"total": 1}}], {}, 1)


@given(ntasks=st.integers(1, 64), cores=st.integers(1, 8), gpus=st.integers(0, 4),
       nnodes=st.one_of(st.none(), st.integers(1, 64)), seconds=st.floats(0, 1e6))
def test_from_command_property(ntasks, cores, gpus, nnodes, seconds):
    if nnodes is not None and nnodes > ntasks:
        with pytest.raises(JobspecError, match="num_nodes"):
            JobspecV1.from_command(["x"], ntasks, cores, gpus, nnodes, environment={})
        return
    js = JobspecV1.from_command(["x"], num_tasks=ntasks, cores_per_task=cores,
                                gpus_per_task=gpus, num_nodes=nnodes, duration=seconds,
                                environment={})
    s = pj.summary(pj.decode(js.dumps()))
    assert s["ntasks"] == ntasks and s["nslots"] >= ntasks
    assert s["cores_per_slot"] == cores and s["gpus_per_slot"] == gpus
    assert s["nnodes"] == (nnodes or 0) and s["duration"] == pytest.approx(seconds)
    if nnodes:
        assert s["slots_per_node"] == math.ceil(ntasks / nnodes)
        assert s["nslots"] - ntasks < nnodes  # wastes less than one slot per node
