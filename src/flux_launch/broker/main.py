"""The broker: one per node, an asyncio loop serving local clients and the overlay.

Lifecycle (``Broker.run``):

1. boot (``boot.py``): singleton, or PMI (rank, size, overlay links);
2. open the local connector ``local-<rank>`` in the rundir, register services
   (every rank: ``broker``, ``attr``, ``event``, ``overlay``, ``rexec``; rank 0 also
   ``kvs``);
3. rank 0 waits for the quorum (every rank online, or ``broker.quorum-timeout``),
   then runs the initial program, if any, with ``FLUX_URI`` set;
4. shutdown, when the initial program exits or on SIGTERM/SIGINT: rank 0 tells
   the tree, every broker waits for its children's goodbye (or their loss), says
   goodbye to its parent and exits. Rank 0 exits with the initial program's status.
"""

import asyncio
import errno
import logging
import os
import signal
import socket
import sys
import time

from flux_launch.broker.connector import Connector
from flux_launch.broker.router import Router
from flux_launch.broker.tree import subtree_of
from flux_launch.proto.message import NORESPONSE
from flux_launch.broker import builtins

log = logging.getLogger("flux_launch.broker")

# Attributes that only the broker sets (flux setattr on them fails with EPERM).
READONLY = {"rank", "size", "broker.pid", "rundir", "statedir", "tbon.fanout", "tbon.endpoint",
            "tbon.parent-endpoint", "local-uri", "instance-level", "broker.starttime", "hostname",
            "version", "security.owner", "broker.quorum", "parent-uri", "parent-kvs-namespace", "jobid", "hostlist"}


