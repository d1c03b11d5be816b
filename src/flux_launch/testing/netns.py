"""Hosts for tests on one machine: network namespaces, each with its own address,
host name, ``/tmp`` and ``/etc/hosts``, joined by a bridge (root only).

    with Hosts(4) as hosts:
        hosts.run(1, ["hostname"]).stdout            # "node1\\n"
        hosts.run(0, hosts.hydra(["-n", "8", "./mpi_hello"]))

Layout: host ``i`` is the network namespace ``flxt-<pid>-<i>``, whose ``eth0`` (a
veth) is joined to the bridge ``br0`` in the namespace ``flxt-<pid>-br``: the bridge
is not in the root namespace, so nothing reaches the machine's own interfaces or
routes, and nothing of theirs is changed. Host ``i`` has the address
``10.<a>.<b>.<i+1>/24`` (a /24 the root namespace does not use) and a default route
on ``eth0`` (brokers bind the address of the default route's interface).

Every command "on host i" runs as ``ip netns exec NS unshare --uts --mount sh -c
SETUP CMD...``: a fresh UTS namespace named ``node<i>``, and a private mount
namespace in which a generated hosts file (every ``node<j>`` with its address) is
bound over ``/etc/hosts``, a ``resolv.conf`` naming no reachable nameserver over
``/etc/resolv.conf`` (a lookup the hosts file cannot answer, such as the IPv6 one
of ``getent hosts``, fails at once instead of waiting out DNS timeouts), and the
host's own directory over ``/tmp`` (so all the commands on one host share its
``/tmp``, and no other host sees it); ``TMPDIR`` is set to ``/tmp``. The real
``/etc/hosts``, ``/etc/resolv.conf`` and ``/tmp`` are never written. Files the
hosts share must therefore live outside ``/tmp``: ``Hosts.shared`` is such a
directory (under ``/var/tmp``), where the Hydra launcher script is written too.
A checkout that itself lives under ``/tmp`` (``git clone . /tmp/x``) is bound
into every host's ``/tmp`` at the same path (``KEPT``), so its ``flux`` runs there.

``close()`` kills every process left in the namespaces (``ip netns pids``),
deletes the namespaces (the veths and the bridge go with them) and the work
directory; it runs on any exit of the ``with`` block. ``Hosts.start`` raises
``HostsUnavailable`` (a one-line reason) when not root or the kernel refuses.
"""

import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import sys
import time

from flux_launch.testing import BIN, _readline, clean_env

IP = "ip"
WORKROOT = "/var/tmp"  # where work directories go: not /tmp, which each host replaces
# set up host i inside its namespaces, then exec the command ("$@")
_SETUP = ('hostname "$FLXT_HOST" && mount --bind "$FLXT_ETC/hosts" /etc/hosts && '
          'mount --bind "$FLXT_ETC/resolv.conf" /etc/resolv.conf && '
          'if [ -n "$FLXT_KEEP" ]; then mkdir -p "$FLXT_TMP/$FLXT_KEEP" && '
          'mount --bind "/tmp/$FLXT_KEEP" "$FLXT_TMP/$FLXT_KEEP"; fi && '
          'mount --rbind "$FLXT_TMP" /tmp && export TMPDIR=/tmp && exec "$@"')


def _kept():
    """The name of the directory under /tmp that holds this code and its Python
    (a checkout cloned to /tmp/x), which every host sees at the same path; "" if none."""
    for path in (BIN, sys.prefix, os.path.dirname(os.path.abspath(__file__))):
        parts = os.path.realpath(path).split(os.sep)
        if len(parts) > 2 and parts[1] == "tmp":
            return parts[2]
    return ""


KEPT = _kept()  # shown in each host's /tmp beside its own files


class HostsUnavailable(RuntimeError):
    """Network namespaces cannot be made here (not root, or the kernel refuses)."""


def _ip(*args, check=True):
    r = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise HostsUnavailable(f"`ip {' '.join(args)}` failed: {r.stderr.strip() or r.returncode}")
    return r


def _root_networks():
    """The IPv4 networks the root namespace has addresses or routes in."""
    nets = []
    for args in (("-4", "-o", "addr", "show"), ("-4", "route", "show", "table", "all")):
        out = _ip(*args, check=False).stdout
        for word in out.split():
            try:
                nets.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                pass
    return [n for n in nets if n.prefixlen > 0]


def pick_subnet(seed=None):
    """A 10.a.b.0/24 that overlaps nothing the root namespace uses (seeded by
    ``seed``, default this pid, so concurrent test runs tend to differ)."""
    used = _root_networks()
    seed = os.getpid() if seed is None else seed
    for k in range(256 * 200):
        a, b = 200 + (seed + k) // 256 % 50, (seed + k) % 256
        net = ipaddress.ip_network(f"10.{a}.{b}.0/24")
        if not any(net.overlaps(u) for u in used):
            return net
    raise HostsUnavailable("no free 10.x.y.0/24 subnet: the root namespace uses them all")


