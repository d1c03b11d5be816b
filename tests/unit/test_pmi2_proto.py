"""PMI-2 wire codec (flux_launch.proto.pmi2), the engine serving PMI-2 beside PMI-1
(proto/pmi2_server.py through SimpleServer), and the broker's method choice
(client/pmi_boot.py) where no launcher is needed."""

import pytest

from flux_launch.client import pmi_boot
from flux_launch.proto import pmi2
from flux_launch.proto.pmi1 import PMIProtocolError
from flux_launch.proto.pmi1_server import Ops, SimpleServer
from flux_launch.proto.pmi2 import PMI2ProtocolError, decode, encode, split_frame

# --- codec ---------------------------------------------------------------------------


def test_encode_frames_with_a_left_justified_6_byte_length():
    assert encode("fullinit", pmirank=0) == b"23    cmd=fullinit;pmirank=0;"
    assert encode("kvs-fence") == b"14    cmd=kvs-fence;"


def test_encode_escapes_semicolons_and_spells_booleans():
    data = encode("kvs-put", [("key", "a"), ("value", "x;y;")], wait=True)
    body = data[6:]
    assert body == b"cmd=kvs-put;key=a;value=x;;y;;;wait=TRUE;"
    assert int(data[:6]) == len(body)
    assert decode(body) == {"cmd": "kvs-put", "key": "a", "value": "x;y;", "wait": "TRUE"}


@pytest.mark.parametrize("value", ["", ";", ";;", "a;b", "end;", ";start", "sp ace=eq"])
def test_values_round_trip(value):
    body, rest = split_frame(encode("kvs-put", [("value", value), ("key", "k")]))
    assert rest == b""
    assert decode(body) == {"cmd": "kvs-put", "value": value, "key": "k"}


def test_split_frame_waits_for_whole_frames_and_keeps_the_rest():
    two = encode("a") + encode("b", x=1)
    assert split_frame(two[:3]) is None
    assert split_frame(two[:8]) is None
    body, rest = split_frame(two)
    assert body == b"cmd=a;" and split_frame(rest) == (b"cmd=b;x=1;", b"")
    assert split_frame(b"    12cmd=kvs-get;") == (b"cmd=kvs-get;", b"")  # right-justified too


@pytest.mark.parametrize("data", [b"cmd=init pmi_version=2\n", b"\xff\xfe garbage\n", b"1 2   cmd=x;",
                                  b"999999" + b"x" * 10])
def test_split_frame_refuses_garbage_headers(data):
    with pytest.raises(PMI2ProtocolError):
        split_frame(data)


@pytest.mark.parametrize("body,why", [
    (b"\xff\xfe", "not UTF-8"), (b"key=a;", "does not start with cmd="), (b"cmd=x;key", "without '='"),
    (b"cmd=x;key=a", "not ended"), (b"cmd=x;=a;", "bad PMI-2 key"), (b"cmd=;", "empty command"),
    (b"cmd=x;k=a\x00;", "control characters"), (b"cmd=x;" + b"k" * 65 + b"=1;", "bad PMI-2 key"),
    (b"cmd=x;v=;;", "not ended"),
])
def test_decode_refuses_garbage_with_a_reason(body, why):
    with pytest.raises(PMI2ProtocolError, match=why):
        decode(body)


def test_protocol_error_is_a_pmi_protocol_error():
    assert issubclass(PMI2ProtocolError, PMIProtocolError)


def test_bad_keys_and_oversized_frames_are_refused_when_encoding():
    for key in ("", "a=b", "a;b", "k" * 65):
        with pytest.raises(ValueError):
            encode("kvs-put", [(key, "v")])
    with pytest.raises(ValueError, match="limit"):
        encode("kvs-put", value="x" * (pmi2.MAX_BODY + 1))


def test_boolean():
    assert pmi2.boolean({"w": "TRUE"}, "w") is True
    assert pmi2.boolean({"w": "false"}, "w") is False
    assert pmi2.boolean({}, "w", False) is False
    with pytest.raises(PMI2ProtocolError, match="not TRUE or FALSE"):
        pmi2.boolean({"w": "yes"}, "w")


# --- engine ----------------------------------------------------------------------------


class RecOps(Ops):
    def __init__(self):
        self.server = None
        self.entered = []
        self.sent = []
        self.aborts = []

    def barrier_enter(self, pending_puts):
        self.entered.append(dict(pending_puts))

    def abort(self, client, exitcode, msg):
        self.aborts.append((client, exitcode, msg))

    def send(self, client, data):
        self.sent.append((client, data))


def server(size=2, nlocal=None):
    ops = RecOps()
    srv = SimpleServer(size, ops, nlocal=nlocal, kvsname="kvs_7", pmi2=True)
    srv.preput("PMI_process_mapping", "(vector,(0,1,2))")
    ops.server = srv
    return srv, ops


def v2(srv, client):
    """Switch a client to PMI-2 the way a client does."""
    assert srv.handle(client, pmi2.INIT_REQUEST) == [b"cmd=response_to_init pmi_version=2 pmi_subversion=0 rc=0\n"]
    assert srv.wire(client) == 2


