"""The broker log: ``flux dmesg`` (-C, -c, -f, -n, -H, -d, -L), ``flux logger``, and
the attributes that route entries: log-level, log-stderr-level, log-stderr-mode
(leader / local), log-forward-level, log-filename, log-ring-size."""

import re
import subprocess
import time

import pytest

from flux_launch.testing import poll

pytestmark = pytest.mark.e2e
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z"


def test_logger_and_dmesg(make_instance):
    inst = make_instance(size=2)
    inst.flux("logger", "hello", "there")
    inst.flux("logger", "-s", "err", "-n", "myapp", "oops")
    lines = inst.flux("dmesg").stdout.splitlines()
    assert re.fullmatch(ISO + r" logger\.notice\[0\]: hello there", lines[-2]), lines
    assert re.fullmatch(ISO + r" myapp\.err\[0\]: oops", lines[-1]), lines
    assert "flux-broker[0]: ERROR: myapp: oops" in inst.log()  # err <= log-stderr-level 4
    human = inst.flux("dmesg", "-H").stdout.splitlines()
    assert re.fullmatch(r"\[[A-Z][a-z]{2}\d\d \d\d:\d\d\] .*", human[0]), human
    assert any(re.fullmatch(r"\[ *\+\d+\.\d{6}\] myapp\.err\[0\]: oops", line) for line in human[1:]), human
    colored = inst.flux("dmesg", "-L").stdout
    assert "\033[33mmyapp.err[0]\033[0m" in colored and "\033[31moops\033[0m" in colored
    assert "\033[" not in inst.flux("dmesg").stdout  # auto: not a terminal


def test_broker_messages_enter_the_log(make_instance):
    import os
    import signal

    inst = make_instance(size=2)
    os.kill(inst.broker_pids()[1], signal.SIGKILL)
    assert poll(lambda: "lost" in inst.flux("overlay", "status").stdout)
    out = inst.flux("dmesg").stdout
    assert re.search(ISO + r" overlay\.err\[0\]: rank 1 lost: ", out), out


def test_follower_entries_are_forwarded_to_the_leader(make_instance):
    inst = make_instance(size=2)
    inst.flux("exec", "-r", "1", "flux", "logger", "-s", "err", "from-one")
    inst.flux("exec", "-r", "1", "flux", "logger", "-s", "info", "info-one")
    assert poll(lambda: "logger.err[1]: from-one" in inst.flux("dmesg").stdout)
    leader = inst.flux("dmesg").stdout
    assert "info-one" not in leader  # info > log-forward-level 3: only in rank 1's ring
    own = inst.flux("exec", "-r", "1", "flux", "dmesg").stdout
    assert "logger.err[1]: from-one" in own and "logger.info[1]: info-one" in own


def test_clear_and_read_clear(make_instance):
    inst = make_instance()
    inst.flux("logger", "one")
    assert "one" in inst.flux("dmesg", "-c").stdout
    assert inst.flux("dmesg").stdout == ""
    inst.flux("logger", "two")
    assert inst.flux("dmesg", "-C").stdout == ""
    assert inst.flux("dmesg").stdout == ""


def test_follow_and_new(make_instance):
    inst = make_instance()
    inst.flux("logger", "old")
    p = subprocess.Popen(["flux", "dmesg", "-f", "-n"], env=inst.env, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        inst.flux("logger", "fresh")
        line = p.stdout.readline()
    finally:
        p.kill()
        p.communicate()
    assert line.endswith("logger.notice[0]: fresh\n"), line


def test_log_levels_and_file(make_instance, tmp_path):
    path = tmp_path / "broker.log"
    inst = make_instance(size=2, attrs={"log-level": "6", "log-stderr-level": "2", "log-filename": str(path),
                                        "log-ring-size": "3"})
    inst.flux("logger", "-s", "debug", "dropped")  # over log-level
    inst.flux("logger", "-s", "err", "quiet")  # under log-level, over log-stderr-level
    for i in range(4):
        inst.flux("logger", f"n{i}")
    out = inst.flux("dmesg").stdout.splitlines()
    assert [line.rsplit(": ", 1)[1] for line in out] == ["n1", "n2", "n3"], out  # a ring of 3
    assert "quiet" not in inst.log() and "dropped" not in inst.log()
    text = path.read_text()
    assert "logger.err[0]: quiet" in text and "dropped" not in text and "n3" in text


def test_local_stderr_mode(make_instance):
    inst = make_instance(size=2, attrs={"log-stderr-mode": "local"})
    inst.flux("exec", "-r", "1", "flux", "logger", "-s", "err", "from-one")
    assert poll(lambda: "flux-broker[1]: ERROR: logger: from-one" in inst.log())
    assert inst.log().count("from-one") == 1


@pytest.mark.parametrize("args,expect", [
    (["logger", "-s", "bogus", "x"], "flux-logger: unknown severity 'bogus'"),
    (["logger", "-s", "9", "x"], "flux-logger: severity 9 is out of range 0-7"),
    (["dmesg", "--color=sometimes"], "flux-dmesg: Invalid argument to --color: 'sometimes'"),
    (["dmesg", "-d"], "flux-dmesg: --delta can only be used with --human"),
])
def test_bad_input(make_instance, args, expect):
    inst = make_instance()
    r = inst.flux(*args, check=False)
    assert r.returncode == 1 and r.stderr.strip() == expect or r.stderr.startswith(expect), r.stderr


@pytest.mark.parametrize("attr,expect", [
    ("log-stderr-mode=bad", "log-stderr-mode='bad': expected leader or local"),
    ("log-level=x", "log-level='x': expected an integer"),
    ("log-ring-size=-1", "log-ring-size=-1: expected 0 or more"),
])
def test_bad_log_attributes(attr, expect):
    from flux_launch.testing import flux

    r = flux("start", f"-S{attr}", "true", timeout=30)
    assert r.returncode == 1 and r.stderr.strip() == f"flux-start: {expect}", r.stderr
