"""pmi: PMI-1 (simple wire protocol, RFC 13) and PMI-2 for the tasks, wired across nodes.

Each task gets one end of a socketpair as ``PMI_FD`` with ``PMI_RANK`` and
``PMI_SIZE`` (MPICH's built-in client needs nothing more), and
``FLUX_PMI_LIBRARY_PATH`` naming our ``libpmi.so`` for MPIs that load a PMI
library. A task whose first line is ``cmd=init pmi_version=2`` is served the
PMI-2 wire protocol (``proto/pmi2.py``, as Slurm's ``--mpi=pmi2`` serves it;
``pmi/libpmi2.c`` is a client) from then on: ``kvs-fence`` is the same barrier
and the KVS the same, so PMI-1 and PMI-2 tasks can be mixed in one job. PMI-2
node attributes (``info-putnodeattr``) are per shell, i.e. node-local.

The engine (``proto/pmi1_server.py``) answers gets from a node-local
cache, so a get never costs a round trip; ``PMI_process_mapping``,
``flux.taskmap`` and ``flux.instance-level`` are put before the tasks start.

A barrier completes when every local task has entered it; the keys put since
the last barrier are then exchanged among the job's shells over a k-ary tree
(``-o pmi-simple.exchange.k=N``, default 2): each shell registers the service
``shell-<jobid>`` on its broker, gathers its children's keys, sends the union to
its parent and hands the full set it gets back down to its children.

Faults: a task that sends garbage (PMI-1 or PMI-2) has its PMI connection
closed, the shell logs one line naming it and the bytes, and the job gets an
``exec`` exception naming it (its peers would wait for it in a barrier forever); a task that initialized PMI
and exits before ``PMI_Finalize``, and ``PMI_Abort``, also end the job with an
exception (its message shown), so no peer waits in a barrier forever.

Topics: ``shell.init`` (engine, service), ``task.init`` (socketpair, env).
Options: ``-o pmi=simple|off``, ``-o verbose=2`` traces every
PMI line (``pmi-simple: RANK: C: cmd=...``).
"""

import errno
import json
import os
import socket

from flux_launch.shell.loop import READ
from flux_launch.shell.plugstack import Plugin

EXCHANGE_RETRY = 0.01  # a parent shell not yet serving: retry after this long


def _library_path():
    import flux_launch

    path = os.path.join(os.path.dirname(flux_launch.__file__), "lib", "libpmi.so")
    return path if os.path.exists(path) else None


class _Ops:
    def __init__(self, pmi):
        self.pmi = pmi

    def barrier_enter(self, pending_puts):
        self.pmi.barrier(pending_puts)

    def abort(self, client, exitcode, msg):
        text = f"MPI_Abort: {msg}" if msg else f"MPI_Abort with exit code {exitcode}"
        self.pmi.shell.raise_exception("exec", f"task {client}: {text}")

    def finalize(self, client):
        pass

    def trace(self, client, direction, line):
        self.pmi.shell.log("TRACE", f"pmi-simple: {client}: {direction}: {line}")

    def send(self, client, data):
        self.pmi._send(client, [data])


