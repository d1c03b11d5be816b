"""output: task stdout/stderr into the job's output eventlog (RFC 24).

Topics: ``shell.init`` (the leader shell writes the ``header``), task pipes are
read by the shell loop; ``shell.finish`` flushes. Entries are ``data`` events
``{stream, rank, data}`` (``encoding: base64`` for bytes that are not UTF-8),
``{stream, rank, eof: true}`` at the end of a stream, and ``log`` events for the
shell's own messages. Entries are batched: a commit when 1 MiB is pending or
5 ms after the first pending entry, and at the end; the shell waits for every
commit before it exits, so nothing a task wrote is lost, even if it then dies.
"""

import base64
import json
import os
import selectors
import time

from flux_launch.proto.shellopts import parse_size
from flux_launch.shell.plugstack import Plugin

BATCH_BYTES = 1024 * 1024
# Like flux-core's single-user default: past this much, a job's output is dropped
# (with one message) instead of overloading the instance's KVS.
DEFAULT_LIMIT = "1G"

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
        self.files = {}  # (stream, taskid) -> fd of its output file (--output/--error)
        spec = shell.options.get("output") if isinstance(shell.options.get("output"), dict) else {}
        self.limit = parse_size(spec.get("limit", DEFAULT_LIMIT))
        self.forwarded = 0
        self.truncated = False
        self._open_files()
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

    def _open_files(self):
        """Open the files of ``--output``/``--error`` for this node's tasks. A template
        with ``{{taskid}}`` or ``{{node.id}}`` names this shell's own files (truncated);
        a job-wide one is shared by every shell (appended to).

        Raises:
            RuntimeError: a file cannot be opened (the message names it).
        """
        shell = self.shell
        spec = shell.options.get("output") or {}
        if not isinstance(spec, dict):
            return
        opened = {}
        for stream in ("stdout", "stderr"):
            entry = spec.get(stream)
            if not isinstance(entry, dict) or entry.get("type") != "file" or not entry.get("path"):
                continue
            template = entry["path"]
            own = "{{taskid}}" in template or "{{node.id}}" in template or "{{node.name}}" in template
            for taskid in shell.taskmap.local(shell.rank):
                path = expand(template, shell, taskid)
                if not os.path.isabs(path) and shell.cwd:
                    path = os.path.join(shell.cwd, path)
                fd = opened.get(path)
                if fd is None:
                    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if own else os.O_APPEND)
                    try:
                        fd = opened[path] = os.open(path, flags, 0o644)
                    except OSError as exc:
                        raise RuntimeError(f"cannot open the output file {path}: {exc.strerror}") from None
                self.files[(stream, taskid)] = fd
                self.add(_entry("redirect", {"stream": stream, "rank": str(taskid), "path": path}))

    def close_files(self):
        for fd in set(self.files.values()):
            os.close(fd)
        self.files.clear()

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
                data = os.read(fd, 1 << 18)
            except BlockingIOError:
                return
            if data:
                fd_out = self.files.get((stream, task.id))
                if fd_out is not None:
                    while data:
                        data = data[os.write(fd_out, data):]
                    return
                room = self.limit - self.forwarded
                if len(data) > room:
                    data = data[:room]
                    if not self.truncated:
                        self.truncated = True
                        self.shell.log("WARN", f"output limit of {self.limit} bytes exceeded: "
                                       "the rest of the job's output is dropped (-o output.limit=SIZE)")
                    if not data:
                        return
                self.forwarded += len(data)
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


def expand(template, shell, taskid):
    """``--output`` template: ``{{id}}`` (and ``.f58 .dec .hex .dothex .words``),
    ``{{jobid}}``, ``{{name}}``, ``{{node.id}}``, ``{{node.name}}``, ``{{taskid}}``."""
    jobid = shell.jobid
    values = {"id": str(jobid), "jobid": str(jobid), "name": _job_name(shell), "taskid": str(taskid),
              "node.id": str(shell.node_index), "node.name": os.uname().nodename}
    for enc in ("f58", "dec", "hex", "dothex", "words"):
        values[f"id.{enc}"] = jobid.encode(enc)
    out = template
    for key, value in values.items():
        out = out.replace("{{" + key + "}}", value)
    return out


def _job_name(shell):
    system = shell.jobspec.get("attributes", {}).get("system", {})
    name = (system.get("job") or {}).get("name")
    return name or (os.path.basename(shell.command[0]) if shell.command else "job")


def _init(shell, _task):
    shell.output = Output(shell)


def _finish(shell, _task):
    shell.output.flush()
    shell.output.close_files()


plugin = Plugin("output", {"shell.init": _init, "shell.finish": _finish})
