"""Slurm as the outer launcher: a private one-node cluster (conftest.py) whose
``srun --mpi=pmi2`` starts MPI programs and ``flux start`` the way a cluster's
users do. The first tests prove the cluster itself (so a failure further down is
ours, not the harness's): tasks run, the pmi2 plugin serves PMI-2 on ``PMI_FD``,
MPICH boots from it. Then brokers started by srun form one instance."""

import glob
import os
import sys

import pytest

import flux_launch
from flux_launch.testing import BIN

pytestmark = [pytest.mark.slurm, pytest.mark.e2e]
FLUX = os.path.join(BIN, "flux")
HERE = os.path.dirname(os.path.abspath(__file__))
OUR_LIB = os.path.join(os.path.dirname(flux_launch.__file__), "lib")
SIZE = ["sh", "-c", "echo size=$(flux getattr size)"]


def _ok(r, slurm):
    assert r.returncode == 0, f"{r.args} exited {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}\n" \
                              f"{slurm.logs()}"
    return r.stdout.splitlines()


def test_srun_runs_two_tasks(slurm):
    lines = _ok(slurm.run(["srun", "-N1", "-n2", "hostname"]), slurm)
    assert lines == [slurm.node, slurm.node]


def test_srun_pmi2_sets_pmi_environment(slurm):
    r = slurm.run(["srun", "-n2", "--mpi=pmi2", "sh", "-c",
                   'echo "$SLURM_PROCID $PMI_RANK $PMI_SIZE ${PMI_FD:+fd} ${PMI_JOBID:+jobid}"'])
    assert sorted(_ok(r, slurm)) == ["0 0 2 fd jobid", "1 1 2 fd jobid"]


def test_srun_pmi2_serves_pmi2_wire(slurm):
    r = slurm.run(["srun", "-n2", "--mpi=pmi2", sys.executable, os.path.join(HERE, "pmi2_probe.py")])
    lines = sorted(_ok(r, slurm))
    assert [line.split(" mapping=")[0] for line in lines] == \
        ["rank=0 size=2 pmi-version=2", "rank=1 size=2 pmi-version=2"], lines
    # both tasks on one node: the block (start node 0, 1 node, 2 per node)
    assert all("mapping=(vector,(0,1,2))" in line for line in lines), lines
    assert lines[0].endswith("neighbour=v=1,tcp://127.0.0.1:1/x"), lines
    assert lines[1].endswith("neighbour=v=0,tcp://127.0.0.1:1/x"), lines


def test_mpich_hello_under_srun_pmi2(slurm, mpi_hello):
    lines = _ok(slurm.run(["srun", "-n2", "--mpi=pmi2", mpi_hello]), slurm)
    assert sorted(line.split(" on ")[0] for line in lines) == \
        ["hello from rank 0 of 2", "hello from rank 1 of 2"], lines


def _library(where, name):
    """Our ``name`` (built by setup.py) or Slurm's (Debian's libpmi0, libpmi2-0),
    else the test is skipped."""
    if where == "ours":
        path = os.path.join(OUR_LIB, name)
    else:
        path = next(iter(sorted(glob.glob(f"/usr/lib*/{name}") + glob.glob(f"/usr/lib/*/{name}"))), None)
    if path is None or not os.path.exists(path):
        pytest.skip(f"{where} {name} is not installed ({'setup.py builds it' if where == 'ours' else 'libpmi0/2-0'})")
    return path


@pytest.mark.parametrize("method", [None, ("simple1",), ("simple2",), ("libpmi2", "slurm", "libpmi2.so.0"),
                                    ("libpmi2", "ours", "libpmi2.so")],
                         ids=["default", "pmi1-wire", "pmi2-wire", "slurm-libpmi2", "our-libpmi2"])
def test_flux_start_under_srun_is_one_instance(slurm, method):
    """Two brokers started by srun form one instance of size 2 whichever way
    they speak to the pmi2 plugin (the default picks the PMI-2 wire: srun sets
    PMI_JOBID): the initial program runs once, on rank 0."""
    env = {}
    if method:
        name, *lib = method
        env["FLUX_PMI_CLIENT_METHODS"] = f"{name}:{_library(*lib)}" if lib else name
    r = slurm.run(["srun", "-N1", "-n2", "--mpi=pmi2", FLUX, "start", *SIZE], env=env)
    assert _ok(r, slurm) == ["size=2"]


def test_flux_start_under_srun_without_pmi_plugin_boots_from_slurm_libpmi(slurm, tmp_path):
    """``srun --mpi=none`` serves no PMI_FD, but Slurm's PMI-1 library talks to
    srun itself: found through FLUX_PMI_CLIENT_SEARCHPATH by the default methods
    (as on clusters where flux-core boots this way), it forms one instance. (It
    must be loaded RTLD_GLOBAL: its auth plugin needs libslurm's symbols, else the
    process dies in PMI_KVS_Put.)"""
    os.symlink(_library("slurm", "libpmi.so.0"), tmp_path / "libpmi.so")
    r = slurm.run(["srun", "-N1", "-n2", "--mpi=none", FLUX, "start", *SIZE],
                  env={"FLUX_PMI_CLIENT_SEARCHPATH": str(tmp_path)})
    assert _ok(r, slurm) == ["size=2"]


@pytest.mark.parametrize("shape", [["-n2"], ["-N2", "-n2"]], ids=["n2", "N2n2"])
def test_flux_run_mpi_hello_in_instance_under_srun(slurm, mpi_hello, shape):
    """The acceptance: ``srun -N1 -n2 --mpi=pmi2 flux start flux run -n2 mpi_hello``;
    with -N2 the job needs both brokers, so it cannot pass on a size-1 instance."""
    r = slurm.run(["srun", "-N1", "-n2", "--mpi=pmi2", FLUX, "start", FLUX, "run", *shape, mpi_hello])
    lines = _ok(r, slurm)
    assert sorted(line.split(" on ")[0] for line in lines) == \
        ["hello from rank 0 of 2", "hello from rank 1 of 2"], r
    assert all(line.endswith("sum 1") for line in lines), lines


def test_flux_start_under_srun_without_pmi_is_never_n_singletons(slurm):
    """``srun --mpi=none`` serves no PMI_FD: the brokers either find another way
    to form one instance (Slurm's libpmi through srun) or refuse in one line that
    says to use ``--mpi=pmi2``; never two silent instances of size 1."""
    r = slurm.run(["srun", "-N1", "-n2", "--mpi=none", FLUX, "start", "sh", "-c",
                   "echo size=$(flux getattr size)"])
    if r.returncode == 0:
        assert r.stdout.split() == ["size=2"], r
    else:
        assert "size=" not in r.stdout, r
        lines = [line for line in r.stderr.splitlines() if line.startswith("flux-broker:")]
        assert lines and all("--mpi=pmi2" in line for line in lines), r.stderr
