"""``flux R`` (flux-core's flux-R(1)): encode, append, diff, intersect, remap,
rerank, decode, verify and set-property on RFC 20 sets read from stdin, fed by
``flux job info ID R`` in an instance too; bad input is one line, exit 1."""

import json
import os
import socket
import subprocess

import pytest

from flux_launch.testing import BIN, Instance, clean_env

pytestmark = pytest.mark.e2e

FLUX = os.path.join(BIN, "flux")


def R(*args, input=None, check=True):
    r = subprocess.run([FLUX, "R", *args], input=input, capture_output=True, text=True, env=clean_env(), timeout=30)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def enc(*args):
    return R("encode", *args).stdout


@pytest.fixture(scope="module")
def r1():
    return enc("-r", "0-3", "-c", "0-7", "-g", "0-1", "-H", "node[0-3]", "-p", "debug:1")


def test_encode(r1):
    assert json.loads(r1) == {"version": 1, "execution": {
        "R_lite": [{"rank": "0-3", "children": {"core": "0-7", "gpu": "0-1"}}], "nodelist": ["node[0-3]"],
        "starttime": 0.0, "expiration": 0.0, "properties": {"debug": "1"}}}
    # defaults: rank 0 on this host with core 0; ranks without hosts get this host's name
    assert R("decode", "-s", "-n", input=enc()).stdout == f"rank0/core0\n{socket.gethostname()}\n"
    assert R("decode", "-n", input=enc("-r", "0-1")).stdout.strip() == f"{socket.gethostname()},{socket.gethostname()}"
    assert R("decode", "-r", input=enc("-H", "a[1-3]")).stdout == "0-2\n"  # one rank per host
    assert R("decode", "-s", input=enc("-g", "0")).stdout == "rank0/gpu0\n"  # -g alone: no cores
    local = R("decode", "-c", "core", input=enc("-l")).stdout
    assert int(local) == os.cpu_count() or int(local) >= 1


def test_decode_views(r1):
    both = r1 + enc("-r", "4-5", "-c", "0-3", "-H", "node[4-5]")
    assert R("decode", "-s", "-n", "-r", "-c", "core", input=both).stdout.splitlines() == [
        "rank[0-3]/core[0-7],gpu[0-1] rank[4-5]/core[0-3]", "node[0-5]", "0-5", "40"]
    assert R("decode", "-c", "gpu", input=both).stdout == "8\n"
    assert R("decode", "-c", "node", input=both).stdout == "6\n"
    assert R("decode", "-x", "0-1", "-i", "1-3", "-n", input=r1).stdout == "node[2-3]\n"
    assert R("decode", "-p", "debug", "-r", input=r1).stdout == "1\n"
    assert R("decode", "-p", "^debug", "-r", input=r1).stdout == "0,2-3\n"


def test_set_operations(r1):
    part = enc("-r", "0", "-c", "0-3", "-H", "node0")
    assert R("decode", "-s", input=R("diff", input=r1 + part).stdout).stdout == \
        "rank0/core[4-7],gpu[0-1] rank[1-3]/core[0-7],gpu[0-1]\n"
    assert R("decode", "-s", input=R("intersect", input=r1 + part).stdout).stdout == "rank0/core[0-3]\n"
    remapped = R("remap", input=enc("-r", "4-5", "-H", "n[4-5]")).stdout
    assert R("decode", "-r", "-n", input=remapped).stdout == "n[4-5]\n0-1\n"  # order: -s -n -r -c
    reranked = R("rerank", "node[3,2,1,0]", input=r1).stdout
    assert R("decode", "-n", "-p", "debug", input=reranked).stdout == "node1\n"  # node1 keeps its property
    assert json.loads(reranked)["execution"]["nodelist"] == ["node[3,2,1,0]"]
    props = R("set-property", "fast:0-1", "slow", input=r1).stdout
    assert R("decode", "-p", "fast,slow", "-r", input=props).stdout == "0-1\n"


def test_verify(r1):
    part = enc("-r", "0", "-c", "0-3", "-H", "node0")
    r = R("verify", input=r1 + part, check=False)
    assert (r.returncode, r.stderr) == (1, "flux-R: rank 0 (node0) missing resources: core[4-7],gpu[0-1]\n")
    r = R("verify", input=part + enc("-r", "0", "-c", "0-3", "-H", "other"), check=False)
    assert (r.returncode, r.stderr) == (1, "flux-R: rank 0 (other): got hostname other, expected node0\n")
    r = R("verify", input=part + r1, check=False)  # ranks that were not expected fail
    assert r.returncode == 1 and "rank 1 (node1): not in the expected ranks (0)" in r.stderr
    r = R("verify", input=part + enc("-r", "0", "-c", "0-5", "-H", "node0"), check=False)
    assert (r.returncode, r.stderr) == (0, "flux-R: rank 0 (node0) has extra resources: core[4-5]\n")


@pytest.mark.parametrize("args, stdin, message", [
    (("append",), "R1R1", "R objects 'rank[0-3]/core[0-7],gpu[0-1]' and 'rank[0-3]/core[0-7],gpu[0-1]' overlap"),
    (("diff",), "R1", "diff requires at least 2 resource sets on stdin, got 1"),
    (("verify",), "R1", "verify requires exactly 2 R objects on stdin, got 1"),
    (("rerank", "node[0-2]"), "R1", "Too few hosts specified (expected 4)"),
    (("rerank", "node[0-4]"), "R1", "Too many hosts specified (expected 4)"),
    (("rerank", "node[0-2,9]"), "R1", "failed to find one or more provided hosts in R (node9)"),
    (("decode",), '{"version":2}', "R object 1 on stdin: R: unsupported version 2 (expected 1)"),
    (("decode",), "junk", "R object 1 on stdin is not JSON: Expecting value at char 0"),
    (("decode",), "", "no R object on stdin (pipe in flux job info ID R, flux resource R or flux R encode)"),
    (("set-property", "x:9"), "R1", "failed to assign properties: rank 9 of property 'x' is not in the set "
                                    "(ranks 0-3)"),
    (("encode", "-r", "x"), "", "--ranks=x: not an idset (e.g. 0-3,7)"),
    (("encode", "-r", "0-1", "-H", "a"), "", "hostname count in 'a' does not match nranks (2)"),
    (("encode", "-l", "-c", "0"), "", "do not give --cores or --gpus with --local or --xml"),
    (("encode", "-p", "a:"), "", "property 'a:': give NAME or NAME:RANKS (e.g. debug:0-1)"),
])
def test_bad_input(r1, args, stdin, message):
    r = R(*args, input=stdin.replace("R1", r1), check=False)
    assert (r.returncode, r.stderr, r.stdout) == (1, f"flux-R: {message}\n", "")


def test_bad_command_line():
    for args in ([], ["nosuch"], ["decode", "-c", "widget"]):
        r = R(*args, check=False)
        assert r.returncode == 2 and "usage: flux R" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_jobs_R():
    with Instance(size=2, args=["--test-hosts=node[0-1]"]) as inst:
        job = inst.flux("submit", "-N2", "true").stdout.strip()
        inst.flux("job", "wait-event", "-t", "30", job, "clean")
        R_job = inst.flux("job", "info", job, "R").stdout
        out = R("decode", "-n", "-r", "-c", "node", input=R_job).stdout
        assert out.splitlines() == ["node[0-1]", "0-1", "2"]
        inst_R = inst.flux("resource", "R").stdout
        assert R("verify", input=inst_R + R_job).returncode == 0  # the job's R is within the instance's
