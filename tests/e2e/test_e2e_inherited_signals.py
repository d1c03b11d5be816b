"""An instance started with signals ignored (``flux start ... &`` from a script
ignores SIGINT and SIGQUIT, ``nohup`` SIGHUP): the brokers still ignore them; what
they start (tasks, the initial program, ``flux exec`` commands) gets SIGINT and
SIGQUIT at their default action, so ``flux job kill -s QUIT`` works, and keeps
ignoring SIGHUP as nohup asked; ``flux shutdown`` then escalates to SIGTERM."""

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
    reset = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGQUIT - 1))
    kept = (1 << (signal.SIGHUP - 1)) | (1 << (signal.SIGUSR1 - 1))
    assert len(lines) == 7, r.stdout
    assert all(_mask(line) & reset == 0 for line in lines[:5]), r.stdout
    # the initial program and flux exec commands keep nohup's SIGHUP; tasks get the
    # signals their shell forwards (SIGHUP, SIGUSR1 among them) at default anyway
    assert all(_mask(lines[i]) & kept == kept for i in (0, 3, 4)), r.stdout
    # the broker itself goes on ignoring them: caught by a handler that does nothing
    broker = dict(ln.split(":", 1) for ln in lines[5:7])
    assert _mask(f"x {broker['SigIgn'].strip()}") & reset == 0, r.stdout
    assert _mask(f"x {broker['SigCgt'].strip()}") & reset == reset, r.stdout


def test_quit_ends_the_job_and_shutdown_escalates():
    r = _start("j=$(flux submit -N2 -n2 sleep 300); flux job wait-event -t 30 -p exec $j shell.start >/dev/null; "
               "flux job kill -s QUIT $j; flux job wait-event -t 30 -f json $j finish; flux shutdown; sleep 60")
    assert '"status":33536' in r.stdout.replace(" ", ""), r.stdout  # 128 + SIGQUIT (131) << 8
    # the initial program ignores SIGHUP (nohup): SIGTERM 5 s later ends it
    assert r.returncode == 128 + signal.SIGTERM, (r.returncode, r.stderr)
    assert "is still running 5s after the last signal: sent SIGTERM" in r.stderr, r.stderr


def test_brokers_still_ignore_sighup():
    r = _start("flux exec -r all sh -c 'kill -HUP $(flux getattr broker.pid)'; sleep 0.5; flux run -N2 true; "
               "flux uptime")
    assert r.returncode == 0, r.stderr
    assert "size 2" in r.stdout, r.stdout
