"""Seed 002 (JobSpec the Next Generation): every YAML example of the seed
(tests/data/seed002/, verbatim) submitted with ``flux job submit --wait`` in a
real instance and checked to run to completion in dependency order.

- The examples that are broken as written (YAML indentation, keys indented
  under ``resources``, the ``envirionment`` typo, a task list with no
  ``tasks:``) must give one exact line naming the line or the path, and submit
  nothing; their corrected copies (``NN-name.fixed.yaml``, the smallest change,
  said at the top of each) run.
- The programs they call (spack, ior, kubectl, ml-train, ...) are stand-ins
  (tests/data/seed002/bin/stand-in, linked under each name in a bin directory
  on PATH; a job's environment is the submitter's) that log
  ``NAME ARGS START END JOBID RANK CWD LD_LIBRARY_PATH``, from which the order
  is checked: a dependent program starts after what it depends on ended.
  ``kubectl`` (the local service tasks) takes 1 s, the others 0.1 s.
- Nodes: hwloc's corona topology (48 cores, 8 GPUs a node) on each broker; an
  example runs in the smallest instance that fits it (1, 4 or 8 brokers), one
  of each shared by the module.
- Paths of this machine: the examples that name absolute paths that are not
  here (``cwd: /opt/pennant/test/``, the ``stage`` paths) run as written
  (their error is checked) and with those paths moved under the test's
  directory.
"""

import json
import os
import shlex
from pathlib import Path

import pytest

from flux_launch.testing import Instance, clean_env

pytestmark = pytest.mark.e2e

TESTS = Path(__file__).resolve().parent.parent
DATA = TESTS / "data" / "seed002"
CORONA = TESTS / "data" / "topologies" / "corona.xml"
PROGRAMS = ("spack", "ior", "kubectl", "ml-train", "compspec", "ml-test", "pennant", "machine", "munch")


class Run:
    """One line of the stand-ins' log: one program run by one task."""

    def __init__(self, line):
        f = line.rstrip("\n").split("\t")
        self.name, self.args, self.job, self.rank, self.cwd, self.ldpath = f[0], f[1], f[4], f[5], f[6], f[7]
        self.start, self.end = float(f[2]), float(f[3])

    def __repr__(self):
        return f"{self.name} {self.args} [{self.start:.3f}..{self.end:.3f}] job {self.job} rank {self.rank}"


class Result:
    """What ``flux job submit --wait`` of one example did."""

    def __init__(self, work, proc):
        self.work, self.proc = work, proc
        self.ids = proc.stdout.split()
        log = work / "log"
        self.runs = [Run(line) for line in log.read_text().splitlines()] if log.exists() else []

    def of(self, name, args=None):
        """The runs of program ``name`` (whose arguments start with ``args``)."""
        return [r for r in self.runs if r.name == name and (args is None or r.args.startswith(args))]

    def __str__(self):
        return (f"in {self.work}: rc {self.proc.returncode}\nstdout: {self.proc.stdout}\nstderr: {self.proc.stderr}\n"
                "log:\n" + "\n".join(map(repr, sorted(self.runs, key=lambda r: r.start))))


class Seed:
    """The stand-ins, the instances (by size) and the examples' results (each
    example is submitted once, in a directory of its own)."""

    def __init__(self, root):
        self.root = root
        bindir = root / "bin"
        bindir.mkdir()
        for name in PROGRAMS:
            (bindir / name).symlink_to(DATA / "bin" / "stand-in")
        self.env = {"FLUX_HWLOC_XMLFILE": str(CORONA), "SEED002_SLEEP_kubectl": "1",
                    "PATH": f"{bindir}{os.pathsep}{clean_env()['PATH']}"}
        self.instances = {}
        self.results = {}

    def inst(self, size):
        if size not in self.instances:
            self.instances[size] = Instance(size=size, env=self.env).start()
        return self.instances[size]

    def close(self):
        for inst in self.instances.values():
            inst.close()

    def work(self, name):
        work = self.root / name
        work.mkdir()
        return work

    def submit(self, size, work, filename, timeout=90):
        """``flux job submit --wait FILENAME`` in ``work`` (never raises)."""
        cmd = f"cd {shlex.quote(str(work))} && exec flux job submit --wait {shlex.quote(filename)}"
        proc = self.inst(size).run("sh", "-c", cmd, check=False, timeout=timeout,
                                   env={"SEED002_LOG": str(work / "log")})
        return Result(work, proc)

    def example(self, filename, size, edit=None):
        """The Result of example ``filename`` (run once), copied into a directory
        of its own (``edit(text, work)``: the copy's text, for this machine's paths)."""
        key = (filename, edit)
        if key not in self.results:
            work = self.work(filename.replace(".yaml", "") + (edit.__name__ if edit else ""))
            text = (DATA / filename).read_text()
            (work / filename).write_text(edit(text, work) if edit else text)
            self.results[key] = self.submit(size, work, filename)
        return self.results[key]

    def flux(self, size, *args):
        return self.inst(size).flux(*args).stdout


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    s = Seed(tmp_path_factory.mktemp("seed002"))
    try:
        yield s
    finally:
        s.close()


