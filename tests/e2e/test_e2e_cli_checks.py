"""Wrong values through the real ``flux`` commands in a running instance: each is
refused with one line and a non-zero exit (2 for usage errors), no job is
submitted, and the instance goes on. Shell options that reach the instance
without the CLI (the Python API) are refused at submit by the same checks."""

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    with Instance(size=1) as inst:
        yield inst


def _njobs(inst):
    return len(inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout.split())


@pytest.mark.parametrize("argv, code, text", [
    (["run", "-o", "verbose=abc", "true"], 1, "verbose"),
    (["run", "-o", "pmi=bogus", "true"], 1, "-o pmi: 'bogus'"),
    (["run", "--cores=0", "true"], 1, "--cores=0"),
    (["run", "--urgency=40", "true"], 1, "--urgency=40"),
    (["run", "--env=A=$NO_SUCH_VAR_XYZ", "true"], 1, "NO_SUCH_VAR_XYZ"),
    (["run", "--input=3", "true"], 1, "task 3 does not exist"),
    (["submit", "--cwd=rel", "true"], 1, "--cwd rel: not an absolute path"),
    (["submit", "-n", "x", "true"], 2, "invalid int value: 'x'"),
    (["run"], 2, "a COMMAND is required"),
    (["jobs", "-o", "{bogus}"], 1, "unknown field 'bogus'"),
    (["jobs", "-u", "no_such_user_xyz"], 1, "no such user"),
    (["cancel", "--all", "1"], 2, "not both"),
    (["submit", "-q", "bogus", "true"], 1, "'bogus' is not a valid queue"),
    (["run", "--queue=batch", "true"], 1, "'batch' is not a valid queue"),
])
def test_refused_in_one_line(inst, argv, code, text):
    before = _njobs(inst)
    r = inst.flux(*argv, check=False)
    assert r.returncode == code, r.stderr
    last = r.stderr.splitlines()[-1]
    assert text in last and len(r.stderr.splitlines()) <= 2, r.stderr
    assert "Traceback" not in r.stderr
    assert _njobs(inst) == before
    assert inst.flux("run", "echo", "ok").stdout == "ok\n"


@pytest.mark.parametrize("key, value, text", [
    ("verbose", -1, "verbose"),
    ("pmi", "bogus", "pmi"),
    ("output", {"stdout": {"type": "bogus"}}, "output.stdout.type"),
    ("gpu-affinity", "sometimes", "gpu-affinity"),
])
def test_python_api_shell_options_refused_at_submit(inst, key, value, text):
    from flux_launch.client.handle import Flux
    from flux_launch.job import JobspecV1, submit

    js = JobspecV1.from_command(["true"])
    js.cwd = "/tmp"
    js.setattr_shell_option(key, value)
    with pytest.raises(OSError) as exc:
        submit(Flux(inst.uri), js)
    assert text in exc.value.strerror, exc.value.strerror
