"""Unit tests for the I/O-free PMI-1 engine (flux_launch.proto.pmi1)."""

import pytest

from flux_launch.proto import pmi1
from flux_launch.proto.pmi1_server import Ops, SimpleServer
from flux_launch.proto.pmi1 import (
    Maxes,
    PMIProtocolError,
    parse,
    parse_reply,
    process_mapping,
    process_mapping_from_counts,
)


class RecOps(Ops):
    """Records every callback."""

    def __init__(self, complete_at_once=False):
        self.server = None
        self.complete_at_once = complete_at_once
        self.entered = []
        self.aborts = []
        self.finalized = []
        self.traces = []
        self.released = []

    def barrier_enter(self, pending_puts):
        self.entered.append(dict(pending_puts))
        if self.complete_at_once:
            self.released.extend(self.server.barrier_complete())

    def abort(self, client, exitcode, msg):
        self.aborts.append((client, exitcode, msg))

    def finalize(self, client):
        self.finalized.append(client)

    def trace(self, client, direction, line):
        self.traces.append((client, direction, line))


def make(size=1, **kw):
    ops = RecOps(kw.pop("complete_at_once", False))
    srv = SimpleServer(size, ops, **kw)
    ops.server = srv
    return srv, ops


def one(srv, client, line):
    """Handle a line expecting exactly one reply; return it parsed."""
    out = srv.handle(client, line)
    assert len(out) == 1, out
    assert out[0].endswith(b"\n") and out[0].count(b"\n") == 1
    return parse_reply(out[0])


# --- parse ---------------------------------------------------------------------

def test_parse_basic_with_and_without_newline():
    want = {"cmd": "init", "pmi_version": "1", "pmi_subversion": "1"}
    assert parse(b"cmd=init pmi_version=1 pmi_subversion=1\n") == want
    assert parse("cmd=init pmi_version=1 pmi_subversion=1") == want
    assert parse(b"cmd=init pmi_version=1 pmi_subversion=1\r\n") == want


def test_parse_extra_whitespace_and_extra_keys():
    got = parse(b"  cmd=get   kvsname=k\tkey=a  extra=1 \n")
    assert got == {"cmd": "get", "kvsname": "k", "key": "a", "extra": "1"}


def test_parse_value_runs_to_end_of_line():
    got = parse(b"cmd=put kvsname=k key=a value=x y=z  w \n")
    assert got["value"] == "x y=z  w "
    assert parse(b"cmd=put kvsname=k key=a value=\n")["value"] == ""


def test_parse_abort_error_msg_runs_to_end_of_line():
    got = parse(b"cmd=abort exitcode=3 error_msg=it broke: rank=2 died\n")
    assert got == {"cmd": "abort", "exitcode": "3",
                   "error_msg": "it broke: rank=2 died"}


def test_parse_mcmd():
    assert parse(b"mcmd=spawn\n") == {"mcmd": "spawn"}


@pytest.mark.parametrize("line", [
    b"key=a cmd=get\n", b"hello\n", b"cmd= key=a\n", b"=x\n", b"get kvsname=k\n",
])
def test_parse_missing_cmd(line):
    with pytest.raises(PMIProtocolError) as ei:
        parse(line)
    assert ei.value.cmd is None
    assert "\n" not in str(ei.value)


def test_parse_token_without_equals():
    with pytest.raises(PMIProtocolError) as ei:
        parse(b"cmd=put kvsname=k key value=v\n")
    assert ei.value.cmd == "put"
    assert ei.value.rc == pmi1.PMI_ERR_INVALID_ARG
    assert "'key'" in str(ei.value)


@pytest.mark.parametrize("line", [b"", b"\n", b"   \n", "\t"])
def test_parse_empty_line(line):
    with pytest.raises(PMIProtocolError, match="empty"):
        parse(line)


@pytest.mark.parametrize("line", [b"\x00\xff\xfe\x80garbage\n", b"\xc3\x28 cmd=init\n"])
def test_parse_binary_garbage(line):
    with pytest.raises(PMIProtocolError, match="UTF-8") as ei:
        parse(line)
    assert ei.value.cmd is None


