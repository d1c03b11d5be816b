"""How a broker learns its rank, size and parent.

- **singleton**: no ``PMI_FD`` in the environment: rank 0 of a size-1 instance.
- **config**: the configuration has ``[bootstrap] hosts`` (``boot_config.py``).
- **PMI**: started by a process manager that serves PMI-1 (``flux start
  --test-size``, a job shell, ``mpiexec``...). Each broker binds its overlay socket
  if it has children, puts ``{uri, pubkey, host}`` under ``flux.tbon.<rank>``, enters
  the barrier, then reads its parent's entry (to connect) and its children's public
  keys (to admit them). Nothing here assumes one host: the bound endpoint comes
  from ``tbon.endpoint`` (``%r`` = rank, ``%B`` = rundir), and a TCP endpoint is
  encrypted with CURVE.

A broker that is a job's task (``FLUX_JOB_ID`` set, as the job shell does) reads
``flux.instance-level`` from the shell's PMI: it heads a nested instance.
"""

import json
import os
import socket

from flux_launch.broker.tree import children_of, parent_of


class BootError(RuntimeError):
    """The broker cannot join its instance; the message says why."""


def default_endpoint(attrs, spans_hosts=False):
    """The ``tbon.endpoint`` template when none is configured: TCP when the
    instance spans hosts (or ``tbon.prefertcp`` is set), else ipc in the rundir."""
    if spans_hosts or attrs.get("tbon.prefertcp", "0") not in ("0", ""):
        return f"tcp://{interface_address(attrs.get('tbon.interface-hint'))}:*"
    return "ipc://%B/tbon-%r"


def spans_hosts(pmi, size):
    """Whether the launcher put the brokers on more than one host: its
    ``PMI_process_mapping`` (as flux-core's clique check). A launcher that gives
    none may have put them anywhere: TCP then."""
    from flux_launch.proto.pmi1 import mapping_nodes

    try:
        return len(set(mapping_nodes(pmi.get("PMI_process_mapping"), size))) > 1
    except (KeyError, ValueError):
        return True


def interface_address(hint):
    """The address to bind a TCP endpoint on, from ``tbon.interface-hint`` (as
    flux-core): ``default-route`` (the address of the interface that holds the
    default route; the default), ``hostname`` (what the host name resolves to),
    an interface name, or an address. Falls back from the first to the second,
    and to 127.0.0.1 when neither gives one."""
    if hint and hint not in ("hostname", "default-route", "default-router"):
        return _ifaddr(hint) or hint
    if hint != "hostname":
        addr = _ifaddr(_default_route_interface())
        if addr:
            return addr
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _default_route_interface():
    try:
        with open("/proc/net/route") as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "00000000":
                    return fields[0]
    except OSError:
        pass
    return None


def _ifaddr(name):
    """The IPv4 address of interface ``name``, or None (no such interface or none)."""
    if not name or "." in name or ":" in name:
        return None
    import fcntl
    import struct

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            req = struct.pack("256s", name.encode()[:15])
            return socket.inet_ntoa(fcntl.ioctl(s.fileno(), 0x8915, req)[20:24])  # SIOCGIFADDR
        except OSError:
            return None


def _unsupported_launcher():
    """Open MPI's mpirun serves no PMI-1 (PMIx only): each broker it starts would be
    an instance of size 1, silently. Refuse with how to start one instead."""
    try:
        n = int(os.environ.get("OMPI_COMM_WORLD_SIZE", "1"))
    except ValueError:
        n = 1
    if n > 1:
        raise BootError(f"started by Open MPI's mpirun ({n} processes), which serves no PMI-1: each would be an "
                        "instance of size 1; start the brokers with MPICH's mpiexec.hydra (mpiexec -n N flux start)"
                        " or, on one host, flux start --test-size=N")


