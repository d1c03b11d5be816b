"""The C JSON string escaper against its Python twin (json.dumps with
ensure_ascii=False on the longest valid UTF-8 prefix): same escaped bytes, same
count consumed, same status for any bytes and any start, and the escaped text
loads back to the bytes consumed."""

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flux_launch._accel import _py

if os.environ.get("FLUX_LAUNCH_ACCEL") == "py":
    pytest.skip("FLUX_LAUNCH_ACCEL=py: the C backend is deliberately disabled", allow_module_level=True)
from flux_launch._accel import _cwrap  # an ImportError here means the C build failed

BACKENDS = [_py, _cwrap]
IDS = ["py", "c"]

SHORT = {0x08: b"\\b", 0x09: b"\\t", 0x0A: b"\\n", 0x0C: b"\\f", 0x0D: b"\\r"}


def check(data, start=0):
    """Both backends agree, and what they say holds."""
    got = _cwrap.json_escape(data, start)
    assert got == _py.json_escape(data, start)
    escaped, consumed, status = got
    rest = bytes(data[start:])
    assert 0 <= consumed <= len(rest)
    assert json.loads(b'"' + escaped + b'"').encode() == rest[:consumed]
    if status == 0:
        assert consumed == len(rest)
    else:
        assert consumed < len(rest)
        with pytest.raises(UnicodeDecodeError) as exc:
            rest.decode()
        assert exc.value.start == consumed
        assert (exc.value.reason == "unexpected end of data") == (status == 1)
    return got


@pytest.mark.parametrize("mod", BACKENDS, ids=IDS)
@pytest.mark.parametrize("byte", range(0x80))
def test_every_ascii_byte(mod, byte):
    if byte in SHORT:
        want = SHORT[byte]
    elif byte < 0x20:
        want = b"\\u%04x" % byte
    elif byte in b'"\\':
        want = b"\\" + bytes([byte])
    else:
        want = bytes([byte])  # 0x7f included
    for data in (bytes([byte]), b"abcdefghij" + bytes([byte]) + b"klmnopqrstuvwxyz"):
        escaped, consumed, status = mod.json_escape(data)
        assert escaped == data.replace(bytes([byte]), want)
        assert (consumed, status) == (len(data), 0)


@pytest.mark.parametrize("mod", BACKENDS, ids=IDS)
@pytest.mark.parametrize("data,expected", [
    (b"", (b"", 0, 0)),
    (b'say "hi"\\\n', (b'say \\"hi\\"\\\\\\n', 10, 0)),
    (b"\x00\x1f\x7f", (b"\\u0000\\u001f\x7f", 3, 0)),
    ("é½€𝄞😀\u2028\ufeff\U0010ffff".encode(), ("é½€𝄞😀\u2028\ufeff\U0010ffff".encode(), 25, 0)),
    # incomplete at the end: every byte valid so far (status 1)
    (b"ab\xe2\x82", (b"ab", 2, 1)),
    (b"ab\xe2", (b"ab", 2, 1)),
    (b"\xf0", (b"", 0, 1)),
    (b"\xf0\x9f", (b"", 0, 1)),
    (b"\xf0\x9f\x98", (b"", 0, 1)),
    (b"\xf4\x8f\xbf", (b"", 0, 1)),
    (b"x\xc3", (b"x", 1, 1)),
    (b"\xed\x9f", (b"", 0, 1)),
    # invalid (status 2)
    (b"\xed\xa0", (b"", 0, 2)),               # a surrogate's start
    (b"\xed\xa0\x80", (b"", 0, 2)),           # U+D800
    (b"\xed\xbf\xbf", (b"", 0, 2)),           # U+DFFF
    (b"\xf4\x90", (b"", 0, 2)),               # above U+10FFFF
    (b"\xf4\x90\x80\x80", (b"", 0, 2)),
    (b"\xf5", (b"", 0, 2)),
    (b"\xff", (b"", 0, 2)),
    (b"\xc0", (b"", 0, 2)),                   # overlongs
    (b"\xc0\x80", (b"", 0, 2)),
    (b"\xc1\xbf", (b"", 0, 2)),
    (b"\xe0\x80", (b"", 0, 2)),
    (b"\xe0\x80\x80", (b"", 0, 2)),
    (b"\xf0\x80\x80\x80", (b"", 0, 2)),
    (b"\x80", (b"", 0, 2)),                   # lone continuation
    (b"ok\n\xe2\x82x", (b"ok\\n", 3, 2)),      # cut by a non-continuation
    (b"\xe2\x82\xac\xe2\x82", ("€".encode(), 3, 1)),
    (b"\xe2\x82\xff\xe2", (b"", 0, 2)),       # the first error decides
])
def test_cases(mod, data, expected):
    assert mod.json_escape(data) == expected
    check(data)


