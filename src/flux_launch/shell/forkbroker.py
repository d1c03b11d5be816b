"""A task that is this package's own ``flux broker`` (``flux batch``, ``flux alloc``,
``from_batch_command``) is forked from the shell instead of executed: the shell
is a fork of the fork server, which already holds the interpreter and the
broker's modules (asyncio among them), so the nested broker skips an interpreter
start and ~55 ms of imports (what a nested instance's start is made of).

The child becomes what an exec would have made it: its own session, the task's
stdin/stdout/stderr on 0-2 and its ``pass_fds``, nothing else of the shell's open
(the shell's descriptors are closed; their Python objects stay referenced by the
shell's frames until ``os._exit``, so none is closed twice), default signal
dispositions and an empty mask, the task's environment, cwd and argv, the
garbage collector on; then the ``flux`` command's ``main`` runs and its code is
the exit status. A ``flux`` on the task's PATH that is not this package's (a
flux-core install) is executed as any other command.
"""

import os
import signal
import sys

_OURS = os.path.realpath(os.path.join(os.path.dirname(sys.executable), "flux"))


def applies(task):
    """True when ``task`` runs this package's ``flux broker``."""
    cmd = task.cmd
    if len(cmd) < 2 or cmd[1] != "broker" or os.path.basename(cmd[0]) != "flux":
        return False
    if os.environ.get("FLUX_LAUNCH_FORK_BROKER", "1") == "0" or task.env.get("FLUX_LAUNCH_FORK_BROKER") == "0":
        return False
    import shutil

    path = cmd[0] if "/" in cmd[0] else shutil.which(cmd[0], path=task.env.get("PATH", os.defpath))
    return path is not None and os.path.realpath(path) == _OURS


def spawn(task, stdin, in_child):
    """Fork the broker task; returns its pid (``in_child``: the shell's pre-exec
    hook: the task's ``in_child`` functions and the plugins' ``task.exec``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _become(task, stdin)
        in_child()
        from flux_launch.broker.main import main  # what `flux broker ARGS` runs (cli/broker.py)

        sys.argv = list(task.cmd)
        code = main(task.cmd[2:], default_shell=True)
        sys.stdout.flush()
        sys.stderr.flush()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - the task's stderr says why, as a failed exec would
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code if isinstance(code, int) else 1)


def _become(task, stdin):
    os.setsid()
    for fd, target in ((stdin, 0), (task.stdout_fd, 1), (task.stderr_fd, 2)):
        if fd is not None and fd != target:
            os.dup2(fd, target)
    keep = {0, 1, 2, *task.pass_fds}
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    for fd in task.pass_fds:  # the broker's own children do not inherit them (as after exec)
        os.set_inheritable(fd, False)
    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            # Python's own start-up state: SIGPIPE ignored, SIGINT raising KeyboardInterrupt
            signal.signal(sig, signal.SIG_IGN if sig == signal.SIGPIPE else
                          signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if task.cwd:
        os.chdir(task.cwd)
    os.environ.clear()
    os.environ.update(task.env)
    import gc

    gc.enable()
    try:  # ps -o comm, top: flux-broker, not the shell's name
        import ctypes

        ctypes.CDLL(None).prctl(15, b"flux-broker", 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass
