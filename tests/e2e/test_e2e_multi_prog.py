"""``flux multi-prog`` end to end (flux-core's flux-multi-prog(1)): a job whose
tasks run the commands their config lines name, ``%t``/``%o``, the ``*`` line,
``--dry-run``, and bad configs (one line, exit 1; a command not found: 127)."""

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e

CONF = """# MPMD: a comment line, then an empty one

0-1 echo task %t "quoted arg"   # an inline comment
2-3 echo task %t offset %o
*   sh -c 'echo rest $FLUX_TASK_RANK'
"""


@pytest.fixture(scope="module")
def inst():
    with Instance(size=2) as i:
        yield i


@pytest.fixture
def conf(tmp_path):
    def write(text, name="mp.conf"):
        path = tmp_path / name
        path.write_text(text)
        return str(path)
    return write


def test_each_task_runs_its_line(inst, conf):
    r = inst.flux("run", "-n4", "-o", "cpu-affinity=off", "--label-io", "flux", "multi-prog", conf(CONF + "4 true\n"))
    assert sorted(r.stdout.splitlines()) == ["0: task 0 quoted arg", "1: task 1 quoted arg", "2: task 2 offset 0",
                                             "3: task 3 offset 1"]


def test_star_line_takes_the_rest(inst, conf):
    r = inst.flux("run", "-N2", "-n4", "--label-io", "flux", "multi-prog", conf("1 echo one\n* echo other %t %o\n"))
    assert sorted(r.stdout.splitlines()) == ["0: other 0 0", "1: one", "2: other 2 0", "3: other 3 0"]


def test_dry_run(inst, conf):
    r = inst.flux("multi-prog", "-n", "0-4", conf(CONF))
    assert r.stdout.splitlines() == ["0: echo task 0 'quoted arg'", "1: echo task 1 'quoted arg'",
                                     "2: echo task 2 offset 0", "3: echo task 3 offset 1",
                                     "4: sh -c 'echo rest $FLUX_TASK_RANK'"]


@pytest.mark.parametrize("text, message", [
    ("0 true\n0-1 false\n", "line 2: task 0 is already on line 1 (a task may match one line only)"),
    ("* true\n* false\n", "line 2: a second '*' line (the first is line 1)"),
    ("0 true\nx-y false\n", "line 2: invalid idset 'x-y' (give task ranks like 0-3,5, or *)"),
    ("0 true\n1 'open\n", "line 2: No closing quotation in \"1 'open\""),
    ("0-3\n", "line 1: no command for tasks 0-3"),
    ("0 true\n", "no line for task 1 (add one, or a '*' line)"),
])
def test_bad_config_is_one_line(inst, conf, text, message):
    path = conf(text)
    r = inst.flux("multi-prog", "-n", "0-1", path, check=False)
    assert (r.returncode, r.stderr.strip()) == (1, f"flux-multi-prog: {path}: {message}"), r.stderr
    r = inst.flux("run", "-n2", "flux", "multi-prog", path, check=False)  # the job fails, the instance goes on
    assert r.returncode == 1 and f"flux-multi-prog: {path}: {message}" in r.stderr, r.stderr
    assert inst.flux("run", "true").returncode == 0


def test_command_not_found_exits_127(inst, conf):
    r = inst.flux("run", "-n2", "flux", "multi-prog", conf("0 true\n1 /no/such/prog\n"), check=False)
    assert r.returncode == 127
    assert "flux-multi-prog: task 1: /no/such/prog: No such file or directory" in r.stderr, r.stderr


def test_outside_a_job_and_bad_arguments(inst, conf):
    path = conf(CONF)
    r = inst.flux("multi-prog", path, check=False, env={"FLUX_TASK_RANK": ""})
    assert r.returncode == 1 and "FLUX_TASK_RANK is not set: run it as a job's command" in r.stderr, r.stderr
    r = inst.flux("multi-prog", "/no/such.conf", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, "flux-multi-prog: /no/such.conf: No such file or directory")
    r = inst.flux("multi-prog", "-n", "x", path, check=False)
    assert r.returncode == 2 and "not an idset of task ranks" in r.stderr, r.stderr
