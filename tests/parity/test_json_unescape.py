"""The C JSON string unescaper against its Python twin (json.loads of the quoted
body, encoded as UTF-8) and against a hand-written reading of the rule (``spec``
below, no json.loads): same bytes for a valid body, None for anything else; and
it inverts json_escape and json.dumps."""

import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flux_launch._accel import _py

if os.environ.get("FLUX_LAUNCH_ACCEL") == "py":
    pytest.skip("FLUX_LAUNCH_ACCEL=py: the C backend is deliberately disabled", allow_module_level=True)
from flux_launch._accel import _cwrap  # an ImportError here means the C build failed

BACKENDS = [_py, _cwrap]
IDS = ["py", "c"]

SHORT = {b'"': b'"', b"\\": b"\\", b"/": b"/", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t"}
TOKEN = re.compile(rb'([^"\\\x00-\x1f]+)|\\(["\\/bfnrt])|\\u([0-9a-fA-F]{4})')
LOW = re.compile(rb"\\u([dD][c-fC-F][0-9a-fA-F]{2})")


def spec(data):
    """The rule read literally: a valid body of valid UTF-8, surrogate escapes paired."""
    data = bytes(data)
    try:
        data.decode("utf-8")  # escapes are ASCII: no raw sequence spans one
    except UnicodeDecodeError:
        return None
    out, pos = [], 0
    while pos < len(data):
        m = TOKEN.match(data, pos)
        if m is None:
            return None
        pos = m.end()
        raw, short, hexdigits = m.groups()
        if raw is not None:
            out.append(raw)
        elif short is not None:
            out.append(SHORT[short])
        else:
            cp = int(hexdigits, 16)
            if 0xDC00 <= cp <= 0xDFFF:
                return None
            if 0xD800 <= cp <= 0xDBFF:
                m = LOW.match(data, pos)
                if m is None:
                    return None
                pos = m.end()
                cp = 0x10000 + ((cp - 0xD800) << 10) + (int(m.group(1), 16) - 0xDC00)
            out.append(chr(cp).encode())
    return b"".join(out)


def check(data):
    """Both backends agree with the rule, and a value is what json.loads reads."""
    got = _cwrap.json_unescape(data)
    assert got == _py.json_unescape(data)
    assert got == spec(data)
    if got is not None:
        assert type(got) is bytes
        assert got == json.loads(b'"' + bytes(data) + b'"').encode()
    return got


@pytest.mark.parametrize("mod", BACKENDS, ids=IDS)
@pytest.mark.parametrize("data,expected", [
    (b"", b""),
    (b"plain text 0123456789", b"plain text 0123456789"),
    (b'\\"\\\\\\/\\b\\f\\n\\r\\t', b'"\\/\b\f\n\r\t'),
    (b"line one\\nline two\\n", b"line one\nline two\n"),
    (b"\x7f", b"\x7f"),                                       # DEL is not a control char for JSON
    (b"/", b"/"),
    ("é½€𝄞😀\u2028\ufeff\U0010ffff".encode(), "é½€𝄞😀\u2028\ufeff\U0010ffff".encode()),
    (b"\\u0000\\u001f\\u0041\\u007f", b"\x00\x1fA\x7f"),
    (b"\\u00e9\\u00E9\\u00c9", "ééÉ".encode()),
    (b"\\u20ac\\u20AC\\uFFFF\\uffff\\ufeff", "€€\uffff\uffff\ufeff".encode()),
    (b"\\u07ff\\u0800\\ud7ff\\ue000", "\u07ff\u0800\ud7ff\ue000".encode()),
    (b"\\ud83d\\ude00", "😀".encode()),                      # surrogate pairs
    (b"\\uD83D\\uDE00", "😀".encode()),
    (b"\\uD834\\udd1e", "𝄞".encode()),
    (b"\\ud800\\udc00", "\U00010000".encode()),
    (b"\\udbff\\udfff", "\U0010ffff".encode()),
    (b"a\\ud83d\\ude00b\\ud83d\\ude00", "a😀b😀".encode()),
    (b"\\\\u0041", b"\\u0041"),                               # an escaped backslash, then text
    (b"\\\\\\\\", b"\\\\"),
    # declined
    (b"\\ud83d", None),                                       # lone high
    (b"\\ud83dx", None),
    (b"\\ud83d\\n", None),
    (b"\\ud83d\\u0041", None),                                # high, then no low
    (b"\\ud83d\\ud83d\\ude00", None),                         # high, high, low
    (b"\\ud83d\\ude", None),                                  # the low truncated
    (b"\\ud83d\\", None),
    (b"\\ude00", None),                                       # lone low
    (b"x\\udfff", None),
    (b"\\ude00\\ud83d", None),                                # reversed pair
    (b"\x00", None),                                          # raw control chars
    (b"abc\x1fdef", None),
    (b"tab\there", None),
    (b"nl\nhere", None),
    (b'say "hi"', None),                                      # raw quote
    (b'"', None),
    (b"\\", None),                                            # trailing lone backslash
    (b"abcdefghijklmnop\\", None),
    (b"\\a", None),                                           # unknown escapes
    (b"\\x41", None),
    (b"\\U0041", None),
    (b"\\'", None),
    (b"\\0", None),
    (b"\\\n", None),
    (b"\\\xc3\xa9", None),
    (b"\\u12g4", None),                                       # bad hex
    (b"\\u 123", None),
    (b"\\u+123", None),
    (b"\\u-123", None),
    (b"\\u1_23", None),
    (b"\\u0x12", None),
    (b"\\u12", None),                                         # truncated
    (b"\\u", None),
    (b"\\u123", None),
    (b"\xff", None),                                          # invalid UTF-8 raw bytes
    (b"\x80", None),
    (b"\xc0\x80", None),                                      # overlong NUL
    (b"\xe0\x80\x80", None),
    (b"\xed\xa0\x80", None),                                  # raw surrogate U+D800
    (b"\xed\xa0\xbd\xed\xb8\x80", None),                      # raw surrogate pair (CESU-8)
    (b"\xf4\x90\x80\x80", None),                              # above U+10FFFF
    (b"ab\xe2\x82", None),                                    # cut by the end
    (b"\xe2\x82\\n", None),                                   # cut by an escape
])
def test_cases(mod, data, expected):
    assert mod.json_unescape(data) == expected
    assert check(data) == expected


@pytest.mark.parametrize("mod", BACKENDS, ids=IDS)
@pytest.mark.parametrize("byte", range(0x100))
def test_every_raw_byte(mod, byte):
    """Raw: 0x20..0x7f but '"' and '\\' copied, the rest declined (alone, 0x80 up are not UTF-8)."""
    b = bytes([byte])
    want = b if 0x20 <= byte < 0x80 and b not in b'"\\' else None
    for pad in range(0, 18):  # every offset in the C side's 8-byte words
        data = b"x" * pad + b + b"0123456789abcdef"
        assert mod.json_unescape(data) == (None if want is None else data)
    assert mod.json_unescape(b) == want


@pytest.mark.parametrize("mod", BACKENDS, ids=IDS)
@pytest.mark.parametrize("byte", range(0x100))
def test_every_two_byte_escape(mod, byte):
    b = bytes([byte])
    want = SHORT.get(b)
    for data in (b"\\" + b, b"0123456789ab\\" + b + b"ghijklmnop"):  # not hex after \u
        got = mod.json_unescape(data)
        assert got == (None if want is None else data.replace(b"\\" + b, want)), data


@pytest.mark.parametrize("mod", BACKENDS, ids=IDS)
def test_every_u_escape(mod):
    for cp in range(0x10000):
        want = None if 0xD800 <= cp <= 0xDFFF else chr(cp).encode()
        for fmt in (b"\\u%04x", b"\\u%04X"):
            esc = fmt % cp
            assert mod.json_unescape(esc) == want, esc
            if cp % 61 == 0:
                assert mod.json_unescape(b"abcdefg" + esc + b"hijklmnopq") == (
                    None if want is None else b"abcdefg" + want + b"hijklmnopq")


def test_surrogate_pairs():
    for hi in list(range(0xD800, 0xD810)) + list(range(0xDBF0, 0xDC00)) + [0xD83D, 0xDA00]:
        for lo in list(range(0xDC00, 0xDC08)) + list(range(0xDFF8, 0xE000)) + [0xDE00, 0xDBFF, 0xE000, 0x0041]:
            for fmt in (b"\\u%04x\\u%04x", b"\\u%04X\\u%04x", b"\\u%04x\\u%04X"):
                data = fmt % (hi, lo)
                got = check(data)
                if 0xDC00 <= lo <= 0xDFFF:
                    assert got == chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)).encode()
                else:
                    assert got is None


