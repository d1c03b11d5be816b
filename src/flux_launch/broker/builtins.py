"""Services every broker provides: ``broker``, ``attr``, ``event``, ``overlay``,
``resource``, ``service``, ``rexec``; each a table of methods served by
``services/base.py``'s ``Service`` (failures are ``ServiceError``s).

- ``broker.ping``: echo the payload with this rank and the route taken.
- ``broker.info``: size, state, start time, owner; at rank 0 also the online and
  lost ranks (``flux uptime``).
- ``attr.get|set|rm|list``: broker attributes; read-only ones refuse ``set``/``rm``
  with ``EPERM``.
- ``event.subscribe|unsubscribe`` (per client, local), ``event.pub`` (at rank 0).
- ``overlay.status``: this broker's children and their link states.
- ``resource.info``: this node's cores and GPUs (rank 0 builds the pool from them).
- ``service.add|remove {name}``: a local client serves ``name.*`` itself.
- ``config.get``: the configuration object (``broker/config.py``).
- ``rexec.*``: the remote execution server (``flux exec``), in ``rexec.py``.
"""

import errno
from functools import partial

from flux_launch.broker import rexec as _rexec
from flux_launch.services.base import Service, ServiceError


def register(broker):
    """Register the builtin services with ``broker`` (every rank), the shutdown and
    hwloc services of :mod:`flux_launch.broker.admin` among them."""
    for name, methods in (("broker", {"ping": _ping, "info": _info}),
                          ("attr", {"get": _attr_get, "set": _attr_set, "rm": _attr_rm, "list": _attr_list}),
                          ("event", {"pub": _event_pub, "subscribe": _subscribe, "unsubscribe": _unsubscribe}),
                          ("overlay", {"status": _overlay_status}),
                          ("resource", {"info": _resource_info}),
                          ("service", {"add": _service_add, "remove": _service_remove}),
                          ("config", {"get": _config_get})):
        Service(broker, name, {method: partial(fn, broker) for method, fn in methods.items()}).register()
    from flux_launch.broker import admin
    admin.register(broker)
    server = _rexec.RexecServer(broker)
    broker.rexec = server
    server.service.register()


def _idset(ranks):
    from flux_launch.core.idset import encode

    return encode(sorted(ranks))


def _local_client(broker, msg, what):
    """The connector client that sent ``msg`` itself (not through another broker).

    Raises:
        ServiceError: EPROTO, it came from elsewhere (``what`` says what only a
            local client may do).
    """
    route = msg.get("route", ())
    client = broker.connector.clients.get(route[-1]) if len(route) == 1 else None
    if client is None:
        raise ServiceError(errno.EPROTO, f"{msg['topic']}: only local clients may {what}")
    return client


# ---- config ---------------------------------------------------------------------

def _config_get(broker, msg, p):
    """The configuration object (``flux broker -c``; empty without one)."""
    broker.respond(msg, getattr(broker, "config", None) or {})


# ---- broker ---------------------------------------------------------------------

def _ping(broker, msg, p):
    broker.respond(msg, {**p, "rank": broker.rank, "route": "!".join(msg.get("route", ()))})


def _info(broker, msg, p):
    info = {"rank": broker.rank, "size": broker.size, "state": broker.state,
            "starttime": broker.starttime, "owner": broker.owner}
    if broker.rank == 0:
        info["online"] = _idset(broker.online)
        info["lost"] = _idset(broker.lost)
    broker.respond(msg, info)


def _resource_info(broker, msg, p):
    topo = broker.topology or {}
    broker.respond(msg, {"rank": broker.rank, "ncores": topo.get("ncores", 0), "npus": topo.get("npus", 0),
                         "gpus": [{"index": g["index"], "vendor": g["vendor"], "busid": g["busid"]}
                                  for g in topo.get("gpus", ())],
                         "source": topo.get("source", "?"), "hostname": broker.attrs.get("hostname")})


def _overlay_status(broker, msg, p):
    ov = broker.overlay
    children = {} if ov is None else {str(c): s for c, s in ov.child_state.items()}
    broker.respond(msg, {"rank": broker.rank, "size": broker.size, "hostname": broker.attrs.get("hostname"),
                         "children": children})


