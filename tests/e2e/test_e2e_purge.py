"""Inactive jobs are purged (flux-core's job-manager.inactive-num-limit and
inactive-age-limit, and ``flux job purge``): the job manager forgets them, their
KVS keys and output blob files go, the state directory stops growing, and a
restart loads only the jobs kept. bench/purge.py is the long form (3 x 10,000)."""

import time

import pytest

from flux_launch.testing import Instance, flux

pytestmark = pytest.mark.e2e

OUTPUT_JOBS = 3  # each writes ~300 kB: its batches go to blob files
BURST = 120
KEEP = 20


def _size(statedir):
    """Bytes the state holds: the database's pages in use and the blob files. The
    file sizes lag behind: pages a purge freed leave content.sqlite (and the -wal
    is truncated back to its limit) only at sqlite's next checkpoint, which may or
    may not have run when a burst ends."""
    import sqlite3

    db = sqlite3.connect(f"file:{statedir / 'content.sqlite'}?mode=ro", uri=True)
    try:
        pages, free, size = (db.execute(f"PRAGMA {name}").fetchone()[0]
                             for name in ("page_count", "freelist_count", "page_size"))
    finally:
        db.close()
    return (pages - free) * size + sum(p.stat().st_size for p in (statedir / "blobs").iterdir())


def _blob_files(statedir):
    return sorted((statedir / "blobs").iterdir())


def _all_ids(inst):
    return inst.flux("jobs", "-a", "-n", "-o", "{id}").stdout.split()


def _wait_for_count(inst, count, timeout=30):
    """The ids of the jobs listed once there are ``count`` (the automatic purge runs
    a moment after jobs end, as flux-core's runs on its heartbeat)."""
    deadline = time.monotonic() + timeout
    while True:
        ids = _all_ids(inst)
        if len(ids) == count:
            return ids
        assert time.monotonic() < deadline, f"{len(ids)} jobs listed after {timeout}s, {count} expected"
        time.sleep(0.1)


def _burst(inst, statedir):
    """Jobs with big output first (so that they are the oldest), then many short ones."""
    for _ in range(OUTPUT_JOBS):
        inst.flux("run", "-o", "output.batch-timeout=0.2", "sh", "-c",
                  "head -c 300000 /dev/zero | tr '\\0' x", timeout=60)
    assert _blob_files(statedir), "the output jobs left no blob file: the test no longer tests blob reclaim"
    first = inst.flux("submit", "--cc=1-%d" % BURST, "true").stdout.split()
    inst.flux("queue", "drain", timeout=120)
    return first


def test_num_limit_bounds_jobs_keys_blobs_and_statedir_and_a_restart_loads_only_the_kept(tmp_path):
    statedir = tmp_path / "state"
    attrs = {"statedir": statedir, "job-manager.inactive-num-limit": KEEP}
    sizes = []
    with Instance(size=2, attrs=attrs) as inst:
        for _ in range(3):
            ids = _burst(inst, statedir)
            kept = _wait_for_count(inst, KEEP)
            # oldest inactive first: the jobs kept are this burst's (they end in parallel,
            # so not exactly its last KEEP), none of the output jobs or earlier bursts
            assert set(kept) <= set(ids), kept
            sizes.append(_size(statedir))
        gone = ids[0]
        r = inst.flux("job", "eventlog", gone, check=False)
        assert r.returncode == 1 and "no such job" in r.stderr, r
        path = inst.flux("job", "id", "--to=kvs", gone).stdout.strip()
        r = inst.flux("kvs", "get", f"{path}.eventlog", check=False)
        assert r.returncode == 1, f"the KVS still holds a purged job's eventlog: {r.stdout[:200]}"
        # the output jobs, the oldest, are gone, and their blob files with them
        assert _blob_files(statedir) == []
        assert inst.stop() == 0
    # without purging, each burst adds ~1 MB of blobs and its jobs' rows: the size stays
    assert sizes[2] <= sizes[0] * 1.25 + 65536, sizes
    # and the disk follows (the stop checkpointed the WAL): the pages purges freed were
    # given back, not kept in the file for reuse
    on_disk = sum(p.stat().st_size for p in statedir.rglob("*") if p.is_file())
    assert on_disk <= max(sizes) * 1.25 + 65536, (on_disk, sizes, sorted(p.name for p in statedir.rglob("*")))
    with Instance(size=1, attrs={"statedir": statedir}) as inst:
        again = _all_ids(inst)
        assert sorted(again) == sorted(kept), "a restart loaded other jobs than the ones kept"
        events = inst.flux("job", "eventlog", kept[0]).stdout.split("\n")
        assert events[-2].split()[1] == "clean", events


def test_flux_job_purge_counts_then_purges_oldest_first(make_instance):
    inst = make_instance(size=1)
    ids = []
    for _ in range(10):  # one after the other: they become inactive in this order
        ids.append(inst.flux("submit", "true").stdout.strip())
        inst.flux("job", "wait-event", ids[-1], "clean")
    r = inst.flux("job", "purge", "--num-limit=4")
    assert r.stdout == "use --force to purge 6 of 10 inactive jobs\n"
    assert len(_all_ids(inst)) == 10, "purge without --force removed jobs"
    r = inst.flux("job", "purge", "-f", "--num-limit=4", "--batch=4")  # more than one request
    assert r.stdout == "purged 6 inactive jobs, 4 remaining\n"
    assert set(_all_ids(inst)) == set(ids[-4:])
    r = inst.flux("job", "purge", "-f", ids[-1])
    assert r.stdout == "purged 1 inactive jobs, 3 remaining\n"
    r = inst.flux("job", "purge", "-f", "--age-limit=0")
    assert r.stdout == "purged 3 inactive jobs, 0 remaining\n"
    assert _all_ids(inst) == []
    from flux_launch.client.handle import Flux
    from flux_launch.core.jobid import JobID

    stats = Flux(inst.uri).rpc("job-manager.stats-get").get(timeout=10)
    # as flux-core's (flux-core#4300): the largest id ever given, purged or not
    assert stats == {"active_jobs": 0, "inactive_jobs": 0, "max_jobid": max(int(JobID(i)) for i in ids)}, stats