def stale_sets():
    """Tags (``flxt-<tag>-*``) of host sets, namespaces or work directories under
    ``/var/tmp``, whose creating process is gone (killed before it could clean)."""
    names = [line.split()[0] for line in _ip("netns", "list", check=False).stdout.splitlines() if line.split()]
    try:
        names += os.listdir(WORKROOT)
    except OSError:
        pass
    tags = set()
    for name in names:
        if name.startswith("flxt-") and name.count("-") >= 2:
            tag = name.split("-")[1]
            pid = tag.split("s")[0]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                tags.add(tag)
    return tags


class Hosts:
    """``n`` (2-4 for tests; up to 250) hosts in network namespaces.

    Args:
        n: how many hosts.
        subnet: an ``ipaddress`` /24 (default: ``pick_subnet()``).
        workdir: where the hosts' ``/tmp``s, hosts file and shared files go; it
            must not be under ``/tmp`` (hidden on the hosts). Default: a new
            directory under ``/var/tmp``.

    Attributes:
        names: host names (``node0``...), addrs: their addresses, shared: a
        directory every host sees at the same path.
    """

    _count = 0

    def __init__(self, n=4, subnet=None, workdir=None):
        if not 1 <= n <= 250:
            raise ValueError(f"Hosts(n={n}): give between 1 and 250 hosts")
        self.n = n
        Hosts._count += 1
        self.tag = str(os.getpid()) + (f"s{Hosts._count}" if Hosts._count > 1 else "")
        self.subnet = subnet
        self.names = [f"node{i}" for i in range(n)]
        self.addrs = []
        self._workdir_arg = workdir
        self.workdir = None
        self.shared = None
        self.bridge_ns = f"flxt-{self.tag}-br"
        self._made = []
        self._launcher = None

    def ns(self, i):
        """The network namespace of host ``i``."""
        return f"flxt-{self.tag}-{i}"

    def veth(self, i):
        """Host ``i``'s link on the bridge (an interface in ``bridge_ns``)."""
        return f"h{i}"

    def start(self):
        """Make the namespaces, links, addresses and files.

        Raises:
            HostsUnavailable: not root, ``ip``/``unshare`` missing, or the kernel
                refused a step (everything made so far is removed).
        """
        if os.geteuid() != 0:
            raise HostsUnavailable("network namespaces need root (run the tests as root)")
        for tool in (IP, "unshare"):
            if shutil.which(tool) is None:
                raise HostsUnavailable(f"`{tool}` not found: install iproute2 and util-linux")
        for tag in stale_sets():
            _remove_set(tag)
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def _start(self):
        base = self._workdir_arg or tempfile.mkdtemp(prefix=f"flxt-{self.tag}-", dir=WORKROOT)
        if os.path.realpath(base).startswith("/tmp/") or os.path.realpath(base) == "/tmp":
            raise ValueError(f"Hosts workdir {base} is under /tmp, which each host replaces: use another")
        self.workdir = base
        self.shared = os.path.join(base, "shared")
        os.makedirs(self.shared, exist_ok=True)
        self.subnet = self.subnet or pick_subnet()
        hosts = list(self.subnet.hosts())
        self.addrs = [str(hosts[i]) for i in range(self.n)]
        os.makedirs(os.path.join(base, "etc"), exist_ok=True)
        with open(os.path.join(base, "etc", "hosts"), "w") as f:
            f.write("127.0.0.1\tlocalhost\n")
            f.writelines(f"{a}\t{h}\n" for a, h in zip(self.addrs, self.names))
        with open(os.path.join(base, "etc", "resolv.conf"), "w") as f:
            # no DNS on the bridge: a lookup /etc/hosts cannot answer (an IPv6
            # one, say) fails at once on the closed local port instead of
            # waiting out the real nameserver's timeouts
            f.write("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n")
        br = self.bridge_ns
        _ip("netns", "add", br)
        self._made.append(br)
        _ip("-n", br, "link", "set", "lo", "up")
        _ip("-n", br, "link", "add", "br0", "type", "bridge")
        _ip("-n", br, "link", "set", "br0", "up")
        for i in range(self.n):
            ns = self.ns(i)
            os.makedirs(os.path.join(base, f"node{i}", "tmp"), exist_ok=True)
            os.chmod(os.path.join(base, f"node{i}", "tmp"), 0o1777)
            _ip("netns", "add", ns)
            self._made.append(ns)
            # both ends are created inside the namespaces: the root namespace never holds them
            _ip("link", "add", "eth0", "netns", ns, "type", "veth", "peer", "name", self.veth(i), "netns", br)
            _ip("-n", br, "link", "set", self.veth(i), "master", "br0")
            _ip("-n", br, "link", "set", self.veth(i), "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{self.addrs[i]}/{self.subnet.prefixlen}", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "route", "add", "default", "dev", "eth0")
        self._write_launcher()

    def cmd(self, i, argv):
        """The argv that runs ``argv`` on host ``i`` (see the module docstring)."""
        if not 0 <= i < self.n:
            raise IndexError(f"no host {i}: hosts are 0..{self.n - 1}")
        return [IP, "netns", "exec", self.ns(i), "env", f"FLXT_HOST={self.names[i]}",
                f"FLXT_ETC={os.path.join(self.workdir, 'etc')}",
                f"FLXT_TMP={os.path.join(self.workdir, self.names[i], 'tmp')}", f"FLXT_KEEP={KEPT}",
                "unshare", "--uts", "--mount", "sh", "-c", _SETUP, "sh", *argv]

    def run(self, i, argv, timeout=60, **kw):
        """``subprocess.run`` of ``argv`` on host ``i`` (text, output captured and
        stdin from /dev/null unless given); raises ``subprocess.TimeoutExpired``
        after ``timeout`` seconds, once the command's process group is killed."""
        kw.setdefault("text", True)
        check = kw.pop("check", False)
        inp = kw.pop("input", None)
        if kw.pop("capture_output", "stdout" not in kw and "stderr" not in kw):
            kw["stdout"] = kw["stderr"] = subprocess.PIPE
        kw.setdefault("stdin", subprocess.DEVNULL if inp is None else subprocess.PIPE)
        with self.popen(i, argv, **kw) as p:
            try:
                out, err = p.communicate(inp, timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                _killpg(p.pid)
                exc.stdout, exc.stderr = p.communicate()
                raise
        r = subprocess.CompletedProcess(p.args, p.returncode, out, err)
        if check:
            r.check_returncode()
        return r

    def popen(self, i, argv, **kw):
        """``subprocess.Popen`` of ``argv`` on host ``i``, in a new session (so a
        timeout can kill all of it)."""
        kw.setdefault("start_new_session", True)
        return subprocess.Popen(self.cmd(i, argv), **kw)

    @property
    def launcher(self):
        """The path of the script given to ``mpiexec.hydra -launcher ssh
        -launcher-exec``: it runs Hydra's proxy command on the host named."""
        return self._launcher

    def _write_launcher(self):
        # Hydra calls it as ssh: [-x] HOST "CMD" ARGS..., the words to be joined and
        # run by a shell on HOST
        cases = "".join(f'  {h}) exec {shlex.join(self.cmd(i, []))} sh -c "$*" ;;\n' for i, h in enumerate(self.names))
        text = ("#!/bin/sh\n# generated by flux_launch.testing.netns: ssh replaced by `ip netns exec`\n"
                "while [ $# -gt 0 ]; do case $1 in -[lpioF]) shift 2 ;; -*) shift ;; *) break ;; esac; done\n"
                'host=$1; shift\ncase $host in\n' + cases +
                '  *) echo "netns launcher: no host $host (hosts: ' + " ".join(self.names) + ')" >&2; exit 255 ;;\n'
                "esac\n")
        path = os.path.join(self.shared, "launcher.sh")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
        self._launcher = path

    def hydra(self, args, hosts=None):
        """``mpiexec.hydra`` across ``hosts`` (indices, default all; one slot
        each, so ranks go round-robin) with ``args``; run it on host 0 (it
        advertises host 0's name, which every host resolves)::

            hosts.run(0, hosts.hydra(["-n", "8", prog]))
        """
        names = ",".join(self.names[i] for i in (range(self.n) if hosts is None else hosts))
        return ["mpiexec.hydra", "-launcher", "ssh", "-launcher-exec", self._launcher, "-hosts", names, *args]

    def cut(self, i):
        """Cut host ``i`` off the network (its bridge port down): its packets are
        dropped both ways, as when a cable is pulled."""
        _ip("-n", self.bridge_ns, "link", "set", self.veth(i), "down")

    def restore(self, i):
        """Undo ``cut(i)``."""
        _ip("-n", self.bridge_ns, "link", "set", self.veth(i), "up")

    def pids(self, i=None):
        """PIDs of the processes in host ``i``'s namespace (all hosts: None)."""
        pids = []
        for ns in ([self.ns(i)] if i is not None else self._made):
            out = _ip("netns", "pids", ns, check=False).stdout
            pids += [int(p) for p in out.split() if p.isdigit()]
        return pids

    def kill_all(self, timeout=5.0):
        """SIGTERM every process on the hosts, SIGKILL what is left after
        ``timeout`` seconds; returns the PIDs that had to be killed."""
        return _kill(self.pids(), timeout)

    def clean_tmp(self):
        """Empty every host's /tmp (what a test left there: rundirs of brokers it
        killed...), the checkout bound into it aside. Call it with nothing running."""
        for name in self.names:
            tmp = os.path.join(self.workdir, name, "tmp")
            for entry in os.listdir(tmp):
                if entry == KEPT:
                    continue  # only the mount point: the checkout is bound on it inside the host
                path = os.path.join(tmp, entry)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)

    def close(self):
        """Kill the hosts' processes, delete the namespaces and the work directory."""
        _remove_set(self.tag, self._made)
        self._made = []
        if self.workdir and not self._workdir_arg:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


