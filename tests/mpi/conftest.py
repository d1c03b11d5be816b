"""MPI programs built once per session with the system's MPI compilers (``make
test`` installs MPICH and Open MPI), and instances to run them in."""

import os
import shutil
import subprocess

import pytest

from flux_launch.testing import Instance

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _build(compiler, sources, out, extra=()):
    if shutil.which(compiler) is None:
        pytest.fail(f"{compiler} not found: `make test` installs it (ci/setup.sh)")
    subprocess.run([compiler, "-O1", "-o", out, *sources, *extra], check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="session")
def mpich(tmp_path_factory):
    d = tmp_path_factory.mktemp("mpich")
    return {name: _build("mpicc.mpich", [os.path.join(HERE, f"{name}.c")], str(d / name))
            for name in ("hello", "ring", "abort")}


@pytest.fixture(scope="session")
def ompi_hello(tmp_path_factory):
    d = tmp_path_factory.mktemp("ompi")
    return _build("mpicc.openmpi", [os.path.join(HERE, "hello.c")], str(d / "hello"))


@pytest.fixture(scope="session")
def pmi_client(tmp_path_factory):
    import flux_launch

    libdir = os.path.join(os.path.dirname(flux_launch.__file__), "lib")
    if not os.path.exists(os.path.join(libdir, "libpmi.so")):
        pytest.fail("libpmi.so was not built (setup.py builds it next to the package)")
    d = tmp_path_factory.mktemp("pmi")
    return _build("gcc", [os.path.join(HERE, "pmi_client.c")], str(d / "pmi_client"),
                  [f"-L{libdir}", "-lpmi", f"-Wl,-rpath,{libdir}"])


@pytest.fixture(scope="module")
def inst4():
    with Instance(size=4) as inst:
        yield inst


@pytest.fixture(scope="module")
def inst2():
    with Instance(size=2) as inst:
        yield inst