class Broker(Router):
    """One broker of an instance.

    Args:
        attrs: broker attributes from ``-S name=value`` (``rundir`` is required).
        command: the initial program (rank 0 only), or None.
    """

    def __init__(self, attrs, command=None, forkserver=None):
        super().__init__(0, 1, int(attrs.get("tbon.fanout", "2")))
        self.forkserver = forkserver
        self.topology = None  # resource.discover() of this node
        self.loop = None
        self.on_run = []  # callables run once the quorum is reached
        self.attrs = attrs
        self.command = command
        self.owner = os.getuid()
        self.starttime = time.time()
        self.state = "join"
        self.online = set()
        self.lost = set()
        self.late = set()  # ranks missing at the quorum timeout that have not joined since
        self.exit_code = 0
        self.initial_proc = None
        self.rexec = None
        self._quorum_done = False
        self._shutting_down = False
        self._finished = False  # _finish ran: services, connector and overlay are closed
        self._done = None
        self.closers = []
        self.log = None  # the log handler and service (log.py), set by run_broker
        self.parent_R = None  # a nested instance's resources: its job's R, reranked

    # ---- lifecycle --------------------------------------------------------------

    async def run(self):
        """Run until shutdown; returns the exit code."""
        from flux_launch.broker.boot import boot

        loop = self.loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        self.rank, self.size = boot(self, self.attrs)
        if self.rank != 0:
            self.command = None  # booted from a config, every broker was given it
        if self.log is not None:
            self.log.rank = self.rank
        self._init_attrs()
        os.environ.pop("FLUX_FAKE_HOSTNAME", None)  # this broker's, not its jobs' or nested instances'
        if self.rank == 0 and "parent-uri" in self.attrs:
            self._parent_R()
        self.connector = Connector(self, os.path.join(self.attrs["rundir"], f"local-{self.rank}"), self.owner)
        await self.connector.start()
        builtins.register(self)
        if self.log is not None:
            self.log.attach(self)
        if self.forkserver is not None:
            from flux_launch.broker.rexec import ForkServerClient

            self.rexec.forkserver = ForkServerClient(*self.forkserver)
            self.closers.append(self.rexec.forkserver.close)
        if self.rank == 0:
            from flux_launch.services.job_manager import JobManager
            from flux_launch.services.kvs.service import KVSService

            kvs = KVSService(self, self.attrs["statedir"])
            kvs.handle.register()
            from flux_launch.services.startlog import Startlog

            startlog = Startlog(kvs)
            self.job_manager = JobManager(self, kvs)
            # the job manager's last events go to the KVS before it closes, then the start log's finish
            self.closers += [self.job_manager.flush, startlog.close, kvs.close]
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        if self.overlay is not None:
            self.overlay.start(loop)
        self.online.add(self.rank)
        if self.rank == 0:
            self._check_quorum()
            if not self._quorum_done:
                timeout = float(self.attrs.get("broker.quorum-timeout", "60"))
                loop.call_later(timeout, self._quorum_timeout)
        await self._done
        return self.exit_code

    def _init_attrs(self):
        a = self.attrs
        a["rank"] = str(self.rank)
        a["size"] = str(self.size)
        a["broker.pid"] = str(os.getpid())
        a["local-uri"] = f"local://{os.path.join(a['rundir'], f'local-{self.rank}')}"
        a["broker.starttime"] = f"{self.starttime:.6f}"
        a["security.owner"] = str(self.owner)
        a.setdefault("tbon.fanout", str(self.fanout))
        a.setdefault("instance-level", "0")
        a.setdefault("broker.quorum", f"0-{self.size - 1}" if self.size > 1 else "0")
        a.setdefault("hostname", os.environ.get("FLUX_FAKE_HOSTNAME") or socket.gethostname())
        if self.size == 1:
            a.setdefault("hostlist", a["hostname"])
        from flux_launch import __version__

        a.setdefault("version", __version__)
        if self.rank != 0:
            a.pop("statedir", None)

    def _parent_rpc(self, topic, payload):
        """One RPC to the enclosing instance (a nested instance's rank 0)."""
        from flux_launch.client.handle import Flux

        with Flux(self.attrs["parent-uri"]) as h:
            return h.rpc(topic, payload).get()

    def _parent_R(self):
        """Read the job's R from the enclosing instance: the nested instance has
        exactly those cores and GPUs, its brokers numbered in the job's rank order.
        A job whose node count is not this instance's size (a test instance started
        by hand inside a job) keeps the resources its brokers discover."""
        from flux_launch.core.jobid import JobID
        from flux_launch.proto import rv1

        try:
            R = self._parent_rpc("job-info.lookup", {"id": int(JobID(self.attrs["jobid"])), "keys": ["R"]})["R"]
            rs = rv1.rerank(R)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("broker: cannot read the job's resources from the enclosing instance (%s); "
                        "using the nodes' own", exc)
            return
        if len(rs.ranks) == self.size:
            self.parent_R = rs

    def _publish_uri(self):
        """Tell the enclosing instance where this one listens (memo ``uri`` on the
        job, as flux-core: ``ssh://HOST/PATH``), for ``flux uri`` and ``flux proxy``."""
        from flux_launch.core.jobid import JobID

        path = self.attrs["local-uri"][len("local://"):]
        try:
            self._parent_rpc("job-manager.memo", {"id": int(JobID(self.attrs["jobid"])),
                                                  "memo": {"uri": f"ssh://{self.attrs['hostname']}{path}"}})
        except (OSError, ValueError) as exc:
            log.warning("broker: cannot publish this instance's URI to the enclosing instance: %s", exc)

    def _check_quorum(self):
        if not self._quorum_done and len(self.online) + len(self.lost) >= self.size:
            self._quorum_done = True
            self._enter_run()

    def _quorum_timeout(self):
        if not self._quorum_done:
            from flux_launch.core.idset import encode

            missing = sorted(set(range(self.size)) - self.online)
            self.late.update(missing)  # they may still come: then their resources join
            names = ""
            if "hostlist" in self.attrs:
                from flux_launch.core.hostlist import Hostlist

                hosts = list(Hostlist(self.attrs["hostlist"]))
                names = f" ({Hostlist([hosts[r] for r in missing if r < len(hosts)])})"
            log.error("broker: quorum not reached after %ss: rank%s %s%s never came up; going on without them",
                      self.attrs.get("broker.quorum-timeout", "60"), "s" if len(missing) > 1 else "",
                      encode(missing), names)
            self._quorum_done = True
            self._enter_run()

    def _enter_run(self):
        self.state = "run"
        for hook in self.on_run:
            hook()
        if self.rank == 0 and "parent-uri" in self.attrs:
            self._publish_uri()
        if self.command:
            asyncio.get_running_loop().create_task(self._run_initial_program())
        else:
            log.info("broker: no initial program; running until signalled")

    async def _run_initial_program(self):
        env = self.child_env()
        try:
            proc = await asyncio.create_subprocess_exec(*self.command, env=env)
        except OSError as exc:
            print(f"flux-start: {self.command[0]}: {exc.strerror}", file=sys.stderr)
            self.exit_code = 127 if exc.errno == errno.ENOENT else 126
            self.shutdown()
            return
        self.initial_proc = proc
        rc = await proc.wait()
        self.exit_code = rc if rc >= 0 else 128 - rc
        self.shutdown()

    def child_env(self, env=None):
        """The environment for processes the broker starts: ``FLUX_URI`` set to this
        broker, the bootstrap PMI variables removed (they belong to the broker)."""
        env = dict(os.environ if env is None else env)
        for key in ("PMI_FD", "PMI_RANK", "PMI_SIZE", "PMI_SPAWNED", "PMI_VERSION", "PMI_SUBVERSION"):
            env.pop(key, None)
        env["FLUX_URI"] = self.attrs["local-uri"]
        return env

    def _on_signal(self, sig):
        if self.initial_proc is not None and self.initial_proc.returncode is None:
            # The initial program decides how to end; its exit shuts the instance down.
            try:
                # os.kill, not send_signal: Popen's send_signal polls first, which can
                # reap a program that died of the same signal (sent to the process
                # group) behind asyncio's back ("Unknown child process ...", 255)
                os.kill(self.initial_proc.pid, sig)
                return
            except ProcessLookupError:
                pass
        if not self._shutting_down:
            self.exit_code = 128 + sig
        self.shutdown()

    def shutdown(self):
        """Begin an orderly shutdown of this broker and its subtree."""
        if self._shutting_down:
            return
        self._shutting_down = True
        self.state = "shutdown"
        loop = asyncio.get_running_loop()
        if self.rexec is not None:
            self.rexec.kill_all()
            if self.rexec.forkserver is not None:
                self.rexec.forkserver.end_all()
        ov = self.overlay
        if ov is not None:
            for child, state in list(ov.child_state.items()):
                if state == "online":
                    ov.send_child(child, {"type": "ctl", "topic": "shutdown"})
        self._shutdown_deadline = loop.time() + float(self.attrs.get("broker.shutdown-timeout", "10"))
        self._maybe_finish()

    def _maybe_finish(self):
        if not self._shutting_down or self._done.done():
            return
        ov = self.overlay
        children = [c for c, s in ov.child_state.items() if s == "online"] if ov is not None else []
        # flux exec's processes, killed by shutdown(), are reaped before the loop closes:
        # asyncio's child watcher warns of one that ends after ("Loop ... is closed")
        procs = self.rexec is not None and bool(self.rexec.procs)
        # the jobs' shells, ended by shutdown(), report their end while the services run
        procs = procs or (self.rexec is not None and self.rexec.forkserver is not None
                          and bool(self.rexec.forkserver.pending))
        if children or procs:
            loop = asyncio.get_running_loop()
            if loop.time() < self._shutdown_deadline:
                loop.call_later(0.1, self._maybe_finish)
                return
            if children:
                log.error("broker: children %s did not say goodbye; exiting anyway", children)
        self._finish()

    def _finish(self):
        # Services first (their last answers, e.g. the ENODATA that ends a watch,
        # still reach the clients), then the clients; from then on nothing is routed:
        # the disconnects of the clients closed here, run later by the loop, and late
        # timers would reach closed services and a closed overlay.
        for close in self.closers:
            try:
                close()
            except Exception:
                log.exception("broker: error while closing a service")
        self.connector.close()
        self._finished = True
        if self.overlay is not None:
            if self.overlay.dealer is not None:
                self.overlay.send_parent({"type": "ctl", "topic": "goodbye"})
            self.overlay.close()
        self._done.set_result(None)

    # ---- inputs from the connector and the overlay -------------------------------

    def from_client(self, client, msg):
        mtype = msg.get("type")
        if mtype == "req":
            msg["userid"] = client.uid
            msg["rolemask"] = 1 if client.uid == self.owner else 2
            topic = msg.get("topic")
            if isinstance(topic, str):
                client.services.add((topic.split(".", 1)[0], msg.get("nodeid", -1)))
            msg["route"] = []
            self.route_request(msg, client.hop)
        elif mtype == "resp" and client.provides:
            # an answer from a client that serves a service (service.add)
            if isinstance(msg.get("route"), list) and all(isinstance(h, str) and h for h in msg["route"]):
                self.route_response(msg)
            else:
                log.error("connector: client %d sent a response with a bad route; dropped", client.id)
        else:
            log.error("connector: client %d sent a %r message; only requests are accepted", client.id, mtype)

    def route_request(self, msg, hop):
        if not self._finished:  # a timer after _finish: the services and links are closed
            Router.route_request(self, msg, hop)

    def route_response(self, msg):
        if not self._finished:
            Router.route_response(self, msg)

    def client_disconnected(self, client):
        if self._finished:
            return
        for name in client.provides:
            if self.services.get(name) is not None and getattr(self.services[name], "client", None) is client:
                del self.services[name]
        for service, nodeid in client.services:
            if service in ("event",):
                continue
            self.route_request({"type": "req", "topic": f"{service}.disconnect", "nodeid": nodeid,
                                "flags": NORESPONSE, "matchtag": 0, "payload": None, "route": [],
                                "userid": client.uid}, client.hop)

    def overlay_recv(self, msg, hop):
        mtype = msg["type"]
        if mtype == "req":
            self.route_request(msg, hop)
        elif mtype == "resp":
            self.route_response(msg)
        elif mtype == "ev" and hop == "p":
            self.deliver_event(msg)
        else:
            log.error("overlay: dropped a %r message from %s", mtype, hop)

    def parent_ctl(self, msg):
        if msg.get("topic") == "shutdown":
            self.shutdown()

    def child_online(self, child):
        self._subtree_change("online", [child])

    def child_ctl(self, child, msg):
        topic = msg.get("topic")
        ranks = msg.get("ranks")
        if topic in ("online", "lost") and isinstance(ranks, list):
            self._subtree_change(topic, ranks)

    def child_lost(self, child):
        self._subtree_change("lost", subtree_of(child, self.size, self.fanout))
        if self._shutting_down:
            self._maybe_finish()

    def child_goodbye(self, child):
        if self._shutting_down:
            self._maybe_finish()
        else:
            self._subtree_change("lost", subtree_of(child, self.size, self.fanout))

    def _subtree_change(self, what, ranks):
        if self.rank == 0:
            if what == "online":
                back = self.lost.union(self.late).intersection(ranks)
                self.late.difference_update(ranks)
                self.online.update(ranks)
                self.lost.difference_update(ranks)
                self._check_quorum()
                if back:  # lost ranks that said hello again: schedulable again
                    self.publish("overlay.online", {"ranks": sorted(back)})
            else:
                self.online.difference_update(ranks)
                self.lost.update(ranks)
                self.publish("overlay.lost", {"ranks": sorted(ranks)})
        elif self.overlay is not None and self.overlay.dealer is not None:
            self.overlay.send_parent({"type": "ctl", "topic": what, "ranks": ranks})

    def parent_lost(self, reason):
        if self._done is None or self._done.done():
            return
        if self._shutting_down:
            return
        log.error("broker rank %d: %s; shutting down", self.rank, reason)
        self.exit_code = 1
        self.shutdown()


