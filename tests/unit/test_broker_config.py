"""broker/config.py: flux broker -c PATH (TOML file, JSON file, directory of TOML
files) and the tunables it sets under -S."""

import pytest

from flux_launch.broker.config import ConfigError, apply, load


def test_toml_file(tmp_path):
    path = tmp_path / "a.toml"
    path.write_text('[job-manager]\ninactive-age-limit = "1h"\n[site]\nx = [1, 2]\n')
    assert load(str(path)) == {"job-manager": {"inactive-age-limit": "1h"}, "site": {"x": [1, 2]}}


def test_json_file(tmp_path):
    path = tmp_path / "conf.json"
    path.write_text('{"resource": {"noverify": true}}')
    assert load(str(path)) == {"resource": {"noverify": True}}


def test_directory_merges_toml_files(tmp_path):
    (tmp_path / "a.toml").write_text("[a]\nx = 1\n")
    (tmp_path / "b.toml").write_text("[b]\ny = 2\n")
    (tmp_path / "ignored.txt").write_text("not toml at all = =")
    assert load(str(tmp_path)) == {"a": {"x": 1}, "b": {"y": 2}}


@pytest.mark.parametrize("name, text, message", [
    ("bad.toml", "x = = 1\n", "not valid TOML"),
    ("bad.json", "{", "not valid JSON"),
    ("list.json", "[1]", "must be a table"),
])
def test_bad_files_one_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load(str(path))
    assert message in str(exc.value) and str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_missing_path(tmp_path):
    with pytest.raises(ConfigError, match="no such file or directory"):
        load(str(tmp_path / "none"))


def test_table_twice_in_a_directory(tmp_path):
    (tmp_path / "a.toml").write_text("[a]\nx = 1\n")
    (tmp_path / "b.toml").write_text("[a]\ny = 2\n")
    with pytest.raises(ConfigError, match="already defined"):
        load(str(tmp_path))


def test_apply_tunables_below_setattr():
    attrs = {"broker.shutdown-timeout": "3"}
    conf = {"job-manager": {"inactive-num-limit": 7, "other": 1}, "broker": {"shutdown-timeout": 9},
            "tbon": {"fanout": 4}, "log-stderr-level": 6}
    apply(conf, attrs, given={"broker.shutdown-timeout"})
    assert attrs == {"broker.shutdown-timeout": "3", "job-manager.inactive-num-limit": "7", "tbon.fanout": "4",
                     "log-stderr-level": "6"}


def test_apply_refuses_a_table_for_a_value():
    with pytest.raises(ConfigError, match="tbon.fanout"):
        apply({"tbon": {"fanout": {"x": 1}}}, {}, given=set())
