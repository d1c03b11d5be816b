"""pty: tasks on a pseudo-terminal, as flux-core's shell options name it.

- ``-o pty``: every task gets a pty, its output captured like stdout;
- ``-o pty.ranks=IDSET|all``: only those tasks;
- ``-o pty.capture``: capture (the default here: the pty's output always goes to
  the job's output eventlog, which is how the front end sees it);
- ``-o pty.interactive``: task 0 gets a pty for an interactive front end
  (``flux alloc`` sets it when its stdin is a terminal; ``flux job attach``
  then runs the terminal raw). ``pty.interactive.winsize=[ROWS, COLS]``, set by
  the front end, is the pty's first window size.

A task on a pty has the slave side as stdout, stderr and stdin (unless stdin is
an ``--input=FILE``) and as its controlling terminal (it is a session leader already); the shell reads the
master side as the task's stdout and writes the job's stdin (``input``) to it,
with an end-of-file character at stdin's end.

Topics: ``task.init`` (after ``output`` and ``input``: the pty replaces their
pipes).
"""

import fcntl
import os
import struct
import termios

from flux_launch.shell.plugstack import Plugin


def _ranks(shell):
    from flux_launch.proto.shellopts import pty_ranks

    try:
        return pty_ranks(shell.options.get("pty"))
    except ValueError as exc:
        raise RuntimeError(str(exc)) from None


def _winsize(shell):
    opt = shell.options.get("pty")
    inter = opt.get("interactive") if isinstance(opt, dict) else None
    size = inter.get("winsize") if isinstance(inter, dict) else None
    if isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and 0 < v < 65536 for v in size):
        return size
    return None


def _task_init(shell, task):
    ranks = _ranks(shell)
    if ranks is None or (ranks != "all" and task.id not in ranks):
        return
    master, slave = os.openpty()
    os.set_blocking(master, False)
    size = _winsize(shell)
    if size:
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", size[0], size[1], 0, 0))
    inp = shell.aux_get("input")
    if inp is not None:  # the job's stdin: written to the pty
        inp.use_pty(task, os.dup(master))
    on_stdin = task.stdin_fd is None  # not an --input=FILE the input plugin opened (it stays)
    shell.aux_get("output").use_pty(task, master)
    task.stdout_fd = task.stderr_fd = slave
    if on_stdin:
        task.stdin_fd = slave

    def take_terminal():
        fcntl.ioctl(1, termios.TIOCSCTTY, 0)  # stdout: the slave side in every case

    def close_slave():
        os.close(slave)
        if on_stdin:
            task.stdin_fd = None  # closed here, not by input's shell.start

    task.in_child.append(take_terminal)
    task.after_spawn.append(close_slave)


plugin = Plugin("pty", {"task.init": _task_init})
