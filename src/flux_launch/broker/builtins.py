"""Services every broker provides: ``broker``, ``attr``, ``event``, ``overlay``, ``rexec``.

- ``broker.ping``: echo the payload with this rank and the route taken.
- ``broker.info``: size, state, start time, owner; at rank 0 also the online and
  lost ranks (``flux uptime``).
- ``attr.get|set|rm|list``: broker attributes; read-only ones refuse ``set``/``rm``
  with ``EPERM``.
- ``event.subscribe|unsubscribe`` (per client, local), ``event.pub`` (at rank 0).
- ``overlay.status``: this broker's children and their link states.
- ``rexec.*``: the remote execution server (``flux exec``), in ``rexec.py``.
"""

import errno

from flux_launch.broker import rexec as _rexec


def register(broker):
    broker.register("broker", lambda msg: _broker(broker, msg))
    broker.register("attr", lambda msg: _attr(broker, msg))
    broker.register("event", lambda msg: _event(broker, msg))
    broker.register("overlay", lambda msg: _overlay(broker, msg))
    broker.register("resource", lambda msg: _resource(broker, msg))
    broker.register("service", lambda msg: _service(broker, msg))
    server = _rexec.RexecServer(broker)
    broker.rexec = server
    broker.register("rexec", server.handle)


def _payload(msg):
    p = msg.get("payload")
    return p if isinstance(p, dict) else {}


def _idset(ranks):
    from flux_launch.core.idset import encode

    return encode(sorted(ranks))


def _broker(broker, msg):
    method = msg["topic"].split(".", 1)[1] if "." in msg["topic"] else ""
    if method == "ping":
        p = _payload(msg)
        broker.respond(msg, {**p, "rank": broker.rank, "route": "!".join(msg.get("route", ()))})
    elif method == "info":
        info = {"rank": broker.rank, "size": broker.size, "state": broker.state,
                "starttime": broker.starttime, "owner": broker.owner}
        if broker.rank == 0:
            info["online"] = _idset(broker.online)
            info["lost"] = _idset(broker.lost)
        broker.respond(msg, info)
    elif method == "disconnect":
        pass
    else:
        broker.respond_error(msg, errno.ENOSYS, f"unknown method {msg['topic']}")


def _resource(broker, msg):
    if msg["topic"] == "resource.info":
        topo = broker.topology or {}
        broker.respond(msg, {"rank": broker.rank, "ncores": topo.get("ncores", 0), "npus": topo.get("npus", 0),
                             "gpus": [{"index": g["index"], "vendor": g["vendor"], "busid": g["busid"]}
                                      for g in topo.get("gpus", ())],
                             "source": topo.get("source", "?"), "hostname": broker.attrs.get("hostname")})
    elif msg["topic"] != "resource.disconnect":
        broker.respond_error(msg, errno.ENOSYS, f"unknown method {msg['topic']}")


class ClientService:
    """A service served by a local client: requests are passed to it as they are,
    and its responses are routed back like any other (flux_service_register)."""

    def __init__(self, client):
        self.client = client

    def __call__(self, msg):
        self.client.send(msg)


def _service(broker, msg):
    topic = msg["topic"]
    if topic == "service.disconnect":
        return
    route = msg.get("route", ())
    client = broker.connector.clients.get(route[-1]) if len(route) == 1 else None
    name = _payload(msg).get("name")
    if client is None:
        broker.respond_error(msg, errno.EPROTO, f"{topic}: only local clients may provide services")
    elif not isinstance(name, str) or not name or "." in name:
        broker.respond_error(msg, errno.EINVAL, f"{topic}: name must be a non-empty string without '.'")
    elif topic == "service.add":
        if name in broker.services:
            broker.respond_error(msg, errno.EEXIST, f"service {name} already exists")
            return
        broker.services[name] = ClientService(client)
        client.provides.add(name)
        broker.respond(msg, {})
    elif topic == "service.remove":
        handler = broker.services.get(name)
        if getattr(handler, "client", None) is not client:
            broker.respond_error(msg, errno.ENOENT, f"service {name} is not yours")
            return
        del broker.services[name]
        client.provides.discard(name)
        broker.respond(msg, {})
    else:
        broker.respond_error(msg, errno.ENOSYS, f"unknown method {topic}")


def _attr(broker, msg):
    from flux_launch.broker.main import READONLY

    topic = msg["topic"]
    p = _payload(msg)
    name = p.get("name")
    attrs = broker.attrs
    if topic == "attr.list":
        broker.respond(msg, {"names": sorted(attrs)})
        return
    if topic == "attr.disconnect":
        return
    if not isinstance(name, str) or not name:
        broker.respond_error(msg, errno.EPROTO, f"{topic}: missing attribute name")
        return
    if topic == "attr.get":
        if name in attrs:
            broker.respond(msg, {"value": attrs[name]})
        else:
            broker.respond_error(msg, errno.ENOENT, f"no such attribute: {name}")
    elif topic in ("attr.set", "attr.rm"):
        if msg.get("rolemask", 1) != 1:
            broker.respond_error(msg, errno.EPERM, f"only the instance owner may change {name}")
        elif name in READONLY:
            broker.respond_error(msg, errno.EPERM, f"attribute {name} is read-only")
        elif topic == "attr.rm":
            if attrs.pop(name, None) is None:
                broker.respond_error(msg, errno.ENOENT, f"no such attribute: {name}")
            else:
                broker.respond(msg, {})
        else:
            value = p.get("value")
            if not isinstance(value, str):
                broker.respond_error(msg, errno.EPROTO, f"attr.set: value of {name} must be a string")
                return
            attrs[name] = value
            broker.respond(msg, {})
    else:
        broker.respond_error(msg, errno.ENOSYS, f"unknown method {topic}")


def _event(broker, msg):
    topic = msg["topic"]
    p = _payload(msg)
    if topic == "event.pub":
        ev_topic = p.get("topic")
        if not isinstance(ev_topic, str) or not ev_topic:
            broker.respond_error(msg, errno.EPROTO, "event.pub: missing topic")
            return
        if broker.rank != 0:
            broker.overlay.send_parent(msg)
            return
        broker.publish(ev_topic, p.get("payload"))
        broker.respond(msg, {"seq": broker.event_seq})
        return
    if topic == "event.disconnect":
        return
    hop = msg.get("route", [""])[-1]
    client = broker.connector.clients.get(hop) if len(msg.get("route", ())) == 1 else None
    if client is None:
        broker.respond_error(msg, errno.EPROTO, f"{topic}: only local clients may subscribe")
        return
    prefix = p.get("topic", "")
    if not isinstance(prefix, str):
        broker.respond_error(msg, errno.EPROTO, f"{topic}: topic must be a string")
        return
    if topic == "event.subscribe":
        client.subscriptions.append(prefix)
        broker.respond(msg, {})
    elif topic == "event.unsubscribe":
        if prefix in client.subscriptions:
            client.subscriptions.remove(prefix)
        broker.respond(msg, {})
    else:
        broker.respond_error(msg, errno.ENOSYS, f"unknown method {topic}")


def _overlay(broker, msg):
    topic = msg["topic"]
    if topic == "overlay.status":
        ov = broker.overlay
        children = {} if ov is None else {str(c): s for c, s in ov.child_state.items()}
        broker.respond(msg, {"rank": broker.rank, "size": broker.size, "hostname": broker.attrs.get("hostname"),
                             "children": children})
    elif topic == "overlay.disconnect":
        return
    else:
        broker.respond_error(msg, errno.ENOSYS, f"unknown method {topic}")