def call(srv, client, cmd, *pairs, **fields):
    """One request; returns the decoded responses."""
    out = srv.handle(client, encode(cmd, list(pairs), **fields)[6:])
    return [decode(split_frame(f)[0]) for f in out]


def test_init_with_version_2_switches_to_the_pmi2_wire():
    srv, _ = server()
    assert srv.wire(0) == 1
    v2(srv, 0)
    assert srv.wire(1) == 1  # per client


def test_fullinit_answers_as_slurm_and_mpich_expect():
    srv, _ = server()
    v2(srv, 0)
    out = srv.handle(0, b"cmd=fullinit;pmirank=0;threaded=FALSE;")
    assert out == [b"113   cmd=fullinit-response;rc=0;pmi-version=2;pmi-subversion=0;rank=0;size=2;"
                   b"appnum=0;debugged=FALSE;pmiverbose=FALSE;"]


@pytest.mark.parametrize("rank,why", [("5", "not a rank of this job"), ("x", "not a rank"),
                                      ("1", "belongs to rank 0")])
def test_fullinit_with_a_wrong_rank_is_an_error_response(rank, why):
    srv, _ = server()
    v2(srv, 0)
    (resp,) = call(srv, 0, "fullinit", pmirank=rank)
    assert resp["cmd"] == "fullinit-response" and resp["rc"] == str(pmi2.PMI2_ERR_INVALID_ARG)
    assert why in resp["errmsg"]


def test_job_attributes_and_job_id():
    srv, _ = server()
    v2(srv, 0)
    assert call(srv, 0, "job-getid")[0] == {"cmd": "job-getid-response", "rc": "0", "jobid": "kvs_7"}
    got = call(srv, 0, "info-getjobattr", key="PMI_process_mapping")[0]
    assert got["found"] == "TRUE" and got["value"] == "(vector,(0,1,2))"
    assert call(srv, 0, "info-getjobattr", key="universeSize")[0]["value"] == "2"
    assert call(srv, 0, "info-getjobattr", key="PMI_hwloc_xmlfile")[0] == {
        "cmd": "info-getjobattr-response", "rc": "0", "found": "FALSE"}


def test_pmi1_and_pmi2_clients_share_kvs_and_barrier():
    srv, ops = server()
    v2(srv, 0)
    srv.handle(1, b"cmd=init pmi_version=1 pmi_subversion=1\n")
    assert call(srv, 0, "kvs-put", key="k0", value="a;b c")[0]["rc"] == "0"
    assert srv.handle(1, b"cmd=put kvsname=kvs_7 key=k1 value=v 1\n") == [b"cmd=put_result rc=0\n"]
    assert call(srv, 0, "kvs-fence", thrid="0x1") == []
    assert srv.handle(1, b"cmd=barrier_in\n") == []
    assert ops.entered == [{"k0": "a;b c", "k1": "v 1"}]
    released = dict(srv.barrier_complete(0, {"k9": "remote"}))
    assert released[0] == b"38    cmd=kvs-fence-response;thrid=0x1;rc=0;"
    assert released[1] == b"cmd=barrier_out rc=0\n"
    assert call(srv, 0, "kvs-get", jobid="kvs_7", srcid=-1, key="k1")[0]["value"] == "v 1"
    assert call(srv, 0, "kvs-get", jobid="kvs_7", srcid=-1, key="k9")[0]["value"] == "remote"
    assert srv.handle(1, b"cmd=get kvsname=kvs_7 key=k0\n") == [b"cmd=get_result rc=0 value=a;b c\n"]
    assert call(srv, 0, "kvs-get", key="nope")[0] == {"cmd": "kvs-get-response", "rc": "0", "found": "FALSE"}


def test_kvs_get_with_another_jobid_and_bad_puts_are_error_responses():
    srv, _ = server()
    v2(srv, 0)
    resp = call(srv, 0, "kvs-get", jobid="other", key="k")[0]
    assert resp["rc"] == str(pmi2.PMI2_ERR_INVALID_ARG) and "unknown jobid" in resp["errmsg"]
    assert call(srv, 0, "kvs-put", key="k")[0]["errmsg"] == "kvs-put needs value"
    assert call(srv, 0, "kvs-put", key="a b", value="1")[0]["rc"] == str(pmi2.PMI2_ERR_INVALID_KEY)
    assert call(srv, 0, "kvs-put", key="k", value="x" * 1025)[0]["rc"] == str(pmi2.PMI2_ERR_INVALID_VAL_LENGTH)
    assert call(srv, 0, "kvs-put", key="k", value="a\nb")[0]["rc"] == str(pmi2.PMI2_ERR_INVALID_VAL)


def test_unknown_and_unimplemented_commands_get_an_error_response():
    srv, _ = server()
    v2(srv, 0)
    resp = call(srv, 0, "frobnicate", thrid="7")[0]
    assert resp == {"cmd": "frobnicate-response", "thrid": "7", "rc": "-1",
                    "errmsg": "frobnicate is not a PMI-2 command"}
    assert call(srv, 0, "spawn", ncmds=1)[0]["errmsg"] == "spawn is not implemented"


