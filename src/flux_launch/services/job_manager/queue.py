"""The job queue's administrative state (flux-core's job-manager ``queue.c``): whether
jobs may be submitted (enabled/disabled, with a reason shown to submitters) and
whether they are scheduled (started/stopped, with a reason shown by ``flux queue
status``).

This instance has flux-core's one anonymous queue: a request that names a queue is
refused (``'NAME' is not a valid queue``). Stopped, the scheduler starts no job:
jobs are still submitted and wait in SCHED, running ones go on. The state is kept
in the KVS (``job-manager.queue``) and restored when the instance restarts on the
same statedir, except a change made with ``nocheckpoint``.

Topics (``job-manager.*``): ``queue-list`` -> ``{queues: []}``; ``queue-status
{name?}`` -> ``{enable, disable_reason?, start, stop_reason?}``; ``queue-enable
{enable, all?, name?, reason?}``; ``queue-start {start, all?, name?, reason?,
nocheckpoint?}``; ``alloc-query`` -> ``{queue_length, alloc_pending, running}``;
``idle`` -> ``{pending}``, answered once no job is in RUN or CLEANUP.
"""

import errno
import logging

from flux_launch.services.base import ServiceError
from flux_launch.services.kvs.service import KVSError

log = logging.getLogger("flux_launch.job-manager")

KEY = "job-manager.queue"


class Queue:
    """The anonymous queue's enable/start state, and who waits for it to go idle."""

    def __init__(self, jm):
        self.jm = jm
        self.enable, self.disable_reason = True, None
        self.start, self.stop_reason = True, None
        self._saved_start = True  # what is checkpointed: a nocheckpoint stop is not
        self.idlers = []  # job-manager.idle requests
        try:
            state = jm.kvs.lookup(KEY)
        except KVSError:
            return
        if isinstance(state, dict):
            self.enable = bool(state.get("enable", True))
            self.disable_reason = state.get("disable_reason") if not self.enable else None
            self.start = self._saved_start = bool(state.get("start", True))
            self.stop_reason = state.get("stop_reason") if not self.start else None

    def methods(self):
        """The ``job-manager`` methods this serves."""
        return {"queue-list": self._list, "queue-status": self._status, "queue-enable": self._enable,
                "queue-start": self._start, "alloc-query": self._alloc_query, "idle": self._idle}

    # ---- for the job manager -----------------------------------------------------------

    def check_submit(self, jobspec):
        """Raise ServiceError EINVAL ``job submission is disabled: REASON`` while disabled."""
        if not self.enable:
            raise ServiceError(errno.EINVAL, f"job submission is disabled: {self.disable_reason}")

    def running(self):
        return sum(1 for j in self.jm.jobs.values() if j.state in ("RUN", "CLEANUP"))

    def job_done(self):
        """A job left RUN/CLEANUP: answer the idle waiters if none is left there."""
        if self.idlers and not self.running():
            pending = self._pending()
            for req in self.idlers:
                self.jm.broker.respond(req, {"pending": pending})
            self.idlers = []

    def disconnect(self, route):
        self.idlers = [r for r in self.idlers if r.get("route") != route]

    # ---- requests ----------------------------------------------------------------------

    @staticmethod
    def _name(p):
        name = p.get("name")
        if name is not None:
            raise ServiceError(errno.EINVAL, f"'{name}' is not a valid queue (this instance has only the "
                               "anonymous queue: name no queue)")

    def _owner_only(self, msg, what):
        if msg.get("rolemask", 1) != 1:
            raise ServiceError(errno.EPERM, f"only the instance owner may {what} the queue")

    def _checkpoint(self):
        state = {"enable": self.enable, "start": self._saved_start}
        if not self.enable:
            state["disable_reason"] = self.disable_reason
        if not self._saved_start and self.stop_reason:
            state["stop_reason"] = self.stop_reason
        self.jm.stage([{"op": "put", "key": KEY, "value": state}])

    def _list(self, msg, p):
        self.jm.broker.respond(msg, {"queues": []})

    def _status(self, msg, p):
        self._name(p)
        out = {"enable": self.enable, "start": self.start}
        if not self.enable:
            out["disable_reason"] = self.disable_reason
        if self.jm.sched is None:  # as flux-core while no scheduler is loaded
            out.update(start=False, stop_reason="Scheduler is offline")
        elif not self.start and self.stop_reason:
            out["stop_reason"] = self.stop_reason
        self.jm.broker.respond(msg, out)

    def _enable(self, msg, p):
        self._name(p)
        enable, reason = p.get("enable"), p.get("reason")
        if not isinstance(enable, bool):
            raise ServiceError(errno.EPROTO, "job-manager.queue-enable: enable must be a boolean")
        if not enable and (not isinstance(reason, str) or not reason):
            raise ServiceError(errno.EPROTO, "job-manager.queue-enable: a reason is required to disable")
        self._owner_only(msg, "enable or disable")
        self.enable, self.disable_reason = enable, None if enable else reason
        self._checkpoint()
        self.jm.broker.respond(msg, {})

    def _start(self, msg, p):
        self._name(p)
        start, reason = p.get("start"), p.get("reason")
        if not isinstance(start, bool):
            raise ServiceError(errno.EPROTO, "job-manager.queue-start: start must be a boolean")
        if reason is not None and not isinstance(reason, str):
            raise ServiceError(errno.EPROTO, "job-manager.queue-start: reason must be a string")
        self._owner_only(msg, "start or stop")
        self.start, self.stop_reason = start, None if start else (reason or None)
        if not p.get("nocheckpoint"):
            self._saved_start = start
        self._checkpoint()
        if start:
            self.jm.schedule()
        self.jm.broker.respond(msg, {})

    def _pending(self):
        return sum(1 for j in self.jm.jobs.values() if j.state in ("DEPEND", "PRIORITY", "SCHED"))

    def _alloc_query(self, msg, p):
        sched = self.jm.sched
        self.jm.broker.respond(msg, {"queue_length": len(sched.pending) if sched is not None else 0,
                                     "alloc_pending": 0, "running": self.running()})

    def _idle(self, msg, p):
        if self.running():
            self.idlers.append(msg)
        else:
            self.jm.broker.respond(msg, {"pending": self._pending()})
