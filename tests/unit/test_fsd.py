"""Tests for flux_launch.core.fsd (RFC 23 Flux Standard Duration)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flux_launch.core import fsd

PARSE = [
    ("30", 30.0),
    ("0", 0.0),
    ("1.5s", 1.5),
    ("10m", 600.0),
    ("2h", 7200.0),
    ("1d", 86400.0),
    ("0.5ms", 0.0005),
    ("500ms", 0.5),
    ("1e3", 1000.0),
    ("1.5e1m", 900.0),
    (".5", 0.5),
    ("5.", 5.0),
    ("+5", 5.0),
    ("0s", 0.0),
]


@pytest.mark.parametrize("text,seconds", PARSE)
def test_parse(text, seconds):
    assert fsd.parse(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["inf", "infinity", "INF", "Infinity", "+inf"])
def test_parse_infinity(text):
    assert fsd.parse(text) == math.inf


INVALID = [
    "", "-1", "-0", "abc", "1x", "nan", "NaN", "s", "ms", "m", "1 s", " 1", "1 ",
    "1_0", "1ss", "1sm", "1M", "1S", "infs", "infinitym", "0x10", "1e", "e5",
    "1.2.3", "--1", "1e999m",
]


@pytest.mark.parametrize("text", INVALID)
def test_parse_invalid(text):
    with pytest.raises(ValueError) as exc:
        fsd.parse(text)
    assert str(exc.value).startswith(f"invalid Flux standard duration {text!r}")


def test_parse_invalid_message_exact():
    with pytest.raises(ValueError, match=r"^invalid Flux standard duration '1x'$"):
        fsd.parse("1x")


def test_parse_type_error():
    with pytest.raises(TypeError):
        fsd.parse(5)


# expected strings follow flux-core fsd_format_duration() (C "%.6g" + unit)
FORMAT = [
    (0, "0s"),
    (0.5, "0.5s"),
    (0.1, "0.1s"),
    (0.05, "50ms"),
    (0.0123, "12.3ms"),
    (1.23e-05, "0.0123ms"),
    (1, "1s"),
    (59.9, "59.9s"),
    (60, "1m"),
    (90, "1.5m"),
    (3599, "59.9833m"),
    (3600, "1h"),
    (5400, "1.5h"),
    (86400, "1d"),
    (172800, "2d"),
    (1 / 3, "0.333333s"),
    (1e9, "11574.1d"),
    (math.inf, "infinity"),
]


@pytest.mark.parametrize("seconds,text", FORMAT)
def test_format(seconds, text):
    assert fsd.format(seconds) == text


def test_format_precision():
    assert fsd.format(1 / 3, precision=2) == "0.33s"
    assert fsd.format(100, precision=2) == "1.7m"


@pytest.mark.parametrize("bad", [-1, -0.001, math.nan, -math.inf])
def test_format_invalid(bad):
    with pytest.raises(ValueError):
        fsd.format(bad)


def test_format_type_error():
    with pytest.raises(TypeError):
        fsd.format("10")
    with pytest.raises(TypeError):
        fsd.format(True)


def test_aliases():
    assert fsd.parse_duration("1m") == 60.0
    assert fsd.format_duration(60) == "1m"


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_format_parse_roundtrip(seconds):
    text = fsd.format(seconds, precision=17)
    assert fsd.parse(text) == pytest.approx(seconds, rel=1e-12, abs=1e-300)


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False),
       st.sampled_from(["", "ms", "s", "m", "h", "d"]))
def test_parse_units_property(n, unit):
    mult = {"": 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    assert fsd.parse(repr(n) + unit) == pytest.approx(n * mult)


@given(st.floats(min_value=0, max_value=1e12, allow_nan=False))
def test_format_unit_choice(seconds):
    text = fsd.format(seconds)
    unit = text.lstrip("0123456789.e+-")
    if seconds == 0:
        assert unit == "s"
    elif seconds < 0.1:
        assert unit == "ms"
    elif seconds < 60:
        assert unit == "s"
    elif seconds < 3600:
        assert unit == "m"
    elif seconds < 86400:
        assert unit == "h"
    else:
        assert unit == "d"
