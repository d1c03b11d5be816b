"""A nested instance's broker (this package's `flux broker`) is forked from its
job shell instead of executed: it must be what an exec would have made it, and
a `flux` on the job's PATH that is not this package's is executed as usual."""

import os
import sys

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst2():
    with Instance(size=2) as inst:
        yield inst


def _batch(inst, tmp_path, text, *opts):
    script = tmp_path / "s.sh"
    script.write_text(text)
    out = tmp_path / "out"
    jobid = inst.flux("batch", "-N1", "--output", str(out), *opts, str(script)).stdout.strip()
    inst.flux("job", "wait-event", "-t", "60", jobid, "clean")
    return jobid, out.read_text()


def test_forked_broker_is_what_an_exec_makes(inst2, tmp_path):
    """Its own session (the shell's setsid), the task's cwd and environment, and
    the broker's own signal handlers (SIGTERM caught), not the shell's."""
    text = ("#!/bin/sh\necho sid=$(ps -o sid= -p $PPID | tr -d ' ')\necho ppid=$PPID\necho cwd=$(pwd)\n"
            "echo job=$FLUX_JOB_ID\necho sigterm=$(grep SigCgt /proc/$PPID/status | cut -f2)\n")
    jobid, out = _batch(inst2, tmp_path, text, "--cwd", str(tmp_path))
    lines = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert lines["sid"] == lines["ppid"], out  # the broker leads its session
    assert lines["cwd"] == str(tmp_path), out
    assert lines["job"] == jobid, out
    assert int(lines["sigterm"], 16) & (1 << 14), out  # SIGTERM (15) is caught: the broker's handler


def test_a_flux_that_is_not_ours_is_executed(inst2, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    marker = tmp_path / "marker"
    ours = os.path.join(os.path.dirname(sys.executable), "flux")
    fake = bindir / "flux"
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = broker ] && echo executed >> {marker}\nexec {ours} \"$@\"\n")
    fake.chmod(0o755)
    _jobid, out = _batch(inst2, tmp_path, "#!/bin/sh\necho level=$(flux getattr instance-level)\n",
                         f"--env=PATH={bindir}:{os.environ['PATH']}")
    assert "level=1" in out, out
    assert marker.read_text() == "executed\n"


def test_fork_can_be_turned_off(inst2, tmp_path):
    _jobid, out = _batch(inst2, tmp_path, "#!/bin/sh\ntr '\\0' ' ' < /proc/$PPID/cmdline; echo\n",
                         "--env=FLUX_LAUNCH_FORK_BROKER=0")
    assert out.split()[1:3] == ["broker", f"{tmp_path}/s.sh"] or "flux broker" in out, out
