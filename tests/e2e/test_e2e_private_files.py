"""The instance's files are private whatever the umask or the directories' modes:
the sqlite store (with its -wal and -shm) and the blob files are 0600, and a
``-Srundir`` that exists keeps its mode (one that others can write is refused)."""

import os
import stat

import pytest

from flux_launch.testing import BIN, clean_env

pytestmark = pytest.mark.e2e

FLUX = os.path.join(BIN, "flux")


def _start_with_umask(*args, timeout=60):
    import subprocess

    return subprocess.run(["sh", "-c", 'umask 000; exec "$@"', "sh", FLUX, "start", *args],
                          capture_output=True, text=True, timeout=timeout, env=clean_env(),
                          stdin=subprocess.DEVNULL)


def _modes(lines):
    """``{name: mode}`` from ``stat -c '%a %n'`` lines."""
    out = {}
    for line in lines:
        mode, _, path = line.partition(" ")
        out[os.path.basename(path)] = int(mode, 8)
    return out


def test_store_files_are_0600_with_umask_000_and_a_0777_statedir(tmp_path):
    statedir = tmp_path / "state"
    statedir.mkdir()
    os.chmod(statedir, 0o777)
    listing = tmp_path / "listing"
    # output over 64 KiB per batch goes to blob files; the listing is taken while the
    # instance runs, when sqlite's -wal and -shm exist
    prog = (f"flux kvs put priv.a=1 && flux run -o output.batch-timeout=1 sh -c 'head -c 300000 /dev/zero"
            f" | tr \"\\0\" x' >/dev/null && stat -c '%a %n' {statedir}/* {statedir}/*/* > {listing} 2>/dev/null;"
            f" test -s {listing}")
    r = _start_with_umask("--test-size=2", f"-Sstatedir={statedir}", "sh", "-c", prog)
    assert r.returncode == 0, r.stderr
    modes = _modes(listing.read_text().splitlines())
    assert {"content.sqlite", "content.sqlite-wal", "content.sqlite-shm"} <= set(modes), modes
    open_to_others = {name: oct(mode) for name, mode in modes.items()
                      if mode & 0o077 and not (statedir / name).is_dir()}
    assert not open_to_others, f"files readable or writable by others: {open_to_others}"
    # the statedir's own mode is the user's choice: left as it was
    assert stat.S_IMODE(os.stat(statedir).st_mode) == 0o777
    for path in statedir.rglob("*"):
        if path.is_file():
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, (path, oct(path.stat().st_mode))


@pytest.mark.parametrize("size", [1, 2])
def test_existing_rundir_keeps_its_mode(tmp_path, size):
    rundir = tmp_path / "run"
    rundir.mkdir()
    os.chmod(rundir, 0o755)
    r = _start_with_umask(f"--test-size={size}", f"-Srundir={rundir}", "flux", "getattr", "rundir")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(rundir).st_mode) == 0o755
    assert os.path.isdir(rundir), "flux start removed a rundir it did not create"


@pytest.mark.parametrize("size", [1, 2])
def test_rundir_that_others_can_write_is_refused(tmp_path, size):
    rundir = tmp_path / "run"
    rundir.mkdir()
    os.chmod(rundir, 0o777)
    r = _start_with_umask(f"--test-size={size}", f"-Srundir={rundir}", "true")
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{rundir}" in lines[0] and "writable by others" in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert stat.S_IMODE(os.stat(rundir).st_mode) == 0o777


def test_rundir_that_is_a_file_is_refused(tmp_path):
    rundir = tmp_path / "run"
    rundir.write_text("")
    r = _start_with_umask(f"-Srundir={rundir}", "true")
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a directory" in lines[0], r.stderr


def test_missing_rundir_is_created_private_and_removed(tmp_path):
    rundir = tmp_path / "run"
    r = _start_with_umask("--test-size=2", f"-Srundir={rundir}", "sh", "-c",
                          f"stat -c %a {rundir}")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "700"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a link of another user needs root")
def test_rundir_that_is_another_users_symlink_is_refused(tmp_path):
    """The link's owner could point it elsewhere once the check has passed."""
    target = tmp_path / "mine"
    target.mkdir(mode=0o700)
    link = tmp_path / "run"
    link.symlink_to(target)
    os.lchown(link, 65534, 65534)
    r = _start_with_umask(f"-Srundir={link}", "true")
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "symbolic link of another user" in lines[0], r.stderr
    os.lchown(link, os.getuid(), os.getgid())  # one's own link to one's own directory is fine
    r = _start_with_umask(f"-Srundir={link}", "true")
    assert r.returncode == 0, r.stderr
