"""``flux hostlist`` end to end (flux-core's flux-hostlist(1)): its sources
(instance, a job, local, avail, stdin, literal hosts), set operations, selection
and output options, and its bad inputs; and the broker attribute ``hostlist`` it
reads, which every instance has."""

import os
import socket
import subprocess

import pytest

from flux_launch.testing import BIN, Instance, clean_env

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    with Instance(size=4, args=["--test-hosts=node[0-3]"]) as i:
        yield i


def hl(inst, *args, **kw):
    return inst.flux("hostlist", *args, **kw).stdout.rstrip("\n")


@pytest.fixture(scope="module")
def job(inst):
    """A running job on two nodes (node0 and node1: the scheduler fills ranks in order)."""
    jobid = inst.flux("submit", "-N2", "sleep", "300").stdout.strip()
    inst.flux("job", "wait-event", "-t", "30", jobid, "start")
    yield jobid
    inst.flux("cancel", jobid, check=False)


def test_hostlist_attribute_on_every_broker(inst):
    out = inst.flux("exec", "-r", "all", "-l", "flux", "getattr", "hostlist").stdout
    assert sorted(out.splitlines()) == [f"{r}: node[0-3]" for r in range(4)]


@pytest.mark.parametrize("args", [(), ("--test-size=1",), ("--test-size=2",)])
def test_hostlist_attribute_without_test_hosts(args):
    """Singleton, size 1 and size 2 on this host: the host name, once per broker."""
    r = subprocess.run([os.path.join(BIN, "flux"), "start", *args, "flux", "getattr", "hostlist"], capture_output=True,
                       text=True, env=clean_env(), timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    n = 2 if "--test-size=2" in args else 1
    assert r.stdout.strip() == ",".join([socket.gethostname()] * n)


def test_instance_local_and_expand(inst):
    assert hl(inst, "instance") == "node[0-3]"
    assert hl(inst, "-l") == "node[0-3]"  # no FLUX_JOB_ID: the instance
    assert hl(inst, "-le") == "node0 node1 node2 node3"
    assert hl(inst, "-led", "\\n", "instance") == "node0\nnode1\nnode2\nnode3"
    assert hl(inst, "-e", "-d", ",", "instance") == "node0,node1,node2,node3"
    assert hl(inst, "-c", "instance") == "4"


def test_job_and_local_in_a_job(inst, job):
    assert hl(inst, job) == "node[0-1]"
    assert hl(inst, "-l", env={"FLUX_JOB_ID": job}) == "node[0-1]"
    assert hl(inst, "-m", "instance", job) == "node[2-3]"
    # inside the job itself (FLUX_JOB_ID set by the shell): its own hosts
    out = inst.flux("exec", "-r", "0", "sh", "-c", f"FLUX_JOB_ID={job} flux hostlist local").stdout.strip()
    assert out == "node[0-1]"


def test_avail_leaves_out_drained(inst, job):
    inst.flux("resource", "drain", "1", "maintenance")
    try:
        assert hl(inst, "avail") == "node[0,2-3]"
        assert hl(inst, "-c", "available") == "3"
        assert hl(inst, "avail", env={"FLUX_JOB_ID": job}) == "node0"  # the job's hosts that are available
    finally:
        inst.flux("resource", "undrain", "1")
    assert hl(inst, "avail") == "node[0-3]"


def test_stdin_and_literals(inst):
    assert hl(inst, input="a1 a2\n") == "a[1-2]"
    assert hl(inst, "-", input="b[1-3]\nb7\n\n") == "b[1-3,7]"
    assert hl(inst, "b3", "b1", "b3") == "b[3,1,3]"  # concatenated, in order
    assert hl(inst, "-u", "b3", "b1", "b3") == "b[1,3]"
    assert hl(inst, "-S", "b3", "b1", "b3") == "b[1,3,3]"


def test_set_operations(inst):
    assert hl(inst, "-i", "node[1-5]", "instance") == "node[1-3]"
    assert hl(inst, "-X", "node[1-5]", "instance") == "node[0,4-5]"
    assert hl(inst, "-m", "instance", "node[1-2]", "node0") == "node3"
    r = inst.flux("hostlist", "-q", "-i", "instance", "zz", check=False)
    assert r.returncode == 1 and r.stdout == "" and r.stderr == ""
    r = inst.flux("hostlist", "-q", "-i", "instance", "node2", check=False)
    assert r.returncode == 0 and r.stdout == ""


def test_selection(inst):
    assert hl(inst, "-x", "node1", "instance") == "node[0,2-3]"
    assert hl(inst, "-x", "0,2", "instance") == "node[1,3]"  # no such hosts: indices
    assert hl(inst, "-x", "zz", "instance") == "node[0-3]"  # neither: not an error
    assert hl(inst, "-n", "0", "instance") == "node0"
    assert hl(inst, "-n", "-1", "instance") == "node3"
    assert hl(inst, "--nth=-1-2", "instance") == "node[2-3]"  # in the result's order
    assert hl(inst, "-L", "2", "instance") == "node[0-1]"
    assert hl(inst, "-L", "-2", "instance") == "node[2-3]"
    assert hl(inst, "-F", "node2,node0", "instance") == "2 0"


@pytest.mark.parametrize("args, message", [
    (("-n", "4", "instance"), "flux-hostlist: -n/--nth=4: index 4 is out of range (the result has 4 hosts)"),
    (("-n", "-5", "instance"), "flux-hostlist: -n/--nth=-5: index -5 is out of range (the result has 4 hosts)"),
    (("-n", "x", "instance"), "flux-hostlist: -n/--nth=x: not an idset (give indices like 0, 0-2 or -1)"),
    (("-F", "zz", "instance"), "flux-hostlist: -F/--find: zz not found in the result"),
    (("foo1",), "flux-hostlist: job foo1 not found (with -f/--fallback, a job id not found is a host name)"),
    (("bad[",), "flux-hostlist: invalid jobid or hostlist 'bad[' (give instance, local, avail, stdin, a job id or "
                "hosts like node[0-3])"),
])
def test_bad_input_is_one_line_exit_1(inst, args, message):
    r = inst.flux("hostlist", *args, check=False)
    assert (r.returncode, r.stderr.strip(), r.stdout) == (1, message, "")


def test_fallback_takes_unknown_job_ids_as_hosts(inst):
    assert hl(inst, "-f", "foo1", "foo2") == "foo[1-2]"


@pytest.mark.parametrize("args", [("-e", "-c"), ("-i", "-m"), ("-L", "x"), ("-x", "a[")])
def test_bad_command_line_exit_2(inst, args):
    r = inst.flux("hostlist", *args, "instance", check=False)
    assert r.returncode == 2 and "usage: flux hostlist" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_stdin_that_never_comes_times_out(inst):
    """An open stdin with nothing on it: one line after FLUX_HOSTLIST_STDIN_TIMEOUT, not a hang."""
    with subprocess.Popen(["sleep", "30"], stdout=subprocess.PIPE) as writer:
        try:
            r = subprocess.run([os.path.join(BIN, "flux"), "hostlist"], stdin=writer.stdout, capture_output=True,
                               text=True, env=dict(inst.env, FLUX_HOSTLIST_STDIN_TIMEOUT="0.2"), timeout=20)
        finally:
            writer.kill()
    assert r.returncode == 1
    assert r.stderr.strip() == ("flux-hostlist: timeout after 0.2s waiting for stdin "
                                "(give SOURCES, or -l for this job's hosts)")


def test_local_in_an_alloc_instance(inst):
    """In an alloc (or batch) instance's script FLUX_JOB_ID names the job the
    instance runs as in its parent: -l is this instance's hosts, not an error."""
    r = inst.flux("alloc", "-N1", "sh", "-c", "flux hostlist -l; flux hostlist -c avail; flux run -n1 flux hostlist -l",
                  timeout=90)
    assert r.stdout.split() == [socket.gethostname(), "1", socket.gethostname()], (r.stdout, r.stderr)


def test_closed_stdin(inst):
    r = subprocess.run([os.path.join(BIN, "flux"), "hostlist"], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, env=inst.env, preexec_fn=lambda: os.close(0), timeout=30)
    assert (r.returncode, r.stderr) == (1, "flux-hostlist: stdin is closed (give SOURCES, or -l for this job's "
                                           "hosts)\n")
