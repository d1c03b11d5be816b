"""Tools beside a running job (issue 15), in a real 4-broker instance made full: a
filler job holds ranks 0-1 and the target (4 tasks, 2 per node) ranks 2-3, so a
normal job waits. ``flux exec --jobid`` runs once per node of the target with its
environment, tmpdir and cwd; alloc-bypass (``-S alloc-bypass.R``) and ``flux run
--colocate`` run on the target's ranks while it still runs; bad input is one line
and nothing is started; a crashing tool leaves the target running. (Another
user's job is refused in tests/unit/test_alloc_bypass.py: this instance refuses
guests at connection.)"""

import os
import select
import subprocess
import time

import pytest

from flux_launch.testing import BIN, Instance

pytestmark = pytest.mark.e2e

# each target task leaves a file named after its rank in its node's tmpdir, then waits
TASK = 'touch "$FLUX_JOB_TMPDIR/task$FLUX_TASK_RANK" && exec sleep 300'
# a tool waits (bounded) for both tasks of its node to have started, then reports
TOOL = ('timeout 30 sh -c \'until [ "$(ls "$FLUX_JOB_TMPDIR" | grep -c ^task)" = 2 ]; do sleep 0.05; done\'; '
        'echo "rank=$(flux getattr rank) mark=${MARK:-unset} caller=${CALLER:-unset} id=$FLUX_JOB_ID '
        'cwd=$(pwd) tasks=$(ls "$FLUX_JOB_TMPDIR" | grep ^task | tr "\\n" " ")"')


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """``(instance, target id, target cwd)``: the instance full, the target running."""
    cwd = str(tmp_path_factory.mktemp("target"))
    with Instance(size=4) as inst:
        filler = inst.flux("submit", "-N2", "sleep", "300").stdout.strip()
        inst.flux("job", "wait-event", "-t", "30", filler, "start")
        target = inst.flux("submit", "-N2", "--tasks-per-node=2", "--env=MARK=m42", f"--cwd={cwd}",
                           "sh", "-c", TASK).stdout.strip()
        inst.flux("job", "wait-event", "-t", "30", target, "start")
        assert _ranks(inst, target) == "2-3", inst.job_eventlog(target)
        yield inst, target, cwd


def _ranks(inst, jobid):
    return inst.flux("jobs", "-a", "-n", "-o", "{ranks}", jobid).stdout.strip()


def _state(inst, jobid):
    return inst.flux("jobs", "-a", "-n", "-o", "{state_single}", jobid).stdout.strip()


def _njobs(inst):
    return len(inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout.split())


def _one_line_error(r, *words):
    assert r.returncode != 0 and r.stdout == "", f"rc={r.returncode} stdout={r.stdout!r} stderr={r.stderr!r}"
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], r.stderr


def test_exec_jobid_runs_on_the_jobs_nodes_with_its_environment(full):
    inst, target, cwd = full
    r = inst.flux("exec", f"--jobid={target}", "-n", "sh", "-c", TOOL, cwd="/", env={"CALLER": "yes"})
    lines = sorted(r.stdout.splitlines())
    assert len(lines) == 2, r.stdout + r.stderr
    for rank, tasks, line in ((2, "task0 task1", lines[0]), (3, "task2 task3", lines[1])):
        assert line == f"rank={rank} mark=m42 caller=unset id={target} cwd={cwd} tasks={tasks} ", r.stdout
    # -r indexes the job's nodes: node 1 of the job is broker rank 3
    r = inst.flux("exec", "-j", target, "-r", "1", "-n", "flux", "getattr", "rank")
    assert r.stdout == "3\n"
    r = inst.flux("exec", "-j", target, "-x", "1", "-n", "-d", "/", "pwd")
    assert r.stdout == "/\n"


def test_exec_jobid_bad_input_starts_nothing(full, tmp_path):
    inst, target, _cwd = full
    held = inst.flux("submit", "--urgency=hold", "true").stdout.strip()
    done = inst.flux("submit", "--wait", "-N1", "-n1", "-S", "alloc-bypass.R=" +
                     inst.flux("job", "info", target, "R").stdout.strip(), "true").stdout.strip()
    marker = tmp_path / "started"
    touch = ["touch", str(marker)]
    cases = [
        (["--jobid=f1111111"], ["no such job"]),
        ([f"--jobid={held}"], ["not running", "SCHED"]),
        ([f"--jobid={done}"], ["not running", "INACTIVE"]),
        (["--jobid=notajob"], ["not a job id"]),
        ([f"--jobid={target}", "-r", "0,2"], ["no node 2", "0-1"]),
        ([f"--jobid={target}", "-r", "5"], ["no node 5"]),
    ]
    for opts, words in cases:
        r = inst.flux("exec", *opts, "-n", *touch, check=False)
        _one_line_error(r, *words)
        assert r.stderr.startswith("flux-exec: ")
        assert not marker.exists(), opts
    inst.flux("cancel", held)