def test_parse_control_characters():
    with pytest.raises(PMIProtocolError, match="control") as ei:
        parse(b"\x01\x02\x03\n")
    assert ei.value.cmd is None
    with pytest.raises(PMIProtocolError) as ei:
        parse(b"cmd=put kvsname=k key=a value=\x07bell\n")
    assert ei.value.cmd == "put"


def test_parse_limits():
    m = Maxes()
    ok = "v" * (m.vallen_max - 1)  # limits count the C string's NUL
    assert parse(f"cmd=put kvsname=k key=a value={ok}\n")["value"] == ok
    with pytest.raises(PMIProtocolError) as ei:
        parse(f"cmd=put kvsname=k key=a value={ok}v\n")
    assert (ei.value.cmd, ei.value.rc) == ("put", pmi1.PMI_ERR_INVALID_VAL_LENGTH)
    with pytest.raises(PMIProtocolError) as ei:
        parse(f"cmd=get kvsname=k key={'k' * m.keylen_max}\n")
    assert (ei.value.cmd, ei.value.rc) == ("get", pmi1.PMI_ERR_INVALID_KEY_LENGTH)
    with pytest.raises(PMIProtocolError) as ei:
        parse(f"cmd=get kvsname={'n' * m.kvsname_max} key=a\n")
    assert ei.value.rc == pmi1.PMI_ERR_INVALID_LENGTH
    with pytest.raises(PMIProtocolError, match="too long") as ei:
        parse(b"cmd=put kvsname=k key=a value=" + b"x" * 100000 + b"\n")
    assert ei.value.cmd == "put"
    small = Maxes(kvsname_max=8, keylen_max=8, vallen_max=8)
    with pytest.raises(PMIProtocolError):
        parse(b"cmd=put kvsname=k key=a value=12345678\n", small)
    # multi-byte characters count as bytes, as C clients count them
    with pytest.raises(PMIProtocolError):
        parse("cmd=put kvsname=k key=a value=" + "\u00e9" * 4 + "\n", small)


def test_vallen_max_stays_1024():
    assert pmi1.DEFAULT_MAXES.vallen_max == 1024


# --- format / request / parse_reply ---------------------------------------------

def test_format_order_and_newline():
    assert pmi1.format("maxes", rc=0, kvsname_max=1) == \
        b"cmd=maxes rc=0 kvsname_max=1\n"
    assert pmi1.request("get", kvsname="k", key="a") == b"cmd=get kvsname=k key=a\n"
    with pytest.raises(ValueError):
        pmi1.format("put_result", rc=0, msg="a\nb")


def test_parse_reply():
    assert parse_reply(b"cmd=get_result rc=0 value=a b=c  d\n") == {
        "cmd": "get_result", "rc": "0", "value": "a b=c  d"}
    assert parse_reply(b"cmd=get_result rc=0 msg=success value=x y\n")["value"] == "x y"
    assert parse_reply(b"cmd=lookup_result rc=-1 msg=command not implemented\n")[
        "msg"] == "command not implemented"
    assert parse_reply(b"cmd=barrier_out\n") == {"cmd": "barrier_out"}
    for bad in (b"rc=0\n", b"\n", b"\xff\xfe\n", b"junk cmd=x\n"):
        with pytest.raises(PMIProtocolError):
            parse_reply(bad)


# --- server: commands -----------------------------------------------------------

def test_init_ok_exact_bytes():
    srv, _ = make()
    out = srv.handle(0, b"cmd=init pmi_version=1 pmi_subversion=1\n")
    assert out == [b"cmd=response_to_init rc=0 pmi_version=1 pmi_subversion=1\n"]


def test_init_pmi2_rejected():
    srv, _ = make()
    rep = one(srv, 0, b"cmd=init pmi_version=2 pmi_subversion=0\n")
    assert rep["cmd"] == "response_to_init"
    assert rep["rc"] == "-1"
    assert "PMI-2" in rep["msg"] and "library" in rep["msg"]
    assert "=" not in rep["msg"]


