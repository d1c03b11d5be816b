"""JobSpec NG (seed 002) documents checked and planned without an instance:
every bad document is one error naming its path; good ones become Jobspec V1
units in dependency order."""

import stat

import pytest
import yaml

from flux_launch.job.ng import is_ng
from flux_launch.job.ng.plan import build, shape, v1_resources
from flux_launch.job.ng.schema import NGError
from flux_launch.proto.jobspec import validate


def _plan(text, **kw):
    return build(yaml.safe_load(text), env={"PATH": "/bin"}, cwd="/work", **kw)


def _err(text):
    with pytest.raises(NGError) as exc:
        _plan(text)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize("text, want", [
    ("tasks: []\nbogus: 1", "(top level): unknown key 'bogus'"),
    ("version: 2\ntasks: [{command: x}]", "version: must be 1 (got 2)"),
    ("resources: {}", "(top level): a workflow needs tasks or groups"),
    ("tasks: [{command: true}]", "tasks[0].command: must be a string or a list of strings (got boolean True)"),
    ("tasks: [{command: [a, 1]}]", "tasks[0].command"),
    ("tasks: [{command: x, replicas: 0}]", "tasks[0].replicas: must be at least 1 (got 0)"),
    ("tasks: [{command: x, replicas: two}]", "tasks[0].replicas: must be an integer (got string 'two')"),
    ("tasks: [{command: x, attributes: {envirionment: {A: b}}}]",
     "tasks[0].attributes: unknown key 'envirionment' (did you mean 'environment'?)"),
    ("tasks: [{command: x, resources: {type: node, count: 1, command: [y]}}]",
     "tasks[0].resources: unknown key 'command' (a key of tasks[0]: is it indented too far?)"),
    ("tasks: [{command: x, resources: {count: 1}}]", "tasks[0].resources: type is required"),
    ("tasks: [{command: x, resources: {type: node, count: 0}}]", "tasks[0].resources.count: must be at least 1"),
    ("tasks: [{command: x, steps: [{name: copy, path: /x}]}]", "tasks[0].steps[0].name: must be one of stage"),
    ("tasks: [{name: a b, command: x}]", "tasks[0].name: 'a b' is not a name"),
    ("groups: [{name: g}]", "groups[0]: tasks is required"),
])
def test_schema_errors_name_the_path(text, want):
    assert _err(text).startswith(want)


@pytest.mark.parametrize("text, want", [
    ("tasks: [{name: a, command: x}, {name: b, command: x}, {command: x, depends_on: [a, prep]}]",
     'tasks[2].depends_on[1]: no task named "prep" (named here: a, b)'),
    ("tasks: [{name: a, command: x, depends_on: [b]}, {name: b, command: x, depends_on: [a]}]",
     "tasks[1].depends_on[0]: a cycle: a -> b -> a"),
    ("tasks: [{name: a, command: x, depends_on: [a]}]", "tasks[0].depends_on[0]: a task cannot depend on itself"),
    ("tasks: [{name: a, command: x}, {name: a, command: y}]", "tasks[1].name: a second task named 'a' here"),
    ("resources: {r: {type: node}}\ntasks: [{command: x, resources: s}]",
     "tasks[0].resources: no resources named 's' (top-level resources: r)"),
    ("tasks: [{group: nope}]", "tasks[0].group: no group named 'nope' (groups: none)"),
    ("tasks: [{name: a}]", "tasks[0]: a task needs a command (or group: NAME, or steps)"),
    ("tasks: [{command: x, local: true, replicas: 2}]", "tasks[0]: a local task runs once"),
    ("tasks: [{command: 'a \"b'}]", "tasks[0].command: No closing quotation"),
    ("tasks: [{command: x, attributes: {duration: soon}}]", "tasks[0].attributes.duration: invalid duration 'soon'"),
    ("groups: [{name: g, attributes: {duration: 60s}, tasks: [{command: x, attributes: {duration: 2m}}]}]",
     "groups[0].tasks[0].attributes.duration: 120s is longer than its group's 60s"),
    ("groups: [{name: g, tasks: [{group: h}]}, {name: h, tasks: [{group: g}]}]",
     "groups[1]: groups include each other: g -> h -> g"),
    ("groups: [{name: g, tasks: [{command: x}]}, {name: g, tasks: [{command: y}]}]",
     "groups[1].name: a second group named 'g'"),
    ("groups: [{name: g, resources: {type: node, count: 2}, tasks: [{command: x, resources: {type: node, count: 3}}]}]",
     "groups[0].tasks[0].resources: asks for 3 nodes, its group has 2"),
    ("groups: [{name: g, tasks: [{name: a, command: x}, {command: y, depends_on: [zz]}]}]",
     'groups[0].tasks[1].depends_on[0]: no task named "zz"'),
    ("tasks: [{command: x, steps: [{name: stage, path: /nonexistent/file}]}]",
     "tasks[0].steps[0].path: cannot stage /nonexistent/file: No such file or directory"),
])
def test_semantic_errors_name_the_path(text, want):
    assert _err(text).startswith(want)


