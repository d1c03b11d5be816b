"""flux batch / flux alloc: nested instances confined to their job's resources,
with their level, parent and uri memo; directives; bad input refused at submit;
a nested instance that cannot start fails its job with an exception saying why."""

import json

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst4():
    with Instance(size=4) as inst:
        yield inst


def _script(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _wait_clean(inst, jobid):
    inst.flux("job", "wait-event", "-t", "60", jobid, "clean")


def test_batch_two_nodes_nested_context(inst4, tmp_path):
    script = _script(tmp_path, "job.sh", "#!/bin/sh\n#FLUX: -N2\n"
                     "echo level=$(flux getattr instance-level) size=$(flux getattr size)\n"
                     "flux getattr jobid\nflux resource list -n -s free\n"
                     "flux run -n4 true && echo run4-ok\necho tasks=$(flux run hostname | wc -l)\n")
    jobid = inst4.flux("batch", "--output", str(tmp_path / "out"), script).stdout.strip()
    _wait_clean(inst4, jobid)
    out = (tmp_path / "out").read_text()
    assert "level=1 size=2" in out, out
    assert jobid in out, out
    assert "run4-ok" in out, out
    assert "tasks=4" in out, out  # flux run with no options: the whole allocation
    free = [line for line in out.splitlines() if line.strip().startswith("free")][0].split()
    assert free[1:3] == ["2", "4"], out  # 2 nodes, 4 cores: the job's, not the instance's
    ev = inst4.flux("job", "eventlog", jobid).stdout
    assert 'memo uri="ssh://' in ev, ev


def test_batch_default_output_file(inst4, tmp_path):
    script = _script(tmp_path, "hi.sh", "#!/bin/sh\necho hello-from-batch\n")
    jobid = inst4.run("sh", "-c", f"cd {tmp_path} && flux batch -n1 {script}").stdout.strip()
    _wait_clean(inst4, jobid)
    assert (tmp_path / f"flux-{jobid}.out").read_text() == "hello-from-batch\n"


def test_batch_one_core_confined(inst4, tmp_path):
    script = _script(tmp_path, "c.sh", "#!/bin/sh\nflux resource list -n -s free\n")
    jobid = inst4.flux("batch", "-n1", "-c1", "--output", str(tmp_path / "o"), script).stdout.strip()
    _wait_clean(inst4, jobid)
    assert (tmp_path / "o").read_text().split()[1:3] == ["1", "1"]


@pytest.mark.parametrize("text, args, message, code", [
    ("echo no shebang\n", [], "does not appear to start with '#!'", 1),
    ("#!/bin/sh\n#FLUX: -N8\ntrue\n", [], "unsatisfiable", 1),
    ("#!/bin/sh\n#FLUX: --bogus\ntrue\n", [], "argument parsing failed at", 2),
    ("#!/bin/sh\n#FLUX: hello\ntrue\n", [], "Unknown directive: hello", 1),
    ("#!/bin/sh\n#FLUX: -N1\ntrue\n#FLUX: -n2\n", [], "orphan", 1),
    ("#!/bin/sh\ntrue\n", [], "Number of slots", 1),
])
def test_batch_bad_input_one_line(inst4, tmp_path, text, args, message, code):
    before = inst4.flux("jobs", "-a", "-n").stdout
    script = _script(tmp_path, "bad.sh", text)
    r = inst4.flux("batch", *args, script, check=False)
    assert r.returncode == code, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert message in last and last.startswith("flux-batch: "), r.stderr
    assert "Traceback" not in r.stderr
    assert inst4.flux("jobs", "-a", "-n").stdout == before  # nothing submitted


def test_command_line_overrides_directives(inst4, tmp_path):
    script = _script(tmp_path, "d.sh", "#!/bin/sh\n#FLUX: -N2 --job-name=fromdirective\ntrue\n")
    spec = json.loads(inst4.flux("batch", "--dry-run", "-N1", script).stdout)
    assert spec["resources"][0]["count"] == 1
    assert spec["attributes"]["system"]["job"]["name"] == "fromdirective"
    assert spec["tasks"][0]["command"] == ["flux", "broker", "{{tmpdir}}/script"]
    assert spec["attributes"]["system"]["files"]["script"]["data"].startswith("#!/bin/sh")


def test_nested_start_failure_raises_exception(inst4, tmp_path):
    script = _script(tmp_path, "ok.sh", "#!/bin/sh\necho hi\n")
    jobid = inst4.flux("batch", "-N1", "--output", str(tmp_path / "o"),
                       "--broker-opts=-Sjob-manager.inactive-age-limit=bogus", script).stdout.strip()
    _wait_clean(inst4, jobid)
    ev = inst4.flux("job", "eventlog", jobid).stdout
    assert "nested instance failed to start" in ev and "inactive-age-limit" in ev, ev
    assert "flux-broker: job-manager.inactive-age-limit" in (tmp_path / "o").read_text()


def test_alloc_command_and_bg(inst4):
    assert inst4.flux("alloc", "-N2", "flux", "getattr", "size").stdout.strip() == "2"
    r = inst4.flux("alloc", "-n1", input="flux getattr instance-level\n")
    assert r.stdout.strip() == "1"
    jobid = inst4.flux("alloc", "--bg", "-N1").stdout.strip()
    assert "memo" in inst4.flux("job", "eventlog", jobid).stdout
    inst4.flux("cancel", jobid)
    _wait_clean(inst4, jobid)


def test_three_levels(inst4, tmp_path):
    inner = _script(tmp_path, "inner.sh", "#!/bin/sh\nflux getattr instance-level\n")
    outer = _script(tmp_path, "outer.sh", f"#!/bin/sh\nid=$(flux batch -n1 --output={tmp_path}/inner.out {inner})"
                    " && flux job wait-event -t 30 $id clean >/dev/null\n")
    jobid = inst4.flux("batch", "-N1", "--output", str(tmp_path / "outer.out"), outer).stdout.strip()
    _wait_clean(inst4, jobid)
    assert (tmp_path / "inner.out").read_text().strip() == "2"


def _pids_of(marker):
    import os

    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if f.read().startswith(marker.encode()):  # not `flux submit sleep ...`
                    pids.append(int(pid))
        except OSError:
            pass
    return pids


def test_cancel_ends_every_level(inst4, tmp_path):
    """Cancelling a batch job ends the jobs of the instances nested two levels
    below it (a job shell that loses its broker kills its tasks, even when its
    stderr's reader is gone)."""
    import time
    import uuid

    marker = f"{uuid.uuid4().int % 10**6 + 3000}.25"  # a sleep argument no other process has
    inner = _script(tmp_path, "inner.sh", f"#!/bin/sh\nflux submit sleep {marker} >/dev/null\nsleep 300\n")
    outer = _script(tmp_path, "outer.sh",
                    f"#!/bin/sh\nflux batch -N1 --output={tmp_path}/inner.out {inner} >/dev/null\nsleep 300\n")
    jobid = inst4.flux("batch", "-N1", "--output", str(tmp_path / "outer.out"), outer).stdout.strip()
    deadline = time.monotonic() + 60
    while not _pids_of(f"sleep\0{marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _pids_of(f"sleep\0{marker}"), "the innermost job never started"
    inst4.flux("cancel", jobid)
    _wait_clean(inst4, jobid)
    deadline = time.monotonic() + 30
    while _pids_of(f"sleep\0{marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _pids_of(f"sleep\0{marker}")
    for pid in left:
        import os
        import signal

        os.kill(pid, signal.SIGKILL)
    assert not left, "a task of a job two levels down outlived the cancel of the outer batch job"


def test_cancel_batch_with_running_job_output_clean(inst4, tmp_path):
    """The SIGTERM a cancel sends to the nested broker's process group is the
    broker's to handle: its job shell fork server does not die of it (which
    wrote a broker ERROR line into the batch job's output)."""
    script = _script(tmp_path, "one.sh", "#!/bin/sh\nflux submit sleep 301 >/dev/null\n"
                     "flux job wait-event -t 30 $(flux job last) start >/dev/null && echo started\nsleep 300\n")
    jobid = inst4.flux("batch", "-N1", "--output", str(tmp_path / "one.out"), script).stdout.strip()
    out = tmp_path / "one.out"
    import time

    deadline = time.monotonic() + 30
    while "started" not in (out.read_text() if out.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    inst4.flux("cancel", jobid)
    _wait_clean(inst4, jobid)
    text = out.read_text()
    assert text == "started\n", text


def test_binding_follows_the_inner_allocation(inst4, tmp_path):
    """A task of a job in a batch job is bound to the batch job's cores, not the
    node's: with one core of two allocated, it runs on that core only."""
    blocker = inst4.flux("submit", "-N1", "-n1", "-c1", "sleep", "60").stdout.strip()
    script = _script(tmp_path, "bind.sh", "#!/bin/sh\nflux run sh -c 'grep Cpus_allowed_list /proc/self/status'\n"
                     "flux run -o cpu-affinity=per-task sh -c 'grep Cpus_allowed_list /proc/self/status'\n")
    try:
        jobid = inst4.flux("batch", "-n1", "-c1", "--output", str(tmp_path / "b.out"), script).stdout.strip()
        _wait_clean(inst4, jobid)
    finally:
        inst4.flux("cancel", blocker)
    R = json.loads(inst4.flux("job", "info", jobid, "R").stdout)
    cores = R["execution"]["R_lite"][0]["children"]["core"]
    lines = (tmp_path / "b.out").read_text().splitlines()
    assert [line.split()[-1] for line in lines] == [cores, cores], (lines, R)


def test_broker_config_path_and_flux_config_get(inst4, tmp_path):
    """--broker-opts=-c PATH: the nested instance serves its configuration and applies
    its tunables; a file that does not parse fails the job at start, saying why."""
    conf = tmp_path / "site.toml"
    conf.write_text('[job-manager]\ninactive-age-limit = "1h"\n[mysite]\nx = [1, 2]\n')
    out = inst4.flux("alloc", "-N1", f"--broker-opts=-c{conf}", "sh", "-c",
                     "flux config get mysite.x; flux getattr job-manager.inactive-age-limit; "
                     "flux config get nope; echo rc=$?").stdout
    assert out.split() == ["[1,2]", "1h", "rc=1"], out
    assert inst4.flux("config", "get").stdout.strip() == "{}"  # the root instance has none
    bad = tmp_path / "bad.toml"
    bad.write_text("x = = 1\n")
    script = _script(tmp_path, "t.sh", "#!/bin/sh\ntrue\n")
    jobid = inst4.flux("batch", "-N1", f"--broker-opts=-c{bad}", "--output", str(tmp_path / "o"),
                       script).stdout.strip()
    _wait_clean(inst4, jobid)
    assert "not valid TOML" in inst4.flux("job", "eventlog", jobid).stdout


def test_batch_output_file_is_truncated_unless_append_mode(inst4, tmp_path):
    """flux-core's output.mode: a second job with the same --output starts the file
    anew (truncate, the default); -o output.mode=append keeps what was there."""
    script = _script(tmp_path, "o.sh", "#!/bin/sh\necho $FLUX_JOB_ID\n")
    out = tmp_path / "same.out"
    ids = []
    for extra in ([], [], ["-o", "output.mode=append"]):
        ids.append(inst4.flux("batch", "-n1", "--output", str(out), *extra, script).stdout.strip())
        _wait_clean(inst4, ids[-1])
        if len(ids) == 2:
            assert out.read_text() == f"{ids[1]}\n"
    assert out.read_text() == f"{ids[1]}\n{ids[2]}\n"
    per_node = tmp_path / "node-{{node.id}}.out"  # a shell's own file, appended to as well
    for _ in range(2):
        inst4.flux("run", "-n1", "-o", "output.mode=append", "--output", str(per_node), "echo", "line")
    assert (tmp_path / "node-0.out").read_text() == "line\nline\n"
    r = inst4.flux("batch", "-n1", "-o", "output.mode=bogus", script, check=False)
    assert r.returncode == 1 and "output.mode" in r.stderr.strip().splitlines()[-1]


def test_nested_broker_killed_ends_the_job(inst4, tmp_path):
    """SIGKILL to a batch job's broker: its initial program (left holding the
    job's output) goes with it, the job ends with the signal, and the jobs of
    the nested instance are gone too."""
    import os
    import signal
    import time

    marker = f"{os.getpid() % 1000 + 4000}.5"
    pidfile = tmp_path / "bpid"
    script = _script(tmp_path, "k.sh", f"#!/bin/sh\nflux submit sleep {marker} >/dev/null\n"
                     "flux job wait-event -t 30 $(flux job last) start >/dev/null\n"
                     f"echo $PPID > {pidfile}.tmp && mv {pidfile}.tmp {pidfile}\nsleep 300\n")
    jobid = inst4.flux("batch", "-N1", "--output", str(tmp_path / "k.out"), script).stdout.strip()
    deadline = time.monotonic() + 60
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(int(pidfile.read_text()), signal.SIGKILL)
    _wait_clean(inst4, jobid)
    assert inst4.flux("jobs", "-n", "-o", "{status} {returncode}", jobid).stdout.split() == ["FAILED", "137"]
    deadline = time.monotonic() + 30
    while _pids_of(f"sleep\0{marker}") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _pids_of(f"sleep\0{marker}")
