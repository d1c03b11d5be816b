"""The local connector: a UNIX socket in the rundir that clients talk to.

Each accepted connection is checked with ``SO_PEERCRED``: only the instance owner
is served (guest access comes with a later issue). A refused peer gets one ``ctl``
message with ``EPERM`` and a one-line reason, then the connection is closed; the
broker goes on.

Framing errors (a length over the limit) close that one connection; a frame of bad
JSON is logged and dropped while the connection stays open.
"""

import asyncio
import errno
import itertools
import logging
import os
import socket
import struct
from collections import deque

from flux_launch.proto import message as _msg

log = logging.getLogger("flux_launch.broker")

_PEERCRED = struct.Struct("3i")

# Flow control toward a client that reads slowly (a terminal behind ``flux run``):
# above HIGH_WATER bytes queued for it, bulk senders (output watches) hold back
# until the queue drains to LOW_WATER; the data waits in the KVS, not in memory twice.
HIGH_WATER = 4 * 1024 * 1024
LOW_WATER = 1024 * 1024


def peer_cred(sock):
    """Return ``(pid, uid, gid)`` of the process at the other end of a UNIX socket."""
    return _PEERCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size))


class Client:
    """One connected client: its transport, credentials, subscriptions and the
    (service, nodeid) pairs it has sent requests to (told of its disconnect)."""

    __slots__ = ("id", "hop", "transport", "uid", "pid", "subscriptions", "services", "closed", "provides",
                 "paused", "on_resume", "sock", "outq", "outbytes")

    def __init__(self, cid, transport, uid, pid):
        self.id = cid
        self.hop = f"c{cid}"
        self.transport = transport
        # Writes bypass the transport's buffer: gathering sends (a raw attachment is
        # never copied into a frame) and a queue of views (asyncio 3.11 moves its
        # whole bytearray buffer after each partial send).
        self.sock = socket.socket(fileno=os.dup(transport.get_extra_info("socket").fileno()))
        self.sock.setblocking(False)
        self.outq = deque()
        self.outbytes = 0
        self.uid = uid
        self.pid = pid
        self.subscriptions = []
        self.services = set()
        self.closed = False
        self.provides = set()  # service names this client serves (service.add)
        self.paused = False  # its socket's send buffer is above the high-water mark
        self.on_resume = []  # callables to run once it drains below the low-water mark

    def resumed(self):
        self.paused = False
        waiting, self.on_resume = self.on_resume, []
        for fn in waiting:
            fn()

    def send(self, msg):
        if self.closed:
            return
        parts = _msg.frame_parts(msg)
        if self.outq:
            self._enqueue(parts, 0)
            return
        try:
            n = self.sock.sendmsg(parts) if len(parts) > 1 else self.sock.send(parts[0])
        except BlockingIOError:
            n = 0
        except OSError:
            self.transport.close()  # gone: connection_lost cleans up
            return
        self._enqueue(parts, n)

    def _enqueue(self, parts, sent):
        """Queue what of ``parts`` the socket did not take (``sent`` bytes went,
        which happens only when the queue was empty)."""
        q = self.outq
        was_empty = not q
        q.extend(memoryview(part).cast("B") for part in parts)
        self.outbytes += sum(len(part) for part in parts) - sent
        _msg.drop_sent(q, sent)
        if q:
            if was_empty:
                asyncio.get_running_loop().add_writer(self.sock.fileno(), self._write_ready)
            if self.outbytes > HIGH_WATER:
                self.paused = True

    def _write_ready(self):
        q = self.outq
        try:
            while q:
                n = self.sock.sendmsg(list(itertools.islice(q, 64)))
                if not n:
                    break
                self.outbytes -= n
                _msg.drop_sent(q, n)
        except BlockingIOError:
            pass
        except OSError:
            self._drop()
            self.transport.close()
            return
        if not q:
            asyncio.get_running_loop().remove_writer(self.sock.fileno())
        if self.paused and self.outbytes <= LOW_WATER:
            self.resumed()

    def _drop(self):
        if self.outq:
            try:
                asyncio.get_running_loop().remove_writer(self.sock.fileno())
            except (RuntimeError, ValueError):
                pass
            self.outq.clear()
            self.outbytes = 0

    def close(self):
        self._drop()
        self.sock.close()


class _Protocol(asyncio.Protocol):
    def __init__(self, connector):
        self.connector = connector
        self.client = None
        self.decoder = _msg.Decoder()

    def connection_made(self, transport):
        sock = transport.get_extra_info("socket")
        try:
            pid, uid, _gid = peer_cred(sock)
        except OSError as exc:
            log.error("connector: cannot read peer credentials: %s; closing", exc)
            transport.close()
            return
        owner = self.connector.owner
        if uid != owner:
            log.warning("connector: refused connection from uid %d (pid %d): not the instance owner", uid, pid)
            refusal = {"type": "ctl", "topic": "connect", "errnum": errno.EPERM,
                       "errstr": f"permission denied: this instance belongs to uid {owner} "
                                 f"and does not accept guests (you are uid {uid})"}
            transport.write(_msg.frame(refusal))
            transport.close()
            return
        self.client = self.connector.add_client(transport, uid, pid)

    def data_received(self, data):
        client = self.client
        if client is None:
            return
        try:
            msgs = self.decoder.feed(data)
        except _msg.FramingError as exc:
            log.error("connector: client %d (pid %d): %s; closing the connection", client.id, client.pid, exc)
            self.client.transport.close()
            return
        broker = self.connector.broker
        for m in msgs:
            if isinstance(m, Exception):
                log.error("connector: client %d (pid %d): dropped %s", client.id, client.pid, m)
                continue
            broker.from_client(client, m)

    def connection_lost(self, exc):
        if self.client is not None:
            self.connector.remove_client(self.client)


class Connector:
    """Serves the local socket at ``path`` for the broker."""

    def __init__(self, broker, path, owner):
        self.broker = broker
        self.path = path
        self.owner = owner
        self.clients = {}
        self._next = 1
        self.server = None

    async def start(self):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        loop = asyncio.get_running_loop()
        self.server = await loop.create_unix_server(lambda: _Protocol(self), self.path)
        os.chmod(self.path, 0o700)

    def add_client(self, transport, uid, pid):
        client = Client(self._next, transport, uid, pid)
        self._next += 1
        self.clients[client.hop] = client
        return client

    def remove_client(self, client):
        client.closed = True
        client.close()
        self.clients.pop(client.hop, None)
        self.broker.client_disconnected(client)

    def close(self):
        if self.server is not None:
            self.server.close()
        for client in list(self.clients.values()):
            client.transport.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass
