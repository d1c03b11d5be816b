"""flux bulksubmit against flux-core's documented examples (flux-bulksubmit(1)),
real submissions, bad input; flux submit --cc/--bcc with --watch/--wait."""

import pytest

from flux_launch.testing import Instance, flux

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst2():
    with Instance(size=2) as inst:
        yield inst


@pytest.mark.parametrize("args, stdin, expected", [
    (["echo", "{}"], "1\n2\n3\n4\n", ["echo 1", "echo 2", "echo 3", "echo 4"]),
    (["echo", "{}", ":::", "1", "2", "3", "4"], None, ["echo 1", "echo 2", "echo 3", "echo 4"]),
    (["echo", "{1}", "{0}", ":::", "1", "2", ":::", "3", "4"], None, ["echo 3 1", "echo 4 1", "echo 3 2", "echo 4 2"]),
    (["echo", "{0}", "{1}", ":::", "1", "2", ":::+", "3", "4"], None, ["echo 1 3", "echo 2 4"]),
    (["echo", "{0}", "{1}", ":::", "1", "2", "3", ":::+", "a"], None, ["echo 1 a", "echo 2 a", "echo 3 a"]),
    (["--define=p2=2**int(x)", "-n", "{.p2}", "hostname", ":::", "0", "1", "2", "3", "4"], None,
     ["-n1 hostname", "-n2 hostname", "-n4 hostname", "-n8 hostname", "-n16 hostname"]),
    (["echo", "{.%}", "{./}", "{./%}", "{.//}", "{seq}", "{seq1}", ":::", "/a/b/c.txt", "d.tar"], None,
     ["echo /a/b/c c.txt c /a/b 0 1", "echo d d.tar d  1 2"]),
])
def test_dry_run_as_documented(args, stdin, expected):
    r = flux("bulksubmit", "--dry-run", *args, input=stdin)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"bulksubmit: submit {line}" for line in expected], r.stdout


def test_inputs_from_a_file_and_stdin(tmp_path):
    (tmp_path / "inputs").write_text("0\n1\n")
    r = flux("bulksubmit", "--dry-run", "echo", "{0}{1}", "::::", str(tmp_path / "inputs"), "::::", "-",
             input="a\nb\n")
    assert r.stdout.splitlines() == [f"bulksubmit: submit echo {x}" for x in ("0a", "0b", "1a", "1b")]


@pytest.mark.parametrize("args, message", [
    (["echo", "{2}", ":::", "1"], "cannot substitute '{2}'"),
    (["echo", "{.nope}", ":::", "1"], "cannot substitute '{.nope}'"),
    (["--define", "p=1/0", "echo", "{.p}", ":::", "1"], "--define p=1/0: ZeroDivisionError"),
    (["echo", ":::"], "::: must be followed by inputs"),
    (["echo", "::::", "/nonexistent/inputs"], "/nonexistent/inputs: No such file or directory"),
])
def test_bad_input_one_line(args, message):
    r = flux("bulksubmit", "--dry-run", *args, input="")
    assert r.returncode == 1
    assert r.stderr.strip().startswith("flux-bulksubmit: ") and message in r.stderr, r.stderr
    assert "\n" not in r.stderr.strip()


def test_submits_one_job_per_combination(inst2, tmp_path):
    log = tmp_path / "ids"
    r = inst2.flux("bulksubmit", f"--log={log}", "--wait", "-n{}", "true", ":::", "1", "2", "3")
    assert r.returncode == 0 and r.stdout == ""
    ids = log.read_text().split()
    assert len(ids) == 3
    sizes = sorted(inst2.flux("jobs", "-n", "-o", "{ntasks}", *ids).stdout.split())
    assert sizes == ["1", "2", "3"]


def test_watch_of_several_jobs_prints_all_and_exits_with_the_highest(inst2):
    """A later attach on the same handle is not stopped by the end of an earlier
    one's stream (flux submit --cc --watch exited 1 with the second job's output)."""
    r = inst2.flux("bulksubmit", "--watch", "--quiet", "sh", "-c", "echo out-{0}; exit {0}", ":::", "0", "2", "0",
                   check=False)
    assert sorted(r.stdout.split()) == ["out-0", "out-0", "out-2"], r.stdout + r.stderr
    assert r.returncode == 2
    r = inst2.flux("submit", "--cc=1-3", "--watch", "--quiet", "echo", "x{cc}", check=False)
    assert r.returncode == 0 and r.stdout.split() == ["x1", "x2", "x3"], r.stdout + r.stderr


def test_bcc_sets_no_flux_job_cc(inst2):
    out = inst2.flux("submit", "--bcc=1-2", "--watch", "--quiet", "sh", "-c", "echo {cc}=${FLUX_JOB_CC:-unset}").stdout
    assert out.split() == ["1=unset", "2=unset"], out
    r = inst2.flux("submit", "--cc=1", "--bcc=1", "true", check=False)
    assert r.returncode == 2 and "mutually exclusive" in r.stderr