def setup_logging(attrs, rank_hint="0"):
    """The broker's log (``log.py``): ring buffer, stderr as ``flux-broker[RANK]:
    LEVEL: text`` filtered by ``log-stderr-level`` (default 4: warnings and worse),
    forwarding to rank 0, ``log-filename``. Returns the handler."""
    from flux_launch.broker import log as _log

    return _log.setup(attrs, rank_hint)


def check_attrs(attrs):
    """The one-line error for a broker attribute with a bad value, or None."""
    from flux_launch.broker.log import check_attrs as check_log_attrs
    from flux_launch.services.job_manager.purge import parse_limits

    try:
        parse_limits(attrs)
    except ValueError as exc:
        return str(exc)
    return check_log_attrs(attrs)


def run_broker(attrs, command=None, topology=None, config_path=None):
    """Run one broker to completion and return its exit code.

    Creates the rundir (and, on rank 0, the statedir) when not given or missing,
    and removes what it created; an existing rundir keeps its mode
    (``prepare_rundir``). A failure to boot or to open the state prints one line
    and returns 1.
    """
    import shutil

    from flux_launch.broker.boot import BootError, prepare_rundir
    from flux_launch.services.kvs.store import StoreError

    # before the fork server: the shells and tasks come from it
    from flux_launch.broker.sigreset import ignored_signals_default_in_children

    ignored_signals_default_in_children()
    log_handler = setup_logging(attrs, os.environ.get("PMI_RANK", "0"))
    nested_context(attrs)
    config = {}
    config_path = config_path or attrs.pop("config.path", None)
    if config_path:  # -c: its tunables under the -S attributes, checked as theirs
        from flux_launch.broker import config as _config

        try:
            config = _config.load(config_path)
            _config.apply(config, attrs, given=set(attrs))
        except _config.ConfigError as exc:
            return startup_failed(attrs, exc)
        attrs["config.path"] = config_path
    message = check_attrs(attrs)
    if message:
        return startup_failed(attrs, message)
    try:
        attrs["rundir"], made = prepare_rundir(attrs.get("rundir"))
    except BootError as exc:
        return startup_failed(attrs, exc)
    if not attrs.get("statedir"):
        attrs["statedir"] = os.path.join(attrs["rundir"], f"state-{os.environ.get('PMI_RANK', '0')}")
    from flux_launch.resource import TopologyError, discover_from_env

    try:
        if topology is None:  # flux start --test-size discovers once for all its brokers
            topology = discover_from_env()
    except TopologyError as exc:
        if made:
            shutil.rmtree(attrs["rundir"], ignore_errors=True)
        return startup_failed(attrs, exc)
    from flux_launch.services.exec import forkserver

    # Forked now, before the event loop and zeromq exist: a clean fork.
    fs_sock, fs_pid = forkserver.spawn()
    broker = Broker(attrs, command, forkserver=(fs_sock, fs_pid))
    broker.topology = topology
    broker.config = config
    broker.log = log_handler
    try:
        return asyncio.run(broker.run())
    except (BootError, StoreError) as exc:
        return startup_failed(attrs, exc)
    finally:
        fs_sock.close()
        try:
            os.waitpid(fs_pid, 0)
        except ChildProcessError:
            pass
        if made:
            shutil.rmtree(attrs["rundir"], ignore_errors=True)


