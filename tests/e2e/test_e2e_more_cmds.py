"""More of a Flux user's everyday commands: ``flux shutdown``, ``flux event
pub|sub``, ``flux pgrep``/``flux pkill``, ``flux hwloc info|topology`` and
``flux pmi barrier|exchange|get``, with flux-core's outputs, errors and exit
codes."""

import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from flux_launch.testing import BIN, flux

pytestmark = pytest.mark.e2e
FLUX = os.path.join(BIN, "flux")


def _one_line_error(res, prefix):
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), res.stderr
    return lines[0]


# ---- flux shutdown ------------------------------------------------------------------

def test_shutdown_from_inside_ends_flux_start_with_129():
    res = flux("start", "--test-size=2", "sh", "-c", "flux shutdown; sleep 60", timeout=60)
    assert res.returncode == 129, (res.stdout, res.stderr)  # the initial program got SIGHUP


def test_shutdown_from_a_client(make_instance):
    inst = make_instance(size=2)
    res = inst.flux("shutdown")
    assert res.returncode == 0, res.stderr
    # the log entries posted during the shutdown, info and more severe, on stderr
    assert "broker.info[0]: shutdown requested: sent SIGHUP to the initial program" in res.stderr
    assert inst.stop(timeout=30) == 129


def test_shutdown_quiet(make_instance):
    inst = make_instance()
    res = inst.flux("shutdown", "--quiet")
    assert res.returncode == 0 and res.stderr == ""  # info entries are not shown
    assert inst.stop(timeout=30) == 129


def test_shutdown_background_and_target_uri(make_instance):
    inst = make_instance(size=2)
    res = flux("shutdown", "--background", inst.uri)  # no FLUX_URI: the target names the instance
    assert res.returncode == 0, res.stderr
    assert inst.stop(timeout=30) == 129


def test_shutdown_refused_on_other_ranks_and_for_dumps(make_instance):
    inst = make_instance(size=2)
    res = inst.flux("exec", "-r", "1", FLUX, "shutdown", check=False)
    assert res.returncode == 1
    _one_line_error(res, "flux-shutdown: shutdown is only available on rank 0")
    for opt in ("--gc", "--dump=/tmp/x.tgz"):
        res = inst.flux("shutdown", opt, check=False)
        assert res.returncode == 1 and "not supported" in _one_line_error(res, "flux-shutdown: "), res.stderr
    assert "run" in inst.flux("uptime").stdout  # still running
    res = flux("shutdown", "ƒnotajob", env={"FLUX_URI": inst.uri})
    assert res.returncode == 1
    _one_line_error(res, "flux-shutdown: failed to resolve target ƒnotajob to a Flux URI")


def test_shutdown_without_instance():
    res = flux("shutdown")
    assert res.returncode == 1
    _one_line_error(res, "flux-shutdown: FLUX_URI is not set")


# ---- flux event ---------------------------------------------------------------------

def _reader(proc):
    lines = queue.Queue()

    def run():
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=run, daemon=True).start()
    return lines


