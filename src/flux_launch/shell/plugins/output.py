"""output: task stdout/stderr into the job's output eventlog (RFC 24).

Topics: ``shell.init`` (the leader shell writes the ``header``), task pipes are
read by the shell loop; ``shell.finish`` flushes. Entries are ``data`` events
``{stream, rank, data}`` (``encoding: base64`` for bytes that are not UTF-8),
``{stream, rank, eof: true}`` at the end of a stream, and ``log`` events for the
shell's own messages. Entries are batched: a commit when 64 KiB are pending or
5 ms after the first pending entry, and at the end; the shell waits for every
commit before it exits, so nothing a task wrote is lost, even if it then dies.
"""

import base64
import json
import os
import selectors
import time

from flux_launch.shell.plugstack import Plugin

BATCH_BYTES = 64 * 1024
BATCH_DELAY = 0.005
LEVELS = {"FATAL": 2, "ERROR": 3, "WARN": 4, "WARNING": 4, "INFO": 6, "DEBUG": 7, "TRACE": 8}


def _entry(name, context):
    return json.dumps({"timestamp": time.time(), "name": name, "context": context},
                      separators=(",", ":"), ensure_ascii=False) + "\n"


class Output:
    def __init__(self, shell):
        self.shell = shell
        self.key = f"{shell.jobid.kvs}.guest.output"
        self.pending = []
        self.pending_bytes = 0
        self.first_pending = None
        self.streams = 0
        if shell.leader:
            n = shell.taskmap.ntasks
            self.add(_entry("header", {"version": 1, "encoding": {"stdout": "UTF-8", "stderr": "UTF-8"},
                                       "count": {"stdout": n, "stderr": n}, "options": {}}))

    def add(self, line):
        if not self.pending:
            self.first_pending = time.monotonic()
        self.pending.append(line)
        self.pending_bytes += len(line)
        if self.pending_bytes >= BATCH_BYTES:
            self.flush()

    def task_fds(self, task):
        fds = {}
        for stream in ("stdout", "stderr"):
            r, w = os.pipe()
            os.set_blocking(r, False)
            fds[stream] = w
            self.shell.watch_fd(r, selectors.EVENT_READ, self._reader(task, stream))
            self.streams += 1
            task.open_streams += 1
        self._close_after_spawn = [fds["stdout"], fds["stderr"]]
        return fds

    def task_started(self, task, failed=False):
        for fd in self._close_after_spawn:
            os.close(fd)
        self._close_after_spawn = []

    def _reader(self, task, stream):
        def read(fd, _events):
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                return
            if data:
                ctx = {"stream": stream, "rank": str(task.id)}
                try:
                    ctx["data"] = data.decode()
                except UnicodeDecodeError:
                    ctx["data"] = base64.b64encode(data).decode()
                    ctx["encoding"] = "base64"
                self.add(_entry("data", ctx))
                return
            self.shell.unwatch_fd(fd)
            os.close(fd)
            self.streams -= 1
            task.open_streams -= 1
            self.add(_entry("data", {"stream": stream, "rank": str(task.id), "eof": True}))
        return read

    def log(self, level, text):
        self.add(_entry("log", {"level": LEVELS.get(level, 3), "message": text,
                                "rank": self.shell.node_index, "component": "shell"}))

    def open_streams(self):
        return self.streams

    def flush_timeout(self):
        if not self.pending:
            return None
        return max(0.0, self.first_pending + BATCH_DELAY - time.monotonic())

    def maybe_flush(self):
        if self.pending and time.monotonic() >= self.first_pending + BATCH_DELAY:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        value = "".join(self.pending)
        self.pending = []
        self.pending_bytes = 0
        self.shell.rpc("kvs.commit", {"ops": [{"op": "append", "key": self.key, "value": value}]})


def _init(shell, _task):
    shell.output = Output(shell)


def _finish(shell, _task):
    shell.output.flush()


plugin = Plugin("output", {"shell.init": _init, "shell.finish": _finish})
