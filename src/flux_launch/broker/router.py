"""Message routing: requests by topic and rank, responses back along their route,
events from rank 0 down the tree.

A request records each hop it takes in ``route``: ``"cN"`` (client N of this
broker), ``"rK"`` (child rank K), ``"p"`` (the parent). A response pops the last
hop and goes there, so it retraces the request's path exactly.

Request targeting (``nodeid``):

- ``NODEID_ANY``: the nearest broker, going upstream, that has the service;
  ``ENOSYS`` at rank 0 if none has it.
- a rank: that broker, down the tree if it is below this one, else upstream;
  ``EHOSTUNREACH`` if it does not exist or is lost.
"""

import errno
import logging

from flux_launch.proto import message as _msg
from flux_launch.broker.tree import child_toward

log = logging.getLogger("flux_launch.broker")

NODEID_ANY = _msg.NODEID_ANY


class Router:
    """The routing half of a broker: services, clients and the overlay meet here."""

    def __init__(self, rank, size, fanout):
        self.rank = rank
        self.size = size
        self.fanout = fanout
        self.services = {}
        self.connector = None
        self.overlay = None
        self.subscribers = []  # local in-process event callbacks: (prefix, fn)
        self.event_seq = 0
        self._internal = {}  # matchtag -> (callback, streaming) of in-process RPCs
        self._next_tag = 1

    # ---- services ---------------------------------------------------------------

    def register(self, name, handler):
        """Serve topics ``name.*`` on this rank with ``handler(msg)``."""
        self.services[name] = handler

    def respond(self, req, payload=None):
        """Send a successful response to ``req`` (nothing if it wants none)."""
        if not req.get("flags", 0) & _msg.NORESPONSE:
            self.route_response(_msg.response(req, payload))

    def respond_error(self, req, errnum, errstr=None):
        """Send an error response (``errnum`` and a one-line ``errstr``)."""
        if not req.get("flags", 0) & _msg.NORESPONSE:
            self.route_response(_msg.response(req, errnum=errnum, errstr=errstr))

    def rpc(self, topic, payload=None, nodeid=NODEID_ANY, callback=None, streaming=False):
        """Send a request from inside the broker (a service calling another).

        ``callback(payload, errnum, errstr)`` runs for each response; a streaming
        RPC ends at its first error (``ENODATA`` at the normal end). Without a
        callback the request asks for no response.
        """
        flags = (_msg.STREAMING if streaming else 0) | (0 if callback else _msg.NORESPONSE)
        tag = 0
        if callback is not None:
            tag = self._next_tag
            self._next_tag += 1
            self._internal[tag] = (callback, streaming)
        msg = _msg.request(topic, payload, nodeid, tag, flags)
        msg["route"] = []
        msg["userid"] = getattr(self, "owner", 0)
        msg["rolemask"] = 1
        self.route_request(msg, f"i{tag}")

    # ---- requests ---------------------------------------------------------------

    def route_request(self, msg, hop):
        """Route a request that arrived from ``hop``."""
        route = msg.get("route")
        if not isinstance(route, list):
            route = msg["route"] = []
        route.append(hop)
        topic = msg.get("topic")
        nodeid = msg.get("nodeid", NODEID_ANY)
        flags = msg.get("flags", 0)
        if type(flags) is not int:  # JSON true is a bool, and bool is an int
            msg["flags"] = 0
            self.respond_error(msg, errno.EPROTO, "malformed request: flags must be an integer")
            return
        if not isinstance(topic, str) or not topic or type(nodeid) is not int:
            self.respond_error(msg, errno.EPROTO, "malformed request: topic must be a non-empty string "
                               "and nodeid an integer")
            return
        service = topic.split(".", 1)[0]
        if nodeid == NODEID_ANY:
            handler = self.services.get(service)
            if handler is not None:
                self._dispatch(handler, msg)
            elif self.rank == 0:
                self.respond_error(msg, errno.ENOSYS, f"no service matches {topic}")
            else:
                self.overlay.send_parent(msg)
        elif nodeid == self.rank:
            handler = self.services.get(service)
            if handler is not None:
                self._dispatch(handler, msg)
            else:
                self.respond_error(msg, errno.ENOSYS, f"no service matches {topic} on rank {self.rank}")
        elif nodeid < 0 or nodeid >= self.size:
            self.respond_error(msg, errno.EHOSTUNREACH,
                               f"no rank {nodeid} in this instance of size {self.size}")
        else:
            child = child_toward(self.rank, nodeid, self.fanout)
            if child is None:
                self.overlay.send_parent(msg)
            elif not self.overlay.send_child(child, msg):
                self.respond_error(msg, errno.EHOSTUNREACH, f"rank {nodeid} is unreachable (rank {child} is "
                                   f"{self.overlay.child_state.get(child, 'offline')})")

    def _dispatch(self, handler, msg):
        # Services answer their own failures (services/base.py); this is the last
        # net, for a handler that is not a Service (a client's, from service.add).
        try:
            handler(msg)
        except Exception as exc:  # a service bug must not take the broker down
            log.exception("service error on %s", msg.get("topic"))
            self.respond_error(msg, errno.EIO, f"{msg.get('topic')}: internal error: {exc}")

    # ---- responses --------------------------------------------------------------

    def local_client(self, req):
        """The connector client a response to ``req`` goes to, when it is one of this
        broker's clients (for flow control), else None."""
        route = req.get("route")
        if route and route[-1][0] == "c":
            return self.connector.clients.get(route[-1])
        return None

    def route_response(self, msg):
        route = msg.get("route")
        if not route:
            log.error("router: dropped a response to %s with no route", msg.get("topic"))
            return
        hop = route.pop()
        kind = hop[0]
        if kind == "c":
            client = self.connector.clients.get(hop)
            if client is not None:
                client.send(msg)
        elif kind == "r":
            self.overlay.send_child(int(hop[1:]), msg)
        elif kind == "p":
            self.overlay.send_parent(msg)
        elif kind == "i":
            tag = int(hop[1:])
            entry = self._internal.get(tag)
            if entry is None:
                return
            callback, streaming = entry
            errnum = msg.get("errnum", 0)
            if errnum or not streaming:
                del self._internal[tag]
            try:
                callback(msg.get("payload"), errnum, msg.get("errstr"))
            except Exception:
                log.exception("router: error in the callback of an internal %s request", msg.get("topic"))
        else:
            log.error("router: dropped a response with a bad hop %r", hop)

    # ---- events -----------------------------------------------------------------

    def publish(self, topic, payload=None):
        """Publish an event to every broker (rank 0 only; others forward upstream)."""
        if self.rank != 0:
            self.overlay.send_parent(_msg.request("event.pub", {"topic": topic, "payload": payload},
                                                  nodeid=0, flags=_msg.NORESPONSE) | {"route": []})
            return
        self.event_seq += 1
        self.deliver_event(_msg.event(topic, payload, self.event_seq))

    def deliver_event(self, ev):
        """Deliver an event here and pass it down to the children."""
        if self.overlay is not None:
            for child, state in list(self.overlay.child_state.items()):
                if state == "online":
                    self.overlay.send_child(child, ev)
        topic = ev.get("topic")
        if not isinstance(topic, str):
            log.error("router: dropped an event whose topic is not a string")
            return
        for prefix, fn in list(self.subscribers):
            if topic.startswith(prefix):
                fn(ev)
        if self.connector is not None:
            for client in list(self.connector.clients.values()):
                for prefix in client.subscriptions:
                    if topic.startswith(prefix):
                        client.send(ev)
                        break
