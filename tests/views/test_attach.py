"""attach_snapshot_storage: scenario 33, cadence, one commit per wave, pins, errors."""

from __future__ import annotations

from typing import Any

import pytest

import engine
from engine.views import (
    SENTINEL,
    BackendError,
    Graph,
    RestoreOptions,
    attach_snapshot_storage,
    graph_storage,
    graph_wal_prefix,
    kv_storage,
    restore_snapshot,
    snapshot_storage,
)
from engine.views.keys import encode_view_key, keyspace_prefix

from .conftest import FaultyStore

PREFIX = graph_wal_prefix("g") + "/"


def graph(**nodes: Any) -> Graph:
    g = Graph("g")
    for k, v in nodes.items():
        g.state(k, v)
    return g


def frames_of(wal: Any) -> list[int]:
    return [int(k.rsplit("/", 1)[1]) for k in wal.list(PREFIX)]


def test_s33_baseline_then_frames(store: engine.Store) -> None:
    snap, wal = graph_storage(store, "g")
    g = graph(x=0)
    attach_snapshot_storage(g, [(snap, wal)], clock=lambda: 42)
    assert store.version == 0  # attaching writes nothing
    g.set("x", 1)
    rec = snap.load()
    assert rec == {
        "name": "g", "mode": "full", "seq": 0, "timestamp_ns": 42, "format_version": 1,
        "snapshot": {"name": "g", "nodes": {"x": {"type": "state", "status": "live", "value": 1}}},
    }
    raw = store.get(engine.EntryKind.MULTI, encode_view_key(keyspace_prefix("g"), "g"))
    assert raw is not None and raw.startswith(b'{"format_version":1')  # canonical JSON under the tier name
    assert wal.list(PREFIX) == []
    g.set("x", 2)
    assert wal.list(PREFIX) == ["g/wal/00000000000000000001"]
    assert wal.load("g/wal/00000000000000000001")["change"]["change"] == {"kind": "node.set", "path": "x", "value": 2}


def test_s33_debounced_until_flush_all(store: engine.Store) -> None:
    snap, wal = graph_storage(store, "g", debounce_ms=1000)
    g = graph(x=0)
    h = attach_snapshot_storage(g, [(snap, wal)])
    g.set("x", 1)
    g.set("x", 2)
    g.set("x", 3)
    assert store.version == 0 and snap.load() is None
    versions = h.flush_all()
    assert versions == [1] and store.version == 1  # baseline and frames in one commit
    assert snap.load()["seq"] == 0 and frames_of(wal) == [1, 2]
    assert h.flush_all() == []


def test_s33_dispose_stops_writes(store: engine.Store) -> None:
    snap, wal = graph_storage(store, "g")
    g = graph(x=0)
    h = attach_snapshot_storage(g, [(snap, wal)])
    g.set("x", 1)
    v = store.version
    h.dispose()
    assert h.disposed
    g.set("x", 2)
    g.set("x", 3)
    assert store.version == v and h.flush_all() == [] and h.checkpoint() == []
    h.detach()
    h.detach()


def test_one_commit_per_wave(store: engine.Store) -> None:
    snap, wal = graph_storage(store, "g")
    g = graph(a=0, b=0, c=0)
    h = attach_snapshot_storage(g, [(snap, wal)])
    g.set("a", 1)
    with g.batch():
        g.set("a", 2)
        g.set("b", 2)
        g.invalidate("c")
    assert store.version == 2 and h.commits == [1, 2]
    assert frames_of(wal) == [1, 2, 3]
    assert wal.list(PREFIX, version=1) == []
    g.set("a", 2)  # no value change: nothing to write
    assert store.version == 2


def test_compact_every_cadence(store: engine.Store) -> None:
    snap, wal = graph_storage(store, "g", compact_every=3)
    g = graph(x=0, y=0)
    attach_snapshot_storage(g, [(snap, wal)])
    seqs = []
    for i in range(1, 8):
        g.set("x", i)
        seqs.append((snap.load()["seq"], max(frames_of(wal), default=0)))
    # emissions 1..7: baseline at 1 (first) and when the count crosses 3 and 6
    assert seqs == [(0, 0), (0, 1), (1, 1), (1, 2), (1, 3), (3, 3), (3, 4)]
    with g.batch():  # 2 emissions: 7 -> 9 crosses 9
        g.set("x", 100)
        g.set("y", 100)
    assert snap.load()["seq"] == 4 and snap.load()["snapshot"]["nodes"]["y"]["value"] == 100


