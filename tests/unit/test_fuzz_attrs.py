"""Property: a jobspec whose ``attributes.system`` passes validation can be read by
everything that reads it later (the job manager, exec and testexec, the job shell and
its plugins) without an exception; one that fails gets a one-line ``JobspecError``."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flux_launch.core import fsd
from flux_launch.proto import shellopts
from flux_launch.proto.jobspec import JobspecError, summary, validate
from flux_launch.services.exec import job_exec
from flux_launch.services.job_manager.job import Job
from flux_launch.shell import main as shell_main
from flux_launch.shell import rcalc
from flux_launch.shell.plugins import output

JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 70), 2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=5)


def _or_junk(*good):
    return st.sampled_from(good) | JUNK


STREAM = st.fixed_dictionaries({}, optional={"type": _or_junk("file", "kvs"), "path": _or_junk("x", ""),
                                             "label": JUNK, "buffer": JUNK}) | JUNK
OPTIONS = st.fixed_dictionaries({}, optional={
    "verbose": _or_junk(0, 2), "exit-timeout": _or_junk("none", "1s", 3), "pmi": _or_junk("simple", "off"),
    "pmi-simple": _or_junk({"exchange": {"k": 3}}, {"exchange": {}}, {}),
    "cpu-affinity": _or_junk("on", "off", "per-task", "map:0;1"), "gpu-affinity": _or_junk("on", "map:0"),
    "per-resource": _or_junk({"type": "core"}, {"type": "node", "count": 2}),
    "output": st.fixed_dictionaries({}, optional={"stdout": STREAM, "stderr": STREAM,
                                                  "limit": _or_junk("1G", 5), "batch-timeout": _or_junk(0.5)})
    | JUNK,
    "input": st.fixed_dictionaries({}, optional={"stdin": STREAM}) | JUNK,
}) | JUNK
SYSTEM = st.fixed_dictionaries({"duration": _or_junk(0, 1.5)}, optional={
    "exec": st.fixed_dictionaries({}, optional={"test": st.fixed_dictionaries({}, optional={
        "run_duration": _or_junk("0", 0, "1m"), "wait_status": _or_junk(0, 256),
        "mock_exception": _or_junk("init", "run")}) | JUNK}) | JUNK,
    "shell": st.fixed_dictionaries({}, optional={"options": OPTIONS}) | JUNK,
    "job": st.fixed_dictionaries({}, optional={"name": _or_junk("x")}) | JUNK,
    "queue": JUNK, "cwd": JUNK, "environment": JUNK, "extra": JUNK,
})


def _jobspec(system):
    return {"version": 1, "resources": [{"type": "node", "count": 2, "with": [
        {"type": "slot", "count": 1, "label": "task", "with": [{"type": "core", "count": 1}]}]}],
        "tasks": [{"command": ["true"], "slot": "task", "count": {"per_slot": 1}}],
        "attributes": {"system": system}}


def _read_like_the_instance(js):
    """What the job manager, exec, testexec and the shell read, as they read it."""
    summ = summary(js)
    job = Job(1, 0)
    job.set_jobspec(js, summ)
    system = js["attributes"]["system"]
    job_exec._exit_timeout(job)
    test = system.get("exec", {}).get("test")
    if test is not None:
        fsd.parse(str(test.get("run_duration", "0")))
    opts = system.get("shell", {}).get("options", {}) or {}
    shell_main._exit_timeout(opts.get("exit-timeout"))
    int(opts.get("verbose", 0) or 0)
    str(opts.get("pmi", "simple"))
    pmi = opts.get("pmi-simple") or {}
    int(pmi.get("exchange", {}).get("k", 2))
    shellopts.cpu_affinity(opts.get("cpu-affinity"))
    shellopts.gpu_affinity(opts.get("gpu-affinity"))
    rcalc.compute({0: {"core": [0]}, 1: {"core": [0]}}, summ, opts.get("per-resource"))
    spec = opts.get("output")
    spec = spec if isinstance(spec, dict) else {}
    shellopts.parse_size(spec.get("limit", output.DEFAULT_LIMIT))
    output._batch_timeout(spec.get("batch-timeout"))
    for stream in ("stdout", "stderr"):
        entry = spec.get(stream)
        if isinstance(entry, dict) and entry.get("type") == "file" and entry.get("path"):
            "{{taskid}}" in entry["path"]  # noqa: B015 - the output plugin's test of the template
    stdin = (opts.get("input") or {}).get("stdin") or {}
    stdin.get("type")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SYSTEM)
def test_accepted_attributes_can_be_read(system):
    js = _jobspec(system)
    try:
        validate(js)
    except JobspecError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("jobspec: "), str(exc)
        return
    _read_like_the_instance(js)


@pytest.mark.parametrize("system", [{"duration": 0, "exec": 1}, {"duration": 0, "shell": {"options": []}},
                                    {"duration": 0, "shell": {"options": {"pmi-simple": {"exchange": 1}}}}])
def test_examples_that_broke_readers_are_refused(system):
    with pytest.raises(JobspecError):
        validate(_jobspec(system))