@pytest.mark.parametrize("mod", BACKENDS, ids=IDS)
def test_start_and_buffer_types(mod):
    data = b'\xff\xfeline "1"\n\xe2\x82'
    assert mod.json_escape(data, 2) == (b'line \\"1\\"\\n', 9, 1)
    assert mod.json_escape(bytearray(data), 2) == (b'line \\"1\\"\\n', 9, 1)
    assert mod.json_escape(memoryview(data), 11) == (b"", 0, 1)
    assert mod.json_escape(data, len(data)) == (b"", 0, 0)
    assert mod.json_escape(data, 0) == (b"", 0, 2)
    for bad in (-1, len(data) + 1):
        with pytest.raises(ValueError):
            mod.json_escape(data, bad)


def test_two_byte_sequences_exhaustively():
    for lead in range(0x80, 0x100):
        for second in range(0x100):
            seq = bytes((lead, second))
            check(seq)
            check(b"0123456" + seq)


def test_three_and_four_byte_sequences():
    # every lead byte; after it, the bytes at the edges of Table 3-7's ranges
    probes = (0x00, 0x41, 0x7F, 0x80, 0x81, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xF4, 0xFF)
    for lead in range(0xC0, 0x100):
        for second in probes:
            for third in probes:
                check(bytes((lead, second, third)))
                if lead >= 0xE0:
                    for fourth in probes:
                        check(bytes((lead, second, third, fourth)))


def test_large_inputs():
    """Outputs past the kept buffer (grown, then one-off past 16 MiB) are whole."""
    line = 'stdout line with "quotes", \\ and \t tabs and é ünïcödé 😀\n'.encode()
    small = check(b"x\n")
    for lines in (1000, 10000, 60000):
        data = line * lines
        assert check(data)[1:] == (len(data), 0)
        assert check(b"x\n") == small


def test_threads_do_not_share_output(same_in_threads):
    datas = [(f"thread {i} \"line\"\n".encode() * (5000 + 977 * i)) for i in range(4)]
    same_in_threads(_cwrap.json_escape, datas, [_py.json_escape(d) for d in datas])


@settings(max_examples=1000, deadline=None)
@given(data=st.binary(max_size=200), start=st.integers(0, 20))
def test_any_bytes(data, start):
    check(data, min(start, len(data)))


# Bytes a text is made of, weighted to the ones that need care.
SPECIAL = st.sampled_from(['"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "€", "😀", "\U0010ffff"])


@settings(max_examples=1000, deadline=None)
@given(text=st.lists(st.one_of(st.text(max_size=12), SPECIAL), max_size=30).map("".join),
       cut=st.integers(0, 400), skip=st.integers(0, 10))
def test_text_cut_anywhere(text, cut, skip):
    data = text.encode()
    start = len(text[:skip].encode())  # on a character boundary
    data = data[:max(start, cut)]
    escaped, consumed, status = check(data, start)
    assert status in (0, 1)  # valid text cut anywhere is at worst incomplete


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.one_of(st.binary(max_size=40), st.text(max_size=40).map(str.encode)), max_size=10))
def test_mixed_valid_and_invalid(parts):
    data = b"".join(parts)
    check(data)
    for start in range(0, len(data), 7):
        check(data, start)


def test_selected_backend_exports_json_escape():
    import flux_launch._accel as accel

    assert accel.json_escape is _cwrap.json_escape