def _until_subscribed(inst, lines, topic):
    """Publish ``topic`` until the subscriber prints it (it subscribed by then)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        inst.flux("event", "pub", topic)
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        assert line is not None and line.startswith(topic), line
        return
    raise AssertionError("flux event sub never printed an event")


def test_event_pub_sub(make_instance):
    inst = make_instance(size=2)
    proc = subprocess.Popen([FLUX, "event", "sub", "t.", "sync"], stdout=subprocess.PIPE, text=True,
                            env=inst.env, start_new_session=True)
    try:
        lines = _reader(proc)
        _until_subscribed(inst, lines, "sync")
        inst.flux("event", "pub", "t.json", '{"a": [1,', "2]}")  # words joined with a space
        inst.flux("event", "pub", "-r", "t.raw", "hello", "world")
        inst.flux("event", "pub", "other.x")  # not subscribed
        inst.flux("exec", "-r", "1", FLUX, "event", "pub", "t.from1")  # published through rank 0
        got = []
        while len(got) < 3:
            line = lines.get(timeout=30)
            assert line is not None
            if not line.startswith("sync"):
                got.append(line)
        assert got == ['t.json\t{"a":[1,2]}', "t.raw\thello world", "t.from1\t"], got
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(10)


def test_event_sub_count_and_loopback(make_instance):
    inst = make_instance()
    proc = subprocess.Popen([FLUX, "event", "sub", "--count=2", "c."], stdout=subprocess.PIPE, text=True,
                            env=inst.env, start_new_session=True)
    try:
        lines = _reader(proc)
        _until_subscribed(inst, lines, "c.sync")
        inst.flux("event", "pub", "c.last")
        assert proc.wait(30) == 0  # exits by itself after 2 events
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    rest = []
    while (line := lines.get(timeout=10)) is not None:
        rest.append(line)
    assert rest == ["c.last\t"], rest
    assert inst.flux("event", "pub", "-l", "loop.back", "{}").returncode == 0


def test_event_bad_input(make_instance):
    inst = make_instance()
    res = inst.flux("event", "pub", "t", "{bad", check=False)
    assert res.returncode == 1
    _one_line_error(res, "flux-event: payload is not valid JSON")
    res = inst.flux("event", check=False)
    assert res.returncode == 2 and "flux-event: error:" in res.stderr
    res = inst.flux("event", "sub", "-c", "-1", check=False)
    assert res.returncode == 2
    res = flux("event", "pub", "x")
    assert res.returncode == 1
    _one_line_error(res, "flux-event: FLUX_URI is not set")


# ---- flux pgrep / pkill ---------------------------------------------------------------

def test_pgrep_and_pkill(make_instance):
    inst = make_instance(size=2)
    done = inst.flux("submit", "--job-name=quick", "true").stdout.strip()
    inst.flux("job", "wait-event", done, "clean")
    a = inst.flux("submit", "--job-name=sleepy", "sleep", "300").stdout.strip()
    b = inst.flux("submit", "--job-name=sleeper", "sleep", "300").stdout.strip()
    c = inst.flux("submit", "--job-name=other", "sleep", "300").stdout.strip()
    # default format: ids only, no header; active jobs only
    assert set(inst.flux("pgrep", "^sleep").stdout.split()) == {a, b}
    assert inst.flux("pgrep", "quick", check=False).returncode == 1  # inactive: not without -a
    assert inst.flux("pgrep", "-a", "quick").stdout.split() == [done]
    assert inst.flux("pgrep", "-c", "1", "^sleep").stdout.count("\n") == 1
    # an id range, and a range with a pattern (both must match)
    assert set(inst.flux("pgrep", f"{a}..{c}").stdout.split()) == {a, b, c}
    assert inst.flux("pgrep", f"{a}..{c}", "per$").stdout.split() == [b]
    out = inst.flux("pgrep", "-o", "{id.f58} {name}", "other").stdout
    assert out.splitlines() == ["JOBID NAME", f"{c} other"]
    out = inst.flux("pgrep", "-n", "-o", "{name}", "other").stdout
    assert out == "other\n"
    full = inst.flux("pgrep", "-o", "full", "other").stdout.splitlines()
    assert full[0].split()[:4] == ["JOBID", "USER", "NAME", "ST"] and full[1].split()[3] == "R", full
    # pkill: cancels the matches, says how many; --wait waits for them to end
    res = inst.flux("pkill", "--wait", "^sleep")
    assert res.stderr == "flux-pkill: Canceled 2 jobs\n"
    out = inst.flux("pgrep", "-a", "-n", "-o", "{name} {result}", "sleep").stdout
    assert sorted(out.splitlines()) == ["sleeper CANCELED", "sleepy CANCELED"]
    assert inst.flux("pkill", "^sleep", check=False).returncode == 1  # nothing active matches
    assert inst.flux("pkill", "other").stderr == "flux-pkill: Canceled 1 job\n"


def test_pgrep_bad_input(make_instance):
    inst = make_instance()
    res = inst.flux("pgrep", "(", check=False)
    assert res.returncode == 2
    _one_line_error(res, "flux-pgrep: expression error: ")
    res = inst.flux("pgrep", "a", "b", check=False)
    assert res.returncode == 2
    _one_line_error(res, "flux-pgrep: expression error: Only one pattern can be provided")
    res = inst.flux("pgrep", "-o", "{nosuchfield}", "x", check=False)
    assert res.returncode == 1
    _one_line_error(res, "flux-pgrep: Error in user format: unknown field 'nosuchfield'")
    res = inst.flux("pgrep", "-f", "bogus", "x", check=False)
    assert res.returncode == 2 and "invalid state or result 'bogus'" in res.stderr
    res = inst.flux("pkill", "-a", "x", check=False)  # -a is pgrep's only
    assert res.returncode == 2
    res = inst.flux("pgrep", check=False)
    assert res.returncode == 2


# ---- flux hwloc ---------------------------------------------------------------------

INFO = re.compile(r"(\d+) (Machines?), (\d+) Cores, (\d+) PUs")


def _info(inst, *args):
    m = INFO.fullmatch(inst.flux("hwloc", "info", *args).stdout.strip())
    assert m, args
    return int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))


def test_hwloc_info(make_instance):
    inst = make_instance(size=2)
    one = _info(inst, "-r", "1")
    assert one[:2] == (1, "Machine") and one[2] >= 1 and one[3] >= one[2]
    assert _info(inst) == (2, "Machines", 2 * one[2], 2 * one[3])  # each rank one Machine
    assert _info(inst, "-r", "0-1") == _info(inst, "-r", "all")
    assert _info(inst, "--local") == one  # both ranks run here
    for bad in ("2", "x"):
        res = inst.flux("hwloc", "info", "-r", bad, check=False)
        assert res.returncode == 1
        _one_line_error(res, f"flux-hwloc: Invalid rank argument: '{bad}'")
    res = inst.flux("hwloc", check=False)
    assert res.returncode == 2


@pytest.mark.skipif(shutil.which("lstopo-no-graphics") is None, reason="hwloc's lstopo is not installed")
def test_hwloc_topology(make_instance):
    inst = make_instance(size=2)
    pus = _info(inst, "-r", "0")[3]
    doc = ET.fromstring(inst.flux("hwloc", "topology", "-r", "0").stdout.encode())
    assert [o.get("type") for o in doc.findall("object")] == ["Machine"]
    assert len(doc.findall(".//object[@type='PU']")) == pus
    both = ET.fromstring(inst.flux("hwloc", "topology").stdout.encode())
    assert len(both.findall(".//object[@type='Machine']")) == 2
    assert len(both.findall(".//object[@type='PU']")) == 2 * pus
    local = ET.fromstring(inst.flux("hwloc", "topology", "-l").stdout.encode())
    assert len(local.findall(".//object[@type='PU']")) == pus


# ---- flux pmi -----------------------------------------------------------------------

BARRIER = re.compile(r"(\S+): completed pmi (barrier|exchange) on (\d+) tasks in \d+\.\d{3}s\.")


def test_pmi_singleton():
    res = flux("pmi", "barrier")
    assert res.returncode == 0, res.stderr
    assert BARRIER.fullmatch(res.stdout.strip()).groups() == ("0", "barrier", "1")
    res = flux("pmi", "-v", "exchange")
    assert BARRIER.fullmatch(res.stdout.strip()).groups() == ("0", "exchange", "1")
    assert "single: initialize: rank=0 size=1" in res.stderr and "single: finalize: success" in res.stderr


def test_pmi_in_flux_jobs(make_instance):
    inst = make_instance(size=2)
    res = inst.flux("run", "-n3", "-N2", FLUX, "pmi", "exchange", "--count=2")
    lines = res.stdout.splitlines()
    assert len(lines) == 2, res.stdout
    for line in lines:
        label, what, n = BARRIER.fullmatch(line).groups()
        assert label.startswith("ƒ") and (what, n) == ("exchange", "3")
    res = inst.flux("run", "-n2", FLUX, "pmi", "--method=simple", "barrier", "--test-count=3")
    assert [BARRIER.fullmatch(x).group(2, 3) for x in res.stdout.splitlines()] == [("barrier", "2")] * 3
    res = inst.flux("run", "-n2", FLUX, "pmi", "--method=single", "barrier")
    assert [BARRIER.fullmatch(x).group(3) for x in res.stdout.splitlines()] == ["1", "1"]  # two singletons


@pytest.mark.skipif(shutil.which("mpiexec.hydra") is None, reason="MPICH's mpiexec.hydra is not installed")
def test_pmi_under_hydra():
    env = {"PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
    res = subprocess.run(["mpiexec.hydra", "-n", "2", FLUX, "pmi", "-v", "barrier"], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, **env))
    assert res.returncode == 0, res.stderr
    assert BARRIER.fullmatch(res.stdout.strip()).groups() == ("0", "barrier", "2")
    assert "simple: initialize: rank=1 size=2" in res.stderr
    res = subprocess.run(["mpiexec.hydra", "-n", "2", FLUX, "pmi", "get", "--ranks=all", "PMI_process_mapping"],
                         capture_output=True, text=True, timeout=60)
    values = res.stdout.splitlines()
    assert res.returncode == 0 and len(values) == 2 and values[0].startswith("(vector,"), res


def test_pmi_bad_input():
    res = flux("pmi", "--method=bogus", "barrier")
    assert res.returncode == 1
    _one_line_error(res, "flux-pmi: --method=bogus: unknown PMI method")
    res = flux("pmi", "--method=simple", "barrier")  # no launcher: PMI_FD is not set
    assert res.returncode == 1
    _one_line_error(res, "flux-pmi: no PMI method applied")
    res = flux("pmi", "get", "--ranks=zz", "k")
    assert res.returncode == 1
    _one_line_error(res, "flux-pmi: could not decode --ranks argument")
    res = flux("pmi", "get", "nokey")
    assert res.returncode == 1
    _one_line_error(res, "flux-pmi: get nokey: ")
    res = flux("pmi")
    assert res.returncode == 2