def ran(res):
    """The example exited 0."""
    assert res.proc.returncode == 0, str(res)


def completed(seed, size, res, count):
    """``count`` jobs were submitted here, and each ended with status 0."""
    assert len(res.ids) == count, str(res)
    for jobid in res.ids:
        log = seed.flux(size, "job", "eventlog", jobid)
        assert "finish status=0" in log and " clean" in log, f"{jobid}:\n{log}\n{res}"


def before(earlier, later, res):
    """Every run of ``later`` started after every run of ``earlier`` ended."""
    assert earlier and later, str(res)
    last_end = max(r.end for r in earlier)
    first = min(later, key=lambda r: r.start)
    assert first.start >= last_end, f"{first!r} started before {max(earlier, key=lambda r: r.end)!r} ended\n{res}"


def jobs(runs):
    return {r.job for r in runs}


# ---- the examples broken as written: one line each, nothing submitted --------------------

BROKEN = [
    ("01-ior-tasks.yaml",
     "tasks[1].resources: unknown key 'requires' (a key of tasks[1]: is it indented too far?)"),
    ("04-mini-mummi.yaml",
     "04-mini-mummi.yaml:75:4: invalid YAML: expected <block end>, but found '<block sequence start>' "
     "(check the indentation)"),
    ("05-hello-replicas.yaml",
     "05-hello-replicas.yaml:13:12: invalid YAML: mapping values are not allowed here (check the indentation)"),
    ("11-environment-group.yaml",
     "groups[0].tasks[1].attributes: unknown key 'envirionment' (did you mean 'environment'?)"),
    ("14-stage-dir.yaml",
     "tasks[0].steps[0].path: cannot stage /tmp/path-for-workflow: No such file or directory"),
    ("14-stage-file.yaml",
     "14-stage-file.yaml: a jobspec must be a mapping (this file is a list: put a list of tasks under 'tasks:')"),
    ("15-services-ml-work.yaml",
     "15-services-ml-work.yaml:47:3: invalid YAML: expected <block end>, but found '<block sequence start>' "
     "(check the indentation)"),
    ("16-nested-machine-learning.yaml",
     "16-nested-machine-learning.yaml:8:12: invalid YAML: mapping values are not allowed here "
     "(check the indentation)"),
]


