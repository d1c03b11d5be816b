"""--progress [--jps] of flux submit (--wait, --watch, or the submission alone),
flux bulksubmit, flux run and flux job wait --all: plain lines on stderr when
stdout is not a terminal (stdout keeps only ids and output), the bar on a pty."""

import os
import re
import subprocess

import pytest

from flux_launch.testing import BIN, Instance

pytestmark = pytest.mark.e2e

STATES = re.compile(r"PD:(\d+) R:(\d+) CD:(\d+) F:(\d+) (\d+)/(\d+) (\d+:\d\d:\d\d|\d+\.\d job/s)")


@pytest.fixture(scope="module")
def inst():
    with Instance(size=2) as inst:
        yield inst


def _lines(stderr, pattern=STATES):
    """The progress lines of ``stderr`` as tuples of ints; every line must be one."""
    lines = stderr.splitlines()
    matches = [pattern.fullmatch(line) for line in lines]
    assert lines and all(matches), stderr
    counts = [tuple(int(g) for g in m.groups()[:-1]) for m in matches]
    done = [c[-2] for c in counts]
    assert done == sorted(done), stderr  # never goes back
    return counts, [m.group(m.lastindex) for m in matches]


def test_submit_wait_progress_plain_lines(inst):
    r = inst.flux("submit", "--progress", "--wait", "--cc=1-3", "sh", "-c", "exit $((FLUX_JOB_CC==2))",
                  check=False)
    assert r.returncode == 1, r.stderr
    assert len(r.stdout.split()) == 3 and r.stdout.startswith("\u0192"), r.stdout  # only the ids
    counts, times = _lines(r.stderr)
    assert counts[0] == (3, 0, 0, 0, 0, 3), r.stderr  # nothing seen yet: all pending
    assert counts[-1] == (0, 0, 2, 1, 3, 3), r.stderr
    assert ":" in times[-1]


def test_submit_progress_without_wait_shows_submission(inst):
    r = inst.flux("submit", "--progress", "--jps", "--quiet", "--cc=1-4", "true")
    assert r.stdout == ""
    counts, rates = _lines(r.stderr, re.compile(r"submitted:(\d+) (\d+)/(\d+) (\d+\.\d job/s)"))
    assert counts[0] == (0, 0, 4) and counts[-1] == (4, 4, 4), r.stderr
    assert rates[-1].endswith(" job/s")


def test_submit_watch_progress(inst):
    r = inst.flux("submit", "--watch", "--progress", "--cc=1-2", "sh", "-c", "echo out-$FLUX_JOB_CC")
    out = r.stdout.splitlines()
    assert sorted(out[2:]) == ["out-1", "out-2"], r.stdout
    counts, _ = _lines(r.stderr)
    assert counts[-1] == (0, 0, 2, 0, 2, 2), r.stderr


def test_bulksubmit_progress_jps(inst):
    r = inst.flux("bulksubmit", "--wait", "--progress", "--jps", "sh", "-c", "exit {}", ":::", "0", "3", check=False)
    assert r.returncode == 3, r.stderr
    counts, rates = _lines(r.stderr)
    assert counts[-1] == (0, 0, 1, 1, 2, 2), r.stderr
    assert rates[-1].endswith(" job/s")
    dry = inst.flux("bulksubmit", "--dry-run", "--progress", "--jps", "echo", "{}", ":::", "x")
    assert dry.stdout == "bulksubmit: submit echo x\n"  # bulksubmit's own options are not shown


def test_run_progress_plain_lines(inst):
    r = inst.flux("run", "--progress", "echo", "hi")
    assert r.stdout == "hi\n"
    counts, _ = _lines(r.stderr)
    assert counts[0] == (1, 0, 0, 0, 0, 1) and counts[-1] == (0, 0, 1, 0, 1, 1), r.stderr
    bad = inst.flux("run", "--progress", "sh", "-c", "exit 4", check=False)
    assert bad.returncode == 4
    assert _lines(bad.stderr)[0][-1] == (0, 0, 0, 1, 1, 1), bad.stderr


def test_watch_progress_plain_lines(inst):
    jobid = inst.flux("submit", "echo", "p").stdout.strip()
    r = inst.flux("watch", "--progress", jobid)
    assert r.stdout == "p\n"
    counts, _ = _lines(r.stderr)
    assert counts[-1] == (0, 0, 1, 0, 1, 1), r.stderr


def test_job_wait_all_progress(inst):
    inst.flux("submit", "--flags=waitable", "--quiet", "--cc=1-3", "sh", "-c", "exit $((FLUX_JOB_CC==3))")
    r = inst.flux("job", "wait", "--all", "--progress", check=False)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    failures = [line for line in lines if line.endswith("exited with exit code 1")]
    assert len(failures) == 1, r.stderr
    counts, _ = _lines("\n".join(line for line in lines if line not in failures))
    assert counts[-1] == (0, 0, 2, 1, 3, 3), r.stderr
    # the jobs waited for are not counted again; a new one is the only one
    inst.flux("submit", "--flags=waitable", "--quiet", "true")
    again = inst.flux("job", "wait", "--all", "--progress")
    counts, _ = _lines(again.stderr)
    assert counts[-1] == (0, 0, 1, 0, 1, 1), again.stderr
    none = inst.flux("job", "wait", "--all", "--progress")
    assert (none.stdout, none.stderr) == ("", "")
    bad = inst.flux("job", "wait", "--progress", check=False)
    assert bad.returncode == 2 and "--progress needs --all" in bad.stderr


def _on_a_pty(inst, *args):
    """Run ``flux ARGS`` with stdout on a pty; (exit code, what the terminal got, stderr)."""
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([os.path.join(BIN, "flux"), *args], env=inst.env, stdout=slave,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    try:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the command exited and closed the tty
                break
            if not chunk:
                break
            out += chunk
        rc = proc.wait(timeout=60)
        err = proc.stderr.read().decode()
    finally:
        os.close(master)
        proc.kill()
        proc.wait()
    return rc, out.decode(errors="replace"), err


def test_run_progress_bar_on_a_tty(inst):
    rc, text, err = _on_a_pty(inst, "run", "--progress", "echo", "on-a-tty")
    assert rc == 0, err
    assert err == ""  # the bar, not plain lines
    assert "on-a-tty" in text
    assert "\033[r" in text  # the scrolling region is given back
    assert "PD:0   R:0   CD:1   F:0   \u2502" in text and "100.0%" in text, text


def test_submit_wait_progress_bar_on_a_tty(inst):
    rc, text, err = _on_a_pty(inst, "submit", "--wait", "--progress", "--jps", "--cc=1-2", "true")
    assert rc == 0, err
    assert "PD:0   R:0   CD:2   F:0   \u2502" in text and "100.0%" in text and "job/s" in text, text
