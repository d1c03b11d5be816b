"""Message framing on stream sockets, and the tree arithmetic of the overlay."""

import struct

import pytest
from hypothesis import given, strategies as st

from flux_launch.broker.tree import child_toward, children_of, parent_of, subtree_of
from flux_launch.proto import message


def _decodes_in_steps(data, msgs, steps):
    """Fed ``step`` bytes at a time, for each step, ``data`` decodes to ``msgs``
    with nothing left over."""
    for step in steps:
        dec = message.Decoder()
        out = []
        for i in range(0, len(data), step):
            out += dec.feed(data[i:i + step])
        assert out == msgs
        assert dec.pending == 0


def test_frames_split_anywhere_decode_the_same():
    msgs = [message.request("kvs.get", {"key": "a"}, matchtag=i) for i in range(5)]
    data = b"".join(message.frame(m) for m in msgs)
    _decodes_in_steps(data, msgs, (1, 3, 7, len(data)))


@pytest.mark.parametrize("body,why", [(b"{not json", "malformed"), (b"[1,2]", "not a JSON object"),
                                      (b'{"type":"bogus"}', "bad type"), (b"\xff\xfe", "malformed"),
                                      (b'{"type":"req","topic":5}', "topic")])
def test_a_bad_frame_is_reported_and_the_stream_goes_on(body, why):
    dec = message.Decoder()
    good = message.request("attr.get", {"name": "size"})
    out = dec.feed(struct.pack(">I", len(body)) + body + message.frame(good))
    assert isinstance(out[0], message.MessageError) and why in str(out[0])
    assert out[1] == good


def test_an_oversized_header_breaks_the_stream():
    dec = message.Decoder(max_message=1024)
    with pytest.raises(message.FramingError, match="exceeds the limit"):
        dec.feed(struct.pack(">I", 4096) + b"x")


def test_response_keeps_the_route_and_matchtag():
    req = message.request("broker.ping", {"seq": 1}, matchtag=9)
    req["route"] = ["c3", "r2"]
    ok = message.response(req, {"ok": True})
    err = message.response(req, errnum=2, errstr="gone")
    assert ok["route"] == ["c3", "r2"] and ok["matchtag"] == 9 and ok["payload"] == {"ok": True}
    assert err["errnum"] == 2 and err["errstr"] == "gone" and "payload" not in err


def test_tree_of_fanout_two():
    assert [parent_of(r, 2) for r in range(7)] == [None, 0, 0, 1, 1, 2, 2]
    assert children_of(1, 7, 2) == [3, 4]
    assert children_of(3, 7, 2) == []
    assert subtree_of(1, 10, 2) == [1, 3, 4, 7, 8, 9]
    assert child_toward(0, 9, 2) == 1
    assert child_toward(1, 9, 2) == 4
    assert child_toward(2, 9, 2) is None


@given(size=st.integers(1, 200), k=st.integers(1, 8), data=st.data())
def test_every_rank_is_reached_from_rank_zero(size, k, data):
    target = data.draw(st.integers(0, size - 1))
    hops, at = 0, 0
    while at != target:
        at = child_toward(at, target, k)
        assert at is not None
        hops += 1
    assert hops <= size
    assert sorted(r for r in range(size) if r in subtree_of(0, size, k)) == list(range(size))


def test_raw_attachment_round_trips_split_anywhere():
    blob = bytes(range(256)) * 1000
    msgs = [message.request("kvs.commit", {"ops": [{"op": "append", "key": "a", "raw": True}], "raw": blob}),
            message.request("attr.get", {"name": "size"}),
            message.request("kvs.commit", {"raw": b""})]
    data = b"".join(message.frame(m) for m in msgs)
    _decodes_in_steps(data, msgs, (1, 5, 4096, len(data)))


def test_split_raw_leaves_the_message_alone():
    msg = message.request("x.y", {"raw": b"abc", "n": 1})
    plain, raw = message.split_raw(msg)
    assert raw == b"abc" and plain["payload"] == {"raw": True, "n": 1}
    assert msg["payload"]["raw"] == b"abc"  # the caller's message is not modified
    assert message.split_raw(message.request("x.y", {"raw": "text"}))[1] is None


@pytest.mark.parametrize("body", [struct.pack(">I", 99) + b'{"type":"req","topic":"a","payload":{"raw":true}}',
                                  struct.pack(">I", 2) + b'{"type":"req","topic":"a","payload":{}}',
                                  b"ab"])
def test_a_bad_raw_frame_is_reported_and_the_stream_goes_on(body):
    dec = message.Decoder()
    good = message.request("attr.get", {"name": "size"})
    out = dec.feed(struct.pack(">I", 0x80000000 | len(body)) + body + message.frame(good))
    assert isinstance(out[0], message.MessageError)
    assert out[1] == good


def test_recv_from_receives_big_frames_in_place():
    import socket
    import threading

    a, b = socket.socketpair()
    big = bytes(range(256)) * 4096  # 1 MiB: received in a buffer of its own
    msgs = [message.request("a.b", {"n": 1}), message.request("kvs.commit", {"raw": big, "n": 2}),
            message.request("a.b", {"n": 3}), message.request("kvs.commit", {"raw": b"x" * 70000})]
    data = b"".join(message.frame(m) for m in msgs)
    t = threading.Thread(target=a.sendall, args=(data,))
    t.start()
    dec = message.Decoder()
    out = []
    while len(out) < len(msgs):
        got = dec.recv_from(b, 4096)
        assert got is not None
        out += got
    t.join()
    assert out == msgs and dec.pending == 0
    a.close()
    assert dec.recv_from(b) is None
    b.close()


def test_drop_sent_removes_whole_and_partial_views():
    from collections import deque

    views = deque(memoryview(b) for b in (b"abc", b"de", b"fghij"))
    message.drop_sent(views, 4)
    assert [bytes(v) for v in views] == [b"e", b"fghij"]
    message.drop_sent(views, 1)
    assert [bytes(v) for v in views] == [b"fghij"]
    message.drop_sent(views, 0)
    message.drop_sent(views, 5)
    assert not views
