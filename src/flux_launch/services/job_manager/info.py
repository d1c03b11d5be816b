"""job-info and job-list: what clients read of the jobs, without changing them.

Topics:

- ``job-info.lookup {id, keys, flags?}`` -> ``{id, KEY: value...}`` (keys under the job's
  KVS directory: ``jobspec``, ``R``, ``eventlog``; with flag ``LOOKUP_CURRENT`` (2, as
  flux-core's) ``jobspec`` and ``R`` as ``jobspec-update`` and ``resource-update`` events left them).
- ``job-info.eventlog-watch {id, path, raw?}`` (streaming; ``path`` ``eventlog``
  or ``guest.output`` ...; with ``raw`` the text comes as bytes in a raw
  attachment, with flow control): the KVS's own watch, answered on this
  request's route; an inactive job's ends after what it has.
  ``job-info.eventlog-watch-cancel {matchtag}`` ends one.
- ``job-list.list {max_entries?, states?, results?, userid?}`` -> ``{jobs}``
  (newest first; ``states`` and ``results`` are bit masks of proto/job.py's
  ``STATE_BITS`` and ``RESULT_BITS``, a job matching either is listed),
  ``job-list.list-id {id}`` -> ``{job}``;
  ``job-list.job-stats {}`` -> flux-core's counts: ``{job_states: {depend, priority,
  sched, run, cleanup, inactive, total}, successful, failed, timeout, canceled,
  inactive_purged, queues: [{name, ...the same}]}`` (purged: since this broker started).
"""

import errno

from flux_launch.proto.job import RESULT_BITS, STATE_BITS
from flux_launch.services.base import Service, ServiceError
from flux_launch.services.job_manager.job import kvs_dir

LOOKUP_CURRENT = 2  # flux-core's FLUX_JOB_LOOKUP_CURRENT


def selected(job, states=0, results=0, userid=None):
    """Whether ``job-list.list`` lists ``job``: its state bit is in ``states`` or,
    inactive, its result bit is in ``results`` (no filter when both are 0), and it
    belongs to ``userid`` (None or -1: anyone)."""
    if states or results:
        st = STATE_BITS[job.state] & states
        rs = job.state == "INACTIVE" and RESULT_BITS.get(job.result, 0) & results
        if not (st or rs):
            return False
    return userid in (None, -1) or job.userid == userid


class Info:
    """The ``job-info`` and ``job-list`` services of a job manager (registered at creation)."""

    def __init__(self, jm):
        self.jm = jm
        Service(jm.broker, "job-info", {"lookup": self._lookup, "eventlog-watch": self._watch,
                                        "eventlog-watch-cancel": self._cancel,
                                        "disconnect": self._disconnect}).register()
        Service(jm.broker, "job-list", {"list": self._list, "list-id": self._list_id,
                                        "job-stats": self._job_stats}).register()

    def _lookup(self, msg, p):
        job = self.jm.job_of(msg, p)
        keys = p.get("keys", [])
        if not isinstance(keys, list):
            raise ServiceError(errno.EPROTO, "job-info.lookup: keys must be a list")
        flags = p.get("flags", 0)
        if type(flags) is not int:
            raise ServiceError(errno.EPROTO, "job-info.lookup: flags must be an integer")
        out = {"id": job.id}
        for key in keys:
            if flags & LOOKUP_CURRENT and key == "jobspec" and job.jobspec is not None:
                out[key] = job.jobspec  # with its jobspec-update events applied
            elif flags & LOOKUP_CURRENT and key == "R" and job.R is not None:
                out[key] = job.R  # with its resource-update events applied
            else:
                out[key] = self.jm.kvs.lookup(f"{kvs_dir(job.id)}.{key}")
        self.jm.broker.respond(msg, out)

    def _watch(self, msg, p):
        jm = self.jm
        job = jm.job_of(msg, p)
        path = p.get("path", "eventlog")
        if not isinstance(path, str) or not path:
            raise ServiceError(errno.EPROTO, "job-info.eventlog-watch: path must be a string")
        if job.state == "INACTIVE":  # what it has, then the end; its "clean" committed first
            jm.flush()
        jm.kvs.handle({**msg, "topic": "kvs.watch",
                       "payload": {"key": f"{kvs_dir(job.id)}.{path}", "append": True, "waitcreate": True,
                                   "raw": p.get("raw") is True, "once": job.state == "INACTIVE"}})

    def _cancel(self, msg, p):
        self.jm.kvs.handle({**msg, "topic": "kvs.unwatch"})

    def _disconnect(self, msg, p):
        """A client went away: the watches it opened here end with it."""
        self.jm.kvs.handle({**msg, "topic": "kvs.disconnect"})

    def _list(self, msg, p):
        states = p.get("states", 0)
        results = p.get("results", 0)
        userid = p.get("userid")
        maxn = p.get("max_entries", 0)
        out = []
        for job in sorted(self.jm.jobs.values(), key=lambda j: (-j.t_submit, -j.id)):
            if not selected(job, states, results, userid):
                continue
            out.append(job.info())
            if maxn and len(out) >= maxn:
                break
        self.jm.broker.respond(msg, {"jobs": out})

    def _list_id(self, msg, p):
        self.jm.broker.respond(msg, {"job": self.jm.job_of(msg, p).info()})

    def _job_stats(self, msg, p):
        def empty():
            return {"job_states": dict.fromkeys(("depend", "priority", "sched", "run", "cleanup", "inactive",
                                                 "total"), 0),
                    "successful": 0, "failed": 0, "timeout": 0, "canceled": 0, "inactive_purged": 0}

        every, queues = empty(), {}
        for job in self.jm.jobs.values():
            for stats in [every, queues.setdefault(job.queue, empty())] if job.queue else [every]:
                stats["job_states"]["total"] += 1
                if job.state.lower() in stats["job_states"]:
                    stats["job_states"][job.state.lower()] += 1
                if job.state == "INACTIVE":
                    key = {"COMPLETED": "successful", "CANCELED": "canceled", "TIMEOUT": "timeout"}
                    stats[key.get(job.result, "failed")] += 1
        for queue, count in self.jm.purge.purged.items():
            every["inactive_purged"] += count
            if queue:
                queues.setdefault(queue, empty())["inactive_purged"] += count
        every["queues"] = [{"name": name, **stats} for name, stats in queues.items()]
        self.jm.broker.respond(msg, every)
