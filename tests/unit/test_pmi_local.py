"""LocalPMIServer with PMIClient threads over real socketpairs."""

import logging
import os
import select
import socket
import subprocess
import sys
import threading

import pytest

from flux_launch.client.pmi_client import PMIClient, PMIError
from flux_launch.client.pmi_local import LocalPMIServer

TIMEOUT = 10.0


def run_threads(targets):
    """Run callables in threads; return {index: result or exception}."""
    results = {}

    def wrap(i, fn):
        try:
            results[i] = fn()
        except BaseException as e:  # noqa: BLE001 - reported by the test
            results[i] = e

    threads = [threading.Thread(target=wrap, args=(i, fn), daemon=True)
               for i, fn in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "client thread hung"
    return results


def client(server, rank):
    return PMIClient(os.dup(server.client_fd(rank)), rank, server.size,
                     timeout=TIMEOUT)


def exchange(server, rank):
    with client(server, rank) as pmi:
        pmi.init()
        assert pmi.kvsname() == server.kvsname
        assert pmi.universe_size() == server.size
        assert pmi.appnum() == 0
        pmi.put(f"rank-{rank}", f"value of {rank} with  spaces")
        pmi.barrier()
        got = {r: pmi.get(f"rank-{r}") for r in range(server.size) if r != rank}
        mapping = pmi.get("PMI_process_mapping")
        with pytest.raises(KeyError):
            pmi.get("no-such-key")
        pmi.finalize()
        return got, mapping


@pytest.fixture
def server4():
    srv = LocalPMIServer(4, kvsname="test-kvs")
    yield srv
    srv.stop()


def test_four_clients_exchange(server4):
    server4.start()
    results = run_threads([lambda r=r: exchange(server4, r) for r in range(4)])
    server4.close_client_fds()
    for rank in range(4):
        res = results[rank]
        assert not isinstance(res, BaseException), f"rank {rank}: {res!r}"
        got, mapping = res
        assert got == {r: f"value of {r} with  spaces" for r in range(4) if r != rank}
        assert mapping == "(vector,(0,1,4))"
    assert server4.wait(TIMEOUT)
    assert server4.finalized_ranks == {0, 1, 2, 3}
    assert server4.lost_ranks == frozenset()


def test_two_barriers(server4):
    server4.start()

    def twice(rank):
        with client(server4, rank) as pmi:
            pmi.init()
            pmi.put(f"a{rank}", "1")
            pmi.barrier()
            pmi.put(f"b{rank}", "2")
            pmi.barrier()
            values = [pmi.get(f"b{(rank + 1) % 4}"), pmi.get(f"a{(rank + 2) % 4}")]
            pmi.finalize()
            return values

    results = run_threads([lambda r=r: twice(r) for r in range(4)])
    assert all(results[r] == ["2", "1"] for r in range(4)), results


def test_garbage_client_dropped_others_complete(server4, caplog):
    caplog.set_level(logging.ERROR, logger="flux_launch.pmi")
    server4.start()
    entered = threading.Barrier(4, timeout=TIMEOUT)

    def good(rank):
        with client(server4, rank) as pmi:
            pmi.init()
            pmi.put(f"rank-{rank}", str(rank))
            entered.wait()
            # rank 3 can never enter: the barrier must fail, not hang
            with pytest.raises(PMIError):
                pmi.barrier()
            value = pmi.get(f"rank-{rank}")
            pmi.finalize()
            return value

    def garbage():
        fd = os.dup(server4.client_fd(3))
        try:
            entered.wait()
            os.write(fd, b"\x00\xff\xfe\x80 binary garbage\n")
            ready, _, _ = select.select([fd], [], [], TIMEOUT)
            assert ready, "server did not drop the garbage client"
            return os.read(fd, 100)
        finally:
            os.close(fd)

    results = run_threads([lambda r=r: good(r) for r in range(3)] + [garbage])
    for rank in range(3):
        assert results[rank] == str(rank), f"rank {rank}: {results[rank]!r}"
    assert results[3] == b"", "garbage client should see EOF"
    server4.close_client_fds()
    assert server4.wait(TIMEOUT)
    assert server4.lost_ranks == {3}
    assert server4.finalized_ranks == {0, 1, 2}
    assert any("protocol error" in r.getMessage() and "rank 3" in r.getMessage()
               for r in caplog.records)


def test_eof_before_finalize_fails_barrier(server4):
    server4.start()
    clients = [client(server4, r) for r in range(4)]
    server4.close_client_fds()  # as the parent does once the processes run

    def quitter():
        with clients[0] as pmi:
            pmi.init()  # then exits without finalize

    def waiter(rank):
        with clients[rank] as pmi:
            pmi.init()
            with pytest.raises(PMIError):
                pmi.barrier()
            pmi.finalize()
            return "ok"

    results = run_threads([quitter] + [lambda r=r: waiter(r) for r in (1, 2, 3)])
    assert results[0] is None
    assert [results[r] for r in (1, 2, 3)] == ["ok"] * 3
    assert server4.wait(TIMEOUT)
    assert server4.lost_ranks == {0}


def test_abort_callback_and_trace():
    aborts = []
    lines = []
    srv = LocalPMIServer(1, on_abort=lambda *a: aborts.append(a),
                         trace=lambda *a: lines.append(a))
    try:
        srv.start()
        got = threading.Event()

        def aborter():
            with client(srv, 0) as pmi:
                pmi.init()
                pmi.abort(42, "it\nbroke badly")
            got.wait(TIMEOUT)

        orig = srv._on_abort
        srv._on_abort = lambda *a: (orig(*a), got.set())
        run_threads([aborter])
        assert aborts == [(0, 42, "it broke badly")]
        assert (0, "C", "cmd=init pmi_version=1 pmi_subversion=1") in lines
        assert (0, "S", "cmd=response_to_init rc=0 pmi_version=1 pmi_subversion=1") \
            in lines
    finally:
        srv.stop()


def test_stop_does_not_hang_with_clients_connected():
    srv = LocalPMIServer(3)
    srv.start()
    fd = os.dup(srv.client_fd(0))
    try:
        os.write(fd, b"cmd=barrier_in\n")  # left waiting in the barrier
        t = threading.Thread(target=srv.stop, daemon=True)
        t.start()
        t.join(TIMEOUT)
        assert not t.is_alive(), "stop() hung"
        srv.stop()  # idempotent
        with pytest.raises(RuntimeError):
            srv.start()
    finally:
        os.close(fd)


def test_stop_without_start_and_fd_errors():
    srv = LocalPMIServer(2)
    assert srv.client_fd(1) >= 0
    with pytest.raises(IndexError):
        srv.client_fd(2)
    srv.preput("extra", "1")
    srv.close_client_fds()
    with pytest.raises(ValueError):
        srv.client_fd(0)
    srv.stop()
    with pytest.raises(ValueError):
        LocalPMIServer(0)


def test_client_from_env():
    with pytest.raises(RuntimeError, match="PMI_FD"):
        PMIClient.from_env({"PMI_RANK": "0", "PMI_SIZE": "1"})
    with pytest.raises(RuntimeError, match="PMI_RANK"):
        PMIClient.from_env({"PMI_FD": "3", "PMI_SIZE": "1"})
    with pytest.raises(RuntimeError, match="PMI_SIZE"):
        PMIClient.from_env({"PMI_FD": "3", "PMI_RANK": "0", "PMI_SIZE": "x"})
    with pytest.raises(RuntimeError, match="PMI_RANK"):
        PMIClient.from_env({"PMI_FD": "3", "PMI_RANK": "2", "PMI_SIZE": "2"})
    c = PMIClient.from_env({"PMI_FD": "7", "PMI_RANK": "1", "PMI_SIZE": "2"})
    assert (c.fd, c.rank, c.size) == (7, 1, 2)


def test_client_eof_and_partial_reads():
    a, b = socket.socketpair()
    pmi = PMIClient(a.detach(), 0, 1, timeout=TIMEOUT)

    def server_side():
        req = b""
        while not req.endswith(b"\n"):
            req += b.recv(100)
        assert req == b"cmd=get_appnum\n"
        for piece in (b"cmd=app", b"num rc=0 ", b"appnum=5\n"):  # partial writes
            b.sendall(piece)
        req = b""
        while not req.endswith(b"\n"):
            req += b.recv(100)
        b.close()  # EOF instead of a reply

    t = threading.Thread(target=server_side, daemon=True)
    t.start()
    assert pmi.appnum() == 5
    with pytest.raises(ConnectionError, match="closed the connection"):
        pmi.barrier()
    t.join(TIMEOUT)
    assert not t.is_alive()
    pmi.close()
    pmi.close()


def test_client_timeout():
    a, b = socket.socketpair()
    pmi = PMIClient(a.detach(), 0, 1, timeout=0.2)
    try:
        with pytest.raises(TimeoutError):
            pmi.barrier()
    finally:
        pmi.close()
        b.close()


CHILD = """
from flux_launch.client.pmi_client import PMIClient
with PMIClient.from_env(timeout=10) as pmi:
    pmi.init()
    pmi.put("host-%d" % pmi.rank, "node %d" % pmi.rank)
    pmi.barrier()
    print(pmi.rank, pmi.size, pmi.get("host-%d" % ((pmi.rank + 1) % pmi.size)))
    pmi.finalize()
"""


def test_subprocess_clients_inherit_pmi_fd():
    srv = LocalPMIServer(3)
    procs = []
    try:
        srv.start()
        procs = []
        for rank in range(3):
            fd = srv.client_fd(rank)
            env = dict(os.environ, PMI_FD=str(fd), PMI_RANK=str(rank), PMI_SIZE="3",
                       PYTHONPATH=os.pathsep.join(sys.path))
            procs.append(subprocess.Popen([sys.executable, "-c", CHILD], env=env,
                                          pass_fds=(fd,), stdout=subprocess.PIPE,
                                          text=True))
        srv.close_client_fds()
        outs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0]
        assert outs == [f"{r} 3 node {(r + 1) % 3}\n" for r in range(3)]
        assert srv.wait(TIMEOUT) and srv.finalized_ranks == {0, 1, 2}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        srv.stop()


def test_stop_from_abort_callback():
    box = {}
    srv = LocalPMIServer(2, on_abort=lambda *a: box["srv"].stop())
    box["srv"] = srv
    srv.start()
    fd = os.dup(srv.client_fd(0))
    try:
        os.write(fd, b"cmd=abort exitcode=1\n")
        srv._thread.join(TIMEOUT)
        assert not srv._thread.is_alive(), "server thread did not exit"
    finally:
        os.close(fd)
        srv.stop()
