"""An instance started with signals ignored (``flux start ... &`` from a script
ignores SIGINT and SIGQUIT, ``nohup`` SIGHUP): the brokers still ignore them, but
what they start (tasks, the initial program, ``flux exec`` commands) gets every
signal at its default action, as under flux-core, so ``flux job kill -s QUIT`` and
``flux shutdown`` work."""

import os
import signal
import subprocess

import pytest

from flux_launch.testing import BIN, clean_env

pytestmark = pytest.mark.e2e

IGNORED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1)


def _ignoring():
    for sig in IGNORED:
        signal.signal(sig, signal.SIG_IGN)


def _start(script, timeout=90):
    return subprocess.run([os.path.join(BIN, "flux"), "start", "--test-size=2", "sh", "-c", script],
                          capture_output=True, text=True, env=clean_env(), timeout=timeout,
                          stdin=subprocess.DEVNULL, preexec_fn=_ignoring, start_new_session=True)


def _mask(line):
    return int(line.split()[1], 16)


def test_children_get_default_dispositions():
    r = _start("grep SigIgn /proc/self/status; flux run -N2 -n2 grep SigIgn /proc/self/status; "
               "flux exec -r all grep SigIgn /proc/self/status; "
               "flux exec -r 0 sh -c 'grep -E \"Sig(Ign|Cgt)\" /proc/$(flux getattr broker.pid)/status'")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    bits = sum(1 << (sig - 1) for sig in IGNORED)
    # (only the bits of IGNORED: whoever started the tests may have left others ignored, glibc's own included)
    assert len(lines) == 7 and all(_mask(ln) & bits == 0 for ln in lines[:5]), r.stdout
    # the broker itself goes on ignoring them: caught by a handler that does nothing
    broker = dict(ln.split(":", 1) for ln in lines[5:7])
    assert _mask(f"x {broker['SigIgn'].strip()}") & bits == 0, r.stdout
    assert _mask(f"x {broker['SigCgt'].strip()}") & bits == bits, r.stdout


def test_quit_ends_the_job_and_shutdown_ends_the_initial_program():
    r = _start("j=$(flux submit -N2 -n2 sleep 300); flux job wait-event -t 30 -p exec $j shell.start >/dev/null; "
               "flux job kill -s QUIT $j; flux job wait-event -t 30 -f json $j finish; flux shutdown; sleep 60")
    assert r.returncode == 129, (r.stdout, r.stderr)
    assert '"status":33536' in r.stdout.replace(" ", ""), r.stdout  # 128 + SIGQUIT (131) << 8


def test_brokers_still_ignore_sighup():
    r = _start("flux exec -r all sh -c 'kill -HUP $(flux getattr broker.pid)'; sleep 0.5; flux run -N2 true; "
               "flux uptime")
    assert r.returncode == 0, r.stderr
    assert "size 2" in r.stdout, r.stdout
