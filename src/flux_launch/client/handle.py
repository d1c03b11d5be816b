"""A client handle on a broker's local connector (``flux.Flux`` in spirit).

``Flux(uri)`` connects to ``local://PATH`` (default: ``$FLUX_URI``), or to
``ssh://HOST/PATH`` when HOST is this machine (the path is then a local socket;
there is no remote connector yet). Requests go out
with ``rpc()``; responses and subscribed events are read from the one socket and
sorted by matchtag, so several RPCs can be in flight at once.

Two ways to wait, which mix freely:

- blocking: ``Future.get()``, ``event_recv()``. This path reads the socket and
  nothing else (one ``recv`` per wait when the answer is there);
- the reactor (``client/reactor.py``, imported on first use):
  ``fd_watcher_create``, ``timer_watcher_create``, ``msg_watcher_create``,
  ``signal_watcher_create``, ``Future.then``, driven by ``reactor_run()`` until no
  watcher is active and no continuation waits, or ``reactor_stop()``. An exception
  raised by a callback stops the reactor and propagates out of ``reactor_run()``.

Driving it from another event loop (asyncio): watch ``fileno()`` for reading and
call ``reactor_run(REACTOR_NOWAIT)`` when it is readable, then again after
``reactor_timeout()`` seconds when that is not ``None`` (0: work is queued, such as
responses read by a blocking ``get()``). A NOWAIT step never blocks: it receives at
most once from the socket and makes the calls that are due. Wait for other file
descriptors and signals with the outer loop's own means.

Failures: connecting raises ``NoInstanceError`` (an ``OSError``) with a message that
says what to do; an error response raises ``OSError(errnum, errstr)`` from
``Future.get()``; a broker that goes away raises ``ConnectionError`` (from
``reactor_run()`` too).
"""

import errno
import os
from itertools import islice

# The C modules: socket.py, collections and selectors add enums and classes the
# handle does not use, and importing them costs ~3 ms of every command's start.
from _collections import deque
from _socket import AF_UNIX, MSG_DONTWAIT, SOCK_STREAM, gethostname
from _socket import socket as _socket

from flux_launch.proto import message as _msg

NODEID_ANY = _msg.NODEID_ANY
STREAMING = _msg.STREAMING
NORESPONSE = _msg.NORESPONSE

# fd watcher events (flux-core's FLUX_POLLIN, FLUX_POLLOUT, FLUX_POLLERR)
FD_READ = 1
FD_WRITE = 2
FD_ERROR = 4
# message watcher type masks (flux-core's FLUX_MSGTYPE_*)
MSGTYPE_REQUEST = 1
MSGTYPE_RESPONSE = 2
MSGTYPE_EVENT = 4
MSGTYPE_ANY = 0x0F
# reactor_run flags (flux-core's FLUX_REACTOR_*)
REACTOR_NOWAIT = 1
REACTOR_ONCE = 2

__all__ = ["Flux", "Future", "NoInstanceError", "uri_path", "NODEID_ANY", "STREAMING", "NORESPONSE",
           "FD_READ", "FD_WRITE", "FD_ERROR", "MSGTYPE_REQUEST", "MSGTYPE_RESPONSE", "MSGTYPE_EVENT",
           "MSGTYPE_ANY", "REACTOR_NOWAIT", "REACTOR_ONCE"]


class NoInstanceError(OSError):
    """No broker answers at the URI."""


def uri_path(uri):
    """Return the socket path of a ``local://`` URI, or of an ``ssh://[USER@]HOST[:PORT]/PATH``
    URI whose HOST is this machine (its hostname, short or not, or ``localhost``).

    Raises:
        NoInstanceError: another scheme, or an ``ssh://`` URI of another host.
    """
    if uri.startswith("local://"):
        return uri[len("local://"):]
    if uri.startswith("ssh://"):
        authority, slash, path = uri[len("ssh://"):].partition("/")
        host = authority.rpartition("@")[2].partition(":")[0]
        here = gethostname()
        if slash and (host in ("localhost", here) or host.partition(".")[0] == here.partition(".")[0]):
            return "/" + path.partition("?")[0]
        raise NoInstanceError(errno.EINVAL, f"cannot connect to URI {uri}: remote (ssh://) connections to another "
                              "host are not supported yet; run the command on that host")
    raise NoInstanceError(errno.EINVAL, f"unsupported URI {uri!r}: only local:// URIs are supported")


