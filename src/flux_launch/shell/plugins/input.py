"""input: stdin for the tasks.

With the shell option ``input.stdin.type=kvs`` (set by ``flux run``, which
forwards its own stdin), each task gets a pipe fed from the job's
``guest.input`` eventlog: ``data`` entries ``{stream: "stdin", rank: "all"|IDSET,
data}`` (``flux run --input=RANKS`` targets some tasks) and ``eof`` (for all).
With ``input.stdin={type: file, path}`` (``--input=FILE``) every task reads the
file, opened by the shell on its node. Otherwise tasks read ``/dev/null``.

Topics: ``shell.init`` (the plugin's state, when stdin comes from the KVS and
this node has tasks), ``task.init`` (the pipe, or the file), ``shell.start`` (the
watch of ``guest.input``), ``task.exit`` (the task's pipe is closed).
Writes never block the shell: what a task does not read yet waits in a buffer.
"""

import base64
import errno
import os

from flux_launch.shell.loop import WRITE
from flux_launch.shell.plugstack import Plugin


class Input:
    def __init__(self, shell):
        self.shell = shell
        self.writers = {}  # task id -> [fd, buffer bytearray, eof]
        self.watch = None
        self.ptys = set()  # tasks whose stdin is a pty
        from flux_launch.proto.eventlog import EventlogParser

        self.parser = EventlogParser()

    def task_init(self, task):
        r, w = os.pipe()
        os.set_blocking(w, False)
        task.stdin_fd = r
        self.writers[task.id] = [w, bytearray(), False]

    def use_pty(self, task, master):
        """The task reads a pty: its stdin goes to the pty's ``master`` side (the
        pipe made by ``task_init`` is closed), its end as an end-of-file character."""
        writer = self.writers.get(task.id)
        if writer is None:
            os.close(master)
            return
        os.close(writer[0])
        os.close(task.stdin_fd)
        task.stdin_fd = None
        writer[0] = master
        self.ptys.add(task.id)

    def start(self):
        key = f"{self.shell.jobid.kvs}.guest.input"
        for task in self.shell.tasks:
            if task.stdin_fd is not None:
                os.close(task.stdin_fd)
        self.watch = self.shell.rpc("kvs.watch", {"key": key, "append": True, "waitcreate": True},
                                    streaming=True, then=self.receive, error=_ended)

    def receive(self, resp):
        for ev in self.parser.feed(resp["value"]):
            self._entry(ev)

    def _entry(self, ev):
        ctx = ev.get("context") or {}
        if ev.get("name") != "data":
            return
        target = ctx.get("rank", "all")
        ids = None
        if target != "all":
            from flux_launch.core.idset import IDset

            ids = IDset(target)
        data = ctx.get("data", "")
        data = base64.b64decode(data) if ctx.get("encoding") == "base64" else data.encode()
        for taskid, writer in list(self.writers.items()):
            if ids is None or taskid in ids:
                writer[1] += data
            if ctx.get("eof"):  # the end of stdin is the end for every task
                writer[2] = True
                if taskid in self.ptys:
                    writer[1] += b"\x04"  # VEOF: a reader of the pty sees its end
            self._write(taskid)

    def _write(self, taskid):
        writer = self.writers.get(taskid)
        if writer is None:
            return
        fd, buf, eof = writer
        while buf:
            try:
                n = os.write(fd, buf)
            except BlockingIOError:
                self.shell.unwatch_fd(fd)
                self.shell.watch_fd(fd, WRITE, lambda *_: self._write(taskid))
                return
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.EBADF, errno.EIO):
                    buf.clear()
                    break
                raise
            del buf[:n]
        self.shell.unwatch_fd(fd)
        if eof:
            self.close(taskid)

    def close(self, taskid):
        writer = self.writers.pop(taskid, None)
        if writer is not None:
            self.shell.unwatch_fd(writer[0])
            os.close(writer[0])


def _ended(_exc):
    """The watch ended (the job's end, or the KVS refused it): no more stdin."""


def _stdin(shell):
    opt = shell.options.get("input") or {}
    return (opt.get("stdin") or {}) if isinstance(opt, dict) else {}


def _init(shell, _task):
    if _stdin(shell).get("type") == "kvs" and shell.taskmap.local(shell.rank):
        shell.aux_set("input", Input(shell))


def _task_init(shell, task):
    spec = _stdin(shell)
    if spec.get("type") == "file":
        path = spec.get("path", "")
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise RuntimeError(f"cannot open the input file {path}: {exc.strerror}") from None
        task.stdin_fd = fd
        task.after_spawn.append(lambda: os.close(fd))
        return
    inp = shell.aux_get("input")
    if inp is not None:
        inp.task_init(task)


def _start(shell, _task):
    inp = shell.aux_get("input")
    if inp is not None:
        inp.start()


def _task_exit(shell, task):
    inp = shell.aux_get("input")
    if inp is not None:
        inp.close(task.id)


plugin = Plugin("input", {"shell.init": _init, "task.init": _task_init, "shell.start": _start,
                          "task.exit": _task_exit})