def boot(broker, attrs):
    """Bootstrap ``broker`` (sets rank, size, overlay); returns ``(rank, size)``.

    Raises:
        BootError: the PMI exchange failed or the overlay cannot bind or connect.
    """
    conf = getattr(broker, "config", None) or {}
    if "bootstrap" in conf:
        from flux_launch.broker.boot_config import boot_from_config

        booted = boot_from_config(broker, attrs, conf)
        if booted is not None:
            return booted
    from flux_launch.client.pmi_boot import open_boot_pmi

    try:
        pmi = open_boot_pmi()
        if pmi is None:
            _unsupported_launcher()
            return 0, 1
    except BootError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the launcher's PMI did, one line and exit 1
        raise BootError(f"PMI bootstrap failed: {exc}") from None
    rank, size = pmi.rank, pmi.size
    if os.environ.get("FLUX_JOB_ID"):
        _nested_level(pmi, attrs)
    myhost = os.environ.get("FLUX_FAKE_HOSTNAME") or socket.gethostname()
    if size == 1:
        _finish(pmi)
        return 0, 1
    from flux_launch.broker.overlay import Overlay  # zeromq: only for a real overlay

    fanout = int(attrs.get("tbon.fanout", "2"))
    overlay = Overlay(broker, rank, size, fanout,
                      keepalive=float(attrs.get("tbon.keepalive", "1")),
                      timeout=float(attrs.get("tbon.timeout", "30")))
    template = attrs.get("tbon.endpoint") or default_endpoint(attrs, spans_hosts(pmi, size))
    pubkey = overlay.make_keys() if template.startswith("tcp://") else None
    try:
        uri = None
        if children_of(rank, size, fanout):
            uri = overlay.bind(template.replace("%r", str(rank)).replace("%B", attrs["rundir"]))
        entry = {"uri": uri, "pubkey": pubkey, "host": myhost}
        pmi.put(f"flux.tbon.{rank}", json.dumps(entry, separators=(",", ":")))
        pmi.barrier()
        # every rank's entry: the "hostlist" attribute, and (below) the parent's and children's endpoints
        entries = {r: (entry if r == rank else json.loads(pmi.get(f"flux.tbon.{r}"))) for r in range(size)}
        attrs["hostlist"] = _hostlist(entries[r].get("host") for r in range(size))
        kids = children_of(rank, size, fanout)
        if pubkey:
            if kids:
                overlay.set_allowed_keys(entries[c]["pubkey"] for c in kids)
            # A second barrier: no child may connect before its parent admits its key.
            pmi.barrier()
        parent = parent_of(rank, fanout)
        if parent is not None:
            pentry = entries[parent]
            if not pentry.get("uri"):
                raise BootError(f"rank {parent} published no overlay endpoint")
            overlay.connect(pentry["uri"], pentry.get("pubkey"))
            attrs["tbon.parent-endpoint"] = pentry["uri"]
        if uri:
            attrs["tbon.endpoint"] = uri
        _finish(pmi)
    except BootError:
        overlay.close()
        raise
    except Exception as exc:  # noqa: BLE001 - as above: PMI, zeromq or a peer's bad entry
        overlay.close()
        raise BootError(f"overlay bootstrap failed on rank {rank}: {exc}") from None
    broker.overlay = overlay
    return rank, size


def _hostlist(names):
    """The ``hostlist`` attribute: the ranks' host names in rank order, compressed (RFC 29)."""
    from flux_launch.core.hostlist import Hostlist

    return str(Hostlist(n if isinstance(n, str) and n else "unknown" for n in names))


def _nested_level(pmi, attrs):
    """A broker started as a job's task: its level is the one the job shell put in
    the PMI KVS (``flux.instance-level``: the enclosing instance's plus one)."""
    try:
        level = pmi.get("flux.instance-level")
    except KeyError:  # a launcher that is not a Flux job shell
        return
    if level.isdigit():
        attrs["instance-level"] = level


def _finish(pmi):
    try:
        pmi.finalize()
    finally:
        pmi.close()


def prepare_rundir(path):
    """Make ``path`` (the ``rundir`` attribute) usable; returns ``(path, made)``,
    ``made`` True when the directory was created here (and is its creator's to
    remove).

    Unset (empty or None), a new private directory is made in the temporary
    directory. A missing one is created ``0700``. An existing one is used as it
    is, its mode never changed: it must be a directory of this user with owner
    rwx that no other user can write (they could replace the broker's sockets),
    as flux-core checks its rundir.

    Raises:
        BootError: the directory cannot be created or is not fit, in one line.
    """
    if not path:
        import tempfile

        return tempfile.mkdtemp(prefix="flux-"), True
    try:
        os.mkdir(path, 0o700)
        return path, True
    except FileExistsError:
        pass
    except OSError as exc:
        raise BootError(f"cannot create rundir {path}: {exc.strerror}") from None
    import stat

    try:
        link = os.lstat(path)
        st = os.stat(path)
    except OSError as exc:
        raise BootError(f"cannot stat rundir {path}: {exc.strerror}") from None
    if stat.S_ISLNK(link.st_mode) and link.st_uid != os.getuid():  # its owner could point it elsewhere later
        raise BootError(f"rundir {path} is a symbolic link of another user: give the directory itself")
    mode = stat.S_IMODE(st.st_mode)
    if not stat.S_ISDIR(st.st_mode):
        raise BootError(f"rundir {path}: not a directory")
    if st.st_uid != os.getuid():
        raise BootError(f"rundir {path} is not owned by the instance owner (uid {os.getuid()})")
    if mode & 0o700 != 0o700:
        raise BootError(f"rundir {path} needs owner read, write and search permission (mode {mode:04o})")
    if mode & 0o022:
        raise BootError(f"rundir {path} is writable by others (mode {mode:04o}): use a directory "
                        "that only you can write, or leave rundir unset")
    return path, False