def startup_failed(attrs, why):
    """Print why the broker cannot start (one line) and return 1. A broker of a
    nested instance also raises an exception on its job in the enclosing instance,
    saying why: the job ends at once (the other brokers would wait for this one)
    and its eventlog and ``flux jobs`` tell the user what went wrong."""
    print(f"flux-broker: {why}", file=sys.stderr)
    sys.stderr.flush()
    if "parent-uri" in attrs:
        from flux_launch.client.handle import Flux
        from flux_launch.core.jobid import JobID

        rank = os.environ.get("PMI_RANK", "0")
        try:
            with Flux(attrs["parent-uri"]) as h:
                h.rpc("job-manager.raise", {"id": int(JobID(attrs["jobid"])), "type": "exec", "severity": 0,
                                            "note": f"nested instance failed to start on rank {rank}: {why}"}).get()
        except (OSError, ValueError) as exc:
            print(f"flux-broker: cannot report the failure to the enclosing instance: {exc}", file=sys.stderr)
    return 1


def nested_context(attrs, environ=None):
    """A broker started as a job's task (``FLUX_JOB_ID`` and ``FLUX_URI`` set by the
    job shell) heads a nested instance: ``jobid`` and ``parent-uri`` (and
    ``parent-kvs-namespace``) are set from them, and the enclosing instance's
    variables are removed so that nothing the instance starts talks to its parent
    by mistake (``flux --parent`` does, on purpose)."""
    environ = os.environ if environ is None else environ
    jobid, uri = environ.get("FLUX_JOB_ID"), environ.get("FLUX_URI")
    if not (jobid and uri):
        return
    attrs["jobid"] = jobid
    attrs["parent-uri"] = uri
    if environ.get("FLUX_KVS_NAMESPACE"):
        attrs["parent-kvs-namespace"] = environ["FLUX_KVS_NAMESPACE"]
    for var in ("FLUX_URI", "FLUX_KVS_NAMESPACE"):
        environ.pop(var, None)


