"""diff_snapshots and decompose_diff_to_frames (scenarios 24, 25)."""

from __future__ import annotations

from engine.views import (
    SENTINEL,
    GraphSnapshotDiff,
    ValueChange,
    decompose_diff_to_frames,
    diff_snapshots,
    replay_on_snapshot,
    verify_wal_frame_checksum,
)


def snap(nodes: dict, subgraphs: dict | None = None, name: str = "g") -> dict:
    out: dict = {"name": name, "nodes": {}}
    for k, v in nodes.items():
        out["nodes"][k] = {"type": "state", "status": "sentinel"} if v is SENTINEL else {"type": "state", "status": "live", "value": v}
    if subgraphs:
        out["subgraphs"] = subgraphs
    return out


def test_s24_identical_is_empty() -> None:
    a = snap({"x": 1, "y": [1, {"z": 2}]})
    d = diff_snapshots(a, snap({"x": 1, "y": [1, {"z": 2}]}))
    assert d.is_empty() and d == GraphSnapshotDiff()


def test_s24_added_removed() -> None:
    d = diff_snapshots(snap({"x": 1}), snap({"x": 1, "y": 2}))
    assert d.nodes_added == ["y"] and d.nodes_added_slices == [{"type": "state", "status": "live", "value": 2}]
    d = diff_snapshots(snap({"x": 1, "y": 2}), snap({"x": 1}))
    assert d.nodes_removed == ["y"] and not d.nodes_added


def test_s24_value_changes() -> None:
    d = diff_snapshots(snap({"x": 1}), snap({"x": 2}))
    assert d.value_changes == [ValueChange("x", 2)]
    d = diff_snapshots(snap({"x": 1}), snap({"x": SENTINEL}))
    assert d.value_changes == [ValueChange("x", SENTINEL)] and d.value_changes[0].invalidated
    d = diff_snapshots(snap({"x": 1}), snap({"x": None}))  # JSON null is a value, not invalidation
    assert d.value_changes == [ValueChange("x", None)] and not d.value_changes[0].invalidated
    d = diff_snapshots(snap({"x": 1}), snap({"x": True}))  # JSON-typed comparison
    assert d.value_changes == [ValueChange("x", True)]
    d = diff_snapshots(snap({"x": 1}), snap({"x": 1.5}))
    assert len(d.value_changes) == 1


def test_s24_subgraphs() -> None:
    c1 = {"name": "c1", "nodes": {}}
    c2 = {"name": "c2", "nodes": {}}
    d = diff_snapshots(snap({}, {"c1": c1}), snap({}, {"c2": c2}))
    assert d.subgraphs_added == ["c2"] and d.subgraphs_removed == ["c1"]


def test_s24_type_status_deps_not_detected() -> None:
    a = snap({"x": 1})
    b = snap({"x": 1})
    b["nodes"]["x"]["type"] = "derived"
    b["nodes"]["x"]["deps"] = ["y"]
    b["nodes"]["x"]["status"] = "completed"
    assert diff_snapshots(a, b).is_empty()


def test_s25_decompose() -> None:
    frames, last = decompose_diff_to_frames(diff_snapshots(snap({}), snap({"n": 1})), 123, 0)
    assert last == 1 and len(frames) == 1
    f = frames[0]
    assert (f.frame_seq, f.lifecycle, f.kind, f.change.structure) == (1, "spec", "graph.add", "graph.spec")
    assert f.change.change == {"kind": "graph.add", "nodeId": "n", "slice": {"type": "state", "status": "live", "value": 1}}
    assert (f.frame_t_ns, f.change.t_ns, f.change.version, f.change.seq, f.format_version) == (123, 123, 1, None, 1)
    assert verify_wal_frame_checksum(f)

    frames, last = decompose_diff_to_frames(diff_snapshots(snap({"x": 1}), snap({"x": 2})), 9, 5)
    assert last == 6 and [(f.frame_seq, f.lifecycle, f.kind) for f in frames] == [(6, "data", "node.set")]
    assert frames[0].change.change == {"kind": "node.set", "path": "x", "value": 2}
    assert frames[0].change.structure == "graph.value"


def test_decompose_order_and_empty() -> None:
    before = snap({"gone": 1, "x": 1}, {"old": {"name": "old", "nodes": {}}})
    after = snap({"x": SENTINEL, "new": 2}, {"fresh": {"name": "fresh", "nodes": {}}})
    frames, last = decompose_diff_to_frames(diff_snapshots(before, after), 1, 10)
    assert [f.kind for f in frames] == ["graph.add", "graph.remove", "graph.mount", "graph.unmount", "node.invalidate"]
    assert [f.frame_seq for f in frames] == [11, 12, 13, 14, 15] and last == 15
    assert frames[2].change.change == {"kind": "graph.mount", "path": "fresh", "subgraphId": "fresh"}
    assert replay_on_snapshot(before, frames) == after
    assert decompose_diff_to_frames(GraphSnapshotDiff(), 1, 7) == ([], 7)
