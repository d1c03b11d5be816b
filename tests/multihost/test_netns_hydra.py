"""Hosts in network namespaces (4 on this machine) and MPICH's mpiexec.hydra
across them, its ssh launcher replaced by ``ip netns exec``: the hosts are apart
(names, addresses, /tmp), MPI programs span them, and so does a Flux instance
whose brokers Hydra starts, one per host, which must find each other over TCP
on their own and notice a host whose link is cut."""

import os
import re
import shutil
import sys

import pytest

from flux_launch.testing import clean_env, poll
from flux_launch.testing import netns
from flux_launch.testing.netns import HydraInstance

pytestmark = [pytest.mark.multihost, pytest.mark.mpi, pytest.mark.e2e,
              pytest.mark.skipif(not shutil.which("mpiexec.hydra"), reason="MPICH's mpiexec.hydra is not installed")]

# a TCP echo between two hosts: "serve PORT" on one, "ask HOST PORT" on the other
ECHO = """
import socket, sys
if sys.argv[1] == "serve":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(); print("ready", flush=True)
    c, _ = s.accept(); c.sendall(socket.gethostname().encode()); c.close()
else:
    try:
        c = socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=2)
        print(c.recv(100).decode())
    except OSError as e:
        print("unreachable", e)
"""


def _run(hosts, i, argv, timeout=30):
    r = hosts.run(i, argv, timeout=timeout, env=clean_env())
    assert r.returncode == 0, f"{argv} on node{i} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}"
    return r.stdout


def _echo(hosts, server, client, port=7341):
    py = sys.executable
    srv = hosts.popen(server, [py, "-c", ECHO, "serve", str(port)], stdout=-1, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        return _run(hosts, client, [py, "-c", ECHO, "ask", hosts.names[server], str(port)]).strip()
    finally:
        srv.kill()
        srv.wait()
        srv.stdout.close()


def test_hosts_are_apart(hosts):
    for i in range(4):
        out = _run(hosts, i, ["sh", "-c", "hostname; getent hosts node0 node1 node2 node3 | awk '{print $1}';"
                              "echo $TMPDIR; touch /tmp/mark-$(hostname); ls /tmp"]).split()
        assert out[:6] == [f"node{i}", *hosts.addrs, "/tmp"], out
        own = [name for name in out[6:] if name != netns.KEPT]  # the checkout, when it lives in /tmp
        assert own == [f"mark-node{i}"], f"/tmp of node{i} is not its own: {out[6:]}"
    assert not os.path.exists("/tmp/mark-node0"), "a host wrote the real /tmp"
    # each host reaches the others by name, over the bridge
    assert _echo(hosts, 1, 0) == "node1"
    assert _echo(hosts, 0, 3) == "node0"
    hosts.cut(2)
    assert _echo(hosts, 2, 1).startswith("unreachable"), "node2 still reachable with its link cut"
    hosts.restore(2)
    assert _echo(hosts, 2, 1) == "node2"


def test_mpich_hello_across_4_hosts(hosts, mpi_hello):
    out = _run(hosts, 0, hosts.hydra(["-n", "8", mpi_hello]))
    seen = sorted(re.findall(r"hello from rank (\d+) of 8 on (\S+), sum 28", out))
    # one slot per host: the ranks go round-robin
    assert seen == sorted((str(r), f"node{r % 4}") for r in range(8)), out


def test_mpi4py_across_2_hosts(hosts):
    # rank 0 prints what every rank saw (Hydra may interleave the lines of several ranks)
    prog = ("from mpi4py import MPI; c = MPI.COMM_WORLD; "
            "seen = c.gather((c.rank, c.size, MPI.Get_processor_name(), c.allreduce(c.rank))); "
            "c.rank == 0 and print(seen)")
    out = _run(hosts, 0, hosts.hydra(["-n", "4", sys.executable, "-c", prog], hosts=[1, 2]), timeout=60)
    assert out.strip() == str([(0, 4, "node1", 6), (1, 4, "node2", 6), (2, 4, "node1", 6), (3, 4, "node2", 6)]), out


def test_flux_across_4_hosts(hosts, mpi_hello):
    with HydraInstance(hosts) as inst:
        out = inst.flux("run", "-N4", "hostname").stdout
        assert sorted(out.split()) == ["node0", "node1", "node2", "node3"], out
        assert inst.flux("getattr", "tbon.endpoint").stdout.startswith(f"tcp://{hosts.addrs[0]}:"), inst.log()
        # the host names the PMI exchange gathered, in rank order (Hydra puts rank i on node i)
        assert inst.flux("getattr", "hostlist").stdout.strip() == "node[0-3]"
        assert inst.flux("hostlist", "-e", "avail").stdout.split() == hosts.names
        out = inst.flux("run", "-n8", mpi_hello).stdout
        seen = sorted(re.findall(r"hello from rank (\d+) of 8 on (\S+), sum 28", out))
        # 8 tasks on 4 nodes of 1 core at least: blocks of consecutive ranks per node, all 4 nodes used
        assert [r for r, _ in seen] == sorted(str(r) for r in range(8)), out
        assert {h for _, h in seen} == set(hosts.names), out


def test_cut_link_marks_rank_lost_and_fails_its_job(hosts):
    # rank r is on node r (Hydra's round-robin); rank 3 is a child of rank 1 (fanout 2)
    with HydraInstance(hosts, {"tbon.timeout": 2, "tbon.keepalive": 0.5}) as inst:
        jobid = inst.flux("submit", "-N4", "sleep", "300").stdout.strip()
        inst.flux("job", "wait-event", "-t", "30", jobid, "start", timeout=40)
        hosts.cut(3)

        def lost():
            r = inst.flux("uptime", check=False, timeout=20)
            return r.stdout if "lost: 3" in r.stdout else None

        up = poll(lost, 30)
        assert up, f"rank 3 never reported lost:\n{inst.flux('uptime', check=False).stdout}\n{inst.log()}"
        status = inst.flux("overlay", "status", timeout=30).stdout
        assert any(line.strip().endswith("3: lost") for line in status.splitlines()), status
        inst.flux("job", "wait-event", "-t", "30", jobid, "clean", timeout=40)
        log = inst.flux("job", "eventlog", jobid).stdout
        assert "exception" in log and "lost contact with rank 3" in log, log
        assert inst.flux("jobs", "-n", "-o", "{result}", jobid).stdout.strip() == "FAILED", log
        # the rest still serves
        out = inst.flux("run", "-N3", "hostname", timeout=40).stdout
        assert sorted(out.split()) == ["node0", "node1", "node2"], out
        assert "rank 3 lost" in inst.log(), inst.log()
        # mpiexec waits for node3's proxy (rank 3 gave up on its parent): let it report, then shut down
        hosts.restore(3)