class PMI:
    def __init__(self, shell):
        from flux_launch.proto import rv1
        from flux_launch.proto.pmi1 import Maxes, process_mapping_by_host
        from flux_launch.proto.pmi1_server import SimpleServer

        self.shell = shell
        self.barriers = 0
        tm = shell.taskmap
        local = tm.local(shell.rank)
        # Hydra's limits: MPICH aborts when kvsname_max + keylen_max exceeds 737.
        self.engine = SimpleServer(tm.ntasks, _Ops(self), nlocal=len(local), kvsname=f"kvs_{int(shell.jobid)}",
                                   maxes=Maxes(kvsname_max=256, keylen_max=64, vallen_max=1024),
                                   trace=shell.verbose >= 2, pmi2=True)
        # shells on one host are one node (brokers among the tasks then link over ipc, not TCP)
        hosts = rv1.decode(shell.R).hosts() if getattr(shell, "R", None) else {}
        mapping = process_mapping_by_host(tm.counts, [hosts.get(r) for r in tm.ranks] if hosts else [])
        if len(mapping) < 1024:
            self.engine.preput("PMI_process_mapping", mapping)
        taskmap = json.dumps(tm.rfc34(), separators=(",", ":"))
        if len(taskmap) < 1024:
            self.engine.preput("flux.taskmap", taskmap)
        # a broker among the tasks heads a nested instance one level down (flux-core's key)
        self.engine.preput("flux.instance-level", str(shell.level + 1))
        self.socks = {}
        self.buffers = {}
        self.initialized = set()
        self.gone = set()  # tasks that exited without ever initializing PMI
        self.library = _library_path()
        self.nshells = len(tm.ranks)
        self.exchange = _Exchange(self) if self.nshells > 1 else None

    # ---- tasks --------------------------------------------------------------------

    def task_init(self, task):
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        task.pass_fds.append(theirs.fileno())
        task.env.update(PMI_FD=str(theirs.fileno()), PMI_RANK=str(task.id), PMI_SIZE=str(self.shell.taskmap.ntasks))
        if self.library:
            task.env["FLUX_PMI_LIBRARY_PATH"] = self.library
        tmpdir = task.env.get("FLUX_JOB_TMPDIR")  # the tmpdir plugin's
        if tmpdir:
            # Open MPI names its shared-memory segments after the job id: two "nodes"
            # on one host would share them. Each node's job tmpdir keeps them apart.
            task.env.setdefault("OMPI_MCA_btl_vader_backing_directory", tmpdir)
        self.socks[task.id] = ours
        self.buffers[task.id] = b""
        task.after_spawn.append(theirs.close)
        self.shell.watch_fd(ours.fileno(), READ, lambda fd, ev, t=task.id: self._read(t))

    def _read(self, taskid):
        from flux_launch.proto.pmi1 import PMIProtocolError
        from flux_launch.proto.pmi2 import split_frame

        sock = self.socks.get(taskid)
        if sock is None:
            return
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._closed(taskid)
            return
        buf = self.buffers[taskid] + data
        # One message at a time: after a PMI-2 init the rest of buf is frames.
        while taskid in self.socks:
            msg = None
            try:
                if self.engine.wire(taskid) == 2:
                    cut = split_frame(buf)
                    if cut is not None:
                        msg, buf = cut
                else:
                    i = buf.find(b"\n")
                    if i >= 0:
                        msg, buf = buf[:i + 1], buf[i + 1:]
                        if msg.startswith(b"cmd=init"):
                            self.initialized.add(taskid)
                            if self.gone:
                                self._peer_gone(min(self.gone))
                    elif len(buf) > self.engine.max_line:
                        self._garbage(taskid, f"a line over {self.engine.max_line} bytes", buf[:40])
                        return
                if msg is None:
                    break
                replies = self.engine.handle(taskid, msg)
            except PMIProtocolError as exc:
                self._garbage(taskid, str(exc), (msg or buf)[:40])
                return
            self._send(taskid, replies)
        self.buffers[taskid] = buf

    def _send(self, taskid, replies):
        sock = self.socks.get(taskid)
        if sock is None:
            return
        try:
            for reply in replies:
                sock.sendall(reply)
        except OSError:
            pass

    def _garbage(self, taskid, why, line):
        self.shell.log("ERROR", f"pmi-simple: task {taskid}: {why}: {line!r}")
        self._drop(taskid)
        self.shell.raise_exception("exec", f"task {taskid}: PMI protocol error: {why}")

    def _closed(self, taskid):
        finalized = taskid in self.initialized and self.engine.finalized(taskid)
        self._drop(taskid)
        if finalized:
            return
        if taskid in self.initialized:
            if self.shell.fatal is None:
                self.shell.raise_exception("exec", f"task {taskid} exited before PMI_Finalize (it may have failed)")
        else:
            # Never used PMI: fine for a non-MPI job, fatal if its peers do (they
            # would wait for it in a barrier forever).
            self.gone.add(taskid)
            if self.initialized:
                self._peer_gone(taskid)

    def _peer_gone(self, taskid):
        if self.shell.fatal is None:
            self.shell.raise_exception("exec", f"task {taskid} exited without taking part in PMI "
                                       "while other tasks use it")

    def _drop(self, taskid):
        sock = self.socks.pop(taskid, None)
        if sock is None:
            return
        self.shell.unwatch_fd(sock.fileno())
        sock.close()
        for client, reply in self.engine.disconnect(taskid):
            self._send(client, [reply])

    # ---- barriers -------------------------------------------------------------------

    def barrier(self, pending_puts):
        if self.exchange is None:
            self._complete(0, {})
        else:
            self.exchange.enter(pending_puts)

    def _complete(self, rc, remote):
        self.barriers += 1
        if self.barriers == 1 and self.shell.leader:  # wire-up done (bench/)
            self.shell.emit_event("shell.pmi-barrier", {"seq": 1, "rc": rc})
        for client, reply in self.engine.barrier_complete(rc, remote):
            self._send(client, [reply])


