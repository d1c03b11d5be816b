"""flux pstree's renderer and formats (no instance): the man page's layouts,
combined leaves, connector styles, cut lines, detail headers and conversions."""

import pytest

from flux_launch.cli.jobfmt import Format, Job, Stats, fsd
from flux_launch.cli.pstree import DETAILS, Tree


def _tree(spec, combine=True):
    """``(label, [children...])`` -> Tree; children added as pstree adds them."""
    label, children = spec if isinstance(spec, tuple) else (spec, [])
    t = Tree(label, combine=combine)
    for child in children:
        t.append(_tree(child, combine))
    return t


def test_man_page_default_example():
    t = _tree((".", [("flux", [("flux", ["sleep", "sleep"]), ("flux", ["sleep"])])]))
    assert t.lines() == [".", "└── flux", "    ├── flux", "    │   └── 2*[sleep]", "    └── flux",
                         "        └── sleep"]


def test_man_page_all_example():
    inner1 = ("flux", ["sleep:PD"] * 824 + ["sleep:R"] * 2 + ["sleep:CD"] * 174)
    inner2 = ("flux", ["sleep:PD"] * 914 + ["sleep:R"] + ["sleep:CD"] * 85)
    t = _tree((".", [("flux", ["flux:PD", inner1, inner2]), "flux:CA"] + ["flux:CD"] * 36 +
               ["hostname:CA", "hostname:CD"]))
    assert t.lines() == [
        ".",
        "├── flux",
        "│   ├── flux:PD",
        "│   ├── flux",
        "│   │   ├── 824*[sleep:PD]",
        "│   │   ├── 2*[sleep:R]",
        "│   │   └── 174*[sleep:CD]",
        "│   └── flux",
        "│       ├── 914*[sleep:PD]",
        "│       ├── sleep:R",
        "│       └── 85*[sleep:CD]",
        "├── flux:CA",
        "├── 36*[flux:CD]",
        "├── hostname:CA",
        "└── hostname:CD",
    ]


def test_parents_are_never_combined_and_no_combine_keeps_all():
    t = _tree((".", [("flux", ["a"]), ("flux", ["a"]), "a", "a"]))
    assert t.lines() == [".", "├── flux", "│   └── a", "├── flux", "│   └── a", "└── 2*[a]"]
    t = _tree((".", ["a", "a"]), combine=False)
    assert t.lines() == [".", "├── a", "└── a"]


def test_leaves_with_different_prefixes_are_not_combined():
    t = Tree(".", combine=True)
    t.append(Tree("sleep", "ƒ1"))
    t.append(Tree("sleep", "ƒ2"))
    assert t.lines(skip_root=True) == ["ƒ1 sleep", "ƒ2 sleep"]


@pytest.mark.parametrize("style, expected", [
    ("ascii", [".", "|-- a", "|   `-- b", "`-- c"]),
    ("compact", [".", "├─a", "│ └─b", "└─c"]),
])
def test_styles(style, expected):
    assert _tree((".", [("a", ["b"]), "c"])).lines(style) == expected


def test_skip_root_renders_children_as_roots():
    t = _tree((".", [("flux", ["sleep"]), "x"]))
    assert t.lines(skip_root=True) == ["flux", "└── sleep", "x"]


def test_long_lines_are_cut_with_a_plus():
    t = _tree((".", ["a" * 30]))
    assert t.lines(width=10) == [".", "└── aaaaa+"]
    assert t.lines(width=None) == [".", "└── " + "a" * 30]


@pytest.mark.parametrize("name, header", [
    ("default", "       JOBID USER     ST NTASKS NNODES  RUNTIME"),
    ("progress", "       JOBID NTASKS  NJOBS  PROG CORE%  GPU%    RUNTIME"),
    ("stats", "       JOBID           STATS              RUNTIME"),
    ("resources", "       JOBID NODES  USED CORES  USED  GPUS  USED"),
])
def test_detail_headers(name, header):
    assert Format(DETAILS[name]).header() == header


def test_default_details_row():
    info = {"id": 1234567890123, "userid": 0, "state": 16, "name": "flux", "ntasks": 2, "nnodes": 0,
            "t_run": 100.0, "t_cleanup": 110.68}
    row = Format(DETAILS["default"]).format(Job(info))
    assert len(row) == len(Format(DETAILS["default"]).header())
    fields = row.split()
    assert fields[0].startswith("ƒ") and fields[2:] == ["R", "2", "-", "10.68s"]  # 0 nodes: "-"


def test_empty_instance_fields_format_as_blanks():
    fmt = Format(DETAILS["stats"])
    row = fmt.format(Job({"id": 1, "state": 16, "name": "x"}))
    assert row.split()[1:] == ["0:00:00"]  # a job that is not an instance: no stats
    assert len(row) == len(fmt.header())


@pytest.mark.parametrize("secs, text", [(0.0, "0s"), (8.5391, "8.539s"), (10.68, "10.68s"), (90, "1.5m"),
                                        (7200, "2h"), (172800, "2d")])
def test_fsd(secs, text):
    assert fsd(secs) == text


def test_percent_and_hms_conversions():
    f = Format("{t_run!P} {nnodes!P} {ntasks!P} {runtime!H} {t_depend!P:>5}|")
    job = Job({"id": 1, "state": 64, "t_run": 0.375, "t_cleanup": 133.375, "ntasks": 0.005, "nnodes": 1})
    assert f.format(job) == "37.5% 100% 0.50% 0:02:13      |"  # no t_depend: blank


def test_stats_counts_results():
    jobs = [{"state": 8}, {"state": 16}, {"state": 32}, {"state": 64, "success": True},
            {"state": 64, "success": False}, {"state": 64, "exception_occurred": True, "exception_type": "cancel"}]
    s = Stats(jobs)
    assert str(s) == "PD:1 R:2 CD:1 F:1" and s.total == 6 and s.inactive == 3 and s.canceled == 1


def test_unknown_field_is_refused():
    with pytest.raises(ValueError, match="Unknown format field: bogus"):
        Format("{bogus}")


def test_root_id_is_a_dot_in_every_encoding():
    f = Format("{id.f58} {id.dec} {name}")
    assert f.format(Job({"id": 0, "state": 16, "name": "."}, root=True)) == ". . ."
