"""Fuzz ``attributes.system`` and shell options through the Python API against one real
instance: thousands of jobs (most with the test exec method, some real), random keys and
values of random types at the paths exec, the shell and the scheduler read. Each is
refused in one line or runs to INACTIVE; afterwards the instance still runs a job, holds
no resources, and its log has no traceback."""

import errno
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flux_launch.client.handle import Flux
from flux_launch.job import JobspecV1, submit_async

pytestmark = pytest.mark.e2e

BATCH = 20
EXAMPLES = 150  # BATCH * EXAMPLES jobs
ACTIVE = 0x3F  # NEW .. CLEANUP (RFC 21 state bits)

JUNK = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 40), 2 ** 40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def _or_junk(*good):
    return st.sampled_from(good) | JUNK


STREAM = st.fixed_dictionaries({}, optional={
    "type": _or_junk("kvs", "file"), "path": _or_junk("/dev/null", ""), "label": _or_junk(True, False),
    "buffer": _or_junk({"type": "line"}, {"type": "none"}, {"type": "full"})}) | JUNK

OPTIONS = st.fixed_dictionaries({}, optional={
    "verbose": _or_junk(0, 1, 2),
    "exit-timeout": _or_junk("none", 0, "1s", 30.0, "2m"),
    "pmi": _or_junk("simple", "off", "none"),
    "pmi-simple": _or_junk({"exchange": {"k": 2}}, {"exchange": {"k": 0}}, {"exchange": 1}),
    "cpu-affinity": _or_junk("on", "off", "per-task", "map:0;1", "map:", "map:x"),
    "gpu-affinity": _or_junk("on", "off", "per-task", "map:0"),
    "per-resource": _or_junk({"type": "core"}, {"type": "node", "count": 2}, {"type": "gpu"}, {"count": 0}),
    "output": st.fixed_dictionaries({}, optional={
        "stdout": STREAM, "stderr": STREAM, "limit": _or_junk("1G", "10k", "-1", "x"),
        "batch-timeout": _or_junk(0.01, -1, "1")}) | JUNK,
    "input": st.fixed_dictionaries({}, optional={"stdin": STREAM}) | JUNK,
}) | JUNK

TEST = st.fixed_dictionaries({"run_duration": _or_junk(0, "0", "0s", "1ms", 0.001)}, optional={
    "wait_status": _or_junk(0, 256, 9, 65536), "mock_exception": _or_junk("init", "run", "later")}) | JUNK

SYSTEM = st.fixed_dictionaries({}, optional={
    "duration": _or_junk(0, 0.5, 60, -1, "1m"),
    "shell": st.fixed_dictionaries({}, optional={"options": OPTIONS}) | JUNK,
    "job": st.fixed_dictionaries({}, optional={"name": _or_junk("fuzz", "")}) | JUNK,
    "queue": _or_junk("batch", ""), "cwd": _or_junk("/tmp", "/nonexistent"),
    "environment": st.dictionaries(st.sampled_from(["A", "B", "FLUX_URI"]), _or_junk("x", None), max_size=2)
    | JUNK,
    "constraints": _or_junk({"properties": ["a"]}, {"bogus": []}),
    "dependencies": _or_junk([{"scheme": "afterok", "value": "1"}], [1]),
    "files": JUNK, "preemptible-after": JUNK, "bank": JUNK,
    "fuzz-extra": JUNK,
})

# One job in 25 runs for real (shells and a task); the rest use the test exec method.
JOB = st.tuples(SYSTEM, TEST, st.integers(0, 24).map(lambda x: x == 0))


def _jobspec(system, test, real):
    js = JobspecV1.from_command(["true"])
    sysattrs = js.jobspec["attributes"]["system"]
    sysattrs.update(system)
    opts = (sysattrs.get("shell") or {}).get("options") if isinstance(sysattrs.get("shell"), dict) else None
    if real:
        sysattrs.pop("exec", None)
        if isinstance(opts, dict):  # no files written or read by a real job
            opts.pop("output", None)
            opts.pop("input", None)
            opts.pop("per-resource", None)
    else:
        sysattrs["exec"] = {"test": test}
    return js.jobspec


@pytest.fixture(scope="module")
def fuzz_instance():
    from flux_launch.testing import Instance

    with Instance(size=2) as inst:
        with Flux(inst.uri) as h:
            yield inst, h


def _active(h):
    return h.rpc("job-list.list", {"states": ACTIVE}).get(30)["jobs"]


def test_fuzz_system_attributes(fuzz_instance):
    inst, h = fuzz_instance
    accepted, refused = [], []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(JOB, min_size=BATCH, max_size=BATCH))
    def run(jobs):
        futures = [submit_async(h, _jobspec(*job)) for job in jobs]
        for fut in futures:
            try:
                accepted.append(int(fut.get_id()))
            except OSError as exc:
                # ENOENT, EPERM: a dependency on a job that does not exist or is not yours
                assert exc.errno in (errno.EINVAL, errno.EPROTO, errno.EOVERFLOW, errno.ENOENT, errno.EPERM), exc
                assert exc.strerror and "\n" not in exc.strerror, exc.strerror
                refused.append(exc.strerror)

    run()
    assert len(accepted) + len(refused) >= BATCH * EXAMPLES // 2
    assert accepted and refused
    # Every accepted job ends. Some junk is a valid long run_duration: those are
    # canceled once the rest are done, and must end too.
    deadline = time.monotonic() + 10
    while _active(h) and time.monotonic() < deadline:
        time.sleep(0.2)
    for job in _active(h):
        h.rpc("job-manager.raise", {"id": job["id"], "type": "cancel", "severity": 0, "note": "fuzz"}).get(30)
    deadline = time.monotonic() + 30
    while _active(h) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _active(h)
    assert not left, f"{len(left)} jobs never ended: {left[:3]}\n{inst.log()[-3000:]}"
    assert inst.flux("run", "-N2", "echo", "ok", timeout=30).stdout == "ok\nok\n"
    out = inst.flux("resource", "list").stdout
    assert [line.split()[1] for line in out.splitlines() if line.split()[0] == "allocated"] == ["0"], out
    log = inst.log()
    assert "Traceback" not in log and "start failed" not in log, log[-5000:]