class _Exchange:
    """Allgather of PMI keys among the job's shells over a k-ary tree."""

    def __init__(self, pmi):
        shell = pmi.shell
        self.pmi = pmi
        self.shell = shell
        opts = shell.options.get("pmi-simple") or {}
        k = int(opts.get("exchange", {}).get("k", 2)) if isinstance(opts, dict) else 2
        k = max(1, k)
        n = pmi.nshells
        i = shell.node_index
        self.index = i
        self.parent = None if i == 0 else (i - 1) // k
        self.children = [c for c in range(i * k + 1, i * k + k + 1) if c < n]
        self.seq = 0
        self.rounds = {}  # seq -> {"local": dict|None, "kids": {index: (req, data)}}
        shell.service_register("pmi-exchange", self._request)

    def enter(self, puts):
        self.seq += 1
        self._round(self.seq)["local"] = dict(puts)
        self._progress(self.seq)

    def _round(self, seq):
        return self.rounds.setdefault(seq, {"local": None, "kids": {}})

    def _request(self, req):
        """``shell-<jobid>.pmi-exchange {seq, from, data}``: a child shell's keys."""
        p = req.get("payload") or {}
        if not isinstance(p, dict) or "seq" not in p:
            self.shell.respond(req, errnum=errno.ENOSYS, errstr=f"{req.get('topic')}: not served by this shell")
            return
        self._round(p["seq"])["kids"][p.get("from")] = (req, p.get("data") or {})
        self._progress(p["seq"])

    def _progress(self, seq):
        rnd = self.rounds.get(seq)
        if rnd is None or rnd["local"] is None or len(rnd["kids"]) < len(self.children):
            return
        merged = dict(rnd["local"])
        for _req, data in rnd["kids"].values():
            merged.update(data)
        if self.parent is None:
            self._done(seq, merged)
        else:
            self._send_up(seq, merged)

    def _send_up(self, seq, merged):
        shell = self.shell
        parent_rank = shell.taskmap.ranks[self.parent]

        def failed(exc):
            if exc.errno == errno.ENOSYS:  # the parent shell is not serving yet
                shell.timer(EXCHANGE_RETRY, lambda: self._send_up(seq, merged))
                return
            shell.raise_exception("exec", f"PMI exchange with the shell of rank {parent_rank} "
                                  f"failed: {exc.strerror}")
            self.pmi._complete(-1, {})

        shell.rpc(f"{shell.service}.pmi-exchange", {"seq": seq, "from": self.index, "data": merged},
                  parent_rank, then=lambda payload: self._done(seq, payload["data"]), error=failed, wait=False)

    def _done(self, seq, full):
        rnd = self.rounds.pop(seq)
        for req, _data in rnd["kids"].values():
            self.shell.respond(req, {"data": full})
        self.pmi._complete(0, full)


def _enabled(shell):
    return str(shell.options.get("pmi", "simple")) not in ("off", "none")


def _init(shell, _task):
    if _enabled(shell):
        shell.aux_set("pmi", PMI(shell))


def _task_init(shell, task):
    pmi = shell.aux_get("pmi")
    if pmi is not None:
        pmi.task_init(task)


plugin = Plugin("pmi", {"shell.init": _init, "task.init": _task_init})
