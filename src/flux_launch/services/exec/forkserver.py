"""The shell fork server: a pre-imported process per broker that forks one job
shell per job, so that a job pays neither an interpreter start nor imports.

It is to the job shell what flux-core's exec of the flux-shell program is, and
the one place outside ``shell/`` that loads the shell.

The broker forks it at start-up (before its event loop and zeromq exist, so the
fork is clean) and talks to it over a socketpair with the broker's own message
framing:

- broker -> server: ``{"topic": "start", "id": JOBID, "args": {...}}``,
  ``{"topic": "kill", "id": JOBID, "signum": N}``
- server -> broker: ``{"topic": "started", "id", "pid"}``, ``{"topic": "tasks",
  "id", "pids"}`` (task pids as the shell reports them), ``{"topic": "exited",
  "id", "status"}`` (a wait status), ``{"topic": "error", "id", "errstr"}``

A kill is written in the shell's signal pipe (where the signals it catches land,
and which the server made before the fork), and the shell forwards it to its
tasks, also to those it has not spawned yet; SIGKILL and SIGSTOP also go at once
to the tasks it reported, in case the shell is stopped or hung.

Shell exits are seen through pidfds. If the broker goes away (EOF), every shell
gets SIGTERM, then SIGKILL a second later, and the server exits. If this server
dies, the broker kills the shells and tasks it was told of and starts another
(``python -m flux_launch.services.exec.forkserver FD``).
"""

import os
import selectors
import signal
import sys
import time

from flux_launch.core.proc import exit_now
from flux_launch.proto import message as _msg


