"""Rank 0's resource service (flux-core's ``resource`` module, administrative side):
drain and undrain nodes, the system view of them, and reloading the inventory.

Topics (``resource.info`` stays every broker's own, ``broker/builtins.py``):

- ``resource.drain {targets, reason?, mode?}``: ``targets`` is an idset of ranks or
  a hostlist. A target already drained fails the request (EEXIST) unless ``mode``
  is ``overwrite`` (new reason), ``force-overwrite`` (new reason and timestamp) or
  ``update`` (only targets not drained yet, or drained without a reason). Owner only.
- ``resource.undrain {targets, mode?, reason?}``: a target that is not drained fails
  the request (EINVAL) unless ``mode`` is ``force``. Owner only.
- ``resource.status`` -> ``{nodes: [{rank, hostname, online, drained, allocated,
  timestamp?, reason?}]}``: what ``flux resource status`` and ``drain`` show.
- ``resource.reload {path, xml, force}``: the inventory becomes the R document at
  ``path``, or (``xml``) the ``<rank>.xml`` hwloc files of the directory ``path``;
  refused (EBUSY) while a job runs, and where it names ranks the instance does not
  have unless ``force`` (those ranks are then left out). Owner only.
- ``sched.resource-status``: the scheduler's view (``sched/status.py``).

As in flux-core, drained nodes get no new jobs, running ones keep running (the node
is ``draining`` until they end), and a drained node counts for whether a request can
ever be satisfied. Drains and undrains are events of the KVS ``resource.eventlog``,
replayed when the instance restarts on the same statedir; a reloaded inventory is
kept as ``resource.R`` and used again after a restart.
"""

import errno
import logging
import os
import re
import time

from flux_launch.services.base import Service, ServiceError
from flux_launch.services.kvs.service import KVSError

log = logging.getLogger("flux_launch.job-manager")

RESLOG = "resource.eventlog"
DRAIN_MODES = {None: 0, "update": 0, "overwrite": 1, "force-overwrite": 2}


def _plural(n, word):
    return word if n == 1 else word + "s"


