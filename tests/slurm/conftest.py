"""A private Slurm cluster of one node for the tests: munged, slurmctld and slurmd
started from a temporary directory, so that ``srun`` can be the outer launcher of
``flux start`` the way it is on a real cluster.

The session fixture ``slurm`` installs Debian's ``slurmctld slurmd slurm-client
munge`` and Slurm's PMI libraries ``libpmi0 libpmi2-0`` when they are missing (as
root, unless ``FLUX_TEST_INSTALL_SLURM=0``; services are kept from starting by a
``policy-rc.d``; about 10 s once), then starts its own daemons:
munged with its own key, socket, pid, seed and log files; slurmctld and slurmd in
the foreground on unused ports with every state, spool, pid and log file under
one directory. Nothing system-wide is read or changed: ``SLURM_CONF`` points
``srun``/``sinfo`` at this cluster. The daemons are always stopped (SIGTERM, 10 s,
then SIGKILL) and the directory removed at the end of the session.

Where something cannot start (not root, apt failed, a daemon exited), the tests
are skipped with one line that says what failed, taken from that daemon's log.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from flux_launch.testing import clean_env

HERE = os.path.dirname(os.path.abspath(__file__))
MPI_TESTS = os.path.join(os.path.dirname(HERE), "mpi")
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
LIBRARIES = ("libpmi0", "libpmi2-0")  # Slurm's PMI libraries, for the brokers' libpmi/libpmi2 methods
COMMANDS = ("slurmctld", "slurmd", "srun", "sinfo", "squeue", "scancel", "munged")
START_TIMEOUT = 30  # seconds for the node to be idle; slurmd registers in about 1 s
INSTALL_TIMEOUT = 600
PREFIX = "flux-slurm-"  # of each cluster's directory in /tmp


def _log_reason(path, default):
    """A daemon's first error line (the cause; its last one appended when it
    differs), or its last line, else ``default``."""
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return default
    errors = [line for line in lines if re.search(r"error|fatal", line, re.I)]
    if errors:
        return errors[0] if len(errors) == 1 else f"{errors[0]} ... {errors[-1]}"
    return (lines or [default])[-1]


def _missing_commands():
    return [c for c in COMMANDS if shutil.which(c, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None]


def _system_daemon_pids(names=("munged", "slurmctld", "slurmd")):
    """Pids of processes named one of ``names`` running now (any origin)."""
    pids = set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() in names:
                        pids.add(int(d))
            except OSError:
                pass
    return pids


def _test_cluster_pids():
    """Pids of the daemons of any session's test cluster (their command line or
    environment names a ``PREFIX`` directory): never to be taken for the system's."""
    own = set()
    for pid in _system_daemon_pids(("munged", "slurmctld", "slurmd", "slurmstepd")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f, open(f"/proc/{pid}/environ", "rb") as g:
                if f"/{PREFIX}".encode() in f.read() + g.read():
                    own.add(pid)
        except OSError:
            pass
    return own


def _missing_packages():
    """The packages of PACKAGES and LIBRARIES that dpkg does not have installed
    (without dpkg: PACKAGES when a command is missing)."""
    if shutil.which("dpkg-query") is None:
        return list(PACKAGES) if _missing_commands() else []
    missing = []
    for p in PACKAGES + LIBRARIES:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True, text=True)
        if r.returncode != 0 or "ok installed" not in r.stdout:
            missing.append(p)
    return missing


def _install(packages):
    """apt-get install ``packages``, services kept from starting by a
    policy-rc.d (and any daemon a postinst started anyway stopped). Returns the
    seconds it took, or the one-line reason it could not."""
    names = " ".join(packages)
    if os.environ.get("FLUX_TEST_INSTALL_SLURM") == "0":
        return f"{names} not installed, and FLUX_TEST_INSTALL_SLURM=0 forbids installing them"
    if os.geteuid() != 0:
        return f"{names} not installed, and installing them needs root: apt-get install {names}"
    t0 = time.monotonic()
    before = _system_daemon_pids()
    policy = "/usr/sbin/policy-rc.d"
    own_policy = not os.path.exists(policy)
    if own_policy:  # invoke-rc.d asks it before starting a service: 101 = not now
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # another session's install holds dpkg's lock for a while: wait for it
    cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300", *packages]
    try:
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        if r.returncode != 0:  # package lists missing or stale: update once and retry
            subprocess.run(["apt-get", "update", "-qq", "-o", "DPkg::Lock::Timeout=300"], env=env,
                           capture_output=True, timeout=INSTALL_TIMEOUT)
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
    except subprocess.TimeoutExpired:
        return f"apt-get install {names} took over {INSTALL_TIMEOUT} s"
    finally:
        if own_policy:
            os.unlink(policy)
        for pid in _system_daemon_pids() - before - _test_cluster_pids():  # a postinst's, despite the policy
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
    if r.returncode != 0:
        return f"apt-get install {names} failed: {(r.stderr.strip().splitlines() or ['no output'])[-1]}"
    return time.monotonic() - t0


