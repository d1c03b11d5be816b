"""fastjson gives what json gives: the same text, the same objects, the same errors."""

import json
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flux_launch.proto import fastjson

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
documents = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4)
                         | st.dictionaries(st.text(max_size=6), kids, max_size=4), max_leaves=20)
OPTIONS = [{}, {"separators": (",", ":")}, {"ensure_ascii": False}, {"sort_keys": True},
           {"separators": (",", ":"), "ensure_ascii": False, "sort_keys": True}]


def _same(a, b):
    """Equal, counting NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(documents)
def test_dumps_and_loads_match_json(doc):
    for opts in OPTIONS:
        text = fastjson.dumps(doc, **opts)
        assert text == json.dumps(doc, **opts)
        assert _same(fastjson.loads(text), json.loads(text))
        assert _same(fastjson.loads(text.encode("utf-8", "surrogatepass")),
                     json.loads(text.encode("utf-8", "surrogatepass")))


BAD = ["", " ", "{", "[1,]", '{"a" 1}', "1 2", '"\\x"', "nul", '{"a":1}}', "[1] x", '"\x01"', "\ufeff{}",
       "01", "[", '"abc', "  \n", "{} {}", "-", "1e", "[1,2", "tru", '{"a":NaNx}']


@pytest.mark.parametrize("text", BAD)
def test_errors_match_json(text):
    with pytest.raises(ValueError) as want:
        json.loads(text)
    with pytest.raises(ValueError) as got:
        fastjson.loads(text)
    assert type(got.value) is type(want.value)
    assert str(got.value) == str(want.value)


def test_bytes_forms_and_their_errors():
    assert fastjson.loads(b' {"a": [1, 2.5, "\xc3\xa9"]} ') == {"a": [1, 2.5, "é"]}
    assert fastjson.loads(bytearray(b"[1]")) == [1]
    assert fastjson.loads(memoryview(b"[2]")) == [2]
    assert fastjson.loads('{"x": 1}'.encode("utf-16")) == {"x": 1}  # json works out the encoding
    assert fastjson.loads(b"\xef\xbb\xbf[3]") == [3]
    with pytest.raises(UnicodeDecodeError):
        fastjson.loads(b'"\xff"')


def test_decoder_with_parse_constant_rejects_nan_like_json():
    def reject(c):
        raise ValueError(f"{c} is not valid JSON")

    dec = fastjson.Decoder(parse_constant=reject)
    with pytest.raises(ValueError, match="NaN is not valid JSON"):
        dec.decode('{"a": NaN}')
    assert dec.decode('{"a": 1.5}') == json.JSONDecoder(parse_constant=reject).decode('{"a": 1.5}')


def test_encoder_errors_match_json():
    for bad in ({"a": object()}, {1j: 2}, [set()]):
        with pytest.raises(TypeError) as want:
            json.dumps(bad)
        with pytest.raises(TypeError) as got:
            fastjson.dumps(bad)
        assert str(got.value) == str(want.value)
    loop = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        fastjson.dumps(loop)


def test_a_failed_encode_leaves_nothing_behind():
    """The C encoder's circular check keeps the containers of a call that failed:
    each call needs its own, or the same object fails again once fixed."""
    enc = fastjson.encoder(separators=(",", ":"), allow_nan=False)
    obj = {"a": [object()], "b": [float("nan")]}
    with pytest.raises(TypeError):
        enc(obj)
    obj["a"] = [1]
    with pytest.raises(ValueError, match="not JSON compliant"):
        enc(obj)
    obj["b"] = [2]
    assert enc(obj) == '{"a":[1],"b":[2]}'
    assert fastjson.dumps(obj, separators=[",", ":"]) == json.dumps(obj, separators=[",", ":"])


def test_importing_it_does_not_import_json_or_re():
    code = ("import sys; from flux_launch.proto import fastjson; fastjson.loads(fastjson.dumps({'a': [1]}));"
            "print(sorted(m for m in ('json', 're', 'enum') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path[:0] = {sys.path!r}; {code}"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