# ---- service.add|remove: services served by local clients ------------------------

class ClientService:
    """A service served by a local client: requests are passed to it as they are,
    and its responses are routed back like any other (flux_service_register)."""

    def __init__(self, client):
        self.client = client

    def __call__(self, msg):
        self.client.send(msg)


def _service_name(broker, msg, p):
    client = _local_client(broker, msg, "provide services")
    name = p.get("name")
    if not isinstance(name, str) or not name or "." in name:
        raise ServiceError(errno.EINVAL, f"{msg['topic']}: name must be a non-empty string without '.'")
    return client, name


def _service_add(broker, msg, p):
    client, name = _service_name(broker, msg, p)
    if name in broker.services:
        raise ServiceError(errno.EEXIST, f"service {name} already exists")
    broker.services[name] = ClientService(client)
    client.provides.add(name)
    broker.respond(msg, {})


def _service_remove(broker, msg, p):
    client, name = _service_name(broker, msg, p)
    if getattr(broker.services.get(name), "client", None) is not client:
        raise ServiceError(errno.ENOENT, f"service {name} is not yours")
    del broker.services[name]
    client.provides.discard(name)
    broker.respond(msg, {})


# ---- attr -------------------------------------------------------------------------

def _attr_name(msg, p):
    name = p.get("name")
    if not isinstance(name, str) or not name:
        raise ServiceError(errno.EPROTO, f"{msg['topic']}: missing attribute name")
    return name


def _attr_list(broker, msg, p):
    broker.respond(msg, {"names": sorted(broker.attrs)})


def _attr_get(broker, msg, p):
    name = _attr_name(msg, p)
    if name not in broker.attrs:
        raise ServiceError(errno.ENOENT, f"no such attribute: {name}")
    broker.respond(msg, {"value": broker.attrs[name]})


def _attr_writable(broker, msg, p):
    """The attribute a set or rm may change.

    Raises:
        ServiceError: EPROTO (no name), EPERM (a guest, or a read-only attribute).
    """
    from flux_launch.broker.main import READONLY

    name = _attr_name(msg, p)
    if msg.get("rolemask", 1) != 1:
        raise ServiceError(errno.EPERM, f"only the instance owner may change {name}")
    if name in READONLY:
        raise ServiceError(errno.EPERM, f"attribute {name} is read-only")
    return name


def _attr_set(broker, msg, p):
    name = _attr_writable(broker, msg, p)
    value = p.get("value")
    if not isinstance(value, str):
        raise ServiceError(errno.EPROTO, f"attr.set: value of {name} must be a string")
    broker.attrs[name] = value
    broker.respond(msg, {})


def _attr_rm(broker, msg, p):
    name = _attr_writable(broker, msg, p)
    if broker.attrs.pop(name, None) is None:
        raise ServiceError(errno.ENOENT, f"no such attribute: {name}")
    broker.respond(msg, {})


# ---- event ------------------------------------------------------------------------

def _event_pub(broker, msg, p):
    topic = p.get("topic")
    if not isinstance(topic, str) or not topic:
        raise ServiceError(errno.EPROTO, "event.pub: missing topic")
    if broker.rank != 0:  # events are published from rank 0
        broker.overlay.send_parent(msg)
        return
    broker.publish(topic, p.get("payload"))
    broker.respond(msg, {"seq": broker.event_seq})


def _prefix(broker, msg, p):
    client = _local_client(broker, msg, "subscribe")
    prefix = p.get("topic", "")
    if not isinstance(prefix, str):
        raise ServiceError(errno.EPROTO, f"{msg['topic']}: topic must be a string")
    return client, prefix


def _subscribe(broker, msg, p):
    client, prefix = _prefix(broker, msg, p)
    client.subscriptions.append(prefix)
    broker.respond(msg, {})


def _unsubscribe(broker, msg, p):
    client, prefix = _prefix(broker, msg, p)
    if prefix in client.subscriptions:
        client.subscriptions.remove(prefix)
    broker.respond(msg, {})
