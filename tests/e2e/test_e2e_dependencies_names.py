"""Dependencies beyond flux-core's by id, through ``flux submit``: ``name=JOBNAME``
targets for every after* scheme, ``--dependency=singleton`` (one active job per
user and name, in submit order) and ``--begin-time`` (flux-core's ``begin-time``).
Order is checked through the eventlogs' timestamps."""

import time

import pytest
from test_e2e_dependencies import _clean, _result, _state, _submit, _ts

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    with Instance(size=1) as inst:
        yield inst


@pytest.mark.parametrize("scheme, cmd, want", [
    ("afterok", "true", "COMPLETED"),
    ("afterany", "false", "COMPLETED"),
    ("afternotok", "false", "COMPLETED"),
    ("afterstarted", "sleep 0.5", "COMPLETED"),
])
def test_every_scheme_by_name(inst, scheme, cmd, want):
    name = f"t-{scheme}"
    a = _submit(inst, f"--job-name={name}", "sh", "-c", f"sleep 0.3; {cmd}")
    b = _submit(inst, f"--dependency={scheme}:name={name}", "true")
    _clean(inst, b)
    assert _result(inst, b) == want, inst.job_eventlog(b)
    edge = "start" if scheme == "afterstarted" else "finish"
    assert _ts(inst, b, "depend") >= _ts(inst, a, edge)
    assert 'description="after-' in inst.job_eventlog(b) and f'=name={name}"' in inst.job_eventlog(b)


def test_name_picks_the_latest_and_unknown_name_fails(inst):
    _submit(inst, "--job-name=twice", "true")
    second = _submit(inst, "--job-name=twice", "sh", "-c", "sleep 0.4")
    b = _submit(inst, "--dependency=afterok:name=twice", "true")
    _clean(inst, b)
    assert _ts(inst, b, "depend") >= _ts(inst, second, "finish")
    r = inst.flux("submit", "--dependency=afterok:name=nosuchjob", "true", check=False)
    assert r.returncode == 1 and r.stderr.strip() == "flux-submit: afterok: no job of yours is named 'nosuchjob'", r


def test_singleton_one_at_a_time(inst):
    ids = [_submit(inst, "--job-name=solo", "--dependency=singleton", "sh", "-c", "sleep 0.3") for _ in range(3)]
    assert _state(inst, ids[2]) == "D"
    for jobid in ids:
        _clean(inst, jobid)
        assert _result(inst, jobid) == "COMPLETED"
    for before, after in zip(ids, ids[1:]):
        assert _ts(inst, after, "alloc") >= _ts(inst, before, "finish")


def test_begin_time(inst):
    t0 = time.time()
    a = _submit(inst, "--begin-time=+1.5s", "true")
    assert _state(inst, a) == "D"
    info = inst.flux("jobs", "-n", "-o", "{contextual_info}", a).stdout.strip()
    assert info.startswith("depends:begin-time="), info
    _clean(inst, a)
    assert _ts(inst, a, "depend") >= t0 + 1.4
    assert _result(inst, a) == "COMPLETED"


@pytest.mark.parametrize("value", ["whenever", "+1x", "25:00"])
def test_bad_begin_time_is_one_line(inst, value):
    before = inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout
    r = inst.flux("submit", f"--begin-time={value}", "true", check=False)
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r
    assert "--begin-time" in r.stderr, r.stderr
    assert inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout == before


def test_singleton_and_begin_time_survive_restart(tmp_path):
    attrs = {"statedir": tmp_path / "state"}
    with Instance(size=1, attrs=attrs) as inst:
        first = _submit(inst, "--job-name=solo", "--urgency=hold", "true")
        second = _submit(inst, "--job-name=solo", "--dependency=singleton", "true")
        later = _submit(inst, "--begin-time=+2s", "true")
        assert _state(inst, second) == "D" and _state(inst, later) == "D"
        t_later = _ts(inst, later, "submit")
        assert inst.stop() == 0
    with Instance(size=1, attrs=attrs) as inst:
        assert _state(inst, second) == "D", inst.job_eventlog(second)  # first is still pending
        inst.flux("job", "urgency", first, "default")
        _clean(inst, second)
        assert _ts(inst, second, "alloc") >= _ts(inst, first, "finish")
        _clean(inst, later)
        assert _ts(inst, later, "depend") >= t_later + 1.9