def test_alloc_bypass_runs_on_the_targets_ranks_while_a_normal_job_waits(full):
    inst, target, _cwd = full
    normal = inst.flux("submit", "true").stdout.strip()
    R = inst.flux("job", "info", target, "R").stdout.strip()
    r = inst.flux("run", "-N2", "-n2", "-S", f"alloc-bypass.R={R}", "flux", "getattr", "rank")
    assert sorted(r.stdout.split()) == ["2", "3"], r.stdout + r.stderr
    assert _state(inst, normal) == "S" and _state(inst, target) == "R"
    inst.flux("cancel", normal)


def test_alloc_bypass_bad_R_refused(full):
    inst, _target, _cwd = full
    before = _njobs(inst)
    bad_rank = '{"version":1,"execution":{"R_lite":[{"rank":"7","children":{"core":"0"}}]}}'
    for value, words in ((bad_rank, ["rank 7", "size 4"]), ('{"version":9}', ["alloc-bypass: invalid R"])):
        r = inst.flux("run", "-S", f"alloc-bypass.R={value}", "true", check=False)
        _one_line_error(r, *words)
    assert _njobs(inst) == before


def test_colocate_one_per_node_with_target_jobid(full):
    inst, target, _cwd = full
    r = inst.flux("run", f"--colocate={target}", "-l", "sh", "-c", 'echo "$(flux getattr rank) $FLUX_TARGET_JOBID"')
    assert sorted(r.stdout.splitlines()) == [f"0: 2 {target}", f"1: 3 {target}"], r.stdout + r.stderr
    assert _state(inst, target) == "R"


def test_colocate_per_task_and_tasks_per_node(full):
    inst, target, _cwd = full
    r = inst.flux("run", f"--colocate={target}", "--per-task", "-l", "flux", "getattr", "rank")
    assert sorted(r.stdout.splitlines()) == ["0: 2", "1: 2", "2: 3", "3: 3"], r.stdout + r.stderr
    r = inst.flux("run", f"--colocate={target}", "--tasks-per-node=3", "-l", "flux", "getattr", "rank")
    assert sorted(r.stdout.splitlines()) == ["0: 2", "1: 2", "2: 2", "3: 3", "4: 3", "5: 3"], r.stdout


def test_colocate_bad_input_submits_nothing(full):
    inst, target, _cwd = full
    held = inst.flux("submit", "--urgency=hold", "true").stdout.strip()
    before = _njobs(inst)
    for opts, words in (([f"--colocate={held}"], ["not running"]),
                        (["--colocate=f1111111"], ["no such job"]),
                        ([f"--colocate={target}", "-n", "2"], ["-n/--ntasks", "does not apply"]),
                        ([f"--colocate={target}", "--per-task", "--tasks-per-node=2"], ["one or the other"])):
        r = inst.flux("run", *opts, "true", check=False)
        _one_line_error(r, *words)
    assert _njobs(inst) == before
    inst.flux("cancel", held)


def test_crashing_tools_leave_the_target_running(full):
    inst, target, _cwd = full
    r = inst.flux("run", f"--colocate={target}", "sh", "-c", "kill -SEGV $$", check=False)
    assert r.returncode == 139, r.stderr
    r = inst.flux("exec", f"--jobid={target}", "-n", "sh", "-c", "kill -SEGV $$", check=False)
    assert r.returncode == 139, r.stderr
    assert _state(inst, target) == "R"
    assert "exception" not in inst.flux("job", "eventlog", target).stdout


def test_tools_end_with_the_target():
    with Instance(size=2) as inst:
        job = inst.flux("submit", "-N2", "sleep", "300").stdout.strip()
        inst.flux("job", "wait-event", "-t", "30", job, "start")
        proc = subprocess.Popen([os.path.join(BIN, "flux"), "exec", f"--jobid={job}", "-n", "-v", "sleep", "300"],
                                env=inst.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # read the pipe's bytes, not buffered lines: both lines may arrive in one read
            seen = b""
            deadline = time.monotonic() + 30
            while seen.count(b"started pid") < 2 and time.monotonic() < deadline:
                if select.select([proc.stderr], [], [], 1.0)[0]:
                    chunk = os.read(proc.stderr.fileno(), 4096)
                    assert chunk, f"flux exec ended before its tools started: {seen!r}"
                    seen += chunk
            assert seen.count(b"started pid") == 2, f"the tools did not start in 30 s: {seen!r}"
            inst.flux("cancel", job)
            out, err = proc.communicate(timeout=30)
        finally:
            proc.kill()
        assert proc.returncode == 128 + 9, (proc.returncode, out, err)
