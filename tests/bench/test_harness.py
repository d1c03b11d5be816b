"""bench/run.py end to end with tiny sizes: every part runs against real launchers
and the JSON and the plots are written. (No timing is asserted: figures live in
bench/results, not in tests.)"""

import json
import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.mpi]

HERE = os.path.dirname(os.path.abspath(__file__))
RUN = os.path.join(HERE, "..", "..", "bench", "run.py")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    res = subprocess.run([sys.executable, RUN, "--quick", "--out", str(out)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    files = sorted(os.listdir(out))
    data = json.loads((out / next(f for f in files if f.endswith(".json"))).read_text())
    return out, files, data, res.stdout


def test_every_part_has_figures_for_every_launcher_that_is_installed(quick):
    _, _, data, _ = quick
    lat = data["latency"]
    assert set(lat) == {"true", "hello"}
    for name in ("flux run (1 broker)", "flux run (2 brokers)", "mpiexec.hydra"):
        for n in ("1", "2"):
            s = lat["hello"][name][n]
            assert s["min"] <= s["median"] <= s["max"] and len(s["runs"]) == data["meta"]["config"]["repeats"]
    assert data["throughput"]["10"]["median"] > 0
    io = data["io"]["2"]
    assert set(io) == {"flux run -l (C)", "flux run -l (Python)", "mpiexec.hydra -l"}
    for name in ("flux run -l (C)", "flux run -l (Python)"):  # whole lines: none broken, none lost
        assert io[name]["check"]["broken_lines"] == 0
        assert io[name]["check"]["bytes_out"] > io[name]["check"]["mb"] * 1e6
    assert set(data["start"]) == {"1", "2"}


def test_the_cost_split_covers_the_whole_run(quick):
    _, _, data, _ = quick
    split = data["split"]["flux run -n1 true"]
    stages = [k for k in split if k != "total"]
    for stage in ("python start", "submit round trip", "scheduling", "shell start", "task spawn",
                  "exit collection", "front end exit"):
        assert split[stage] >= 0, stage
    # consecutive stages: their sum is the whole command's time (medians: roughly)
    assert 0.5 * split["total"] <= sum(split[s] for s in stages) <= 1.5 * split["total"]
    hello = next(v for k, v in data["split"].items() if "hello" in k)
    assert hello["PMI wire-up"] > 0


def test_plots_and_table(quick):
    out, files, _, stdout = quick
    pytest.importorskip("matplotlib", reason="plots need matplotlib (pip install '.[bench]')")
    pngs = [f for f in files if f.endswith(".png")]
    for name in ("latency-true", "latency-hello", "throughput", "io", "start", "split"):
        match = [f for f in pngs if f.endswith(f"-{name}.png")]
        assert match, (name, files)
        with open(out / match[0], "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "launch latency, hello" in stdout and "cost split of flux run -n1 true" in stdout
