"""Tests for flux_launch.proto.eventlog (RFC 18)."""

import json
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flux_launch.proto import eventlog
from flux_launch.proto.eventlog import EventlogParser

RFC18_EXAMPLE = (
    '{"timestamp":1552593348.073045,"name":"submit","context":{"urgency":16,"userid":5588,"flags":0}}\n'
    '{"timestamp":1552593547.411336,"name":"urgency","context":{"urgency":0,"userid":5588}}\n'
    '{"timestamp":1552593348.093541,"name":"free"}\n'
    '{"timestamp":1552593348.092830,"name":"release","context":{"ranks":"all","final":true}}\n'
    '{"timestamp":1552593348.104432,"name":"clean"}\n'
)


def test_encode_event_exact():
    assert eventlog.encode_event("start", timestamp=1.5) == '{"timestamp":1.5,"name":"start"}\n'
    assert (
        eventlog.encode_event("finish", {"status": 0}, timestamp=2.25)
        == '{"timestamp":2.25,"name":"finish","context":{"status":0}}\n'
    )
    # integer timestamps are written as JSON reals, like jansson's "s:f"
    assert eventlog.encode_event("x", timestamp=5) == '{"timestamp":5.0,"name":"x"}\n'
    # an empty context is kept (only None omits it), as in flux-core
    assert eventlog.encode_event("x", {}, timestamp=1.0) == '{"timestamp":1.0,"name":"x","context":{}}\n'


def test_encode_event_unicode_and_escapes():
    line = eventlog.encode_event("note", {"msg": "a\nb ƒ"}, timestamp=1.0)
    assert line.count("\n") == 1 and line.endswith("\n")
    assert eventlog.decode_event(line)["context"]["msg"] == "a\nb ƒ"


def test_encode_event_default_timestamp_is_now():
    before = time.time()
    ev = eventlog.decode_event(eventlog.encode_event("submit"))
    assert before <= ev["timestamp"] <= time.time()
    ev = eventlog.decode_event(eventlog.encode_event("submit", timestamp=0))
    assert ev["timestamp"] >= before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": 5},
        {"name": "x", "context": [1]},
        {"name": "x", "context": "{}"},
        {"name": "x", "timestamp": -1.0},
        {"name": "x", "timestamp": float("nan")},
        {"name": "x", "timestamp": float("inf")},
        {"name": "x", "timestamp": "1.0"},
        {"name": "x", "timestamp": True},
        {"name": "x", "context": {"v": float("nan")}},
        {"name": "x", "context": {"v": object()}},
    ],
)
def test_encode_event_invalid(kwargs):
    with pytest.raises(ValueError, match="^invalid eventlog entry: "):
        eventlog.encode_event(**kwargs)


def test_decode_event():
    ev = eventlog.decode_event('{"timestamp":1.5,"name":"start","context":{"a":1}}\n')
    assert ev == {"timestamp": 1.5, "name": "start", "context": {"a": 1}}
    assert eventlog.decode_event('{"timestamp":2,"name":"x"}') == {"timestamp": 2, "name": "x"}


@pytest.mark.parametrize(
    "line",
    [
        "",
        "\n",
        "not json\n",
        "[1,2]\n",
        '"str"\n',
        '{"name":"x"}\n',
        '{"timestamp":1.0}\n',
        '{"timestamp":"1.0","name":"x"}\n',
        '{"timestamp":true,"name":"x"}\n',
        '{"timestamp":NaN,"name":"x"}\n',
        '{"timestamp":Infinity,"name":"x"}\n',
        '{"timestamp":1.0,"name":""}\n',
        '{"timestamp":1.0,"name":3}\n',
        '{"timestamp":1.0,"name":"x","context":[]}\n',
        '{"timestamp":1.0,"name":"x","context":null}\n',
        '{"timestamp":1.0,"name":"x"}\n{"timestamp":2.0,"name":"y"}\n',
        '{"timestamp":1.0,"name":"x"} trailing\n',
    ],
)
def test_decode_event_invalid(line):
    with pytest.raises(ValueError) as exc:
        eventlog.decode_event(line)
    msg = str(exc.value)
    assert msg.startswith("invalid eventlog entry: ")
    assert "\n" not in msg


