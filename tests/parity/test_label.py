"""The C line labeller against its Python twin: same output for any bytes and any
chunking, and both equal to labelling the whole stream at once."""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flux_launch._accel import _py

if os.environ.get("FLUX_LAUNCH_ACCEL") == "py":
    pytest.skip("FLUX_LAUNCH_ACCEL=py: the C backend is deliberately disabled", allow_module_level=True)
from flux_launch._accel import _cwrap  # an ImportError here means the C build failed

BACKENDS = [_py, _cwrap]


def stream(mod, prefix, chunks):
    out, partial = [], b""
    for chunk in chunks:
        data, partial = mod.label_lines(prefix, chunk, partial)
        out.append(data)
    out.append(mod.label_flush(prefix, partial))
    return b"".join(out)


def reference(prefix, whole):
    lines = whole.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join(prefix + line + b"\n" for line in lines)


@pytest.mark.parametrize("mod", BACKENDS, ids=["py", "c"])
@pytest.mark.parametrize("data,partial,expected", [
    (b"a\nb\n", b"", (b"0: a\n0: b\n", b"")),
    (b"a\nb", b"", (b"0: a\n", b"b")),
    (b"", b"x", (b"", b"x")),
    (b"y\n", b"x", (b"0: xy\n", b"")),
    (b"\n\n", b"", (b"0: \n0: \n", b"")),
    (b"\xff\x00\n\xfe", b"", (b"0: \xff\x00\n", b"\xfe")),
])
def test_label_lines_cases(mod, data, partial, expected):
    assert mod.label_lines(b"0: ", data, partial) == expected


@pytest.mark.parametrize("mod", BACKENDS, ids=["py", "c"])
def test_flush_ends_a_partial_line(mod):
    assert mod.label_flush(b"3: ", b"tail") == b"3: tail\n"
    assert mod.label_flush(b"3: ", b"") == b""


@settings(max_examples=300, deadline=None)
@given(prefix=st.binary(max_size=8), chunks=st.lists(st.binary(max_size=64), max_size=12),
       newline_heavy=st.lists(st.sampled_from([b"\n", b"ab", b"\n\n", b"x\n", b"\xff"]), max_size=20))
def test_backends_agree_on_any_chunking(prefix, chunks, newline_heavy):
    chunks = chunks + newline_heavy
    whole = b"".join(chunks)
    got_py = stream(_py, prefix, chunks)
    got_c = stream(_cwrap, prefix, chunks)
    assert got_c == got_py
    assert got_py == reference(prefix, whole)


def test_selected_backend_is_c_when_built():
    import flux_launch._accel as accel

    assert accel.BACKEND == "c"
    assert accel.label_lines is _cwrap.label_lines


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 2039, 2040, 2041, 2047, 2048, 2049, 4096, 100003])
def test_count_lines_is_bytes_count(n):
    """flx_count_lines sizes label_lines' output: it must never undercount."""
    from flux_launch._accel._c import lib

    for data in (b"\n" * n, b"x\n" * n, (b"\n" * 7 + b"\xff") * n):
        for start in (0, 1, 3):
            chunk = data[start:]
            assert lib.flx_count_lines(chunk, len(chunk)) == chunk.count(b"\n")


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=3000), newlines=st.integers(0, 5000))
def test_count_lines_any_bytes(data, newlines):
    from flux_launch._accel._c import lib

    data = data + b"\n" * newlines
    assert lib.flx_count_lines(data, len(data)) == data.count(b"\n")