def test_init_bad_versions():
    srv, _ = make()
    assert one(srv, 0, b"cmd=init pmi_version=3 pmi_subversion=0\n")["rc"] == "-1"
    rep = one(srv, 0, b"cmd=init\n")
    assert rep["rc"] == str(pmi1.PMI_ERR_INVALID_ARG) and rep["msg"]
    assert one(srv, 0, b"cmd=init pmi_version=x pmi_subversion=1\n")["rc"] != "0"


def test_info_commands():
    srv, _ = make(4, kvsname="job42", appnum=3, universe_size=8)
    assert srv.handle(0, b"cmd=get_maxes\n") == [
        b"cmd=maxes rc=0 kvsname_max=256 keylen_max=256 vallen_max=1024\n"]
    assert srv.handle(0, b"cmd=get_universe_size\n") == [
        b"cmd=universe_size rc=0 size=8\n"]
    assert srv.handle(0, b"cmd=get_appnum\n") == [b"cmd=appnum rc=0 appnum=3\n"]
    assert srv.handle(0, b"cmd=get_my_kvsname\n") == [
        b"cmd=my_kvsname rc=0 kvsname=job42\n"]
    srv2, _ = make(5)
    assert one(srv2, 0, "cmd=get_universe_size")["size"] == "5"


def test_put_get_roundtrip_with_spaces():
    srv, _ = make(2)
    assert srv.handle(0, b"cmd=put kvsname=kvs_0 key=a value=x y  z\n") == [
        b"cmd=put_result rc=0\n"]
    assert srv.handle(1, b"cmd=get kvsname=kvs_0 key=a\n") == [
        b"cmd=get_result rc=0 value=x y  z\n"]
    assert srv.handle(0, b"cmd=put kvsname=kvs_0 key=e value=\n") == [
        b"cmd=put_result rc=0\n"]
    assert one(srv, 1, b"cmd=get kvsname=kvs_0 key=e\n") == {
        "cmd": "get_result", "rc": "0", "value": ""}
    assert srv.kvs["a"] == "x y  z"


def test_get_missing_key_answers_at_once():
    srv, _ = make()
    rep = one(srv, 0, b"cmd=get kvsname=kvs_0 key=nope\n")
    assert rep["cmd"] == "get_result" and rep["rc"] == "-1"
    assert "not found" in rep["msg"] and "value" not in rep


def test_put_get_errors():
    srv, _ = make()
    rep = one(srv, 0, b"cmd=put kvsname=other key=a value=1\n")
    assert rep["cmd"] == "put_result" and rep["rc"] == "-1" and "kvsname" in rep["msg"]
    rep = one(srv, 0, b"cmd=put kvsname=kvs_0 key=a\n")
    assert rep["rc"] == str(pmi1.PMI_ERR_INVALID_ARG) and "value" in rep["msg"]
    rep = one(srv, 0, b"cmd=get kvsname=kvs_0\n")
    assert rep["cmd"] == "get_result" and rep["rc"] == str(pmi1.PMI_ERR_INVALID_ARG)
    rep = one(srv, 0, b"cmd=get kvsname=kvs_0 key=\n")
    assert rep["rc"] == str(pmi1.PMI_ERR_INVALID_KEY)
    rep = one(srv, 0, "cmd=put kvsname=kvs_0 key=a value=" + "x" * 1024)
    assert rep["cmd"] == "put_result"
    assert rep["rc"] == str(pmi1.PMI_ERR_INVALID_VAL_LENGTH)
    rep = one(srv, 0, b"cmd=put kvsname=kvs_0 key value=1\n")
    assert rep["cmd"] == "put_result" and rep["rc"] != "0"
    assert "a" not in srv.kvs