class Future:
    """The pending result of one RPC.

    ``get()`` blocks for the next response: it returns the payload or raises
    ``OSError(errnum, errstr)``. A streaming RPC yields several responses: iterate
    the future (``for payload in future``), which stops at the ``ENODATA`` that ends
    the stream, or give it a continuation with ``then``.

    ``done`` becomes true once the last response (of a streaming RPC: the error
    that ends the stream) has been taken with ``get()``; a plain RPC's ``get()``
    then returns (or raises) that response again, as flux-core's futures do.
    """

    def __init__(self, handle, matchtag, topic, streaming):
        self.handle = handle
        self.matchtag = matchtag
        self.topic = topic
        self.streaming = streaming
        self._queue = deque()  # responses received, not yet taken by get()
        self.done = False
        self._ended = False  # the last response was received (no more will come)
        self._then = None  # (callback, args) of the continuation
        self._due = 0  # responses received that the continuation was not called for yet
        self._last = None  # a plain RPC's response once taken: get() returns it again

    def is_ready(self):
        """True when a response is waiting: ``get()`` returns or raises without blocking."""
        return bool(self._queue)

    def wait_for(self, timeout=None):
        """Block until a response is waiting, without taking it; returns the future.

        Raises:
            TimeoutError: none within ``timeout`` seconds.
            ConnectionError: the broker went away.
        """
        q = self._queue
        while not q:
            self.handle._recv_one(timeout)
        return self

    def get(self, timeout=None):
        """Wait for the next response and take it.

        Raises:
            OSError: the response carries an error (errno and text from the service);
                ``ENODATA`` ends a stream.
            TimeoutError: no response within ``timeout`` seconds.
            ConnectionError: the broker went away.
        """
        q = self._queue
        if not q and self.done and not self.streaming:
            resp = self._last  # a plain RPC's answer, again (as flux-core's futures keep it)
        else:
            while not q:
                self.handle._recv_one(timeout)
            resp = q.popleft()
        errnum = resp.get("errnum")
        if errnum:
            self._last = resp
            self._finish()  # an error ends a stream too (RFC 6), not only ENODATA
            raise OSError(errnum, resp.get("errstr") or os.strerror(errnum))
        if not self.streaming:
            self._last = resp
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
        """Call ``callback(future, *args)`` from ``Flux.reactor_run()`` once per
        response: once for a plain RPC, for each response of a streaming one (the
        last call's ``get()`` raises the error that ends the stream, ``ENODATA``
        when it ended normally). The callback takes the response with ``get()``,
        which does not block there; a call is skipped when an earlier one already
        took every waiting response. A later ``then`` replaces the continuation.

        While the continuation waits for responses, ``reactor_run()`` keeps running.
        Returns the future.
        """
        self.handle._reactor_get().then(self, callback, args)
        return self

    def get_str(self, timeout=None):
        """``get()``, as JSON text (flux-core's ``RPC.get_str``); ``None`` for no payload."""
        payload = self.get(timeout)
        if payload is None:
            return None
        from flux_launch.proto import fastjson

        return fastjson.dumps(payload)

    def reset(self):
        """Nothing to do (flux-core's streaming futures need it between responses;
        here each response is queued on its own). Returns the future."""
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
        uri: ``local://PATH`` (or ``ssh://HOST/PATH`` of this host); default ``$FLUX_URI``.

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
        self._timeout = sock.gettimeout()  # the socket's mode, changed only when a wait needs another
        self._decoder = _msg.Decoder()
        self._futures = {}
        self._events = deque()
        self._next_tag = 1
        self._closed = False
        self._ready = deque()  # futures with responses due to their continuation (the reactor's)
        self._reactor = None  # made on first use
        self._nowait = None
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
        """The broker socket's file descriptor (for an outer event loop: readable
        when ``reactor_run(REACTOR_NOWAIT)`` has messages to read)."""
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
        """Send a request and return its ``Future`` (``None`` with ``NORESPONSE``).

        ``payload``: a dict, or its JSON text (as flux-core's ``rpc`` takes it; text
        that is not JSON goes as it is, and the service refuses it with EPROTO).
        """
        if isinstance(payload, (str, bytes)):
            from flux_launch.proto import fastjson

            try:
                payload = fastjson.loads(payload)
            except ValueError:
                pass
        tag = 0
        fut = None
        if not flags & NORESPONSE:
            tag = self._next_tag
            self._next_tag += 1
            fut = Future(self, tag, topic, bool(flags & STREAMING))
            self._futures[tag] = fut
        self.send(_msg.request(topic, payload, nodeid, tag, flags))
        return fut

    def _reactor_get(self):
        r = self._reactor
        if r is None:
            from flux_launch.client.reactor import Reactor

            r = self._reactor = Reactor(self)
        return r

    def reactor_run(self, flags=0):
        """Run the reactor: call back watchers and continuations until no watcher is
        active and no continuation waits for a response, or ``reactor_stop()``.

        ``flags``: ``REACTOR_NOWAIT``: one step that does not block (what is ready
        now, timers that expired); ``REACTOR_ONCE``: one step that blocks until
        something happens (returns at once when nothing is active).

        Returns the number of active watchers and waiting continuations.

        Raises:
            Exception: whatever a callback raised (the reactor stops there).
            ConnectionError: the broker went away.
        """
        return self._reactor_get().run(flags)

    def reactor_stop(self):
        """Make ``reactor_run()`` return after the current callback."""
        if self._reactor is not None:
            self._reactor.stop()

    def reactor_timeout(self):
        """Seconds until the reactor has something to do without new input: 0 when
        calls are due, the time to the next timer, or ``None`` (for an outer loop:
        see the module docstring)."""
        return self._reactor_get().timeout()

    def fd_watcher_create(self, fd, callback, events=FD_READ, args=None):
        """A watcher calling ``callback(handle, watcher, fd, revents, args)`` while
        ``fd`` is ready for ``events`` (``FD_READ | FD_WRITE``). Not started."""
        from flux_launch.client.reactor import FdWatcher

        return FdWatcher(self._reactor_get(), fd, callback, events, args)

    def timer_watcher_create(self, after, callback, repeat=0.0, args=None):
        """A watcher calling ``callback(handle, watcher, revents, args)`` ``after``
        seconds after its start, then every ``repeat`` seconds (0: once). Not started."""
        from flux_launch.client.reactor import TimerWatcher

        return TimerWatcher(self._reactor_get(), after, callback, repeat, args)

    def msg_watcher_create(self, callback, type_mask=MSGTYPE_ANY, topic_glob="*", args=None):
        """A watcher calling ``callback(handle, watcher, msg, args)`` for each event
        or request whose topic matches ``topic_glob``. Not started."""
        from flux_launch.client.reactor import MsgWatcher

        return MsgWatcher(self._reactor_get(), callback, type_mask, topic_glob, args)

    def signal_watcher_create(self, signum, callback, args=None):
        """A watcher calling ``callback(handle, watcher, signum, args)`` when the
        process gets ``signum`` (main thread only). Not started."""
        from flux_launch.client.reactor import SignalWatcher

        return SignalWatcher(self._reactor_get(), signum, callback, args)

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
        """Read from the socket until at least one message is dispatched (the
        blocking path: one ``recv`` when the socket is already in blocking mode)."""
        if self._closed:
            raise ConnectionError("handle is closed")
        if timeout != self._timeout:
            self._sock.settimeout(timeout)
            self._timeout = timeout
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

    def _recv_nowait(self):
        """Receive once without blocking (``MSG_DONTWAIT``) and dispatch what
        completed; a partial message stays in the decoder (the reactor's read)."""
        if self._closed:
            raise ConnectionError("handle is closed")
        if self._timeout is not None:  # a timeout mode would poll before the recv
            self._sock.settimeout(None)
            self._timeout = None
        nowait = self._nowait
        if nowait is None:
            nowait = self._nowait = _NoWait(self._sock)
        try:
            msgs = self._decoder.recv_from(nowait)
        except BlockingIOError:
            return
        if msgs is None:
            self.close()
            raise ConnectionError(f"the broker at {self.uri} closed the connection")
        for m in msgs:
            if not isinstance(m, Exception):
                self.dispatch(m)

    def dispatch(self, m):
        """Queue a received message where it is waited for: its future, the
        events, or the requests to this client's services."""
        mtype = m.get("type")
        if mtype == "resp":
            fut = self._futures.get(m.get("matchtag"))
            if fut is not None:
                fut._queue.append(m)
                if not fut.streaming or m.get("errnum"):
                    fut._ended = True
                if fut._then is not None:
                    fut._due += 1
                    if fut._due == 1:
                        self._ready.append(fut)
        elif mtype == "ev":
            self._events.append(m)
        elif mtype == "req":  # for a service this client provides (service_register)
            self.requests.append(m)
        elif mtype == "ctl" and m.get("errnum"):
            # The broker refused the connection (e.g. wrong user) before any request.
            self.close()
            raise OSError(m["errnum"], m.get("errstr", "connection refused by the broker"))


class _NoWait:
    """The socket as ``Decoder.recv_from`` reads it, with every receive non-blocking."""

    __slots__ = ("_sock",)

    def __init__(self, sock):
        self._sock = sock

    def recv(self, size):
        return self._sock.recv(size, MSG_DONTWAIT)

    def recv_into(self, view):
        return self._sock.recv_into(view, 0, MSG_DONTWAIT)
