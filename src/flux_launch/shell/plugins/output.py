"""output: task stdout/stderr into the job's output eventlog (RFC 24), or files.

Topics: ``shell.init`` (the leader shell writes the ``header``; ``--output`` files
are opened; the plugin becomes the shell's log sink and exec eventlog writer),
``task.init`` (the task's stdout and stderr pipes, read in the shell's loop, each
holding a completion reference until its end), ``shell.finish`` (the last batch).

Entries are ``data`` events ``{stream, rank, data}`` (``encoding: base64`` for
bytes that are not UTF-8), ``{stream, rank, eof: true}`` at the end of a stream,
``redirect`` for a stream sent to a file, and ``log`` events for the shell's own
messages (``flux-shell[N]: LEVEL: text`` at the front end).

The hot path, per read of up to 256 KiB from a task pipe:

- buffering: stdout is line buffered (only whole lines are sent, the rest waits
  for its newline, for EOF, or until 1 MiB of one line is pending), stderr is
  not (``-o output.{stdout,stderr}.buffer.type=line|none``, ``flux run -u``);
- the bytes are escaped into the entry's JSON string by the C accelerator (or its
  Python twin), without decoding them; a UTF-8 character cut by the read waits
  for its next bytes; bytes that are not UTF-8 go as base64;
- entries are batched and appended to ``guest.output`` as one raw attachment
  (never re-encoded as JSON by the broker): a commit when 1 MiB is pending or
  ``output.batch-timeout`` (5 ms) after the first pending entry, and at the end.

Flow control: at most ``WINDOW`` commits are in flight; past that the shell stops
reading task pipes until the broker answers, so a task that writes faster than
the instance can store blocks in ``write()`` instead of growing anyone's memory.
The shell waits for every commit before it exits: what a task wrote before it
died is never lost.

``output.limit`` (default 1G, like Flux's single-user default) truncates the job's
output with one message instead of overloading the instance. It is the job's, all
tasks on all nodes together, whichever node writes it. Shells write the KVS
directly, not through the leader, so the KVS keeps the count: each batch's append
carries the task output bytes it holds and the limit, and the KVS drops the batch
that would go past it and every later counted one (so what is kept has no hole;
the job's output ends at a batch boundary). A shell also stops at the limit by
itself, to the byte. The shell whose batch was the first dropped logs the warning.
"""

import base64
import fcntl
import os

from flux_launch.proto.output import data_entry, data_head, entry, header_context, log_context
from flux_launch.proto.shellopts import ID_ENCODINGS, parse_size
from flux_launch.shell.loop import READ
from flux_launch.shell.plugstack import Plugin

READ_SIZE = 1 << 18
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
BATCH_BYTES = 1024 * 1024
BATCH_DELAY = 0.005
WINDOW = 4  # commits in flight before the shell stops reading task output
LINE_MAX = 1024 * 1024  # a line longer than this is sent in pieces
# Like flux-core's single-user default: past this much, a job's output is dropped
# (with one message) instead of overloading the instance's KVS.
DEFAULT_LIMIT = "1G"
REF = "output"  # the completion reference of each open task pipe


class _Stream:
    """One task's stdout or stderr pipe, as the shell reads it."""

    __slots__ = ("fd", "task", "name", "rank", "line", "pending", "file", "label", "head")

    def __init__(self, fd, task, name, line, file, label):
        self.fd = fd
        self.task = task
        self.name = name
        self.rank = str(task.id)
        self.line = line  # line buffered
        self.pending = b""  # bytes read but not yet sent (a partial line or UTF-8 character)
        self.file = file  # the fd of its --output/--error file, or None
        self.label = label  # prefix lines written to the file with "RANK: "
        self.head = data_head(name, self.rank)


