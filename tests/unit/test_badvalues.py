"""Wrong option values are refused before anything is submitted, each with one
line that names the option and what to use (exit 1; usage errors exit 2 with
argparse's usage line and message, as flux-core). The commands run in-process
with ``--dry-run`` (nothing here needs an instance), so a value that slipped
through prints a jobspec and exits 0."""

import pytest

from flux_launch.cli.main import main
from flux_launch.proto import shellopts


def _flux(capsys, *argv):
    try:
        rc = main(list(argv))
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


RUN_CASES = [
    # (options, exit code, text the error line holds)
    (["-n", "0"], 1, "-n/--ntasks=0: must be an integer >= 1"),
    (["-n", "-1"], 1, "-n/--ntasks=-1"),
    (["-n", "abc"], 2, "invalid int value: 'abc'"),
    (["-c", "0"], 1, "-c/--cores-per-task=0"),
    (["-g", "-1"], 1, "-g/--gpus-per-task=-1: must be an integer >= 0"),
    (["-N", "0"], 1, "-N/--nodes=0"),
    (["-N", "-1"], 1, "-N/--nodes=-1"),
    (["-N3", "-n2"], 1, "more nodes than the 2 tasks"),
    (["--tasks-per-node=0", "-N1"], 1, "--tasks-per-node=0"),
    (["--tasks-per-node=2"], 1, "--tasks-per-node needs -N/--nodes"),
    (["--tasks-per-node=2", "-N1", "-n2"], 1, "can't be used with -n/--ntasks"),
    (["--gpus-per-node=-1", "-N1"], 1, "--gpus-per-node=-1"),
    (["--cores=0"], 1, "--cores=0: must be an integer >= 1"),
    (["--cores=-3"], 1, "--cores=-3"),
    (["--exclusive"], 1, "--exclusive can only be used with -N/--nodes"),
    (["-t", ""], 1, "-t/--time-limit: empty duration"),
    (["-t", "abc"], 1, "-t/--time-limit=abc: invalid duration"),
    (["-t", "-5"], 1, "-t/--time-limit=-5: invalid duration"),
    (["--job-name", ""], 1, "--job-name: empty value"),
    (["--queue="], 1, "-q/--queue: empty value"),
    (["--output="], 1, "--output: empty value"),
    (["--output=out.{{bogus}}"], 1, "--output: unknown template field '{{bogus}}'"),
    (["--error=err.{{id"], 1, "--error: unknown template field"),
    (["--urgency=32"], 1, "--urgency=32: use an integer 0-31, default, hold or expedite"),
    (["--urgency=-1"], 1, "--urgency=-1"),
    (["--urgency=abc"], 1, "--urgency=abc"),
    (["--env==x"], 1, "empty variable name"),
    (["--env=A=$NO_SUCH_VARIABLE_XYZ"], 1, "variable 'NO_SUCH_VARIABLE_XYZ' not found"),
    (["--env=A=${oops"], 1, "invalid $ substitution"),
    (["--env-remove="], 1, "--env-remove: empty pattern"),
    (["--env-file=/nonexistent/env"], 1, "--env-file /nonexistent/env: No such file or directory"),
    (["--cwd=relative/dir"], 1, "--cwd relative/dir: not an absolute path"),
    (["--flags=bogus"], 1, "--flags: unknown flag 'bogus'"),
    (["--flags=,"], 1, "--flags: unknown flag ''"),
    (["--input=/nonexistent/in"], 1, "--input /nonexistent/in: no such file"),
    (["--input=/"], 1, "--input /: is a directory"),
    (["--input=0-5"], 1, "--input=0-5: task 5 does not exist (the job has 1 task: 0-0)"),
    (["-S", "noequals"], 1, "--setattr 'noequals': expected KEY=VALUE"),
    (["-S", "a..b=1"], 1, "--setattr 'a..b=1'"),
    (["-o", "=1"], 1, "-o/--setopt '=1': bad option name"),
    (["-o", "a..b=1"], 1, "-o/--setopt 'a..b=1': bad option name"),
    (["-o", "verbose=abc"], 1, "-o verbose: 'abc'"),
    (["-o", "verbose=-1"], 1, "-o verbose: -1"),
    (["-o", "exit-timeout=abc"], 1, "-o exit-timeout: 'abc'"),
    (["-o", "exit-timeout=-1"], 1, "-o exit-timeout: -1"),
    (["-o", "pmi=bogus"], 1, "-o pmi: 'bogus' is not a PMI this shell offers"),
    (["-o", "pmi-simple.exchange.k=0"], 1, "-o pmi-simple.exchange.k: 0"),
    (["-o", "cpu-affinity=bogus"], 1, "-o cpu-affinity: invalid value 'bogus'"),
    (["-o", "gpu-affinity=bogus"], 1, "-o gpu-affinity: invalid value 'bogus'"),
    (["-o", "gpu-affinity=map:x"], 1, "-o gpu-affinity: bad list 'x'"),
    (["-o", "output.limit=abc"], 1, "-o output.limit: invalid size 'abc'"),
    (["-o", "output.limit=-1"], 1, "-o output.limit: invalid size '-1'"),
    (["-o", "output.batch-timeout=x"], 1, "-o output.batch-timeout: 'x'"),
    (["-o", "output.stdout.type=bogus"], 1, "-o output.stdout.type: 'bogus' (use kvs or file)"),
    (["-o", "output.stderr.type=file"], 1, "-o output.stderr.path: a file needs a path"),
    (["-o", "output.stdout.buffer.type=x"], 1, "-o output.stdout.buffer.type: 'x'"),
    (["-o", "output=5"], 1, "-o output: expected options under it"),
    (["-o", "input.stdin.type=bogus"], 1, "-o input.stdin.type: 'bogus'"),
    (["-o", "per-resource.type=bogus"], 1, "-o per-resource.type must be core or node"),
    (["-o", "per-resource.type=core", "-o", "per-resource.count=0"], 1, "per-resource.count"),
    (["--bogus-option"], 2, "unrecognized arguments: --bogus-option"),
]


