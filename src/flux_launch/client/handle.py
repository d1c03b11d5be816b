"""A blocking client handle on a broker's local connector (``flux.Flux`` in spirit).

``Flux(uri)`` connects to ``local://PATH`` (default: ``$FLUX_URI``). Requests go out
with ``rpc()``; responses and subscribed events are read from the one socket and
sorted by matchtag, so several RPCs can be in flight at once.

Failures: connecting raises ``NoInstanceError`` (an ``OSError``) with a message that
says what to do; an error response raises ``OSError(errnum, errstr)`` from
``Future.get()``; a broker that goes away raises ``ConnectionError``.
"""

import errno
import os
from itertools import islice

# The C modules: socket.py and collections add enums and classes the handle does not
# use, and importing them costs ~3 ms of every command's start.
from _collections import deque
from _socket import AF_UNIX, SOCK_STREAM
from _socket import socket as _socket

from flux_launch.proto import message as _msg

NODEID_ANY = _msg.NODEID_ANY
STREAMING = _msg.STREAMING
NORESPONSE = _msg.NORESPONSE


class NoInstanceError(OSError):
    """No broker answers at the URI."""


def uri_path(uri):
    """Return the socket path of a ``local://`` URI.

    Raises:
        NoInstanceError: the URI is not a ``local://`` URI.
    """
    if uri.startswith("local://"):
        return uri[len("local://"):]
    raise NoInstanceError(errno.EINVAL, f"unsupported URI {uri!r}: only local:// URIs are supported")


class Future:
    """The pending result of one RPC.

    ``get()`` blocks for the next response: it returns the payload or raises
    ``OSError(errnum, errstr)``. A streaming RPC yields several responses: iterate
    the future (``for payload in future``), which stops at the ``ENODATA`` that ends
    the stream.
    """

    def __init__(self, handle, matchtag, topic, streaming):
        self.handle = handle
        self.matchtag = matchtag
        self.topic = topic
        self.streaming = streaming
        self._queue = deque()
        self.done = False

    def _take(self, timeout):
        q = self._queue
        while not q:
            self.handle._recv_one(timeout)
        return q.popleft()

    def get(self, timeout=None):
        """Wait for the next response.

        Raises:
            OSError: the response carries an error (errno and text from the service).
            TimeoutError: no response within ``timeout`` seconds.
            ConnectionError: the broker went away.
        """
        resp = self._take(timeout)
        errnum = resp.get("errnum")
        if errnum:
            self._finish()  # an error ends a stream too (RFC 6), not only ENODATA
            raise OSError(errnum, resp.get("errstr") or os.strerror(errnum))
        if not self.streaming:
            self._finish()
        return resp.get("payload")

    def __iter__(self):
        while not self.done:
            try:
                yield self.get()
            except OSError as exc:
                if exc.errno == errno.ENODATA:
                    return
                raise

    def then(self, callback, *args):
        """Call ``callback(future, *args)`` when a response is ready, from
        ``Flux.reactor_run()`` (flux-core's continuation style)."""
        self.handle._continuations.append((self, callback, args))
        return self

    def _finish(self):
        self.done = True
        self.handle._futures.pop(self.matchtag, None)


def _sendmsg_all(sock, parts):
    """Send the concatenation of ``parts`` with gathering writes (no copy)."""
    views = deque(memoryview(p).cast("B") for p in parts)
    while views:
        _msg.drop_sent(views, sock.sendmsg(list(islice(views, 64))))


