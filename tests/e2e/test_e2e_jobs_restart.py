"""Jobs across a restart on the same ``-Sstatedir``: old jobs stay listed as
inactive with their results, and new job ids are larger than the old ones."""

import pytest

from flux_launch.testing import Instance

pytestmark = pytest.mark.e2e


def _wait_clean(inst, jobid):
    r = inst.flux("job", "wait-event", "-t", "30", jobid, "clean", check=False, timeout=40)
    assert r.returncode == 0, f"{r.stderr}\n{inst.flux('job', 'eventlog', jobid, check=False).stdout}"


@pytest.fixture(scope="module")
def restarted(tmp_path_factory):
    """Run a few jobs, restart on the same statedir; returns what both saw."""
    statedir = tmp_path_factory.mktemp("statedir")
    attrs = {"statedir": statedir}
    old = {}
    with Instance(size=1, attrs=attrs) as inst:
        inst.flux("run", "--job-name=ok", "true")
        old["COMPLETED"] = inst.flux("job", "last").stdout.strip()
        old["FAILED"] = inst.flux("submit", "--job-name=bad", "sh", "-c", "exit 3").stdout.strip()
        old["CANCELED"] = inst.flux("submit", "--job-name=gone", "sleep", "60").stdout.strip()
        inst.flux("cancel", old["CANCELED"])
        for jobid in old.values():
            _wait_clean(inst, jobid)
        before = inst.flux("jobs", "-a", "-n", "-o", "{id.f58} {name} {result} {returncode}").stdout
        assert inst.stop() == 0
    with Instance(size=1, attrs=attrs) as inst:
        listing = inst.flux("jobs", "-a", "-n", "-o", "{id.f58} {name} {result} {returncode}").stdout
        eventlog = inst.flux("job", "eventlog", old["FAILED"], check=False)
        new = inst.flux("submit", "true").stdout.strip()
        _wait_clean(inst, new)
        new_dec = int(inst.flux("job", "id", new).stdout)
        old_dec = {k: int(inst.flux("job", "id", v).stdout) for k, v in old.items()}
        after_new = inst.flux("jobs", "-a", "-n", "-o", "{id.f58} {result}").stdout
        log = inst.log()
    return {"old": old, "before": before, "listing": listing, "eventlog": eventlog, "new": new,
            "new_dec": new_dec, "old_dec": old_dec, "after_new": after_new, "log": log}


def test_new_job_ids_are_larger(restarted):
    assert all(restarted["new_dec"] > d for d in restarted["old_dec"].values()), restarted
    assert f"{restarted['new']} COMPLETED" in restarted["after_new"].splitlines(), restarted["after_new"]


def test_before_restart_listing(restarted):
    rows = {line.split()[0]: line.split()[1:] for line in restarted["before"].splitlines()}
    old = restarted["old"]
    assert rows[old["COMPLETED"]] == ["ok", "COMPLETED", "0"]
    assert rows[old["FAILED"]] == ["bad", "FAILED", "3"]
    assert rows[old["CANCELED"]][:2] == ["gone", "CANCELED"]


def test_old_jobs_listed_after_restart(restarted):
    why = f"{restarted['listing']}\nbroker log:\n{restarted['log']}"
    rows = {line.split()[0]: line.split()[1:] for line in restarted["listing"].splitlines()}
    old = restarted["old"]
    assert rows.get(old["COMPLETED"]) == ["ok", "COMPLETED", "0"], why
    assert rows.get(old["FAILED"]) == ["bad", "FAILED", "3"], why
    assert rows.get(old["CANCELED"], [])[:2] == ["gone", "CANCELED"], why
    ev = restarted["eventlog"]
    assert ev.returncode == 0 and "finish status=768" in ev.stdout, ev


def test_running_job_at_shutdown_is_inactive_after_restart(tmp_path):
    attrs = {"statedir": tmp_path / "state"}
    with Instance(size=1, attrs=attrs) as inst:
        jobid = inst.flux("submit", "sleep", "60").stdout.strip()
        inst.flux("job", "wait-event", "-t", "30", jobid, "start", timeout=40)
        inst.stop()
    with Instance(size=1, attrs=attrs) as inst:
        # whatever it recorded, it must not be active any more, nor hold resources
        active = inst.flux("jobs", "-n", "-o", "{id.f58}").stdout.split()
        assert jobid not in active, inst.log()
        r = inst.flux("run", "-n2" if _ncores(inst) >= 2 else "-n1", "true", timeout=30)
        assert r.returncode == 0


def _ncores(inst):
    return int(inst.flux("resource", "list", "-n", "-s", "free").stdout.split()[2])
