"""Boot from a configuration file, as flux-core's system instance does
(flux-config-bootstrap(5)): ``flux start -c DIR`` / ``flux broker -c DIR`` with

.. code-block:: toml

    [bootstrap]
    curve_cert = "/etc/flux/system/curve.cert"   # flux keygen; required for size > 1
    default_port = 8050
    default_bind = "tcp://eth0:%p"               # %h: the entry's host, %p: default_port
    default_connect = "tcp://%h:%p"
    hosts = [ { host = "node0", bind = "tcp://10.0.0.1:9001", connect = "tcp://10.0.0.1:9001" },
              { host = "node[1-3]" } ]

The broker's rank is the index of its host name (``FLUX_FAKE_HOSTNAME`` stands in
for it in tests) in the expanded, rank-ordered ``hosts``; the size is their
number. A broker with children binds its entry's ``bind`` URI; a child connects to
its parent's ``connect`` URI. Every broker holds the same CURVE certificate, and a
parent admits only peers presenting its public key: a peer with another key is
refused and logged, and the instance goes on.
"""

import os
import socket

from flux_launch.broker.tree import children_of, parent_of

_CERT_HEAD = """#   ****  Generated on {date} by flux keygen  ****
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

"""


def _error(text):
    from flux_launch.broker.boot import BootError

    return BootError(text)


def hostname():
    """This broker's host name for matching ``hosts`` entries."""
    return os.environ.get("FLUX_FAKE_HOSTNAME") or socket.gethostname()


def expand_hosts(boot):
    """The rank-ordered host entries of the ``bootstrap`` table: a list of dicts
    ``{host, bind, connect}`` (URIs with ``%h``/``%p`` substituted, or None).

    Raises:
        BootError: a malformed table, entry or hostlist; the message names it.
    """
    from flux_launch.core.hostlist import Hostlist

    if not isinstance(boot, dict):
        raise _error("config: [bootstrap] must be a table")
    entries = boot.get("hosts", [])
    if not isinstance(entries, list):
        raise _error("config: bootstrap.hosts must be an array of tables like { host = \"node[0-3]\" }")
    port = boot.get("default_port")
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
        raise _error(f"config: bootstrap.default_port must be a port number, got {port!r}")
    out = []
    seen = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("host"), str) or not entry["host"]:
            raise _error(f"config: bootstrap.hosts[{i}] needs a host key (a name or a hostlist like node[0-3])")
        unknown = set(entry) - {"host", "bind", "connect", "parent"}
        if unknown:
            raise _error(f"config: bootstrap.hosts[{i}]: unknown key {sorted(unknown)[0]!r} "
                         "(known: host, bind, connect)")
        try:
            names = list(Hostlist(entry["host"]))
        except ValueError as exc:
            raise _error(f"config: bootstrap.hosts[{i}]: bad hostlist {entry['host']!r}: {exc}") from None
        for name in names:
            if name in seen:
                raise _error(f"config: bootstrap.hosts: host {name} appears twice (each host is one rank)")
            seen.add(name)
            out.append({"host": name,
                        "bind": _uri(entry.get("bind") or boot.get("default_bind"), name, port, i, "bind"),
                        "connect": _uri(entry.get("connect") or boot.get("default_connect"), name, port, i,
                                        "connect")})
    return out


def _uri(template, host, port, i, what):
    if template is None:
        return None
    if not isinstance(template, str):
        raise _error(f"config: bootstrap.hosts[{i}]: {what} must be a ZeroMQ URI string")
    if "%p" in template and port is None:
        raise _error(f"config: bootstrap: {what} URI {template!r} uses %p but default_port is not set")
    return template.replace("%h", host).replace("%p", str(port))


