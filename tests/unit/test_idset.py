"""Tests for flux_launch.core.idset (RFC 22)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flux_launch.core import idset
from flux_launch.core.idset import IDset

# (input, encode(ranges=False), encode(), encode(brackets=True)) taken from
# flux-core's libidset test vectors
CODEC = [
    ("2", "2", "2", "2"),
    ("7-9", "7,8,9", "7-9", "[7-9]"),
    ("1,7-9", "1,7,8,9", "1,7-9", "[1,7-9]"),
    ("1,7-9,16", "1,7,8,9,16", "1,7-9,16", "[1,7-9,16]"),
    ("1,7-9,14,16", "1,7,8,9,14,16", "1,7-9,14,16", "[1,7-9,14,16]"),
    ("1-3,7-9,14,16", "1,2,3,7,8,9,14,16", "1-3,7-9,14,16", "[1-3,7-9,14,16]"),
    ("2,3,4,5", "2,3,4,5", "2-5", "[2-5]"),
    ("", "", "", ""),
    ("1048576", "1048576", "1048576", "1048576"),
    ("[2]", "2", "2", "2"),
    ("[7-9]", "7,8,9", "7-9", "[7-9]"),
    ("[2,3,4,5]", "2,3,4,5", "2-5", "[2-5]"),
    ("[0]", "0", "0", "0"),
    ("[]", "", "", ""),
]


@pytest.mark.parametrize("text,plain,ranged,bracketed", CODEC)
def test_codec_vectors(text, plain, ranged, bracketed):
    ids = IDset(text)
    assert ids.encode(ranges=False) == plain
    assert ids.encode() == ranged
    assert str(ids) == ranged
    assert ids.encode(brackets=True) == bracketed


INVALID = [
    "4.2", "x", "1-2x", "01,2", "00", "3,2", "3-0", "2,2,2,2", "[0", "0]",
    "[[0]]", "[[0,2]", "[0,2]]", "0,[2", "0]2", "0-", "[0-]", "-5", "[-5]",
    " 1", "1 ", "1,,2", ",1", "1,", "1-3,3-5", "1-3,2", "+1", "١",
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid_inputs(text):
    with pytest.raises(ValueError) as exc:
        IDset(text)
    msg = str(exc.value)
    assert msg.startswith("invalid idset ") and repr(text) in msg
    assert "\n" not in msg


def test_invalid_message_names_reason():
    with pytest.raises(ValueError, match=r"invalid idset '3-1': range end before start"):
        idset.decode("3-1")


def test_decode_type_error():
    with pytest.raises(TypeError):
        IDset.decode(5)


def test_iteration_len_contains():
    ids = IDset("0-3,7,10-11")
    assert list(ids) == [0, 1, 2, 3, 7, 10, 11]
    assert list(reversed(ids)) == [11, 10, 7, 3, 2, 1, 0]
    assert len(ids) == 7
    assert 7 in ids and 3 in ids and 11 in ids
    assert 4 not in ids and 12 not in ids and -1 not in ids and "3" not in ids
    assert ids.first() == 0 and ids.last() == 11
    assert bool(ids) and not IDset()


def test_first_last_empty():
    with pytest.raises(ValueError):
        IDset().first()
    with pytest.raises(ValueError):
        IDset("").last()


def test_from_iterable_merges_and_sorts():
    ids = IDset([5, 3, 4, 4, 0])
    assert ids.encode() == "0,3-5"
    assert ids.ranges() == [(0, 0), (3, 5)]
    assert idset.encode([9, 8, 7, 1]) == "1,7-9"
    assert idset.encode([9, 8, 7, 1], brackets=True) == "[1,7-9]"
    with pytest.raises(ValueError):
        IDset([1, -1])
    with pytest.raises(TypeError):
        IDset([1, "2"])


def test_huge_range_is_cheap():
    ids = IDset("0-999999999999")
    assert len(ids) == 10**12
    assert 123456789 in ids
    assert ids.encode() == "0-999999999999"


def test_set_operations():
    a = IDset("0-5,10")
    b = IDset("4-7,10-12")
    assert (a | b).encode() == "0-7,10-12"
    assert (a & b).encode() == "4-5,10"
    assert (a - b).encode() == "0-3"
    assert (b - a).encode() == "6-7,11-12"
    assert (a ^ b).encode() == "0-3,6-7,11-12"
    assert a.union("20").encode() == "0-5,10,20"
    assert a.intersection(b) == IDset("4-5,10")
    assert a.difference(b) == IDset("0-3")
    assert IDset("1-2") <= a and not (b <= a) and a >= IDset("10")
    assert IDset("4").issubset(b)
    # operands are not modified
    assert a == IDset("0-5,10") and b == IDset("4-7,10-12")


def test_equality():
    assert IDset("1-3") == IDset("1,2,3") == IDset([3, 2, 1])
    assert IDset("1-3") != IDset("1-4")
    assert IDset("1-3") == {1, 2, 3}
    assert IDset("1-3") != "1-3"


def test_add_discard_copy():
    ids = IDset("1-3")
    c = ids.copy()
    ids.add(4)
    ids.add(10, 12)
    assert ids.encode() == "1-4,10-12"
    ids.discard(11)
    ids.discard(100)
    assert ids.encode() == "1-4,10,12"
    assert c.encode() == "1-3"
    with pytest.raises(ValueError):
        ids.add(5, 4)


def test_from_ranges():
    assert IDset.from_ranges([(5, 6), (0, 1), (2, 2)]).encode() == "0-2,5-6"
    with pytest.raises(ValueError):
        IDset.from_ranges([(3, 1)])


def test_repr():
    assert repr(IDset("1,3-4")) == "IDset('1,3-4')"


id_lists = st.lists(st.integers(min_value=0, max_value=300), max_size=60)


@given(id_lists)
def test_roundtrip_property(ids):
    s = IDset(ids)
    assert list(s) == sorted(set(ids))
    assert len(s) == len(set(ids))
    for ranges in (True, False):
        for brackets in (True, False):
            assert IDset(s.encode(ranges=ranges, brackets=brackets)) == s


@given(id_lists, id_lists)
def test_set_algebra_matches_python_sets(x, y):
    a, b = IDset(x), IDset(y)
    sx, sy = set(x), set(y)
    assert list(a | b) == sorted(sx | sy)
    assert list(a & b) == sorted(sx & sy)
    assert list(a - b) == sorted(sx - sy)
    assert list(a ^ b) == sorted(sx ^ sy)
    assert (a <= b) == (sx <= sy)


@given(id_lists)
def test_encoding_is_canonical(ids):
    text = IDset(ids).encode()
    # ranges never touch and always ascend
    prev_hi = -2
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        lo_i, hi_i = int(lo), int(hi or lo)
        assert lo_i > prev_hi + 1
        assert hi_i >= lo_i
        if hi:
            assert hi_i > lo_i
        prev_hi = hi_i
