"""The KVS engine with a real sqlite store, driven message by message (no sockets).

The broker here only records responses: routing is tested end to end in tests/e2e.
"""

import errno

import pytest

from flux_launch.proto import message
from flux_launch.services.kvs.service import KVSService


class Recorder:
    """Stands where the broker would: the owner's uid and a list of responses."""

    owner = 1000

    def __init__(self):
        self.responses = []

    def respond(self, req, payload=None):
        self.responses.append((req["matchtag"], payload, 0, None))

    def respond_error(self, req, errnum, errstr=None):
        self.responses.append((req["matchtag"], None, errnum, errstr))


@pytest.fixture
def kvs(tmp_path):
    svc = KVSService(Recorder(), str(tmp_path / "state"))
    yield svc
    svc.store.db.close()


_tag = [0]


def call(svc, topic, payload=None, flags=0, route=("c1",)):
    _tag[0] += 1
    req = message.request(topic, payload, matchtag=_tag[0], flags=flags)
    req["route"] = list(route)
    req["userid"] = 1000
    svc.handle(req)
    return req


def last(svc):
    tag, payload, errnum, errstr = svc.broker.responses[-1]
    if errnum:
        raise OSError(errnum, errstr)
    return payload


def put(svc, **kv):
    call(svc, "kvs.commit", {"ops": [{"op": "put", "key": k.replace("__", "."), "value": v} for k, v in kv.items()]})
    return last(svc)


def get(svc, key, **kw):
    call(svc, "kvs.get", {"key": key, **kw})
    return last(svc)


def test_put_get_and_directories(kvs):
    put(kvs, a__b=42, a__c={"x": [1, 2]})
    assert get(kvs, "a.b")["value"] == 42
    assert get(kvs, "..a..c.")["value"] == {"x": [1, 2]}  # keys are normalized
    listing = get(kvs, "a", dir=True)["dir"]
    assert listing == {"b": {"value": 42}, "c": {"value": {"x": [1, 2]}}}
    with pytest.raises(OSError) as exc:
        get(kvs, "a")
    assert exc.value.errno == errno.EISDIR
    with pytest.raises(OSError) as exc:
        get(kvs, "a.nope")
    assert exc.value.errno == errno.ENOENT and "a.nope" in exc.value.strerror


def test_value_and_directory_replace_each_other(kvs):
    put(kvs, a=1)
    put(kvs, a__b=2)
    assert get(kvs, "a.b")["value"] == 2
    put(kvs, a="flat")
    assert get(kvs, "a")["value"] == "flat"


def test_commit_is_all_or_nothing(kvs):
    put(kvs, n=5)
    call(kvs, "kvs.commit", {"ops": [{"op": "put", "key": "x", "value": 1},
                                     {"op": "append", "key": "n", "value": "more"}]})
    with pytest.raises(OSError) as exc:
        last(kvs)
    assert exc.value.errno == errno.EINVAL and "not a string" in exc.value.strerror
    with pytest.raises(OSError):
        get(kvs, "x")


@pytest.mark.parametrize("payload", [None, {"ops": "nope"}, {"ops": []}, {"ops": [5]},
                                     {"ops": [{"op": "frobnicate", "key": "a"}]},
                                     {"ops": [{"op": "put", "key": "a"}]},
                                     {"ops": [{"op": "put", "key": 7, "value": 1}]}])
def test_malformed_commits_are_refused(kvs, payload):
    call(kvs, "kvs.commit", payload)
    with pytest.raises(OSError) as exc:
        last(kvs)
    assert exc.value.errno in (errno.EPROTO, errno.EINVAL)
    assert exc.value.strerror


def test_everything_survives_a_restart(tmp_path):
    state = str(tmp_path / "state")
    svc = KVSService(Recorder(), state)
    put(svc, a__b=42, s="text")
    call(svc, "kvs.commit", {"ops": [{"op": "append", "key": "log", "value": "one\n"},
                                     {"op": "append", "key": "log", "value": "two\n"},
                                     {"op": "mkdir", "key": "empty"},
                                     {"op": "unlink", "key": "s"}]})
    call(svc, "kvs.namespace-create", {"name": "job-1"})
    call(svc, "kvs.commit", {"namespace": "job-1", "ops": [{"op": "put", "key": "k", "value": [1]}]})
    svc.close()
    again = KVSService(Recorder(), state)
    assert get(again, "a.b")["value"] == 42
    assert get(again, "log")["value"] == "one\ntwo\n"
    assert get(again, "empty", dir=True)["dir"] == {}
    assert get(again, "k", namespace="job-1")["value"] == [1]
    with pytest.raises(OSError):
        get(again, "s")
    again.close()


