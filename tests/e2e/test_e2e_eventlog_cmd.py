"""``flux job eventlog`` and ``wait-event`` as flux-core's: -f text|json,
-T raw|iso|offset|human, -H (human), -L/--color, -F/--follow, -p paths; ``flux
job info`` keys (with -o/--original, -b/--base); bad input refused in one line
with flux-core's words."""

import json
import re
import time

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def inst():
    with Instance(size=1) as inst:
        inst.done = inst.flux("submit", "sh", "-c", "echo out; sleep 0.1").stdout.strip()
        inst.flux("job", "wait-event", "-t", "30", inst.done, "clean", timeout=40)
        yield inst


def _entries(inst, jobid, *args):
    """The eventlog's entries, with their timestamps at full precision (-f json)."""
    return [json.loads(line) for line in inst.flux("job", "eventlog", "-f", "json", *args, jobid).stdout.splitlines()]


def _text(entry):
    ctx = "".join(f" {k}={json.dumps(v, separators=(',', ':'))}" for k, v in entry.get("context", {}).items())
    return f"{entry['name']}{ctx}"


def _one_line_error(r, text):
    assert r.returncode == 1 and r.stdout == "", r
    assert r.stderr.count("\n") == 1 and text in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_text_and_json_formats(inst):
    entries = _entries(inst, inst.done)
    assert [e["name"] for e in entries][:2] == ["submit", "validate"] and entries[-1]["name"] == "clean", entries
    raw = inst.flux("job", "eventlog", inst.done).stdout.splitlines()
    assert raw == [f"{e['timestamp']:.6f} {_text(e)}" for e in entries]
    assert inst.flux("job", "eventlog", "-f", "TEXT", "-T", "RAW", inst.done).stdout.splitlines() == raw


def test_human_times_are_a_date_per_minute_then_offsets(inst):
    entries = _entries(inst, inst.done)
    expected, minute = [], None
    for e in entries:  # flux-core: the first entry of each minute as [MonDD HH:MM], then +seconds since it
        tm = time.localtime(e["timestamp"])
        if minute is None or tm[:5] != minute[0]:
            minute = (tm[:5], e["timestamp"])
            stamp = "[%s%02d %02d:%02d]" % (time.strftime("%b", tm), tm.tm_mday, tm.tm_hour, tm.tm_min)
        else:
            stamp = "[%+11.6f]" % (e["timestamp"] - minute[1])
        expected.append(f"{stamp} {_text(e)}")
    for opts in (["-H"], ["--human"], ["-T", "human"], ["--time-format=reltime"]):
        assert inst.flux("job", "eventlog", *opts, inst.done).stdout.splitlines() == expected, opts
    assert re.match(r"^\[[A-Z][a-z]{2}\d\d \d\d:\d\d\] submit ", expected[0]), expected


def test_offset_and_iso_times(inst):
    entries = _entries(inst, inst.done)
    t0 = entries[0]["timestamp"]
    out = inst.flux("job", "eventlog", "-T", "offset", inst.done).stdout.splitlines()
    assert out == ["%f %s" % (e["timestamp"] - t0, _text(e)) for e in entries]
    assert out[0].startswith("0.000000 submit ")
    utc = inst.flux("job", "eventlog", "-T", "iso", inst.done, env={"TZ": "UTC"}).stdout.splitlines()
    first = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0)) + ".%06dZ" % int((t0 - int(t0)) * 1e6)
    assert utc[0] == f"{first} {_text(entries[0])}", utc
    ist = inst.flux("job", "eventlog", "-T", "iso", inst.done, env={"TZ": "Asia/Kolkata"}).stdout.splitlines()
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+05:30 submit ", ist[0]), ist


