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
import sys
import time

from flux_launch.client.handle import NORESPONSE, STREAMING
from flux_launch.proto import fastjson
from flux_launch.proto.eventlog import EventlogParser
from flux_launch.proto.job import exit_code, is_fatal, raise_payload
from flux_launch.proto.output import data_head_parse, entry, level_name


def attach(h, jobid, cmd="job", label=False, stdin=False, pty=False):
    """Follow job ``jobid`` to its end; returns the exit code for the command.
    ``pty``: the job's task 0 is on a pty (``-o pty.interactive``) and stdin is a
    terminal: the terminal runs raw (keys, Ctrl-C included, go to the pty as they
    are typed; the pty echoes) and output is printed as it comes, partial lines too.

    Raises:
        OSError: no such job.
    """
    if not pty:
        return _Attach(h, jobid, cmd, label, stdin).run()
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        return _Attach(h, jobid, cmd, label, stdin, whole_lines=False).run()
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


# Signals attach catches: SIGINT warns or cancels; the others go to the running
# job's tasks (as flux-core's attach); CANCELS cancel a pending job (unlike it).
CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM, signal.SIGUSR1, signal.SIGUSR2)
CANCELS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class _Attach:
    """One attach, run by the handle's reactor: the two eventlog watches' continuations,
    a signal watcher per caught signal, and stdin's fd watcher. The main eventlog's
    end (``clean``) stops the reactor; then the rest of the output is waited for."""

    def __init__(self, h, jobid, cmd, label, stdin, whole_lines=True):
        self.h = h
        self.whole_lines = whole_lines
        self.jobid = jobid
        self.jid = jid = int(jobid)
        self.cmd = cmd
        self.label = label
        self.main = h.rpc("job-info.eventlog-watch", {"id": jid, "path": "eventlog"}, flags=STREAMING)
        self.output = h.rpc("job-info.eventlog-watch", {"id": jid, "path": "guest.output", "raw": True},
                            flags=STREAMING)
        self.main_lines, self.out_lines = EventlogParser(), _BytesParser()
        self.partial = {}  # partial lines per task stream, the header's task count, eofs seen
        self.sinks = {"stdout": sys.stdout.buffer, "stderr": sys.stderr.buffer}
        self.status = None
        self.exception = None
        self.last_int = 0.0
        self.started = False  # the job's start event came: signals go to its tasks
        self.cancelled = False
        self.rc = None  # set to exit at once, without waiting for the job's end
        self.ranks = "all" if stdin is True else stdin  # the idset of the tasks that get stdin
        self.finished = False  # run() returned: later responses are stale

    def run(self):
        h = self.h
        watchers = [h.signal_watcher_create(sig, self._signal) for sig in CAUGHT]
        try:
            for w in watchers:
                w.start()
            if self.ranks:
                watchers.append(_start_input(h, self.jid, self.ranks))
            self.output.then(self._on_output)
            self.main.then(self._on_main)
            try:
                h.reactor_run()
            except ConnectionError as exc:
                sys.stderr.write(f"flux-{self.cmd}: {exc}\n")
                return 1
            if self.rc is not None:
                return self.rc
            self._finish_output()
        finally:
            self.finished = True
            for w in watchers:
                if w is not None:
                    w.stop()
            sys.stdout.flush()
            sys.stderr.flush()
        if self.status is None:  # it never ran to its finish
            return 1
        return exit_code(self.status) or (1 if self.exception else 0)

    def _stale(self, fut):
        """A response for an attach that has returned (its streams end after it: the
        ENODATA of a watch): taken and dropped, so that it neither prints nor stops
        the reactor of a later attach on the same handle (flux watch, submit --watch)."""
        if not self.finished:
            return False
        while fut.is_ready():
            try:
                fut.get()
            except OSError:
                break
        return True

    def _on_output(self, fut):
        if self._stale(fut):
            return
        _print_output(self.output, self.out_lines, self.partial, self.sinks, self.label, self.whole_lines)

    def _on_main(self, main):
        if self._stale(main):
            return
        # the output received so far goes first, as it was written before these events
        _print_output(self.output, self.out_lines, self.partial, self.sinks, self.label, self.whole_lines)
        cmd = self.cmd
        while main.is_ready():
            try:
                value = main.get()["value"]
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    raise
                self.h.reactor_stop()
                return
            for ev in self.main_lines.feed(value):
                name = ev.get("name")
                ctx = ev.get("context") or {}
                if name == "exception" and is_fatal(ctx) and self.exception is None:
                    self.exception = ctx
                    note = f": {ctx['note']}" if ctx.get("note") else ""
                    sys.stderr.write(f"flux-{cmd}: job {self.jobid} {ctx.get('type')}{note}\n")
                elif name == "start":
                    self.started = True
                elif name == "finish":
                    self.status = ctx.get("status", 0)
                elif name == "clean":
                    self.h.reactor_stop()
                    return

    def _signal(self, h, _watcher, sig, _args):
        cmd, jobid, jid = self.cmd, self.jobid, self.jid
        if not self.started and self.exception is None and sig in CANCELS:
            if self.cancelled:  # a second signal: do not wait for the clean event
                self.rc = 1
                h.reactor_stop()
                return
            self.cancelled = True
            sys.stderr.write(f"flux-{cmd}: cancelling pending job {jobid}\n")
            _cancel(h, jid, f"interrupted by {_NAMES.get(sig, sig)}")
        elif sig == signal.SIGINT:
            now = time.monotonic()
            if now - self.last_int < 2.0:
                sys.stderr.write(f"flux-{cmd}: cancelling job {jobid}\n")
                _cancel(h, jid, "interrupted by Ctrl-C")
            else:
                self.last_int = now
                sys.stderr.write(f"flux-{cmd}: one more Ctrl-C within 2s cancels the job\n")
        elif self.started and self.exception is None:
            h.rpc("job-manager.kill", {"id": jid, "signum": sig}, flags=NORESPONSE)

    def _finish_output(self):
        """Print the output still on its way, then the last lines of streams that
        never got their eof (a shell died)."""
        output, partial = self.output, self.partial
        if not _output_complete(partial) and not output.done:
            # The job is over, so its output is complete in the KVS, but the watch may
            # be behind (flow control, or it answers after the main one): cancelling it
            # makes the KVS send everything it holds, then end the stream.
            self.h.rpc("job-info.eventlog-watch-cancel", {"id": self.jid, "matchtag": output.matchtag},
                       flags=NORESPONSE)
            while not output.done:
                output.wait_for()
                _print_output(output, self.out_lines, partial, self.sinks, self.label, self.whole_lines)
        for key, tail in list(partial.items()):
            if isinstance(key, tuple) and tail:
                line = f"{key[0]}: ".encode() + tail + b"\n" if self.label else tail
                self.sinks.get(key[1], sys.stdout.buffer).write(line)


