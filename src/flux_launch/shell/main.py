"""The job shell's lifecycle (``run``), one process per node per job.

1. read the job (jobspec, R, this broker's rank) and compute this node's tasks;
2. ``shell.init``: plugins set up (tmpdir, output, input);
3. for each task: its environment, ``task.init``, spawn in its own session
   (``setsid``: the shell can signal a task's whole tree, and the kernel's
   autogroup scheduler shares CPUs between tasks fairly);
4. ``shell.start``; then a loop over task output, task exits (pidfds), the
   broker connection and forwarded signals;
5. ``task.exit`` per task; when a task exits non-zero, the others are killed
   ``exit-timeout`` (30 s, ``-o exit-timeout=FSD|none``) later;
6. ``shell.finish`` (output flushed to the KVS), then exit with the highest task
   code (128+N for a task killed by signal N).

Signals sent to the shell (SIGTERM, SIGINT, SIGHUP, SIGALRM, SIGUSR1/2) are
forwarded to every running task's process group.
"""

import errno
import os
import selectors
import signal
import time

from flux_launch.shell import rcalc
from flux_launch.shell.plugstack import PlugStack

# Variables of an enclosing job or instance that must not leak into tasks (the
# others, e.g. FLUX_JOB_CC, are the user's).
ENV_BLOCKLIST_PREFIX = ("PMI_", "SLURM_")
ENV_BLOCKLIST = {"FLUX_JOB_ID", "FLUX_ENCLOSING_ID", "FLUX_JOB_SIZE", "FLUX_JOB_NNODES", "FLUX_JOB_TMPDIR",
                 "FLUX_TASK_RANK", "FLUX_TASK_LOCAL_ID", "FLUX_URI", "FLUX_KVS_NAMESPACE", "FLUX_PROXY_REMOTE",
                 "FLUX_PMI_LIBRARY_PATH", "I_MPI_PMI_LIBRARY"}
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM, signal.SIGUSR1,
                     signal.SIGUSR2, signal.SIGCONT)
EXIT_TIMEOUT = 30.0


class Task:
    __slots__ = ("id", "local_id", "cmd", "env", "cwd", "pid", "pidfd", "status", "code", "open_streams",
                 "stdin_fd", "pass_fds", "after_spawn", "cpus")

    def __init__(self, taskid, local_id, cmd, env, cwd):
        self.id = taskid
        self.local_id = local_id
        self.cmd = cmd
        self.env = env
        self.cwd = cwd
        self.pid = None
        self.pidfd = None
        self.status = None
        self.code = None
        self.open_streams = 0
        self.stdin_fd = None
        self.pass_fds = []  # descriptors the task inherits (e.g. PMI_FD)
        self.after_spawn = []  # callables run once the task is spawned (or failed to)
        self.cpus = None  # CPU ids to bind the task to (cpu-affinity)


