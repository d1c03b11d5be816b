"""flux exec details (exit codes, stdin/stderr, FLUX_URI, cwd) and broker attributes."""

import os

import pytest

pytestmark = pytest.mark.e2e


def test_exit_code_is_highest(instance4):
    r = instance4.flux("exec", "-r", "all", "sh", "-c", "exit $(flux getattr rank)", check=False)
    assert r.returncode == 3, r.stderr
    r = instance4.flux("exec", "-r", "0,1", "sh", "-c", "exit $(flux getattr rank)", check=False)
    assert r.returncode == 1
    r = instance4.flux("exec", "-r", "all", "true")
    assert r.returncode == 0


def test_signal_exit_code(instance4):
    r = instance4.flux("exec", "-r", "2", "sh", "-c", "kill -9 $$", check=False)
    assert r.returncode == 128 + 9


def test_command_not_found(instance4):
    r = instance4.flux("exec", "-r", "1", "no-such-command-xyz", check=False)
    assert r.returncode == 127
    assert "rank 1" in r.stderr and "no-such-command-xyz" in r.stderr
    assert "Traceback" not in r.stderr


def test_command_not_found_on_all_ranks(instance4):
    r = instance4.flux("exec", "-r", "all", "no-such-command-xyz", check=False)
    assert r.returncode == 127
    for rank in range(4):
        assert f"rank {rank}" in r.stderr


def test_stdin_forwarded(instance4):
    r = instance4.flux("exec", "-r", "0", "cat", input="hello\n")
    assert r.stdout == "hello\n"
    r = instance4.flux("exec", "-r", "1-2", "-l", "cat", input="a\nb\n")
    assert sorted(r.stdout.splitlines()) == ["1: a", "1: b", "2: a", "2: b"]


def test_noinput(instance4):
    r = instance4.flux("exec", "-n", "-r", "0", "cat", input="hello\n")
    assert r.returncode == 0
    assert r.stdout == ""


def test_stderr_forwarded(instance4):
    r = instance4.flux("exec", "-r", "3", "sh", "-c", "echo out; echo err >&2")
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"
    r = instance4.flux("exec", "-r", "3", "-l", "sh", "-c", "echo err >&2")
    assert r.stderr == "3: err\n"


def test_partial_line_labelled(instance4):
    r = instance4.flux("exec", "-r", "2", "-l", "printf", "no-newline")
    assert r.stdout in ("2: no-newline", "2: no-newline\n")


def test_flux_uri_points_to_rank(instance4):
    assert instance4.flux("exec", "-r", "2", "sh", "-c", "flux getattr rank").stdout == "2\n"
    out = instance4.flux("exec", "-r", "all", "-l", "sh", "-c", 'echo "$FLUX_URI"').stdout
    uris = dict(line.split(": ", 1) for line in out.splitlines())
    assert sorted(uris) == ["0", "1", "2", "3"]
    for rank, uri in uris.items():
        assert uri.endswith(f"/local-{rank}"), uris
        assert instance4.flux("exec", "-r", rank, "flux", "getattr", "local-uri").stdout.strip() == uri


def test_pmi_vars_not_leaked(instance4):
    out = instance4.flux("exec", "-r", "1", "sh", "-c", "env").stdout
    assert not [line for line in out.splitlines() if line.startswith(("PMI_FD=", "PMI_RANK=", "PMI_SIZE="))]


def test_cwd(instance4, tmp_path):
    assert instance4.flux("exec", "-r", "1", "-d", str(tmp_path), "pwd").stdout.strip() == str(tmp_path)
    # default: the caller's cwd
    assert instance4.flux("exec", "-r", "2", "pwd").stdout.strip() == os.getcwd()


def test_cwd_missing(instance4, tmp_path):
    r = instance4.flux("exec", "-r", "1", "-d", str(tmp_path / "nope"), "pwd", check=False)
    assert r.returncode != 0
    assert "rank 1" in r.stderr and "Traceback" not in r.stderr


def test_exclude_and_bad_ranks(instance4):
    out = instance4.flux("exec", "-r", "all", "-x", "1,3", "-l", "flux", "getattr", "rank").stdout
    assert sorted(out.splitlines()) == ["0: 0", "2: 2"]
    r = instance4.flux("exec", "-r", "7", "true", check=False)
    assert r.returncode == 2 and "rank 7" in r.stderr
    r = instance4.flux("exec", "-r", "x-y", "true", check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_binary_output(instance4):
    r = instance4.run("sh", "-c", "flux exec -r 1 printf '\\377\\376\\001' | od -An -tx1")
    assert r.stdout.split() == ["ff", "fe", "01"]


# ---- attributes ---------------------------------------------------------------------

def test_setattr_getattr(instance4):
    instance4.flux("setattr", "e2e.foo", "bar")
    assert instance4.flux("getattr", "e2e.foo").stdout == "bar\n"


def test_setattr_readonly(instance4):
    r = instance4.flux("setattr", "rank", "5", check=False)
    assert r.returncode == 1
    assert "rank" in r.stderr and "read-only" in r.stderr
    assert instance4.flux("getattr", "rank").stdout == "0\n"


def test_getattr_missing(instance4):
    r = instance4.flux("getattr", "no.such.attr", check=False)
    assert r.returncode == 1
    assert "no.such.attr" in r.stderr


def test_lsattr(instance4):
    names = instance4.flux("lsattr").stdout.split()
    values = {}
    for line in instance4.flux("lsattr", "-v").stdout.splitlines():
        name, _, value = line.partition(" ")
        values[name] = value.strip()
    for name in ("rank", "size", "broker.pid", "rundir", "statedir", "tbon.fanout"):
        assert name in names and name in values, name
    assert values["rank"] == "0"
    assert values["size"] == "4"
    assert int(values["broker.pid"]) > 1
    assert values["rundir"].startswith("/")
    assert values["statedir"].startswith("/")
    assert values["tbon.fanout"] == "2"


def test_rank_attrs(instance4):
    out = instance4.flux("exec", "-r", "all", "-l", "flux", "getattr", "size").stdout
    assert sorted(out.splitlines()) == ["0: 4", "1: 4", "2: 4", "3: 4"]


def test_unlabelled_output_keeps_lines_whole(make_instance):
    inst = make_instance(size=4)
    # every rank writes half a line, waits until all four have, then ends its line
    prog = ('r=$(flux getattr rank); printf "rank-%s" "$r"; flux kvs eventlog append e2e.halves "h$r"; '
            'n=0; while [ "$(flux kvs eventlog get e2e.halves | wc -l)" -lt 4 ] && [ $n -lt 200 ]; '
            'do sleep 0.05; n=$((n+1)); done; printf "\\n"')
    out = inst.flux("exec", "-r", "all", "sh", "-c", prog, timeout=60).stdout
    assert sorted(out.splitlines()) == ["rank-0", "rank-1", "rank-2", "rank-3"], repr(out)
