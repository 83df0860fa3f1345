"""`tierdb bench` end to end on tiny sizes: outputs, verification, compare, bad flags.

Each run starts real child processes (as the command does); sizes are a few hundred keys so
the whole file stays well under a minute of CPU.
"""

from __future__ import annotations

import copy
import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import engine.bench
from engine.bench.compare import compare
from engine.bench.config import ALL_WORKLOADS
from engine.bench.peers import PEERS, unavailable

pytest.importorskip("matplotlib")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LAYOUTS = ["memory", "warm", "hot+warm", "hot+warm+cold", "warm+cold"]
INSTALLED = [p for p in PEERS if unavailable(p) is None and p != "dict"]


def tierdb(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, check=False)


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> engine.bench.BenchResult:
    """Every workload on every layout and every installed peer, tiny, one round."""
    out = tmp_path_factory.mktemp("bench") / "out"
    return engine.bench.run(workloads=list(ALL_WORKLOADS), layouts=LAYOUTS, peers=INSTALLED, keys=[300],
                            quick=True, ops=200, out=out, command=["test"])


def test_every_workload_layout_and_peer_produces_verified_results(full_run: engine.bench.BenchResult) -> None:
    cells = full_run.cells[300]
    targets = {c.target for c in cells}
    assert targets == {f"tierdb:{x}" for x in LAYOUTS} | {f"peer:{p}" for p in INSTALLED} | {"peer:dict"}
    for c in cells:
        # raw rocksdict keeps no versions: its time-travel style workloads are n/a, with the reason
        if c.target == "peer:rocksdb-raw" and c.workload in ("time-travel", "history-heavy", "graph-checkpoints"):
            assert c.status == "n/a" and "latest" in c.reason
            continue
        assert c.status == "ok", (c.workload, c.target, c.status, c.reason)
        assert c.figures, (c.workload, c.target)
    assert full_run.ok


def test_outputs_json_report_and_real_plots(full_run: engine.bench.BenchResult) -> None:
    out = full_run.out
    data = json.loads((out / "results.json").read_text())
    assert data["command"] == ["test"] and data["seeds"]["seed"] == 42
    assert data["versions"]["rocksdict"] and data["machine"]["cpus"]
    assert len(data["results"]) == len(full_run.cells[300])
    ycsb = next(r for r in data["results"] if r["workload"] == "ycsb-a" and r["target"] == "tierdb:warm")
    assert ycsb["figures"]["ops/s"]["median"] > 0 and {"read", "update"} <= set(ycsb["latency_us"])
    report = (out / "report.md").read_text()
    assert "| target |" in report and "vs peer:rocksdb" in report or "peer:rocksdb" not in INSTALLED
    for w in ALL_WORKLOADS:
        assert f"## {w}" in report
    for name in ("throughput.png", "latency.png", "resources.png"):
        w, h = png_size(out / name)
        assert w > 400 and h > 300 and (out / name).stat().st_size > 20_000, name
        assert f"({name})" in report


