"""Attach to a job: print its output as it arrives, forward stdin and signals,
and return its exit code (shared by ``flux run`` and ``flux job attach``).

The job's main eventlog and its output eventlog are watched on one connection.
Output is printed as it comes (``-l``: whole lines prefixed ``RANK: ``); shell
messages go to stderr as ``flux-shell[N]: LEVEL: text``; a fatal exception is
reported as ``flux-CMD: job ID: TYPE: NOTE``. The attach ends when the job is
inactive (``clean``); as flux-core's attach, it exits with the job's exit code,
or 1 when the job ended with a fatal exception and its tasks exited 0 (or it
never finished).

Signals: once the job runs, as flux-core's attach, SIGTERM, SIGHUP, SIGALRM,
SIGUSR1 and SIGUSR2 go to its tasks; a first Ctrl-C only warns and a second
within 2 s cancels the job. While it is pending (no ``start`` yet), SIGINT,
SIGTERM and SIGHUP cancel it at once (a second one exits without waiting): a
deliberate difference from flux-core, whose attach forwards them to a job that
has no tasks yet, so that ``timeout 5 flux run ...`` on a full instance hung.
"""

import _signal as signal  # the C module: signal.py only adds enums, and importing enum costs ~1.5 ms
import errno
import os
import select
import sys
import time

from flux_launch.client.handle import STREAMING
from flux_launch.proto import fastjson
from flux_launch.proto.eventlog import EventlogParser

LEVELS = {0: "EMERG", 1: "ALERT", 2: "FATAL", 3: "ERROR", 4: "WARN", 5: "NOTICE", 6: "INFO", 7: "DEBUG", 8: "TRACE"}


def attach(h, jobid, cmd="job", label=False, stdin=False):
    """Follow job ``jobid`` to its end; returns the exit code for the command.

    Raises:
        OSError: no such job.
    """
    jid = int(jobid)
    main = h.rpc("job-info.eventlog-watch", {"id": jid, "path": "eventlog"}, flags=STREAMING)
    output = h.rpc("job-info.eventlog-watch", {"id": jid, "path": "guest.output", "raw": True}, flags=STREAMING)
    main_lines, out_lines = EventlogParser(), _BytesParser()
    partial = {}
    sinks = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
    status = None
    exception = None
    done = False
    sel = _Poller()
    sel.register(h.fileno(), "broker")
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    os.set_blocking(wfd, False)
    old_fd = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)
    old = {sig: signal.signal(sig, lambda *_: None) for sig in CAUGHT}
    sel.register(rfd, "signal")
    last_int = 0.0
    started = False  # the job's start event came: signals go to its tasks
    cancelled = False
    ranks = "all" if stdin is True else stdin  # the idset of the tasks that get stdin
    if stdin:
        _start_input(h, jid, sel, ranks)
    try:
        while not done:
            for fd, what in sel.select():
                if what == "signal":
                    for sig in os.read(rfd, 64):
                        if not started and exception is None and sig in CANCELS:
                            if cancelled:  # a second signal: do not wait for the clean event
                                return 1
                            cancelled = True
                            sys.stderr.write(f"flux-{cmd}: cancelling pending job {jobid}\n")
                            _cancel(h, jid, f"interrupted by {_NAMES.get(sig, sig)}")
                        elif sig == signal.SIGINT:
                            now = time.monotonic()
                            if now - last_int < 2.0:
                                sys.stderr.write(f"flux-{cmd}: cancelling job {jobid}\n")
                                _cancel(h, jid, "interrupted by Ctrl-C")
                            else:
                                last_int = now
                                sys.stderr.write(f"flux-{cmd}: one more Ctrl-C within 2s cancels the job\n")
                        elif started and exception is None:
                            h.rpc("job-manager.kill", {"id": jid, "signum": sig}, flags=2)
                    continue
                if what == "stdin":
                    _forward_input(h, jid, sel, fd, ranks)
                    continue
                try:
                    h._recv_one(None)
                except ConnectionError as exc:
                    sys.stderr.write(f"flux-{cmd}: {exc}\n")
                    return 1
            _print_output(output, out_lines, partial, sinks, label)
            while main._queue:
                try:
                    value = main.get()["value"]
                except OSError as exc:
                    if exc.errno == errno.ENOENT:
                        raise
                    done = True
                    break
                for ev in main_lines.feed(value):
                    name = ev.get("name")
                    ctx = ev.get("context") or {}
                    if name == "exception" and ctx.get("severity", 0) == 0 and exception is None:
                        exception = ctx
                        note = f": {ctx['note']}" if ctx.get("note") else ""
                        sys.stderr.write(f"flux-{cmd}: job {jobid} {ctx.get('type')}{note}\n")
                    elif name == "start":
                        started = True
                    elif name == "finish":
                        status = ctx.get("status", 0)
                    elif name == "clean":
                        done = True
        if not _output_complete(partial) and not output.done:
            # The job is over, so its output is complete in the KVS, but the watch may
            # be behind (flow control, or it answers after the main one): cancelling it
            # makes the KVS send everything it holds, then end the stream.
            h.rpc("job-info.eventlog-watch-cancel", {"id": jid, "matchtag": output.matchtag}, flags=2)
            while not output.done:
                h._recv_one(None)
                _print_output(output, out_lines, partial, sinks, label)
        for key, tail in list(partial.items()):  # streams that never got their eof (a shell died)
            if isinstance(key, tuple) and tail:
                sinks.get(key[1], sys.stdout.buffer).write(f"{key[0]}: ".encode() + tail + b"\n" if label else tail)
    finally:
        signal.set_wakeup_fd(old_fd)
        for sig, handler in old.items():
            signal.signal(sig, handler)
        os.close(rfd)
        os.close(wfd)
        sys.stdout.flush()
        sys.stderr.flush()
    if status is None:  # it never ran to its finish
        return 1
    if status & 0x7F:
        return 128 + (status & 0x7F)
    return (status >> 8) & 0xFF or (1 if exception else 0)