def read_cert(path):
    """The ``(public, secret)`` Z85 keys (bytes) of the certificate at ``path``.

    Raises:
        BootError: missing, unreadable, readable by others, of another owner, or
            not a CURVE certificate.
    """
    import stat

    try:
        st = os.stat(path)
        with open(path) as f:
            text = f.read()
    except OSError as exc:
        raise _error(f"config: bootstrap.curve_cert {path}: {exc.strerror}") from None
    if st.st_uid != os.getuid():
        raise _error(f"config: bootstrap.curve_cert {path} is not owned by the instance owner (uid {os.getuid()})")
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise _error(f"config: bootstrap.curve_cert {path} is readable by others (mode "
                     f"{stat.S_IMODE(st.st_mode):04o}): chmod 600 it")
    keys = {}
    section = None
    for line in text.splitlines():
        stripped = line.rstrip()
        if not stripped or stripped.lstrip().startswith("#"):  # Z85 keys hold '#': only whole-line comments
            continue
        if not line[0].isspace():
            section = stripped
        elif section == "curve" and "=" in stripped:
            name, _, value = stripped.partition("=")
            keys[name.strip()] = value.strip().strip('"')
    pub, sec = keys.get("public-key", ""), keys.get("secret-key", "")
    if len(pub) != 40 or len(sec) != 40:
        raise _error(f"config: bootstrap.curve_cert {path} is not a CURVE certificate with a secret key "
                     "(make one with flux keygen PATH)")
    return pub.encode(), sec.encode()


def cert_text(name=None):
    """A new certificate (ZeroMQ's text format, as flux keygen writes it)."""
    import time

    import zmq

    pub, sec = zmq.curve_keypair()
    name = name or socket.gethostname()
    return (_CERT_HEAD.format(date=time.strftime("%Y-%m-%d %H:%M:%S")) +
            f'metadata\n    name = "{name}"\n    keygen.hostname = "{socket.gethostname()}"\n'
            f'curve\n    public-key = "{pub.decode()}"\n    secret-key = "{sec.decode()}"\n')


def boot_from_config(broker, attrs, conf):
    """Bootstrap ``broker`` from the ``bootstrap`` table of ``conf``; returns
    ``(rank, size)``, or None when the table names no hosts (PMI or singleton then).

    Raises:
        BootError: this host is not in ``hosts``, or an entry, the certificate or
            the overlay is unusable; one line.
    """
    boot = conf.get("bootstrap")
    if boot is None:
        return None
    hosts = expand_hosts(boot)
    if not hosts:
        return None
    me = hostname()
    names = [h["host"] for h in hosts]
    if me not in names:
        raise _error(f"this host ({me}) is not in bootstrap.hosts of {attrs.get('config.path', 'the config')}: "
                     "add it, or start this broker with its cluster's config")
    rank, size = names.index(me), len(hosts)
    from flux_launch.core.hostlist import Hostlist

    attrs["hostlist"] = str(Hostlist(names))
    attrs["hostname"] = me
    if size == 1:
        return 0, 1
    if not boot.get("curve_cert"):
        raise _error(f"config: bootstrap.curve_cert is required for an instance of {size} brokers: "
                     "make one with flux keygen PATH and name it in [bootstrap]")
    pub, sec = read_cert(boot["curve_cert"])
    fanout = int(attrs.get("tbon.fanout", "2"))
    kids = children_of(rank, size, fanout)
    parent = parent_of(rank, fanout)
    if kids and not hosts[rank]["bind"]:
        raise _error(f"config: bootstrap.hosts entry of {me} (rank {rank}) has children but no bind URI: "
                     "set bind or default_bind")
    if parent is not None and not hosts[parent]["connect"]:
        raise _error(f"config: bootstrap.hosts entry of {names[parent]} (rank {parent}) has no connect URI: "
                     "set connect or default_connect")
    from flux_launch.broker.overlay import Overlay

    overlay = Overlay(broker, rank, size, fanout, keepalive=float(attrs.get("tbon.keepalive", "1")),
                      timeout=float(attrs.get("tbon.timeout", "30")))
    overlay.curve = (pub, sec)
    try:
        if kids:
            attrs["tbon.endpoint"] = overlay.bind(hosts[rank]["bind"], allowed_keys=[pub])
        if parent is not None:
            overlay.connect(hosts[parent]["connect"], pub.decode())
            attrs["tbon.parent-endpoint"] = hosts[parent]["connect"]
    except Exception as exc:  # noqa: BLE001 - zeromq's error, one line
        overlay.close()
        uri = hosts[rank]["bind"] if kids and overlay.router is None else hosts[parent]["connect"]
        raise _error(f"overlay bootstrap failed on rank {rank} ({me}) at {uri}: {exc}") from None
    broker.overlay = overlay
    return rank, size
