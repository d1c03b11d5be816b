"""job-exec on rank 0: start a job's shells on the ranks of its R, and end it.

For each rank in R, rank 0 asks that rank's broker (``rexec.shell``, a streaming
RPC) to start the job's shell there: shells are started by the brokers of the
job's own nodes, never all by rank 0. The job's ``start`` event is posted when
every shell has started; ``finish`` when every shell has exited, with the highest
wait status. A shell that cannot start, or a rank lost while the job runs, raises
an ``exec`` exception; that rank counts as exited with status 1.

The exec eventlog (``guest.exec.eventlog``) has flux-core's job-exec events
around the shells' own (``shell.init``, ``shell.start``, ``shell.task-exit``...):
``init`` and ``starting`` when the shells are asked to start, ``complete
{status}`` (the ``finish`` status) and ``done`` (the last entry: tools wait for
it) when the last shell has exited; a job that fails before it starts (testexec's
``mock_exception=init``) gets ``init`` and ``done``. They are committed with the
job manager's events of the same loop turn (``alloc``, ``finish``): no commit or
round trip of their own. ``init`` and ``starting`` are committed before any shell
exists, ``complete`` and ``done`` after every shell has exited, and a shell waits
for its commits' answers before it exits: nothing of a shell comes before the
first two or after the last two (but from a shell that was killed or lost).

The shells append their events themselves, each with its output batches, so a
remote shell's event (a fast task's ``shell.task-exit``) can be committed before
the leader's ``shell.init``. flux-core avoids it in the shell: every shell waits
at an ``init`` barrier, the leader then commits ``shell.init`` and waits for the
answer before it starts its tasks, and only the leader writes shell events (other
shells send it their first task exit). Nothing in this service can order the
shells' own commits without starting the other shells after the leader's
``shell.init``, which would slow every multi-node launch; the shells can: a
shell other than the leader holds its exec events (not its tasks or output)
until it has seen the leader's ``shell.init`` in the eventlog.

Killing: SIGTERM to every shell (SIGALRM for a time limit), which signals its
tasks; SIGKILL to the tasks ``kill-timeout`` (5 s) later; if a shell still has
not reported another kill-timeout later (stopped, hung), SIGKILL to the shell,
whose job then ends with an exec exception: no job stays in RUN for ever.
"""

import errno
import logging
import time

from flux_launch.core.jobid import JobID
from flux_launch.proto.job import exit_code, term_signal
from flux_launch.services.job_manager.job import FAILED, kvs_dir

log = logging.getLogger("flux_launch.job-exec")

KILL_TIMEOUT = 5.0
EXEC_EVENTLOG = "guest.exec.eventlog"  # under the job's KVS directory, as the shells write it


class _Exec:
    __slots__ = ("ranks", "started", "status", "kill_handle", "test", "kills")

    def __init__(self, ranks):
        self.ranks = ranks
        self.started = set()
        self.status = {}
        self.kill_handle = None
        self.test = None  # testexec: ends the fake job
        self.kills = 0  # SIGKILLs sent by escalation


