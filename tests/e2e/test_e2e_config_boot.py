"""Brokers booted from a config file (``flux start -c DIR``, ``[bootstrap] hosts``
and a shared ``curve_cert``), as flux-core's system instance: here several brokers
on this host, each told its host name with ``FLUX_FAKE_HOSTNAME``; the same in
network namespaces with real host names is in tests/multihost. Faults: a host that
never comes up (named after ``broker.quorum-timeout``), a broker with another
certificate (refused and logged, the instance unaffected), bad configs."""

import os
import socket
import subprocess

import pytest

from flux_launch.testing import BIN, clean_env, flux, poll

pytestmark = pytest.mark.e2e
FLUX = os.path.join(BIN, "flux")


def _ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Cluster:
    """A config for hosts ``fake0..fakeN-1`` on 127.0.0.1, and the brokers started from it."""

    def __init__(self, tmp_path, n):
        self.dir = tmp_path
        self.names = [f"fake{i}" for i in range(n)]
        self.cert = self.keygen("cert")
        ports = _ports(n)
        hosts = ", ".join(f'{{ host = "{h}", bind = "tcp://127.0.0.1:{p}", connect = "tcp://127.0.0.1:{p}" }}'
                          for h, p in zip(self.names, ports))
        self.conf = self.write("conf", self.cert, hosts)
        self.procs = []

    def keygen(self, name):
        path = str(self.dir / name)
        r = flux("keygen", path)
        assert r.returncode == 0, r.stderr
        return path

    def write(self, name, cert, hosts, extra=""):
        d = self.dir / name
        d.mkdir(exist_ok=True)
        (d / "boot.toml").write_text(f'[bootstrap]\ncurve_cert = "{cert}"\nhosts = [ {hosts} ]\n{extra}')
        return str(d)

    def start(self, i, *args, conf=None):
        """Start the broker of host ``i`` in the background (no initial program)."""
        p = subprocess.Popen([FLUX, "start", "-c", conf or self.conf, *args, "sleep", "inf"],
                             env=clean_env({"FLUX_FAKE_HOSTNAME": self.names[i], "TMPDIR": str(self.dir)}),
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        self.procs.append(p)
        return p

    def run0(self, *cmd, args=(), timeout=60):
        """Rank 0 (host fake0) with the initial program ``cmd``; its CompletedProcess."""
        return flux("start", "-c", self.conf, *args, *cmd, timeout=timeout,
                    env={"FLUX_FAKE_HOSTNAME": "fake0", "TMPDIR": str(self.dir)})

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, 9)
            p.communicate()


@pytest.fixture
def cluster(tmp_path):
    made = []

    def make(n):
        c = Cluster(tmp_path, n)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_config_boot_forms_one_instance(cluster):
    c = cluster(3)
    others = [c.start(1), c.start(2)]
    r = c.run0("sh", "-c", "flux getattr size; flux getattr hostlist; flux overlay status; "
               "flux exec -r all flux getattr hostname | sort; flux run -N3 flux getattr rank | sort; "
               "flux getattr tbon.endpoint")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:2] == ["3", "fake[0-2]"], r.stdout
    assert lines[2:5] == ["0 fake0: full", "├─ 1 fake1: full", "└─ 2 fake2: full"], r.stdout
    assert lines[5:8] == ["fake0", "fake1", "fake2"]
    assert lines[8:11] == ["0", "1", "2"]
    assert lines[11].startswith("tcp://127.0.0.1:")
    # the other brokers leave with rank 0
    for p in others:
        assert p.wait(timeout=15) == 0, p.communicate()


def test_host_that_never_comes_up_is_named(cluster):
    c = cluster(3)
    r = c.run0("sh", "-c", "flux uptime; flux run -N1 flux getattr rank", args=("-Sbroker.quorum-timeout=0.5",))
    assert r.returncode == 0, r.stderr
    assert "quorum not reached after 0.5s: ranks 1-2 (fake[1-2]) never came up; going on without them" \
        in r.stderr, r.stderr
    assert "2 offline" in r.stdout and r.stdout.splitlines()[-1] == "0"


def test_peer_with_another_certificate_is_refused_and_logged(cluster):
    c = cluster(3)
    wrong = c.write("wrong", c.keygen("cert2"), ", ".join(f'{{ host = "fake{i}", connect = '
                                                          f'"{_connect(c, i)}" }}' for i in range(3)))
    bad = c.start(1, "-Stbon.timeout=5", conf=wrong)
    good = c.start(2)
    r = c.run0("sh", "-c", "flux overlay status; flux run -N2 flux getattr rank | sort",
               args=("-Sbroker.quorum-timeout=2",))
    assert r.returncode == 0, r.stderr
    assert "overlay: refused a connection on tcp://127.0.0.1:" in r.stderr, r.stderr
    assert "failed the CURVE handshake" in r.stderr
    assert r.stdout.splitlines() == ["0 fake0: partial", "├─ 1: offline", "└─ 2 fake2: full", "0", "2"], r.stdout
    out, err = bad.communicate(timeout=15)
    assert bad.returncode != 0 and "the parent broker refused this broker's CURVE key" in err, err
    assert good.wait(timeout=15) == 0


def _connect(c, i):
    text = open(os.path.join(c.conf, "boot.toml")).read()
    return text.split(f'host = "fake{i}"', 1)[1].split('connect = "', 1)[1].split('"', 1)[0]


