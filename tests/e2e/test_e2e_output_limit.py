"""``-o output.limit`` is the job's, all tasks on all nodes together: a job whose
nodes each write 60% of it loses what goes beyond the limit, with one warning;
one node may write all of it. (It used to be counted per shell: each node could
write the whole limit.)"""

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e

LIMIT = 100000
# each task writes 60% of the limit, in 100-byte lines
WRITER = "import sys\nfor _ in range(600):\n    sys.stdout.write('x' * 99 + '\\n')\n"


@pytest.fixture(scope="module")
def inst2():
    with Instance(size=2) as inst:
        yield inst


@pytest.mark.parametrize("shape", [["-N2", "-n2"], ["-N1", "-n2"], ["-N2", "-n4"]])
def test_limit_is_job_wide(inst2, shape):
    r = inst2.flux("run", *shape, "-o", f"output.limit={LIMIT}", "python3", "-c", WRITER, check=False)
    assert r.returncode == 0, r.stderr
    assert 0 < len(r.stdout) <= LIMIT, (len(r.stdout), r.stderr)
    assert r.stderr.count("output limit") == 1 and "exceeded" in r.stderr, r.stderr


def test_under_the_limit_nothing_is_lost(inst2):
    r = inst2.flux("run", "-N2", "-n2", "-o", f"output.limit={2 * 60000 + 1000}", "python3", "-c", WRITER)
    assert len(r.stdout) == 2 * 60000 and "output limit" not in r.stderr, r.stderr


def test_one_node_may_write_the_whole_limit(inst2):
    """Only task 0 writes (as many MPI programs do): 90% of the limit, all kept, on a
    two-node job (a per-node share of the limit cut it at half)."""
    writer = "import os, sys\nif os.environ['FLUX_TASK_RANK'] == '0':\n" \
             "    for _ in range(900):\n        sys.stdout.write('x' * 99 + '\\n')\n"
    r = inst2.flux("run", "-N2", "-n2", "-o", f"output.limit={LIMIT}", "python3", "-c", writer)
    assert len(r.stdout) == 90000 and "output limit" not in r.stderr, (len(r.stdout), r.stderr)


def test_what_is_kept_has_no_hole(inst2):
    """Past the limit every later batch is dropped, so each task's output is a
    prefix of what it wrote (lines numbered in order, none missing before the cut)."""
    writer = "import sys\nfor i in range(3000):\n    sys.stdout.write('%06d' % i + 'y' * 93 + '\\n')\n" \
             "    sys.stdout.flush() if i % 50 == 0 else None\n"
    r = inst2.flux("run", "-N2", "-n2", "-l", "-o", f"output.limit={LIMIT}", "python3", "-c", writer)
    for rank in ("0", "1"):
        nums = [int(line.split(": ", 1)[1][:6]) for line in r.stdout.splitlines() if line.startswith(rank + ": ")]
        assert nums == list(range(len(nums))), (rank, nums[:5], len(nums))
    assert len(r.stdout) <= LIMIT + 6 * 3000, len(r.stdout)  # the labels are not counted