def _free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _node_line():
    """This host's node description as ``slurmd -C`` reports it (NodeName, CPUs,
    sockets, cores, threads); memory is left out (Slurm's default never drains)."""
    r = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=30)
    fields = dict(re.findall(r"(\w+)=(\S+)", r.stdout))
    if r.returncode != 0 or "NodeName" not in fields:
        pytest.skip(f"slurmd -C could not describe this host: {(r.stderr or r.stdout).strip()[-200:]}")
    keep = ("NodeName", "CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    return fields["NodeName"], int(fields.get("CPUs", "1")), {k: fields[k] for k in keep if k in fields}


class SlurmCluster:
    """One node, one partition, daemons of this session; ``run()`` runs a Slurm
    command (``srun ...``) against it."""

    def __init__(self):
        self.dir = None
        self.procs = {}
        self.env = None
        self.node = None
        self.install_s = 0.0
        self.start_s = 0.0

    def path(self, name):
        return os.path.join(self.dir, name)

    def _spawn(self, name, cmd):
        log = open(self.path(f"{name}.out"), "w")
        with log:
            self.procs[name] = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def _reason(self, name, what):
        """Why daemon ``name`` is not up, from its log file or its captured output."""
        logfile = {"munged": "munged.log", "slurmctld": "slurmctld.log", "slurmd": "slurmd.log"}[name]
        reason = _log_reason(self.path(logfile), "")
        if not reason:
            reason = _log_reason(self.path(f"{name}.out"), "no log")
        rc = self.procs[name].poll() if name in self.procs else None
        state = f"exited {rc}" if rc is not None else "still running"
        return f"{name} {what} ({state}): {reason}"

    def _start_munge(self):
        key = self.path("munge.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(os.urandom(1024))
        sock = self.path("munge.sock")
        self._spawn("munged", ["munged", "--foreground", f"--socket={sock}", f"--key-file={key}",
                               f"--pid-file={self.path('munged.pid')}", f"--log-file={self.path('munged.log')}",
                               f"--seed-file={self.path('munged.seed')}"])
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(sock):
            if self.procs["munged"].poll() is not None or time.monotonic() > deadline:
                pytest.skip(self._reason("munged", "did not start"))
            time.sleep(0.05)
        return sock

    def _write_conf(self, munge_sock):
        name, cpus, node = _node_line()
        self.node = name
        extra = []
        if cpus < 2:  # the tests run 2 tasks on this one node
            node["CPUs"] = "2"
            for k in ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore"):
                node.pop(k, None)
            extra.append("SlurmdParameters=config_overrides")
        ctld_port, d_port = _free_ports(2)
        conf = [
            "ClusterName=fluxtest",
            f"SlurmctldHost={name}(127.0.0.1)",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={d_port}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={munge_sock}",
            "CredType=cred/munge",
            f"StateSaveLocation={self.path('state')}",
            f"SlurmdSpoolDir={self.path('spool')}",
            f"SlurmctldPidFile={self.path('slurmctld.pid')}",
            f"SlurmdPidFile={self.path('slurmd.pid')}",
            f"SlurmctldLogFile={self.path('slurmctld.log')}",
            f"SlurmdLogFile={self.path('slurmd.log')}",
            "MailProg=/bin/true",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "SchedulerType=sched/builtin",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "ReturnToService=2",
            *extra,
            "NodeName=" + name + " NodeAddr=127.0.0.1 " + " ".join(f"{k}={v}" for k, v in node.items()
                                                                 if k != "NodeName"),
            "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        for d in ("state", "spool"):
            os.mkdir(self.path(d))
        with open(self.path("slurm.conf"), "w") as f:
            f.write("\n".join(conf) + "\n")

    def _wait_idle(self):
        deadline = time.monotonic() + START_TIMEOUT
        state = ""
        while True:
            for name in ("slurmctld", "slurmd"):
                if self.procs[name].poll() is not None:
                    pytest.skip(self._reason(name, "did not start"))
            r = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], env=self.env, capture_output=True, text=True,
                               timeout=30)
            state = r.stdout.strip() or r.stderr.strip()
            if r.returncode == 0 and state == "idle":
                return
            if time.monotonic() > deadline:
                pytest.skip(f"the Slurm node was not idle after {START_TIMEOUT} s (sinfo: {state!r}); "
                            f"{self._reason('slurmd', 'log')}; {self._reason('slurmctld', 'log')}")
            time.sleep(0.1)

    def start(self):
        """Install if needed, then start munged, slurmctld and slurmd; returns self
        once ``sinfo`` shows the node idle. Skips the calling tests when it cannot."""
        missing = _missing_packages()
        if missing:
            done = _install(missing)
            if isinstance(done, str) and _missing_commands():
                pytest.skip(done)
            self.install_s = done if not isinstance(done, str) else 0.0  # a library left out skips its tests
        if _missing_commands():
            pytest.skip(f"after installing {' '.join(PACKAGES)}, still missing: {', '.join(_missing_commands())}")
        if os.geteuid() != 0:
            pytest.skip("the private Slurm cluster needs root (slurmd starts every task as its user)")
        t0 = time.monotonic()
        # munged wants every directory above its socket searchable by all
        self.dir = tempfile.mkdtemp(prefix=PREFIX, dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.env = clean_env({"SLURM_CONF": self.path("slurm.conf"), "TMPDIR": self.dir})
        self.env["PATH"] += ":/usr/sbin:/sbin"
        munge_sock = self._start_munge()
        self._write_conf(munge_sock)
        self._spawn("slurmctld", ["slurmctld", "-D"])
        self._spawn("slurmd", ["slurmd", "-D"])
        self._wait_idle()
        self.start_s = time.monotonic() - t0
        return self

    def run(self, args, timeout=60, env=None):
        """Runs ``args`` (e.g. ``["srun", "-n2", "hostname"]``) with this cluster's
        ``SLURM_CONF``; returns the CompletedProcess (text)."""
        full = dict(self.env, **(env or {}))
        return subprocess.run(args, env=full, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)

    def logs(self):
        """The tails of the daemons' logs, for a failure message."""
        out = []
        for name in ("slurmctld.log", "slurmd.log", "munged.log"):
            try:
                with open(self.path(name), errors="replace") as f:
                    out.append(f"--- {name} ---\n" + "".join(f.readlines()[-20:]))
            except OSError:
                pass
        return "\n".join(out)

    def _drain(self):
        """Cancels any job and waits (10 s at most) until none is left, so that no
        slurmstepd is still reporting to the daemons about to stop."""
        try:
            subprocess.run(["scancel", "--full", "-u", "root"], env=self.env, capture_output=True, timeout=10)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                r = subprocess.run(["squeue", "-h"], env=self.env, capture_output=True, text=True, timeout=10)
                if r.returncode != 0 or not r.stdout.strip():
                    return
                time.sleep(0.1)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def _own_stepds(self):
        """This cluster's slurmstepd processes: those with its SLURM_CONF (slurmd's
        environment), whatever other cluster runs beside it."""
        mark = f"SLURM_CONF={self.path('slurm.conf')}".encode()
        own = set()
        for pid in _system_daemon_pids(("slurmstepd",)):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if mark in f.read().split(b"\0"):
                        own.add(pid)
            except OSError:
                pass
        return own

    def _reap_stepds(self):
        """SIGKILL to this cluster's slurmstepd processes still there 5 s after the
        daemons stopped."""
        deadline = time.monotonic() + 5
        while True:
            left = self._own_stepds()
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def stop(self):
        """Cancels any job, stops the daemons (SIGTERM, 10 s, then SIGKILL to each
        daemon's process group), then any of its slurmstepd left, and removes the
        directory."""
        if self.procs.get("slurmctld") and self.procs["slurmctld"].poll() is None:
            self._drain()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        if self.procs:
            self._reap_stepds()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def slurm():
    """A running one-node Slurm cluster (``SlurmCluster``), stopped at session end."""
    cluster = SlurmCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def mpi_hello(slurm):
    """tests/mpi/hello.c built with MPICH's mpicc (a directory the tasks can read)."""
    if shutil.which("mpicc.mpich") is None:
        pytest.fail("mpicc.mpich not found: `make test` installs MPICH (ci/setup.sh)")
    out = os.path.join(slurm.dir, "mpi_hello")
    r = subprocess.run(["mpicc.mpich", "-O1", "-o", out, os.path.join(MPI_TESTS, "hello.c")],
                       capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"mpicc.mpich failed: {r.stderr}")
    return out