@pytest.mark.parametrize("cmd,reply", [
    ("publish_name service=s port=p", "publish_result"),
    ("unpublish_name service=s", "unpublish_result"),
    ("lookup_name service=s", "lookup_result"),
    ("spawn", "spawn_result"),
    ("get_ranks2hosts", "put_ranks2hosts"),
])
def test_unimplemented(cmd, reply):
    srv, _ = make()
    rep = one(srv, 0, f"cmd={cmd}\n")
    assert rep["cmd"] == reply and rep["rc"] == "-1"
    assert "not implemented" in rep["msg"]


def test_mcmd_spawn():
    srv, _ = make()
    lines = [b"mcmd=spawn\n", b"nprocs=2\n", b"execname=work prog\n", b"totspawns=1\n",
             b"spawnssofar=0\n", b"arg0=--x y\n", b"argcnt=1\n", b"preput_num=0\n",
             b"info_num=0\n"]
    for line in lines:
        assert srv.handle(0, line) == []
    rep = one(srv, 0, b"endcmd\n")
    assert rep["cmd"] == "spawn_result" and rep["rc"] == "-1"
    # back to normal requests afterwards
    assert one(srv, 0, b"cmd=get_appnum\n")["appnum"] == "0"
    srv.handle(0, b"mcmd=spawn\n")
    with pytest.raises(PMIProtocolError):
        srv.handle(0, b"garbage without equals\n")
    with pytest.raises(PMIProtocolError):
        srv.handle(1, b"mcmd=frobnicate\n")


def test_unknown_command_raises():
    srv, _ = make()
    with pytest.raises(PMIProtocolError, match="unknown PMI command") as ei:
        srv.handle(0, b"cmd=frobnicate x=1\n")
    assert ei.value.cmd == "frobnicate"


@pytest.mark.parametrize("line", [
    b"\x00\xff\xfe binary\n", b"hello world\n", b"\n", b"key=a cmd=get\n",
])
def test_garbage_raises(line):
    srv, _ = make()
    with pytest.raises(PMIProtocolError):
        srv.handle(0, line)


def test_finalize():
    srv, ops = make(2)
    assert not srv.finalized(0)
    assert srv.handle(0, b"cmd=finalize\n") == [b"cmd=finalize_ack rc=0\n"]
    assert srv.finalized(0) and not srv.finalized(1)
    assert ops.finalized == [0]


def test_finalize_optional_hooks_on_duck_typed_ops():
    class Minimal:
        def barrier_enter(self, pending):
            pass

        def abort(self, client, exitcode, msg):
            pass

    srv = SimpleServer(1, Minimal(), trace=True)
    assert srv.handle(0, b"cmd=finalize\n") == [b"cmd=finalize_ack rc=0\n"]


def test_abort():
    srv, ops = make(2)
    # no reply: MPICH's PMI_Abort reads none (an empty line makes it complain)
    assert srv.handle(1, b"cmd=abort exitcode=7 error_msg=rank 1 gave up: x=y\n") == []
    assert srv.handle(0, b"cmd=abort exitcode=1090831\n") == []
    assert srv.handle(0, b"cmd=abort exitcode=oops\n") == []
    assert ops.aborts == [(1, 7, "rank 1 gave up: x=y"), (0, 1090831, ""), (0, 1, "")]


# --- server: barrier ----------------------------------------------------------