def test_not_a_mapping():
    with pytest.raises(NGError, match="must be a mapping"):
        build(["a"])


def test_units_in_dependency_order_with_replicas_and_named_resources():
    plan = _plan("""
resources:
  two: {count: 2, type: node, with: [{count: 1, type: slot, with: [{count: 4, type: cores}]}]}
tasks:
- name: run
  command: [app]
  depends_on: [build]
  replicas: 3
  resources: two
- name: build
  command: make all
  resources: two
""")
    assert [(u.name, u.kind, u.replicas) for u in plan.units] == [("build", "job", 1), ("run", "job", 3)]
    build_js = plan.units[0].alternatives[0]
    validate(build_js)
    assert build_js["tasks"][0]["command"] == ["make", "all"]
    assert build_js["resources"] == [{"type": "node", "count": 2, "with": [
        {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 4}]}]}]
    assert build_js["attributes"]["system"]["job"]["name"] == "build"
    assert build_js["attributes"]["system"]["cwd"] == "/work"
    assert plan.units[1].deps == [plan.units[0]]


@pytest.mark.parametrize("spec, want, shp", [
    ({"type": "node", "count": 4}, [{"type": "node", "count": 4, "with": [
        {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 1}]}]}], (4, 1, 0)),
    ({"type": "node", "count": 8, "with": [{"type": "gpu", "count": 2}, {"type": "cores", "count": 4}]},
     [{"type": "node", "count": 8, "with": [{"type": "slot", "count": 1, "label": "task", "with": [
         {"type": "gpu", "count": 2}, {"type": "core", "count": 4}]}]}], (8, 4, 2)),
    ({"type": "node", "count": 2, "with": [{"type": "gpu", "count": 1}]},
     [{"type": "node", "count": 2, "with": [{"type": "slot", "count": 1, "label": "task", "with": [
         {"type": "gpu", "count": 1}, {"type": "core", "count": 1}]}]}], (2, 1, 1)),
    ({"type": "core", "count": 3}, [{"type": "slot", "count": 1, "label": "task", "with": [
        {"type": "core", "count": 3}]}], (0, 3, 0)),
])
def test_resources_to_v1(spec, want, shp):
    assert v1_resources(spec)[0] == want
    assert shape(spec) == shp


def test_attributes_inherit_and_task_wins():
    plan = _plan("""
attributes: {environment: {A: top, B: top}}
requires: {io.archspec: {cpu.target: amd64}}
tasks:
- command: [x]
  requires: {hardware.gpu.available: "yes"}
  attributes: {environment: {B: task, C: 1}, cwd: /tmp, duration: 5m, watch: true}
""")
    unit = plan.units[0]
    system = unit.alternatives[0]["attributes"]["system"]
    assert system["environment"] == {"PATH": "/bin", "A": "top", "B": "task", "C": "1"}
    assert system["cwd"] == "/tmp" and system["duration"] == 300 and unit.watch
    assert unit.alternatives[0]["attributes"]["user"]["requires"] == {
        "io.archspec": {"cpu.target": "amd64"}, "hardware.gpu.available": "yes"}


def test_alternatives_in_order():
    plan = _plan("""
resources:
  cpu: {type: node, count: 2, with: [{type: cores, count: 4}]}
  gpu: {type: node, count: 2, with: [{type: gpu, count: 1}]}
tasks: [{command: [x], resources: cpu|gpu}]
""")
    alts = plan.units[0].alternatives
    assert [shape_of(a) for a in alts] == [("core", 4), ("gpu", 1)]