def test_watch_append_streams_only_new_data(kvs):
    call(kvs, "kvs.commit", {"ops": [{"op": "append", "key": "ev", "value": "a\n"}]})
    w = call(kvs, "kvs.watch", {"key": "ev", "append": True}, flags=message.STREAMING)
    call(kvs, "kvs.commit", {"ops": [{"op": "append", "key": "ev", "value": "b\n"}]})
    call(kvs, "kvs.commit", {"ops": [{"op": "append", "key": "ev", "value": "c\n"}]})
    mine = [r for r in kvs.broker.responses if r[0] == w["matchtag"]]
    assert [r[1]["value"] for r in mine] == ["a\n", "b\n", "c\n"]
    call(kvs, "kvs.unwatch", {"matchtag": w["matchtag"]})
    mine = [r for r in kvs.broker.responses if r[0] == w["matchtag"]]
    assert mine[-1][2] == errno.ENODATA


def test_watch_waitcreate_then_removal_ends_the_stream(kvs):
    w = call(kvs, "kvs.watch", {"key": "later", "waitcreate": True}, flags=message.STREAMING)
    assert not [r for r in kvs.broker.responses if r[0] == w["matchtag"]]
    put(kvs, later=1)
    put(kvs, later=2)
    call(kvs, "kvs.commit", {"ops": [{"op": "unlink", "key": "later"}]})
    mine = [r for r in kvs.broker.responses if r[0] == w["matchtag"]]
    assert [r[1]["value"] for r in mine[:2]] == [1, 2]
    assert mine[2][2] == errno.ENOENT


def test_watch_of_missing_key_without_waitcreate_fails(kvs):
    call(kvs, "kvs.watch", {"key": "nope"}, flags=message.STREAMING)
    with pytest.raises(OSError) as exc:
        last(kvs)
    assert exc.value.errno == errno.ENOENT


def test_disconnect_drops_that_clients_watches_only(kvs):
    put(kvs, k=0)
    mine = call(kvs, "kvs.watch", {"key": "k"}, flags=message.STREAMING, route=("c1",))
    other = call(kvs, "kvs.watch", {"key": "k"}, flags=message.STREAMING, route=("c2", "r3"))
    call(kvs, "kvs.disconnect", None, route=("c2", "r3"))
    put(kvs, k=1)
    values = {tag: [r[1]["value"] for r in kvs.broker.responses if r[0] == tag and r[1] and "value" in r[1]]
              for tag in (mine["matchtag"], other["matchtag"])}
    assert values[mine["matchtag"]] == [0, 1]
    assert values[other["matchtag"]] == [0]


def test_namespaces(kvs):
    call(kvs, "kvs.namespace-create", {"name": "ns1"})
    last(kvs)
    call(kvs, "kvs.namespace-create", {"name": "ns1"})
    with pytest.raises(OSError) as exc:
        last(kvs)
    assert exc.value.errno == errno.EEXIST
    call(kvs, "kvs.namespace-list")
    assert [n["name"] for n in last(kvs)["namespaces"]] == ["ns1", "primary"]
    call(kvs, "kvs.namespace-remove", {"name": "primary"})
    with pytest.raises(OSError):
        last(kvs)
    call(kvs, "kvs.namespace-remove", {"name": "ns1"})
    last(kvs)
    with pytest.raises(OSError) as exc:
        get(kvs, "a", namespace="ns1")
    assert "ns1" in exc.value.strerror


def test_structure_changes_persist_exactly(tmp_path):
    """Puts that turn values into directories (or back) leave sqlite consistent,
    whether they come in separate commits or in one."""
    state = str(tmp_path / "state")
    svc = KVSService(Recorder(), state)
    put(svc, x=1)
    put(svc, x__y=2)                      # value x becomes a directory
    put(svc, d__e=1, d__f=2)
    put(svc, d="flat")                    # directory d becomes a value
    call(svc, "kvs.commit", {"ops": [{"op": "put", "key": "p", "value": 1},
                                     {"op": "put", "key": "p.q", "value": 2}]})
    last(svc)
    for _ in range(3):
        call(svc, "kvs.commit", {"ops": [{"op": "append", "key": "log.a", "value": "x\n"}]})
    svc.close()
    again = KVSService(Recorder(), state)
    assert get(again, "x.y")["value"] == 2
    assert get(again, "d")["value"] == "flat"
    assert get(again, "p", dir=True)["dir"] == {"q": {"value": 2}}
    assert get(again, "log.a")["value"] == "x\nx\nx\n"
    rows = again.store.db.execute("SELECT key FROM kvs WHERE key IN ('x', 'd.e', 'd.f', 'p')").fetchall()
    assert rows == [], rows
    again.close()


