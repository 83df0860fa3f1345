"""Scenario 34 on every layout: non-ASCII keys, empty listings, durability across reopen."""

from __future__ import annotations

import os
from pathlib import Path

import engine
from engine.views import (
    Graph,
    LoadEntriesOpts,
    RestoreOptions,
    append_log_storage,
    attach_snapshot_storage,
    flush_together,
    graph_storage,
    kv_storage,
    restore_snapshot,
    snapshot_storage,
)

from .conftest import open_store


def test_s34_non_ascii_round_trip(store: engine.Store) -> None:
    kv = kv_storage(store, "kv·ñ")
    for key in ("café", "👋/x", "日本語", "app/with:slashes", ""):
        kv.save(key, {"v": key})
    assert kv.list() == sorted(["café", "👋/x", "日本語", "app/with:slashes", ""])
    assert kv.load("👋/x") == {"v": "👋/x"}
    assert kv.load("") == {"v": ""}
    snap = snapshot_storage(store, "snäp")
    snap.save("ünïcode ✓")
    assert snap.load() == "ünïcode ✓"
    log = append_log_storage(store, "lög", key_of=lambda e: e[0])
    log.append_entries([["日本", 1], ["café", 2], ["日本", 3]])
    assert log.load_entries(LoadEntriesOpts(key_filter="日本")).entries == [["日本", 1], ["日本", 3]]
    assert log.partitions() == ["café", "日本"]


def test_s34_empty_listing_creates_nothing(store: engine.Store) -> None:
    kv = kv_storage(store, "kv")
    log = append_log_storage(store, "log")
    assert kv.list() == [] and list(kv.list_by_prefix_bytes("")) == []
    assert log.load_entries().entries == [] and log.partitions() == []
    assert snapshot_storage(store, "s").load() is None
    assert store.version == 0
    assert flush_together(kv, log) is None and store.version == 0


def test_s34_durable_survives_reopen(durable_kind: str, tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = open_store(durable_kind, path)
    snap, wal = graph_storage(store, "g", compact_every=3)
    kv = kv_storage(store, "kv")
    log = append_log_storage(store, "log")
    g = Graph("g")
    g.state("a", 0)
    attach_snapshot_storage(g, [(snap, wal)])
    for i in range(1, 6):
        g.set("a", i)
    kv.save("k", "v")
    log.append_entries([1, 2])
    mid = store.version
    log.append_entries([3])
    expected = store.version
    store.close()
    files = {p.name for p in path.iterdir()}
    assert files  # a durable layout left files behind

    store = open_store(durable_kind, path)
    try:
        assert store.version == expected
        snap, wal = graph_storage(store, "g")
        r = Graph.from_snapshot(snap.load()["snapshot"])
        restore_snapshot(r, snap, wal)
        assert r.get("a") == 5
        assert kv_storage(store, "kv").load("k") == "v"
        log2 = append_log_storage(store, "log")
        assert log2.load_entries().entries == [1, 2, 3]
        assert log2.load_entries(version=mid).entries == [1, 2]
        log2.append_entries([4])  # a fresh tier keeps extending the partition
        assert log2.load_entries().entries == [1, 2, 3, 4]
        old = Graph.from_snapshot(snap.load(version=3)["snapshot"])
        restore_snapshot(old, snap, wal, RestoreOptions(version=3))
        assert old.get("a") == 3
    finally:
        store.close()
    assert os.path.isdir(path)