def test_two_and_three_byte_raw_sequences():
    # after every lead byte, the bytes at the edges of Table 3-7's ranges and the special ASCII
    probes = (0x00, 0x22, 0x5C, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF)
    for lead in range(0x80, 0x100):
        for second in range(0x100):
            check(bytes((lead, second)))
            check(b"0123456" + bytes((lead, second)) + b"\\n")
        for second in probes:
            for third in probes:
                check(bytes((lead, second, third)))
                if lead >= 0xF0:
                    for fourth in probes:
                        check(bytes((lead, second, third, fourth)))


@pytest.mark.parametrize("mod", BACKENDS, ids=IDS)
def test_buffer_types(mod):
    data = b"line \\\"1\\\"\\n\\u00e9"
    want = 'line "1"\né'.encode()
    assert mod.json_unescape(bytearray(data)) == want
    assert mod.json_unescape(memoryview(data)) == want
    assert mod.json_unescape(memoryview(b"xx" + data + b"yy")[2:-2]) == want
    assert mod.json_unescape(memoryview(b'"' + data + b'"')[1:-1]) == want


def test_large_inputs():
    """Outputs past the kept buffer (grown, then one-off past 16 MiB) are whole."""
    line = 'stdout line with "quotes", \\ and \t tabs and é ünïcödé 😀\n'.encode()
    small = check(b"x\\n")
    for lines in (1000, 10000, 300000):
        data = line * lines
        escaped = _cwrap.json_escape(data)[0]
        assert _cwrap.json_unescape(escaped) == data
        if lines < 300000:
            assert _py.json_unescape(escaped) == data
        assert _cwrap.json_unescape(escaped + b"\\") is None
        assert check(b"x\\n") == small


