"""FastParser answers exactly as argparse would, or leaves the command line to argparse."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flux_launch.cli import submitbase
from flux_launch.cli.fastparse import FastParser, Namespace, _Fallback


def _parser():
    p = submitbase.make_parser("submit", "test")
    p.add_argument("--cc", metavar="IDSET")
    p.add_argument("--wait", action="store_true")
    return p


def _argparse(p, argv):
    """argparse's namespace, or None when it rejects the command line."""
    try:
        return Namespace(**vars(p.argparser().parse_args(argv)))
    except SystemExit:
        return None


TOKENS = ["-n", "-n4", "-n", "4", "-N2", "--ntasks", "--ntasks=3", "--nt=2", "-c", "2", "-l", "-u", "-lu",
          "-ln2", "-lx", "--label-io", "--label-io=1", "-o", "cpu-affinity=off", "-ofoo=1", "--setopt",
          "a.b=1", "--env=A=1", "--env", "-B", "--env-remove=X*", "-t", "5m", "--job-name", "x y",
          "--dry-run", "--wait", "--cc=1-3", "--", "-", "", "-5", "-n-1", "-n", "-1", "x", "hostname",
          "--urgency=7", "--urgency", "abc", "-S", "k=v", "--flags=waitable", "-h", "--help", "-q", "batch",
          "--exclusive", "--exc", "-g", "1", "--cores=4", "-n=3", "---n", "-nx", "--output", "out.{{id}}",
          "--gpus", "--gpus=2", "--c", "--=x", "--e", "-t--", "--job-name=--", "-o--", "--help", "--he"]


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=7))
def test_the_fast_path_agrees_with_argparse(argv):
    p = _parser()
    try:
        got = p._parse(list(argv))
    except _Fallback:
        return
    want = _argparse(p, argv)
    assert want is not None, f"argparse rejects {argv}, the fast path gave {got}"
    assert got == want, argv


@pytest.mark.parametrize("argv", [
    ["-n4", "-lu", "--env=A=1", "-o", "x=1", "-o", "y", "sh", "-c", "echo -n 1"],
    ["--ntasks", "2", "--cores-per-task=2", "-N", "1", "--job-name", "j", "hostname", "-n", "3"],
    ["-ln2", "--cc", "1-2", "--wait", "true"],
    ["sh", "-c", "x", "--", "--gpus"],
    ["prog", "--ntasks", "--gpus-per-task=1", "--bogus", "--help"],
    [],
])
def test_common_command_lines_take_the_fast_path(argv):
    p = _parser()
    got = p._parse(list(argv))
    assert got == _argparse(p, argv)


@pytest.mark.parametrize("argv", [["-n", "x", "true"], ["--bogus", "true"], ["--nt=2", "true"], ["-h"],
                                  ["--", "true"], ["-n=3", "true"], ["--job-name", "-x", "true"],
                                  ["python", "train.py", "--gpus", "8"], ["-t--", "true"], ["x", "--=1"]])
def test_the_rest_goes_to_argparse(argv):
    with pytest.raises(_Fallback):
        _parser()._parse(list(argv))


def test_errors_and_help_are_argparses(capsys):
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["-n", "x", "true"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: flux submit")
    assert "flux-submit: error: argument -n/--ntasks: invalid int value: 'x'" in err
    assert _parser().parse_args(["--nt=2", "true"]).ntasks == 2  # an abbreviation, as argparse allows
    with pytest.raises(SystemExit) as exc:
        _parser().error("a COMMAND is required")
    assert exc.value.code == 2 and "flux-submit: error: a COMMAND is required" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        _parser().parse_args(["-h"])
    assert exc.value.code == 0 and "--ntasks" in capsys.readouterr().out


def test_unsupported_option_kinds_always_go_to_argparse():
    p = FastParser("x")
    p.add_argument("--mode", choices=["a", "b"])
    p.add_argument("command", nargs="...")
    with pytest.raises(_Fallback):
        p._parse(["--mode", "c", "true"])
    assert p.parse_args(["--mode", "a", "true"]).mode == "a"

