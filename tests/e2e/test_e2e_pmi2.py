"""PMI-2 through real job shells: the Python wire client and libpmi2.so as tasks
across two brokers, PMI-1 and PMI-2 tasks mixed in one job, garbage on a PMI-2
connection, and brokers of a nested instance that boot over PMI-2 (the wire, or
a library found through FLUX_PMI_CLIENT_SEARCHPATH).

Debian's MPICH 4.0 cannot be told to speak PMI-2 (it is built with the PMI-1
client only: no "fullinit" in libmpich.so), so MPI programs are not run here.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

import flux_launch
from flux_launch.testing import BIN, Instance, clean_env, flux

pytestmark = pytest.mark.e2e

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
LIBDIR = os.path.join(os.path.dirname(flux_launch.__file__), "lib")

# A task that speaks PMI-2 (PMI2Client) or PMI-1 (PMIClient) by its rank's parity
# when MIXED is set, else PMI-2; it puts a key with ';' in it, fences, reads every
# rank's key and the job attributes, and prints one line.
TASK = r"""
import os
from flux_launch.client.pmi2_client import PMI2Client
from flux_launch.client.pmi_client import PMIClient
rank = int(os.environ["PMI_RANK"])
v1 = os.environ.get("MIXED") and rank % 2
pmi = (PMIClient if v1 else PMI2Client).from_env(timeout=30)
pmi.init()
pmi.put(f"k{rank}", f"v;{rank}")
pmi.barrier()
vals = [pmi.get(f"k{r}") for r in range(pmi.size)]
assert vals == [f"v;{r}" for r in range(pmi.size)], vals
mapping = pmi.get("PMI_process_mapping")
extra = ""
if not v1:
    try:
        pmi.get("no-such-key")
        raise SystemExit("a missing key was found")
    except KeyError:
        pass
    if os.environ["FLUX_TASK_LOCAL_ID"] == "0":
        pmi.put_node_attr("leader", f"rank {rank}")
    extra = f" universe {pmi.universe_size()} leader {pmi.get_node_attr('leader', wait=True)}"
pmi.barrier()
pmi.finalize()
print(f"rank {rank} of {pmi.size} pmi{1 if v1 else 2}: keys ok, map {mapping}{extra}")
"""


@pytest.fixture(scope="module")
def inst2():
    with Instance(size=2) as inst:
        yield inst


@pytest.fixture(scope="module")
def libpmi2_dir(tmp_path_factory):
    """pmi/libpmi2.c built here (the sources under test, whatever setup.py built)."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc not found: `make test` installs it (ci/setup.sh)")
    d = tmp_path_factory.mktemp("libpmi2")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(d / "libpmi2.so"),
                    os.path.join(ROOT, "pmi", "libpmi2.c")], check=True, capture_output=True, text=True)
    return str(d)


@pytest.fixture(scope="module")
def pmi2_prog(libpmi2_dir):
    out = os.path.join(libpmi2_dir, "pmi2_prog")
    subprocess.run(["gcc", "-O1", "-Wall", "-Werror", "-I", os.path.join(ROOT, "pmi"), "-o", out,
                    os.path.join(HERE, "pmi2_prog.c"), f"-L{libpmi2_dir}", "-lpmi2",
                    f"-Wl,-rpath,{libpmi2_dir}"], check=True, capture_output=True, text=True)
    return out


def _leaders_agree(found):
    """Node attributes are per shell: two shells here, so two leaders (both shells
    are on this host, so PMI_process_mapping may show one node)."""
    leaders = {leader for _, leader in found}
    assert len(leaders) == 2, found


def test_python_pmi2_client_across_two_brokers(inst2):
    res = inst2.flux("run", "-N2", "-n4", "-o", "verbose=2", sys.executable, "-c", TASK, timeout=90)
    found = re.findall(r"rank (\d) of 4 pmi2: keys ok, map \(vector,\S+\) universe 4 leader (rank \d)",
                       res.stdout)
    assert sorted(r for r, _ in found) == ["0", "1", "2", "3"], res.stdout + res.stderr
    _leaders_agree(found)
    # the shell traced the PMI-2 wire: the init line, then frames
    assert "C: cmd=init pmi_version=2 pmi_subversion=0" in res.stderr, res.stderr
    assert re.search(r"S: cmd=fullinit-response;rc=0;pmi-version=2;pmi-subversion=0;rank=\d;size=4;",
                     res.stderr), res.stderr
    assert "C: cmd=kvs-fence;" in res.stderr


def test_c_program_on_libpmi2_across_two_brokers(inst2, pmi2_prog):
    res = inst2.flux("run", "-N2", "-n4", pmi2_prog, timeout=90)
    found = re.findall(r"rank (\d) of 4: 4 keys ok, map \(vector,\S+\), universe 4, node leader (rank \d)",
                       res.stdout)
    assert sorted(r for r, _ in found) == ["0", "1", "2", "3"], res.stdout + res.stderr
    _leaders_agree(found)