class JobExec:
    def __init__(self, manager):
        self.jm = manager
        self.broker = manager.broker

    def start(self, job):
        test = job.jobspec.get("attributes", {}).get("system", {}).get("exec", {}).get("test")
        if test is not None:
            self._testexec(job, test)
            return
        ranks = sorted(int(r) for r in job.alloc)
        job.exec = state = _Exec(ranks)
        self._exec_events(job, "init", "starting")
        payload = {"id": job.id, "jobspec": job.jobspec, "R": job.R, "ranks": ranks}
        for rank in ranks:
            self.broker.rpc("rexec.shell", payload, rank, self._callback(job, state, rank), streaming=True)

    def _testexec(self, job, test):
        """Fake a job without processes (``-S system.exec.test.run_duration=FSD``
        and optionally ``wait_status=N``, ``mock_exception=init|run``), as flux-core's
        testexec: for scheduler and state tests. Owner only."""
        from flux_launch.core import fsd

        if job.userid != self.broker.owner:
            self._init_failed(job, "only the instance owner may use the test exec method")
            return
        if not isinstance(test, dict):
            test = {}
        try:
            duration = fsd.parse(str(test.get("run_duration", "0")))
        except ValueError as exc:
            self._init_failed(job, f"testexec: {exc}")
            return
        status = test.get("wait_status", 0) if isinstance(test.get("wait_status", 0), int) else 0
        if test.get("mock_exception") == "init":
            self._init_failed(job, "mock initialization exception generated")
            return
        self._exec_events(job, "init", "starting")
        job.has_started = True
        self.jm.post(job, "start")
        state = job.exec = _Exec([])

        def done():
            state.kill_handle = None
            if job.exec is state:
                job.exec = None
                self._finish(job, status)

        if test.get("mock_exception") == "run":
            self.broker.loop.call_soon(self.jm.raise_exception, job, "exec", 0, "mock run exception generated")
        state.kill_handle = self.broker.loop.call_later(duration, done) if duration != float("inf") else None
        state.test = done

    def _init_failed(self, job, note):
        """The job ends before it starts (flux-core: an exec initialization error):
        its exec eventlog is ``init`` then ``done``, no ``complete``."""
        self._exec_events(job, "init", "done")
        self.jm.raise_exception(job, "exec", 0, note)
        self.jm.finish(job, FAILED)

    def _finish(self, job, status):
        """Every shell has exited: ``complete`` and ``done`` to the exec eventlog,
        committed with the job manager's ``finish`` (same status)."""
        self._exec_events(job, ("complete", {"status": status}), "done")
        self.jm.finish(job, status)

    def _exec_events(self, job, *events):
        """Append ``events`` (names, or ``(name, context)``) to the job's exec
        eventlog in the job manager's commit of this loop turn, the one of the
        ``alloc`` or ``finish`` event posted with them: no commit of their own."""
        from flux_launch.proto.eventlog import encode_event

        now = time.time()
        lines = [encode_event(*((ev, None) if isinstance(ev, str) else ev), now) for ev in events]
        self.jm.stage([{"op": "append", "key": f"{kvs_dir(job.id)}.{EXEC_EVENTLOG}", "value": "".join(lines)}])

    def _callback(self, job, state, rank):
        def cb(payload, errnum, errstr):
            try:
                on_response(payload, errnum, errstr)
            except Exception as exc:  # a bad response fails its job, not the loop
                log.error("job-exec: %s: rank %d: bad shell response: %s: %s", JobID(job.id), rank,
                          type(exc).__name__, exc)
                log.debug("job-exec: bad shell response %r", payload, exc_info=exc)
                if rank not in state.status:
                    self.jm.raise_exception(job, "exec", 0, f"rank {rank}: {type(exc).__name__}: {exc}")
                    self._exited(job, state, rank, FAILED)

        def on_response(payload, errnum, errstr):
            if errnum:
                if errnum != errno.ENODATA and rank not in state.status:  # ENODATA: the normal end
                    self.jm.raise_exception(job, "exec", 0, f"rank {rank}: {errstr or 'shell failed'}")
                    self._exited(job, state, rank, FAILED)
                return
            kind = payload.get("type")
            if kind == "started":
                state.started.add(rank)
                if len(state.started) == len(state.ranks):
                    job.has_started = True
                    self.jm.post(job, "start")
            elif kind == "finished":
                status = payload["status"]
                if term_signal(status):  # the shell itself died by a signal: its tasks' fate is unknown
                    import signal

                    self.jm.raise_exception(job, "exec", 0, f"job shell on rank {rank} was killed by "
                                            f"{signal.Signals(term_signal(status)).name}")
                self._exited(job, state, rank, status)
        return cb

    def _exited(self, job, state, rank, status):
        if rank in state.status:
            return
        state.status[rank] = status
        if status and len(state.status) < len(state.ranks) and state.kill_handle is None:
            # exit-timeout is job-wide: the other nodes' tasks may wait for this one
            # (e.g. in an MPI barrier) forever.
            timeout = _exit_timeout(job)
            if timeout is not None:
                state.kill_handle = self.broker.loop.call_later(timeout, self._exit_timeout, job, state, rank)
        if len(state.status) == len(state.ranks):
            if state.kill_handle is not None:
                state.kill_handle.cancel()
            job.exec = None
            self._finish(job, max(state.status.values(), key=exit_code))  # a signal above any exit code

    def _exit_timeout(self, job, state, rank):
        state.kill_handle = None
        if job.exec is state:
            self.jm.raise_exception(job, "exec", 0, f"exit-timeout expired: tasks on rank {rank} failed and "
                                    "the others did not finish")

    def kill(self, job, signum, escalate=False, final=False):
        """Signal every shell of a running job; with ``escalate``, SIGKILL later;
        ``final`` (the escalation's last SIGKILL) kills the shells themselves too."""
        state = job.exec
        if state is None:
            return
        if state.test is not None:  # a fake job dies of any signal at once
            if state.kill_handle is not None:
                state.kill_handle.cancel()
            job.exec = None
            self._finish(job, signum)
            return
        for rank in state.ranks:
            if rank not in state.status:
                payload = {"id": job.id, "signum": signum}
                if final:
                    payload["final"] = True
                self.broker.rpc("rexec.shell-kill", payload, rank)
        if escalate and state.kill_handle is None:
            state.kill_handle = self.broker.loop.call_later(KILL_TIMEOUT, self._escalate, job, state)

    def _escalate(self, job, state):
        """SIGKILL the tasks; the second time (``final``), the shells too. A user's
        own SIGKILL (``flux job kill -s KILL``) never counts as a step of this."""
        state.kill_handle = None
        if job.exec is not state:
            return
        state.kills += 1
        self.kill(job, 9, escalate=state.kills < 2, final=state.kills >= 2)

    def ranks_lost(self, ev):
        lost = set((ev.get("payload") or {}).get("ranks", ()))
        for job in list(self.jm.jobs.values()):
            state = job.exec
            if state is None:
                continue
            gone = [r for r in state.ranks if r in lost and r not in state.status]
            if gone:
                self.jm.raise_exception(job, "exec", 0, f"lost contact with rank {gone[0]} running the job")
                for rank in gone:
                    self._exited(job, state, rank, FAILED)


def _exit_timeout(job):
    """The job's exit-timeout in seconds (shell option, default 30), or None."""
    from flux_launch.core import fsd

    opts = job.jobspec.get("attributes", {}).get("system", {}).get("shell", {}).get("options", {}) or {}
    value = opts.get("exit-timeout", 30.0)
    if value == "none":
        return None
    try:
        return float(value) if isinstance(value, (int, float)) else fsd.parse(str(value))
    except ValueError:
        return 30.0
