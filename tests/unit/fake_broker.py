"""The broker's end of one client connection, for tests of the handle and of the
shell on a real UNIX socket without a broker."""

import socket

from flux_launch.client.handle import Flux
from flux_launch.proto import message


class BrokerEnd:
    """Reads the client's requests and sends it messages."""

    def __init__(self, conn):
        self.conn = conn
        self.decoder = message.Decoder()
        self.pending = []

    def request(self, timeout=5):
        """The next request the client sent."""
        self.conn.settimeout(timeout)
        while not self.pending:
            self.pending.extend(self.decoder.feed(self.conn.recv(65536)))
        return self.pending.pop(0)

    def send(self, msg):
        self.conn.sendall(message.frame(msg))

    def respond(self, req, payload=None, errnum=0):
        self.send(message.response(req, payload, errnum))


def listener(path):
    """A UNIX socket listening at ``path`` (a client connects to ``local://PATH``)."""
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    return srv


def accept(srv):
    """The first connection to ``srv`` (which is closed)."""
    conn, _ = srv.accept()
    srv.close()
    return conn


def connect(path):
    """``(Flux handle, the accepted socket)`` on a new UNIX socket at ``path``."""
    srv = listener(path)
    return Flux(f"local://{path}"), accept(srv)


class ServiceBroker:
    """What the rank-0 services need of a broker, in process: services registered by
    name, their responses kept as ``(matchtag, payload, errnum, errstr)``, and
    ``request()`` to deliver one as the router would (rolemask 1 for the owner)."""

    owner = 1000
    rank = 0
    size = 1
    parent_R = None  # a nested instance's resources (broker.main.Broker)

    def __init__(self):
        self.services = {}
        self.responses = []
        self.attrs = {}
        self.closers = []  # called at shutdown by broker.main.Broker

    def register(self, name, handler):
        self.services[name] = handler

    def respond(self, req, payload=None):
        self.responses.append((req.get("matchtag"), payload, 0, None))

    def respond_error(self, req, errnum, errstr=None):
        self.responses.append((req.get("matchtag"), None, errnum, errstr))

    def request(self, topic, payload=None, tag=1, userid=None, **fields):
        """Deliver a request by its topic; returns its responses so far."""
        userid = self.owner if userid is None else userid
        before = len(self.responses)
        msg = {"type": "req", "topic": topic, "payload": payload, "matchtag": tag, "route": [f"c{tag}"],
               "userid": userid, "rolemask": 1 if userid == self.owner else 2, "flags": 0, **fields}
        self.services[topic.split(".", 1)[0]](msg)
        return self.responses[before:]
