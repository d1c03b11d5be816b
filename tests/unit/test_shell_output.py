"""The output plugin against a fake shell: the entries it commits (header,
redirect, data, eof, log), the exec events it carries, line buffering, base64,
the batch timer, flow control, the output limit and --output files."""

import errno
import json
import os

import pytest

from flux_launch.shell.plugins import output
from flux_launch.shell.plugstack import PluginError

from test_shell_plugins import FakeShell, start  # the fake shell of the plugin tests


def _entries(rpc):
    """The output eventlog entries of one commit, decoded."""
    return [json.loads(line) for line in rpc.payload.get("raw", [])]


def _commits(shell):
    return [r for r in shell.rpcs if r.topic == "kvs.commit"]


def _write(shell, task, data, stream="stdout"):
    """The task writes ``data``; the loop reads what the pipe holds."""
    w = task.stdout_fd if stream == "stdout" else task.stderr_fd
    r = next(fd for fd, s in shell.aux_get("output").streams.items() if s.task is task and s.name == stream)
    if data is None:
        os.close(w)
    else:
        os.write(w, data)
    shell.ready(r)


def _flush(shell):
    """The batch delay expires."""
    (t,) = shell.timers
    t.fire()
    return _commits(shell)[-1]


def test_leader_writes_the_header_then_data_and_eof():
    shell = FakeShell(counts=(1,))
    _, (task,) = start(shell, output.plugin)
    assert shell.refs == {output.REF: 2}  # the loop runs while both pipes are open
    _write(shell, task, b"hello\n")
    _write(shell, task, b"oops", stream="stderr")
    _write(shell, task, None)
    _write(shell, task, None, stream="stderr")
    assert shell.refs == {}
    commit = _flush(shell)
    assert commit.payload["ops"][0] == {"op": "append", "key": f"{shell.jobid.kvs}.guest.output", "raw": True,
                                        "limit": output.parse_size(output.DEFAULT_LIMIT), "count": 10}
    got = [(e["name"], e["context"]) for e in _entries(commit)]
    assert got == [
        ("header", {"version": 1, "encoding": {"stdout": "UTF-8", "stderr": "UTF-8"},
                    "count": {"stdout": 1, "stderr": 1}, "options": {}}),
        ("data", {"stream": "stdout", "rank": "0", "data": "hello\n"}),
        ("data", {"stream": "stderr", "rank": "0", "data": "oops"}),
        ("data", {"stream": "stdout", "rank": "0", "eof": True}),
        ("data", {"stream": "stderr", "rank": "0", "eof": True}),
    ]


def test_other_shells_write_no_header():
    shell = FakeShell(counts=(1, 1), node_index=1)
    start(shell, output.plugin)
    assert not shell.timers and not shell.rpcs


def test_stdout_is_line_buffered_stderr_is_not():
    shell = FakeShell(counts=(1,))
    _, (task,) = start(shell, output.plugin)
    _write(shell, task, b"one\ntw")
    _write(shell, task, b"o\nthree")
    _write(shell, task, b"er", stream="stderr")
    _write(shell, task, None)
    data = [e["context"].get("data") for e in _entries(_flush(shell)) if e["name"] == "data"]
    assert data == ["one\n", "two\n", "er", "three", None]


def test_unbuffered_stdout_option():
    shell = FakeShell(counts=(1,), options={"output": {"stdout": {"buffer": {"type": "none"}}}})
    _, (task,) = start(shell, output.plugin)
    _write(shell, task, b"no newline")
    assert [e["context"]["data"] for e in _entries(_flush(shell))[1:]] == ["no newline"]


def test_bytes_that_are_not_utf8_go_as_base64():
    shell = FakeShell(counts=(1,))
    _, (task,) = start(shell, output.plugin)
    _write(shell, task, b"\xff\xfe\n")
    (ctx,) = [e["context"] for e in _entries(_flush(shell)) if e["name"] == "data"]
    assert ctx == {"stream": "stdout", "rank": "0", "data": "//4K", "encoding": "base64"}


def test_a_utf8_character_cut_by_a_read_waits_for_its_end():
    shell = FakeShell(counts=(1,), options={"output": {"stdout": {"buffer": {"type": "none"}}}})
    _, (task,) = start(shell, output.plugin)
    _write(shell, task, "é".encode()[:1])
    _write(shell, task, "é".encode()[1:])
    assert [e["context"]["data"] for e in _entries(_flush(shell))[1:]] == ["é"]


def test_log_sink_and_exec_events():
    shell = FakeShell(counts=(1,))
    start(shell, output.plugin)
    shell.log("WARN", "careful")
    shell.emit_event("shell.start", {"taskmap": {}})
    commit = _flush(shell)
    log = _entries(commit)[-1]
    assert (log["name"], log["context"]) == ("log", {"level": 4, "message": "careful", "rank": 0,
                                                     "component": "shell"})
    exec_op = commit.payload["ops"][-1]
    assert exec_op["key"] == f"{shell.jobid.kvs}.guest.exec.eventlog"
    ev = json.loads(exec_op["value"])
    assert (ev["name"], ev["context"]) == ("shell.start", {"taskmap": {}})


def test_the_sinks_flush_pushes_out_what_is_pending():
    shell = FakeShell(counts=(1,))
    start(shell, output.plugin)
    shell.log("FATAL", "bye")
    (_log, flush), = shell.sinks
    flush()
    assert len(_commits(shell)) == 1 and not shell.timers  # the batch timer is cancelled


def test_batch_timer_is_the_batch_timeout():
    shell = FakeShell(counts=(1,), options={"output": {"batch-timeout": 0.25}})
    start(shell, output.plugin)
    assert [t.after for t in shell.timers] == [0.25]


def test_a_full_batch_is_sent_at_once():
    shell = FakeShell(counts=(1,), options={"output": {"stdout": {"buffer": {"type": "none"}}}})
    _, (task,) = start(shell, output.plugin)
    chunk = b"x" * (1 << 16)
    while not _commits(shell):
        _write(shell, task, chunk)
    assert sum(len(line) for line in _commits(shell)[0].payload["raw"]) >= output.BATCH_BYTES
    assert not shell.timers


def test_flow_control_stops_reading_past_the_window():
    shell = FakeShell(counts=(1,), options={"output": {"stdout": {"buffer": {"type": "none"}}}})
    _, (task,) = start(shell, output.plugin)
    fds = set(shell.fds)
    for _ in range(output.WINDOW):
        assert set(shell.fds) == fds
        _write(shell, task, b"x")
        _flush(shell)
    assert not shell.fds  # task pipes are not read until the broker answers
    _commits(shell)[0].then({})
    assert set(shell.fds) == fds
    _write(shell, task, b"y")
    _flush(shell)
    assert not shell.fds
    _commits(shell)[1].error(OSError(errno.EIO, "I/O error"))  # a failed commit frees its place too
    assert set(shell.fds) == fds
    assert shell.rpc_errors == [("kvs.commit", errno.EIO)]


def test_output_limit_truncates_and_the_kvs_says_when_the_job_is_full():
    shell = FakeShell(counts=(1,), options={"output": {"limit": "4"}})
    _, (task,) = start(shell, output.plugin)
    _write(shell, task, b"123456\n")
    _write(shell, task, b"more\n")
    commit = _flush(shell)
    op = commit.payload["ops"][0]
    assert (op["limit"], op["count"], op["full"]) == (4, 4, True)
    assert [e["context"]["data"] for e in _entries(commit)[1:]] == ["1234"]
    commit.then({"first_full": True})
    assert shell.logs[-1][0] == "WARN" and "output limit of 4 bytes exceeded" in shell.logs[-1][1]
    assert _entries(_commits(shell)[-1])[-1]["name"] == "log"  # sent at once


def test_output_files_with_labels(tmp_path):
    path = tmp_path / "out-{{taskid}}.txt"
    shell = FakeShell(counts=(2,), options={"output": {"stdout": {"type": "file", "path": str(path),
                                                                  "label": True}}})
    _, tasks = start(shell, output.plugin)
    for t in tasks:
        _write(shell, t, f"from {t.id}\npartial".encode())
        _write(shell, t, None)
    assert (tmp_path / "out-0.txt").read_text() == "0: from 0\n0: partial\n"
    assert (tmp_path / "out-1.txt").read_text() == "1: from 1\n1: partial\n"
    redirects = [e["context"] for e in _entries(_flush(shell)) if e["name"] == "redirect"]
    assert [r["rank"] for r in redirects] == ["0", "1"]


def test_output_file_that_cannot_be_opened_fails_the_shell(tmp_path):
    shell = FakeShell(counts=(1,), options={"output": {"stderr": {"type": "file",
                                                                  "path": str(tmp_path / "no" / "f")}}})
    with pytest.raises(PluginError, match=r"^plugin 'output': shell.init failed: cannot open the output file "):
        start(shell, output.plugin)


def test_pipes_closed_after_spawn_and_read_ends_at_finish():
    shell = FakeShell(counts=(1,))
    stack, (task,) = start(shell, output.plugin)
    w = task.stdout_fd
    for fn in task.after_spawn:
        fn()
    with pytest.raises(OSError):
        os.fstat(w)
    for fd in list(shell.fds):
        shell.ready(fd)  # EOF: the shell held the only write ends
    assert not shell.fds and not shell.refs
    stack.call("shell.finish", shell)
    assert len(_commits(shell)) == 1 and not shell.timers


def test_a_log_in_a_counted_batch_goes_in_its_own_uncounted_commit():
    """A batch of task output counts against output.limit and is dropped whole past
    it: a shell message in it (the limit's own warning among them) is committed on
    its own first, without a count, so it is never dropped."""
    shell = FakeShell(counts=(1,))
    _, (task,) = start(shell, output.plugin)
    _write(shell, task, b"data line\n")
    shell.log("WARN", "output limit exceeded")
    (t,) = shell.timers
    t.fire()
    log_commit, data_commit = _commits(shell)[-2:]
    assert [e["name"] for e in _entries(log_commit)] == ["log"]
    assert "limit" not in log_commit.payload["ops"][0]
    assert [e["name"] for e in _entries(data_commit)] == ["header", "data"]
    assert data_commit.payload["ops"][0]["limit"]
