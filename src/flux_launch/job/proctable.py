"""A running job's tasks, where each one runs: the proctable its shells answer.

``proctable(h, jobid)`` waits until the job's tasks were started (the leader
shell's ``shell.start`` in the exec eventlog, as flux-core's ``flux job
hostpids`` and ``attach --debug`` do: a pending job is waited for), then asks the
``shell-<jobid>.proctable`` method of the shell on every broker rank of the job
(its R) and returns one entry per task in task rank order::

    Proctable(entries=[{"rank", "host", "executable", "pid"}, ...], sync=bool,
              service="shell-ID", leader_rank=N)

``sync`` is true when the tasks were stopped in exec (``-o stop-tasks-in-exec``)
and wait for a SIGCONT. A shell that does not serve yet (ENOSYS: the leader's
``shell.start`` can come before another node's shell registered) is asked again
every ``RETRY`` seconds while the job runs.

Failures raise ``OSError``: ENOENT (no such job), EPERM (another user's job),
EINVAL (the job is not running, or ended before its tasks started), ETIMEDOUT
(nothing within ``timeout`` seconds).
"""

import errno
import time

from flux_launch.client.handle import NORESPONSE, STREAMING
from flux_launch.core.jobid import JobID
from flux_launch.proto.eventlog import EventlogParser
from flux_launch.proto.job import STATE_BITS, is_fatal

RETRY = 0.05
ANSWER_TIMEOUT = 30.0  # the longest a started job's shells get to answer (no timeout given)


class Proctable:
    """What ``proctable`` returns (see the module docstring)."""

    __slots__ = ("entries", "sync", "service", "leader_rank", "ntasks")

    def __init__(self, entries, sync, service, leader_rank, ntasks):
        self.entries = entries
        self.sync = sync
        self.service = service
        self.leader_rank = leader_rank
        self.ntasks = ntasks


def job_state(h, jobid):
    """The job's state name (``RUN``, ``INACTIVE``...).

    Raises:
        OSError: ENOENT, EPERM from job-list.
    """
    bits = h.rpc("job-list.list-id", {"id": int(jobid)}).get()["job"]["state"]
    return next((name for name, bit in STATE_BITS.items() if bit == bits), "?")


def check_running(h, jobid, what):
    """Raise ``OSError(EINVAL, "<what>: job ID is not running")`` unless the job is
    pending or running (ENOENT and EPERM as they come)."""
    state = job_state(h, jobid)
    if state in ("CLEANUP", "INACTIVE"):
        raise OSError(errno.EINVAL, f"{what}: job {JobID(jobid)} is not running ({state.lower()})")