def test_threads_do_not_share_output(same_in_threads):
    datas = [_cwrap.json_escape(f"thread {i} \"line\" é\n".encode() * (5000 + 977 * i))[0] for i in range(4)]
    same_in_threads(_cwrap.json_unescape, datas, [_py.json_unescape(d) for d in datas])


@settings(max_examples=1000, deadline=None)
@given(data=st.binary(max_size=200), start=st.integers(0, 20))
def test_inverts_json_escape(data, start):
    start = min(start, len(data))
    escaped, consumed, status = _cwrap.json_escape(data, start)
    got = check(escaped)
    assert got == data[start:start + consumed]


# Text weighted to what needs care, lone surrogates included (st.text has none).
SPECIAL_CHARS = st.sampled_from(['"', "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "€", "😀", "\U0010ffff",
                                 "\ud800", "\udbff", "\udc00", "\udfff", "\ud83d\ude00"])
TEXT = st.lists(st.one_of(st.text(max_size=12), SPECIAL_CHARS, st.integers(0xD800, 0xDFFF).map(chr)),
                max_size=30).map("".join)


@settings(max_examples=1000, deadline=None)
@given(text=TEXT)
def test_inverts_json_dumps(text):
    # ensure_ascii=True: surrogates go as \u escapes; adjacent high+low chars make
    # a pair, read back as one code point (as UTF-16 decoding reads them)
    body = json.dumps(text, ensure_ascii=True)[1:-1].encode()
    value = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    try:
        want = value.encode()
    except UnicodeEncodeError:  # a lone surrogate
        want = None
    assert check(body) == want
    # ensure_ascii=False: surrogates go raw, which is not UTF-8
    body = json.dumps(text, ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass")
    try:
        want = text.encode()
    except UnicodeEncodeError:
        want = None
    assert check(body) == want


# Garbage made of the pieces the rule is about.
PIECES = st.sampled_from([b"\\", b"u", b"\\u", b"\\ud83d", b"\\ude00", b"\\uD800", b"\\udc0", b"\\u00", b"00e9",
                          b"dc00", b"Df", b"g", b"\\n", b"\\/", b'"', b"\x00", b"\x1f", b"\x7f", b"\xc3", b"\xa9",
                          b"\xed\xa0\x80", b"\xf0\x9f\x98\x80", b"\xff", b"abcdefgh", b" "])


@settings(max_examples=2000, deadline=None)
@given(data=st.lists(st.one_of(PIECES, st.binary(max_size=12)), max_size=40).map(b"".join))
def test_garbage(data):
    check(data)


@settings(max_examples=1000, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes(data):
    check(data)


def test_selected_backend_exports_json_unescape():
    import flux_launch._accel as accel

    assert accel.json_unescape is _cwrap.json_unescape