class Flux:
    """A connection to one broker.

    Args:
        uri: ``local://PATH``; default ``$FLUX_URI``.

    Raises:
        NoInstanceError: ``FLUX_URI`` is unset or nothing listens at the URI.
    """

    def __init__(self, uri=None):
        if uri is None:
            uri = os.environ.get("FLUX_URI")
            if not uri:
                raise NoInstanceError(errno.ENOENT, "FLUX_URI is not set: no instance to talk to; run flux start")
        self.uri = uri
        path = uri_path(uri)
        sock = _socket(AF_UNIX, SOCK_STREAM)
        try:
            sock.connect(path)
        except PermissionError:
            sock.close()
            raise NoInstanceError(errno.EACCES, f"permission denied connecting to {uri}: "
                                  "the instance belongs to another user") from None
        except OSError:
            sock.close()
            raise NoInstanceError(errno.ECONNREFUSED, f"no instance at {uri}; run flux start") from None
        self._sock = sock
        self._decoder = _msg.Decoder()
        self._futures = {}
        self._events = deque()
        self._next_tag = 1
        self._closed = False
        self._continuations = []
        self.requests = deque()

    def close(self):
        """Close the connection; pending futures fail with ``ConnectionError``."""
        if not self._closed:
            self._closed = True
            self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def fileno(self):
        return self._sock.fileno()

    def send(self, msg):
        """Send a raw message dict.

        Raises:
            OSError: the broker refused this connection (its reason, e.g. EPERM).
            ConnectionError: the broker closed the connection.
        """
        try:
            parts = _msg.frame_parts(msg)
            if len(parts) == 1:
                self._sock.sendall(parts[0])
            else:
                _sendmsg_all(self._sock, parts)
        except (BrokenPipeError, ConnectionResetError):
            # The broker may have refused us and closed before we sent: its reason
            # is still waiting in our receive buffer.
            try:
                while True:
                    self._recv_one(1.0)
            except (ConnectionError, TimeoutError):
                pass
            raise ConnectionError(f"the broker at {self.uri} closed the connection") from None

    def rpc(self, topic, payload=None, nodeid=NODEID_ANY, flags=0):
        """Send a request and return its ``Future`` (``None`` with ``NORESPONSE``)."""
        tag = 0
        fut = None
        if not flags & NORESPONSE:
            tag = self._next_tag
            self._next_tag += 1
            fut = Future(self, tag, topic, bool(flags & STREAMING))
            self._futures[tag] = fut
        self.send(_msg.request(topic, payload, nodeid, tag, flags))
        return fut

    def reactor_run(self):
        """Run continuations (``Future.then``) until none is waiting."""
        while self._continuations:
            ready = [c for c in self._continuations if c[0]._queue]
            if not ready:
                self._recv_one(None)
                continue
            for entry in ready:
                self._continuations.remove(entry)
                fut, callback, args = entry
                callback(fut, *args)

    def service_register(self, name):
        """Serve requests ``name.*`` sent to this broker's rank; they arrive in
        ``requests`` and are answered with ``respond``. Returns the registration's
        ``Future``."""
        return self.rpc("service.add", {"name": name})

    def respond(self, req, payload=None, errnum=0, errstr=None):
        """Answer a request received in ``requests``."""
        self.send(_msg.response(req, payload, errnum, errstr))

    def event_subscribe(self, topic):
        """Receive events whose topic starts with ``topic`` (empty: all)."""
        self.rpc("event.subscribe", {"topic": topic}).get()

    def event_recv(self, timeout=None):
        """Return the next subscribed event as ``(topic, payload)``.

        Raises:
            TimeoutError: none within ``timeout`` seconds.
        """
        while not self._events:
            self._recv_one(timeout)
        ev = self._events.popleft()
        return ev.get("topic"), ev.get("payload")

    def _recv_one(self, timeout):
        """Read from the socket until at least one message is dispatched."""
        if self._closed:
            raise ConnectionError("handle is closed")
        self._sock.settimeout(timeout)
        while True:
            try:
                msgs = self._decoder.recv_from(self._sock)
            except TimeoutError:  # socket.timeout
                if timeout is None:  # not ours: e.g. a SIGALRM handler's TimeoutError
                    raise
                raise TimeoutError(f"no response from {self.uri} within {timeout}s") from None
            if msgs is None:
                self.close()
                raise ConnectionError(f"the broker at {self.uri} closed the connection")
            if not msgs:
                continue
            for m in msgs:
                if isinstance(m, Exception):
                    continue
                self.dispatch(m)
            return

    def dispatch(self, m):
        mtype = m.get("type")
        if mtype == "resp":
            fut = self._futures.get(m.get("matchtag"))
            if fut is not None:
                fut._queue.append(m)
        elif mtype == "ev":
            self._events.append(m)
        elif mtype == "req":  # for a service this client provides (service_register)
            self.requests.append(m)
        elif mtype == "ctl" and m.get("errnum"):
            # The broker refused the connection (e.g. wrong user) before any request.
            self.close()
            raise OSError(m["errnum"], m.get("errstr", "connection refused by the broker"))
