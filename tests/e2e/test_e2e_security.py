"""Another user is refused by the instance, with one clear line, and the owner is
still served afterwards."""

import os
import shutil
import subprocess

import pytest

from flux_launch.testing import BIN

GUEST = 65534
SETPRIV = shutil.which("setpriv")


def _guest_can_run_flux():
    """uid 65534 can read the interpreter, the venv and the package source."""
    import flux_launch

    paths = [os.path.realpath(os.path.join(BIN, "python")), os.path.join(BIN, "flux"),
             os.path.dirname(flux_launch.__file__)]
    for path in paths:
        p = path
        while p and p != "/":
            st = os.stat(p)
            if not st.st_mode & 0o005:  # others need r/x along the way
                return False
            p = os.path.dirname(p)
    return True


pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a command as another uid"),
              pytest.mark.skipif(SETPRIV is None, reason="setpriv is not installed"),
              pytest.mark.skipif(not _guest_can_run_flux(),
                                 reason="uid 65534 cannot read the venv or the package to run flux")]


def _as_guest(inst, *args):
    cmd = [SETPRIV, f"--reuid={GUEST}", f"--regid={GUEST}", "--clear-groups", os.path.join(BIN, "flux"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=dict(inst.env, HOME="/"),
                          stdin=subprocess.DEVNULL, cwd="/")


def _check_owner_served(inst):
    assert inst.flux("getattr", "size").stdout.strip() == str(inst.size)
    inst.flux("kvs", "put", "sec.after=ok")
    assert inst.flux("kvs", "get", "sec.after").stdout.strip() == "ok"


def _assert_refused(r):
    assert r.returncode == 1, f"rc={r.returncode} stdout={r.stdout!r} stderr={r.stderr!r}"
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "permission denied" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_guest_refused_by_rundir_permissions(make_instance):
    inst = make_instance(size=2)
    rundir = inst.flux("getattr", "rundir").stdout.strip()
    assert os.stat(rundir).st_mode & 0o777 == 0o700
    r = _as_guest(inst, "getattr", "size")
    _assert_refused(r)
    assert r.stderr.startswith("flux-getattr: ")
    _check_owner_served(inst)


def test_guest_refused_by_broker_peercred(make_instance):
    inst = make_instance(size=2)
    rundir = inst.flux("getattr", "rundir").stdout.strip()
    sock = inst.uri[len("local://"):]
    os.chmod(rundir, 0o755)
    os.chmod(sock, 0o777)
    for args in (("getattr", "size"), ("kvs", "put", "sec.guest=1"), ("exec", "-r", "0", "true")):
        r = _as_guest(inst, *args)
        assert r.returncode == 1 and r.stdout == "", r
        _assert_refused(r)
        assert "does not accept guests" in r.stderr, r.stderr
    assert "refused connection from uid 65534" in inst.log()
    r = inst.flux("kvs", "get", "sec.guest", check=False)
    assert r.returncode == 1, "the guest's put went through"
    _check_owner_served(inst)


def test_guest_refusal_is_reported_every_time(make_instance):
    inst = make_instance(size=1)
    rundir = inst.flux("getattr", "rundir").stdout.strip()
    os.chmod(rundir, 0o755)
    os.chmod(inst.uri[len("local://"):], 0o777)
    for _ in range(40):  # the refusal may arrive before or after the client's first send
        r = _as_guest(inst, "getattr", "size")
        assert r.returncode == 1 and "does not accept guests" in r.stderr, \
            f"rc={r.returncode} stderr={r.stderr!r}"
