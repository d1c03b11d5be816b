"""An instance of brokers on 4 hosts (network namespaces with their own address,
host name and /tmp), booted from one config file as flux-core's system instance
is: ``[bootstrap] hosts = [{host = "node[0-3]"}]``, ``default_bind`` on the
interface, ``default_connect`` by host name, one ``curve_cert``. Then MPICH across
the 4 hosts, a host that never comes up, and a host with another certificate."""

import os
import subprocess
import time

import pytest

from flux_launch.testing import BIN

pytestmark = [pytest.mark.e2e, pytest.mark.multihost]
FLUX = os.path.join(BIN, "flux")


def _config(hosts, name, cert=None, port=8050):
    """A config directory in the hosts' shared directory; returns its path."""
    d = os.path.join(hosts.shared, name)
    os.makedirs(d, exist_ok=True)
    if cert is None:
        cert = os.path.join(d, "curve.cert")
        subprocess.run([FLUX, "keygen", cert], check=True, capture_output=True)
    with open(os.path.join(d, "bootstrap.toml"), "w") as f:
        f.write(f'[bootstrap]\ncurve_cert = "{cert}"\ndefault_port = {port}\n'
                f'default_bind = "tcp://eth0:%p"\ndefault_connect = "tcp://%h:%p"\n'
                f'hosts = [ {{ host = "node[0-{hosts.n - 1}]" }} ]\n')
    return d


def _start(hosts, i, conf, *args):
    return hosts.popen(i, [FLUX, "start", "-c", conf, *args, "sleep", "inf"], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, 9)
            except ProcessLookupError:
                pass
        p.communicate()


def test_config_booted_instance_on_4_hosts_runs_mpich(hosts, mpi_hello):
    conf = _config(hosts, "good")
    procs = [_start(hosts, i, conf) for i in (1, 2, 3)]
    try:
        r = hosts.run(0, [FLUX, "start", "-c", conf, "sh", "-c",
                           "flux overlay status; flux getattr tbon.endpoint; flux run -N4 hostname | sort; "
                           f"flux run -N4 -n8 {mpi_hello} | sort"], timeout=90)
    finally:
        _stop(procs)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:4] == ["0 node0: full", "├─ 1 node1: full", "│  └─ 3 node3: full", "└─ 2 node2: full"], r.stdout
    assert lines[4] == f"tcp://{hosts.addrs[0]}:8050", lines[4]
    assert lines[5:9] == ["node0", "node1", "node2", "node3"]
    hello_lines = lines[9:]
    assert len(hello_lines) == 8 and all(line.endswith("sum 28") for line in hello_lines), r.stdout
    assert {line.split(" on ")[1].split(",")[0] for line in hello_lines} == set(hosts.names), r.stdout


def test_host_that_never_comes_up_is_named(hosts):
    conf = _config(hosts, "late", port=8051)
    procs = [_start(hosts, i, conf) for i in (1, 2)]
    try:
        r = hosts.run(0, [FLUX, "start", "-c", conf, "-Sbroker.quorum-timeout=1", "sh", "-c",
                           "flux uptime; flux run -N3 hostname | sort"], timeout=60)
    finally:
        _stop(procs)
    assert r.returncode == 0, r.stderr
    assert "quorum not reached after 1s: rank 3 (node3) never came up; going on without them" in r.stderr
    assert "1 offline" in r.stdout and r.stdout.splitlines()[1:] == ["node0", "node1", "node2"], r.stdout


def test_host_with_another_certificate_is_refused(hosts):
    conf = _config(hosts, "cert", port=8052)
    other = _config(hosts, "othercert", port=8052)  # same hosts and ports, a new certificate
    procs = [_start(hosts, 1, conf), _start(hosts, 2, other, "-Stbon.timeout=5"), _start(hosts, 3, conf)]
    try:
        r = hosts.run(0, [FLUX, "start", "-c", conf, "-Sbroker.quorum-timeout=2", "sh", "-c",
                           "flux overlay status; flux run -N3 hostname | sort"], timeout=60)
        bad_out, bad_err = procs[1].communicate(timeout=20)
    finally:
        _stop(procs)
    assert r.returncode == 0, r.stderr
    assert "overlay: refused a connection on tcp://" in r.stderr and "CURVE handshake" in r.stderr, r.stderr
    assert r.stdout.splitlines() == ["0 node0: partial", "├─ 1 node1: full", "│  └─ 3 node3: full",
                                     "└─ 2: offline", "node0", "node1", "node3"], r.stdout
    assert "the parent broker refused this broker's CURVE key" in bad_err, bad_err


def _wait_overlay(hosts, uri, want, timeout=30):
    """`flux overlay status` on host 0 until its output contains ``want``; returns that output."""
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = hosts.run(0, ["env", f"FLUX_URI={uri}", FLUX, "overlay", "status"], timeout=30).stdout
        if want in out:
            return out
        time.sleep(0.2)
    pytest.fail(f"overlay status never showed {want!r} in {timeout}s: {out}")


def test_killed_host_rejoins_when_started_again(hosts):
    """A follower broker killed with SIGKILL is marked lost, its node is not
    scheduled, and the same host started again rejoins as the same rank: its
    resources run jobs again."""
    conf = _config(hosts, "rejoin", port=8053)
    procs = [_start(hosts, i, conf, "-Stbon.timeout=3") for i in (1, 2, 3)]
    lead = hosts.popen(0, [FLUX, "start", "-c", conf, "-Stbon.timeout=3", "sh", "-c", 'echo "$FLUX_URI"; sleep inf'],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(lead)
    try:
        uri = lead.stdout.readline().strip()
        assert uri.startswith("local://"), (uri, lead.stderr.read() if lead.poll() is not None else "")

        def flux(*args, timeout=60):
            return hosts.run(0, ["env", f"FLUX_URI={uri}", FLUX, *args], timeout=timeout)

        _wait_overlay(hosts, uri, "│  └─ 3 node3: full")
        os.killpg(procs[2].pid, 9)
        procs[2].communicate()
        out = _wait_overlay(hosts, uri, "3: lost")
        assert out.splitlines()[0] == "0 node0: partial", out
        r = flux("run", "-N3", "hostname")
        assert r.returncode == 0 and sorted(r.stdout.split()) == ["node0", "node1", "node2"], r
        job = flux("submit", "-N4", "hostname").stdout.strip()  # 3 nodes are up: it waits for the 4th
        time.sleep(1)
        assert flux("jobs", "-no", "{state}", job).stdout.strip() == "SCHED"
        procs[2] = _start(hosts, 3, conf, "-Stbon.timeout=3")
        out = _wait_overlay(hosts, uri, "│  └─ 3 node3: full")
        assert out.splitlines()[0] == "0 node0: full", out
        r = flux("job", "attach", job)
        assert r.returncode == 0 and sorted(r.stdout.split()) == hosts.names, r
        r = flux("run", "-N4", "hostname")
        assert r.returncode == 0 and sorted(r.stdout.split()) == hosts.names, r
    finally:
        _stop(procs)