def test_appends_are_stored_as_chunks_and_survive_restart(tmp_path):
    state = str(tmp_path / "state")
    svc = KVSService(Recorder(), state)
    w = call(svc, "kvs.watch", {"key": "out", "append": True, "waitcreate": True}, flags=message.STREAMING)
    for i in range(50):
        call(svc, "kvs.commit", {"ops": [{"op": "append", "key": "out", "value": f"line {i}\n"}]})
    expected = "".join(f"line {i}\n" for i in range(50))
    assert get(svc, "out")["value"] == expected
    streamed = "".join(r[1]["value"] for r in svc.broker.responses if r[0] == w["matchtag"] and r[1])
    assert streamed == expected  # each watcher response carried only what was appended
    nrows = svc.store.db.execute("SELECT COUNT(*) FROM chunks WHERE key = 'out'").fetchone()[0]
    assert nrows == 49  # the first append created the key; the others are one row each
    svc.close()
    again = KVSService(Recorder(), state)
    assert get(again, "out")["value"] == expected
    put(again, out="reset")  # a put replaces the value and its chunks
    call(again, "kvs.commit", {"ops": [{"op": "append", "key": "out", "value": "+"}]})
    again.close()
    third = KVSService(Recorder(), state)
    assert get(third, "out")["value"] == "reset+"
    third.close()


# ---- raw appends, blobs and raw watches with flow control ----------------------------

class FakeClient:
    """A connector client as the KVS sees it: paused or not, with resume callbacks."""

    def __init__(self):
        self.paused = False
        self.on_resume = []

    def resume(self):
        self.paused = False
        waiting, self.on_resume = self.on_resume, []
        for fn in waiting:
            fn()


def raw_append(svc, key, data):
    call(svc, "kvs.commit", {"ops": [{"op": "append", "key": key, "raw": True}], "raw": data})
    return last(svc)


def _blob_bytes(state):
    """Bytes in the blob files of a state directory."""
    return sum(p.stat().st_size for p in (state / "blobs").iterdir())


def test_raw_appends_small_and_big_read_back_and_survive_restart(tmp_path):
    from flux_launch.services.kvs.store import BLOB_MIN

    state = str(tmp_path / "state")
    svc = KVSService(Recorder(), state)
    put(svc, a="head;")
    big = ("é" * BLOB_MIN).encode()  # a blob (file), not a row
    raw_append(svc, "a", b"small;")
    raw_append(svc, "a", big)
    raw_append(svc, "a", b";tail")
    want = "head;small;" + big.decode() + ";tail"
    assert get(svc, "a")["value"] == want
    assert _blob_bytes(tmp_path / "state") == len(big)
    svc.store.close()
    again = KVSService(Recorder(), state)
    assert get(again, "a")["value"] == want
    again.store.db.close()


def test_a_raw_append_that_is_not_utf8_is_refused_and_nothing_changes(kvs):
    put(kvs, a="x")
    call(kvs, "kvs.commit", {"ops": [{"op": "append", "key": "a", "raw": True}], "raw": b"ok\xff"})
    with pytest.raises(OSError, match="not UTF-8") as exc:
        last(kvs)
    assert exc.value.errno == errno.EINVAL
    call(kvs, "kvs.commit", {"ops": [{"op": "append", "key": "a", "raw": True}]})
    with pytest.raises(OSError, match="without raw bytes"):
        last(kvs)
    assert get(kvs, "a")["value"] == "x"


def test_raw_append_to_a_new_key_creates_it(kvs):
    raw_append(kvs, "d.e", b"new")
    assert get(kvs, "d.e")["value"] == "new"


