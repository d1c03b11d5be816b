"""The tree-based overlay network (TBON) between brokers, over zeromq.

Each broker binds one ROUTER socket for its children (if it has any) and connects
one DEALER socket, whose identity is its rank, to its parent's ROUTER. Messages are
single JSON frames (``proto.message``). Transport is ``ipc://`` or ``tcp://``; on
TCP the links are encrypted and authenticated with CURVE: each broker's public key
is exchanged at boot, and a parent admits only the keys of its own children.

Liveness: parent and child send each other a ``keepalive`` every
``tbon.keepalive`` seconds (default 1). The ROUTER is in mandatory mode, so a send
to a child whose connection has gone (process killed, host down) fails at once and
the child is declared ``lost``; so is a child silent for ``tbon.timeout`` seconds.
A disconnect seen by the socket monitor triggers an immediate probe. A child whose
parent disconnects or stays silent for ``tbon.timeout`` gives up (the broker exits):
a subtree cut from rank 0 cannot serve anyone.

Topology: a k-ary tree (k = ``tbon.fanout``), see ``tree.py``.
"""

import logging
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from flux_launch.broker.tree import children_of, parent_of
from flux_launch.proto import message as _msg

log = logging.getLogger("flux_launch.broker")
_HANDSHAKE_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                     | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
_MONITORED = zmq.EVENT_DISCONNECTED | zmq.EVENT_ACCEPTED | _HANDSHAKE_FAILED | zmq.EVENT_HANDSHAKE_SUCCEEDED


