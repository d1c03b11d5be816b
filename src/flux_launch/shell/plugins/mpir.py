"""mpir: the shell's ``proctable`` method, where debuggers and tools find the tasks.

``shell-<jobid>.proctable`` (sent to a broker rank of the job) answers this
shell's tasks, in task rank order::

    {"proctable": [{"rank": R, "host": HOST, "executable": PATH, "pid": PID}, ...]}

``rank`` is the global task rank, ``host`` this node's hostname, ``executable``
the program the task runs (``/proc/PID/exe`` while it runs, else its command's
first word); a task that failed to start is left out. ``flux job attach --debug``
builds the MPIR proctable from every shell's answer, ``flux job hostpids`` prints
it.

Every shell registers the method (one ``service.add`` per shell), so that a
debugger can attach to any running job, not only one started with
``stop-tasks-in-exec``. A request that arrives before the local tasks were all
started waits for ``shell.start``. Only the job's owner and the instance owner
are answered; others get EPERM.

Topics: ``shell.init`` (register), ``shell.start`` (answer the waiting requests).
"""

import errno
import os

from flux_launch.shell.plugstack import Plugin


class _Proctable:
    def __init__(self, shell):
        self.shell = shell
        self.started = False
        self.waiting = []
        shell.service_register("proctable", self.request)

    def request(self, req):
        if req.get("rolemask", 1) != 1 and req.get("userid") != os.getuid():
            self.shell.respond(req, errnum=errno.EPERM, errstr=f"{req.get('topic')}: permission denied: not your job")
            return
        if not self.started:
            self.waiting.append(req)
            return
        self.shell.respond(req, {"proctable": self.entries()})

    def entries(self):
        from _socket import gethostname

        host = gethostname()
        out = []
        for task in self.shell.tasks:
            if task.pid is None:
                continue
            exe = task.cmd[0] if task.cmd else ""
            if task.status is None:
                try:
                    exe = os.readlink(f"/proc/{task.pid}/exe")
                except OSError:
                    pass
            out.append({"rank": task.id, "host": host, "executable": exe, "pid": task.pid})
        return out

    def start(self):
        self.started = True
        waiting, self.waiting = self.waiting, []
        for req in waiting:
            self.shell.respond(req, {"proctable": self.entries()})


def _init(shell, _task):
    shell.aux_set("mpir", _Proctable(shell))


def _start(shell, _task):
    shell.aux_get("mpir").start()


plugin = Plugin("mpir", {"shell.init": _init, "shell.start": _start})
