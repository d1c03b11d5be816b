"""Tests for flux_launch.proto.rv1 (RFC 20 R version 1)."""

import copy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flux_launch.proto import rv1
from flux_launch.proto.rv1 import ResourceSet

# RFC 20 example (data/spec_20/example1.json)
RFC_EXAMPLE = {
    "version": 1,
    "execution": {
        "R_lite": [{"rank": "19-22", "children": {"core": "0-47", "gpu": "0-7"}}],
        "nodelist": ["node[186-189]"],
        "nslots": 32,
        "starttime": 1676560542,
        "expiration": 1676562342,
    },
}


def test_decode_rfc_example():
    rs = rv1.decode(RFC_EXAMPLE)
    assert rs.rank_list() == [19, 20, 21, 22]
    assert rs.ranks[19] == {"core": list(range(48)), "gpu": list(range(8))}
    assert rs.nodelist == ["node186", "node187", "node188", "node189"]
    assert rs.host(21) == "node188"
    assert rs.starttime == 1676560542.0 and rs.expiration == 1676562342.0
    assert rs.ncores == 4 * 48 and rs.ngpus == 4 * 8 and rs.nnodes == 4
    out = rs.to_dict()
    assert out["execution"]["R_lite"] == RFC_EXAMPLE["execution"]["R_lite"]
    assert out["execution"]["nodelist"] == ["node[186-189]"]


def test_encode_shape_and_compression():
    alloc = {0: {"core": [0, 1, 2, 3], "gpu": [0]},
             1: {"core": range(4), "gpu": [0]},
             2: {"core": [0, 1], "gpu": []},
             3: {"core": [0, 1, 2, 3], "gpu": [0]}}
    R = rv1.encode(alloc, nodelist=["n0", "n1", "n2", "n3"], starttime=10, expiration=20)
    assert R == {
        "version": 1,
        "execution": {
            "R_lite": [
                {"rank": "0-1,3", "children": {"core": "0-3", "gpu": "0"}},
                {"rank": "2", "children": {"core": "0-1"}},
            ],
            "nodelist": ["n[0-3]"],
            "starttime": 10.0,
            "expiration": 20.0,
        },
    }
    rs = rv1.decode(R)
    assert rs.ranks == {0: {"core": [0, 1, 2, 3], "gpu": [0]},
                        1: {"core": [0, 1, 2, 3], "gpu": [0]},
                        2: {"core": [0, 1], "gpu": []},
                        3: {"core": [0, 1, 2, 3], "gpu": [0]}}
    assert rs.hosts() == {0: "n0", 1: "n1", 2: "n2", 3: "n3"}


def test_entries_sorted_by_lowest_rank_and_gpu_omitted():
    R = rv1.encode({5: {"core": [1]}, 0: {"core": [0, 2]}, 3: {"core": [1]}})
    assert R["execution"]["R_lite"] == [
        {"rank": "0", "children": {"core": "0,2"}},
        {"rank": "3,5", "children": {"core": "1"}},
    ]
    assert "nodelist" not in R["execution"]
    assert "properties" not in R["execution"]


def test_nodelist_follows_rank_order_not_names():
    R = rv1.encode({0: {"core": [0]}, 1: {"core": [0]}, 2: {"core": [0]}},
                   nodelist=["b2", "a", "b1"])
    assert R["execution"]["nodelist"] == ["b2,a,b1"]
    assert rv1.decode(R).hosts() == {0: "b2", 1: "a", 2: "b1"}
    # hostlist expressions are accepted too
    assert rv1.encode({0: {"core": [0]}, 1: {"core": [0]}},
                      nodelist="x[0-1]")["execution"]["nodelist"] == ["x[0-1]"]


def test_properties_round_trip():
    R = rv1.encode({0: {"core": [0]}, 1: {"core": [0]}, 2: {"core": [0]}},
                   properties={"debug": [0, 1], "big": "2"})
    assert R["execution"]["properties"] == {"debug": "0-1", "big": "2"}
    assert rv1.decode(R).properties == {"debug": [0, 1], "big": [2]}


def test_string_rank_keys_and_idset_strings():
    rs = ResourceSet({"3": {"core": "0-1", "gpu": "1"}})
    assert rs.ranks == {3: {"core": [0, 1], "gpu": [1]}}


def test_decode_merges_split_rank_entries():
    R = {"version": 1, "execution": {"R_lite": [
        {"rank": "0", "children": {"core": "0-1"}},
        {"rank": "0", "children": {"core": "2", "gpu": "0"}}]}}
    assert rv1.decode(R).ranks == {0: {"core": [0, 1, 2], "gpu": [0]}}


def test_decode_without_nodelist_and_times():
    rs = rv1.decode({"version": 1, "execution": {"R_lite": []}})
    assert rs.ranks == {} and rs.nodelist == [] and rs.starttime == 0.0
    assert rs.rank_list() == [] and rs.hosts() == {} and rs.ncores == 0


def test_unknown_keys_ignored():
    R = copy.deepcopy(RFC_EXAMPLE)
    R["scheduling"] = {"graph": {}}
    R["execution"]["R_lite"][0]["children"]["future"] = "0"
    R["execution"]["other"] = 1
    assert rv1.decode(R).ngpus == 32


def test_copy_is_independent_and_equal():
    rs = rv1.decode(RFC_EXAMPLE)
    cp = rs.copy()
    assert cp == rs
    cp.ranks[19]["core"].pop()
    assert cp != rs and len(rs.ranks[19]["core"]) == 48