@pytest.mark.parametrize("cmd", ["run", "submit"])
@pytest.mark.parametrize("opts, code, text", RUN_CASES, ids=[" ".join(c[0]) for c in RUN_CASES])
def test_run_and_submit_refuse(capsys, cmd, opts, code, text):
    rc, out, err = _flux(capsys, cmd, "--dry-run", *opts, "true")
    assert rc == code, f"rc={rc} stdout={out[:300]} stderr={err}"
    assert out == "", out
    lines = err.splitlines()
    if code == 1:
        assert len(lines) == 1, err
        assert lines[0].startswith(f"flux-{cmd}: "), err
    else:  # argparse: the usage line, then the error line
        assert len(lines) == 2 and lines[0].startswith(f"usage: flux {cmd} "), err
        assert lines[1].startswith(f"flux-{cmd}: error: "), err
    assert text in err, err


@pytest.mark.parametrize("opts", [
    ["--urgency=hold"], ["--urgency=expedite"], ["--urgency=default"], ["--urgency=0"],
    ["-N2"], ["-N2", "--tasks-per-node=2"], ["--env=A=$HOME"], ["--env=A=$$x"], ["--env=-*"],
    ["--input=0"], ["--input=all"], ["--output=out.{{id}}.{{taskid}}"], ["--cwd=/tmp"],
    ["-o", "pmi=off"], ["-o", "exit-timeout=none"], ["-o", "exit-timeout=30s"], ["-o", "verbose"],
    ["-o", "output.stdout.type=kvs"], ["-o", "site-plugin-option=1"], ["-g", "0"],
])
def test_good_values_still_pass(capsys, opts):
    rc, out, err = _flux(capsys, "run", "--dry-run", *opts, "true")
    assert rc == 0 and out.startswith("{"), err


def test_urgency_names_as_flux_core():
    from flux_launch.cli import submitbase

    p = submitbase.make_parser("run", "")
    assert [submitbase.urgency(p.parse_args([f"--urgency={u}", "x"]))
            for u in ("hold", "default", "expedite", "7")] == [0, 16, 31, 7]


def test_env_expands_from_the_jobs_own_environment_first(capsys, monkeypatch):
    import json

    monkeypatch.setenv("BASE", "outer")
    rc, out, err = _flux(capsys, "run", "--dry-run", "--env=BASE=inner", "--env=X=${BASE}-$$", "true")
    assert rc == 0, err
    assert json.loads(out)["attributes"]["system"]["environment"]["X"] == "inner-$"


@pytest.mark.parametrize("fmt, text", [
    ("{bogus}", "unknown field 'bogus'"),
    ("{id:>bogus}", "Invalid format specifier"),
    ("{id", "expected '}'"),
    ("", "empty format"),
    ("{id.nosuchencoding}", "-o/--format"),
])
def test_jobs_refuses_bad_formats(capsys, fmt, text):
    rc, out, err = _flux(capsys, "jobs", "-o", fmt)
    assert rc == 1 and out == "" and len(err.splitlines()) == 1 and text in err, err