def test_a_wrong_target_is_reported_wrong_without_figures(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = tierdb("bench", "--workload", "aged", "ycsb-c", "--layout", "none", "--peers", "none",
               "--target", str(HERE / "wrong_target.py") + ":make", "--keys", "300", "--ops", "200",
               "--rounds", "1", "--out", str(out), "--quiet")
    assert r.returncode == 1, r.stderr
    assert "WRONG" in r.stderr and "wrong_target.py:make" in r.stderr
    data = json.loads((out / "results.json").read_text())
    bad = [x for x in data["results"] if x["target"].endswith("wrong_target.py:make")]
    assert bad and all(x["status"] == "WRONG" and x["figures"] == {} and x["latency_us"] == {} for x in bad)
    assert all("figures" not in run for x in bad for run in x["runs"])
    report = (out / "report.md").read_text()
    assert "WRONG" in report


def test_user_workload_file(tmp_path: Path) -> None:
    res = engine.bench.run(workloads=["workload"], workload_file=str(HERE / "user_workload.py"),
                           layouts=["memory"], peers=[], keys=[100], rounds=1, out=tmp_path / "o")
    cells = {c.target: c for c in res.cells[100]}
    assert cells["tierdb:memory"].status == "ok"
    assert cells["tierdb:memory"].figures["my commits/s"]["median"] > 0


def test_scale_run_plots_against_key_count(tmp_path: Path) -> None:
    res = engine.bench.run(workloads=["ycsb-c"], layouts=["memory"], peers=[], keys=[200, 400],
                           rounds=1, ops=100, out=tmp_path / "s")
    assert set(res.cells) == {200, 400}
    w, h = png_size(res.out / "scale.png")
    assert w > 300 and h > 200


def test_compare_flags_a_20_percent_regression_and_passes_an_unchanged_result(
        full_run: engine.bench.BenchResult, tmp_path: Path) -> None:
    old = full_run.out / "results.json"
    data = json.loads(old.read_text())
    assert compare(data, data) and not any(c.regressed for c in compare(data, data))
    r = tierdb("bench", "compare", str(old), str(old))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 regression(s)" in r.stdout

    slower = copy.deepcopy(data)
    row = next(x for x in slower["results"] if x["workload"] == "ycsb-c" and x["target"] == "tierdb:memory")
    row["figures"]["ops/s"]["median"] *= 0.8
    new = tmp_path / "new.json"
    new.write_text(json.dumps(slower))
    r = tierdb("bench", "compare", str(old), str(new), "--threshold", "0.10")
    assert r.returncode == 1
    assert "REGRESSED" in r.stdout and "1 regression(s)" in r.stdout
    # a 20% drop is inside a 25% threshold
    assert tierdb("bench", "compare", str(old), str(new), "--threshold", "0.25").returncode == 0

    bigger = copy.deepcopy(data)
    row = next(x for x in bigger["results"] if x["workload"] == "load" and x["target"] == "tierdb:warm")
    row["figures"]["disk MB"]["median"] = row["figures"]["disk MB"]["median"] * 1.2 + 1
    assert any(c.regressed and c.figure == "disk MB" for c in compare(data, bigger, 0.10))


@pytest.mark.parametrize("args", [
    ["--workload", "nope"],
    ["--layout", "hot+cold"],
    ["--set", "no_such_knob=1"],
    ["--set", "zstd_level=99"],
    ["--keys", "0"],
    ["--keys", "-5"],
    ["--value-size", "0"],
    ["--rounds", "0"],
    ["--ops", "0"],
    ["--peers", "oracle"],
    ["--baseline", "peer:nothing"],
    ["--no-such-flag"],
])
def test_bad_flags_exit_2_with_one_line(args: list[str]) -> None:
    r = tierdb("bench", *args)
    assert r.returncode == 2, (args, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0], r.stderr
    assert r.stdout == ""


def test_compare_bad_input_exits_2(tmp_path: Path) -> None:
    r = tierdb("bench", "compare", str(tmp_path / "missing.json"), str(tmp_path / "x.json"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    (tmp_path / "bad.json").write_text("{\"not\": 1}")
    r = tierdb("bench", "compare", str(tmp_path / "bad.json"), str(tmp_path / "bad.json"))
    assert r.returncode == 2 and "results.json" in r.stderr


def test_sync_durability_and_group_commit_workload(tmp_path: Path) -> None:
    peers = [p for p in ("rocksdb", "lmdb", "sqlite") if p in INSTALLED]
    res = engine.bench.run(workloads=["load", "sync"], layouts=["hot+warm+cold"], peers=peers, keys=[200],
                           durability="sync", quick=True, out=tmp_path / "sync")
    cells = {(c.workload, c.target): c for c in res.cells[200]}
    for p in ["tierdb:hot+warm+cold", *(f"peer:{x}" for x in peers)]:
        assert cells[("load", p)].status == "ok", cells[("load", p)].reason
    floor = cells[("sync", "fsync-floor")]
    tier = cells[("sync", "tierdb:hot+warm+cold")]
    assert floor.figures["sync commits/s"]["median"] > 0 and tier.figures["sync commits/s"]["median"] > 0
    assert tier.status == "unverified"  # the sync workload reads nothing: no answers to compare
