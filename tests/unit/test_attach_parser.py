"""The front end's output entry parser: the fast path for data entries gives what
json gives, whatever the chunking and buffer type."""

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flux_launch.cli.attach import _BytesParser


def _data(stream, rank, text, ts=1700000000.25):
    return json.dumps({"timestamp": ts, "name": "data",
                       "context": {"stream": stream, "rank": str(rank), "data": text}},
                      separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


ENTRIES = [
    _data("stdout", 0, "hello\n"),
    _data("stderr", 12, 'quote " back \\ tab \t nl \n é \u2603 \x01'),
    _data("stdout", 3, "", ts=1e-07),
    _data("stdout", 1, "x", ts=-5),
    b'{"timestamp":1.5,"name":"data","context":{"stream":"stdout","rank":"0","eof":true}}\n',
    b'{"timestamp":1.5,"name":"data","context":{"stream":"stdout","rank":"0","data":"/w==","encoding":"base64"}}\n',
    b'{"timestamp":"1.5","name":"data","context":{"stream":"stdout","rank":"0","data":"no"}}\n',  # odd timestamp
    b'{"timestamp":1.5,"name":"data","context":{"stream":"stdin","rank":"0","data":"no"}}\n',
    b'{"timestamp":1.5,"name":"data","context":{"stream":"stdout","rank":"x1","data":"no"}}\n',
    b'{"timestamp":1.5,"name":"data","context":{"stream":"stdout","rank":"","data":"no"}}\n',
    b'{"timestamp":1.5,"name":"header","context":{"version":1,"count":{"stdout":2,"stderr":2}}}\n',
    b'{"timestamp":1.5,"name":"log","context":{"level":3,"message":"m","rank":0}}\n',
]


def _expected(line):
    entry = json.loads(line)
    ctx = entry["context"]
    if entry["name"] == "data" and "data" in ctx and "encoding" not in ctx \
            and isinstance(entry["timestamp"], float | int) \
            and ctx["stream"] in ("stdout", "stderr") and ctx["rank"].isdigit():
        return ctx["stream"], ctx["rank"], ctx["data"].encode()
    return None, None, entry


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(range(len(ENTRIES))), min_size=1, max_size=12), st.data())
def test_chunks_split_anywhere_give_what_json_gives(order, data):
    stream = b"".join(ENTRIES[i] for i in order)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    as_bytearray = data.draw(st.booleans())
    parser = _BytesParser()
    got = []
    for chunk in chunks:
        got += list(parser.feed(bytearray(chunk) if as_bytearray else chunk))
    assert got == [_expected(ENTRIES[i]) for i in order]


@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_a_fast_path_entry_gives_the_raw_utf8_bytes(kind):
    line = _data("stderr", 7, "é\n")
    assert list(_BytesParser().feed(kind(line))) == [("stderr", "7", "é\n".encode())]
    b64 = ENTRIES[5]
    (_, _, entry), = _BytesParser().feed(kind(b64))
    assert base64.b64decode(entry["context"]["data"]) == b"\xff"