def test_default_compact_every_is_10(store: engine.Store) -> None:
    snap, wal = graph_storage(store, "g")
    g = graph(x=0)
    attach_snapshot_storage(g, [(snap, wal)])
    for i in range(1, 12):
        g.set("x", i)
    # baselines at emission 1 and 10 (frames 1-8 in between), then frame 9
    assert snap.load()["seq"] == 8 and frames_of(wal)[-1] == 9


def test_no_wal_tier_every_wave_is_a_baseline(store: engine.Store) -> None:
    snap = snapshot_storage(store, "g")
    g = graph(x=0)
    attach_snapshot_storage(g, [(snap, None)])
    g.set("x", 1)
    g.set("x", 2)
    assert snap.load()["snapshot"]["nodes"]["x"]["value"] == 2 and store.version == 2


def test_filter_restricts_triggers(store: engine.Store) -> None:
    snap, wal = graph_storage(store, "g")
    g = graph(x=0, tmp=0)
    attach_snapshot_storage(g, [(snap, wal)], filter=lambda path: path != "tmp")
    g.set("tmp", 1)
    assert store.version == 0
    g.set("x", 1)
    assert snap.load()["snapshot"]["nodes"]["tmp"]["value"] == 1  # the snapshot is whole


def test_structure_changes_and_subgraphs_restore_exactly(store: engine.Store) -> None:
    snap, wal = graph_storage(store, "g", compact_every=1000)
    g = graph(x=0)
    attach_snapshot_storage(g, [(snap, wal)])
    recorded: dict[int, dict] = {}

    def step(fn: Any, *, commits: bool = True) -> None:
        before = store.version
        fn()
        assert (store.version > before) == commits
        if commits:
            recorded[store.version] = g.snapshot()

    step(lambda: g.set("x", 1))  # baseline
    step(lambda: g.state("n", 5))  # frame graph.add (adding emits DATA)
    child = Graph("c")
    child.state("z", 1)
    step(lambda: g.mount("c", child))  # non-empty mount: frames cannot express it -> baseline
    seq_after_mount = snap.load()["seq"]
    step(lambda: child.set("z", 2))  # inside a subgraph: the top-level diff is blind -> baseline
    assert snap.load()["snapshot"]["subgraphs"]["c"]["nodes"]["z"]["value"] == 2
    # An empty mount emits no DATA, so (as in GraphReFly) it is written with the next wave,
    # as a graph.mount frame.
    step(lambda: g.mount("e", Graph("e")), commits=False)
    step(lambda: g.remove("n"))  # frame graph.remove (removal emits COMPLETE)
    step(lambda: g.unmount("c"))  # frame graph.unmount
    step(lambda: g.set("x", 9))
    assert seq_after_mount == 1 and frames_of(wal)[-1] >= 4
    kinds = {wal.load(k)["change"]["change"]["kind"] for k in wal.list(PREFIX)}
    assert {"graph.add", "graph.mount", "graph.remove", "graph.unmount", "node.set"} <= kinds
    assert len(recorded) == 7
    for v, expected in recorded.items():
        r = Graph.from_snapshot(snap.load(version=v)["snapshot"])
        restore_snapshot(r, snap, wal, RestoreOptions(version=v))
        assert r.snapshot() == expected, v


def test_pin_checkpoints(store: engine.Store) -> None:
    snap, wal = graph_storage(store, "g")
    g = graph(x=0)
    h = attach_snapshot_storage(g, [(snap, wal)], pin_checkpoints=True)
    g.set("x", 1)
    g.set("x", 2)
    pins = store.pins()
    assert sorted(pins.values()) == h.commits == [1, 2]
    assert all(name.startswith("graph:g@") for name in pins)