def test_barrier_several_clients_and_remote_merge():
    srv, ops = make(6, nlocal=3)
    srv.preput("PMI_process_mapping", "(vector,(0,2,3))")
    for c in range(3):
        assert one(srv, c, f"cmd=put kvsname=kvs_0 key=k{c} value=v {c}")["rc"] == "0"
    assert srv.handle(2, b"cmd=barrier_in\n") == []
    assert srv.handle(0, b"cmd=barrier_in\n") == []
    assert ops.entered == [] and srv.barrier_count == 2
    assert srv.handle(1, b"cmd=barrier_in\n") == []
    assert ops.entered == [{"k0": "v 0", "k1": "v 1", "k2": "v 2"}]
    # local puts are visible locally before the barrier completes
    assert one(srv, 9, b"cmd=get kvsname=kvs_0 key=k1\n")["value"] == "v 1"
    assert one(srv, 9, b"cmd=get kvsname=kvs_0 key=r3\n")["rc"] == "-1"
    out = srv.barrier_complete(0, {"r3": "remote value", "r4": "x"})
    assert out == [(2, b"cmd=barrier_out rc=0\n"), (0, b"cmd=barrier_out rc=0\n"),
                   (1, b"cmd=barrier_out rc=0\n")]
    assert srv.barrier_count == 0
    assert one(srv, 0, b"cmd=get kvsname=kvs_0 key=r3\n")["value"] == "remote value"
    assert one(srv, 0, b"cmd=get kvsname=kvs_0 key=PMI_process_mapping\n")[
        "value"] == "(vector,(0,2,3))"
    # second round: only the new puts are pending
    one(srv, 1, b"cmd=put kvsname=kvs_0 key=again value=1\n")
    for c in range(3):
        srv.handle(c, b"cmd=barrier_in\n")
    assert ops.entered[1] == {"again": "1"}
    assert len(srv.barrier_complete()) == 3


def test_barrier_completed_from_within_barrier_enter():
    srv, ops = make(2, complete_at_once=True)
    assert srv.handle(0, b"cmd=barrier_in\n") == []
    assert srv.handle(1, b"cmd=barrier_in\n") == []
    line = b"cmd=barrier_out rc=0\n"
    assert ops.released == [(0, line), (1, line)]


def test_barrier_failure_and_barrier_enter_raising():
    class Boom(RecOps):
        def barrier_enter(self, pending_puts):
            raise RuntimeError("exchange failed")

    ops = Boom()
    srv = SimpleServer(2, ops)
    srv.handle(0, b"cmd=barrier_in\n")
    with pytest.raises(RuntimeError, match="exchange failed"):
        srv.handle(1, b"cmd=barrier_in\n")
    out = srv.barrier_complete(rc=-1)
    assert [c for c, _ in out] == [0, 1]
    rep = parse_reply(out[0][1])
    assert rep["rc"] == "-1" and rep["msg"]


def test_barrier_twice_is_protocol_error():
    srv, _ = make(2)
    srv.handle(0, b"cmd=barrier_in\n")
    with pytest.raises(PMIProtocolError):
        srv.handle(0, b"cmd=barrier_in\n")


def test_barrier_in_during_exchange_is_protocol_error():
    srv, _ = make(3, nlocal=1)
    srv.handle(0, b"cmd=barrier_in\n")
    with pytest.raises(PMIProtocolError, match="nlocal"):
        srv.handle(1, b"cmd=barrier_in\n")


def test_disconnect_before_finalize_fails_barrier():
    srv, ops = make(3)
    srv.handle(0, b"cmd=barrier_in\n")
    out = srv.disconnect(2)
    assert len(out) == 1 and out[0][0] == 0
    rep = parse_reply(out[0][1])
    assert rep["cmd"] == "barrier_out" and rep["rc"] == "-1"
    # later barriers fail at once instead of hanging
    rep = one(srv, 1, b"cmd=barrier_in\n")
    assert rep["cmd"] == "barrier_out" and rep["rc"] == "-1"
    assert ops.entered == []
    assert srv.disconnect(2) == []


def test_disconnect_after_finalize_is_harmless():
    srv, ops = make(2, complete_at_once=True)
    srv.handle(1, b"cmd=finalize\n")
    assert srv.disconnect(1) == []
    srv2, ops2 = make(2)
    srv2.handle(0, b"cmd=barrier_in\n")
    srv2.handle(1, b"cmd=finalize\n")
    assert srv2.disconnect(1) == []
    assert srv2.barrier_count == 1


def test_disconnect_while_in_barrier():
    srv, ops = make(3)
    srv.handle(0, b"cmd=barrier_in\n")
    srv.handle(1, b"cmd=barrier_in\n")
    out = srv.disconnect(1)
    assert [c for c, _ in out] == [0]