@pytest.mark.parametrize("argv, text", [
    (["jobs", "-c", "-1"], "-c/--count=-1: must be >= 0"),
    (["jobs", "-f", ""], "-f/--filter: empty"),
    (["cancel", "--all", "123"], "give job ids or --all, not both"),
])
def test_usage_errors_exit_2(capsys, argv, text):
    rc, out, err = _flux(capsys, *argv)
    assert rc == 2 and text in err.splitlines()[-1], err


def test_jobs_unknown_user_is_one_line_not_a_traceback(capsys, monkeypatch):
    monkeypatch.setenv("FLUX_URI", "local:///nonexistent/socket")
    import flux_launch.cli.jobs as jobs

    class _H:
        def rpc(self, *a, **k):
            raise AssertionError("no RPC for a bad user")

    monkeypatch.setattr(jobs, "handle", lambda: _H())
    rc, out, err = _flux(capsys, "jobs", "-u", "no_such_user_xyz")
    assert rc == 1 and err == "flux-jobs: -u/--user no_such_user_xyz: no such user (give a name, a uid or all)\n"


@pytest.mark.parametrize("fmt", ["default", "long", "deps", "{id} {name} {status} {ntasks} {nodelist}",
                                 "{id.f58:>12} ?:{queue:<8.8} {t_submit!d:%H:%M::>8} {runtime!F:>8h}"])
def test_jobs_named_and_common_formats_pass_the_check(fmt):
    from flux_launch.cli.jobs import FORMATS, _check_format

    _check_format(FORMATS.get(fmt, fmt))


@pytest.mark.parametrize("options, text", [
    ({"verbose": "x"}, "verbose"),
    ({"verbose": -2}, "verbose"),
    ({"pmi": "pmix"}, "pmi"),
    ({"pmi": 5}, "pmi"),
    ({"exit-timeout": True}, "exit-timeout"),
    ({"exit-timeout": "inf"}, "exit-timeout"),
    ({"output": {"limit": "1Q"}}, "output.limit"),
    ({"output": {"stdout": {"label": "maybe"}}}, "output.stdout.label"),
    ({"output": {"stdout": "x"}}, "output.stdout"),
    ({"input": {"stdin": {"type": "file"}}}, "input.stdin.path"),
    ({"pmi-simple": {"exchange": {"k": "two"}}}, "pmi-simple.exchange.k"),
    ({"per-resource": "node"}, "per-resource"),
])
def test_shellopts_check_refuses(options, text):
    with pytest.raises(ValueError, match=text.replace(".", r"\.")):
        shellopts.check(options)


@pytest.mark.parametrize("options", [
    {}, {"verbose": 2}, {"verbose": True}, {"pmi": "simple"}, {"pmi": "none"}, {"exit-timeout": "none"},
    {"exit-timeout": 2}, {"exit-timeout": "1m"}, {"output": {"limit": "10M", "batch-timeout": 0.05}},
    {"output": {"stdout": {"type": "file", "path": "/tmp/x", "label": True, "buffer": {"type": "none"}}}},
    {"input": {"stdin": {"type": "kvs"}}}, {"per-resource": {"type": "core", "count": 2}}, {"unknown": 1},
])
def test_shellopts_check_accepts(options):
    shellopts.check(options)


@pytest.mark.parametrize("value, seconds", [("5", 300.0), ("1.5", 90.0), ("30s", 30.0), ("2h", 7200.0),
                                            ("inf", float("inf"))])
def test_time_limit_without_units_is_minutes_as_flux_core(value, seconds):
    """flux-core's -t/--time-limit: a bare number is minutes (-t 5 was 5 seconds here)."""
    from flux_launch.cli.submitbase import _time_limit
    from flux_launch.core import fsd

    assert fsd.parse(_time_limit(value)) == seconds


def test_run_dry_run_time_limit_in_minutes(capsys):
    import json

    rc, out, err = _flux(capsys, "run", "--dry-run", "-t", "2", "true")
    assert rc == 0, err
    assert json.loads(out)["attributes"]["system"]["duration"] == 120.0


def test_every_template_field_the_cli_accepts_is_expanded_by_the_shell():
    """--output's check (the CLI) and its expansion (the output plugin) share one
    list of fields: each one the CLI lets through is replaced in the job."""
    from types import SimpleNamespace

    from flux_launch.core.jobid import JobID
    from flux_launch.shell.plugins.output import expand

    shell = SimpleNamespace(jobid=JobID(1234567), node_index=1, jobspec={}, command=["app"])
    for field in shellopts.TEMPLATE_FIELDS:
        out = expand("x.{{" + field + "}}", shell, 3)
        assert "{{" not in out and out != "x.", (field, out)