def _cancel(h, jid, note):
    h.rpc("job-manager.raise", raise_payload(jid, "cancel", note), flags=NORESPONSE)


def _output_complete(state):
    """True once the header and an eof for every task's stdout and stderr arrived."""
    count = state.get("_count")
    return count is not None and state.get("_eofs", 0) >= 2 * count


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
                head = data_head_parse(buf, start, nl)
                if head is not None and buf[nl - 3:nl] == b'"}}' and head[2] <= nl - 3:
                    text = unescape(view[head[2]:nl - 3])
                    if text is not None:
                        yield head[0], head[1], text
                        continue
                yield None, None, fastjson.loads(buf[start:nl])
        finally:
            view.release()
            self._buf = buf[pos:]


def _print_output(output, out_lines, partial, sinks, label, whole_lines=True):
    """Print the output eventlog entries received so far (RFC 24); ``partial``
    holds partial lines per task stream (so that tasks' lines never splice; not
    with ``whole_lines`` false: a pty's prompt is printed at once), and the
    header's task count and eofs seen."""
    from flux_launch._accel import label_flush, label_lines

    dirty = set()
    while output.is_ready():
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
                    level = level_name(ctx.get("level", 3))
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
            if data and not whole_lines:
                sink.write(data)
                dirty.add(sink)
            elif data:
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


def _start_input(h, jid, ranks):
    """Write the input eventlog's header and start forwarding stdin; returns the
    stdin watcher (None when there is no stdin to read: EOF is sent at once)."""
    header = entry("header", {"version": 1, "encoding": {"stdin": "UTF-8"}, "count": {"stdin": 1},
                              "options": {}}).decode()
    h.rpc("kvs.commit", {"ops": [{"op": "append", "key": _input_key(jid), "value": header}]}, flags=NORESPONSE)
    try:
        fd = sys.stdin.fileno()
    except (ValueError, OSError, AttributeError):
        _send_input(h, jid, b"", True, ranks)
        return None
    return h.fd_watcher_create(fd, _forward_input, args=(jid, ranks)).start()


def _forward_input(h, watcher, fd, _revents, args):
    jid, ranks = args
    try:
        data = os.read(fd, 65536)
    except OSError:
        data = b""
    if not data:
        watcher.stop()
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
    h.rpc("kvs.commit", {"ops": [{"op": "append", "key": _input_key(jid), "value": entry("data", ctx).decode()}]},
          flags=NORESPONSE)