def parse_attrs(pairs):
    """``["a=b", ...]`` to a dict.

    Raises:
        ValueError: an item has no ``=``.
    """
    attrs = {}
    for item in pairs:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"invalid attribute {item!r}: expected NAME=VALUE")
        attrs[name] = value
    return attrs


def main(argv=None, default_shell=False):
    """``python -m flux_launch.broker [-S NAME=VALUE]... [COMMAND...]`` (and ``flux
    broker``, with ``default_shell``: without a COMMAND the initial program is
    ``$SHELL``, unless ``-Sbroker.rc2_none=1``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    pairs = []
    config_path = None
    while args:
        if args[0] in ("-S", "--setattr") and len(args) > 1:
            pairs.append(args[1])
            del args[:2]
        elif args[0].startswith("-S") and len(args[0]) > 2:
            pairs.append(args[0][2:])
            del args[0]
        elif args[0].startswith("--setattr="):
            pairs.append(args[0].split("=", 1)[1])
            del args[0]
        elif args[0] == "--":
            del args[0]
            break
        elif args[0] in ("-c", "--config-path") and len(args) > 1:
            config_path = args[1]
            del args[:2]
        elif args[0].startswith("-c") and len(args[0]) > 2:
            config_path = args[0][2:]
            del args[0]
        elif args[0].startswith("--config-path="):
            config_path = args[0].split("=", 1)[1]
            del args[0]
        elif args[0].startswith("-"):
            print(f"flux-broker: unknown option {args[0]!r} (use -S NAME=VALUE)", file=sys.stderr)
            return 2
        else:
            break
    try:
        attrs = parse_attrs(pairs)
    except ValueError as exc:
        print(f"flux-broker: {exc}", file=sys.stderr)
        return 2
    if not args and default_shell and attrs.get("broker.rc2_none", "0") in ("0", ""):
        args = [os.environ.get("SHELL") or "/bin/sh"]
    return run_broker(attrs, args or None, config_path=config_path)
