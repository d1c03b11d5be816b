"""Tools for nested instances: flux uri (a job id to its instance's URI, through
nested levels, flux-core's errors), flux proxy (a command inside a job's
instance, its exit code, SIGHUP when the instance goes away), flux --parent/--root,
and flux pstree (the tree of jobs through three levels, combined leaves, details).

Nested jobs wait for a stop file instead of sleeping, so that whatever a test
leaves running ends when its fixture creates the file."""

import os
import pwd
import re
import signal
import socket
import subprocess

import pytest

from flux_launch.testing import BIN, Instance, poll

pytestmark = pytest.mark.e2e
FLUX = os.path.join(BIN, "flux")


def _waiter(stop):
    """A job command that runs until ``stop`` exists (at most ~5 minutes: what a
    failed test leaves behind ends on its own)."""
    return f"n=0; while [ ! -e {stop} ] && [ $n -lt 3000 ]; do sleep 0.1; n=$((n+1)); done"


def _script(path, text):
    path.write_text("#!/bin/sh\n" + text)
    return str(path)


def _one_line_error(r, prefix, text, code=1):
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert lines and lines[-1].startswith(prefix) and text in lines[-1], r.stderr
    assert "Traceback" not in r.stderr


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    """An instance with one nested instance (alloc --bg) running for the module."""
    stop = tmp_path_factory.mktemp("stop") / "STOP"
    with Instance(size=2, env={"SHELL": "/bin/sh"}) as i:
        try:
            i.alloc_id = i.flux("alloc", "--bg", "-N1", "-n1").stdout.strip()
            i.stop_file = stop
            yield i
        finally:
            stop.touch()


# ---- flux uri ------------------------------------------------------------------------

def test_uri_of_running_instance_both_forms(inst):
    jobid = inst.alloc_id
    remote = inst.flux("uri", jobid).stdout.strip()
    local = inst.flux("uri", "--local", jobid).stdout.strip()
    assert re.fullmatch(rf"ssh://{re.escape(socket.gethostname())}/\S+/local-0", remote), remote
    assert local == "local:///" + remote[len("ssh://"):].partition("/")[2], (remote, local)
    assert inst.flux("uri", f"jobid:{jobid}?local").stdout.strip() == local
    assert inst.flux("uri", "--remote", local).stdout.strip() == remote
    # the instance answers at both forms (ssh:// of this host: its local socket)
    for uri in (local, remote):
        r = inst.flux("getattr", "jobid", env={"FLUX_URI": uri})
        assert r.stdout.strip() == jobid
    assert inst.flux("getattr", "local-uri", env={"FLUX_URI": local}).stdout.strip() == local


def test_uri_native_uris_pass_through(inst):
    ssh = "ssh://bongo@foo.com:123/tmp/flux-xyzzy/local-0"
    assert inst.flux("uri", ssh).stdout.strip() == ssh
    assert inst.flux("uri", "--local", ssh).stdout.strip() == "local:///tmp/flux-xyzzy/local-0"
    assert inst.flux("uri", "--remote", "local:///tmp/x/local-0").stdout.strip() == \
        f"ssh://{socket.gethostname()}/tmp/x/local-0"


def test_uri_errors(inst):
    _one_line_error(inst.flux("uri", "bar", check=False), "flux-uri: ", "bar is not a valid jobid")
    _one_line_error(inst.flux("uri", "f1", check=False), "flux-uri: ", "jobid f1 not found")
    _one_line_error(inst.flux("uri", "bar:foo", check=False), "flux-uri: ", "No plugin for URI scheme bar")
    plain = inst.flux("submit", "sh", "-c", _waiter(inst.stop_file)).stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", plain, "start")
    _one_line_error(inst.flux("uri", plain, check=False), "flux-uri: ", f"URI not found for job {plain}")
    inst.flux("cancel", plain)
    inst.flux("job", "wait-event", "-t", "30", plain, "clean")
    _one_line_error(inst.flux("uri", plain, check=False), "flux-uri: ", f"jobid {plain} is not running")
    _one_line_error(inst.flux("uri", "--wait", plain, check=False), "flux-uri: ", f"URI not found for job {plain}")


