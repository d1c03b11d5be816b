"""``flux startlog`` and ``admin.eventlog`` (flux-core's flux-startlog(1)): each
run of an instance on a statedir is a ``start`` and a ``finish``; a broker killed
with SIGKILL leaves a ``start`` alone, which the next start reports (a one-line
error: what it last wrote may be lost) and ``flux startlog`` shows as ``crashed``."""

import os
import re
import subprocess

import pytest

from flux_launch.testing import BIN, clean_env

pytestmark = pytest.mark.e2e

FLUX = os.path.join(BIN, "flux")
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d"


def _start(statedir, script, *opts):
    return subprocess.run([FLUX, "start", f"-Sstatedir={statedir}", *opts, "sh", "-c", script], capture_output=True,
                          text=True, env=clean_env(), timeout=60, stdin=subprocess.DEVNULL)


def test_clean_runs(tmp_path):
    r = _start(tmp_path, "flux startlog")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(rf"{WHEN} - running \(\S+\)\n", r.stdout), r.stdout
    r = _start(tmp_path, "flux startlog; flux startlog --check --quiet; echo check=$?", "--test-size=2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert re.fullmatch(rf"{WHEN} - {WHEN} \(\S+\)", lines[0]), r.stdout
    assert re.fullmatch(rf"{WHEN} - running \(\S+\)", lines[1]), r.stdout
    assert lines[2:] == ["check=0"] and "did not shut down cleanly" not in r.stderr


def test_killed_broker_is_a_crash(tmp_path):
    r = _start(tmp_path, "kill -9 $(flux getattr broker.pid)")
    assert r.returncode == -9
    r = _start(tmp_path, "flux startlog -v; flux startlog --check --quiet; echo check=$?; flux startlog --quiet")
    assert r.returncode == 0, r.stderr
    assert ("flux-broker[0]: ERROR: broker: the previous instance on this statedir did not shut down cleanly (no "
            "finish in admin.eventlog): data it wrote last may be lost; see flux startlog") in r.stderr, r.stderr
    lines = r.stdout.splitlines()
    assert re.fullmatch(rf" *\S+  {WHEN} - crashed", lines[0]), r.stdout
    assert re.fullmatch(rf" *\S+  {WHEN} - running \(\S+\)", lines[1]), r.stdout
    assert lines[2:] == ["check=1"], r.stdout  # --quiet: no listing
    # a clean run after it: the crash is history, --check passes
    r = _start(tmp_path, "true")
    r = _start(tmp_path, "flux startlog --check; echo check=$?")
    shapes = [re.sub(r"\(\S+\)", "(D)", re.sub(WHEN, "T", ln)) for ln in r.stdout.splitlines()]
    assert shapes == ["T - crashed", "T - T (D)", "T - T (D)", "T - running (D)", "check=0"], r.stdout
    assert "did not shut down cleanly" not in r.stderr


def test_entries_not_ours_are_tolerated(tmp_path):
    r = _start(tmp_path, "flux kvs eventlog append admin.eventlog something '{\"x\":1}'; "
                         "flux kvs put admin.other=1; flux startlog")
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(rf"{WHEN} - running \(\S+\)\n", r.stdout), r.stdout
    r = _start(tmp_path, "flux startlog --check; echo check=$?")
    assert r.stdout.endswith("check=0\n") and "Traceback" not in r.stderr, (r.stdout, r.stderr)


@pytest.mark.parametrize("damage, message", [
    ("flux kvs put admin.eventlog.x=1", "admin.eventlog is a directory, not an eventlog (flux kvs unlink -R "
                                        "admin.eventlog repairs it)"),
    ("flux kvs put -j admin.eventlog=5", "admin.eventlog holds int JSON, not an eventlog (flux kvs unlink "
                                         "admin.eventlog repairs it)"),
])
def test_a_damaged_start_log_does_not_stop_the_instance(tmp_path, damage, message):
    r = _start(tmp_path, damage)
    assert r.returncode == 0, r.stderr
    assert "cannot append finish to admin.eventlog" in r.stderr, r.stderr
    r = _start(tmp_path, "flux run true && flux startlog")  # restarts, runs jobs; the listing says what is wrong
    assert r.returncode == 1 and f"\nflux-startlog: {message}\n" in r.stderr, r.stderr
    assert "cannot append start to admin.eventlog" in r.stderr and "Traceback" not in r.stderr
    r = _start(tmp_path, "flux kvs unlink -R admin.eventlog")
    r = _start(tmp_path, "flux startlog")
    assert r.returncode == 0 and re.fullmatch(rf"{WHEN} - running \(\S+\)\n", r.stdout), (r.stdout, r.stderr)