class Overlay:
    """The zeromq sockets of one broker and the state of its links.

    Args:
        broker: the owning broker; it receives ``overlay_recv(msg, hop)``,
            ``child_lost(rank)`` and ``parent_lost(reason)`` calls.
        rank, size, fanout: this broker's place in the tree.
        keepalive, timeout: liveness periods in seconds.
    """

    GOODBYE_LINGER_MS = 1000

    def __init__(self, broker, rank, size, fanout, keepalive=1.0, timeout=30.0):
        self.broker = broker
        self.rank = rank
        self.size = size
        self.fanout = fanout
        self.keepalive = keepalive
        self.timeout = timeout
        self.ctx = zmq.Context.instance()
        self.children = children_of(rank, size, fanout)
        self.parent = parent_of(rank, fanout)
        # child rank -> "online" | "lost" | "offline" (not yet connected) | "gone" (said goodbye)
        self.child_state = {c: "offline" for c in self.children}
        self.child_seen = {}
        self.parent_seen = time.monotonic()
        self.router = None
        self.dealer = None
        self.endpoint = None
        self.curve = None
        self.auth = None
        self._monitors = []
        self._loop = None
        self._closing = False
        self._refused_logged = -1e9
        self.parent_up = False  # a message came from the parent since the link was (re)made
        self._dealer_mon = None

    # ---- setup -----------------------------------------------------------------

    def make_keys(self):
        """Create this broker's CURVE key pair; returns the public key (str)."""
        pub, sec = zmq.curve_keypair()
        self.curve = (pub, sec)
        return pub.decode()

    def bind(self, endpoint, allowed_keys=None):
        """Bind the ROUTER for the children; returns the concrete endpoint.

        ``endpoint`` may end in ``:*`` for a kernel-chosen TCP port. With CURVE keys,
        only clients presenting one of ``allowed_keys`` are admitted.
        """
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        sock.setsockopt(zmq.ROUTER_HANDOVER, 1)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        if self.curve and endpoint.startswith("tcp://"):
            self._start_auth(allowed_keys or ())
            sock.curve_server = True
            sock.curve_secretkey = self.curve[1]
            sock.zap_domain = b"flux"
        sock.bind(endpoint)
        self.router = sock
        self.endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        return self.endpoint

    def set_allowed_keys(self, keys):
        """Admit these child public keys (CURVE on TCP)."""
        if self.auth is not None:
            self._allowed.clear()
            self._allowed.update(k.encode() if isinstance(k, str) else k for k in keys)

    def _start_auth(self, keys):
        from zmq.auth.thread import ThreadAuthenticator

        self._allowed = set(k.encode() if isinstance(k, str) else k for k in keys)
        allowed = self._allowed

        refused = set()

        class _Keys:
            @staticmethod
            def callback(domain, key):
                if key in allowed:
                    return True
                if key not in refused and len(refused) < 64:  # once per key: a peer retries every 100 ms
                    refused.add(key)
                    log.error("overlay: refused a connection with CURVE key %s...: not a key of this instance "
                              "(is the peer using another curve_cert?)", key[:8].decode(errors="replace"))
                return False

        self.auth = ThreadAuthenticator(self.ctx, log=log)
        self.auth.start()
        self.auth.configure_curve_callback(domain="flux", credentials_provider=_Keys())

    def connect(self, parent_uri, parent_pubkey=None):
        """Connect the DEALER to the parent's endpoint."""
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.setsockopt(zmq.RCVHWM, 0)
        sock.setsockopt_string(zmq.IDENTITY, str(self.rank))
        if parent_uri.startswith("tcp://"):
            if not (self.curve and parent_pubkey):
                raise RuntimeError(f"overlay: no CURVE key for the TCP link to {parent_uri}")
            sock.curve_serverkey = parent_pubkey.encode()
            sock.curve_publickey = self.curve[0]
            sock.curve_secretkey = self.curve[1]
        # monitored before it connects: the handshake's event must not be missed
        self._dealer_mon = sock.get_monitor_socket(_MONITORED)
        sock.connect(parent_uri)
        self.dealer = sock
        self.parent_seen = time.monotonic()

    def start(self, loop):
        """Hook the sockets into the asyncio loop and start the keepalive timer."""
        self._loop = loop
        if self.router is not None:
            loop.add_reader(self.router.getsockopt(zmq.FD), self._drain_router)
            self._watch(self.router, self._router_event)
        if self.dealer is not None:
            loop.add_reader(self.dealer.getsockopt(zmq.FD), self._drain_dealer)
            self._watch(self.dealer, self._dealer_event, self._dealer_mon)
            self.send_parent({"type": "ctl", "topic": "hello", "rank": self.rank})
        loop.call_later(self.keepalive, self._tick)
        # A zeromq FD only signals new readiness after ZMQ_EVENTS has been read:
        # drain once now to arm every reader.
        self._drain_all()

    def _watch(self, sock, handler, mon=None):
        mon = mon or sock.get_monitor_socket(_MONITORED)
        self._monitors.append((sock, mon))
        self._loop.add_reader(mon.getsockopt(zmq.FD), self._drain_monitor, mon, handler)
        self._drain_monitor(mon, handler)

    # ---- sending ---------------------------------------------------------------

    def send_child(self, rank, msg):
        """Send to a child; returns False (and marks it lost) if it is unreachable."""
        if self.child_state.get(rank) != "online":
            return False
        try:
            msg, raw = _msg.split_raw(msg)
            frames = [str(rank).encode(), _msg.encode(msg)]
            if type(raw) is list:
                raw = b"".join(raw)
            if raw is not None:
                frames.append(raw)
            self.router.send_multipart(frames, zmq.NOBLOCK, copy=raw is None)
        except zmq.ZMQError as exc:
            if exc.errno == zmq.EHOSTUNREACH:
                self._lose_child(rank, "connection gone")
                return False
            raise
        finally:
            self._kick()
        return True

    def send_parent(self, msg):
        try:
            msg, raw = _msg.split_raw(msg)
            if type(raw) is list:
                raw = b"".join(raw)
            if raw is None:
                self.dealer.send(_msg.encode(msg), zmq.NOBLOCK)
            else:
                self.dealer.send_multipart([_msg.encode(msg), raw], zmq.NOBLOCK, copy=False)
        except zmq.Again:
            # no link to the parent right now (it is gone, or reconnecting)
            if msg.get("type") != "ctl":
                log.error("overlay: dropped a %s message to the parent: not connected", msg.get("type"))
        finally:
            self._kick()

    def _kick(self):
        # zeromq's FD is edge-triggered: a send may consume the readiness edge, so
        # look for pending input after every send.
        if self._loop is not None and not self._closing:
            self._loop.call_soon(self._drain_all)

    # ---- receiving -------------------------------------------------------------

    def _drain_all(self):
        if self.router is not None:
            self._drain_router()
        if self.dealer is not None:
            self._drain_dealer()

    def _drain_router(self):
        sock = self.router
        while not self._closing and sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            frames = sock.recv_multipart(zmq.NOBLOCK)
            self.parent_up = True
            if len(frames) not in (2, 3):
                log.error("overlay: dropped a message of %d frames from a child", len(frames))
                continue
            try:
                child = int(frames[0])
                msg = _msg.decode(frames[1])
                if len(frames) == 3:
                    _msg.attach_raw(msg, frames[2])
            except ValueError as exc:
                log.error("overlay: dropped a message from child %r: %s", frames[0][:16], exc)
                continue
            if child not in self.child_state:
                log.error("overlay: dropped a message from rank %d: not a child of rank %d", child, self.rank)
                continue
            self.child_seen[child] = time.monotonic()
            if msg["type"] == "ctl":
                self._child_ctl(child, msg)
            elif self.child_state[child] == "online":
                self.broker.overlay_recv(msg, f"r{child}")

    def _drain_dealer(self):
        sock = self.dealer
        while not self._closing and sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            frames = sock.recv_multipart(zmq.NOBLOCK)
            self.parent_seen = time.monotonic()
            try:
                if len(frames) > 2:
                    raise ValueError(f"a message of {len(frames)} frames")
                msg = _msg.decode(frames[0])
                if len(frames) == 2:
                    _msg.attach_raw(msg, frames[1])
            except ValueError as exc:
                log.error("overlay: dropped a message from the parent: %s", exc)
                continue
            if msg["type"] == "ctl":
                if msg.get("topic") != "keepalive":
                    self.broker.parent_ctl(msg)
            else:
                self.broker.overlay_recv(msg, "p")

    def _child_ctl(self, child, msg):
        topic = msg.get("topic")
        if topic == "hello":
            self.child_state[child] = "online"
            self.broker.child_online(child)
        elif topic == "goodbye":
            self.child_state[child] = "gone"
            self.broker.child_goodbye(child)
        elif topic == "keepalive":
            if self.child_state[child] == "lost":
                log.info("overlay: lost rank %d is talking again; ignored until it says hello", child)
        else:
            self.broker.child_ctl(child, msg)

    def _drain_monitor(self, mon, handler):
        # a handler may close the overlay (a leaf broker shuts down at once)
        while not self._closing and mon.getsockopt(zmq.EVENTS) & zmq.POLLIN:
            ev = recv_monitor_message(mon, zmq.NOBLOCK)
            handler(ev["event"])

    def _router_event(self, event):
        if event == zmq.EVENT_DISCONNECTED and not self._closing:
            self._probe_children()
        elif event & _HANDSHAKE_FAILED:
            now = time.monotonic()
            if now - self._refused_logged > 60:  # a peer retries every 100 ms: once a minute
                self._refused_logged = now
                log.error("overlay: refused a connection on %s: it failed the CURVE handshake (a peer with "
                          "another key or curve_cert, or not a broker)", self.endpoint)

    def _dealer_event(self, event):
        if self._closing:
            return
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.parent_up = True
        elif event == zmq.EVENT_DISCONNECTED:
            self.parent_up = False
            self.broker.parent_lost("the connection to the parent broker was closed")
        elif event & _HANDSHAKE_FAILED:
            self.parent_up = False
            self.broker.parent_lost("the parent broker refused this broker's CURVE key (is curve_cert the "
                                    "instance's?)")

    # ---- liveness --------------------------------------------------------------

    def _probe_children(self):
        ka = {"type": "ctl", "topic": "keepalive"}
        for child, state in self.child_state.items():
            if state == "online":
                self.send_child(child, ka)

    def _lose_child(self, child, reason):
        if self.child_state.get(child) == "online":
            self.child_state[child] = "lost"
            level = logging.INFO if self.broker.state == "shutdown" else logging.ERROR
            log.log(level, "overlay: rank %d lost: %s", child, reason)
            self.broker.child_lost(child)

    def _tick(self):
        if self._closing:
            return
        now = time.monotonic()
        self._probe_children()
        for child, state in self.child_state.items():
            if state == "online" and now - self.child_seen.get(child, now) > self.timeout:
                self._lose_child(child, f"silent for {self.timeout:g}s")
        if self.dealer is not None:
            self.send_parent({"type": "ctl", "topic": "keepalive"})
            if now - self.parent_seen > self.timeout:
                self.parent_up = False
                self.broker.parent_lost(f"no message from the parent for {self.timeout:g}s")
        self._loop.call_later(self.keepalive, self._tick)

    # ---- teardown ----------------------------------------------------------------

    def close(self):
        self._closing = True
        loop = self._loop
        for sock, mon in self._monitors:
            if loop is not None:
                loop.remove_reader(mon.getsockopt(zmq.FD))
            sock.disable_monitor()
            mon.close(0)
        if self._dealer_mon is not None and not self._monitors:  # connected, never started
            self.dealer.disable_monitor()
            self._dealer_mon.close(0)
        for sock, linger in ((self.router, 0), (self.dealer, self.GOODBYE_LINGER_MS)):
            if sock is not None:
                if loop is not None:
                    loop.remove_reader(sock.getsockopt(zmq.FD))
                # the dealer lingers so that a goodbye just sent reaches the parent
                sock.close(linger)
        if self.auth is not None:
            self.auth.stop()
        self.ctx.term()
