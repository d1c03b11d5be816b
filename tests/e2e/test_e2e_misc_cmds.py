"""flux version / env / python / help, and flux start's -o, --test-hosts,
--test-pmi-clique and --test-rundir-cleanup, as flux-core's."""

import os
import re

import pytest

from flux_launch import __version__
from flux_launch.testing import flux

pytestmark = pytest.mark.e2e


def test_version_outside_and_inside_an_instance():
    out = flux("version").stdout.splitlines()
    assert out[:2] == [f"commands:    \t\t{__version__}", f"libflux-core:\t\t{__version__}"]
    assert re.fullmatch(r"build-options:\t\t\+hwloc\+zmq==[\d.]+\+python==[\d.]+", out[2]), out
    assert flux("--version").stdout == flux("-V").stdout == flux("version").stdout
    inside = flux("start", "flux", "version").stdout.splitlines()
    assert inside[2] == f"broker:  \t\t{__version__}" and inside[3].startswith("FLUX_URI:\t\tlocal://"), inside
    r = flux("version", "extra")
    assert r.returncode == 1 and r.stderr == "flux-version: accepts no arguments\n"


def test_env_prints_and_runs():
    out = flux("env").stdout.splitlines()
    names = [line.split("=", 1)[0] for line in out]
    assert names[:2] == ["export PATH", "export PYTHONPATH"], out
    assert all(re.fullmatch(r'export [A-Z_]+=".*"', line) for line in out), out
    assert flux("env", "sh", "-c", 'echo "$FLUX_PMI_LIBRARY_PATH"').stdout.strip().endswith("libpmi.so")
    r = flux("env", "no-such-command-here")
    assert r.returncode == 127 and r.stderr == "flux-env: no-such-command-here: No such file or directory\n"


def test_python_has_flux_importable(tmp_path):
    r = flux("python", "-c", "import sys, flux, flux.job; print(sys.argv[1:])", "a", "b")
    assert r.returncode == 0 and r.stdout == "['a', 'b']\n", r.stderr
    r = flux("python", "-c", "import sys; sys.exit(3)")
    assert r.returncode == 3


def test_help():
    r = flux("help")
    assert r.returncode == 0 and r.stdout.startswith("Usage: flux [OPTIONS] COMMAND ARGS")
    assert "  dmesg " in r.stdout and "  version " in r.stdout
    r = flux("help", "run")
    assert r.returncode == 0 and r.stdout.startswith("usage: flux run"), r.stdout
    r = flux("help", "nosuch")
    assert r.returncode == 1 and r.stderr == "flux-help: 'nosuch' is not a flux command. See 'flux help'\n"


def test_start_broker_opts():
    r = flux("start", "-o", "-Stbon.fanout=1,-Slog-level=5", "-o,-Sbroker.quorum-timeout=3", "sh", "-c",
             'flux getattr tbon.fanout; flux getattr log-level; flux getattr broker.quorum-timeout; echo "$0"',
             "-o")
    assert r.stdout.split() == ["1", "5", "3", "-o"], r.stderr
    r = flux("start", "-o", "-x", "true")
    assert r.returncode == 2 and "unknown broker option '-x' in -o" in r.stderr


def test_start_test_hosts_names_the_brokers():
    r = flux("start", "--test-size=3", "--test-hosts=h[0-2]", "sh", "-c",
             "flux getattr hostname; flux overlay status; flux run -N3 sh -c 'echo ${FLUX_FAKE_HOSTNAME-unset}'")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:4] == ["h0", "0 h0: full", "├─ 1 h1: full", "└─ 2 h2: full"], lines
    assert lines[4:] == ["unset"] * 3  # the brokers' own, not their jobs'
    r = flux("start", "--test-size=3", "--test-hosts=a,b", "true")
    assert r.returncode == 2 and "--test-hosts names 2 hosts for 3 brokers" in r.stderr


def test_nested_instance_across_named_hosts_uses_tcp():
    """Shells on different hosts are different nodes in PMI_process_mapping: the
    brokers of a nested instance across them link over TCP (CURVE)."""
    r = flux("start", "--test-size=2", "--test-hosts=h[0-1]", "flux", "run", "-N2", "-n2", "flux", "start",
             "sh", "-c", "flux getattr size; flux getattr tbon.endpoint", timeout=60)
    assert r.returncode == 0, r.stderr
    size, endpoint = r.stdout.split()
    assert size == "2" and endpoint.startswith("tcp://"), r.stdout


@pytest.mark.parametrize("mode,transport", [("single", "ipc://"), ("per-broker", "tcp://"), ("none", "tcp://")])
def test_start_test_pmi_clique(mode, transport):
    r = flux("start", "--test-size=2", f"--test-pmi-clique={mode}", "flux", "getattr", "tbon.endpoint")
    assert r.returncode == 0 and r.stdout.startswith(transport), (r.stdout, r.stderr)


def test_start_test_pmi_clique_bad():
    r = flux("start", "--test-pmi-clique=x", "true")
    assert r.returncode == 2 and "--test-pmi-clique=x: expected single, per-broker or none" in r.stderr


def test_start_test_rundir_cleanup(tmp_path):
    d = tmp_path / "rd"
    d.mkdir(mode=0o700)
    assert flux("start", "--test-size=2", f"--test-rundir={d}", "--test-rundir-cleanup", "true").returncode == 0
    assert not d.exists()
    d.mkdir(mode=0o700)
    assert flux("start", "--test-size=2", f"--test-rundir={d}", "true").returncode == 0
    assert d.exists()
    r = flux("start", "--test-rundir-cleanup", "true")
    assert r.returncode == 2 and "--test-rundir-cleanup needs --test-rundir" in r.stderr
    assert os.path.isdir(tmp_path)