def shape_of(js):
    first = js["resources"][0]["with"][0]["with"][0]
    return first["type"], first["count"]


def test_group_is_a_batch_carrying_its_tasks_without_itself():
    plan = _plan("""
resources:
  big: {type: node, count: 2}
  one: {type: node, count: 1}
groups:
- name: outer
  resources: big
  attributes: {environment: {WHO: outer}}
  tasks:
  - {local: true, name: start, command: echo start}
  - {group: inner, depends_on: [start]}
  - {name: test, replicas: 2, resources: one, depends_on: [inner], command: [t]}
  - {command: [u]}
- name: inner
  resources: one
  tasks: [{command: [train]}]
""")
    assert [(u.kind, u.name) for u in plan.units] == [("group", "outer")]
    batch = plan.units[0].alternatives[0]
    validate(batch)
    files = batch["attributes"]["system"]["files"]
    assert {"script", "workflow.json"} <= set(files)
    import json

    inner = json.loads(files["workflow.json"]["data"])
    assert [g["name"] for g in inner["groups"]] == ["inner"]  # not outer itself: no recursion
    assert inner["tasks"][3]["resources"] == {"type": "node", "count": 2}  # inherits the group's
    assert inner["tasks"][3]["attributes"]["environment"] == {"WHO": "outer"}
    assert batch["attributes"]["system"]["environment"]["WHO"] == "outer"
    assert batch["attributes"]["system"]["job"]["name"] == "outer"
    assert batch["resources"][0]["count"] == 2
    # the inner level is planned (checked) already
    sub = build(inner, env={}, cwd="/w")
    assert [(u.kind, u.name) for u in sub.units] == [("local", "start"), ("group", "inner"), ("job", "test"),
                                                     ("job", None)]


def test_group_without_resources_sums_its_tasks_nodes():
    plan = _plan("""
resources:
  one: {type: node, count: 1}
  three: {type: node, count: 3, with: [{type: core, count: 2}]}
groups:
- name: g
  tasks:
  - {local: true, command: echo}
  - {command: [a], resources: one}
  - {group: h}
- name: h
  resources: three
  tasks: [{command: [b]}]
""")
    assert shape({"type": "node", "count": 4, "with": [{"type": "core", "count": 2}]}) == (4, 2, 0)
    assert plan.units[0].alternatives[0]["resources"][0]["count"] == 4


def test_stage_task_files_go_to_every_job(tmp_path):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "a.txt").write_text("hello\n")
    (tmp_path / "kubeconfig").write_text("k: v\n")
    plan = build(yaml.safe_load("""
tasks:
- name: setup
  steps: [{name: stage, path: conf}]
- command: [cat]
  depends_on: [setup]
  steps: [{name: stage, path: kubeconfig}]
"""), base_dir=str(tmp_path), env={}, cwd=str(tmp_path))
    job = [u for u in plan.units if u.kind == "job"][0]
    files = job.alternatives[0]["attributes"]["system"]["files"]
    assert files["conf"]["mode"] & stat.S_IFDIR and files["conf/a.txt"]["data"] == "hello\n"
    assert files["kubeconfig"]["data"] == "k: v\n"
    validate(job.alternatives[0])


@pytest.mark.parametrize("doc, want", [
    ({"version": 1, "resources": [], "tasks": [{"command": ["x"], "slot": "task", "count": {"per_slot": 1}}],
      "attributes": {}}, False),
    ({"tasks": [{"command": "x"}]}, True),
    ({"groups": []}, True),
    ({"version": 1, "resources": {"r": {}}, "tasks": []}, True),
    ([], False),
])
def test_is_ng(doc, want):
    assert is_ng(doc) is want


def test_a_local_task_holds_back_what_follows_it():
    plan = _plan("""
tasks:
- {name: first, command: [a]}
- {name: start, local: true, command: echo, depends_on: [later]}
- {name: later, command: [b]}
- {name: after, command: [c]}
""")
    by = {u.name: u for u in plan.units}
    assert by["after"].deps == [by["start"]]  # held back by the local task before it
    assert by["later"].deps == []  # the local task waits for it: no cycle
    assert by["first"].deps == []
    assert [u.name for u in plan.units] == ["first", "later", "start", "after"]
