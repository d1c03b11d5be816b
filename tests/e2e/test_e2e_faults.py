"""Bad input: usage errors, no instance, malformed messages on the local socket,
clients that disconnect mid-request, and ping."""

import json
import os
import random
import socket
import struct

import pytest

from flux_launch.client.handle import STREAMING, Flux
from flux_launch.testing import flux, wait_gone

pytestmark = pytest.mark.e2e


def _frame(obj_or_bytes):
    body = obj_or_bytes if isinstance(obj_or_bytes, bytes) else json.dumps(obj_or_bytes).encode()
    return struct.pack(">I", len(body)) + body


class _Reader:
    """Reads length-prefixed frames from a raw socket, keeping what follows a frame."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def frame(self, timeout=10.0):
        """The next frame as a dict; None if the peer closed the connection."""
        self.sock.settimeout(timeout)
        while len(self.buf) < 4 or len(self.buf) < 4 + struct.unpack(">I", self.buf[:4])[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        (n,) = struct.unpack(">I", self.buf[:4])
        body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return json.loads(body)


def _read_frame(sock, timeout=10.0):
    """One frame from a socket used for a single answer."""
    return _Reader(sock).frame(timeout)


def _raw(inst):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(inst.uri[len("local://"):])
    return s


def _still_serves(inst):
    assert inst.flux("getattr", "size").stdout.strip() == str(inst.size)


GOOD = {"type": "req", "topic": "attr.get", "nodeid": -1, "matchtag": 77, "payload": {"name": "rank"}}


# ---- command line -------------------------------------------------------------------

@pytest.mark.parametrize("args", [("bogus",), ("kvs", "--bogus", "get", "x"), ("start", "--bogus"),
                                  ("kvs",), ("exec",), ("--bogus",), ("start", "--test-size=0", "true")])
def test_usage_errors_exit_2(args):
    r = flux(*args, env={"FLUX_URI": "local:///nonexistent/socket"})
    assert r.returncode == 2, r
    assert r.stderr.strip() and "Traceback" not in r.stderr


def test_unknown_command_message():
    r = flux("bogus")
    assert r.returncode == 2
    assert "'bogus' is not a flux command" in r.stderr


@pytest.mark.parametrize("args", [("getattr", "size"), ("kvs", "get", "a"), ("exec", "true"), ("uptime",),
                                  ("ping", "-c", "1", "0"), ("lsattr",), ("overlay", "status")])
def test_no_flux_uri(args):
    r = flux(*args)  # the environment is cleaned of FLUX_*
    assert r.returncode == 1, r
    assert "run flux start" in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr


def test_flux_uri_to_missing_socket(tmp_path):
    uri = f"local://{tmp_path}/no-such-socket"
    r = flux("getattr", "size", env={"FLUX_URI": uri})
    assert r.returncode == 1
    assert f"no instance at {uri}" in r.stderr
    assert "Traceback" not in r.stderr


def test_flux_uri_unsupported_scheme():
    r = flux("getattr", "size", env={"FLUX_URI": "ssh://host/path"})
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "URI" in r.stderr


# ---- malformed messages on the connector ------------------------------------------

@pytest.mark.parametrize("data", [
    _frame(b"{not json"),
    _frame(b"[1, 2, 3]"),
    _frame(b"\xff\xfe\x00garbage"),
    _frame({"type": "bogus", "topic": "attr.get"}),
    _frame({"type": "resp", "topic": "attr.get", "route": ["c1"]}),
    _frame({"type": "ev", "topic": "fake.event"}),
], ids=["bad-json", "not-object", "not-utf8", "bad-type", "resp-from-client", "ev-from-client"])
def test_bad_frame_dropped_connection_usable(instance4, data):
    with _raw(instance4) as s:
        s.sendall(data)
        s.sendall(_frame(GOOD))
        resp = _read_frame(s)
    assert resp is not None, "the broker closed the connection after a droppable frame"
    assert resp["matchtag"] == 77 and resp["payload"] == {"value": "0"}, resp
    _still_serves(instance4)


@pytest.mark.parametrize("req", [
    {"type": "req", "topic": 42, "nodeid": -1, "matchtag": 5},
    {"type": "req", "topic": "", "nodeid": -1, "matchtag": 5},
    {"type": "req", "topic": "attr.get", "nodeid": "zero", "matchtag": 5},
    {"type": "req", "topic": ["attr", "get"], "nodeid": 0, "matchtag": 5},
], ids=["topic-int", "topic-empty", "nodeid-str", "topic-list"])
def test_bad_request_fields(instance4, req):
    with _raw(instance4) as s:
        s.sendall(_frame(req))
        s.sendall(_frame(GOOD))
        reader = _Reader(s)
        first = reader.frame()
        assert first is not None
        if first["matchtag"] == 5:  # an error response for the bad request
            assert first.get("errnum") == 71, first  # EPROTO
            first = reader.frame()
        assert first is not None and first["matchtag"] == 77 and first["payload"] == {"value": "0"}, first
    _still_serves(instance4)


@pytest.mark.parametrize("payload", [None, [1, 2], "text", 5])
def test_non_object_payloads(instance4, payload):
    with Flux(instance4.uri) as h:
        for topic in ("attr.get", "kvs.get", "rexec.exec", "broker.ping", "event.pub", "overlay.status"):
            fut = h.rpc(topic, payload)
            try:
                fut.get(timeout=10)
            except OSError as exc:
                assert exc.strerror and exc.errno != 5, f"{topic}: internal error {exc}"  # not EIO
    _still_serves(instance4)


def test_huge_frame_header_closes_connection(instance4):
    with _raw(instance4) as s:
        s.sendall(struct.pack(">I", 1 << 30))
        assert _read_frame(s) is None, "the broker did not close a connection announcing 1 GB"
    assert "exceeds the limit" in instance4.log()
    _still_serves(instance4)


def test_random_garbage(instance4):
    rng = random.Random(1234)
    for _ in range(5):
        with _raw(instance4) as s:
            s.sendall(bytes(rng.getrandbits(8) for _ in range(4096)))
        _still_serves(instance4)


def test_partial_frame_then_disconnect(instance4):
    body = json.dumps(GOOD).encode()
    with _raw(instance4) as s:
        s.sendall(struct.pack(">I", len(body)) + body[:10])
    _still_serves(instance4)


# ---- clients that go away mid-request -----------------------------------------------


def test_disconnect_during_kvs_watch(make_instance):
    inst = make_instance(size=2)
    inst.flux("kvs", "put", "dw.k=1")
    for nodeid in (-1, 1):  # served at rank 0; from rank 1 the request goes upstream
        uri = inst.uri if nodeid == -1 else inst.flux("exec", "-r", "1", "flux", "getattr",
                                                      "local-uri").stdout.strip()
        h = Flux(uri)
        w = h.rpc("kvs.watch", {"key": "dw.k"}, flags=STREAMING)
        assert w.get(timeout=10)["value"] == "1"
        h.close()
    inst.flux("kvs", "put", "dw.k=2")
    assert inst.flux("kvs", "get", "dw.k").stdout.strip() == "2"
    with Flux(inst.uri) as h:
        w = h.rpc("kvs.watch", {"key": "dw.k"}, flags=STREAMING)
        assert w.get(timeout=10)["value"] == "2"
        inst.flux("kvs", "put", "dw.k=3")
        assert w.get(timeout=10)["value"] == "3"
    assert "Traceback" not in inst.log()


@pytest.mark.parametrize("rank", [0, 1])
def test_disconnect_kills_rexec_process(make_instance, rank):
    inst = make_instance(size=2)
    h = Flux(inst.uri)
    fut = h.rpc("rexec.exec", {"cmd": ["sleep", "100"], "env": dict(inst.env), "cwd": "/", "stdin": False},
                nodeid=rank, flags=STREAMING)
    started = fut.get(timeout=10)
    assert started["type"] == "started" and started["rank"] == rank
    pid = started["pid"]
    os.kill(pid, 0)  # it runs
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"100"]
    h.close()
    assert wait_gone(pid), f"sleep (pid {pid}) on rank {rank} outlived the client that started it"
    _still_serves(inst)
    assert inst.flux("exec", "-r", str(rank), "echo", "ok").stdout == "ok\n"


# ---- ping ---------------------------------------------------------------------------

@pytest.mark.parametrize("rank", [0, 1, 2, 3])
def test_ping_each_rank(instance4, rank):
    out = instance4.flux("ping", "-c", "2", "-i", "0.01", str(rank)).stdout
    lines = out.splitlines()
    assert len(lines) == 2, out
    for seq, line in enumerate(lines):
        assert line.startswith(f"{rank}!broker.ping "), line
        assert f"seq={seq}" in line


def test_ping_nonexistent_rank(instance4):
    r = instance4.flux("ping", "-c", "1", "99", check=False)
    assert r.returncode == 1
    assert "99" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_ping_unknown_service(instance4):
    r = instance4.flux("ping", "-c", "1", "nosuchservice", check=False)
    assert r.returncode == 1
    assert "nosuchservice" in r.stderr and "Traceback" not in r.stderr