class Output:
    def __init__(self, shell):
        self.shell = shell
        self.key = f"{shell.jobid.kvs}.guest.output"
        self.exec_key = f"{shell.jobid.kvs}.guest.exec.eventlog"
        self.exec_pending = []  # entries for guest.exec.eventlog, sent with the next batch
        self.pending = []
        self.batch_logs = []  # the log entries of the pending batch
        self.pending_bytes = 0
        self.timer = None  # the batch delay, from the batch's first entry
        self.streams = {}  # fd -> _Stream, while open
        self.files = {}  # (stream, taskid) -> fd of its output file (--output/--error)
        spec = shell.options.get("output")
        self.spec = spec if isinstance(spec, dict) else {}
        self.limit = parse_size(self.spec.get("limit", DEFAULT_LIMIT))
        self.counted = 0  # bytes of task output in the batch being made
        self.cut = False  # this shell reached the limit: its next batch says so
        self.delay = _batch_timeout(self.spec.get("batch-timeout"))
        self.forwarded = 0
        self.truncated = False
        self.inflight = 0  # commits not yet answered
        self.paused = False
        from flux_launch._accel import select

        # the job's choice (FLUX_LAUNCH_ACCEL=c|py in its environment), else the instance's
        accel = select(shell.env.get("FLUX_LAUNCH_ACCEL") or os.environ.get("FLUX_LAUNCH_ACCEL", ""))
        self._escape = accel.json_escape
        self._label_lines = accel.label_lines
        self._label_flush = accel.label_flush
        self._open_files()
        if shell.leader:
            self.add(entry("header", header_context(shell.taskmap.ntasks)))

    # ---- setup ----------------------------------------------------------------------

    def _open_files(self):
        """Open the files of ``--output``/``--error`` for this node's tasks. A template
        with ``{{taskid}}`` or ``{{node.id}}`` names this shell's own files; a job-wide
        one is shared by every shell (appended to). A file of one shell starts empty
        unless ``output.mode=append``; a job-wide file of several shells is appended to.

        Raises:
            RuntimeError: a file cannot be opened (the message names it).
        """
        shell = self.shell
        opened = {}
        for stream in ("stdout", "stderr"):
            spec = self.spec.get(stream)
            if not isinstance(spec, dict) or spec.get("type") != "file" or not spec.get("path"):
                continue
            template = spec["path"]
            own = "{{taskid}}" in template or "{{node.id}}" in template or "{{node.name}}" in template
            for taskid in shell.taskmap.local(shell.rank):
                path = expand(template, shell, taskid)
                if not os.path.isabs(path) and shell.cwd:
                    path = os.path.join(shell.cwd, path)
                fd = opened.get(path)
                if fd is None:
                    # -o output.mode=truncate (default, as flux-core) | append. A job-wide file
                    # of a job with several shells is shared (appended to) and not truncated:
                    # another shell's task may have written it already (nothing is lost)
                    truncate = self.spec.get("mode", "truncate") != "append" and (
                        own or len(shell.taskmap.ranks) == 1)
                    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else os.O_APPEND)
                    try:
                        fd = opened[path] = os.open(path, flags, 0o644)
                    except OSError as exc:
                        raise RuntimeError(f"cannot open the output file {path}: {exc.strerror}") from None
                self.files[(stream, taskid)] = fd
                self.add(entry("redirect", {"stream": stream, "rank": str(taskid), "path": path}))

    def close_files(self):
        for fd in set(self.files.values()):
            os.close(fd)
        self.files.clear()

    def _option(self, stream, name, default):
        spec = self.spec.get(stream)
        if not isinstance(spec, dict):
            return default
        if name == "buffer":
            buf = spec.get("buffer")
            return buf.get("type", default) if isinstance(buf, dict) else default
        return spec.get(name, default)

    def task_init(self, task):
        """The task's stdout and stderr: a pipe each, read by the loop; the shell's
        ends for the task are closed once it was spawned."""
        for stream in ("stdout", "stderr"):
            r, w = os.pipe()
            os.set_blocking(r, False)
            try:  # fewer, bigger reads (and writer wake-ups) than the default 64 KiB
                fcntl.fcntl(r, F_SETPIPE_SZ, PIPE_SIZE)
            except OSError:
                pass
            if stream == "stdout":
                task.stdout_fd = w
            else:
                task.stderr_fd = w
            task.after_spawn.append(lambda w=w: os.close(w))
            line = self._option(stream, "buffer", "line" if stream == "stdout" else "none") == "line"
            s = _Stream(r, task, stream, line, self.files.get((stream, task.id)),
                        bool(self._option(stream, "label", False)))
            self.streams[r] = s
            if not self.paused:
                self.shell.watch_fd(r, READ, self._read)
            self.shell.add_completion_ref(REF)

    def use_pty(self, task, master):
        """The task's stdout (and stderr, which goes there too) is read from the
        master side of its pty instead of its pipe; unbuffered (a prompt has no
        newline). The stderr pipe stays: nothing writes it, its eof comes at once."""
        for fd, s in list(self.streams.items()):
            if s.task is task and s.name == "stdout":
                self.shell.unwatch_fd(fd)
                os.close(fd)
                del self.streams[fd]
                s.fd = master
                s.line = False
                self.streams[master] = s
                if not self.paused:
                    self.shell.watch_fd(master, READ, self._read)

    # ---- the hot path ---------------------------------------------------------------

    def _read(self, fd, _events):
        s = self.streams[fd]
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:  # EIO: a pty whose last slave side was closed
            data = b""
        if not data:
            self._eof(s)
            return
        if s.file is not None:
            self._to_file(s, data)
            return
        if s.pending:
            data = s.pending + data
            s.pending = b""
        if s.line:
            cut = data.rfind(b"\n") + 1
            if cut < len(data) and (cut or len(data) < LINE_MAX):
                s.pending = data[cut:]
                data = data[:cut]
                if not data:
                    return
        self._data(s, data)

    def _data(self, s, data, final=False):
        """Send ``data`` of stream ``s`` as one entry (or keep a cut UTF-8 character)."""
        if self.truncated:  # past the limit: the rest is dropped
            return
        room = self.limit - self.forwarded
        if len(data) > room:
            data = data[:room]
            self.truncated = self.cut = True
            if not data:
                return
        escaped, consumed, status = self._escape(data)
        if status == 1 and not final:  # a character cut by the read: wait for the rest
            s.pending = data[consumed:] + s.pending
            data = data[:consumed]
        elif status:
            escaped = None
        if not data:
            return
        self.forwarded += len(data)
        self.counted += len(data)
        if escaped is None:  # not UTF-8: base64, byte for byte
            self.add(entry("data", {"stream": s.name, "rank": s.rank,
                                    "data": base64.b64encode(data).decode(), "encoding": "base64"}))
            return
        self.add(data_entry(s.head, escaped))

    def _to_file(self, s, data, eof=False):
        """Write to the stream's file (labelled lines with ``-l``; at ``eof``, ``data``
        is the unterminated rest)."""
        if s.label:
            prefix = s.rank.encode() + b": "
            if eof:
                data = self._label_flush(prefix, data)
            else:
                data, s.pending = self._label_lines(prefix, data, s.pending)
        view = memoryview(data)
        while view:
            view = view[os.write(s.file, view):]

    def _eof(self, s):
        self.shell.unwatch_fd(s.fd)
        os.close(s.fd)
        del self.streams[s.fd]
        if s.pending:
            tail, s.pending = s.pending, b""
            if s.file is not None:
                self._to_file(s, tail, eof=True)
            else:
                self._data(s, tail, final=True)
        self.add(entry("data", {"stream": s.name, "rank": s.rank, "eof": True}))
        self.shell.remove_completion_ref(REF)

    # ---- batching and flow control --------------------------------------------------

    def _arm(self):
        """Start the batch delay with the first entry of a batch."""
        if not self.pending and not self.exec_pending:
            self.timer = self.shell.timer(self.delay, self.flush)

    def add(self, line):
        self._arm()
        self.pending.append(line)
        self.pending_bytes += len(line)
        if self.pending_bytes >= BATCH_BYTES:
            self.flush()

    def exec_event(self, name, context):
        """An event of the shell for ``guest.exec.eventlog`` (``shell.init``,
        ``shell.start``, ``shell.task-exit``...), timestamped now and written with
        the next output batch: no commit of its own (the shell's event sink)."""
        self._arm()
        self.exec_pending.append(entry(name, context).decode())

    def log(self, level, text):
        """The shell's log sink: a ``log`` entry of the job's output (batched)."""
        line = entry("log", dict(log_context(level, text, self.shell.node_index), component="shell"))
        self.batch_logs.append(line)
        self.add(line)

    def _commit_logs(self):
        """The batch is counted against ``output.limit``: its log entries go in a
        commit of their own first, never counted. A counted batch past the limit is
        dropped whole, and the limit's own warning (or a later message) went with it."""
        logs = {id(line) for line in self.batch_logs}
        self.pending = [line for line in self.pending if id(line) not in logs]
        self.shell.rpc("kvs.commit", {"ops": [{"op": "append", "key": self.key, "raw": True}],
                                      "raw": self.batch_logs}, then=self._answered, error=self._failed)
        self.inflight += 1

    def flush(self):
        if self.timer is not None:
            self.timer.stop()
            self.timer = None
        if not self.pending and not self.exec_pending:
            return
        ops = []
        payload = {"ops": ops}
        counted = self.counted or self.cut
        if self.batch_logs:
            if counted:
                self._commit_logs()
            self.batch_logs = []
        if self.pending:
            op = {"op": "append", "key": self.key, "raw": True}
            if counted:  # the KVS keeps the job's output within the limit, all shells together
                op["limit"] = self.limit
                op["count"] = self.counted
                self.counted = 0
                if self.cut:
                    op["full"] = True
                    self.cut = False
            ops.append(op)
            payload["raw"] = self.pending  # one attachment by a gathering write: no copy
            self.pending = []
            self.pending_bytes = 0
        if self.exec_pending:
            ops.append({"op": "append", "key": self.exec_key, "value": "".join(self.exec_pending)})
            self.exec_pending = []
        self.shell.rpc("kvs.commit", payload, then=self._committed if counted else self._answered,
                       error=self._failed)
        self.inflight += 1
        if self.inflight >= WINDOW and not self.paused:
            self.paused = True
            for fd in self.streams:
                self.shell.unwatch_fd(fd)

    def _committed(self, payload):
        """A counted batch was answered: the KVS drops the batches that would take
        the job's output past the limit (other nodes wrote the rest). The shell
        whose batch made the job's output full says so, once for the job."""
        payload = payload or {}
        if payload.get("dropped"):
            self.truncated = True
        if payload.get("first_full"):
            self.shell.log("WARN", f"output limit of {self.limit} bytes exceeded: the rest of the job's "
                           "output is dropped (-o output.limit=SIZE)")
            self.flush()  # the shell may be draining its last commits
        self._answered(payload)

    def _failed(self, exc):
        self.shell.rpc_failed("kvs.commit", exc)
        self._answered(None)

    def _answered(self, _payload):
        """A commit was answered: past the window, task pipes are read again."""
        self.inflight -= 1
        if self.paused and self.inflight < WINDOW:
            self.paused = False
            for fd in self.streams:
                self.shell.watch_fd(fd, READ, self._read)


def _batch_timeout(value):
    if value is None:
        return BATCH_DELAY
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise RuntimeError(f"output.batch-timeout: {value!r} is not a number of seconds") from None
    return max(0.0, value)


def expand(template, shell, taskid):
    """``--output`` template: ``{{id}}`` (and ``.f58 .dec .hex .dothex .words``),
    ``{{jobid}}``, ``{{name}}``, ``{{node.id}}``, ``{{node.name}}``, ``{{taskid}}``."""
    jobid = shell.jobid
    values = {"id": str(jobid), "jobid": str(jobid), "name": _job_name(shell), "taskid": str(taskid),
              "node.id": str(shell.node_index), "node.name": os.uname().nodename}
    for enc in ID_ENCODINGS:
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
    out = Output(shell)
    shell.aux_set("output", out)
    shell.add_log_sink(out.log, out.flush)
    shell.add_event_sink(out.exec_event)


def _task_init(shell, task):
    shell.aux_get("output").task_init(task)


def _finish(shell, _task):
    out = shell.aux_get("output")
    out.flush()
    out.close_files()


plugin = Plugin("output", {"shell.init": _init, "task.init": _task_init, "shell.finish": _finish})