def test_a_client_with_an_unknown_key_is_refused_by_zap(cluster):
    """The right server key but a client key that is not the instance's: ZAP denies it."""
    c = cluster(2)
    c.start(1)
    endpoint = _connect(c, 0)
    pub = [line.split('"')[1] for line in open(c.cert) if "public-key" in line][0]
    script = ("import zmq,time\nctx=zmq.Context()\ns=ctx.socket(zmq.DEALER)\npub,sec=zmq.curve_keypair()\n"
              f"s.curve_serverkey={pub.encode()!r}\ns.curve_publickey=pub\ns.curve_secretkey=sec\n"
              "s.setsockopt(zmq.IDENTITY,b'1')\n"
              f"s.connect({endpoint!r})\ns.send(b'{{}}')\ntime.sleep(1)\n")
    r = c.run0("sh", "-c", f"{BIN}/python -c \"$0\"; flux overlay status; flux run -N2 flux getattr rank | sort",
               script, args=("-Sbroker.quorum-timeout=5",))
    assert r.returncode == 0, r.stderr
    assert "overlay: refused a connection with CURVE key" in r.stderr, r.stderr
    assert r.stdout.splitlines()[-2:] == ["0", "1"], r.stdout


@pytest.mark.parametrize("hosts,extra,expect", [
    ('{ host = "other0" }, { host = "other1" }', "",
     "this host (fake0) is not in bootstrap.hosts of"),
    ('{ host = "fake0" }, { host = "fake0" }', "", "host fake0 appears twice"),
    ('{ host = "fake[0-1]" }', 'default_bind = "tcp://127.0.0.1:%p"\n',
     "uses %p but default_port is not set"),
    ('{ host = "fake[0-1]" }', "", "has children but no bind URI: set bind or default_bind"),
    ('{ host = "fake[0-1]", colour = "red" }', "", "unknown key 'colour'"),
    ('{ host = "fake[0-" }', "", "bad hostlist"),
])
def test_bad_bootstrap_configs_fail_in_one_line(cluster, hosts, extra, expect):
    c = cluster(1)
    conf = c.write("bad", c.cert, hosts, extra)
    r = flux("start", "-c", conf, "true", env={"FLUX_FAKE_HOSTNAME": "fake0"}, timeout=30)
    assert r.returncode == 1 and expect in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_certificate_checks(cluster):
    c = cluster(1)
    conf = c.write("two", c.cert, '{ host = "fake0", bind = "tcp://127.0.0.1:1" }, { host = "fake1" }')
    os.chmod(c.cert, 0o640)
    r = flux("start", "-c", conf, "true", env={"FLUX_FAKE_HOSTNAME": "fake0"}, timeout=30)
    assert r.returncode == 1 and "is readable by others (mode 0640): chmod 600 it" in r.stderr, r.stderr
    os.chmod(c.cert, 0o600)
    with open(c.cert, "w") as f:
        f.write("curve\n    public-key = \"short\"\n")
    r = flux("start", "-c", conf, "true", env={"FLUX_FAKE_HOSTNAME": "fake0"}, timeout=30)
    assert r.returncode == 1 and "is not a CURVE certificate" in r.stderr, r.stderr
    nocert = c.write("nocert", "", '{ host = "fake[0-1]", bind = "tcp://127.0.0.1:1" }')
    r = flux("start", "-c", nocert, "true", env={"FLUX_FAKE_HOSTNAME": "fake0"}, timeout=30)
    assert r.returncode == 1 and "curve_cert is required for an instance of 2 brokers" in r.stderr, r.stderr


def test_single_host_config_is_a_singleton(cluster):
    c = cluster(1)
    r = c.run0("flux", "getattr", "size")
    assert r.returncode == 0 and r.stdout == "1\n", r.stderr


def test_keygen(tmp_path):
    path = tmp_path / "c"
    assert flux("keygen", str(path)).returncode == 0
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    text = path.read_text()
    assert "public-key" in text and "secret-key" in text
    r = flux("keygen", str(path))
    assert r.returncode == 1 and "exists: remove it first" in r.stderr
    out = flux("keygen").stdout
    assert "secret-key" in out and out != text


def test_a_host_that_comes_up_late_joins_with_its_resources(cluster):
    """Missing at the quorum timeout, then started: it goes online, its cores
    become schedulable (it was never seen, so its resources were unknown)."""
    c = cluster(3)
    c.start(1)
    err = c.dir / "rank0.err"
    with open(err, "w") as errf:
        rank0 = subprocess.Popen(
            [FLUX, "start", "-c", c.conf, "-Sbroker.quorum-timeout=0.5", "sh", "-c",
             "flux uptime; while flux uptime | grep -q offline; do sleep 0.1; done; "
             "flux resource list -s free -n; flux run -N3 flux getattr rank | sort"],
            env=clean_env({"FLUX_FAKE_HOSTNAME": "fake0", "TMPDIR": str(c.dir)}), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=errf, text=True, start_new_session=True)
        c.procs.append(rank0)
        assert poll(lambda: "never came up" in err.read_text(), timeout=30), err.read_text()
        c.start(2)
        out, _ = rank0.communicate(timeout=60)
    assert rank0.returncode == 0, err.read_text()
    lines = out.splitlines()
    assert "1 offline" in lines[0], out
    assert lines[1].split()[:2] == ["free", "3"], out
    assert lines[2:] == ["0", "1", "2"], out + err.read_text()
