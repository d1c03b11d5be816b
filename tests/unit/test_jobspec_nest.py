"""JobspecV1.from_nest_command / from_batch_command: the jobspec flux-core builds,
and one-line errors that name the argument the caller gave."""

import pytest

from flux_launch.job.jobspec import JobspecError, JobspecV1

SCRIPT = "#!/bin/sh\necho hi\n"


def test_batch_jobspec_layout_as_flux_core():
    js = JobspecV1.from_batch_command(SCRIPT, "name", args=["a", "b c"], num_slots=4, cores_per_slot=2,
                                      gpus_per_slot=1, num_nodes=2, broker_opts=["-Sx=1"], exclusive=True,
                                      conf={"k": {"v": 1}}, environment={}, duration="1m")
    assert js.resources == [{"type": "node", "count": 2, "exclusive": True, "with": [
        {"type": "slot", "count": 2, "label": "task",
         "with": [{"type": "core", "count": 2}, {"type": "gpu", "count": 1}]}]}]
    assert js.tasks == [{"command": ["flux", "broker", "-Sx=1", "-c{{tmpdir}}/conf.json", "{{tmpdir}}/script", "a",
                                     "b c"], "slot": "task", "count": {"per_slot": 1}}]
    system = js.attributes["system"]
    assert system["job"] == {"name": "name"} and system["duration"] == 60.0
    assert system["shell"]["options"] == {"per-resource": {"type": "node"}, "mpi": "none",
                                          "exit-timeout": "none", "pmi": "simple"}
    assert system["files"] == {"conf.json": {"mode": 0o100600, "data": {"k": {"v": 1}}},
                               "script": {"mode": 0o100700, "data": SCRIPT, "encoding": "utf-8"}}


def test_nest_without_command_or_options():
    js = JobspecV1.from_nest_command([], environment={})
    assert js.tasks[0]["command"] == ["flux", "broker"]
    assert js.resources == [{"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 1}]}]
    assert "files" not in js.attributes["system"]


@pytest.mark.parametrize("script", ["echo hi\n", " #!/bin/sh\n", "", b"#!/bin/sh\n", None])
def test_batch_script_needs_a_shebang(script):
    with pytest.raises(ValueError, match=r"^jobspec: attributes\.system\.files\.script: myjob does not appear "
                                         r"to start with '#!'$"):
        JobspecV1.from_batch_command(script, "myjob")


@pytest.mark.parametrize("kwargs,field", [
    ({"args": "a b"}, "args"),
    ({"args": [1]}, "args"),
    ({"args": 3}, "args"),
    ({"broker_opts": "-Sx=1"}, "broker_opts"),
    ({"broker_opts": ["-Sx=1", None]}, "broker_opts"),
])
def test_batch_string_lists(kwargs, field):
    """A str where a list is due would split into characters: refused."""
    with pytest.raises(JobspecError, match=f"^jobspec: {field}: must be a list of strings"):
        JobspecV1.from_batch_command(SCRIPT, "x", **kwargs)


@pytest.mark.parametrize("command", ["hostname", b"hostname", ["ls", 1], 5])
def test_nest_command_must_be_a_list_of_strings(command):
    with pytest.raises(JobspecError, match="^jobspec: command: must be a list of strings"):
        JobspecV1.from_nest_command(command)


def test_args_may_be_any_iterable():
    js = JobspecV1.from_batch_command(SCRIPT, "x", args=(a for a in ["1", "2"]), broker_opts=("-Sa=b",))
    assert js.tasks[0]["command"][2:] == ["-Sa=b", "{{tmpdir}}/script", "1", "2"]


@pytest.mark.parametrize("kwargs,msg", [
    ({"num_slots": 0}, "num_slots: must be an integer >= 1 (got 0)"),
    ({"num_slots": 1.5}, "num_slots: must be an integer >= 1 (got 1.5)"),
    ({"cores_per_slot": 0}, "cores_per_slot: must be an integer >= 1 (got 0)"),
    ({"gpus_per_slot": -1}, "gpus_per_slot: must be an integer >= 0 (got -1)"),
    ({"num_nodes": 0}, "num_nodes: must be an integer >= 1 (got 0)"),
    ({"num_slots": 2, "num_nodes": 3}, "num_nodes: must not be greater than num_slots (2)"),
    ({"exclusive": True}, "exclusive: can only be set with a node count"),
])
@pytest.mark.parametrize("method", ["batch", "nest"])
def test_slot_errors_name_the_slot_arguments(method, kwargs, msg):
    with pytest.raises(JobspecError) as info:
        if method == "batch":
            JobspecV1.from_batch_command(SCRIPT, "x", **kwargs)
        else:
            JobspecV1.from_nest_command(["true"], **kwargs)
    assert str(info.value) == f"jobspec: {msg}"
