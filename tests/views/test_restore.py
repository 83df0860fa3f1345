"""restore_snapshot: scenarios 26-32, the time-travel script (35, 36), T8 and T9."""

from __future__ import annotations

from typing import Any

import pytest

import engine
from engine.views import (
    SENTINEL,
    BaseChange,
    BaselineMissing,
    BytesCodec,
    FrameSeqGap,
    Graph,
    GraphCheckpointRecord,
    PhaseFailed,
    PhaseStat,
    RestoreError,
    RestoreOptions,
    TornWriteMidStream,
    TornWritePolicy,
    WALFrame,
    attach_snapshot_storage,
    graph_storage,
    graph_wal_prefix,
    kv_storage,
    restore_snapshot,
    wal_frame_key,
)
from engine.views.wal import stamp_frame

PREFIX = graph_wal_prefix("g")


def baseline(snap: Any, nodes: dict, seq: int = 0, *, subgraphs: dict | None = None, mode: str = "full") -> None:
    snapshot: dict = {"name": "g", "nodes": {k: {"type": "state", "status": "live", "value": v} for k, v in nodes.items()}}
    if subgraphs:
        snapshot["subgraphs"] = subgraphs
    snap.save(GraphCheckpointRecord("g", mode, snapshot, seq, 1).to_json())


def frame(seq: int, payload: dict, lifecycle: str = "data") -> WALFrame:
    structure = "graph.value" if lifecycle == "data" else "graph.spec"
    return stamp_frame(WALFrame(lifecycle, payload.get("path", payload.get("nodeId", "")), BaseChange(structure, 1, seq, lifecycle, payload), seq, seq))


def put(wal: Any, f: WALFrame) -> None:
    wal.save(wal_frame_key(PREFIX, f.frame_seq), f.to_json())


def set_frame(seq: int, path: str, value: Any) -> WALFrame:
    return frame(seq, {"kind": "node.set", "path": path, "value": value})


def tamper(wal: Any, seq: int) -> None:
    key = wal_frame_key(PREFIX, seq)
    obj = wal.load(key)
    obj["change"]["change"]["value"] = "tampered"
    wal.save(key, obj)


def fresh(**nodes: Any) -> Graph:
    g = Graph("g")
    for k, v in nodes.items():
        g.state(k, v)
    return g


@pytest.fixture
def tiers(store: engine.Store) -> tuple[Any, Any]:
    return graph_storage(store, "g")


def test_s26_baseline_only(tiers: tuple) -> None:
    snap, wal = tiers
    baseline(snap, {"x": 42})
    g = fresh(x=0)
    r = restore_snapshot(g, snap, wal)
    assert (r.replayed_frames, r.skipped_frames, r.final_seq, r.phases) == (0, 0, 0, [])
    assert g.get("x") == 42


def test_s26_baseline_missing(tiers: tuple) -> None:
    snap, wal = tiers
    with pytest.raises(BaselineMissing) as info:
        restore_snapshot(fresh(x=0), snap, wal)
    assert isinstance(info.value, RestoreError) and isinstance(info.value, engine.EngineError)
    baseline(snap, {"x": 1}, mode="diff")
    with pytest.raises(RestoreError.BaselineMissing):
        restore_snapshot(fresh(x=0), snap, wal)


def test_s27_one_frame(tiers: tuple) -> None:
    snap, wal = tiers
    baseline(snap, {"x": 10})
    put(wal, set_frame(1, "x", 20))
    g = fresh(x=0)
    r = restore_snapshot(g, snap, wal)
    assert r.replayed_frames == 1 and r.phases == [PhaseStat("data", 1)] and r.final_seq == 1
    assert g.get("x") == 20


def test_s28_tail_and_mid_torn(tiers: tuple) -> None:
    snap, wal = tiers
    baseline(snap, {"x": 10})
    put(wal, set_frame(1, "x", 20))
    tamper(wal, 1)
    g = fresh(x=0)
    r = restore_snapshot(g, snap, wal)
    assert (r.skipped_frames, r.replayed_frames, g.get("x")) == (1, 0, 10)
    put(wal, set_frame(2, "x", 30))
    g = fresh(x=0)
    with pytest.raises(TornWriteMidStream) as info:
        restore_snapshot(g, snap, wal)
    assert (info.value.frame_seq, info.value.reason) == (1, "checksum-mismatch")
    assert g.get("x") == 10  # baseline applied, no frame


