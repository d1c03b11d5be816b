"""Job dependencies (RFC 26, flux-core's dependency-after schemes): ``--dependency``
and ``-S dependencies=`` hold a job in DEPEND (``dependency-add`` events) until
each dependency is met (``dependency-remove``, then ``depend``); one that can never
be met is a fatal ``dependency`` exception. Order is checked through the
eventlogs' timestamps."""

import json
import sys
import textwrap

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    with Instance(size=1) as inst:
        yield inst


def _events(inst, jobid):
    """``[(name, timestamp, line)]`` of the job's eventlog."""
    out = inst.flux("job", "eventlog", jobid).stdout
    return [(line.split()[1], float(line.split()[0]), line) for line in out.splitlines() if line.strip()]


def _ts(inst, jobid, name):
    for ev, ts, _line in _events(inst, jobid):
        if ev == name:
            return ts
    pytest.fail(f"no {name} event\n{inst.job_eventlog(jobid)}")


def _clean(inst, jobid):
    r = inst.flux("job", "wait-event", "-t", "30", jobid, "clean", check=False, timeout=40)
    assert r.returncode == 0, f"{r.stderr}\n{inst.job_eventlog(jobid)}"
    return _events(inst, jobid)


def _submit(inst, *args):
    return inst.flux("submit", *args).stdout.strip()


def _state(inst, jobid):
    return inst.flux("jobs", "-a", "-n", "-o", "{state_single}", jobid).stdout.strip()


def _result(inst, jobid):
    return inst.flux("jobs", "-a", "-n", "-o", "{result}", jobid).stdout.strip()


def _dependency_exception(inst, jobid, *words):
    events = _clean(inst, jobid)
    names = [e[0] for e in events]
    assert "depend" not in names and "alloc" not in names, inst.job_eventlog(jobid)
    line = next((e[2] for e in events if e[0] == "exception"), "")
    assert 'type="dependency"' in line and "severity=0" in line, inst.job_eventlog(jobid)
    for word in words:
        assert word in line, inst.job_eventlog(jobid)


def test_afterok_waits_for_success(inst):
    a = _submit(inst, "sh", "-c", "sleep 0.5")
    b = _submit(inst, f"--dependency=afterok:{a}", "true")
    events = _clean(inst, b)
    names = [e[0] for e in events]
    assert names[:4] == ["submit", "validate", "dependency-add", "dependency-remove"], names
    assert names[4:6] == ["depend", "priority"], names
    assert _result(inst, b) == "COMPLETED"
    assert _ts(inst, b, "depend") >= _ts(inst, a, "finish")
    assert _ts(inst, b, "alloc") >= _ts(inst, a, "clean")


def test_deps_listed_while_in_depend(inst):
    a = _submit(inst, "--urgency=hold", "true")
    b = _submit(inst, f"--dependency=afterany:{a}", "true")
    assert _state(inst, b) == "D"
    deps = inst.flux("jobs", "-n", "-o", "{dependencies}", b).stdout.strip()
    assert deps == f"after-finish={a}"
    assert f"after-finish={a}" in inst.flux("jobs", "-o", "deps").stdout
    # flux-core's default INFO column: depends:LIST
    assert inst.flux("jobs", "-n", "-o", "{contextual_info}", b).stdout.strip() == f"depends:after-finish={a}"
    inst.flux("cancel", a)
    _clean(inst, b)
    assert _result(inst, b) == "COMPLETED"  # afterany: canceled is an end too
    assert _ts(inst, b, "depend") >= _ts(inst, a, "clean")


def test_afterok_on_failed_job_is_an_exception(inst):
    a = _submit(inst, "sh", "-c", "exit 3")
    _clean(inst, a)
    b = _submit(inst, f"--dependency=afterok:{a}", "true")
    _dependency_exception(inst, b, "afterok: job", "failed or was canceled")


def test_afterok_on_job_canceled_while_running(inst):
    a = _submit(inst, "sleep", "60")
    b = _submit(inst, f"--dependency=afterok:{a}", "true")
    inst.flux("job", "wait-event", "-t", "30", a, "start", timeout=40)
    assert _state(inst, b) == "D"
    inst.flux("cancel", a)
    _dependency_exception(inst, b, "failed or was canceled")


def test_afternotok(inst):
    a = _submit(inst, "sh", "-c", "sleep 0.3; exit 1")
    ok = _submit(inst, f"--dependency=afternotok:{a}", "true")
    events = _clean(inst, ok)
    assert "depend" in [e[0] for e in events] and _result(inst, ok) == "COMPLETED", inst.job_eventlog(ok)
    assert _ts(inst, ok, "depend") >= _ts(inst, a, "finish")
    good = _submit(inst, "true")
    _clean(inst, good)
    never = _submit(inst, f"--dependency=afternotok:{good}", "true")
    _dependency_exception(inst, never, "afternotok: job", "succeeded")


@pytest.mark.parametrize("scheme", ["after", "afterstart", "afterstarted"])
def test_after_start(inst, scheme):
    a = _submit(inst, "sleep", "60")
    b = _submit(inst, f"--dependency={scheme}:{a}", "true")
    _clean(inst, b)
    assert _result(inst, b) == "COMPLETED"
    assert _ts(inst, b, "depend") >= _ts(inst, a, "start")
    assert _state(inst, a) == "R"  # released by the start, not the end
    inst.flux("cancel", a)
    _clean(inst, a)
    # a job that never started can never satisfy it
    held = _submit(inst, "--urgency=hold", "true")
    c = _submit(inst, f"--dependency={scheme}:{held}", "true")
    inst.flux("cancel", held)
    _dependency_exception(inst, c, "never started")