def test_libpmi2_singleton(pmi2_prog):
    res = subprocess.run([pmi2_prog], capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin", "FLUX_TASK_LOCAL_ID": "0"})
    assert res.stdout.strip() == ("rank 0 of 1: 1 keys ok, map (vector,(0,1,1)), universe 1, "
                                  "node leader rank 0"), res.stderr


def test_pmi1_and_pmi2_tasks_mixed_in_one_job(inst2):
    res = inst2.flux("run", "-N2", "-n4", "--env=MIXED=1", sys.executable, "-c", TASK, timeout=90)
    lines = sorted(res.stdout.splitlines())
    assert [ln.split(":")[0] for ln in lines] == ["rank 0 of 4 pmi2", "rank 1 of 4 pmi1", "rank 2 of 4 pmi2",
                                                  "rank 3 of 4 pmi1"], res.stdout + res.stderr


@pytest.mark.parametrize("garbage", [b"xyzzy!garbage", b"12    cmd=kvs-put;k", b"5     \xff\xfe\x00\x01\x02"],
                         ids=["header", "unterminated", "binary"])
def test_garbage_on_a_pmi2_connection_fails_the_job_cleanly(inst2, garbage):
    code = ("import os, time; fd = int(os.environ['PMI_FD'])\n"
            "os.write(fd, b'cmd=init pmi_version=2 pmi_subversion=0\\n'); os.read(fd, 100)\n"
            f"os.write(fd, {garbage!r}); time.sleep(30)\n")
    res = inst2.flux("run", "-N2", "-n2", sys.executable, "-c", code, check=False, timeout=60)
    assert res.returncode != 0
    assert re.search(r"task [01]: PMI protocol error: .*PMI-2", res.stderr), res.stderr
    assert re.search(r"ERROR: pmi-simple: task [01]: .*PMI-2", res.stderr), res.stderr
    # the instance and its shells go on
    res = inst2.flux("run", "-N2", "-n2", sys.executable, "-c", TASK, timeout=60)
    assert len(re.findall(r"pmi2: keys ok", res.stdout)) == 2, res.stdout + res.stderr


BROKERS = ("flux", "start", "sh", "-c", "echo size=$(flux getattr size) level=$(flux getattr instance-level)")


@pytest.mark.parametrize("env", [
    {"FLUX_PMI_CLIENT_METHODS": "simple2"},
    {"PMI_JOBID": "slurm-style"},  # what Slurm's --mpi=pmi2 sets: "simple" speaks PMI-2
    {"FLUX_PMI_CLIENT_METHODS": "libpmi2 single", "FLUX_PMI_CLIENT_SEARCHPATH": "LIBPMI2"},
], ids=["methods-simple2", "pmi-jobid", "libpmi2-searchpath"])
def test_nested_brokers_boot_over_pmi2(inst2, libpmi2_dir, env):
    # env(1) in the command: the shell drops PMI_* and SLURM_* from a job's environment
    env = [f"{k}={v.replace('LIBPMI2', f'/nonexistent:{libpmi2_dir}')}" for k, v in env.items()]
    res = inst2.flux("run", "-N2", "-n2", "-o", "verbose=2", "env", *env, *BROKERS, timeout=120)
    assert res.stdout.split() == ["size=2", "level=1"], res.stdout + res.stderr
    assert "C: cmd=init pmi_version=2" in res.stderr and "C: cmd=kvs-fence;" in res.stderr, res.stderr
    assert "pmi_version=1" not in res.stderr, res.stderr


def test_nested_brokers_boot_over_the_pmi1_library(inst2):
    env = [f"--env=FLUX_PMI_CLIENT_SEARCHPATH={LIBDIR}", "--env=FLUX_PMI_CLIENT_METHODS=libpmi"]
    res = inst2.flux("run", "-N2", "-n2", "-o", "verbose=2", *env, *BROKERS, timeout=120)
    assert res.stdout.split() == ["size=2", "level=1"], res.stdout + res.stderr
    assert "C: cmd=init pmi_version=1" in res.stderr, res.stderr


def test_simple_falls_back_to_pmi1_when_pmi2_is_refused():
    # flux start --test-size serves PMI-1 only: a PMI-2 init is refused, the broker retries PMI-1
    res = flux("start", "--test-size=2", "flux", "getattr", "size", env={"PMI_JOBID": "x"}, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == "2", res.stderr
    res = flux("start", "--test-size=2", "true", env={"FLUX_PMI_CLIENT_METHODS": "simple2"}, timeout=60)
    assert res.returncode != 0
    assert "PMI bootstrap failed: PMI-2 init refused" in res.stderr, res.stderr


def test_a_bad_method_list_is_one_line():
    res = flux("start", "true", env={"FLUX_PMI_CLIENT_METHODS": "pmix"}, timeout=60)
    assert res.returncode != 0
    assert "FLUX_PMI_CLIENT_METHODS: unknown method 'pmix'" in res.stderr, res.stderr


def test_brokers_boot_over_pmi2_under_hydra():
    """MPICH's mpiexec.hydra serves PMI-2 too: a foreign server for our client."""
    hydra = shutil.which("mpiexec.hydra")
    if hydra is None:
        pytest.fail("mpiexec.hydra not found: `make test` installs MPICH (ci/setup.sh)")
    res = subprocess.run([hydra, "-n", "2", "env", "FLUX_PMI_CLIENT_METHODS=simple2", os.path.join(BIN, "flux"),
                          "start", "flux", "getattr", "size"], capture_output=True, text=True, timeout=90,
                         env=clean_env())
    assert res.returncode == 0 and res.stdout.split() == ["2"], res.stdout + res.stderr