def test_errors_to_on_error_then_retry(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    snap, wal = graph_storage(faulty, "g")
    g = graph(x=0)
    errors: list[BaseException] = []
    h = attach_snapshot_storage(g, [(snap, wal)], on_error=errors.append)
    g.set("x", 1)
    faulty.fail_commits = 1
    g.set("x", 2)  # frame 1 fails to commit: stays buffered
    assert len(errors) == 1 and isinstance(errors[0], BackendError)
    assert frames_of(wal) == []
    g.set("x", 3)  # the next wave commits frames 1 and 2 together
    assert frames_of(wal) == [1, 2]
    r = graph(x=0)
    restore_snapshot(r, snap, wal)
    assert r.get("x") == 3
    assert h.last_version == store.version


def test_errors_without_on_error_propagate(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    snap, wal = graph_storage(faulty, "g")
    g = graph(x=0)
    attach_snapshot_storage(g, [(snap, wal)])
    faulty.fail_commits = 1
    with pytest.raises(BackendError):
        g.set("x", 1)
    assert g.get("x") == 1  # the graph changed; the checkpoint is buffered for a retry
    g.set("x", 2)
    assert snap.load()["snapshot"]["nodes"]["x"]["value"] == 1 and frames_of(wal) == [1]


def test_checkpoint_and_compact(store: engine.Store) -> None:
    snap, wal = graph_storage(store, "g", compact_every=1000)
    g = graph(x=0)
    h = attach_snapshot_storage(g, [(snap, wal)])
    h.checkpoint()  # first flush: a baseline of the current state
    assert snap.load()["snapshot"]["nodes"]["x"]["value"] == 0
    g.set("x", 1)
    g.set("x", 2)
    assert frames_of(wal) == [1, 2]
    h.compact()
    rec = snap.load()
    assert rec["seq"] == 2 and rec["snapshot"]["nodes"]["x"]["value"] == 2


def test_two_pairs_two_stores(store: engine.Store) -> None:
    other = engine.open(None)
    try:
        a = graph_storage(store, "g")
        b = graph_storage(other, "g", compact_every=2)
        g = graph(x=0)
        h = attach_snapshot_storage(g, [a, b])
        for i in range(1, 5):
            g.set("x", i)
        for snap, wal in (a, b):
            r = graph(x=0)
            restore_snapshot(r, snap, wal)
            assert r.get("x") == 4
        assert len(h.commits) == 8  # one commit per wave per store
    finally:
        other.close()


def test_separate_wal_keyspace(store: engine.Store) -> None:
    snap = snapshot_storage(store, "g")
    wal = kv_storage(store, "g-wal")  # its own keyspace
    g = graph(x=0)
    attach_snapshot_storage(g, [(snap, wal)])
    g.set("x", 1)
    g.set("x", SENTINEL)
    r = graph(x=0)
    restore_snapshot(r, snap, wal)
    assert r.get("x") is SENTINEL


def test_unpin_checkpoints(store: engine.Store) -> None:
    snap, wal = graph_storage(store, "g")
    g = graph(x=0)
    h = attach_snapshot_storage(g, [(snap, wal)], pin_checkpoints=True)
    for i in range(1, 5):
        g.set("x", i)
    store.pin(1, "mine")
    assert h.unpin_checkpoints(before=3) == 2
    assert sorted(store.pins().values()) == [1, 3, 4]
    assert h.unpin_checkpoints() == 2
    assert store.pins() == {"mine": 1}


def test_pair_commits_as_a_unit(store: engine.Store) -> None:
    # The WAL tier's own cadence fires; the pending baseline must land in the same version.
    snap = snapshot_storage(store, "g", debounce_ms=1000, compact_every=100)
    wal = kv_storage(store, "g", debounce_ms=1000, compact_every=2)
    g = graph(x=0)
    attach_snapshot_storage(g, [(snap, wal)])
    g.set("x", 1)  # baseline (buffered)
    g.set("x", 2)  # frame 1 (buffered; WAL count 1)
    assert store.version == 0
    g.set("x", 3)  # frame 2: WAL count crosses 2 -> the pair commits together
    assert store.version == 1
    assert snap.load()["seq"] == 0 and frames_of(wal) == [1, 2]
    r = graph(x=0)
    restore_snapshot(r, snap, wal)
    assert r.get("x") == 3


def test_listing_refused_during_iteration(store: engine.Store) -> None:
    class Refusing(FaultyStore):
        def range(self, *args: Any, **kwargs: Any) -> Any:
            def gen() -> Any:
                yield from ()
                raise NotImplementedError("no listing")

            return gen()

    kv = kv_storage(Refusing(store), "kv")
    it = kv.list_by_prefix_bytes("")
    with pytest.raises(engine.views.BackendNoListSupport):
        next(it)
    assert list(it) == []
