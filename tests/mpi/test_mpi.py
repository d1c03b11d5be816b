"""Real MPI programs (MPICH, mpi4py, Open MPI, our libpmi) launched by flux run
at one, two and four brokers, and the PMI faults that must end a job cleanly.

Every test checks the rank and size each task reports: without PMI, MPICH would
silently run N singletons (each "rank 0 of 1").
"""

import re
import sys

import pytest

pytestmark = [pytest.mark.mpi, pytest.mark.e2e]

HELLO = re.compile(r"hello from rank (\d+) of (\d+) on \S+, sum (\d+)")
OMPI_ROOT = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}


def check_hello(res, n):
    found = [tuple(map(int, m.groups())) for m in HELLO.finditer(res.stdout)]
    assert sorted(r for r, _, _ in found) == list(range(n)), res.stdout + res.stderr
    assert {size for _, size, _ in found} == {n}, res.stdout
    assert {total for _, _, total in found} == {n * (n - 1) // 2}, res.stdout


@pytest.mark.parametrize("args,n", [(["-N1", "-n2"], 2), (["-N2", "-n4"], 4), (["-N4", "-n8"], 8)],
                         ids=["1node", "2nodes", "4nodes"])
def test_mpich_hello(inst4, mpich, args, n):
    check_hello(inst4.flux("run", *args, mpich["hello"], timeout=120), n)


def test_mpich_hello_16_ranks_oversubscribed(inst4, mpich):
    """16 ranks on this 2-core machine: per-resource runs 2 tasks per allocated core."""
    res = inst4.flux("run", "-N4", "-n8", "-o", "per-resource.type=core", "-o", "per-resource.count=2",
                     mpich["hello"], timeout=180)
    check_hello(res, 16)


@pytest.mark.parametrize("args,n", [(["-N1", "-n2"], 2), (["-N4", "-n8"], 8)], ids=["1node", "4nodes"])
def test_mpich_ring(inst4, mpich, args, n):
    res = inst4.flux("run", *args, mpich["ring"], timeout=120)
    assert res.stdout.strip() == f"ring {n} token {2 * n}", res.stdout + res.stderr


def test_mpi_abort_ends_the_job_with_its_message(inst2, mpich):
    res = inst2.flux("run", "-N2", "-n2", mpich["abort"], check=False, timeout=60)
    assert res.returncode != 0
    assert "MPI_Abort" in res.stderr and "exit code 5" in res.stderr, res.stderr
    assert "rank 1 aborting" in res.stderr
    check_hello(inst2.flux("run", "-N2", "-n2", mpich["hello"], timeout=60), 2)  # the instance goes on


def test_mpi4py_allreduce_across_brokers(inst2):
    res = inst2.flux("run", "-N2", "-n4", sys.executable, "-c",
                     "from mpi4py import MPI; c = MPI.COMM_WORLD; print(c.allreduce(c.rank))", timeout=120)
    assert res.stdout.split() == ["6"] * 4, res.stdout + res.stderr


@pytest.mark.parametrize("bench,expect", [("helloworld", r"Hello, World! I am process (\d) of 4"),
                                          ("ringtest", r"time for \d+ loops")])
def test_mpi4py_bench(inst2, bench, expect):
    res = inst2.flux("run", "-n4", sys.executable, "-m", "mpi4py.bench", bench, timeout=120)
    found = re.findall(expect, res.stdout)
    if bench == "helloworld":
        assert sorted(found) == ["0", "1", "2", "3"], res.stdout
    else:
        assert len(found) == 1, res.stdout + res.stderr


def test_libpmi_through_the_shell(inst2, pmi_client):
    res = inst2.flux("run", "-N2", "-n4", pmi_client, timeout=60)
    lines = sorted(res.stdout.splitlines())
    # the two shells run on one host: PMI_process_mapping makes it one node of 4 (shared memory)
    assert lines == [f"rank {r} of 4: 4 keys ok, clique 4" for r in range(4)], res.stdout + res.stderr


def test_libpmi_singleton(pmi_client):
    import subprocess

    res = subprocess.run([pmi_client], capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin"})
    assert res.stdout.strip() == "rank 0 of 1: 1 keys ok, clique 1", res.stderr


def test_openmpi_hello_across_brokers(inst2, ompi_hello):
    res = inst2.flux("run", "-N2", "-n4", ompi_hello, timeout=120, env=OMPI_ROOT)
    check_hello(res, 4)


def test_pmi_garbage_fails_the_job_cleanly(inst2, mpich):
    code = "import os, time; os.write(int(os.environ['PMI_FD']), b'\\xff\\xfe garbage\\n'); time.sleep(30)"
    res = inst2.flux("run", "-N2", "-n2", sys.executable, "-c", code, check=False, timeout=60)
    assert res.returncode != 0
    # both tasks send garbage: whichever shell sees it first names its task
    assert "PMI protocol error" in res.stderr and re.search(r"task [01]: PMI protocol error", res.stderr), \
        res.stderr
    check_hello(inst2.flux("run", "-N2", "-n2", mpich["hello"], timeout=60), 2)


def test_rank_gone_before_the_barrier_does_not_hang(inst2):
    code = ("import os, sys\n"
            "if os.environ['FLUX_TASK_RANK'] == '1': sys.exit(3)\n"
            "from mpi4py import MPI\n"
            "print('init done')\n")
    res = inst2.flux("run", "-N2", "-n2", "-o", "exit-timeout=1s", sys.executable, "-c", code,
                     check=False, timeout=60)
    assert res.returncode != 0
    assert "exit-timeout" in res.stderr or "PMI" in res.stderr, res.stderr


def test_pmi_off_gives_no_pmi_fd(inst2):
    res = inst2.flux("run", "-o", "pmi=off", "sh", "-c", "echo fd=${PMI_FD:-none}", timeout=30)
    assert res.stdout.strip() == "fd=none"


def test_verbose_2_traces_pmi_lines(inst2, mpich):
    res = inst2.flux("run", "-n1", "-o", "verbose=2", mpich["hello"], timeout=60)
    assert "flux-shell[0]: TRACE: pmi-simple: 0: C: cmd=init" in res.stderr, res.stderr
    assert "pmi-simple: 0: S: cmd=response_to_init" in res.stderr, res.stderr


def test_eof_mid_line_ends_cleanly(inst2):
    """A task that writes half a PMI line and exits: no hang, the instance goes on."""
    code = "import os; os.write(int(os.environ['PMI_FD']), b'cmd=init pmi_ver'); raise SystemExit(4)"
    res = inst2.flux("run", "-n1", sys.executable, "-c", code, check=False, timeout=60)
    assert res.returncode == 4, res.stderr
    assert inst2.flux("run", "-n1", "true", timeout=30).returncode == 0


@pytest.mark.parametrize("k", [1, 3])
def test_exchange_tree_fanout(inst4, mpich, k):
    """pmi-simple.exchange.k shapes the tree of shells: a chain (1) or wider (3)."""
    res = inst4.flux("run", "-N4", "-n4", "-o", f"pmi-simple.exchange.k={k}", mpich["hello"], timeout=120)
    check_hello(res, 4)


def test_mpich_steps_in_a_batch_job_on_2_of_4_nodes(inst4, mpich, tmp_path):
    """Use cases 4.3/4.4: a batch script on 2 nodes of a 4-broker instance runs
    an MPICH program with `flux run -n4` and with `flux run` (no options: the
    whole allocation, 2 nodes x 2 cores); both see rank and size right."""
    from types import SimpleNamespace

    hello = mpich["hello"]
    script = tmp_path / "steps.sh"
    script.write_text(f"#!/bin/sh\n#FLUX: -N2\nflux run -n4 {hello} > {tmp_path}/n4.out\n"
                      f"flux run {hello} > {tmp_path}/all.out\n"
                      f"flux jobs -a -n -o '{{nnodes}} {{ntasks}} {{status}}'\n")
    jobid = inst4.flux("batch", "--output", str(tmp_path / "batch.out"), str(script)).stdout.strip()
    inst4.flux("job", "wait-event", "-t", "120", jobid, "clean")
    assert "status=0" in inst4.flux("job", "eventlog", jobid).stdout.split("finish", 1)[1].splitlines()[0]
    check_hello(SimpleNamespace(stdout=(tmp_path / "n4.out").read_text(), stderr=""), 4)
    check_hello(SimpleNamespace(stdout=(tmp_path / "all.out").read_text(), stderr=""), 4)
    # both steps ran inside the nested instance, each spread over its 2 nodes
    assert sorted((tmp_path / "batch.out").read_text().split("\n")[:2]) == ["2 4 COMPLETED"] * 2, \
        (tmp_path / "batch.out").read_text()
    assert inst4.flux("jobs", "-n", "-o", "{nnodes}", jobid).stdout.strip() == "2"
