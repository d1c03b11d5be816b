"""MPMD with MPICH: ``flux multi-prog`` runs two executables in one job, and
they share one MPI_COMM_WORLD (the PMI exchange spans both)."""

import shutil

import pytest

pytestmark = pytest.mark.mpi


def test_two_executables_one_comm_world(inst2, mpich, tmp_path):
    other = tmp_path / "hello_other"
    shutil.copy(mpich["hello"], other)
    conf = tmp_path / "mpmd.conf"
    conf.write_text(f"0-1 {mpich['hello']}\n2-3 {other}\n")
    r = inst2.flux("run", "-N2", "-n4", "flux", "multi-prog", str(conf), timeout=120)
    lines = sorted(r.stdout.splitlines())
    assert len(lines) == 4 and all(" of 4 on " in ln and ln.endswith("sum 6") for ln in lines), r.stdout
    assert [ln.split()[3] for ln in lines] == ["0", "1", "2", "3"]