def test_garbage_after_init_raises_for_the_glue_to_drop_the_client():
    srv, _ = server()
    v2(srv, 0)
    with pytest.raises(PMI2ProtocolError):
        srv.handle(0, b"cmd=kvs-put;key=a")
    with pytest.raises(PMIProtocolError, match="twice"):
        call(srv, 0, "kvs-fence")
        call(srv, 0, "kvs-fence")


def test_node_attributes_wait_for_a_local_put():
    srv, ops = server()
    v2(srv, 0)
    v2(srv, 1)
    assert call(srv, 0, "info-getnodeattr", key="seg", wait=False)[0]["found"] == "FALSE"
    assert call(srv, 0, "info-getnodeattr", key="seg", wait=True, thrid="t") == []
    assert call(srv, 1, "info-putnodeattr", key="seg", value="42")[0]["rc"] == "0"
    ((client, data),) = ops.sent
    assert client == 0
    assert decode(split_frame(data)[0]) == {"cmd": "info-getnodeattr-response", "thrid": "t", "rc": "0",
                                            "found": "TRUE", "value": "42"}
    assert call(srv, 1, "info-getnodeattr", key="seg")[0]["value"] == "42"


def test_a_waiter_that_disconnects_is_forgotten():
    srv, ops = server()
    v2(srv, 0)
    v2(srv, 1)
    call(srv, 0, "info-getnodeattr", key="seg", wait=True)
    srv.disconnect(0)
    call(srv, 1, "info-putnodeattr", key="seg", value="1")
    assert ops.sent == []


def test_a_lost_client_fails_the_fence_of_the_others():
    srv, _ = server(size=3)
    v2(srv, 0)
    v2(srv, 1)
    call(srv, 0, "kvs-fence")
    ((client, data),) = srv.disconnect(2)
    resp = decode(split_frame(data)[0])
    assert client == 0 and resp["rc"] == "-1" and "exited" in resp["errmsg"]
    assert call(srv, 1, "kvs-fence")[0]["rc"] == "-1"


def test_finalize_and_abort():
    srv, ops = server()
    v2(srv, 0)
    assert call(srv, 0, "abort", isworld=True, msg="bad; thing") == []
    assert ops.aborts == [(0, 1, "bad; thing")]
    assert call(srv, 0, "finalize")[0] == {"cmd": "finalize-response", "rc": "0"}
    assert srv.finalized(0)


def test_without_pmi2_the_engine_still_refuses_version_2():
    srv = SimpleServer(1, RecOps(), kvsname="kvs_1")
    (line,) = srv.handle(0, pmi2.INIT_REQUEST)
    assert b"rc=-1" in line and b"PMI-1 only" in line and srv.wire(0) == 1


# --- broker method choice ------------------------------------------------------------


def test_single_without_a_launcher():
    assert pmi_boot.open_boot_pmi({}) is None


def test_unknown_method_is_named():
    with pytest.raises(RuntimeError, match="unknown method 'pmix'"):
        pmi_boot.open_boot_pmi({"FLUX_PMI_CLIENT_METHODS": "simple pmix"})


def test_no_method_applies_lists_why_each_did_not(tmp_path):
    with pytest.raises(RuntimeError) as exc:
        pmi_boot.open_boot_pmi({"FLUX_PMI_CLIENT_METHODS": "simple2 libpmi2 libpmi",
                                "FLUX_PMI_CLIENT_SEARCHPATH": str(tmp_path)})
    msg = str(exc.value)
    assert "simple2: PMI_FD is not set" in msg and f"no libpmi2.so in FLUX_PMI_CLIENT_SEARCHPATH={tmp_path}" in msg


def test_a_library_path_that_does_not_exist_fails_at_once():
    with pytest.raises(FileNotFoundError, match="no PMI library at /no/such/libpmi2.so"):
        pmi_boot.open_boot_pmi({"FLUX_PMI_CLIENT_METHODS": "libpmi2:/no/such/libpmi2.so single"})


def test_a_library_that_cannot_load_says_why(tmp_path):
    (tmp_path / "libpmi2.so").write_text("not an ELF file")
    with pytest.raises(OSError, match="cannot load PMI library"):
        pmi_boot.open_boot_pmi({"FLUX_PMI_CLIENT_METHODS": "libpmi2",
                                "FLUX_PMI_CLIENT_SEARCHPATH": f"/nonexistent:{tmp_path}"})


def test_single_refuses_under_srun_with_several_tasks_and_no_pmi():
    env = {"SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_ID": "0"}
    with pytest.raises(RuntimeError, match="srun with 2 tasks but no PMI.*srun --mpi=pmi2"):
        pmi_boot.open_boot_pmi(env)
    assert pmi_boot.open_boot_pmi(dict(env, SLURM_STEP_NUM_TASKS="1")) is None