@pytest.mark.parametrize("filename,error", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_example_says_where_and_submits_nothing(seed, filename, error):
    if filename == "14-stage-dir.yaml" and os.path.exists("/tmp/path-for-workflow"):
        pytest.skip("/tmp/path-for-workflow exists on this machine")
    before_ids = seed.flux(1, "jobs", "-a", "-n", "-o", "{id}")
    res = seed.example(filename, 1)
    assert (res.proc.returncode, res.proc.stdout, res.proc.stderr) == (1, "", f"flux-job: {error}\n"), str(res)
    assert seed.flux(1, "jobs", "-a", "-n", "-o", "{id}") == before_ids


def test_every_broken_example_has_a_fixed_copy_that_says_why():
    for filename, _ in BROKEN:
        if filename == "14-stage-dir.yaml":
            continue  # not broken: its path is not on this machine (see test_14_stage_dir)
        fixed = DATA / filename.replace(".yaml", ".fixed.yaml")
        assert fixed.read_text().startswith("# Seed 002's"), fixed


# ---- tasks a la carte ----------------------------------------------------------------------

@pytest.mark.parametrize("filename", ["01-ior-tasks.fixed.yaml", "02-ior-named-resources.yaml"])
def test_ior_runs_after_its_build_on_four_nodes(seed, filename):
    res = seed.example(filename, 4)
    ran(res)
    completed(seed, 4, res, 2)
    build, load, ior = res.of("spack", "install ior"), res.of("spack", "load ior"), res.of("ior")
    assert len(build) == len(load) == len(ior) == 4, str(res)  # one task on each of 4 nodes
    assert {r.rank for r in ior} == {"0", "1", "2", "3"} and ior[0].args == "-b 10g -O summaryFormat=json"
    assert len(jobs(build)) == 1 and jobs(load) == jobs(ior) and jobs(build) != jobs(ior)
    before(build, load + ior, res)
    spec = json.loads(seed.flux(4, "job", "info", res.ids[1], "jobspec"))
    assert spec["attributes"]["user"]["requires"] == {"io.archspec": {"cpu.target": "amd64"},
                                                      "hardware.gpu.available": "yes"}


def test_03_setup_writes_the_script_the_next_task_runs(seed):
    res = seed.example("03-setup-job-sh.yaml", 1)
    ran(res)
    completed(seed, 1, res, 2)
    assert (res.work / "job.sh").read_text() == "#!/bin/bash\necho hello from my job\n"
    assert seed.flux(1, "job", "attach", res.ids[1]) == "hello from my job\n"
    setup = seed.flux(1, "job", "eventlog", res.ids[0]).splitlines()
    job = seed.flux(1, "job", "eventlog", res.ids[1]).splitlines()
    finished = next(float(e.split()[0]) for e in setup if e.split()[1] == "finish")
    started = next(float(e.split()[0]) for e in job if e.split()[1] == "start")
    assert started >= finished, "\n".join(setup + job)


# ---- resources: replicas, one node, several tasks ------------------------------------------

def test_05_hello_world_four_replicas_on_four_nodes(seed):
    res = seed.example("05-hello-replicas.fixed.yaml", 4)
    ran(res)
    completed(seed, 4, res, 4)
    for jobid in res.ids:
        assert seed.flux(4, "job", "attach", jobid) == "hello world\n" * 4
        assert seed.flux(4, "jobs", "-n", "-o", "{nnodes} {ntasks}", jobid).split() == ["4", "4"]


def test_06_spack_on_one_node(seed):
    res = seed.example("06-spack-one-node.yaml", 1)
    ran(res)
    completed(seed, 1, res, 1)
    assert [r.args for r in res.runs] == ["install sqlite"]


def test_07_three_spack_installs(seed):
    res = seed.example("07-spack-three.yaml", 1)
    ran(res)
    completed(seed, 1, res, 3)
    assert sorted(r.args for r in res.runs) == ["install go", "install mpich", "install singularity"]
    assert len(jobs(res.runs)) == 3


# ---- attributes ----------------------------------------------------------------------------

def _duration(seed, jobid):
    return json.loads(seed.flux(1, "job", "info", jobid, "jobspec"))["attributes"]["system"]["duration"]


def test_08_one_task_with_a_duration(seed):
    res = seed.example("08-duration-task.yaml", 1)
    ran(res)
    completed(seed, 1, res, 1)
    assert [r.args for r in res.runs] == ["install sqlite"]
    assert _duration(seed, res.ids[0]) == 300


def test_09_two_tasks_each_with_its_duration(seed):
    res = seed.example("09-duration-two.yaml", 1)
    ran(res)
    completed(seed, 1, res, 2)
    assert sorted(r.args for r in res.runs) == ["install singularity", "install zlib"]
    assert [_duration(seed, j) for j in res.ids] == [900, 300]


def test_10_group_duration_bounds_its_tasks(seed):
    res = seed.example("10-duration-group.yaml", 1)
    ran(res)
    completed(seed, 1, res, 1)  # one batch job: the group
    assert sorted(r.args for r in res.runs) == ["install singularity", "install zlib"]
    assert len(jobs(res.runs)) == 2  # two jobs of the nested instance
    assert _duration(seed, res.ids[0]) == 900
    spec = json.loads(seed.flux(1, "job", "info", res.ids[0], "jobspec"))
    inner = json.loads(spec["attributes"]["system"]["files"]["workflow.json"]["data"])
    assert inner["duration"] == 900


def test_11_task_environment_overrides_the_groups(seed):
    res = seed.example("11-environment-group.fixed.yaml", 1)
    ran(res)
    completed(seed, 1, res, 1)
    build, pennant = res.of("spack", "install pennant"), res.of("pennant")
    assert [r.ldpath for r in build] == ["/usr/local/lib:/usr/local/lib64"], str(res)
    assert [r.ldpath for r in pennant] == ["/usr/local/cuda/lib"], str(res)
    assert pennant[0].args == "/opt/pennant/test/params.pnt"
    before(build, pennant, res)


def test_12_cwd_not_on_this_machine_fails_the_task_clearly(seed):
    res = seed.example("12-cwd.yaml", 1)
    assert res.proc.returncode == 127 and len(res.ids) == 2, str(res)
    assert [r.args for r in res.runs] == ["install pennant"]
    out = seed.inst(1).flux("job", "attach", res.ids[1], check=False)
    assert "cwd /opt/pennant/test/: No such file or directory" in out.stderr, out


def _pennant_here(text, work):
    (work / "opt" / "pennant" / "test").mkdir(parents=True)
    return text.replace("cwd: /opt/pennant/test/", f"cwd: {work}/opt/pennant/test/")


def test_12_cwd_runs_the_task_there(seed):
    res = seed.example("12-cwd.yaml", 1, edit=_pennant_here)
    ran(res)
    completed(seed, 1, res, 2)
    build, pennant = res.of("spack", "install pennant"), res.of("pennant", "params.pnt")
    assert [r.cwd for r in build] == [str(res.work)]  # the submit directory
    assert [r.cwd for r in pennant] == [str(res.work / "opt" / "pennant" / "test")]
    before(build, pennant, res)


def test_13_watch_streams_the_tasks_output(seed):
    res = seed.example("13-watch.yaml", 1)
    ran(res)
    assert res.proc.stdout.splitlines()[1:] == ["spack install sqlite"], str(res)
    res.ids = res.ids[:1]
    completed(seed, 1, res, 1)


# ---- steps: stage -----------------------------------------------------------------------

READER = ("\n- depends_on: [setup]\n  command: [sh, -c, 'cp -R \"$FLUX_JOB_TMPDIR/{name}\" staged']\n")


def _stage_dir_here(text, work):
    src = work / "path-for-workflow"
    (src / "sub").mkdir(parents=True)
    (src / "input.txt").write_text("one\n")
    (src / "sub" / "more.txt").write_text("two\n")
    return text.replace("/tmp/path-for-workflow", str(src))


def _stage_dir_read(text, work):
    return _stage_dir_here(text, work) + READER.format(name="path-for-workflow")


def test_14_stage_dir_alone_submits_nothing(seed):
    res = seed.example("14-stage-dir.yaml", 1, edit=_stage_dir_here)
    ran(res)
    assert res.ids == [] and res.proc.stderr == "", str(res)


def test_14_stage_dir_is_in_the_tmpdir_of_the_jobs_of_its_level(seed):
    """The snippet, and a task of ours that copies what it finds."""
    res = seed.example("14-stage-dir.yaml", 1, edit=_stage_dir_read)
    ran(res)
    completed(seed, 1, res, 1)
    assert (res.work / "staged" / "input.txt").read_text() == "one\n"
    assert (res.work / "staged" / "sub" / "more.txt").read_text() == "two\n"


def _stage_file_read(text, work):
    (work / "home" / "dinosaur").mkdir(parents=True)
    (work / "home" / "dinosaur" / "kubeconfig").write_text("apiVersion: v1\n")
    return text.replace("/home/dinosaur/kubeconfig", f"{work}/home/dinosaur/kubeconfig") + \
        READER.format(name="kubeconfig")


def test_14_stage_file_is_in_the_tmpdir(seed):
    res = seed.example("14-stage-file.fixed.yaml", 1, edit=_stage_file_read)
    ran(res)
    completed(seed, 1, res, 1)
    assert (res.work / "staged").read_text() == "apiVersion: v1\n"


# ---- groups: nested instances, local tasks, services ---------------------------------------

def test_04_mini_mummi_runs_in_dependency_order(seed):
    res = seed.example("04-mini-mummi.fixed.yaml", 8)
    ran(res)
    completed(seed, 8, res, 1)  # the group mini-mummi: one batch job of 8 nodes
    assert seed.flux(8, "jobs", "-n", "-o", "{nnodes}", res.ids[0]).split() == ["8"]
    apply, delete = res.of("kubectl", "apply -f ./task-queue.yaml"), res.of("kubectl", "delete -f ./task-queue.yaml")
    train, save, test = res.of("ml-train", "... -o train.json"), res.of("compspec", "save-artifact"), res.of("ml-test")
    assert len(apply) == len(delete) == 1 and apply[0].job == delete[0].job != "-", str(res)  # in the batch
    assert len(train) == len(save) == 2 and len(jobs(train)) == 1 and jobs(train) == jobs(save)  # mummi-gpu: 2 nodes
    assert len(jobs(test)) == 20 and len(test) == 40, str(res)  # 20 replicas of mummi-cpu (2 nodes)
    for s in save:  # one script per task: each task's save after its own train (the 2 tasks run side by side)
        t = next(r for r in train if (r.job, r.rank) == (s.job, s.rank))
        assert s.start >= t.end, f"{s!r} started before {t!r} ended\n{res}"
    before(save, test, res)  # test depends on the group train
    before(test, delete, res)


def test_04_mini_mummi_service_starts_before_the_tasks_after_it(seed):
    """Seed: "Tasks are run (or submit) in the order provided", a local task being
    a line of the batch script: the task queue is up before train and test run."""
    res = seed.example("04-mini-mummi.fixed.yaml", 8)
    ran(res)
    apply = res.of("kubectl", "apply")
    before(apply, res.of("ml-train") + res.of("compspec") + res.of("ml-test"), res)


def test_15_services_ml_work_in_dependency_order(seed):
    res = seed.example("15-services-ml-work.fixed.yaml", 4)
    ran(res)
    completed(seed, 4, res, 1)  # the group ml-work
    assert seed.flux(4, "jobs", "-n", "-o", "{nnodes}", res.ids[0]).split() == ["4"]
    start, delete = res.of("kubectl", "apply -f ./database.yaml"), res.of("kubectl", "delete -f ./database.yaml")
    train, save, test = res.of("ml-train"), res.of("compspec", "save-artifact ./train.json"), res.of("ml-test")
    assert len(start) == len(delete) == 1, str(res)
    assert len(train) == len(save) == 100 and len(jobs(train)) == 100 and jobs(train) == jobs(save), str(res)
    assert len(test) == 10 and len(jobs(test)) == 10 and not jobs(test) & jobs(train), str(res)
    for job in jobs(train):  # in each replica, compspec after ml-train
        before([r for r in train if r.job == job], [r for r in save if r.job == job], res)
    before(start, train, res)
    before(train + save, test, res)
    before(test, delete, res)


def test_16_nested_machine_learning_runs_every_level(seed):
    res = seed.example("16-nested-machine-learning.fixed.yaml", 4)
    ran(res)
    completed(seed, 4, res, 1)  # the group machine-learning
    # no resources: the sum of its tasks', sleep (1 node) and generate-data (3)
    assert seed.flux(4, "jobs", "-n", "-o", "{nnodes}", res.ids[0]).split() == ["4"]
    apply, delete = res.of("kubectl", "apply -f ./database.yaml"), res.of("kubectl", "delete -f ./database.yaml")
    machine, munch = res.of("machine", "learn things"), res.of("munch", "munch munch")
    assert len(apply) == len(delete) == len(machine) == len(munch) == 1, str(res)
    assert machine[0].job != munch[0].job and apply[0].job == delete[0].job != "-"
    assert machine[0].job != "-"  # level 3: jobs of generate-data's own instance
    before(apply, delete, res)  # local tasks run in order


def test_16_database_starts_before_the_tasks_after_it(seed):
    """Seed: "If the task blocks, it will block the remaining tasks"."""
    res = seed.example("16-nested-machine-learning.fixed.yaml", 4)
    ran(res)
    before(res.of("kubectl", "apply"), res.of("machine") + res.of("munch"), res)


def test_the_seed_examples_are_all_here():
    """Each ```yaml block of the seed is a file here, verbatim (but the level-1
    flux archive task, which is not a workflow)."""
    import re

    seed_text = Path("/work/shared/seeds/002_fd83e69555d280d1.txt")
    if not seed_text.exists():
        pytest.skip("the seed is not on this machine")
    blocks = re.findall(r"```yaml\n(.*?)```", seed_text.read_text(), re.S)
    blocks = [b for b in blocks if "level: 1" not in b]
    mine = [p.read_text() for p in sorted(DATA.glob("*.yaml")) if ".fixed." not in p.name]
    assert sorted(blocks) == sorted(mine)