def _killpg(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill(pids, timeout):
    me = os.getpid()
    pids = [p for p in pids if p != me]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in pids:
            try:
                os.kill(p, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while pids and time.monotonic() < deadline:
            pids = [p for p in pids if _alive(p)]
            time.sleep(0.05)
        if not pids:
            break
    return pids


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return not f.read().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return False


def _remove_set(tag, names=None):
    """Kill the processes in, and delete, the namespaces ``flxt-<tag>-*`` (all of
    them when ``names`` is None: a stale set, whose work directories go too)."""
    stale = names is None
    if stale:
        out = _ip("netns", "list", check=False).stdout
        names = [w.split()[0] for w in out.splitlines() if w.startswith(f"flxt-{tag}-")]
    pids = []
    for ns in names:
        pids += [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split() if p.isdigit()]
    _kill(pids, 2.0)
    for ns in names:
        _ip("netns", "del", ns, check=False)
    if stale:
        for d in os.listdir(WORKROOT):
            if d.startswith(f"flxt-{tag}-"):
                shutil.rmtree(os.path.join(WORKROOT, d), ignore_errors=True)


class HydraInstance:
    """A Flux instance of one broker per host, started by ``mpiexec.hydra``
    across ``hosts`` (run on host 0, as a user would from a login node), with
    attributes ``attrs``; commands run on host 0 (where the ``local://`` URI
    is)::

        with HydraInstance(hosts, {"tbon.timeout": 2}) as inst:
            inst.flux("run", "-N4", "hostname").stdout

    Its initial program waits on stdin (Hydra gives rank 0 mpiexec's); ``close()``
    closes it and waits, then kills whatever is left on the hosts.

    Raises:
        RuntimeError: the instance did not start within ``timeout`` seconds (the
            message has the brokers' stderr).
    """

    def __init__(self, hosts, attrs=None, timeout=60, env=None):
        self.hosts = hosts
        self.attrs = dict(attrs or {})
        self.timeout = timeout
        self.env = clean_env(env)
        self.proc = None
        self.uri = None
        self._log = os.path.join(hosts.workdir, f"hydra-instance-{id(self)}.log")

    def start(self):
        cmd = [os.path.join(BIN, "flux"), "start", *(f"-S{k}={v}" for k, v in self.attrs.items()),
               "sh", "-c", 'printf "%s\\n" "$FLUX_URI"; exec cat >/dev/null']
        with open(self._log, "ab") as log:
            self.proc = self.hosts.popen(0, self.hosts.hydra(["-n", str(self.hosts.n), *cmd]),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=self.env)
        line = _readline(self.proc.stdout, self.timeout)
        if not line.startswith("local://"):
            self.close()
            raise RuntimeError(f"instance across {self.hosts.n} hosts did not start:\n{line}{self.log()}")
        self.uri = line.strip()
        self.env["FLUX_URI"] = self.uri
        return self

    def log(self):
        """mpiexec's and the brokers' stderr so far."""
        try:
            with open(self._log, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def flux(self, *args, check=True, timeout=60, host=0):
        """``flux ARGS`` on ``host`` (default 0) in the instance; a
        ``CompletedProcess`` (text).

        Raises:
            RuntimeError: it failed (``check``) or ran past ``timeout``; the
                message has its output and the brokers' stderr.
        """
        cmd = [os.path.join(BIN, "flux"), *args]
        try:
            r = self.hosts.run(host, cmd, timeout=timeout, env=self.env)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{args} timed out after {timeout}s\nstdout: {exc.stdout}\nstderr: {exc.stderr}\n"
                               f"brokers:\n{self.log()}") from None
        if check and r.returncode != 0:
            raise RuntimeError(f"{args} exited {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}\n"
                               f"brokers:\n{self.log()}")
        return r

    def close(self, timeout=20):
        """Close the initial program's stdin and wait up to ``timeout`` seconds
        for mpiexec; then kill everything left on the hosts. Returns mpiexec's
        exit status (None if it had to be killed)."""
        if self.proc is None:
            return None
        rc = None
        try:
            self.proc.stdin.close()
            rc = self.proc.wait(timeout)
        except (OSError, subprocess.TimeoutExpired):
            _killpg(self.proc.pid)
            self.proc.wait()
        finally:
            self.proc.stdout.close()
            self.hosts.kill_all()
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