class Resources:
    """The drain state and the ``resource`` and ``sched`` services of a job manager."""

    def __init__(self, jm):
        self.jm = jm
        self.drained = {}  # rank -> {"timestamp": float, "reason": str or None}
        self.saved_R = None  # resource.R of an earlier reload
        self._replay()
        broker = jm.broker
        builtin = getattr(broker, "services", {}).get("resource")
        methods = {"drain": self._drain, "undrain": self._undrain, "status": self._status,
                   "reload": self._reload}
        if builtin is not None and "info" in getattr(builtin, "methods", {}):
            methods["info"] = builtin.methods["info"]
        Service(broker, "resource", methods).register()
        Service(broker, "sched", {"resource-status": self._sched_status}).register()

    # ---- state ----------------------------------------------------------------------

    def _replay(self):
        """The drains recorded before a restart, and a reloaded inventory."""
        from flux_launch.proto import eventlog

        kvs = self.jm.kvs
        try:
            self.saved_R = kvs.lookup("resource.R")
        except KVSError:
            pass
        try:
            events = eventlog.decode(kvs.lookup(RESLOG))
        except KVSError:
            return
        except ValueError as exc:
            log.error("resource: %s is unreadable, drains are forgotten: %s", RESLOG, exc)
            return
        from flux_launch.core.idset import decode

        for ev in events:
            ctx = ev.get("context") or {}
            try:
                ranks = list(decode(ctx.get("idset", "")))
            except ValueError:
                continue
            if ev["name"] == "drain":
                self._set(ranks, ev["timestamp"], ctx.get("reason"), ctx.get("overwrite", 1))
            elif ev["name"] == "undrain":
                for rank in ranks:
                    self.drained.pop(rank, None)

    def _set(self, ranks, timestamp, reason, overwrite):
        """Drain ``ranks`` (``overwrite`` as flux-core's: 0 keeps a reason already
        there, 1 replaces it, 2 replaces the timestamp too)."""
        for rank in ranks:
            old = self.drained.get(rank)
            if old is None:
                self.drained[rank] = {"timestamp": timestamp, "reason": reason}
            elif overwrite or not old["reason"]:
                old["reason"] = reason
                if overwrite == 2:
                    old["timestamp"] = timestamp

    def apply(self, pool):
        """Mark the drained ranks of a new ``pool`` (ranks it lacks are ignored)."""
        for rank in self.drained:
            if rank in pool.ranks:
                pool.set_drained(rank, True)

    def reloaded(self, ranks):
        """``ranks`` (``Pool``'s form, as discovered) replaced by a reloaded inventory's,
        if there was one; the discovered host names are kept where R has none."""
        if self.saved_R is None:
            return ranks
        try:
            return self._ranks_of_R(self.saved_R, True, ranks)
        except (ValueError, ServiceError) as exc:
            text = exc.text if isinstance(exc, ServiceError) else str(exc)
            log.error("resource: the reloaded resource.R cannot be used, using what the ranks found: %s", text)
            return ranks

    # ---- requests --------------------------------------------------------------------

    def _owner_only(self, msg, what):
        if msg.get("rolemask", 1) != 1:
            raise ServiceError(errno.EPERM, f"only the instance owner may {what}")

    def _hosts(self):
        """rank -> host name, of every rank (ranks not known yet: none)."""
        jm = self.jm
        if jm.sched is not None:
            return {r: jm.sched.pool.hostname(r) for r in jm.sched.pool.ranks}
        return dict(jm.hostnames)

    def _targets(self, p):
        """The ranks a request's ``targets`` names (an idset, or a hostlist).

        Raises:
            ServiceError: EPROTO (no targets string), EINVAL (not an idset nor
                known hosts, empty, or ranks the instance does not have).
        """
        from flux_launch.core.hostlist import Hostlist
        from flux_launch.core.idset import decode

        targets = p.get("targets")
        if not isinstance(targets, str):
            raise ServiceError(errno.EPROTO, "targets must be a string (an idset of ranks or a hostlist)")
        try:
            ranks = sorted(decode(targets))
        except ValueError:
            ranks = None
        if ranks is None:  # not an idset: host names
            try:
                wanted = list(Hostlist(targets))
            except ValueError as exc:
                raise ServiceError(errno.EINVAL, f"invalid targets: {exc}") from None
            hosts = self._hosts()
            unknown = [h for h in wanted if h not in hosts.values()]
            if unknown:
                raise ServiceError(errno.EINVAL, f"invalid targets: invalid hosts: {Hostlist(unknown)} "
                                   "(give ranks or host names of this instance: flux resource status)")
            ranks = sorted(r for r, h in hosts.items() if h in wanted)
        if not ranks:
            raise ServiceError(errno.EINVAL, "idset is empty")
        if ranks[-1] >= self.jm.broker.size:
            raise ServiceError(errno.EINVAL, f"idset is out of range (the instance has ranks 0-"
                               f"{self.jm.broker.size - 1})")
        return ranks

    def _post(self, name, ranks, timestamp, **context):
        from flux_launch.core.hostlist import Hostlist
        from flux_launch.core.idset import encode
        from flux_launch.proto.eventlog import encode_event

        hosts = self._hosts()
        ctx = {"idset": encode(ranks), "nodelist": str(Hostlist(hosts.get(r) or f"rank{r}" for r in ranks)),
               **{k: v for k, v in context.items() if v is not None}}
        self.jm.stage([{"op": "append", "key": RESLOG, "value": encode_event(name, ctx, timestamp)}])

    def _pool_mark(self, ranks, drained):
        jm = self.jm
        if jm.sched is None:
            return
        for rank in ranks:
            if rank in jm.sched.pool.ranks:
                jm.sched.pool.set_drained(rank, drained)
        if not drained:
            jm.schedule()

    def _drain(self, msg, p):
        from flux_launch.core.idset import encode

        self._owner_only(msg, "drain nodes")
        ranks = self._targets(p)
        mode, reason = p.get("mode"), p.get("reason")
        if mode not in DRAIN_MODES:
            raise ServiceError(errno.EINVAL, f"invalid drain mode {mode!r} (use overwrite, force-overwrite or update)")
        if reason is not None and not isinstance(reason, str):
            raise ServiceError(errno.EPROTO, "reason must be a string")
        if mode is None:
            already = [r for r in ranks if r in self.drained and self.drained[r]["reason"]]
            if already:
                raise ServiceError(errno.EEXIST, f"{_plural(len(already), 'rank')} {encode(already)} already "
                                   "drained (use --force to overwrite the drain reason, --update to leave it)")
        now = time.time()
        overwrite = DRAIN_MODES[mode]
        self._set(ranks, now, reason, overwrite)
        self._post("drain", ranks, now, reason=reason, overwrite=overwrite)
        self._pool_mark(ranks, True)
        self.jm.broker.respond(msg, {})

    def _undrain(self, msg, p):
        from flux_launch.core.hostlist import Hostlist
        from flux_launch.core.idset import encode

        self._owner_only(msg, "undrain nodes")
        ranks = self._targets(p)
        mode, reason = p.get("mode"), p.get("reason")
        if mode not in (None, "force"):
            raise ServiceError(errno.EINVAL, f"invalid undrain mode '{mode}' specified")
        if reason is not None and not isinstance(reason, str):
            raise ServiceError(errno.EPROTO, "reason must be a string")
        idle = [r for r in ranks if r not in self.drained]
        if idle and mode is None:
            hosts = self._hosts()
            nodes = Hostlist(hosts.get(r) or f"rank{r}" for r in idle)
            raise ServiceError(errno.EINVAL, f"{nodes} ({_plural(len(idle), 'rank')} {encode(idle)}) not drained")
        ranks = [r for r in ranks if r in self.drained]
        if ranks:
            for rank in ranks:
                del self.drained[rank]
            self._post("undrain", ranks, time.time(), reason=reason)
            self._pool_mark(ranks, False)
        self.jm.broker.respond(msg, {})

    def _status(self, msg, p):
        jm = self.jm
        if jm.sched is None:
            raise ServiceError(errno.EAGAIN, "resources are not known yet: the instance is still starting")
        pool = jm.sched.pool
        online = getattr(jm.broker, "online", None)
        nodes = []
        for rank in pool.ranks:
            up = rank not in jm.broker.lost and (online is None or rank in online) and pool.is_up(rank)
            node = {"rank": rank, "hostname": pool.hostname(rank), "online": up,
                    "allocated": not pool.is_rank_idle(rank), "drained": rank in self.drained}
            if rank in self.drained:
                node.update(self.drained[rank])
            nodes.append(node)
        jm.broker.respond(msg, {"nodes": nodes})

    def _sched_status(self, msg, p):
        jm = self.jm
        if jm.sched is None:
            raise ServiceError(errno.EAGAIN, "resources are not known yet: the instance is still starting")
        from flux_launch.services.sched.status import resource_status

        sources = {r: info.get("source", "?") for r, info in jm.rank_info.items()}
        jm.broker.respond(msg, resource_status(jm.sched.pool, sources))

    # ---- reload ----------------------------------------------------------------------

    def _reload(self, msg, p):
        self._owner_only(msg, "reload resources")
        jm = self.jm
        path, xml, force = p.get("path"), bool(p.get("xml")), bool(p.get("force"))
        if not isinstance(path, str) or not path:
            raise ServiceError(errno.EPROTO, "path must be a non-empty string")
        if jm.sched is None:
            raise ServiceError(errno.EAGAIN, "resources are not known yet: the instance is still starting")
        running = [j for j in jm.jobs.values() if j.state in ("RUN", "CLEANUP")]
        if running or not jm.sched.pool.is_idle():
            raise ServiceError(errno.EBUSY, f"resources are busy: {len(running)} {_plural(len(running), 'job')} "
                               "running (wait for them: flux queue idle)")
        R = self._read_xml_dir(path) if xml else self._read_R(path)
        current = {r: {"hostname": jm.sched.pool.hostname(r)} for r in jm.sched.pool.ranks}
        try:
            ranks = self._ranks_of_R(R, force, current)
        except ValueError as exc:
            raise ServiceError(errno.EINVAL, f"{path}: {exc}") from None
        self.saved_R = R
        jm.stage([{"op": "put", "key": "resource.R", "value": R}])
        jm.install_pool(ranks)
        log.info("resource: reloaded %d ranks from %s", len(ranks), path)
        jm.broker.respond(msg, {})

    def _ranks_of_R(self, R, force, current):
        """``Pool``'s ranks from an R document; host names from R, else ``current``'s.

        Raises:
            ValueError: R is not valid R version 1.
            ServiceError: EINVAL, it names ranks the instance does not have (without
                ``force``; with it they are left out).
        """
        from flux_launch.proto import rv1

        rs = rv1.decode(R)
        size = self.jm.broker.size
        beyond = [r for r in rs.ranks if r >= size]
        if beyond and not force:
            raise ServiceError(errno.EINVAL, f"resource object contains ranks exceeding size={size} "
                               "(override with -f)")
        if beyond:
            log.warning("resource: reload: ranks %s exceed size=%d: left out", beyond, size)
        hosts = rs.hosts()
        props = {}
        for name, rl in rs.properties.items():
            for r in rl:
                props.setdefault(r, []).append(name)
        return {r: {"cores": c["core"], "gpus": c["gpu"], "properties": props.get(r, []),
                    "hostname": hosts.get(r) or (current.get(r) or {}).get("hostname") or f"rank{r}"}
                for r, c in rs.ranks.items() if r < size}

    @staticmethod
    def _read_R(path):
        from flux_launch.proto import fastjson

        try:
            with open(path, encoding="utf-8") as f:
                return fastjson.loads(f.read())
        except OSError as exc:
            raise ServiceError(errno.ENOENT if isinstance(exc, FileNotFoundError) else errno.EINVAL,
                               f"{path}: {exc.strerror}") from None
        except ValueError as exc:
            raise ServiceError(errno.EINVAL, f"{path}: not JSON: {exc}") from None

    @staticmethod
    def _read_xml_dir(path):
        """R from a directory of ``<rank>.xml`` hwloc files (other names are ignored)."""
        from flux_launch import resource
        from flux_launch.proto import rv1

        try:
            names = os.listdir(path)
        except OSError as exc:
            raise ServiceError(errno.ENOENT if isinstance(exc, FileNotFoundError) else errno.EINVAL,
                               f"{path}: {exc.strerror}") from None
        alloc = {}
        for name in names:
            m = re.fullmatch(r"(0|[1-9][0-9]*)\.xml", name)
            if not m:
                continue
            try:
                topo = resource.discover(os.path.join(path, name))
            except resource.TopologyError as exc:
                raise ServiceError(errno.EINVAL, f"error building R from hwloc XML: {exc}") from None
            alloc[int(m[1])] = {"core": list(range(topo["ncores"])), "gpu": list(range(len(topo["gpus"])))}
        if not alloc:
            raise ServiceError(errno.EINVAL, f"{path}: no <rank>.xml files (hwloc XML named by broker rank)")
        return rv1.encode(alloc)