def test_decode_rfc18_example():
    events = eventlog.decode(RFC18_EXAMPLE)
    assert [e["name"] for e in events] == ["submit", "urgency", "free", "release", "clean"]
    assert events[0]["context"] == {"urgency": 16, "userid": 5588, "flags": 0}
    assert "context" not in events[2]
    assert events[3]["context"]["final"] is True


def test_decode_empty_and_partial():
    assert eventlog.decode("") == []
    with pytest.raises(ValueError, match="missing its newline"):
        eventlog.decode('{"timestamp":1.0,"name":"x"}')
    with pytest.raises(ValueError):
        eventlog.decode('{"timestamp":1.0,"name":"x"}\n{"timestamp":2.0,"na')
    events, rest = eventlog.decode(
        '{"timestamp":1.0,"name":"x"}\n{"timestamp":2.0,"na', allow_partial=True
    )
    assert [e["name"] for e in events] == ["x"]
    assert rest == '{"timestamp":2.0,"na'
    assert eventlog.decode('{"timestamp":1.0,"name":"x"}\n', allow_partial=True)[1] == ""


def test_decode_rejects_blank_lines():
    with pytest.raises(ValueError, match="empty entry"):
        eventlog.decode('{"timestamp":1.0,"name":"x"}\n\n')


def test_encode_whole_log_roundtrip():
    events = eventlog.decode(RFC18_EXAMPLE)
    text = eventlog.encode(events)
    assert eventlog.decode(text) == events
    with pytest.raises(ValueError):
        eventlog.encode([{"name": "x"}])


def test_parser_split_anywhere():
    for cut in range(len(RFC18_EXAMPLE) + 1):
        p = EventlogParser()
        got = p.feed(RFC18_EXAMPLE[:cut]) + p.feed(RFC18_EXAMPLE[cut:])
        assert got == eventlog.decode(RFC18_EXAMPLE)
        assert p.pending == ""
        p.close()


def test_parser_byte_by_byte_and_pending():
    p = EventlogParser()
    out = []
    for ch in RFC18_EXAMPLE[:-5]:
        out += p.feed(ch)
    assert len(out) == 4
    assert p.pending == RFC18_EXAMPLE[RFC18_EXAMPLE.rfind("\n", 0, len(RFC18_EXAMPLE) - 1) + 1:-5]
    with pytest.raises(ValueError, match="stream ended inside an entry"):
        p.close()


def test_parser_error_reports_good_events_first():
    p = EventlogParser()
    good = '{"timestamp":1.0,"name":"a"}\n'
    bad = '{"timestamp":"x","name":"b"}\n'
    after = '{"timestamp":3.0,"name":"c"}\n'
    assert [e["name"] for e in p.feed(good + bad + after)] == ["a"]
    with pytest.raises(ValueError):
        p.feed("")
    assert [e["name"] for e in p.feed("")] == ["c"]


def test_parser_error_first_entry():
    p = EventlogParser()
    with pytest.raises(ValueError):
        p.feed("garbage\n")
    assert p.feed('{"timestamp":1.0,"name":"ok"}\n')[0]["name"] == "ok"


# -- property-based -------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=10),
)
contexts = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=8), json_scalars, max_size=5),
)
names = st.text(min_size=1, max_size=20)
timestamps = st.floats(min_value=1e-3, max_value=4e9, allow_nan=False)


@given(names, contexts, timestamps)
def test_encode_decode_roundtrip(name, context, ts):
    line = eventlog.encode_event(name, context, timestamp=ts)
    assert line.endswith("\n") and line.count("\n") == 1
    ev = eventlog.decode_event(line)
    assert ev["name"] == name and ev["timestamp"] == ts
    if context is None:
        assert "context" not in ev
    else:
        assert ev["context"] == context
    assert list(json.loads(line)) == ["timestamp", "name"] + ([] if context is None else ["context"])


@given(st.lists(st.tuples(names, contexts, timestamps), max_size=8), st.data())
def test_parser_chunking_property(entries, data):
    text = "".join(eventlog.encode_event(n, c, timestamp=t) for n, c, t in entries)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    p = EventlogParser()
    got, prev = [], 0
    for c in cuts + [len(text)]:
        got += p.feed(text[prev:c])
        prev = c
    assert got == eventlog.decode(text)
    assert len(got) == len(entries)