# Signals attach catches: SIGINT warns or cancels; the others go to the running
# job's tasks (as flux-core's attach); CANCELS cancel a pending job (unlike it).
CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM, signal.SIGUSR1, signal.SIGUSR2)
CANCELS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


def _cancel(h, jid, note):
    h.rpc("job-manager.raise", {"id": jid, "type": "cancel", "severity": 0, "note": note}, flags=2)


class _Poller:
    """Waits for input on file descriptors, each with its tag. poll, not selectors:
    selectors imports collections (~2 ms of every flux run), and its epoll refuses
    regular files, such as a stdin redirected from one."""

    def __init__(self):
        self._poll = select.poll()
        self._tags = {}

    def register(self, fd, tag):
        self._poll.register(fd, select.POLLIN)
        self._tags[fd] = tag

    def unregister(self, fd):
        self._poll.unregister(fd)
        del self._tags[fd]

    def select(self):
        """``(fd, tag)`` of each descriptor that is readable, at its end or in error."""
        return [(fd, self._tags[fd]) for fd, _ in self._poll.poll()]


def _output_complete(state):
    """True once the header and an eof for every task's stdout and stderr arrived."""
    count = state.get("_count")
    return count is not None and state.get("_eofs", 0) >= 2 * count


# A data entry as the shells write it:
#   {"timestamp":NUMBER,"name":"data","context":{"stream":"stdout|stderr","rank":"DIGITS","data":"...
# anything else is decoded with json.
_TS = b'{"timestamp":'
_NAME = b',"name":"data","context":{"stream":"'
_RANK = b'","rank":"'
_DATA = b'","data":"'


def _data_head(buf, start, end):
    """``(stream, rank, offset of the data)`` when the line ``buf[start:end]`` (``end``:
    its newline, which no part of the head can match) opens a data entry the way the
    shells write them, else None."""
    if not buf.startswith(_TS, start):
        return None
    ts = start + len(_TS)
    comma = buf.find(b",", ts, end)  # the end of the timestamp
    if comma <= ts or buf[ts:comma].strip(b"-+.0123456789eE") or not buf.startswith(_NAME, comma):
        return None
    i = comma + len(_NAME)
    if buf.startswith(b"stdout", i):
        stream = "stdout"
    elif buf.startswith(b"stderr", i):
        stream = "stderr"
    else:
        return None
    if not buf.startswith(_RANK, i + 6):
        return None
    i += 6 + len(_RANK)
    quote = buf.find(b'"', i, end)
    if quote <= i or not buf[i:quote].isdigit() or not buf.startswith(_DATA, quote):
        return None
    return stream, buf[i:quote].decode(), quote + len(_DATA)