def serve(sock):
    """Serve the broker on ``sock`` until EOF; never returns."""
    # The point of this process: everything a shell needs, imported once, here.
    preload()
    from flux_launch.shell import main as shell_main
    # Ctrl-C, and a SIGTERM sent to the broker's process group (a nested broker's
    # job shell forwards the job's signals that way), are the broker's to handle:
    # the broker ends its jobs in order, and this server ends at its EOF. Shells set
    # their own handlers (catch_signals), so their tasks get the default dispositions.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    # Shells are forked copies of this process: a garbage collection in one would
    # touch every object and copy every page. Objects alive now are frozen out of
    # the collector; shells run without it (they are short-lived).
    import gc

    gc.collect()
    gc.freeze()

    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ, None)
    decoder = _msg.Decoder()
    shells = {}  # jobid -> pid
    tasks = {}  # jobid -> (read end of the task-pid pipe, pids read so far)
    relays = {}  # jobid -> write end of its shell's signal pipe

    def send(**fields):
        sock.sendall(_msg.frame({"type": "ctl", **fields}))

    while True:
        for key, _ in sel.select():
            if key.data is None:  # the broker
                try:
                    data = sock.recv(1 << 20)
                except ConnectionResetError:
                    data = b""
                if not data:
                    _shutdown(shells, tasks)
                for m in decoder.feed(data):
                    if isinstance(m, Exception):
                        continue
                    op = m.get("topic")
                    jobid = m.get("id")
                    if op == "start":
                        # The shell reports each task's pid on this pipe: if the shell
                        # dies by a signal, its tasks (each in its own session) are
                        # killed here instead of being left behind.
                        task_r, task_w = os.pipe()
                        # The shell's signal pipe: its caught signals are written there, and
                        # so are the ones it cannot catch, relayed by this server.
                        sig_r, sig_w = os.pipe()
                        # Signals stay blocked across the fork until the shell catches
                        # them: a kill right after "started" reaches the tasks, not the shell.
                        mask = signal.pthread_sigmask(signal.SIG_BLOCK, shell_main.FORWARDED_SIGNALS)
                        pid = os.fork()
                        if pid == 0:
                            os.close(task_r)
                            for fd in relays.values():
                                os.close(fd)
                            args = m.get("args") or {}
                            args["task_fd"] = task_w
                            _child(sock, sel, shell_main, args, mask, (sig_r, sig_w))
                        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                        os.close(task_w)
                        os.close(sig_r)
                        os.set_blocking(sig_w, False)
                        relays[jobid] = sig_w
                        os.set_blocking(task_r, False)
                        pidfd = os.pidfd_open(pid)
                        shells[jobid] = pid
                        sel.register(pidfd, selectors.EVENT_READ, (jobid, pid, task_r))
                        # Task pids go on to the broker as they come: if this server
                        # dies, the broker kills them (tasks have sessions of their own).
                        sel.register(task_r, selectors.EVENT_READ, ("tasks", jobid))
                        tasks[jobid] = (task_r, [])
                        send(topic="started", id=jobid, pid=pid)
                    elif op == "kill":
                        pid = shells.get(jobid)
                        signum = int(m.get("signum", signal.SIGTERM))
                        if pid is not None and m.get("final") is True:
                            # the kill escalation's last step: the shell has not reported
                            # a kill-timeout after its tasks' SIGKILL (stopped, hung)
                            _signal_tasks(tasks[jobid], signal.SIGKILL)
                            try:
                                os.killpg(pid, signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                        elif pid is not None:
                            if signum in (signal.SIGKILL, signal.SIGSTOP):
                                # uncatchable by the shell: to the tasks it reported (even if
                                # it is stopped or hung), and it lives on to report their end
                                _signal_tasks(tasks[jobid], signum)
                            # Every signal goes in the shell's signal pipe, in the order sent:
                            # the shell forwards it as one it caught, also to the tasks it has
                            # not spawned or reported yet.
                            _relay(relays[jobid], signum)
            elif key.data[0] == "tasks":
                entry = tasks.get(key.data[1])
                if entry is None or entry[0] != key.fd:  # its shell was reaped in this same batch
                    continue
                new = _read_pids(entry)
                if new:
                    send(topic="tasks", id=key.data[1], pids=new)
                elif new is None:  # EOF: the shell has exited (its end is seen below)
                    sel.unregister(key.fd)
            else:
                jobid, pid, task_r = key.data
                sel.unregister(key.fd)
                os.close(key.fd)
                _, status = os.waitpid(pid, 0)
                shells.pop(jobid, None)
                entry = tasks.pop(jobid)
                if status & 0x7F:
                    _signal_tasks(entry, signal.SIGKILL)
                try:
                    sel.unregister(task_r)
                except KeyError:
                    pass
                os.close(task_r)
                os.close(relays.pop(jobid))
                send(topic="exited", id=jobid, status=status)


SHELL_MODULES = ("subprocess", "flux_launch.client.handle", "flux_launch.client.reactor", "flux_launch.core.jobid",
                 "flux_launch.core.idset", "flux_launch.core.fsd", "flux_launch.proto.jobspec", "flux_launch.proto.rv1",
                 "flux_launch.proto.pmi1", "flux_launch.proto.pmi1_server", "flux_launch.proto.shellopts",
                 "flux_launch.proto.eventlog", "flux_launch.shell.main", "flux_launch.shell.forkbroker")


def preload():
    """Import what a job shell needs (flux start --test-size does it before forking
    its brokers, so that their fork servers inherit it)."""
    import importlib

    for name in SHELL_MODULES:
        importlib.import_module(name)
    from flux_launch._accel import select

    for choice in ("py", ""):  # the output plugin's accelerators (C when built)
        select(choice)
    from flux_launch.shell.plugins import builtins

    builtins()


def _read_pids(entry):
    """Read the task pids a shell wrote since the last read: the new ones (a list,
    maybe empty), or None at EOF."""
    task_r, pids = entry
    try:
        data = os.read(task_r, 1 << 16)
    except BlockingIOError:
        return []
    except OSError:
        return None
    if not data:
        return None
    try:
        new = [int(w) for w in data.split()]
    except ValueError:
        return []
    pids.extend(new)
    return new


def _signal_tasks(entry, signum):
    """Signal the process group of every task a shell reported."""
    _read_pids(entry)
    for pid in entry[1]:
        try:
            os.killpg(pid, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _relay(sig_w, signum):
    """Write ``signum`` in a shell's signal pipe (dropped if the pipe is full: the
    shell has thousands of signals left to read)."""
    try:
        os.write(sig_w, bytes((signum,)))
    except (OSError, ValueError):  # ValueError: not a signal number (0..255)
        pass


def _child(sock, sel, shell_main, args, mask, pipe):
    code = 1
    try:
        sel.close()
        sock.close()
        os.setsid()
        args["signal_fd"] = shell_main.catch_signals(pipe)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        import gc

        gc.disable()
        code = shell_main.run(args)
    finally:
        exit_now(code)


def _shutdown(shells, tasks):
    """The broker is gone: SIGTERM to the shells (they pass it to their tasks), and a
    second later SIGKILL to what is left, tasks included (they may ignore SIGTERM)."""
    for pid in shells.values():
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 1.0
    while shells and time.monotonic() < deadline:
        for jobid, pid in list(shells.items()):
            if os.waitpid(pid, os.WNOHANG)[0]:
                del shells[jobid]
        time.sleep(0.01)
    for jobid, pid in shells.items():
        _signal_tasks(tasks[jobid], signal.SIGKILL)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os._exit(0)


def main(argv):
    """``python -m flux_launch.services.exec.forkserver FD``: serve the broker on the
    socket ``FD`` (a broker starts a new server this way when its first one died)."""
    import socket

    _serve_then_exit(socket.socket(fileno=int(argv[1])))


def _serve_then_exit(sock):
    """Serve until the broker goes; never returns (a server that fails says why on
    stderr before the broker notices the EOF)."""
    try:
        serve(sock)
    except BaseException:  # noqa: BLE001
        import traceback

        traceback.print_exc()
    finally:
        exit_now(1)


def spawn():
    """Fork the server from the (not yet started) broker; returns the broker's end
    of the socketpair and the server's pid."""
    import socket

    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        parent.close()
        _serve_then_exit(child)
    child.close()
    return parent, pid


if __name__ == "__main__":
    main(sys.argv)
