"""docs/VIEWS.md examples run as written; ``tierdb graph log`` / ``graph show`` work."""

from __future__ import annotations

import argparse
import io
import json
import re
from pathlib import Path

import pytest

import engine
from engine.views import Graph, attach_snapshot_storage, graph_storage
from engine.views.cli import (
    add_graph_commands,
    graph_log,
    graph_show,
    run_graph_command,
)

from .conftest import DURABLE_LAYOUTS

DOC = Path(__file__).resolve().parents[2] / "docs" / "VIEWS.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("index", range(2))
def test_doc_examples_run(index: int) -> None:
    blocks = python_blocks()
    assert len(blocks) == 2
    exec(compile(blocks[index], f"VIEWS.md block {index}", "exec"), {})


@pytest.fixture(params=DURABLE_LAYOUTS)
def populated(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[int, dict]]:
    path = tmp_path / "db"
    store = engine.open(path, layout=request.param)
    snap, wal = graph_storage(store, "g", compact_every=4)
    g = Graph("g")
    g.state("a", 0)
    g.state("b", "x")
    attach_snapshot_storage(g, [(snap, wal)])
    recorded = {}
    for i in range(1, 9):
        if i == 5:
            g.invalidate("b")
        else:
            g.set("a", i)
        recorded[store.version] = g.snapshot()
    store.close()
    return path, recorded


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tierdb")
    add_graph_commands(p.add_subparsers(dest="command", required=True))
    return p.parse_args(argv)


def test_graph_log(populated: tuple[Path, dict]) -> None:
    path, recorded = populated
    out = io.StringIO()
    assert run_graph_command(parse(["graph", "log", str(path), "--name", "g", "--json"]), out) == 0
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert sorted({e["version"] for e in events}) == sorted(recorded)
    baselines = [e for e in events if e["type"] == "baseline"]
    frames = [e for e in events if e["type"] == "frame"]
    assert [e["version"] for e in baselines][0] == 1 and len(baselines) == 3  # emissions 1, 4, 8
    assert [e["seq"] for e in frames] == list(range(1, len(frames) + 1))
    assert all(e["time"] != "-" for e in events)
    kinds = {e["kind"] for e in frames}
    assert kinds == {"node.set", "node.invalidate"}
    text = io.StringIO()
    run_graph_command(parse(["graph", "log", str(path), "--name", "g"]), text)
    assert "baseline" in text.getvalue() and "node.set" in text.getvalue()


def test_graph_show(populated: tuple[Path, dict]) -> None:
    path, recorded = populated
    for version, expected in recorded.items():
        out = io.StringIO()
        args = parse(["graph", "show", str(path), "--name", "g", "--version", str(version)])
        assert run_graph_command(args, out) == 0
        assert json.loads(out.getvalue()) == expected
    out = io.StringIO()
    run_graph_command(parse(["graph", "show", str(path), "--name", "g", "--meta"]), out)
    doc = json.loads(out.getvalue())
    assert doc["snapshot"] == recorded[max(recorded)] and doc["version"] == max(recorded)


def test_graph_show_errors(populated: tuple[Path, dict], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, recorded = populated
    assert run_graph_command(parse(["graph", "show", str(path), "--name", "g", "--version", "999"])) == 1
    assert "FutureVersionError" in capsys.readouterr().err
    assert run_graph_command(parse(["graph", "show", str(path), "--name", "nope"])) == 1
    assert "BaselineMissing" in capsys.readouterr().err
    missing = tmp_path / "missing"
    assert run_graph_command(parse(["graph", "log", str(missing), "--name", "g"])) == 2
    assert not missing.exists()  # never creates a store


def test_main_cli_integration(populated: tuple[Path, dict], capsys: pytest.CaptureFixture[str]) -> None:
    cli = pytest.importorskip("engine.cli")
    path, recorded = populated
    version = sorted(recorded)[2]
    assert cli.main(["graph", "show", str(path), "--name", "g", "--version", str(version)]) == 0
    assert json.loads(capsys.readouterr().out) == recorded[version]


def test_library_functions(populated: tuple[Path, dict]) -> None:
    path, recorded = populated
    with engine.open(path) as store:
        assert graph_show(store, "g", version=1)["snapshot"] == recorded[1]
        assert graph_log(store, "g")[0]["type"] == "baseline"
