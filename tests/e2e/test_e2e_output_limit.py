"""``-o output.limit`` is the job's, all tasks on all nodes together: a job whose
nodes each write 60% of it loses what goes beyond the limit, with the warning.
(It used to be counted per shell: each node could write the whole limit.)"""

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
    assert "output limit" in r.stderr and "exceeded" in r.stderr, r.stderr


def test_under_the_limit_nothing_is_lost(inst2):
    r = inst2.flux("run", "-N2", "-n2", "-o", f"output.limit={2 * 60000 + 1000}", "python3", "-c", WRITER)
    assert len(r.stdout) == 2 * 60000 and "output limit" not in r.stderr, r.stderr