def test_s29_target_seq(tiers: tuple) -> None:
    snap, wal = tiers
    baseline(snap, {"x": 0})
    for seq, v in ((1, 10), (2, 20), (3, 30)):
        put(wal, set_frame(seq, "x", v))
    g = fresh(x=0)
    r = restore_snapshot(g, snap, wal, RestoreOptions(target_seq=2))
    assert (r.replayed_frames, r.final_seq, g.get("x")) == (2, 2, 20)
    # "tail" is judged after the target cut: a bad frame 2 is the tail of [1, 2]
    tamper(wal, 2)
    g = fresh(x=0)
    r = restore_snapshot(g, snap, wal, RestoreOptions(target_seq=2))
    assert (r.skipped_frames, g.get("x")) == (1, 10)


def test_s30_callback_skip(tiers: tuple) -> None:
    snap, wal = tiers
    baseline(snap, {"x": 0})
    for seq, v in ((1, 10), (2, 20), (3, 30)):
        put(wal, set_frame(seq, "x", v))
    tamper(wal, 1)
    tamper(wal, 2)
    calls: list = []

    def skip(seq: int, reason: str) -> TornWritePolicy:
        calls.append((seq, reason))
        return TornWritePolicy.SKIP

    g = fresh(x=0)
    r = restore_snapshot(g, snap, wal, RestoreOptions(on_torn_write=skip))
    assert r.skipped_frames == 2 and r.replayed_frames == 1 and g.get("x") == 30
    assert calls == [(1, "checksum-mismatch"), (2, "checksum-mismatch")]
    with pytest.raises(TornWriteMidStream):  # a callback may abort a tail frame too
        restore_snapshot(fresh(x=0), snap, wal, RestoreOptions(on_torn_write=lambda s, r: TornWritePolicy.ABORT))


def test_s31_mount_unmount(tiers: tuple) -> None:
    snap, wal = tiers
    baseline(snap, {})
    put(wal, frame(1, {"kind": "graph.mount", "path": "child", "subgraphId": "child"}, "spec"))
    g = Graph("g")
    r = restore_snapshot(g, snap, wal)
    assert g.subgraph("child") is not None and g.subgraph("child").name == "child"
    assert r.phases == [PhaseStat("spec", 1)]
    # replaying a mount that already exists is a no-op
    existing = g.subgraph("child")
    restore_snapshot(g, snap, wal)
    assert g.subgraph("child") is existing
    put(wal, frame(2, {"kind": "graph.unmount", "path": "child"}, "spec"))
    restore_snapshot(g, snap, wal)
    assert g.subgraph("child") is None


def test_apply_rules_idempotent(tiers: tuple) -> None:
    snap, wal = tiers
    baseline(snap, {"x": 1})
    put(wal, frame(1, {"kind": "graph.add", "nodeId": "n", "slice": {"type": "state", "status": "live", "value": 3}}, "spec"))
    put(wal, frame(2, {"kind": "graph.add", "nodeId": "x", "slice": {"type": "state", "status": "live", "value": 99}}, "spec"))
    put(wal, frame(3, {"kind": "graph.add", "nodeId": "d", "slice": {"type": "derived", "status": "live", "value": 1}}, "spec"))
    put(wal, frame(4, {"kind": "graph.remove", "nodeId": "absent"}, "spec"))
    put(wal, frame(5, {"kind": "node.set", "path": "missing", "value": 1}))
    put(wal, frame(6, {"kind": "node.versionBump", "path": "x", "id": "i", "version": 2}))
    put(wal, frame(7, {"kind": "whatever"}, "ownership"))
    put(wal, frame(8, {"kind": "node.invalidate", "path": "n"}))
    g = fresh(x=0)
    r = restore_snapshot(g, snap, wal)
    assert g.values() == {"x": 1, "n": SENTINEL}  # add skipped for existing x; derived not created
    assert r.phases == [PhaseStat("spec", 4), PhaseStat("data", 3), PhaseStat("ownership", 1)]
    assert (r.replayed_frames, r.final_seq) == (8, 8)


def test_phase_failed_keeps_earlier_phases(tiers: tuple) -> None:
    snap, wal = tiers

    class Picky(Graph):
        def set(self, path: str, value: Any) -> None:
            if value == "boom":
                raise RuntimeError("refused")
            super().set(path, value)

    baseline(snap, {"x": 1})
    put(wal, frame(1, {"kind": "graph.add", "nodeId": "n", "slice": {"type": "state", "status": "live", "value": 3}}, "spec"))
    put(wal, set_frame(2, "x", 5))
    put(wal, set_frame(3, "x", "boom"))
    g = Picky("g")
    g.state("x", 0)
    with pytest.raises(PhaseFailed) as info:
        restore_snapshot(g, snap, wal)
    assert (info.value.lifecycle, info.value.frame_seq) == ("data", 3)
    assert g.get("n") == 3  # the spec phase stays applied
    assert g.get("x") == 1  # the failed data phase was one batch: rolled back


