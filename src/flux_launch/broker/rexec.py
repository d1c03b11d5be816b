"""The remote execution server (``rexec``), used by ``flux exec``.

``rexec.exec`` (streaming) starts a command on this rank, in its own session, with
the client's environment except ``FLUX_URI``, which names this broker. Responses:
``{"type": "started", "pid", "rank"}``, then ``{"type": "output", "stream",
"data"}`` (``data`` is text, or ``{"b64": ...}`` for bytes that are not UTF-8),
then ``{"type": "finished", "status"}`` (exit code, or 128+signal), then ``ENODATA``.

``rexec.write {pid, data, eof}`` feeds the command's stdin; ``rexec.kill {pid,
signum}`` signals its process group. A client that disconnects has its commands
killed (SIGKILL to the process group): nothing outlives the client that asked.

``rexec.exec`` with ``jobid`` (``flux exec --jobid``) runs a tool beside a job
whose shell runs on this rank: with the job's environment (its jobspec's
``attributes.system.environment``, ``FLUX_JOB_ID``, ``FLUX_JOB_TMPDIR`` of this
node), in the job's cwd unless ``cwd`` is given, the client's ``env`` ignored.
It is refused (ESRCH) when the job has no shell here. The instance owner may run
tools in any job; anyone else only in their own (rank 0's ``job-manager.target``
says whose it is), and may then write to and signal only their own tools. A
tool is a process of its own: its crash is not the job's; the job's shell
exiting here kills the tools still running beside it.
"""

import asyncio
import errno
import logging
import os
import signal

from flux_launch.proto.rexec import decode_data, encode_data
from flux_launch.services.base import Service, ServiceError

log = logging.getLogger("flux_launch.broker")

# A fork server that has not reported a job this long after it was told to SIGKILL
# the job's shell is stuck: a SIGKILLed shell is reaped at once by a server that
# runs; the margin is for a loaded machine.
STUCK_TIMEOUT = 10.0
END_GRACE = 1.0  # at shutdown, from the SIGTERM of the jobs' shells to their SIGKILL
SEND_TIMEOUT = 5.0  # a blocked send holds the broker's loop: bounded, then the server is killed


class _Proc:
    __slots__ = ("proc", "req", "owner", "streams_open", "jobid", "userid")

    def __init__(self, proc, req, owner, jobid=None):
        self.proc = proc
        self.req = req
        self.owner = owner
        self.streams_open = 2
        self.jobid = jobid  # the job a tool runs beside (rexec.exec with jobid)
        self.userid = req.get("userid")