def test_remote_host_uri_is_refused_in_one_line(inst):
    r = inst.flux("getattr", "size", env={"FLUX_URI": "ssh://no-such-host.invalid/tmp/x/local-0"}, check=False)
    _one_line_error(r, "flux-getattr: ", "not supported yet")


def test_uri_wait_for_a_starting_instance(inst, tmp_path):
    script = _script(tmp_path / "b.sh", f"{_waiter(inst.stop_file)}\n")
    jobid = inst.flux("batch", "-n1", "--output", str(tmp_path / "out"), script).stdout.strip()
    uri = inst.flux("uri", "--wait", "--local", jobid).stdout.strip()
    assert inst.flux("getattr", "jobid", env={"FLUX_URI": uri}).stdout.strip() == jobid
    inst.flux("cancel", jobid)
    inst.flux("job", "wait-event", "-t", "30", jobid, "clean")


# ---- flux proxy ------------------------------------------------------------------------

def test_proxy_runs_command_inside(inst):
    jobid = inst.alloc_id
    assert inst.flux("proxy", jobid, "flux", "getattr", "instance-level").stdout.strip() == "1"
    assert inst.flux("proxy", jobid, "flux getattr jobid").stdout.strip() == jobid
    # no command: $SHELL reads its commands from stdin
    r = inst.flux("proxy", jobid, input="flux getattr instance-level\necho $FLUX_URI\n")
    level, uri = r.stdout.split()
    assert level == "1" and uri == inst.flux("uri", "--local", jobid).stdout.strip()


def test_proxy_exit_code_and_signal(inst):
    assert inst.flux("proxy", inst.alloc_id, "exit 7", check=False).returncode == 7
    assert inst.flux("proxy", inst.alloc_id, "kill -TERM $$", check=False).returncode == 128 + signal.SIGTERM


def test_proxy_bad_target(inst):
    _one_line_error(inst.flux("proxy", check=False), "flux-proxy: ", "URI argument is required", code=2)
    _one_line_error(inst.flux("proxy", "f1", "true", check=False), "flux-proxy: ",
                    "Unable to resolve f1 to a URI: jobid f1 not found")
    _one_line_error(inst.flux("proxy", "local:///nonexistent/local-0", "true", check=False), "flux-proxy: ",
                    "no instance at local:///nonexistent/local-0")