# --- trace, preput, constructor -------------------------------------------------

def test_trace():
    srv, ops = make(1, trace=True, complete_at_once=True)
    srv.handle(0, b"cmd=get_appnum\n")
    srv.handle(0, b"cmd=barrier_in\n")
    assert ops.traces == [
        (0, "C", "cmd=get_appnum"), (0, "S", "cmd=appnum rc=0 appnum=0"),
        (0, "C", "cmd=barrier_in"), (0, "S", "cmd=barrier_out rc=0"),
    ]
    srv2, ops2 = make(1)
    srv2.handle(0, b"cmd=get_appnum\n")
    assert ops2.traces == []


def test_trace_sees_garbage_before_error():
    srv, ops = make(1, trace=True)
    with pytest.raises(PMIProtocolError):
        srv.handle(0, b"\xff\xfe\n")
    assert ops.traces[0][1] == "C"


def test_preput():
    srv, _ = make()
    srv.preput("PMI_process_mapping", "(vector," + "(0,1,1)," * 500 + ")")
    assert srv.kvs["PMI_process_mapping"] == ""  # RFC 13: too long -> unknown
    with pytest.raises(ValueError):
        srv.preput("other", "x" * 2000)
    for key in ("", "a b", "a=b"):
        with pytest.raises(ValueError):
            srv.preput(key, "v")
    with pytest.raises(ValueError):
        srv.preput("k", "a\nb")
    srv.preput("flux.instance-level", "0")
    assert one(srv, 0, b"cmd=get kvsname=kvs_0 key=flux.instance-level\n")[
        "value"] == "0"


def test_preput_not_pending():
    srv, ops = make(1)
    srv.preput("a", "1")
    srv.handle(0, b"cmd=barrier_in\n")
    assert ops.entered == [{}]


@pytest.mark.parametrize("kw", [
    dict(size=0), dict(size=2, nlocal=3), dict(size=2, nlocal=0),
    dict(size=1, kvsname=""), dict(size=1, kvsname="a b"), dict(size=1, kvsname="a=b"),
])
def test_constructor_validation(kw):
    size = kw.pop("size")
    with pytest.raises(ValueError):
        SimpleServer(size, RecOps(), **kw)


def test_ops_base_requires_barrier_enter_and_abort():
    srv = SimpleServer(1, Ops())
    with pytest.raises(NotImplementedError):
        srv.handle(0, b"cmd=barrier_in\n")
    with pytest.raises(NotImplementedError):
        srv.handle(1, b"cmd=abort exitcode=1\n")


# --- process mapping ----------------------------------------------------------

def test_process_mapping_blocks():
    assert process_mapping([(0, 2, 2)]) == "(vector,(0,2,2))"
    assert process_mapping([(0, 2, 2), (2, 2, 4)]) == "(vector,(0,2,2),(2,2,4))"
    assert process_mapping([(0, 4096, 256)]) == "(vector,(0,4096,256))"
    for bad in ([], [(0, 0, 1)], [(0, 1, 0)], [(-1, 1, 1)]):
        with pytest.raises(ValueError):
            process_mapping(bad)


def test_process_mapping_from_counts():
    assert process_mapping_from_counts([2, 2, 2]) == "(vector,(0,3,2))"
    assert process_mapping_from_counts([2, 1]) == "(vector,(0,1,2),(1,1,1))"
    assert process_mapping_from_counts([2, 2, 4, 4]) == "(vector,(0,2,2),(2,2,4))"
    assert process_mapping_from_counts([1]) == "(vector,(0,1,1))"
    assert process_mapping_from_counts([2, 0, 2]) == "(vector,(0,1,2),(2,1,2))"
    assert process_mapping_from_counts([3, 1, 1, 3]) == \
        "(vector,(0,1,3),(1,2,1),(3,1,3))"
    for bad in ([], [0, 0], [1, -1]):
        with pytest.raises(ValueError):
            process_mapping_from_counts(bad)