def test_union_difference_intersection():
    a = ResourceSet({0: {"core": [0, 1]}, 1: {"core": [0, 1], "gpu": [0]}},
                    nodelist=["h0", "h1"])
    b = ResourceSet({1: {"core": [1], "gpu": [0]}, 2: {"core": [0]}},
                    nodelist=["h1", "h2"])
    u = a.union(b)
    assert u.ranks == {0: {"core": [0, 1], "gpu": []}, 1: {"core": [0, 1], "gpu": [0]},
                       2: {"core": [0], "gpu": []}}
    assert u.nodelist == ["h0", "h1", "h2"]
    d = a.difference(b)
    assert d.ranks == {0: {"core": [0, 1], "gpu": []}, 1: {"core": [0], "gpu": []}}
    assert d.nodelist == ["h0", "h1"]
    assert a.difference(a).ranks == {}
    i = a.intersection(b)
    assert i.ranks == {1: {"core": [1], "gpu": [0]}} and i.nodelist == ["h1"]
    # union of the parts gives back the whole
    assert d.union(i).ranks == a.ranks


BAD = [
    ("not a dict", "expected a JSON object"),
    ({"execution": {"R_lite": []}}, "missing version"),
    ({"version": 2, "execution": {"R_lite": []}}, "unsupported version"),
    ({"version": True, "execution": {"R_lite": []}}, "unsupported version"),
    ({"version": 1}, "missing execution"),
    ({"version": 1, "execution": []}, "execution must be an object"),
    ({"version": 1, "execution": {}}, "missing execution.R_lite"),
    ({"version": 1, "execution": {"R_lite": {}}}, "must be an array"),
    ({"version": 1, "execution": {"R_lite": [5]}}, "R_lite[0] must be an object"),
    ({"version": 1, "execution": {"R_lite": [{"children": {"core": "0"}}]}}, "rank"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0"}]}}, "children"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0", "children": {}}]}}, "core"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0-x", "children": {"core": "0"}}]}},
     "invalid R_lite[0].rank"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0", "children": {"core": "3-1"}}]}},
     "invalid R_lite[0].children.core"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0", "children": {"core": "0",
                                                                        "gpu": 1}}]}},
     "children.gpu"),
    ({"version": 1, "execution": {"R_lite": [
        {"rank": "0", "children": {"core": "0-1"}},
        {"rank": "0", "children": {"core": "1"}}]}}, "core 1 appears twice"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0-1", "children": {"core": "0"}}],
                                  "nodelist": ["a"]}}, "nodelist has 1 hosts"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0", "children": {"core": "0"}}],
                                  "nodelist": "a"}}, "nodelist must be an array"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0", "children": {"core": "0"}}],
                                  "nodelist": ["a[1-"]}}, "invalid nodelist"),
    ({"version": 1, "execution": {"R_lite": [], "starttime": "now"}}, "starttime"),
    ({"version": 1, "execution": {"R_lite": [], "starttime": -1}}, "starttime"),
    ({"version": 1, "execution": {"R_lite": [], "starttime": 10, "expiration": 5}},
     "before starttime"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0", "children": {"core": "0"}}],
                                  "properties": {"x": "1"}}}, "not in the set"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0", "children": {"core": "0"}}],
                                  "properties": {"a|b": "0"}}}, "illegal character"),
    ({"version": 1, "execution": {"R_lite": [{"rank": "0", "children": {"core": "0"}}],
                                  "properties": {"x": 0}}}, "idset string"),
]


@pytest.mark.parametrize("R,msg", BAD)
def test_invalid_R(R, msg):
    with pytest.raises(ValueError) as exc:
        rv1.decode(R)
    assert str(exc.value).startswith("R: ")
    assert msg in str(exc.value)


@pytest.mark.parametrize("alloc", [
    {-1: {"core": [0]}},
    {0: {"core": [-1]}},
    {0: {"core": [True]}},
    {0: {"core": 5}},
    {"x": {"core": [0]}},
    {0: ["core"]},
    {0: {"core": [0]}, "0": {"core": [1]}},
])
def test_encode_rejects_bad_alloc(alloc):
    with pytest.raises(ValueError, match=r"^R: "):
        rv1.encode(alloc)


def test_encode_rejects_host_count_mismatch():
    with pytest.raises(ValueError, match="nodelist has 3 hosts"):
        rv1.encode({0: {"core": [0]}}, nodelist=["a", "b", "c"])


allocs = st.dictionaries(
    st.integers(0, 40),
    st.fixed_dictionaries({"core": st.sets(st.integers(0, 15), max_size=8),
                           "gpu": st.sets(st.integers(0, 3), max_size=2)}),
    max_size=12,
)


@given(allocs, st.booleans())
def test_round_trip_property(alloc, hosts):
    nodelist = [f"node{r}" for r in sorted(alloc)] if hosts and alloc else None
    R = rv1.encode(alloc, nodelist=nodelist, starttime=1.5, expiration=2.5)
    rs = rv1.decode(R)
    assert rs.ranks == {r: {"core": sorted(v["core"]), "gpu": sorted(v["gpu"])}
                        for r, v in alloc.items()}
    assert rs.nodelist == (nodelist or [])
    assert (rs.starttime, rs.expiration) == (1.5, 2.5)
    assert rv1.encode(rs.ranks, nodelist, 1.5, 2.5) == R == rs.to_dict()
    # ranks sharing identical children are always in a single entry
    kids = [tuple(sorted(e["children"].items())) for e in R["execution"]["R_lite"]]
    assert len(kids) == len(set(kids))
