"""A bad ``attributes.system`` never wedges the instance: what exec, the shell or the
scheduler reads is type-checked at submit, with a one-line error; the instance goes on."""

import errno

import pytest

from flux_launch.client.handle import Flux
from flux_launch.job import JobspecV1, submit

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    from flux_launch.testing import Instance

    with Instance(size=1) as inst:
        yield inst


def _healthy(inst):
    assert inst.flux("run", "echo", "ok", timeout=30).stdout == "ok\n"
    out = inst.flux("resource", "list").stdout
    allocated = [line for line in out.splitlines() if line.split()[0] == "allocated"]
    assert allocated and allocated[0].split()[1] == "0", out
    assert "Traceback" not in inst.log(), inst.log()


@pytest.mark.parametrize("args,msg", [
    (["-S", "exec=1"], "attributes.system.exec: must be a mapping"),
    (["-S", "exec.test=[]"], "attributes.system.exec.test: must be a mapping"),
    (["-S", "exec.test.run_duration=soon"], "attributes.system.exec.test.run_duration: must be a duration"),
    (["-S", "exec.test.wait_status=-1"], "attributes.system.exec.test.wait_status: must be a wait status"),
    (["-S", "exec.test.mock_exception=later"], "attributes.system.exec.test.mock_exception: must be init or run"),
    (["-S", "shell=x"], "attributes.system.shell: must be a mapping"),
    (["-S", "shell.options=1"], "attributes.system.shell.options: must be a mapping"),
    # shell options: the CLI may check them first, in its own words; either way one line naming it
    (["-o", "verbose=loud"], "verbose"),
    (["-o", "exit-timeout=later"], "exit-timeout"),
    (["-o", "pmi-simple.exchange.k=0"], "pmi-simple.exchange.k"),
    (["-o", "output=1"], "output"),
    (["-o", "input.stdin=1"], "input.stdin"),
    (["-S", "job.name=1"], "attributes.system.job.name: must be a string"),
])
def test_bad_attribute_refused_at_submit(inst, args, msg):
    r = inst.flux("submit", *args, "true", check=False)
    assert r.returncode != 0
    assert msg in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    _healthy(inst)


@pytest.mark.parametrize("system,msg", [
    ({"exec": 1}, "attributes.system.exec: must be a mapping"),
    ({"exec": {"test": {"run_duration": []}}}, "attributes.system.exec.test.run_duration"),
    ({"shell": {"options": {"cpu-affinity": 7}}}, "cpu-affinity: invalid value 7"),
    ({"shell": {"options": {"verbose": "loud"}}}, "attributes.system.shell.options.verbose: must be an integer"),
    ({"shell": {"options": {"exit-timeout": "later"}}},
     "attributes.system.shell.options.exit-timeout: must be a duration"),
    ({"shell": {"options": {"pmi-simple": {"exchange": {"k": 0}}}}},
     "attributes.system.shell.options.pmi-simple.exchange.k: must be a positive integer"),
    ({"shell": {"options": {"output": 1}}}, "attributes.system.shell.options.output: must be a mapping"),
    ({"shell": {"options": {"input": {"stdin": 1}}}}, "attributes.system.shell.options.input.stdin: must be a mapping"),
    ({"shell": {"options": {"per-resource": {"type": "gpu"}}}}, "per-resource.type must be core or node"),
    ({"shell": {"options": {"output": {"stdout": {"type": "file", "path": 3}}}}},
     "attributes.system.shell.options.output.stdout.path: must be a string"),
])
def test_bad_attribute_refused_by_the_instance(inst, system, msg):
    """Through the Python API, without the CLI's own checks: the instance refuses."""
    js = JobspecV1.from_command(["true"])
    js.jobspec["attributes"]["system"].update(system)
    with Flux(inst.uri) as h:
        with pytest.raises(OSError) as info:
            submit(h, js.jobspec)
    assert info.value.errno == errno.EINVAL
    assert msg in info.value.strerror, info.value.strerror
    assert "\n" not in info.value.strerror
    _healthy(inst)