class ForkServerClient:
    """The broker's side of the shell fork server (``services/exec/forkserver.py``).

    It knows the pid of every shell the server started and of their tasks. If the
    server dies, those shells and tasks are killed (SIGKILL to their process groups:
    nothing is left running that no one can report on), each of their jobs gets an
    error, and a new server is started for the jobs that come next. A server that
    stops answering (stopped, hung) is killed to the same effect: when a job whose
    shell it was told to SIGKILL (the kill escalation's last step) is still
    unreported ``STUCK_TIMEOUT`` seconds later, or when a message to it cannot be
    sent within ``SEND_TIMEOUT`` seconds.
    """

    def __init__(self, sock, pid):
        self.pending = {}  # jobid -> callback(kind, fields)
        self.procs = {}  # jobid -> [shell pid, task pids...] (each leads a process group)
        self.proc = None  # the Popen of a server started after the first one died
        self.closed = False
        self.killed = None  # the pid of a server killed for not answering
        self._attach(sock, pid)

    def _attach(self, sock, pid):
        from flux_launch.proto import message as _msg

        self.sock = sock
        self.pid = pid
        self.decoder = _msg.Decoder()
        self.frame = _msg.frame
        sock.setblocking(False)
        asyncio.get_running_loop().add_reader(sock.fileno(), self._read)

    def start(self, jobid, args, callback):
        if self.sock.fileno() < 0:  # it died and no new one could be started
            callback("error", {"errstr": "no job shell fork server on this rank"})
            return
        self.pending[jobid] = callback
        self._send({"type": "ctl", "topic": "start", "id": jobid, "args": args})

    def kill(self, jobid, signum, final=False):
        """Relay a signal for a job's shell; ``final`` (the kill escalation's last
        step) has the server SIGKILL the shell itself, so a server that still has
        not reported the job ``STUCK_TIMEOUT`` seconds later is not answering."""
        if jobid in self.pending:
            self._send({"type": "ctl", "topic": "kill", "id": jobid, "signum": signum, "final": final})
            if final:
                asyncio.get_running_loop().call_later(STUCK_TIMEOUT, self._check_reported, jobid, self.pid)

    def end_all(self):
        """The broker shuts down: SIGTERM to every job's shell (it passes it to its
        tasks and reports their end), SIGKILL ``END_GRACE`` seconds later to what
        is left. The broker waits for them (``pending``) while its services still
        run, so the shells report to it instead of losing it."""
        for jobid in list(self.pending):
            self.kill(jobid, signal.SIGTERM)
        if self.pending:
            asyncio.get_running_loop().call_later(END_GRACE, self._end_all_kill)

    def _end_all_kill(self):
        for jobid in list(self.pending):
            self.kill(jobid, signal.SIGKILL, final=True)

    def _check_reported(self, jobid, pid):
        if jobid in self.pending and pid == self.pid and not self.closed:
            from flux_launch.core.jobid import JobID

            self._kill_server(f"job {JobID(jobid)} is still unreported {STUCK_TIMEOUT:g}s after its shell's SIGKILL")

    def _kill_server(self, why):
        """The server does not answer: SIGKILL it (once); its EOF then ends its
        shells and jobs and starts a new one (``_died``)."""
        if self.killed == self.pid:
            return
        self.killed = self.pid
        log.error("rexec: the job shell fork server (pid %d) does not answer (%s): killing it", self.pid, why)
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def _send(self, msg):
        if self.sock.fileno() < 0:
            return
        self.sock.settimeout(SEND_TIMEOUT)
        try:
            self.sock.sendall(self.frame(msg))
        except TimeoutError:  # its socket stays full: it reads nothing (stopped, hung)
            self._kill_server(f"a message could not be sent in {SEND_TIMEOUT:g}s")
        except OSError as exc:  # the fork server is gone; _read reports it
            log.debug("rexec: cannot reach the shell fork server: %s", exc)
        finally:
            if self.sock.fileno() >= 0:
                self.sock.setblocking(False)

    def _read(self):
        try:
            data = self.sock.recv(1 << 20)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._died()
            return
        for m in self.decoder.feed(data):
            if isinstance(m, Exception):
                continue
            kind = m.get("topic")
            jobid = m.get("id")
            cb = self.pending.get(jobid)
            if cb is None:
                continue
            if kind == "started":
                self.procs[jobid] = [m.get("pid")]
            elif kind == "tasks":
                self.procs.setdefault(jobid, []).extend(m.get("pids") or ())
                continue
            if kind in ("exited", "error"):
                del self.pending[jobid]
                self.procs.pop(jobid, None)
            cb(kind, m)

    def _died(self):
        """The server exited: kill what it ran, fail its jobs, start another."""
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.sock.fileno())
        self.sock.close()
        status = self._reap()
        why = f"was killed by {signal.Signals(status & 0x7F).name}" if status is not None and status & 0x7F \
            else "exited"
        for pids in self.procs.values():
            for pid in pids:  # the shell first: it spawns no more tasks
                if isinstance(pid, int) and pid > 0:
                    RexecServer._signal(pid, signal.SIGKILL)
        self.procs.clear()
        if self.closed:
            return
        log.error("rexec: the job shell fork server %s; its jobs' shells and tasks on this rank were killed; "
                  "starting a new one", why)
        pending, self.pending = self.pending, {}
        for cb in pending.values():
            cb("error", {"errstr": f"the job shell fork server {why}: its shells and tasks were killed"})
        try:
            self._respawn()
        except OSError as exc:
            log.error("rexec: cannot start a new shell fork server: %s", exc)

    def _reap(self):
        """Reap the dead server; its wait status, or None if unknown."""
        if self.proc is not None:
            try:
                self.proc.wait(1.0)
            except Exception:  # noqa: BLE001 - a status is only for the log line
                return None
            rc = self.proc.returncode
            return -rc if rc < 0 else rc << 8
        import time

        deadline = time.monotonic() + 1.0  # EOF comes as it exits: a zombie at once, or nearly
        while True:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if pid or time.monotonic() > deadline:
                return status if pid else None
            time.sleep(0.01)

    def _respawn(self):
        import socket
        import subprocess
        import sys

        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "flux_launch.services.exec.forkserver",
                                          str(child.fileno())], pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL)
        except OSError:
            parent.close()
            raise
        finally:
            child.close()
        self._attach(parent, self.proc.pid)

    def close(self):
        self.closed = True
        try:
            asyncio.get_running_loop().remove_reader(self.sock.fileno())
        except (RuntimeError, ValueError):
            pass
        self.sock.close()
        if self.proc is not None:  # a server started here: it exits at the EOF
            try:
                self.proc.wait(5.0)
            except Exception:  # noqa: BLE001
                self.proc.kill()