def _proxy_until_lost(inst, tmp_path, body, *opts):
    """Start ``flux proxy [opts] ID BODY`` on a new instance, cancel the instance once
    BODY runs; returns the proxy's CompletedProcess."""
    jobid = inst.flux("alloc", "--bg", "-N1", "-n1").stdout.strip()
    started = tmp_path / "started"
    proc = subprocess.Popen([FLUX, "proxy", *opts, jobid, f"touch {started}; {body}"], env=inst.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert poll(started.exists, 30), "the proxied command did not start"
        inst.flux("cancel", jobid)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    inst.flux("job", "wait-event", "-t", "30", jobid, "clean")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_proxy_lost_connection_sends_sighup(inst, tmp_path):
    r = _proxy_until_lost(inst, tmp_path, f'trap "echo got-hup; exit 3" HUP; {_waiter(inst.stop_file)}')
    assert "flux-proxy: Lost connection to Flux" in r.stderr, r.stderr
    assert r.stdout.strip() == "got-hup", (r.stdout, r.stderr)
    assert r.returncode == 3


def test_proxy_nohup_leaves_the_command_alone(inst, tmp_path):
    stop = tmp_path / "stop"
    started = tmp_path / "started"
    errfile = tmp_path / "err"
    body = f'touch {started}; trap "echo got-hup; exit 3" HUP; {_waiter(stop)}; echo survived'
    jobid = inst.flux("alloc", "--bg", "-N1", "-n1").stdout.strip()
    with open(errfile, "w") as err:
        proc = subprocess.Popen([FLUX, "proxy", "--nohup", jobid, body], env=inst.env, stdout=subprocess.PIPE,
                                stderr=err, text=True, start_new_session=True)
    try:
        assert poll(started.exists, 30), "the proxied command did not start"
        inst.flux("cancel", jobid)
        assert poll(lambda: "Lost connection to Flux" in errfile.read_text(), 30), errfile.read_text()
        stop.touch()  # the command is still there: it ends on its own
        out, _ = proc.communicate(timeout=60)
    finally:
        stop.touch()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    inst.flux("job", "wait-event", "-t", "30", jobid, "clean")
    assert out.strip() == "survived", (out, errfile.read_text())
    assert proc.returncode == 0, errfile.read_text()
    assert "SIGHUP" not in errfile.read_text()


# ---- flux --parent / --root ----------------------------------------------------------------

def test_parent_from_inside_a_batch_job(inst, tmp_path):
    script = _script(tmp_path / "p.sh", "flux --parent getattr instance-level\nflux -r getattr instance-level\n"
                     "flux getattr instance-level\n")
    jobid = inst.flux("batch", "-n1", "--output", str(tmp_path / "out"), script).stdout.strip()
    inst.flux("job", "wait-event", "-t", "60", jobid, "clean")
    assert (tmp_path / "out").read_text().split() == ["0", "0", "1"]


def test_parent_at_the_root_changes_nothing(inst):
    assert inst.flux("--parent", "getattr", "instance-level").stdout.strip() == "0"
    assert inst.flux("-p", "-p", "getattr", "instance-level").stdout.strip() == "0"
    assert inst.flux("proxy", inst.alloc_id, "flux -p -p getattr instance-level").stdout.strip() == "0"


# ---- three levels: uri paths, --parent, pstree ----------------------------------------------

@pytest.fixture(scope="module")
def tree3(tmp_path_factory):
    """An instance running ``outer`` (batch, 2 nodes) with 2 waiters and ``inner``
    (batch, 2 cores) with 2 waiters, once all of it runs; and a completed job ``true``."""
    tmp = tmp_path_factory.mktemp("tree3")
    stop = tmp / "STOP"
    waiter = _waiter(stop)
    inner = _script(tmp / "inner.sh", f"flux submit --job-name=waiter -n1 sh -c '{waiter}' >/dev/null\n"
                    f"flux submit --job-name=waiter -n1 sh -c '{waiter}' >/dev/null\n{waiter}\n")
    outer = _script(tmp / "outer.sh", f"flux submit --job-name=waiter -n1 sh -c '{waiter}' >/dev/null\n"
                    f"flux submit --job-name=waiter -n1 sh -c '{waiter}' >/dev/null\n"
                    f"flux job wait-event -t 30 $(flux job last) start >/dev/null\n"
                    f"flux batch --job-name=inner -n2 --output={tmp}/inner.out {inner}\n{waiter}\n")
    with Instance(size=2) as i:
        try:
            i.flux("run", "--job-name=true", "true")
            i.outer = i.flux("batch", "--job-name=outer", "-N2", "--output", str(tmp / "outer.out"),
                             outer).stdout.strip()
            # running jobs, the last started first: inner, then the waiters
            i.expected = [".", "└── outer", "    ├── inner", "    │   └── 2*[waiter]", "    └── 2*[waiter]"]
            got = poll(lambda: i.flux("pstree", check=False).stdout.splitlines() == i.expected, 60)
            assert got, i.flux("pstree", check=False).stdout + (tmp / "outer.out").read_text()
            i.inner = (tmp / "outer.out").read_text().split()[0]
            yield i
        finally:
            stop.touch()  # everything started ends, even what a failed start left
        i.flux("job", "wait-event", "-t", "60", i.outer, "clean", check=False)


def test_uri_path_through_levels(tree3):
    inner_uri = tree3.flux("uri", "--local", f"{tree3.outer}/{tree3.inner}").stdout.strip()
    env = {"FLUX_URI": inner_uri}
    assert tree3.flux("getattr", "instance-level", env=env).stdout.strip() == "2"
    assert tree3.flux("getattr", "jobid", env=env).stdout.strip() == tree3.inner
    parent = tree3.flux("uri", "--local", "..", env=env).stdout.strip()  # outer's broker on inner's node
    assert tree3.flux("getattr", "jobid", env={"FLUX_URI": parent}).stdout.strip() == tree3.outer
    root = tree3.flux("uri", "/", env=env).stdout.strip()  # the root's broker on that node
    assert os.path.dirname(root) == os.path.dirname(tree3.uri), (root, tree3.uri)
    _one_line_error(tree3.flux("uri", f"{tree3.outer}/f1", check=False), "flux-uri: ", "jobid f1 not found")


def test_parent_and_root_from_level_two(tree3):
    path = f"{tree3.outer}/{tree3.inner}"
    out = tree3.flux("proxy", path, "flux -p getattr instance-level; flux -pp getattr instance-level;"
                     " flux --root getattr instance-level; flux --parent getattr jobid").stdout.split()
    assert out == ["1", "0", "0", tree3.outer]


def test_pstree_default_combines_identical_leaves(tree3):
    assert tree3.flux("pstree").stdout.splitlines() == tree3.expected


def test_pstree_no_combine(tree3):
    assert tree3.flux("pstree", "-X").stdout.splitlines() == [
        ".", "└── outer", "    ├── inner", "    │   ├── waiter", "    │   └── waiter", "    ├── waiter",
        "    └── waiter"]


def test_pstree_all_adds_status_to_leaves(tree3):
    assert tree3.flux("pstree", "-a").stdout.splitlines() == [
        ".", "├── outer", "│   ├── inner", "│   │   └── 2*[waiter:R]", "│   └── 2*[waiter:R]", "└── true:CD"]


def test_pstree_extended_details(tree3):
    lines = tree3.flux("pstree", "-x").stdout.splitlines()
    header = "       JOBID USER     ST NTASKS NNODES  RUNTIME"
    assert lines[0] == header
    trees = [line[len(header) + 1:] for line in lines[1:]]
    assert trees == ["outer", "├── inner", "│   ├── waiter", "│   └── waiter", "├── waiter", "└── waiter"]
    user = pwd.getpwuid(os.getuid()).pw_name[:8]
    for line in lines[1:]:
        m = re.match(rf"^ *(ƒ\S+) {re.escape(user)} +R +(\d+) +(\d+) +(\S+) ", line)
        assert m and len(line.split(" R ")[0]) >= 12, line
    first = lines[1].split()
    assert first[0] == tree3.outer and first[3:5] == ["2", "2"], lines[1]  # outer: 2 tasks, 2 nodes


def test_pstree_stats_and_levels(tree3):
    lines = tree3.flux("pstree", "-d", "stats").stdout.splitlines()
    assert lines[0] == "       JOBID           STATS              RUNTIME"
    assert "PD:0 R:3 CD:0 F:0" in lines[1] and lines[1].endswith(" outer"), lines
    assert "PD:0 R:2 CD:0 F:0" in lines[2] and lines[2].endswith("├── inner"), lines
    assert tree3.flux("pstree", "-L", "0").stdout.splitlines() == [".", "└── outer"]
    assert tree3.flux("pstree", "--ascii", "-L", "1").stdout.splitlines() == [
        ".", "`-- outer", "    |-- inner", "    `-- 2*[waiter]"]


def test_pstree_inside_a_job_is_rooted_at_its_name(tree3):
    assert tree3.flux("proxy", tree3.outer, "flux pstree").stdout.splitlines() == [
        "outer", "├── inner", "│   └── 2*[waiter]", "└── 2*[waiter]"]


def test_pstree_empty_instance(make_instance):
    inst = make_instance(size=1)
    assert inst.flux("pstree").stdout == ".\n"
    assert inst.flux("pstree", "-a").stdout == ".\n"
    assert inst.flux("pstree", "-x").stdout == "       JOBID USER     ST NTASKS NNODES  RUNTIME\n"
    assert inst.flux("pstree", "--skip-root=yes").stdout == ""
    _one_line_error(inst.flux("pstree", "-d", "bogus", check=False), "flux-pstree: ", "Unknown --details format")
    _one_line_error(inst.flux("pstree", "-o", "{bogus}", check=False), "flux-pstree: ", "Unknown format field")
