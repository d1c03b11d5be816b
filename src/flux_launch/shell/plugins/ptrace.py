"""ptrace: ``-o stop-tasks-in-exec``, every task stopped at its exec for a debugger.

As flux-core's shell option: each task calls ``ptrace(PTRACE_TRACEME)`` in the
child before it executes, so the kernel stops it with SIGTRAP once ``execve`` has
loaded the new program, before its first instruction. The shell (its tracer)
waits for that stop and detaches with SIGSTOP: the task stays stopped (state
``T``), its own program in ``/proc/PID/exe`` and ``cmdline``, traced by nobody, so
that a debugger can attach to it. ``flux job attach --debug`` (or the user's
``flux job kill -s SIGCONT``) continues the tasks. The leader's ``shell.start``
event then carries ``"sync": true``: the front end knows the tasks wait for it.

A stopped task is still the shell's child, reaped through its pidfd like any
other when it exits. A signal the shell forwards to the tasks while some are
still held here (SIGTERM of a cancel) is followed by SIGCONT, so that a held job
ends at once instead of at the kill timeout's SIGKILL.

Caveats: a task that is a nested instance's broker forked without an exec
(``forkbroker``) has no exec to stop at and runs as usual (logged). Where ptrace
is not permitted (a seccomp filter, or the shell is itself traced), the task
fails with exit code 126 and a message on its stderr.

Topics: ``shell.init`` (option check), ``task.init`` (the pre-exec hook),
``task.fork`` (wait for the stop, detach).
"""

import ctypes  # at the top: the fork server's preload pays it once, not each job (~2 ms)
import os
import signal

from flux_launch.shell.plugstack import Plugin

PTRACE_TRACEME = 0
PTRACE_CONT = 7
PTRACE_DETACH = 17
STOPS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)


def enabled(options):
    """Whether the shell options ask for ``stop-tasks-in-exec`` (any true value:
    ``-o stop-tasks-in-exec`` sets 1)."""
    value = options.get("stop-tasks-in-exec")
    return value not in (None, False, 0, "0", "false", "no", "off", "")


class _Ptrace:
    """libc's ``ptrace`` through ctypes (looked up only for jobs that use the option)."""

    def __init__(self):
        self._errno = ctypes.get_errno
        fn = ctypes.CDLL(None, use_errno=True).ptrace
        fn.restype = ctypes.c_long
        fn.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p)
        self._fn = fn
        self.traced = set()  # local ids of the tasks that call PTRACE_TRACEME
        self.held = set()  # pids stopped here and not continued by the shell since

    def call(self, request, pid=0, data=0):
        """Raises OSError with the call's errno when it fails."""
        if self._fn(request, pid, None, data or None) == -1:
            err = self._errno()
            if err:
                raise OSError(err, f"ptrace: {os.strerror(err)}")


def _init(shell, _task):
    if enabled(shell.options):
        pt = _Ptrace()
        shell.aux_set("ptrace", pt)
        shell.add_signal_hook(lambda sig: _forwarded(shell, pt, sig))
        shell.start_context["sync"] = True  # the front end: the tasks wait to be continued


def _task_init(shell, task):
    pt = shell.aux_get("ptrace")
    if pt is None:
        return
    from flux_launch.shell import forkbroker

    if forkbroker.applies(task):
        shell.log("WARN", f"stop-tasks-in-exec: task {task.id} is a broker forked without exec: not stopped")
        return

    def traceme():
        try:
            pt.call(PTRACE_TRACEME)
        except OSError as exc:
            # no exception may leave a pre-exec hook here: the shell would take it for
            # its own failure; exiting unexecuted is the task's failure, seen as such
            os.write(2, f"flux-shell: stop-tasks-in-exec: task {task.id}: {exc.strerror}\n".encode())
            os._exit(126)

    task.in_child.append(traceme)
    pt.traced.add(task.local_id)


def _task_fork(shell, task):
    pt = shell.aux_get("ptrace")
    if pt is None or task.local_id not in pt.traced:
        return
    _stop_at_exec(pt, task.pid)


def _stop_at_exec(pt, pid):
    """Wait for ``pid``'s exec stop and detach leaving it stopped. A task that exited
    first is left to the shell to reap (its state is only peeked at here)."""
    while True:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WSTOPPED | os.WNOWAIT)
        if info is None or info.si_code != os.CLD_TRAPPED:
            return  # it exited (or was killed) before its exec: a zombie for the shell
        try:
            if info.si_status == signal.SIGTRAP:
                pt.call(PTRACE_DETACH, pid, signal.SIGSTOP)
                pt.held.add(pid)
                return
            # a signal that came before the exec: delivered as it would have been
            pt.call(PTRACE_CONT, pid, info.si_status)
        except ProcessLookupError:  # SIGKILLed meanwhile: its exit comes next
            continue


def _forwarded(shell, pt, sig):
    """After the shell sent ``sig`` to its tasks: the tasks it holds get SIGCONT, so
    that the signal (every one the shell forwards terminates by default) acts now;
    SIGCONT and SIGKILL need no help; a stop signal leaves them held."""
    if not pt.held or sig in STOPS:
        return
    held, pt.held = pt.held, set()
    if sig in (signal.SIGCONT, signal.SIGKILL):
        return
    for task in shell.tasks:
        if task.pid in held and task.status is None:
            try:
                os.killpg(task.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


plugin = Plugin("ptrace", {"shell.init": _init, "task.init": _task_init, "task.fork": _task_fork})