class RexecServer:
    """The ``rexec`` service of one broker (``service``, registered by the builtins);
    only the instance owner may use it."""

    def __init__(self, broker):
        self.broker = broker
        self.procs = {}
        self.jobs = {}  # jobid -> the rexec.shell payload of a job whose shell runs here
        self.forkserver = None
        self.service = Service(broker, "rexec", {
            "exec": self._exec, "write": self._write, "kill": self._kill, "list": self._list,
            "shell": self._shell, "shell-kill": self._shell_kill, "disconnect": self._disconnect},
            check=self._owner_only)

    @staticmethod
    def _owner_only(msg, method):
        """A guest may only run tools in jobs (checked by ``_exec``) and write to or
        signal their own (``_mine``)."""
        if msg.get("rolemask", 1) == 1 or method in ("disconnect", "write", "kill"):
            return
        if method == "exec" and isinstance(msg.get("payload"), dict) and "jobid" in msg["payload"]:
            return
        raise ServiceError(errno.EPERM, "rexec: only the instance owner may run commands")

    def _mine(self, msg, entry):
        if msg.get("rolemask", 1) != 1 and entry.userid != msg.get("userid"):
            raise ServiceError(errno.EPERM, "rexec: permission denied: not your process")

    def _shell(self, msg, p):
        """``rexec.shell {id, jobspec, R, ranks}``: start this rank's shell of a job."""
        broker = self.broker
        if type(p.get("id")) is not int:
            raise ServiceError(errno.EPROTO, "rexec.shell: id, jobspec and R are required")
        if self.forkserver is None:
            raise ServiceError(errno.ENOSYS, "rexec.shell: no shell fork server on this rank")
        topo = broker.topology or {}
        args = {"id": p["id"], "jobspec": p.get("jobspec"), "R": p.get("R"), "rank": broker.rank,
                "uri": broker.attrs["local-uri"], "rundir": broker.attrs["rundir"],
                "level": int(broker.attrs.get("instance-level", "0")),
                "topology": {"cores": topo.get("cores", []), "source": topo.get("source"),
                             "gpus": [{"index": g["index"], "vendor": g["vendor"]} for g in topo.get("gpus", ())]}}

        def cb(kind, fields):
            if kind == "started":
                self.jobs[p["id"]] = p
                broker.respond(msg, {"type": "started", "pid": fields["pid"], "rank": broker.rank})
                return
            self._job_ended(p["id"])
            if kind == "exited":
                broker.respond(msg, {"type": "finished", "status": fields["status"], "rank": broker.rank})
                broker.respond_error(msg, errno.ENODATA)
            else:
                broker.respond_error(msg, errno.EIO, fields.get("errstr", "shell failed"))

        self.forkserver.start(p["id"], args, cb)

    def _job_ended(self, jobid):
        """A job's shell here is gone: so are the tools beside it."""
        self.jobs.pop(jobid, None)
        for pid, entry in list(self.procs.items()):
            if entry.jobid == jobid:
                self._signal(pid, signal.SIGKILL)

    def _shell_kill(self, msg, p):
        self.forkserver.kill(p.get("id"), p.get("signum", signal.SIGTERM), final=p.get("final") is True)
        self.broker.respond(msg, {})

    def _list(self, msg, p):
        self.broker.respond(msg, {"procs": [{"pid": pid, "cmd": entry.req["payload"]["cmd"]}
                                            for pid, entry in self.procs.items()]})

    def _disconnect(self, msg, p):
        """A client went away: the commands it started are killed."""
        owner = tuple(msg.get("route", ()))
        for entry in list(self.procs.values()):
            if entry.owner == owner:
                self._signal(entry.proc.pid, signal.SIGKILL)

    async def _exec(self, msg, p):
        broker = self.broker
        cmd = p.get("cmd")
        if not isinstance(cmd, list) or not cmd or not all(isinstance(a, str) for a in cmd):
            raise ServiceError(errno.EPROTO, "rexec.exec: cmd must be a non-empty list of strings")
        jobid = p.get("jobid")
        env = p.get("env")
        cwd = p.get("cwd") or None
        if jobid is not None:
            env, job_cwd = await self._job_context(msg, jobid)
            cwd = cwd or job_cwd
        if env is not None and not (isinstance(env, dict) and all(isinstance(v, str) for v in env.values())):
            raise ServiceError(errno.EPROTO, "rexec.exec: env must map names to strings")
        if cwd is not None and not isinstance(cwd, str):
            raise ServiceError(errno.EPROTO, "rexec.exec: cwd must be a string")
        if cwd is not None and not os.path.isdir(cwd):
            raise ServiceError(errno.ENOTDIR, f"cannot run in {cwd}: no such directory on rank {broker.rank}")
        env = broker.child_env(env)
        try:
            proc = await asyncio.create_subprocess_exec(
                *cmd, env=env, cwd=cwd, start_new_session=True,
                stdin=asyncio.subprocess.PIPE if p.get("stdin") else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except OSError as exc:
            raise ServiceError(exc.errno or errno.EIO, f"{cmd[0]}: {exc.strerror or exc}") from None
        except (TypeError, ValueError) as exc:
            raise ServiceError(errno.EPROTO, f"rexec.exec: {exc}") from None
        owner = tuple(msg.get("route", ()))
        entry = _Proc(proc, msg, owner, jobid)
        self.procs[proc.pid] = entry
        if jobid is not None and jobid not in self.jobs:  # the job ended while the tool started
            self._signal(proc.pid, signal.SIGKILL)
        if getattr(broker, "_shutting_down", False):  # shutdown's kill_all ran while it started
            self._signal(proc.pid, signal.SIGKILL)
        broker.respond(msg, {"type": "started", "pid": proc.pid, "rank": broker.rank})
        await asyncio.gather(self._pump(msg, proc.stdout, "stdout"), self._pump(msg, proc.stderr, "stderr"))
        rc = await proc.wait()
        del self.procs[proc.pid]
        broker.respond(msg, {"type": "finished", "pid": proc.pid, "rank": broker.rank,
                             "status": rc if rc >= 0 else 128 - rc})
        broker.respond_error(msg, errno.ENODATA)

    async def _job_context(self, msg, jobid):
        """``(env, cwd)`` of a tool beside job ``jobid``, once the requester may run it.

        Raises:
            ServiceError: EPROTO (a bad id), ESRCH (no shell of the job here),
                EPERM (a guest's request about another user's job).
        """
        from flux_launch.core.jobid import JobID

        if type(jobid) is not int or jobid < 0:
            raise ServiceError(errno.EPROTO, "rexec.exec: jobid must be a job id (an integer)")
        job = self.jobs.get(jobid)
        if job is None:
            raise ServiceError(errno.ESRCH, f"job {JobID(jobid)} is not running on rank {self.broker.rank}")
        if msg.get("rolemask", 1) != 1:
            _out, errnum, errstr = await self._ask("job-manager.target", {"id": jobid, "userid": msg.get("userid")})
            if errnum:
                raise ServiceError(errnum, errstr or "permission denied")
        system = (job.get("jobspec") or {}).get("attributes", {}).get("system", {})
        env = {k: v for k, v in (system.get("environment") or {}).items()
               if isinstance(v, str) and not k.startswith(("PMI_", "SLURM_"))}
        jid = JobID(jobid)
        env["FLUX_JOB_ID"] = str(jid)
        # the tmpdir plugin's path (shell/plugins/tmpdir.py)
        env["FLUX_JOB_TMPDIR"] = os.path.join(self.broker.attrs["rundir"], f"jobtmp-{self.broker.rank}-{jid.f58plain}")
        cwd = system.get("cwd")
        return env, cwd if isinstance(cwd, str) and os.path.isdir(cwd) else None

    def _ask(self, topic, payload, nodeid=0):
        """An RPC of this broker's to another service: a future of ``(payload,
        errnum, errstr)``."""
        fut = asyncio.get_running_loop().create_future()

        def cb(out, errnum, errstr):
            if not fut.done():
                fut.set_result((out, errnum, errstr))

        self.broker.rpc(topic, payload, nodeid, cb)
        return fut

    async def _pump(self, msg, stream, name):
        while True:
            data = await stream.read(65536)
            if not data:
                break
            self.broker.respond(msg, {"type": "output", "stream": name, "data": encode_data(data)})

    def _write(self, msg, p):
        entry = self.procs.get(p.get("pid"))
        if entry is None or entry.proc.stdin is None:
            raise ServiceError(errno.ENOENT, f"rexec.write: no process {p.get('pid')} with stdin")
        self._mine(msg, entry)
        stdin = entry.proc.stdin
        try:
            if p.get("data"):
                stdin.write(decode_data(p["data"]))
            if p.get("eof"):
                stdin.close()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.broker.respond(msg, {})

    def _kill(self, msg, p):
        pid = p.get("pid")
        if pid not in self.procs:
            raise ServiceError(errno.ESRCH, f"rexec.kill: no process {pid} on rank {self.broker.rank}")
        self._mine(msg, self.procs[pid])
        self._signal(pid, int(p.get("signum", signal.SIGTERM)))
        self.broker.respond(msg, {})

    @staticmethod
    def _signal(pid, sig):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass

    def kill_all(self):
        for pid in list(self.procs):
            self._signal(pid, signal.SIGKILL)
