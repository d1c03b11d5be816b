"""Tests for flux_launch.core.hostlist (RFC 29, flux-core libhostlist)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flux_launch.core import hostlist
from flux_launch.core.hostlist import Hostlist

# RFC 29 test vectors: expression -> expanded list
RFC29 = [
    ("", []),
    ("foox,fooy,fooz", ["foox", "fooy", "fooz"]),
    ("[1-3,5-6]", ["1", "2", "3", "5", "6"]),
    ("foo[1-5]", ["foo1", "foo2", "foo3", "foo4", "foo5"]),
    ("foo[0-4]-eth2", [f"foo{i}-eth2" for i in range(5)]),
    ("foo1,foo1,foo1", ["foo1", "foo1", "foo1"]),
    ("[00-02]", ["00", "01", "02"]),
    ("[00-2]", ["00", "01", "02"]),
    ("foo[1,1,2,1]", ["foo1", "foo1", "foo2", "foo1"]),
]


@pytest.mark.parametrize("text,hosts", RFC29)
def test_rfc29_vectors(text, hosts):
    hl = Hostlist(text)
    assert list(hl) == hosts
    assert len(hl) == len(hosts)


# flux-core libhostlist codec tests: input -> encoded output, count
CODEC = [
    ("foo-1a-2,foo-1a-3", "foo-1a-[2-3]", 2),
    ("foo1,foo2,foo3,fooi", "foo[1-3],fooi", 4),
    ("foo1,fooi,foo2,foo3", "foo1,fooi,foo[2-3]", 4),
    ("fooi,foo1,foo2,foo3", "fooi,foo[1-3]", 4),
    ("fooi,foo1,foo2,foo3,foo5,foo7,foo8", "fooi,foo[1-3,5,7-8]", 7),
    ("1,2,3,4,5,9", "[1-5,9]", 6),
    (",1,2,3,4,5,9", "[1-5,9]", 6),
    (",1,2,3,4,5,9,", "[1-5,9]", 6),
    ("[1-5]", "[1-5]", 5),
    ("foo[1,3]-bar", "foo1-bar,foo3-bar", 2),
    ("[00-03]p", "00p,01p,02p,03p", 4),
    ("p[00-3]p", "p00p,p01p,p02p,p03p", 4),
    ("14636", "14636", 1),
    ("node0,node1,node2,node3", "node[0-3]", 4),
    ("node[01-10]", "node[01-10]", 10),
    ("node01,node02,node03", "node[01-03]", 3),
    ("foo9,foo10", "foo[9-10]", 2),
    ("foo1 foo2\tfoo3", "foo[1-3]", 3),
    ("foo[12,4,1-2]", "foo[12,4,1-2]", 4),
    ("foo[12,4,1-2],bar[26-30]", "foo[12,4,1-2],bar[26-30]", 9),
    ("foo[005,4,11-13]", "foo[005,4,11-13]", 5),
    ("[0-20],45,12,015", "[0-20,45,12,015]", 24),
]


@pytest.mark.parametrize("text,encoded,count", CODEC)
def test_codec_vectors(text, encoded, count):
    hl = Hostlist(text)
    assert len(hl) == count
    assert hl.encode() == encoded
    assert str(hl) == encoded
    assert list(Hostlist(encoded)) == list(hl)


def test_zero_padding_is_preserved():
    assert list(Hostlist("node[01-10]"))[:2] == ["node01", "node02"]
    assert list(Hostlist("node[01-10]"))[-1] == "node10"
    assert list(Hostlist("n[8-10]")) == ["n8", "n9", "n10"]
    # each idlist element keeps its own width, as in flux-core
    assert list(Hostlist("foo[005,4]")) == ["foo005", "foo4"]


def test_multiple_brackets_cartesian():
    hl = Hostlist("rack[1-2]node[0-1]")
    assert list(hl) == ["rack1node0", "rack1node1", "rack2node0", "rack2node1"]
    assert hl.encode() == "rack1node[0-1],rack2node[0-1]"


INVALID = [
    "[]", "foo[]", "foo[", "foo[1,3", "foo[[1,3]", "foo]", "foo[x-y]",
    "foo[0-1,2--5]", "foo[3-1]", "foo[1-]", "foo[-1]", "foo[1,,2]",
    "foo[0-1048576]", "a\nb", "foo[1, 2]", "foo[1]]",
]


@pytest.mark.parametrize("text", INVALID)
def test_invalid(text):
    with pytest.raises(ValueError) as exc:
        Hostlist(text)
    assert str(exc.value).startswith(f"invalid hostlist {text!r}")


def test_getitem_and_index():
    hl = Hostlist("foo[1-2,4,5],bar")
    assert hl[0] == "foo1"
    assert hl[2] == "foo4"
    assert hl[4] == "bar"
    assert hl[-1] == "bar"
    assert hl[-5] == "foo1"
    with pytest.raises(IndexError):
        hl[5]
    with pytest.raises(IndexError):
        hl[-6]
    with pytest.raises(TypeError):
        hl["0"]
    assert hl.index("foo4") == 2
    assert hl.index("bar") == 4
    with pytest.raises(ValueError):
        hl.index("foo3")
    assert "foo5" in hl and "foo3" not in hl and 5 not in hl
    assert hl[1:3].encode() == "foo[2,4]"


FIND = [
    ("tst0", "tst", -1), ("tst0,tst", "tst", 1), ("tst,tst0", "tst", 0),
    ("tst", "tst0", -1), ("foo[1-5]-eth0", "foo3-eth0", 2),
    ("foo[1-5]", "foo3-eth0", -1), ("[0-5]", "3", 3), ("[0-5]i", "0", -1),
    ("i[0-5]", "i00", -1), ("i[00-05]", "i00", 0), ("i[00-05]", "i04", 4),
    ("f00[7-8]", "f007", 0), ("f00[7-8,10]", "f0010", 2),
    ("f0010001[07-08]", "f001000108", 1), ("cornp2", "corn", -1),
    ("cornp2", "corn2", -1), ("corn-p2", "corn2", -1), ("corn1-p2", "corn2", -1),
]


@pytest.mark.parametrize("text,host,pos", FIND)
def test_find_vectors(text, host, pos):
    assert Hostlist(text).find(host) == pos


def test_append_and_extend():
    hl = Hostlist()
    assert hl.append("") == 0
    assert hl.append("foo12") == 1
    assert hl.append("foo[4,1-2]") == 3
    assert hl.encode() == "foo[12,4,1-2]"
    assert hl.append(Hostlist("bar[26-30]")) == 5
    assert hl.encode() == "foo[12,4,1-2],bar[26-30]"
    assert hl.extend(["bar31", "baz"]) == 2
    assert hl.encode() == "foo[12,4,1-2],bar[26-31],baz"
    assert len(hl) == 11


def test_failed_append_changes_nothing():
    hl = Hostlist("foo[1-3]")
    with pytest.raises(ValueError):
        hl.append("bar1,bar[")
    assert hl.encode() == "foo[1-3]" and len(hl) == 3


def test_type_errors():
    with pytest.raises(TypeError):
        Hostlist(5)
    with pytest.raises(TypeError):
        Hostlist(["a", 1])


SORTUNIQ = [
    ("foo,f,bar,baz", "bar,baz,f,foo", "bar,baz,f,foo"),
    ("[5-6],[3-4],[1-2,0]", "[0-6]", "[0-6]"),
    ("[0-20],12,15", "[0-12,12-15,15-20]", "[0-20]"),
    ("0,1,2,3,4,5,1,5", "[0-1,1-5,5]", "[0-5]"),
    ("[0-20],45,12,015", "[0-12,12-20,45,015]", "[0-20,45,015]"),
    ("bar1,bar2,foo1,foo,foo", "bar[1-2],foo,foo,foo1", "bar[1-2],foo,foo1"),
    ("foo[5-6],foo[4-7]", "foo[4-5,5-6,6-7]", "foo[4-7]"),
    ("foo[0-3],foo[0-3]", "foo[0,0-1,1-2,2-3,3]", "foo[0-3]"),
]


@pytest.mark.parametrize("text,sorted_,uniq", SORTUNIQ)
def test_sort_uniq_vectors(text, sorted_, uniq):
    a, b = Hostlist(text), Hostlist(text)
    a.sort()
    b.uniq()
    assert a.encode() == sorted_
    assert b.encode() == uniq


DELETE = [
    ("foo[2-5]", "foo6", 0, "foo[2-5]"),
    ("foo[2-5]", "foo3", 1, "foo[2,4-5]"),
    ("foo[2-5],fooi", "fooi", 1, "foo[2-5]"),
    ("foo[2-5],fooi", "foo[1-2]", 1, "foo[3-5],fooi"),
    ("foo[0-7]", "foo[1,0,2-7]", 8, ""),
    ("foo[2-4]-eth2", "foo3-eth2", 1, "foo2-eth2,foo4-eth2"),
]


@pytest.mark.parametrize("text,victims,count,result", DELETE)
def test_delete_vectors(text, victims, count, result):
    hl = Hostlist(text)
    assert hl.delete(victims) == count
    assert hl.encode() == result


def test_equality_and_copy():
    a = Hostlist("foo[1-3]")
    assert a == Hostlist("foo1,foo2,foo3") == "foo[1-3]"
    assert a != Hostlist("foo[1-4]") and a != "foo[" and a != 3
    c = a.copy()
    c.append("foo4")
    assert len(a) == 3 and len(c) == 4


def test_module_functions_and_repr():
    assert hostlist.encode(["node0", "node1", "node2", "node3"]) == "node[0-3]"
    assert list(hostlist.decode("a,b")) == ["a", "b"]
    assert repr(Hostlist("a[1-2]")) == "Hostlist('a[1-2]')"


def test_large_range_is_lazy():
    hl = Hostlist("n[0-1048575]")
    assert len(hl) == 1 << 20
    assert hl[-1] == "n1048575"
    assert hl.index("n524288") == 524288


# -- property-based round trips -------------------------------------------

prefixes = st.sampled_from(["", "n", "node", "foo-", "rack1n", "x.y"])
names = st.one_of(
    st.builds(lambda p, n, w: p + str(n).zfill(w), prefixes,
              st.integers(min_value=0, max_value=120), st.integers(min_value=1, max_value=4)),
    st.sampled_from(["login", "fooi", "a-b", "host-eth0"]),
)


@given(st.lists(names, max_size=40))
def test_roundtrip_preserves_order_and_duplicates(hosts):
    hl = Hostlist(hosts)
    assert list(hl) == hosts
    assert len(hl) == len(hosts)
    encoded = hl.encode()
    again = Hostlist(encoded)
    assert list(again) == hosts
    assert again.encode() == encoded
    for i, h in enumerate(hosts):
        assert hl[i] == h
        assert hl.find(h) == hosts.index(h)


@given(st.lists(names, max_size=40))
def test_uniq_property(hosts):
    hl = Hostlist(hosts)
    hl.uniq()
    assert sorted(hl) == sorted(set(hosts))
    assert len(hl) == len(set(hosts))


@given(st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=50))
def test_ascending_numbers_compress_to_one_bracket(nums):
    nums = sorted(set(nums))
    hl = Hostlist([f"n{i}" for i in nums])
    enc = hl.encode()
    if len(nums) > 1:
        assert enc.startswith("n[") and enc.endswith("]") and enc.count("[") == 1
    assert list(Hostlist(enc)) == [f"n{i}" for i in nums]
