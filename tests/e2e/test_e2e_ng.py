"""JobSpec NG workflows through ``flux job submit``, ``flux submit --jobspec`` and
``flux.job.submit``: submitted whole or not at all, dependency order, local tasks,
resource alternatives, stage steps, watch, groups as nested instances."""

import sys
import textwrap

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    with Instance(size=2) as inst:
        yield inst


def _write(tmp_path, text, name="wf.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _submit(inst, path, *args, check=True):
    r = inst.flux("job", "submit", *args, str(path), check=False, timeout=120, cwd=str(path.parent))
    if check:
        assert r.returncode == 0, r
    return r


def _count(inst):
    return len(inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout.split())


def _events(inst, jobid):
    out = inst.flux("job", "eventlog", jobid).stdout
    return {line.split()[1]: float(line.split()[0]) for line in reversed(out.splitlines()) if line.strip()}


def test_whole_or_nothing(inst, tmp_path):
    path = _write(tmp_path, """
        tasks:
        - {name: a, command: ["true"]}
        - {name: b, command: ["true"], depends_on: [a]}
        - {command: ["true"], depends_on: [b], resources: {type: node, count: 64}}
    """)
    before = _count(inst)
    r = _submit(inst, path, check=False)
    assert r.returncode == 1 and r.stdout == "", r
    assert r.stderr.strip() == ("flux-job: tasks[2].resources: unsatisfiable request: 64 nodes requested, "
                                "the instance has 2"), r.stderr
    assert _count(inst) == before


def test_order_replicas_and_wait_code(inst, tmp_path):
    path = _write(tmp_path, """
        tasks:
        - name: build
          command: ["sh", "-c", "sleep 0.3"]
        - name: test
          command: ["sh", "-c", "exit 5"]
          depends_on: [build]
          replicas: 3
    """)
    r = _submit(inst, path, "--wait", check=False)
    ids = r.stdout.split()
    assert r.returncode == 5 and len(ids) == 4, r
    build = _events(inst, ids[0])
    for jobid in ids[1:]:
        ev = _events(inst, jobid)
        assert ev["alloc"] >= build["finish"]
        assert 'description="after-success=' in inst.flux("job", "eventlog", jobid).stdout


def test_locals_run_in_order_and_failures_propagate(inst, tmp_path):
    log = tmp_path / "log"
    path = _write(tmp_path, f"""
        tasks:
        - name: start
          local: true
          command: sh -c "echo start >> {log}"
        - name: work
          depends_on: [start]
          command: ["sh", "-c", "echo work >> {log}"]
        - name: broken
          local: true
          depends_on: [work]
          command: sh -c "echo broken >> {log}; exit 3"
        - name: after-broken
          depends_on: [broken]
          command: ["sh", "-c", "echo never >> {log}"]
        - name: cleanup
          local: true
          depends_on: [after-broken]
          command: sh -c "echo cleanup >> {log}"
    """)
    r = _submit(inst, path, "--wait", check=False)
    assert r.returncode == 3, r
    assert log.read_text().split() == ["start", "work", "broken"]
    assert "tasks[4]: not run: broken did not succeed" in r.stderr
    never = r.stdout.split()[1]
    out = inst.flux("job", "eventlog", never).stdout
    assert 'type="dependency"' in out and "local task broken failed (exit 3)" in out, out


def test_resource_alternatives_first_that_fits(inst, tmp_path):
    path = _write(tmp_path, """
        resources:
          huge: {type: node, count: 16}
          small: {type: node, count: 1}
        tasks:
        - command: ["true"]
          resources: huge|small
    """)
    jobid = _submit(inst, path, "--wait").stdout.strip()
    assert inst.flux("jobs", "-n", "-o", "{nnodes}", jobid).stdout.strip() == "1"
    both = _write(tmp_path, """
        resources:
          huge: {type: node, count: 16}
          bigger: {type: node, count: 32}
        tasks: [{command: ["true"], resources: huge|bigger}]
    """, "both.yaml")
    r = _submit(inst, both, check=False)
    assert r.returncode == 1 and "tasks[0].resources: choice 1: unsatisfiable" in r.stderr, r.stderr


def test_stage_and_watch(inst, tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "in.txt").write_text("staged content\n")
    path = _write(tmp_path, """
        tasks:
        - name: setup
          steps: [{name: stage, path: data}]
        - command: ["sh", "-c", "cat $FLUX_JOB_TMPDIR/data/in.txt; echo to-err >&2"]
          depends_on: [setup]
          attributes: {watch: true, environment: {X: 1}}
    """)
    r = _submit(inst, path)
    lines = r.stdout.splitlines()
    assert "staged content" in lines, r
    assert "to-err" in r.stderr, r


def test_group_runs_in_a_nested_instance(inst, tmp_path):
    log = tmp_path / "log"
    path = _write(tmp_path, f"""
        resources:
          both: {{type: node, count: 2}}
          one: {{type: node, count: 1}}
        groups:
        - name: outer
          resources: both
          tasks:
          - local: true
            name: start
            command: sh -c "echo start $(flux getattr instance-level) >> {log}"
          - group: inner
            depends_on: [start]
          - name: test
            replicas: 2
            resources: one
            depends_on: [inner]
            command: ["sh", "-c", "echo test >> {log}"]
          - local: true
            depends_on: [test]
            command: sh -c "echo stop >> {log}"
        - name: inner
          resources: one
          tasks:
          - command: ["sh", "-c", "echo train $(flux getattr instance-level) >> {log}"]
    """)
    r = _submit(inst, path, "--wait")
    jobid = r.stdout.strip()
    assert log.read_text().split() == ["start", "1", "train", "2", "test", "test", "stop"], (
        log.read_text(), (tmp_path / f"flux-{jobid}.out").read_text() if (tmp_path / f"flux-{jobid}.out").exists()
        else "")
    assert inst.flux("jobs", "-n", "-o", "{name} {result}", jobid).stdout.strip() == "outer COMPLETED"


def test_submit_jobspec_option_and_python_api(inst, tmp_path):
    path = _write(tmp_path, """
        tasks:
        - {name: one, command: ["sh", "-c", "exit 2"]}
    """)
    r = inst.flux("submit", f"--jobspec={path}", "--wait", check=False, cwd=str(tmp_path))
    assert r.returncode == 2 and len(r.stdout.split()) == 1, r
    v1 = tmp_path / "v1.json"
    v1.write_text(inst.flux("submit", "--dry-run", "sh", "-c", "exit 4").stdout)
    r = inst.flux("submit", f"--jobspec={v1}", "--wait", check=False)
    assert r.returncode == 4, r
    script = _write(tmp_path, f"""
        import flux, flux.job
        h = flux.Flux()
        js = flux.job.JobspecV1.from_yaml_file("{path}")
        print(flux.job.result(h, flux.job.submit(h, js)).returncode)
        ids = flux.job.submit(h, {{"tasks": [{{"name": "a", "command": "true"}},
                                           {{"command": "true", "depends_on": ["a"], "replicas": 2}}]}})
        print(len(ids), sorted(flux.job.result(h, i).result for i in ids))
        try:
            flux.job.submit(h, {{"tasks": [{{"command": "true", "depends_on": ["nope"]}}]}})
        except ValueError as exc:
            print(exc)
    """, "api.py")
    r = inst.run(sys.executable, str(script), check=False, timeout=60)
    assert r.returncode == 0, r
    assert r.stdout.splitlines() == ["2", "3 ['COMPLETED', 'COMPLETED', 'COMPLETED']",
                                     'tasks[0].depends_on[0]: no task named "nope" (named here: none)'], r.stdout


@pytest.mark.parametrize("text, want", [
    ("- a\n- b\n", "wf.yaml: a jobspec must be a mapping (this file is a list: put a list of tasks under 'tasks:')"),
    ("tasks:\n- command: [a]\n  resources:\n    type: node\n     count: 1\n", "wf.yaml:5:11: invalid YAML"),
    ("tasks:\n- {name: a, command: x, depends_on: [b]}\n- {name: b, command: x, depends_on: [a]}\n",
     "tasks[1].depends_on[0]: a cycle: a -> b -> a"),
])
def test_bad_documents_one_line_nothing_submitted(inst, tmp_path, text, want):
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    before = _count(inst)
    r = _submit(inst, path, check=False)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1 and want in r.stderr, r
    assert _count(inst) == before


def test_submitting_command_killed_leaves_nothing_held(inst, tmp_path):
    """SIGTERM to flux job submit while it runs a local task: the job that waited
    for that task is not left held forever, it ends with a dependency exception."""
    import signal
    import subprocess
    import time

    path = _write(tmp_path, """
        tasks:
        - {name: slow, local: true, command: ["sleep", "30"]}
        - {name: after, command: ["true"], depends_on: [slow]}
    """)
    proc = subprocess.Popen([sys.executable, "-m", "flux_launch.cli.main", "job", "submit", str(path)],
                            env=inst.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        jobid = proc.stdout.readline().strip()
        assert jobid, proc.stderr.read()
        time.sleep(0.5)  # the local task runs
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    r = inst.flux("job", "wait-event", "-t", "30", jobid, "clean", check=False, timeout=40)
    assert r.returncode == 0, r
    out = inst.flux("job", "eventlog", jobid).stdout
    assert 'type="dependency"' in out and "the submitting command ended" in out, out