def test_color(inst):
    out = inst.flux("job", "eventlog", "-L", inst.done).stdout.splitlines()  # -L takes no detached WHEN
    assert out[0].startswith("\x1b[32m") and "\x1b[33msubmit\x1b[0m" in out[0], out
    assert " \x1b[34muserid\x1b[0m=\x1b[37m" in out[0], out  # numbers gray, keys blue
    assert inst.flux("job", "eventlog", "--color=always", inst.done).stdout.splitlines() == out
    assert "\x1b" not in inst.flux("job", "eventlog", "-Lnever", inst.done).stdout
    assert "\x1b" not in inst.flux("job", "eventlog", "-H", inst.done).stdout  # auto: not a terminal
    exc = inst.flux("submit", "--urgency=0", "true").stdout.strip()
    inst.flux("cancel", exc)
    inst.flux("job", "wait-event", "-t", "30", exc, "clean", timeout=40)
    lines = inst.flux("job", "eventlog", "--color", exc).stdout.splitlines()
    assert any("\x1b[1m\x1b[31mexception\x1b[0m" in line for line in lines), lines


def test_paths_and_follow(inst):
    exec_log = [e["name"] for e in _entries(inst, inst.done, "-p", "exec")]
    assert exec_log[0] == "init" and "complete" in exec_log, exec_log
    assert _entries(inst, inst.done, "-p", "guest.exec.eventlog") == _entries(inst, inst.done, "-p", "exec")
    out = _entries(inst, inst.done, "-p", "output")
    assert any(e["name"] == "data" and e["context"].get("data") == "out\n" for e in out), out
    jobid = inst.flux("submit", "sleep", "0.5").stdout.strip()
    r = inst.flux("job", "eventlog", "-F", "-T", "offset", jobid, timeout=30)  # ends after clean
    lines = r.stdout.splitlines()
    assert lines[0].startswith("0.000000 submit ") and lines[-1].endswith(" clean"), lines


def test_wait_event_formats(inst):
    entries = _entries(inst, inst.done)
    t0 = entries[0]["timestamp"]
    start = next(e for e in entries if e["name"] == "start")
    r = inst.flux("job", "wait-event", "-T", "offset", inst.done, "start")
    assert r.stdout == "%f start\n" % (start["timestamp"] - t0), r  # offsets count from the first entry
    r = inst.flux("job", "wait-event", "-f", "json", inst.done, "start")
    assert json.loads(r.stdout) == start
    _one_line_error(inst.flux("job", "wait-event", "-T", "bogus", inst.done, "start", check=False),
                    "invalid time-format type 'bogus'")


def test_job_info_keys(inst):
    jobspec = json.loads(inst.flux("job", "info", inst.done, "jobspec").stdout)
    assert jobspec["tasks"][0]["command"] == ["sh", "-c", "echo out; sleep 0.1"], jobspec
    assert json.loads(inst.flux("job", "info", "--original", inst.done, "jobspec").stdout) == jobspec
    R = json.loads(inst.flux("job", "info", inst.done, "R").stdout)
    assert R["execution"]["R_lite"], R
    assert json.loads(inst.flux("job", "info", "-b", inst.done, "R").stdout) == R
    log = inst.flux("job", "info", inst.done, "eventlog").stdout.splitlines()
    assert [json.loads(line)["name"] for line in log] == [e["name"] for e in _entries(inst, inst.done)]
    for key in ("guest.exec.eventlog", "guest.output"):  # (guest.input: only for a job that was given input here)
        assert all(json.loads(line) for line in inst.flux("job", "info", inst.done, key).stdout.splitlines()), key


@pytest.mark.parametrize("argv, text", [
    (["job", "eventlog", "-f", "yaml", "{id}"], "flux-job: invalid format type 'yaml'"),
    (["job", "eventlog", "-T", "bogus", "{id}"], "flux-job: invalid time-format type 'bogus'"),
    (["job", "eventlog", "--color=sometimes", "{id}"], "flux-job: invalid value: --color=sometimes"),
    (["job", "eventlog", "-p", "guest.bogus", "{id}"], "eventlog path guest.bogus not found"),
    (["job", "eventlog", "ƒ4fr"], "flux-job: ƒ4fr: no such job"),
    (["job", "eventlog", "-H", "ƒ4fr"], "flux-job: ƒ4fr: no such job"),
    (["job", "info", "{id}", "bogus"], "no such key 'bogus'"),
    (["job", "info", "ƒ4fr", "R"], "flux-job: ƒ4fr: no such job"),
])
def test_bad_input_is_one_line(inst, argv, text):
    _one_line_error(inst.flux(*[a.format(id=inst.done) for a in argv], check=False), text)