def proctable(h, jobid, timeout=None, what="proctable"):
    """The job's tasks (a ``Proctable``), once started; ``what`` names the command
    in error messages. Raises OSError (see the module docstring)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    check_running(h, jobid, what)
    init, start = _StartWait(h, jobid, what).run(timeout)
    service = init.get("service") or f"shell-{int(jobid)}"
    leader = init.get("leader-rank", 0)
    ntasks = _ntasks(start.get("taskmap"))
    left = None if deadline is None else max(0.0, deadline - time.monotonic())
    entries = _gather(h, jobid, service, _ranks(h, jobid), ANSWER_TIMEOUT if left is None else left, what)
    return Proctable(entries, bool(start.get("sync")), service, leader, ntasks)


class _StartWait:
    """Follow the main and exec eventlogs until ``shell.start``; the job's end (or a
    fatal exception) before it is an error."""

    def __init__(self, h, jobid, what):
        self.h = h
        self.jid = int(jobid)
        self.what = what
        self.init = None
        self.start = None
        self.error = None
        self.finished = False

    def run(self, timeout):
        h = self.h
        jid = self.jid
        self.main = h.rpc("job-info.eventlog-watch", {"id": jid, "path": "eventlog"}, flags=STREAMING)
        self.exec = h.rpc("job-info.eventlog-watch", {"id": jid, "path": "guest.exec.eventlog"}, flags=STREAMING)
        self.main_lines, self.exec_lines = EventlogParser(), EventlogParser()
        self.main.then(self._on_main)
        self.exec.then(self._on_exec)
        timer = None
        if timeout is not None:
            timer = h.timer_watcher_create(timeout, self._expired).start()
        try:
            h.reactor_run()
        finally:
            self.finished = True
            if timer is not None:
                timer.stop()
            for fut in (self.main, self.exec):
                if not fut.done:
                    h.rpc("job-info.eventlog-watch-cancel", {"id": jid, "matchtag": fut.matchtag}, flags=NORESPONSE)
        if self.error is not None:
            raise self.error
        return self.init or {}, self.start

    def _fail(self, errnum, text):
        if self.error is None and self.start is None:
            self.error = OSError(errnum, text)
        self.h.reactor_stop()

    def _expired(self, *_args):
        self._fail(errno.ETIMEDOUT, f"{self.what}: timed out waiting for job {JobID(self.jid)}'s tasks to start")

    def _events(self, fut, parser):
        """The events received; an error ends the wait (None returned)."""
        events = []
        while fut.is_ready():
            try:
                value = fut.get()["value"]
            except OSError as exc:
                if self.finished:
                    return None
                if exc.errno == errno.ENODATA:
                    self._fail(errno.EINVAL, f"{self.what}: job {JobID(self.jid)} ended before its tasks started")
                elif exc.errno == errno.EPERM:
                    self._fail(errno.EPERM, f"{self.what}: job {JobID(self.jid)}: permission denied: not your job")
                else:
                    self._fail(exc.errno, f"{self.what}: {exc.strerror}")
                return None
            events.extend(parser.feed(value))
        return None if self.finished else events

    def _on_main(self, fut):
        for ev in self._events(fut, self.main_lines) or ():
            name = ev.get("name")
            ctx = ev.get("context") or {}
            if name in ("finish", "clean") or (name == "exception" and is_fatal(ctx)):
                why = f": {ctx.get('type')}" if name == "exception" else ""
                self._fail(errno.EINVAL, f"{self.what}: job {JobID(self.jid)} ended before its tasks started{why}")
                return

    def _on_exec(self, fut):
        for ev in self._events(fut, self.exec_lines) or ():
            name = ev.get("name")
            if name == "shell.init":
                self.init = ev.get("context") or {}
            elif name == "shell.start" and self.error is None:
                self.start = ev.get("context") or {}
                self.h.reactor_stop()
                return


def _ntasks(taskmap):
    """The total of an RFC 34 task map (``{"version": 1, "map": [[node, nnodes, ppn,
    repeat]...]}``); None when it is not one."""
    try:
        return sum(b[1] * b[2] * b[3] for b in taskmap["map"])
    except (KeyError, IndexError, TypeError):
        return None


def _ranks(h, jobid):
    """The broker ranks of the job's R (ascending)."""
    from flux_launch.proto import fastjson, rv1

    R = h.rpc("job-info.lookup", {"id": int(jobid), "keys": ["R"]}).get()["R"]
    if isinstance(R, (str, bytes)):
        R = fastjson.loads(R)
    return sorted(int(r) for r in rv1.decode(R).ranks)


def _gather(h, jobid, service, ranks, timeout, what):
    """Every shell's entries, merged in task rank order."""
    deadline = time.monotonic() + timeout
    topic = f"{service}.proctable"
    entries = []
    todo = list(ranks)
    while todo:
        futs = [(rank, h.rpc(topic, {}, rank)) for rank in todo]
        todo = []
        for rank, fut in futs:
            try:
                entries.extend(fut.get(max(0.1, deadline - time.monotonic()))["proctable"])
            except TimeoutError:
                raise OSError(errno.ETIMEDOUT, f"{what}: the shell on rank {rank} did not answer") from None
            except OSError as exc:
                if exc.errno == errno.EPERM:
                    raise OSError(errno.EPERM, f"{what}: job {JobID(jobid)}: permission denied: not your job") \
                        from None
                if exc.errno != errno.ENOSYS:
                    raise OSError(exc.errno, f"{what}: shell on rank {rank}: {exc.strerror}") from None
                todo.append(rank)  # not serving yet (or any more: checked below)
        if todo:
            check_running(h, jobid, what)
            if time.monotonic() >= deadline:
                raise OSError(errno.ETIMEDOUT, f"{what}: the shell on rank {todo[0]} did not answer")
            time.sleep(RETRY)
    entries.sort(key=lambda e: e["rank"])
    return entries