class Shell:
    """One job shell. ``args``: ``{id, jobspec, R, ranks, rank, uri, rundir}``."""

    def __init__(self, args):
        from flux_launch.core.jobid import JobID
        from flux_launch.proto import rv1
        from flux_launch.proto.jobspec import summary

        self.jobid = JobID(args["id"])
        self.jobspec = args["jobspec"]
        self.R = args["R"]
        self.rank = args["rank"]
        self.uri = args["uri"]
        self.rundir = args.get("rundir") or "/tmp"
        self.summary = summary(self.jobspec)
        system = self.jobspec.get("attributes", {}).get("system", {})
        self.options = system.get("shell", {}).get("options", {}) or {}
        self.alloc = rv1.decode(self.R).ranks
        self.taskmap = rcalc.compute(self.alloc, self.summary, self.options.get("per-resource"))
        self.node_index = self.taskmap.node_index(self.rank)
        self.leader = self.node_index == 0
        self.sel = selectors.DefaultSelector()
        self.handle = None
        self.tasks = []
        self.running = 0
        self.deadlines = {}  # name -> monotonic time
        self.timers = {}  # name -> callback when its deadline passes (others: exit-timeout)
        self.futures = []
        self.on_reply = {}  # future -> callback(payload) when its answer comes
        self.verbose = int(self.options.get("verbose", 0) or 0)
        self.task_fd = args.get("task_fd")  # where the fork server learns task pids
        self.signal_fd = args.get("signal_fd")  # signals caught since the fork (catch_signals)
        self.topology = args.get("topology") or {}  # this node's cores (PUs) and GPUs
        env = {k: v for k, v in (system.get("environment") or {}).items()
               if k not in ENV_BLOCKLIST and not k.startswith(ENV_BLOCKLIST_PREFIX)}
        env.update(FLUX_JOB_ID=str(self.jobid), FLUX_JOB_SIZE=str(self.taskmap.ntasks),
                   FLUX_JOB_NNODES=str(len(self.taskmap.ranks)), FLUX_URI=self.uri)
        self.env = env
        self.cwd = system.get("cwd")
        self.command = self.jobspec["tasks"][0]["command"]
        from flux_launch.shell.plugins import builtins

        self.plugins = PlugStack(builtins())
        self.output = None  # the output plugin's state, set in shell.init
        self.broker_hooks = []  # called after each message from the broker
        self.fatal = None  # set by raise_exception: the job is failing

    # ---- services for plugins -------------------------------------------------------

    def connect(self):
        from flux_launch.client.handle import Flux

        self.handle = Flux(self.uri)
        self.sel.register(self.handle.fileno(), selectors.EVENT_READ, ("broker", None))

    def rpc(self, topic, payload, nodeid=-1, streaming=False):
        """Send a request to the broker; its response is checked in the loop."""
        from flux_launch.client.handle import STREAMING

        fut = self.handle.rpc(topic, payload, nodeid, STREAMING if streaming else 0)
        if not streaming:
            self.futures.append(fut)
        return fut

    def log(self, level, text):
        """A shell message for the user: it goes with the job's output
        (``flux-shell[N]: LEVEL: text``) and to the shell's own stderr."""
        if self.output is not None:
            self.output.log(level, text)
        else:
            os.write(2, f"flux-shell[{self.node_index}]: {level}: {text}\n".encode())

    def raise_exception(self, etype, note):
        """A fatal job exception (the job ends; its tasks are killed by exec)."""
        if self.fatal is None:
            self.fatal = note
            self.log("FATAL", note)
            self.rpc("job-manager.raise", {"id": int(self.jobid), "type": etype, "severity": 0, "note": note})

    def watch_fd(self, fd, events, callback):
        self.sel.register(fd, events, ("fd", callback))

    def unwatch_fd(self, fd):
        try:
            self.sel.unregister(fd)
        except (KeyError, ValueError):
            pass

    # ---- lifecycle ------------------------------------------------------------------

    def run(self):
        self.connect()
        self._signals()
        self.plugins.call("shell.init", self)
        out = self.output
        if out is not None and self.leader:
            out.exec_event("shell.init", {"service": f"shell-{int(self.jobid)}", "leader-rank": self.rank,
                                          "size": len(self.taskmap.ranks)})
        for taskid in self.taskmap.local(self.rank):
            local_id = len(self.tasks)
            env = dict(self.env, FLUX_TASK_RANK=str(taskid), FLUX_TASK_LOCAL_ID=str(local_id))
            task = Task(taskid, local_id, list(self.command), env, self.cwd)
            self.tasks.append(task)
            self.plugins.call("task.init", self, task)
            self._spawn(task)
        self.plugins.call("shell.start", self)
        if out is not None and self.leader:
            out.exec_event("shell.start", {"taskmap": self.taskmap.rfc34()})
        self._loop()
        self.plugins.call("shell.finish", self)
        self._drain_rpcs()
        return max((t.code for t in self.tasks), default=0)

    def _spawn(self, task):
        out = self.output
        fds = out.task_fds(task) if out is not None else {}
        stdin = task.stdin_fd if task.stdin_fd is not None else os.open(os.devnull, os.O_RDONLY)
        saved = None
        if task.cpus:
            # The child inherits the affinity set here, before it executes: the shell is
            # single-threaded, so setting its own and restoring it right after is safe.
            saved = os.sched_getaffinity(0)
            os.sched_setaffinity(0, task.cpus)
        try:
            import subprocess

            proc = subprocess.Popen(task.cmd, env=task.env, cwd=task.cwd, stdin=stdin,
                                    stdout=fds.get("stdout"), stderr=fds.get("stderr"),
                                    start_new_session=True, close_fds=True, pass_fds=task.pass_fds)
        except OSError as exc:
            code = 127 if exc.errno == errno.ENOENT else 126
            what = f"cwd {task.cwd}" if exc.filename == task.cwd and task.cwd else task.cmd[0]
            self.log("ERROR", f"task {task.id}: start failed: {what}: {exc.strerror}")
            task.code = code
            task.status = code << 8
            if out is not None:
                out.task_started(task, failed=True)
            self.plugins.call("task.exit", self, task)
            return
        finally:
            if saved is not None:
                os.sched_setaffinity(0, saved)
            if task.stdin_fd is None:
                os.close(stdin)
            for fn in task.after_spawn:
                fn()
        proc.returncode = 0  # reaped through its pidfd below, not by Popen
        task.pid = proc.pid
        if self.task_fd is not None:
            try:
                os.write(self.task_fd, f"{proc.pid}\n".encode())
            except OSError:
                pass
        task.pidfd = os.pidfd_open(proc.pid)
        self.sel.register(task.pidfd, selectors.EVENT_READ, ("exit", task))
        self.running += 1
        if out is not None:
            out.task_started(task)

    def _signals(self):
        r = self.signal_fd if self.signal_fd is not None else catch_signals()
        self.sel.register(r, selectors.EVENT_READ, ("signal", None))

    def kill_tasks(self, sig):
        for task in self.tasks:
            if task.pid is not None and task.status is None:
                try:
                    os.killpg(task.pid, sig)
                except ProcessLookupError:
                    pass

    def _task_exited(self, task):
        _, status = os.waitpid(task.pid, 0)
        self.unwatch_fd(task.pidfd)
        os.close(task.pidfd)
        task.status = status
        task.code = os.waitstatus_to_exitcode(status)
        if task.code < 0:
            task.code = 128 - task.code
        self.running -= 1
        if self.output is not None:
            self.output.exec_event("shell.task-exit", {
                "localid": task.local_id, "rank": task.id, "state": "Exited", "pid": task.pid,
                "wait_status": status, "signaled": os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0,
                "exitcode": task.code})
        self.plugins.call("task.exit", self, task)
        if task.code != 0 and "exit-timeout" not in self.deadlines:
            timeout = _exit_timeout(self.options.get("exit-timeout"))
            if timeout is not None and self.running:
                self.deadlines["exit-timeout"] = time.monotonic() + timeout

    def _loop(self):
        out = self.output
        while self.running or (out is not None and out.open_streams()):
            timeout = None
            if self.deadlines:
                timeout = max(0.0, min(self.deadlines.values()) - time.monotonic())
            if out is not None:
                t = out.flush_timeout()
                if t is not None:
                    timeout = t if timeout is None else min(timeout, t)
            for key, events in self.sel.select(timeout):
                kind, obj = key.data
                if kind == "fd":
                    obj(key.fd, events)
                elif kind == "exit":
                    self._task_exited(obj)
                elif kind == "broker":
                    self._recv_broker()
                elif kind == "signal":
                    for b in os.read(key.fd, 64):
                        self.kill_tasks(b)
            now = time.monotonic()
            for name, when in list(self.deadlines.items()):
                if when > now:
                    continue
                del self.deadlines[name]
                callback = self.timers.pop(name, None)
                if callback is not None:
                    callback()
                elif name == "exit-timeout" and self.running:
                    self.log("ERROR", f"exit-timeout expired: killing the {self.running} remaining task(s)")
                    self.kill_tasks(signal.SIGKILL)
            if out is not None:
                out.maybe_flush()

    def _recv_broker(self):
        try:
            self.handle._recv_one(None)
        except ConnectionError:
            self.unwatch_fd(self.handle.fileno())
            os.write(2, f"flux-shell[{self.node_index}]: FATAL: lost the broker connection\n".encode())
            self.kill_tasks(signal.SIGKILL)
            raise SystemExit(1)
        self._check_rpcs()
        for hook in list(self.broker_hooks):
            hook()

    def _check_rpcs(self):
        for fut in list(self.futures):
            if fut._queue:
                self.futures.remove(fut)
                reply = self.on_reply.pop(fut, None)
                try:
                    payload = fut.get()
                    if reply is not None:
                        reply(payload)
                except OSError as exc:
                    os.write(2, f"flux-shell[{self.node_index}]: ERROR: {fut.topic}: {exc.strerror}\n".encode())

    def _drain_rpcs(self):
        deadline = time.monotonic() + 60
        while self.futures and time.monotonic() < deadline:
            try:
                self.handle._recv_one(max(0.1, deadline - time.monotonic()))
            except (ConnectionError, TimeoutError):
                break
            self._check_rpcs()