def test_a_big_first_append_creates_the_key_in_the_blob_file_not_sqlite(tmp_path):
    """A job's first output batch creates guest.output: it must take the blob path
    like every later batch (a put would store its megabyte in sqlite)."""
    from flux_launch.services.kvs.store import BLOB_MIN

    state = str(tmp_path / "state")
    svc = KVSService(Recorder(), state)
    big = b"x" * BLOB_MIN
    call(svc, "kvs.commit", {"ops": [{"op": "append", "key": "job.out", "raw": True},
                                     {"op": "append", "key": "job.out", "value": "+tail"}], "raw": big})
    last(svc)
    # the two appends are one chunk (successive appends to a key are joined), in the blob file
    assert _blob_bytes(tmp_path / "state") == len(big) + 5
    assert get(svc, "job.out")["value"] == big.decode() + "+tail"
    # a put later in the same commit replaces it, an unlink removes it
    call(svc, "kvs.commit", {"ops": [{"op": "append", "key": "p", "raw": True},
                                     {"op": "put", "key": "p", "value": "v"},
                                     {"op": "append", "key": "p", "value": "w"},
                                     {"op": "append", "key": "u", "raw": True},
                                     {"op": "unlink", "key": "u"}], "raw": big})
    last(svc)
    assert get(svc, "p")["value"] == "vw"
    with pytest.raises(OSError):
        get(svc, "u")
    svc.store.close()
    again = KVSService(Recorder(), state)
    assert get(again, "job.out")["value"] == big.decode() + "+tail"
    assert get(again, "p")["value"] == "vw"
    with pytest.raises(OSError):
        get(again, "u")
    again.store.db.close()


def test_raw_watch_sends_each_chunk_and_holds_back_while_the_client_is_paused(kvs):
    client = FakeClient()
    kvs.broker.local_client = lambda req: client
    put(kvs, log="")
    w = call(kvs, "kvs.watch", {"key": "log", "append": True, "raw": True}, flags=message.STREAMING)
    got = lambda: [p["raw"] for tag, p, e, _ in kvs.broker.responses if tag == w["matchtag"] and p]  # noqa: E731
    big = b"y" * (100 * 1024)
    raw_append(kvs, "log", b"one\n")
    raw_append(kvs, "log", big)
    assert got()[-2:] == [b"one\n", big]
    client.paused = True
    raw_append(kvs, "log", b"two\n")
    raw_append(kvs, "log", big)
    raw_append(kvs, "log", b"three\n")
    assert got()[-1] == big and len(got()) == 3  # nothing new while paused
    assert len(client.on_resume) == 1  # one wake-up, however many appends
    client.resume()
    assert b"".join(got()) == b"one\n" + big + b"two\n" + big + b"three\n"
    raw_append(kvs, "log", b"four\n")
    assert got()[-1] == b"four\n"


def test_a_held_back_watch_ends_when_its_key_is_removed(kvs):
    """A raw watch paused before its first piece (sent == 0) is ended with ENOENT
    when its key goes, whether the removal or the client's resume comes first,
    instead of waiting for ever as if for the key's creation."""
    import errno

    client = FakeClient()
    kvs.broker.local_client = lambda req: client
    for resume_first in (False, True):
        raw_append(kvs, "g", b"data\n")
        client.paused = True
        w = call(kvs, "kvs.watch", {"key": "g", "append": True, "raw": True}, flags=message.STREAMING)

        def ends(tag=w["matchtag"]):
            return [e for t, _p, e, _ in kvs.broker.responses if t == tag and e]

        if resume_first:
            call(kvs, "kvs.commit", {"ops": [{"op": "unlink", "key": "g"}]})
            last(kvs)
            assert not ends()  # still waiting: the removal came while it was held back
            kvs.end_watches("g")  # then the job ends
            client.resume()
        else:
            kvs.end_watches("g")  # the job ended: it should end once all is sent
            call(kvs, "kvs.commit", {"ops": [{"op": "unlink", "key": "g"}]})
            last(kvs)
            client.resume()
        assert ends() and ends()[-1] == errno.ENOENT, kvs.broker.responses[-3:]
        assert not kvs.watches


