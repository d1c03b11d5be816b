"""The job shell's lifecycle (``Shell.run``), one process per node per job.

1. read the job (jobspec, R, this broker's rank), compute this node's tasks and
   connect to the broker;
2. ``shell.init``: plugins set up (tmpdir, output, input, pmi, affinity); the
   leader shell emits ``shell.init`` to the exec eventlog; ``shell.post-init``;
3. for each task: its environment, ``task.init``, spawn in its own session
   (``setsid``: the shell can signal a task's whole tree, and the kernel's
   autogroup scheduler shares CPUs between tasks fairly), ``task.fork``;
4. ``shell.start`` (the leader emits ``shell.start``); then the loop runs while a
   completion reference is held: one per running task, and those plugins take
   (the output plugin holds one per open task pipe);
5. ``task.exit`` per task (``shell.task-exit`` in the exec eventlog); when a task
   exits non-zero, the others are killed ``exit-timeout`` (30 s, ``-o
   exit-timeout=FSD|none``) later;
6. ``shell.finish`` (output flushed), the answers of the shell's RPCs are waited
   for, ``shell.exit``; exit with the highest task code (128+N for a task killed
   by signal N).

Signals sent to the shell (SIGTERM, SIGINT, SIGHUP, SIGALRM, SIGUSR1/2, SIGCONT)
are forwarded to every running task's process group; so is any signal sent to
the job, which the fork server writes in the shell's signal pipe (SIGKILL and
SIGSTOP included). One that arrives before the tasks exist waits in the pipe
(the loop reads it once they run), or, read earlier, is sent to each task as it
starts.

What plugins get from the shell (flux-core's ``flux_shell_*`` in spirit): the job
(``jobid``, ``jobspec``, ``R``, ``rank``, ``options``, ``taskmap``, ``node_index``,
``leader``, ``env``, ``cwd``, ``command``, ``tasks``, ``topology``, ``verbose``),
their own state (``aux_set``/``aux_get``), messages (``log``; a plugin that keeps
them registers ``add_log_sink``), the exec eventlog (``emit_event``; its writer
registers ``add_event_sink``), ``add_completion_ref``/``remove_completion_ref``,
the loop (``watch_fd``, ``unwatch_fd``, ``timer``), the broker (``rpc``,
``service_register``, ``respond``), ``raise_exception``, ``kill_tasks`` (and
``add_signal_hook``: called after it) and ``start_context`` (what they add to the
leader's ``shell.start`` event, e.g. ``sync``).
"""

import errno
import os
import signal
import time

from flux_launch.proto.job import exit_code, raise_payload, term_signal, waitstatus
from flux_launch.proto.message import NODEID_ANY, STREAMING
from flux_launch.shell import rcalc
from flux_launch.shell.loop import READ, Loop
from flux_launch.shell.plugstack import PluginError, PlugStack

# Variables of an enclosing job or instance that must not leak into tasks (the
# others, e.g. FLUX_JOB_CC, are the user's).
ENV_BLOCKLIST_PREFIX = ("PMI_", "SLURM_")
ENV_BLOCKLIST = {"FLUX_JOB_ID", "FLUX_ENCLOSING_ID", "FLUX_JOB_SIZE", "FLUX_JOB_NNODES", "FLUX_JOB_TMPDIR",
                 "FLUX_TASK_RANK", "FLUX_TASK_LOCAL_ID", "FLUX_URI", "FLUX_KVS_NAMESPACE", "FLUX_PROXY_REMOTE",
                 "FLUX_PMI_LIBRARY_PATH", "I_MPI_PMI_LIBRARY"}
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM, signal.SIGUSR1,
                     signal.SIGUSR2, signal.SIGCONT)
EXIT_TIMEOUT = 30.0
DRAIN_TIMEOUT = 60.0  # the longest the shell waits for its RPCs' answers before it exits


class Task:
    """One local task. Plugins set, in ``task.init``: ``env``, ``stdin_fd``,
    ``stdout_fd``, ``stderr_fd`` (None: /dev/null for stdin, the shell's own for
    the others), ``pass_fds`` (descriptors it inherits, e.g. PMI_FD),
    ``after_spawn`` (called once it was spawned or failed to), ``in_child`` (called
    in the child before it executes, e.g. to take a pty as its controlling terminal;
    the spawn cannot vfork then) and ``cpus``."""

    __slots__ = ("id", "local_id", "cmd", "env", "cwd", "pid", "pidfd", "status", "code", "stdin_fd",
                 "stdout_fd", "stderr_fd", "pass_fds", "after_spawn", "in_child", "cpus")

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
        self.stdin_fd = None
        self.stdout_fd = None
        self.stderr_fd = None
        self.pass_fds = []
        self.after_spawn = []
        self.in_child = []
        self.cpus = None


class Shell:
    """One job shell. ``args``: ``{id, jobspec, R, rank, uri, rundir, level, topology}``,
    and from the fork server ``task_fd`` (where it learns task pids) and
    ``signal_fd`` (signals caught since the fork)."""

    def __init__(self, args):
        from flux_launch.core.jobid import JobID
        from flux_launch.proto import rv1
        from flux_launch.proto.jobspec import summary
        from flux_launch.shell.plugins import builtins

        self.jobid = JobID(args["id"])
        self.jobspec = args["jobspec"]
        self.R = args["R"]
        self.rank = args["rank"]
        self.uri = args["uri"]
        self.rundir = args.get("rundir") or "/tmp"
        self.level = args.get("level", 0)  # the broker's instance-level
        self.summary = summary(self.jobspec)
        system = self.jobspec.get("attributes", {}).get("system", {})
        self.options = system.get("shell", {}).get("options", {}) or {}
        self.alloc = rv1.decode(self.R).ranks
        self.taskmap = rcalc.compute(self.alloc, self.summary, self.options.get("per-resource"))
        self.node_index = self.taskmap.node_index(self.rank)
        self.leader = self.node_index == 0
        self.service = f"shell-{int(self.jobid)}"
        self.verbose = int(self.options.get("verbose", 0) or 0)
        self.task_fd = args.get("task_fd")
        self.signal_fd = args.get("signal_fd")
        self.topology = args.get("topology") or {}  # this node's cores (PUs) and GPUs
        env = {k: v for k, v in (system.get("environment") or {}).items()
               if k not in ENV_BLOCKLIST and not k.startswith(ENV_BLOCKLIST_PREFIX)}
        env.update(FLUX_JOB_ID=str(self.jobid), FLUX_JOB_SIZE=str(self.taskmap.ntasks),
                   FLUX_JOB_NNODES=str(len(self.taskmap.ranks)), FLUX_URI=self.uri)
        self.env = env
        self.cwd = system.get("cwd")
        self.command = self.jobspec["tasks"][0]["command"]
        self.tasks = []
        self.running = 0
        self.handle = None
        self.fatal = None  # set by raise_exception: the job is failing
        self.loop = None  # the broker handle's reactor, once connected
        self.plugins = PlugStack(builtins())
        self._aux = {}
        self._log_sinks = []  # (log(level, text), flush() or None)
        self._event_sinks = []
        self._refs = {}  # completion reference name -> count
        self._waited = []  # RPCs whose answers the shell waits for before it exits
        self._services = {}  # method of the shell's service -> callback(request)
        self._signal_hooks = []  # called with each signal kill_tasks sent
        self.start_context = {}  # plugins' additions to the shell.start event
        self._draining = False
        self._exit_timer = None
        self._spawned = False  # every local task was spawned (or failed to)
        self._early_signals = []  # kill_tasks's signals before then, for each task as it starts

    # ---- services for plugins -------------------------------------------------------

    def aux_set(self, name, obj):
        """Keep a plugin's state under ``name`` (its plugin name, by convention)."""
        self._aux[name] = obj

    def aux_get(self, name):
        """What ``aux_set(name, ...)`` kept, else None."""
        return self._aux.get(name)

    def log(self, level, text):
        """A shell message for the user (``level``: FATAL, ERROR, WARN, INFO, DEBUG,
        TRACE): to the log sinks (the output plugin puts it in the job's output,
        shown as ``flux-shell[N]: LEVEL: text``), or to the shell's stderr while
        none is registered."""
        if self._log_sinks:
            for log, _flush in self._log_sinks:
                log(level, text)
        else:
            os.write(2, f"flux-shell[{self.node_index}]: {level}: {text}\n".encode())

    def add_log_sink(self, log, flush=None):
        """Send ``log`` messages to ``log(level, text)``; ``flush()``, when given, is
        called before the shell exits on a failure, so that the last ones are kept."""
        self._log_sinks.append((log, flush))

    def emit_event(self, name, context):
        """An event of this shell for the job's exec eventlog (``shell.init``,
        ``shell.start``, ``shell.task-exit``...), timestamped now, given to the event
        sinks (the output plugin writes them with its next batch)."""
        for sink in self._event_sinks:
            sink(name, context)

    def add_event_sink(self, sink):
        """Call ``sink(name, context)`` for each ``emit_event``."""
        self._event_sinks.append(sink)

    def add_completion_ref(self, name):
        """Keep the shell's loop running until ``remove_completion_ref(name)`` (counted
        per name)."""
        self._refs[name] = self._refs.get(name, 0) + 1

    def remove_completion_ref(self, name):
        """Drop one reference ``name``; the loop ends when none is left."""
        n = self._refs.get(name, 0) - 1
        if n > 0:
            self._refs[name] = n
        else:
            self._refs.pop(name, None)

    def watch_fd(self, fd, events, callback):
        """Call ``callback(fd, events)`` while ``fd`` is ready (``loop.READ``/``WRITE``)."""
        self.loop.watch_fd(fd, events, callback)

    def unwatch_fd(self, fd):
        self.loop.unwatch_fd(fd)

    def timer(self, after, callback):
        """Call ``callback()`` once, ``after`` seconds from now; returns the timer
        (``stop()`` drops it)."""
        return self.loop.timer(after, callback)

    def rpc(self, topic, payload=None, nodeid=NODEID_ANY, streaming=False, then=None, error=None, wait=None):
        """Send a request to the broker; its answers come back in the loop.

        Args:
            then: ``then(payload)`` for each successful response.
            error: ``error(exc)`` for an error response (``OSError``); by default it
                is one line on the shell's stderr (``rpc_failed``).
            wait: the shell waits for the answer before it exits (default: for a
                non-streaming RPC), up to ``DRAIN_TIMEOUT``.

        Returns the future. Raises ``ConnectionError`` when the broker is gone.
        """
        fut = self.handle.rpc(topic, payload, nodeid, STREAMING if streaming else 0)
        if wait if wait is not None else not streaming:
            if len(self._waited) >= 64:
                self._waited = [f for f in self._waited if not f.done]
            self._waited.append(fut)
        self.loop.then(fut, then or _ignore, error or (lambda exc: self.rpc_failed(topic, exc)))
        return fut

    def rpc_failed(self, topic, exc):
        """The default for an RPC's error: one line on the shell's stderr (not in the
        job's output: the output's commit may be what failed)."""
        os.write(2, f"flux-shell[{self.node_index}]: ERROR: {topic}: {exc.strerror}\n".encode())

    def service_register(self, method, callback):
        """Serve ``shell-<jobid>.<method>`` (sent to this shell's broker rank) with
        ``callback(request)``, which answers with ``respond``. The first method
        registers the service with the broker; requests for others get ENOSYS."""
        if not self._services:
            self.rpc("service.add", {"name": self.service})
            self.loop.serve(self._request)
        self._services[method] = callback

    def respond(self, req, payload=None, errnum=0, errstr=None):
        self.handle.respond(req, payload, errnum=errnum, errstr=errstr)

    def raise_exception(self, etype, note):
        """A fatal job exception (the job ends; its tasks are killed by exec)."""
        if self.fatal is None:
            self.fatal = note
            self.log("FATAL", note)
            self.rpc("job-manager.raise", raise_payload(self.jobid, etype, note))

    def kill_tasks(self, sig):
        """Send ``sig`` to every running task's process group, then call the signal
        hooks with it. Before every task is spawned, ``sig`` is also kept for the
        tasks still to come: each gets it as it starts."""
        if not self._spawned:
            self._early_signals.append(sig)
        for task in self.tasks:
            if task.pid is not None and task.status is None:
                try:
                    os.killpg(task.pid, sig)
                except ProcessLookupError:
                    pass
        for hook in self._signal_hooks:
            hook(sig)

    def add_signal_hook(self, hook):
        """Call ``hook(sig)`` each time ``kill_tasks`` has sent ``sig`` (the ptrace
        plugin continues the tasks it holds stopped)."""
        self._signal_hooks.append(hook)

    # ---- lifecycle ------------------------------------------------------------------

    def connect(self):
        from flux_launch.client.handle import Flux

        self.handle = Flux(self.uri)
        self.loop = Loop(self.handle, self._lost)

    def run(self):
        """The lifecycle; returns the exit code.

        Raises:
            PluginError: a plugin failed where the shell must (``FATAL_TOPICS``).
            SystemExit: the broker connection was lost (tasks are killed).
        """
        self.connect()
        self._signals()
        self.plugins.call("shell.init", self)
        if self.leader:
            self.emit_event("shell.init", {"service": self.service, "leader-rank": self.rank,
                                           "size": len(self.taskmap.ranks)})
        self.plugins.call("shell.post-init", self)
        pre_exec = self.plugins.has("task.exec")
        for taskid in self.taskmap.local(self.rank):
            local_id = len(self.tasks)
            env = dict(self.env, FLUX_TASK_RANK=str(taskid), FLUX_TASK_LOCAL_ID=str(local_id))
            task = Task(taskid, local_id, list(self.command), env, self.cwd)
            self.tasks.append(task)
            self.plugins.call("task.init", self, task)
            if self._spawn(task, pre_exec):
                self.plugins.call("task.fork", self, task)
        self._spawned = True
        self.plugins.call("shell.start", self)
        if self.leader:
            self.emit_event("shell.start", {"taskmap": self.taskmap.rfc34(), **self.start_context})
        while self._refs:
            self.loop.run_once()
        if self._exit_timer is not None:
            self._exit_timer.stop()
        self.plugins.call("shell.finish", self)
        self._drain()
        self.plugins.call("shell.exit", self)
        return max((t.code for t in self.tasks), default=0)

    def _spawn(self, task, pre_exec=False):
        """Start ``task``; True when it runs (a failure to start is its exit: 127 for
        a command not found, else 126, logged)."""
        stdin = task.stdin_fd if task.stdin_fd is not None else os.open(os.devnull, os.O_RDONLY)
        saved = None
        if task.cpus:
            # The child inherits the affinity set here, before it executes: the shell is
            # single-threaded, so setting its own and restoring it right after is safe.
            saved = os.sched_getaffinity(0)
            os.sched_setaffinity(0, task.cpus)
        try:
            from flux_launch.shell import forkbroker

            if forkbroker.applies(task):  # a nested instance's broker: no exec, no imports
                pid = forkbroker.spawn(task, stdin, self._task_exec(task))
            else:
                import subprocess

                # a pre-exec hook only for task.exec callbacks: without one, Popen can vfork
                proc = subprocess.Popen(task.cmd, env=task.env, cwd=task.cwd, stdin=stdin, stdout=task.stdout_fd,
                                        stderr=task.stderr_fd, start_new_session=True, close_fds=True,
                                        pass_fds=task.pass_fds,
                                        preexec_fn=self._task_exec(task) if pre_exec or task.in_child else None)
                proc.returncode = 0  # reaped through its pidfd below, not by Popen
                pid = proc.pid
        except OSError as exc:
            code = 127 if exc.errno == errno.ENOENT else 126
            what = f"cwd {task.cwd}" if exc.filename == task.cwd and task.cwd else task.cmd[0]
            self.log("ERROR", f"task {task.id}: start failed: {what}: {exc.strerror}")
            task.code = code
            task.status = waitstatus(code)
            self.plugins.call("task.exit", self, task)
            return False
        finally:
            if saved is not None:
                os.sched_setaffinity(0, saved)
            if task.stdin_fd is None:
                os.close(stdin)
            for fn in task.after_spawn:
                fn()
        task.pid = pid
        if self.task_fd is not None:
            try:
                os.write(self.task_fd, f"{pid}\n".encode())
            except OSError:
                pass
        for sig in self._early_signals:
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                pass
        task.pidfd = os.pidfd_open(pid)
        self.loop.watch_fd(task.pidfd, READ, lambda _fd, _ev, t=task: self._task_exited(t))
        self.running += 1
        self.add_completion_ref("tasks")
        return True

    def _task_exec(self, task):
        def in_child():
            for fn in task.in_child:
                fn()
            self._log_sinks = []  # this copy of the shell logs to the task's stderr
            self.plugins.call("task.exec", self, task)

        return in_child

    def _task_exited(self, task):
        _, status = os.waitpid(task.pid, 0)
        self.unwatch_fd(task.pidfd)
        os.close(task.pidfd)
        task.status = status
        task.code = exit_code(status)
        self.running -= 1
        if term_signal(status):
            # killed: what it left in its process group (a nested broker's initial
            # program) goes with it, or the job would wait on their hold of its output
            try:
                os.killpg(task.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.emit_event("shell.task-exit", {
            "localid": task.local_id, "rank": task.id, "state": "Exited", "pid": task.pid,
            "wait_status": status, "signaled": term_signal(status), "exitcode": task.code})
        self.plugins.call("task.exit", self, task)
        self.remove_completion_ref("tasks")
        if task.code != 0 and self._exit_timer is None:
            timeout = _exit_timeout(self.options.get("exit-timeout"))
            if timeout is not None and self.running:
                self._exit_timer = self.timer(timeout, self._exit_timeout_expired)

    def _exit_timeout_expired(self):
        self._exit_timer = None
        if self.running:
            self.log("ERROR", f"exit-timeout expired: killing the {self.running} remaining task(s)")
            self.kill_tasks(signal.SIGKILL)

    def _signals(self):
        r = self.signal_fd if self.signal_fd is not None else catch_signals()
        self.loop.watch_fd(r, READ, self._signalled)

    def _signalled(self, fd, _events):
        for signum in os.read(fd, 64):
            self.kill_tasks(signum)

    def _request(self, req):
        """A request to the shell's service, to the callback of its method."""
        topic = req.get("topic") or ""
        service, _, method = topic.partition(".")
        callback = self._services.get(method) if service == self.service else None
        if callback is None:
            self.respond(req, errnum=errno.ENOSYS, errstr=f"{req.get('topic')}: not served by this shell")
            return
        callback(req)

    def _lost(self):
        if self._draining:  # nothing more can come: stop waiting
            self._waited = []
            return
        # the tasks first: stderr may be a pipe whose reader went with the broker
        self.kill_tasks(signal.SIGKILL)
        try:
            os.write(2, f"flux-shell[{self.node_index}]: FATAL: lost the broker connection\n".encode())
        except OSError:
            pass
        raise SystemExit(1)

    def _drain(self):
        """Run the loop until the RPCs sent with ``wait`` are answered (the output's
        last commits, a job exception), ``DRAIN_TIMEOUT`` at most."""
        self._draining = True
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while True:
            self._waited = [f for f in self._waited if not f.done]
            left = deadline - time.monotonic()
            if not self._waited or left <= 0:
                return
            self.loop.run_once(left)

    def fail(self, text):
        """The shell fails with ``text``: it goes in the job's output (when a log sink
        is there), and the job gets an ``exec`` exception naming this rank.

        Raises:
            OSError, TimeoutError, ConnectionError: the broker could not be told.
        """
        if self._log_sinks:
            self.log("FATAL", text)
            for _log, flush in self._log_sinks:
                if flush is not None:
                    flush()
            self._drain()
        if self.handle is not None:
            # the user learns why from the job itself (flux run prints the exception)
            self.handle.rpc("job-manager.raise", raise_payload(self.jobid, "exec",
                                                               f"shell on rank {self.rank}: {text}")).get(5)


def _ignore(_arg):
    pass


def catch_signals(pipe=None):
    """Catch the forwarded signals into a pipe (``pipe``: ``(r, w)``, else a new
    one); returns its read end. Signals that arrive before the tasks exist wait
    there and are forwarded once they run."""
    r, w = pipe or os.pipe()
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
        text = str(exc) if isinstance(exc, PluginError) else f"shell failed: {exc}"
        if os.environ.get("FLUX_LAUNCH_DEBUG"):
            import traceback

            traceback.print_exc()
        try:
            if shell is not None:
                shell.fail(text)
        except (OSError, TimeoutError, ConnectionError):
            pass
        finally:
            os.write(2, f"flux-shell: FATAL: {text}\n".encode())
        return 1
