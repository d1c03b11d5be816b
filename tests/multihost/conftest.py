"""Four hosts on this machine (network namespaces with their own address, host
name, /tmp and /etc/hosts, see ``flux_launch.testing.netns``), made once per
session and always torn down; every test leaves them clean: processes on them
killed, links restored, /tmp emptied. Needs root; skipped with the reason otherwise."""

import os
import shutil
import subprocess

import pytest

from flux_launch.testing.netns import Hosts, HostsUnavailable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.fixture(scope="session")
def hosts4():
    hosts = Hosts(4)
    try:
        hosts.start()
    except HostsUnavailable as exc:
        pytest.skip(f"no hosts in network namespaces here: {exc}")
    try:
        yield hosts
    finally:
        hosts.close()


@pytest.fixture
def hosts(hosts4):
    """The 4 hosts; after the test, everything on them is killed, every link is up
    and every /tmp empty."""
    yield hosts4
    hosts4.kill_all()
    for i in range(hosts4.n):
        hosts4.restore(i)
    hosts4.clean_tmp()


@pytest.fixture(scope="session")
def mpi_hello(hosts4):
    """tests/mpi/hello.c built with MPICH where every host sees it (not /tmp)."""
    if shutil.which("mpicc.mpich") is None:
        pytest.fail("mpicc.mpich not found: `make test` installs MPICH (ci/setup.sh)")
    out = os.path.join(hosts4.shared, "mpi_hello")
    subprocess.run(["mpicc.mpich", "-O1", "-o", out, os.path.join(ROOT, "tests", "mpi", "hello.c")],
                   check=True, capture_output=True, text=True)
    return out
