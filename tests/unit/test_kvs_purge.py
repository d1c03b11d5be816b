"""Space of removed values comes back: each big chunk lives in a blob file of its
own, removed with its key (unlink, a put over it, a namespace removed, a purged
job's directory); files no row names are removed at start; a database of the
older one-file layout is still read, and its file removed once nothing uses it."""

import os
import sqlite3

import pytest

from flux_launch.services.kvs.service import KVSService
from flux_launch.services.kvs.store import BLOB_MIN

from test_kvs_service import Recorder, call, get, last


def _blobs(state):
    return sorted(p.name for p in (state / "blobs").iterdir())


def _commit(svc, ops, raw=None):
    call(svc, "kvs.commit", {"ops": ops, "raw": raw} if raw is not None else {"ops": ops})
    return last(svc)


def _big_append(svc, key, fill=b"x"):
    return _commit(svc, [{"op": "append", "key": key, "raw": True}], fill * BLOB_MIN)


def test_removing_a_key_removes_its_blob_files(tmp_path):
    state = tmp_path / "state"
    svc = KVSService(Recorder(), str(state))
    for key in ("job.a.out", "job.a.out", "job.b.out", "c", "d"):
        _big_append(svc, key)
    assert len(_blobs(state)) == 5
    _commit(svc, [{"op": "unlink", "key": "job.a"}])  # a directory with two blobs below
    assert len(_blobs(state)) == 3
    _commit(svc, [{"op": "put", "key": "c", "value": "small"}])  # a put replaces the chunks
    assert len(_blobs(state)) == 2
    _commit(svc, [{"op": "unlink", "key": "job"}, {"op": "unlink", "key": "d"}])
    assert _blobs(state) == []
    svc.store.close()


def test_a_namespace_removed_takes_its_blob_files(tmp_path):
    state = tmp_path / "state"
    svc = KVSService(Recorder(), str(state))
    call(svc, "kvs.namespace-create", {"name": "ns1"})
    last(svc)
    call(svc, "kvs.commit", {"ops": [{"op": "append", "key": "k", "raw": True}], "raw": b"y" * BLOB_MIN,
                             "namespace": "ns1"})
    last(svc)
    assert len(_blobs(state)) == 1
    call(svc, "kvs.namespace-remove", {"name": "ns1"})
    last(svc)
    assert _blobs(state) == []
    svc.store.close()


def test_files_without_a_row_are_removed_at_start_and_kept_ones_read_back(tmp_path):
    state = tmp_path / "state"
    svc = KVSService(Recorder(), str(state))
    _big_append(svc, "kept", b"k")
    svc.store.close()
    stray = state / "blobs" / f"{12345:016x}"  # written before a crash, its row never committed
    stray.write_bytes(b"z" * 100)
    again = KVSService(Recorder(), str(state))
    assert not stray.exists()
    assert get(again, "kept")["value"] == "k" * BLOB_MIN
    _big_append(again, "more")  # a new id, not one in use
    assert len(_blobs(state)) == 2
    assert get(again, "kept")["value"] == "k" * BLOB_MIN
    again.store.close()


def test_an_older_database_with_content_blobs_is_read_then_its_file_removed(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    db = sqlite3.connect(state / "content.sqlite")
    db.executescript("""
        CREATE TABLE kvs (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY (ns, key)) WITHOUT ROWID;
        CREATE TABLE namespaces (name TEXT PRIMARY KEY, owner INTEGER NOT NULL);
        CREATE TABLE chunks (ns TEXT NOT NULL, key TEXT NOT NULL, data TEXT, off INTEGER, len INTEGER);
        INSERT INTO kvs VALUES ('primary', 'old', '"head;"');
        INSERT INTO chunks VALUES ('primary', 'old', NULL, 3, 4);
        INSERT INTO chunks VALUES ('primary', 'old', ';tail', NULL, NULL);
    """)
    db.commit()
    db.close()
    (state / "content.blobs").write_bytes(b"...BODY...")
    svc = KVSService(Recorder(), str(state))
    assert get(svc, "old")["value"] == "head;BODY;tail"
    _commit(svc, [{"op": "unlink", "key": "old"}])
    svc.store.close()
    assert (state / "content.blobs").exists()  # removed at the next start, when nothing uses it
    again = KVSService(Recorder(), str(state))
    assert not (state / "content.blobs").exists()
    again.store.close()


def test_blob_files_are_private_whatever_the_umask(tmp_path):
    state = tmp_path / "state"
    old = os.umask(0)
    try:
        svc = KVSService(Recorder(), str(state))
        _big_append(svc, "k")
    finally:
        os.umask(old)
    for path in [state / "content.sqlite", *(state / "blobs").iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, (path, oct(path.stat().st_mode))
    svc.store.close()


def test_a_commit_that_fails_leaves_no_blob_file(tmp_path):
    """The blob file is written before the transaction; if sqlite then fails (here a
    trigger aborts it), the file is removed at once, not left for the next start."""
    state = tmp_path / "state"
    svc = KVSService(Recorder(), str(state))
    _big_append(svc, "kept")
    assert len(_blobs(state)) == 1
    svc.store.db.execute("CREATE TEMP TRIGGER boom BEFORE INSERT ON chunks WHEN NEW.key = 'boom' "
                         "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END")
    with pytest.raises(OSError, match="kvs.commit: the store failed: disk trouble"):  # an error answer
        _big_append(svc, "boom")
    with pytest.raises(OSError):
        get(svc, "boom")
    assert len(_blobs(state)) == 1
    assert get(svc, "kept")["value"] == "x" * BLOB_MIN
    _big_append(svc, "after")  # the store goes on
    assert len(_blobs(state)) == 2
    svc.store.close()