def test_several_dependencies(inst):
    a = _submit(inst, "sh", "-c", "sleep 0.3")
    b = _submit(inst, "sh", "-c", "sleep 0.6; exit 2")
    c = _submit(inst, f"--dependency=afterok:{a}", f"--dependency=afternotok:{b}",
                f"--dependency=afterany:{b}", "true")
    events = _clean(inst, c)
    names = [e[0] for e in events]
    assert names.count("dependency-add") == 3 and names.count("dependency-remove") == 3, names
    assert _result(inst, c) == "COMPLETED"
    assert _ts(inst, c, "depend") >= max(_ts(inst, a, "finish"), _ts(inst, b, "finish"))
    # one that fails ends the job, whatever the others
    d = _submit(inst, "sleep", "60")
    e = _submit(inst, f"--dependency=afterany:{d}", f"--dependency=afterok:{b}", "true")
    _dependency_exception(inst, e, "afterok")
    inst.flux("cancel", d)


def test_one_met_at_submit_does_not_release_the_others(inst):
    """The first dependency is met when the job is submitted (its target is done),
    the second is not (its target still runs): the job waits for the second (it was
    released at once, the second never registered)."""
    done = _submit(inst, "true")
    _clean(inst, done)
    running = _submit(inst, "sleep", "60")
    inst.flux("job", "wait-event", "-t", "30", running, "start")
    c = _submit(inst, f"--dependency=afterok:{done}", f"--dependency=afterany:{running}", "true")
    assert _state(inst, c) == "D"
    names = [e[0] for e in _events(inst, c)]
    assert names.count("dependency-add") == 2 and names.count("dependency-remove") == 1, names
    inst.flux("cancel", running)
    _clean(inst, c)
    assert _result(inst, c) == "COMPLETED"
    assert _ts(inst, c, "depend") >= _ts(inst, running, "clean")


def test_unknown_and_invalid_job_ids_refused_at_submit(inst):
    before = inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout
    for dep, why in (("afterok:123456", "afterok: id 123456: job not found"),
                     ("afterany:notajob", 'afterany: "notajob" is not a valid jobid')):
        for cmd in ("run", "submit"):
            r = inst.flux(cmd, f"--dependency={dep}", "true", check=False)
            assert r.returncode != 0 and r.stderr.strip() == f"flux-{cmd}: {why}", r
    assert inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout == before  # nothing submitted


def test_bad_scheme_refused_at_submit(inst):
    a = _submit(inst, "true")
    before = inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout
    for args in ([f"--dependency=afterwards:{a}"], ["--dependency=afterok"],
                 ["-S", f'dependencies=[{{"scheme":"afterwards","value":"{a}"}}]']):
        r = inst.flux("submit", *args, "true", check=False)
        assert r.returncode != 0, r
        err = r.stderr.strip()
        assert len(err.splitlines()) == 1 and ("scheme" in err or "SCHEME:JOBID" in err), err
    assert inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout == before  # nothing submitted


def test_setattr_form(inst):
    a = _submit(inst, "--urgency=hold", "true")
    deps = json.dumps([{"scheme": "afterany", "value": a}])
    b = _submit(inst, "-S", f"dependencies={deps}", "true")
    assert _state(inst, b) == "D"
    inst.flux("job", "urgency", a, "default")
    _clean(inst, b)
    assert _ts(inst, b, "depend") >= _ts(inst, a, "clean")


def test_python_api_form(inst, tmp_path):
    path = tmp_path / "deps.py"
    path.write_text(textwrap.dedent("""
        import flux, flux.job
        h = flux.Flux()
        a = flux.job.submit(h, flux.job.JobspecV1.from_command(["sh", "-c", "sleep 0.3"]))
        js = flux.job.JobspecV1.from_command(["true"])
        js.setattr("system.dependencies", [{"scheme": "afterok", "value": str(a)}])
        b = flux.job.submit(h, js)
        print(a.f58, b.f58)
    """))
    r = inst.run(sys.executable, str(path), check=False, timeout=60)
    assert r.returncode == 0, r
    a, b = r.stdout.split()
    events = _clean(inst, b)
    assert "dependency-remove" in [e[0] for e in events], inst.job_eventlog(b)
    assert _ts(inst, b, "depend") >= _ts(inst, a, "finish")


def test_dependency_survives_restart(tmp_path):
    attrs = {"statedir": tmp_path / "state"}
    with Instance(size=1, attrs=attrs) as inst:
        held = _submit(inst, "--urgency=hold", "true")
        waits = _submit(inst, f"--dependency=afterok:{held}", "true")
        running = _submit(inst, "sleep", "60")
        inst.flux("job", "wait-event", "-t", "30", running, "start", timeout=40)
        after_running = _submit(inst, f"--dependency=afterany:{running}", "true")
        assert _state(inst, waits) == "D" and _state(inst, after_running) == "D"
        assert inst.stop() == 0
    with Instance(size=1, attrs=attrs) as inst:
        # the running job ended with the old instance: afterany on it is met
        _clean(inst, after_running)
        assert _result(inst, after_running) == "COMPLETED", inst.log()
        assert _state(inst, waits) == "D", f"{inst.job_eventlog(waits)}\n{inst.log()}"
        inst.flux("job", "urgency", held, "default")
        _clean(inst, waits)
        assert _result(inst, waits) == "COMPLETED", inst.job_eventlog(waits)
        assert _ts(inst, waits, "depend") >= _ts(inst, held, "finish")
        names = [e[0] for e in _events(inst, waits)]
        assert names.count("dependency-add") == 1 and names.count("depend") == 1, names