def test_limited_appends_keep_a_prefix_within_the_limit(kvs):
    """Job output over all its shells: appends that count bytes toward a limit are
    kept while they fit; the first that does not is dropped (the answer says it was
    the first: its shell warns), and so is every later counted one, even a small one
    that would fit, so that what is kept has no hole; uncounted appends (ends of
    streams, the warning) go on."""
    def append(text, count, **extra):
        call(kvs, "kvs.commit", {"ops": [{"op": "append", "key": "o", "value": text, "limit": 10,
                                          "count": count, **extra}]})
        return last(kvs)

    assert append("aaaa", 4) == {}
    assert append("bbbb", 4) == {}
    assert append("cccc", 4) == {"dropped": [{"key": "o", "first": True}], "first_full": True}
    assert append("d", 1) == {"dropped": [{"key": "o", "first": False}]}  # it would fit: dropped all the same
    assert append("eof", 0) == {}
    assert get(kvs, "o")["value"] == "aaaabbbbeof"
    # a writer that reached the limit by itself says so: the key is full once applied
    call(kvs, "kvs.commit", {"ops": [{"op": "append", "key": "p", "value": "12345", "limit": 5, "count": 5,
                                      "full": True}]})
    assert last(kvs) == {"first_full": True}
    call(kvs, "kvs.commit", {"ops": [{"op": "append", "key": "p", "value": "", "limit": 5, "count": 0,
                                      "full": True}]})
    assert last(kvs) == {}  # full already: not the first
    with pytest.raises(OSError, match="limit and count must be integers"):
        append("z", "1")


def test_rope_pieces_and_tail_from_any_offset(tmp_path):
    from flux_launch.services.kvs.service import Rope
    from flux_launch.services.kvs.store import Store

    store = Store(str(tmp_path))
    rope = Rope("ab")
    rope.append(b"cd")
    data = b"E" * 70000
    rope.append(data, store.write_blob(data))
    rope.append("fg")
    whole = b"abcd" + data + b"fg"
    store.cache.clear()  # read the blob back from the file
    for start in (0, 1, 2, 3, 4, 5, 70003, 70004, 70005, 70006, 99999):
        assert b"".join(rope.pieces(start)) == whole[start:]
        assert rope.tail(start) == whole[start:]
    assert rope.value() == whole.decode()
    store.close()


def test_a_database_from_before_the_blob_file_is_migrated(tmp_path):
    import sqlite3

    state = tmp_path / "state"
    state.mkdir()
    db = sqlite3.connect(state / "content.sqlite")
    db.executescript("""
        CREATE TABLE kvs (ns TEXT NOT NULL, key TEXT NOT NULL, value TEXT, PRIMARY KEY (ns, key)) WITHOUT ROWID;
        CREATE TABLE namespaces (name TEXT PRIMARY KEY, owner INTEGER NOT NULL);
        CREATE TABLE chunks (ns TEXT NOT NULL, key TEXT NOT NULL, data TEXT NOT NULL);
        INSERT INTO kvs VALUES ('primary', 'a', '"x"');
        INSERT INTO chunks VALUES ('primary', 'a', 'y');
    """)
    db.commit()
    db.close()
    svc = KVSService(Recorder(), str(state))
    assert get(svc, "a")["value"] == "xy"
    raw_append(svc, "a", b"z" * 70000)
    assert get(svc, "a")["value"] == "xy" + "z" * 70000
    svc.store.db.close()


def test_put_then_many_appends_in_one_commit_fold_in_order(tmp_path):
    """A job's eventlog is put and appended to thousands of times in one commit
    (a job with thousands of dependencies): the appends fold into one value, in
    order, around other ops on the same key, and it survives a restart."""
    state = str(tmp_path / "state")
    svc = KVSService(Recorder(), state)
    ops = [{"op": "put", "key": "ev", "value": "0\n"}]
    ops += [{"op": "append", "key": "ev", "value": f"{i}\n"} for i in range(1, 5000)]
    ops += [{"op": "put", "key": "other", "value": 1}, {"op": "append", "key": "ev", "value": "tail\n"},
            {"op": "put", "key": "x", "value": "a"}, {"op": "append", "key": "x", "value": "b"},
            {"op": "unlink", "key": "x"}, {"op": "put", "key": "y", "value": "c"},
            {"op": "append", "key": "y", "value": "d"}, {"op": "put", "key": "y", "value": "e"},
            {"op": "append", "key": "y", "value": "f"}]
    call(svc, "kvs.commit", {"ops": ops})
    last(svc)
    want = "".join(f"{i}\n" for i in range(5000)) + "tail\n"
    assert get(svc, "ev")["value"] == want and get(svc, "y")["value"] == "ef"
    with pytest.raises(OSError):
        get(svc, "x")
    svc.close()
    again = KVSService(Recorder(), state)
    assert get(again, "ev")["value"] == want and get(again, "y")["value"] == "ef"
    again.close()