def test_baseline_load_and_restore_failures(store: engine.Store, tiers: tuple) -> None:
    snap, wal = tiers
    kv_storage(store, "g", codec=BytesCodec()).save("g", b"{not json")
    with pytest.raises(PhaseFailed) as info:
        restore_snapshot(fresh(x=0), snap, wal)
    assert (info.value.lifecycle, info.value.frame_seq) == ("spec", 0)
    baseline(snap, {"x": 1})
    with pytest.raises(PhaseFailed, match="baseline restore failed"):
        restore_snapshot(Graph("g"), snap, wal)  # UnknownNode x
    with pytest.raises(PhaseFailed):
        restore_snapshot(fresh(x=0, y=0).__class__("other"), snap, wal)  # NameMismatch
    with pytest.raises(TypeError):
        restore_snapshot(fresh(x=0), snap, None)


def test_undecodable_frame_is_torn(store: engine.Store, tiers: tuple) -> None:
    snap, wal = tiers
    baseline(snap, {"x": 0})
    put(wal, set_frame(1, "x", 1))
    kv_storage(store, "g", codec=BytesCodec()).save(wal_frame_key(PREFIX, 2), b"\x00torn")
    g = fresh(x=0)
    r = restore_snapshot(g, snap, wal)
    assert (r.skipped_frames, r.replayed_frames, g.get("x")) == (1, 1, 1)
    put(wal, set_frame(3, "x", 3))
    with pytest.raises(TornWriteMidStream) as info:
        restore_snapshot(fresh(x=0), snap, wal)
    assert (info.value.frame_seq, info.value.reason) == (2, "decode-failed")


def test_t9_strict_frame_seq(tiers: tuple) -> None:
    snap, wal = tiers
    baseline(snap, {"x": 0})
    for seq in (1, 2, 4):
        put(wal, set_frame(seq, "x", seq))
    g = fresh(x=-1)
    with pytest.raises(FrameSeqGap) as info:
        restore_snapshot(g, snap, wal, RestoreOptions(strict_frame_seq=True))
    assert (info.value.expected_seq, info.value.found_seq) == (3, 4)
    assert g.get("x") == 0  # baseline applied, no frame
    g = fresh(x=-1)
    r = restore_snapshot(g, snap, wal)
    assert (r.replayed_frames, r.final_seq, g.get("x")) == (3, 4, 4)
    # a tail that simply ends below target_seq is not a gap
    r = restore_snapshot(fresh(x=0), snap, wal, RestoreOptions(strict_frame_seq=True, target_seq=2))
    assert r.final_seq == 2


def test_restore_options_validation() -> None:
    with pytest.raises(ValueError):
        RestoreOptions(target_seq=-1)
    with pytest.raises(TypeError):
        RestoreOptions(target_seq=1.5)  # type: ignore[arg-type]
    with pytest.raises(engine.InvalidVersionError):
        RestoreOptions(version=-1)


# ---------------------------------------------------------------- end to end (attach)


def attached(store: engine.Store, **nodes: Any) -> tuple[Graph, Any, Any, Any]:
    snap, wal = graph_storage(store, "g", compact_every=100)
    g = fresh(**nodes)
    return g, snap, wal, attach_snapshot_storage(g, [(snap, wal)])


def test_s32_end_to_end(store: engine.Store) -> None:
    g, snap, wal, _ = attached(store, x=0)
    g.set("x", 7)
    g.set("x", 11)
    h = fresh(x=0)
    restore_snapshot(h, snap, wal)
    assert h.get("x") == 11


def test_s32_tamper_tail_and_middle(store: engine.Store) -> None:
    g, snap, wal, _ = attached(store, x=0)
    g.set("x", 5)
    g.set("x", 6)
    tamper(wal, 1)
    h = fresh(x=0)
    assert restore_snapshot(h, snap, wal).skipped_frames == 1 and h.get("x") == 5
    g.set("x", 8)
    with pytest.raises(RestoreError):
        restore_snapshot(fresh(x=0), snap, wal)