def catch_signals():
    """Catch the forwarded signals into a pipe; returns its read end. Signals that
    arrive before the tasks exist wait there and are forwarded once they run."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    for sig in FORWARDED_SIGNALS:
        signal.signal(sig, lambda *_: None)
    return r


def _exit_timeout(value):
    from flux_launch.core import fsd

    if value in (None, ""):
        return EXIT_TIMEOUT
    if value == "none":
        return None
    return fsd.parse(str(value)) if not isinstance(value, (int, float)) else float(value)


def run(args):
    """Run a shell for ``args``; returns its exit code. Never raises: a failure
    is reported on stderr (and in the job's output when possible) with code 1."""
    shell = None
    try:
        shell = Shell(args)
        return shell.run()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # noqa: BLE001 - the shell must report, never crash silently
        text = f"shell failed: {exc}"
        if os.environ.get("FLUX_LAUNCH_DEBUG"):
            import traceback

            traceback.print_exc()
        try:
            if shell is not None and shell.output is not None:
                shell.log("FATAL", text)
                shell.output.flush()
                shell._drain_rpcs()
            if shell is not None and shell.handle is not None:
                # the user learns why from the job itself (flux run prints the exception)
                shell.handle.rpc("job-manager.raise", {"id": int(shell.jobid), "type": "exec", "severity": 0,
                                                       "note": f"shell on rank {shell.rank}: {text}"}).get(5)
        except (OSError, TimeoutError, ConnectionError):
            pass
        finally:
            os.write(2, f"flux-shell: FATAL: {text}\n".encode())
        return 1