@pytest.mark.parametrize("args, message", [
    (["--num-limit=-5"], "flux-job: purge: if set, num limit must be >= 0"),
    (["-f", "--batch=0"], "flux-job: purge: batch must be >= 1 and <= 100"),
    (["--age-limit=soon"], "--age-limit: invalid Flux standard duration 'soon'"),
    (["--num-limit=x"], "--num-limit: invalid value 'x': expected an integer"),
])
def test_flux_job_purge_bad_input_is_one_line(instance_purge, args, message):
    r = instance_purge.flux("job", "purge", *args, check=False)
    assert r.returncode != 0 and message in r.stderr, r
    assert "Traceback" not in r.stderr


def test_an_active_or_unknown_job_is_not_purged(instance_purge):
    inst = instance_purge
    jobid = inst.flux("submit", "--urgency=0", "true").stdout.strip()  # held: stays active
    r = inst.flux("job", "purge", "-f", jobid, check=False)
    assert r.returncode == 1 and r.stderr.strip() == f"flux-job: purge: {jobid}: cannot purge an active job", r
    inst.flux("cancel", jobid)
    inst.flux("job", "wait-event", jobid, "clean")
    inst.flux("job", "purge", "-f", jobid)
    r = inst.flux("job", "purge", "-f", jobid, check=False)
    assert r.returncode == 1 and r.stderr.strip() == f"flux-job: purge: {jobid}: id not found", r


@pytest.fixture(scope="module")
def instance_purge():
    with Instance(size=1) as inst:
        yield inst


def test_age_limit_purges_jobs_once_they_are_old_enough(make_instance):
    inst = make_instance(size=1, attrs={"job-manager.inactive-age-limit": "1s"})
    jobid = inst.flux("submit", "true").stdout.strip()
    inst.flux("job", "wait-event", jobid, "clean")
    deadline = time.monotonic() + 30
    while jobid in _all_ids(inst):  # a timer purges it about 1 s after it ended
        assert time.monotonic() < deadline, "a job inactive for 30 s was not purged with an age limit of 1s"
        time.sleep(0.2)


@pytest.mark.parametrize("attr, value, message", [
    ("job-manager.inactive-num-limit", "-1", "job-manager.inactive-num-limit: must be an integer >= 0, not '-1'"),
    ("job-manager.inactive-num-limit", "many", "job-manager.inactive-num-limit: must be an integer >= 0"),
    ("job-manager.inactive-age-limit", "1y", "job-manager.inactive-age-limit: invalid FSD '1y'"),
])
@pytest.mark.parametrize("size", [1, 2])
def test_bad_purge_attributes_stop_flux_start_with_one_line(attr, value, message, size):
    r = flux("start", f"--test-size={size}", f"-S{attr}={value}", "true")
    assert r.returncode == 1, r
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_a_slow_reader_gets_all_of_a_purged_jobs_output(make_instance):
    """With inactive-num-limit=0 a job is purged as soon as it ends, but not while a
    flux run still reads its output held back by flow control (a slow pipe): every
    byte arrives and the job is purged once the reader is done."""
    inst = make_instance(size=1, attrs={"job-manager.inactive-num-limit": "0"})
    size = 30_000_000
    r = inst.run("sh", "-c", f"flux run sh -c \"head -c {size} /dev/zero | tr '\\\\0' a; echo\" | "
                 "(sleep 3; wc -c)", timeout=90)
    assert r.stdout.split() == [str(size + 1)], r
    _wait_for_count(inst, 0)


def test_a_write_under_a_purged_job_is_cleared_at_restart(tmp_path):
    """A straggler (a shell on a rank that came back) that appends to a purged job's
    guest eventlog re-creates its directory without jobspec or eventlog: a restart
    removes it instead of reporting an unreadable job at every start."""
    statedir = tmp_path / "state"
    with Instance(size=1, attrs={"statedir": statedir}) as inst:
        jobid = inst.flux("submit", "true").stdout.strip()
        inst.flux("job", "wait-event", jobid, "clean")
        path = inst.flux("job", "id", "--to=kvs", jobid).stdout.strip()
        inst.flux("job", "purge", "-f", jobid)
        inst.flux("kvs", "put", f"{path}.guest.output=late")
        assert inst.stop() == 0
    with Instance(size=1, attrs={"statedir": statedir}) as inst:
        assert _all_ids(inst) == []
        r = inst.flux("kvs", "get", f"{path}.guest.output", check=False)
        assert r.returncode == 1, r.stdout
        assert "unreadable" not in inst.log(), inst.log()
    with Instance(size=1, attrs={"statedir": statedir}) as inst:
        assert "removing" not in inst.log() and "unreadable" not in inst.log(), inst.log()