class _BytesParser:
    """Output eventlog entries from chunks of UTF-8 bytes split anywhere.

    ``feed(chunk)`` yields ``(stream, rank, data)`` for data entries written the way
    the shells write them (the data unescaped by the C accelerator, no dict, no
    str), and ``(None, None, entry)`` for every other entry (decoded with json).
    """

    def __init__(self):
        self._buf = b""
        from flux_launch._accel import json_unescape

        self._unescape = json_unescape

    def feed(self, data):
        buf = self._buf + data if self._buf else data
        find = buf.find
        unescape = self._unescape
        view = memoryview(buf)
        pos = 0
        try:
            while True:
                nl = find(b"\n", pos)
                if nl < 0:
                    break
                start, pos = pos, nl + 1
                if nl == start:
                    continue
                head = _data_head(buf, start, nl)
                if head is not None and buf[nl - 3:nl] == b'"}}' and head[2] <= nl - 3:
                    text = unescape(view[head[2]:nl - 3])
                    if text is not None:
                        yield head[0], head[1], text
                        continue
                yield None, None, fastjson.loads(buf[start:nl])
        finally:
            view.release()
            self._buf = buf[pos:]


def _print_output(output, out_lines, partial, sinks, label):
    """Print the output eventlog entries received so far (RFC 24); ``partial``
    holds partial lines per task stream (so that tasks' lines never splice), and
    the header's task count and eofs seen."""
    from flux_launch._accel import label_flush, label_lines

    dirty = set()
    while output._queue:
        try:
            chunk = output.get()["raw"]
        except OSError:
            break
        for stream, rank, ev in out_lines.feed(chunk):
            if stream is not None:
                data, eof = ev, False
            else:
                ctx = ev.get("context") or {}
                name = ev.get("name")
                if name == "header":
                    partial["_count"] = (ctx.get("count") or {}).get("stdout", 0)
                    continue
                if name == "log":
                    level = LEVELS.get(ctx.get("level", 3), "ERROR")
                    for sink in dirty:
                        sink.flush()
                    dirty.clear()
                    sys.stderr.write(f"flux-shell[{ctx.get('rank', 0)}]: {level}: {ctx.get('message')}\n")
                    sys.stderr.flush()
                    continue
                if name != "data":
                    continue
                stream, rank = ctx.get("stream", "stdout"), ctx.get("rank")
                data = ctx.get("data")
                if data is not None and ctx.get("encoding") == "base64":
                    import base64

                    data = base64.b64decode(data)
                elif data is not None:
                    data = data.encode()
                eof = ctx.get("eof")
            sink = sinks.get(stream, sys.stdout.buffer)
            k = (rank, stream)
            prefix = f"{rank}: ".encode() if label else b""  # whole lines only, labelled or not
            if data:
                data, partial[k] = label_lines(prefix, data, partial.get(k, b""))
                if data:
                    sink.write(data)
                    dirty.add(sink)
            if eof:
                partial["_eofs"] = partial.get("_eofs", 0) + 1
                tail = partial.pop(k, b"")
                if tail:  # a last line without newline: labelled, it gets one; else as it is
                    sink.write(label_flush(prefix, tail) if label else tail)
                    dirty.add(sink)
    for sink in dirty:
        sink.flush()


def _input_key(jid):
    from flux_launch.core.jobid import encode

    return f"{encode(jid, 'kvs')}.guest.input"


def _entry(name, ctx):
    return fastjson.dumps({"timestamp": time.time(), "name": name, "context": ctx}, separators=(",", ":")) + "\n"


def _start_input(h, jid, sel, ranks):
    header = _entry("header", {"version": 1, "encoding": {"stdin": "UTF-8"}, "count": {"stdin": 1},
                               "options": {}})
    h.rpc("kvs.commit", {"ops": [{"op": "append", "key": _input_key(jid), "value": header}]}, flags=2)
    try:
        fd = sys.stdin.fileno()
        sel.register(fd, "stdin")
    except (ValueError, OSError, AttributeError):
        _send_input(h, jid, b"", True, ranks)


def _forward_input(h, jid, sel, fd, ranks):
    try:
        data = os.read(fd, 65536)
    except OSError:
        data = b""
    if not data:
        sel.unregister(fd)
    _send_input(h, jid, data, not data, ranks)


def _send_input(h, jid, data, eof, ranks):
    ctx = {"stream": "stdin", "rank": ranks}
    if data:
        try:
            ctx["data"] = data.decode()
        except UnicodeDecodeError:
            import base64

            ctx["data"] = base64.b64encode(data).decode()
            ctx["encoding"] = "base64"
    if eof:
        ctx["eof"] = True
    h.rpc("kvs.commit", {"ops": [{"op": "append", "key": _input_key(jid), "value": _entry("data", ctx)}]},
          flags=2)
