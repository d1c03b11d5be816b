"""Shared fixtures: real instances that are always torn down, with broker logs
printed when a test fails."""

import pytest

from flux_launch.testing import Instance


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture
def make_instance(request):
    """``make_instance(size=N, attrs={...})`` starts an instance; all are stopped at
    the end of the test, and their broker logs printed if the test failed."""
    started = []

    def make(size=1, attrs=None, **kw):
        inst = Instance(size=size, attrs=attrs, **kw)
        started.append(inst)
        return inst.start()

    yield make
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for inst in started:
        if failed:
            print(f"\n--- broker log (size {inst.size}) ---\n{inst.log()}")
        inst.close()


@pytest.fixture(scope="module")
def instance4():
    """One 4-broker instance shared by a module's read-only tests."""
    with Instance(size=4) as inst:
        yield inst
