"""Brokers started by an existing launcher: MPICH's mpiexec.hydra serves PMI-1,
so its processes form one instance; Open MPI's mpirun serves none (PMIx only), so
each broker refuses in one line instead of becoming a silent instance of size 1."""

import os
import shutil
import subprocess

import pytest

from flux_launch.testing import BIN

pytestmark = [pytest.mark.mpi, pytest.mark.e2e]
FLUX = os.path.join(BIN, "flux")


def _run(cmd, tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path), OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.pop("FLUX_URI", None)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.skipif(not shutil.which("mpiexec.hydra"), reason="MPICH's mpiexec.hydra is not installed")
def test_hydra_starts_one_instance(tmp_path):
    r = _run(["mpiexec.hydra", "-n", "3", FLUX, "start", "sh", "-c", "echo size=$(flux getattr size)"], tmp_path)
    assert r.returncode == 0 and r.stdout.split() == ["size=3"], r


@pytest.mark.skipif(not shutil.which("mpirun.openmpi"), reason="Open MPI's mpirun is not installed")
def test_openmpi_mpirun_is_refused_in_one_line(tmp_path):
    r = _run(["mpirun.openmpi", "--oversubscribe", "-np", "2", FLUX, "start", "sh", "-c",
              "echo size=$(flux getattr size)"], tmp_path)
    assert r.returncode != 0 and "size=" not in r.stdout, r
    lines = [line for line in r.stderr.splitlines() if line.startswith("flux-broker:")]
    # mpirun aborts the others once one exits: the second may die before it says so
    assert 1 <= len(lines) <= 2, r.stderr
    assert all("Open MPI's mpirun (2 processes), which serves no PMI-1" in line and "mpiexec.hydra" in line
               for line in lines), r.stderr
