"""Overlay topologies: TCP with CURVE, and a wider fanout."""

import pytest

from flux_launch.client.handle import Flux
from flux_launch.testing import BIN, flux

pytestmark = pytest.mark.e2e

TCP = {"tbon.prefertcp": "1", "broker.quorum-timeout": "3"}


def _tcp_instance(make_instance, size):
    """A TCP instance with every rank online. A start can lose the CURVE admission
    race (see test_tcp_start_race); that is retried here so that the other TCP tests
    test what they are about."""
    for _ in range(5):
        inst = make_instance(size=size, attrs=TCP)
        with Flux(inst.uri) as h:
            info = h.rpc("broker.info", nodeid=0).get(timeout=10)
        if info["online"] == f"0-{size - 1}":
            return inst
        inst.close()
    pytest.fail("5 TCP instances in a row came up with ranks missing")


def test_tcp_overlay(make_instance):
    inst = _tcp_instance(make_instance, 4)
    out = inst.flux("exec", "-r", "all", "-l", "flux", "getattr", "rank").stdout
    assert sorted(out.splitlines()) == ["0: 0", "1: 1", "2: 2", "3: 3"]
    endpoint = inst.flux("getattr", "tbon.endpoint").stdout.strip()
    assert endpoint.startswith("tcp://"), endpoint
    parent = inst.flux("exec", "-r", "1", "flux", "getattr", "tbon.parent-endpoint").stdout.strip()
    assert parent == endpoint
    assert inst.flux("exec", "-r", "3", "flux", "getattr", "tbon.parent-endpoint").stdout.startswith("tcp://")
    inst.flux("exec", "-r", "3", "flux", "kvs", "put", "tcp.k=v")
    assert inst.flux("kvs", "get", "tcp.k").stdout == "v\n"
    assert inst.stop() == 0


def test_ipc_overlay_default(instance4):
    assert instance4.flux("getattr", "tbon.endpoint").stdout.startswith("ipc://")


def test_default_fanout_tree(instance4):
    lines = instance4.flux("overlay", "status").stdout.splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith("0 ") and lines[0].endswith(": full")
    # fanout 2: 1 and 2 under 0, 3 under 1
    assert lines[1].startswith("├─ 1 ") and lines[1].endswith("full")
    assert lines[2].startswith("│  └─ 3 ") and lines[2].endswith("full")
    assert lines[3].startswith("└─ 2 ") and lines[3].endswith("full")


def test_fanout_3(make_instance):
    inst = make_instance(size=4, attrs={"tbon.fanout": "3"})
    assert inst.flux("getattr", "tbon.fanout").stdout.strip() == "3"
    lines = inst.flux("overlay", "status").stdout.splitlines()
    assert len(lines) == 4, lines
    assert lines[0].startswith("0 ") and lines[0].endswith(": full")
    assert [line.split()[0:2] for line in lines[1:]] == [["├─", "1"], ["├─", "2"], ["└─", "3"]], lines
    for line in lines[1:]:
        assert line.endswith(": full"), lines
    for rank in (1, 2, 3):
        parent = inst.flux("exec", "-r", str(rank), "flux", "getattr", "tbon.parent-endpoint").stdout.strip()
        assert parent == inst.flux("getattr", "tbon.endpoint").stdout.strip()
    out = inst.flux("exec", "-r", "all", "-l", "flux", "getattr", "rank").stdout
    assert sorted(out.splitlines()) == ["0: 0", "1: 1", "2: 2", "3: 3"]


def test_tcp_rogue_peers_refused(make_instance):
    """Raw garbage and zeromq peers without the right CURVE keys get nowhere."""
    import json
    import os
    import socket
    import time

    import zmq

    inst = _tcp_instance(make_instance, 3)
    endpoint = inst.flux("getattr", "tbon.endpoint").stdout.strip()
    host, port = endpoint[len("tcp://"):].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(os.urandom(2048))
    ctx = zmq.Context()
    socks = []
    try:
        plain = ctx.socket(zmq.DEALER)  # no CURVE at all, posing as rank 1
        socks.append(plain)
        plain.setsockopt(zmq.IDENTITY, b"1")
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(endpoint)
        plain.send(json.dumps({"type": "ctl", "topic": "goodbye"}).encode(), zmq.NOBLOCK)
        wrong = ctx.socket(zmq.DEALER)  # CURVE with keys the broker never admitted, as rank 2
        socks.append(wrong)
        pub, sec = zmq.curve_keypair()
        wrong.curve_serverkey = zmq.curve_keypair()[0]
        wrong.curve_publickey = pub
        wrong.curve_secretkey = sec
        wrong.setsockopt(zmq.IDENTITY, b"2")
        wrong.setsockopt(zmq.LINGER, 0)
        wrong.connect(endpoint)
        wrong.send(json.dumps({"type": "ctl", "topic": "goodbye"}).encode(), zmq.NOBLOCK)
        assert plain.poll(500) == 0 and wrong.poll(500) == 0, "a rogue peer got an answer"
        time.sleep(0.5)  # give a (wrongly) accepted goodbye time to be processed
    finally:
        for sock in socks:
            sock.close(0)
        ctx.term()
    lines = inst.flux("overlay", "status").stdout.splitlines()
    assert len(lines) == 3 and all(line.endswith(": full") for line in lines), lines
    out = inst.flux("exec", "-r", "all", "-l", "flux", "getattr", "rank").stdout
    assert sorted(out.splitlines()) == ["0: 0", "1: 1", "2: 2"]
    assert "offline" not in inst.flux("uptime").stdout


def test_tcp_start_race():
    for _ in range(30):  # about one start in seven loses; stop at the first loss
        r = flux("start", "--test-size=4", "-Stbon.prefertcp=1", "-Sbroker.quorum-timeout=3",
                 "--test-exit-timeout=3", "flux", "exec", "-r", "all", "-l", "flux", "getattr", "rank",
                 timeout=60)
        assert r.returncode == 0, r.stderr
        assert sorted(r.stdout.splitlines()) == ["0: 0", "1: 1", "2: 2", "3: 3"], r.stderr
        assert "quorum not reached" not in r.stderr and "parent broker was closed" not in r.stderr, r.stderr


def test_nested_instance_on_one_host_links_over_ipc(instance4):
    """The job shells of one host report one node in PMI_process_mapping: the
    brokers of a nested instance see they share a host and use ipc, not TCP."""
    out = instance4.flux("run", "-N2", "-n2", "flux", "start", "sh", "-c",
                         "flux getattr size; flux getattr tbon.endpoint").stdout.split()
    assert out[0] == "2" and out[1].startswith("ipc://"), out
    mapping = instance4.flux("run", "-N2", "-n4", f"{BIN}/python", "-c",
                             "from flux_launch.client.pmi_client import PMIClient as C; "
                             "p = C.from_env(); p.init(); print(p.get('PMI_process_mapping')); p.finalize()",
                             timeout=60)
    assert mapping.stdout.split() == ["(vector,(0,1,4))"] * 4, mapping