def test_s32_invalidate_and_rapid_sets(store: engine.Store) -> None:
    g, snap, wal, handle = attached(store, x=0)
    g.set("x", 1)
    g.invalidate("x")
    f = WALFrame.from_json(wal.load(wal_frame_key(PREFIX, 1)))
    assert f.kind == "node.invalidate"
    h = fresh(x=0)
    restore_snapshot(h, snap, wal)
    assert h.get("x") is SENTINEL
    for i in range(10):
        g.set("x", i)
    seqs = [int(k.rsplit("/", 1)[1]) for k in wal.list(PREFIX + "/")]
    assert seqs == sorted(set(seqs)) == list(range(1, 12))
    assert handle.seq == 11


def test_s32_reattach_continues_above_tail(store: engine.Store) -> None:
    g, snap, wal, handle = attached(store, x=0)
    g.set("x", 1)
    g.set("x", 2)
    g.set("x", 3)
    handle.detach()
    old_tail = max(int(k.rsplit("/", 1)[1]) for k in wal.list(PREFIX + "/"))
    snap2, wal2 = graph_storage(store, "g", compact_every=100)
    handle2 = attach_snapshot_storage(g, [(snap2, wal2)])
    g.set("x", 4)  # first flush of the new handle: a baseline at the old tail seq
    assert snap2.load()["seq"] == old_tail
    g.set("x", 5)
    new = [int(k.rsplit("/", 1)[1]) for k in wal2.list(PREFIX + "/")]
    assert max(new) == old_tail + 1 and handle2.seq == old_tail + 1
    h = fresh(x=0)
    restore_snapshot(h, snap2, wal2)
    assert h.get("x") == 5


# ---------------------------------------------------------------- the time-travel script


def script(store: engine.Store) -> tuple[Any, Any, dict[int, int]]:
    """Spec 13.3; returns the tiers and {step: store version after it}."""
    g, snap, wal, _ = attached(store, a=0, b=0)
    versions = {}
    g.set("a", 1)
    versions[1] = store.version
    g.set("a", 2)
    versions[2] = store.version
    with g.batch():
        g.set("a", 3)
        g.set("b", 5)
    versions[3] = store.version
    g.invalidate("b")
    versions[4] = store.version
    return snap, wal, versions


def test_s35_time_travel_script(store: engine.Store) -> None:
    snap, wal, versions = script(store)
    assert snap.load()["seq"] == 0 and snap.load()["mode"] == "full"
    assert sorted(int(k.rsplit("/", 1)[1]) for k in wal.list(PREFIX + "/")) == [1, 2, 3, 4]
    assert list(versions.values()) == [1, 2, 3, 4]  # one commit per wave
    for target, (a, b) in {1: (2, 0), 3: (3, 5), 4: (3, SENTINEL)}.items():
        g = fresh(a=0, b=0)
        r = restore_snapshot(g, snap, wal, RestoreOptions(target_seq=target))
        assert (g.get("a"), g.get("b")) == (a, b), target
        assert r.final_seq == target


def test_s36_corrupt_frames(store: engine.Store) -> None:
    snap, wal, _ = script(store)
    obj = wal.load(wal_frame_key(PREFIX, 4))
    obj["checksum"] = "0" * 64
    wal.save(wal_frame_key(PREFIX, 4), obj)
    g = fresh(a=0, b=0)
    r = restore_snapshot(g, snap, wal)
    assert r.skipped_frames == 1 and g.get("b") == 5
    obj = wal.load(wal_frame_key(PREFIX, 2))
    obj["frame_t_ns"] += 1
    wal.save(wal_frame_key(PREFIX, 2), obj)
    with pytest.raises(TornWriteMidStream) as info:
        restore_snapshot(fresh(a=0, b=0), snap, wal)
    assert info.value.frame_seq == 2


def test_t8_restore_by_version(store: engine.Store) -> None:
    snap, wal, versions = script(store)
    g = fresh(a=0, b=0)
    r = restore_snapshot(g, snap, wal, RestoreOptions(version=versions[3]))
    assert (g.get("a"), g.get("b")) == (3, 5)
    assert r.version == versions[3] and r.final_seq == 3
    g = fresh(a=0, b=0)
    restore_snapshot(g, snap, wal, RestoreOptions(version=versions[1]))
    assert (g.get("a"), g.get("b")) == (1, 0)
    with pytest.raises(BaselineMissing):
        restore_snapshot(fresh(a=0, b=0), snap, wal, RestoreOptions(version=0))
    with pytest.raises(engine.FutureVersionError):
        restore_snapshot(fresh(a=0, b=0), snap, wal, RestoreOptions(version=store.version + 1))
