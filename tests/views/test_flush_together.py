"""flush_together: several tiers in one store version (T3, T4)."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine
from engine.views import (
    BackendError,
    LoadEntriesOpts,
    append_log_storage,
    flush_together,
    kv_storage,
    snapshot_storage,
)

from .conftest import FaultyStore


def _tiers(store):
    snap = snapshot_storage(store, "snap", debounce_ms=100)
    kv = kv_storage(store, "kv", debounce_ms=100)
    log = append_log_storage(store, "log", debounce_ms=100)
    return snap, kv, log


def test_t3_one_version_for_all(store: engine.Store) -> None:
    snap, kv, log = _tiers(store)
    kv.save("pre", 0)
    kv.flush()
    before = store.version
    snap.save({"s": 1})
    kv.save("k", 1)
    log.append_entries([1, 2])
    v = flush_together(snap, kv, log)
    assert v == store.version == before + 1
    assert snap.load(version=v) == {"s": 1}
    assert kv.load("k", version=v) == 1
    assert log.load_entries(version=v).entries == [1, 2]
    assert snap.load(version=before) is None
    assert kv.load("k", version=before) is None
    assert log.load_entries(version=before).entries == []
    assert flush_together(snap, kv, log) is None  # nothing left
    assert store.version == v


def test_t3_fault_nothing_visible_then_retry_once(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    snap, kv, log = _tiers(faulty)
    snap.save({"s": 1})
    kv.save("k", 1)
    log.append_entries([1, 2])
    faulty.fail_commits = 1
    with pytest.raises(BackendError):
        flush_together(snap, kv, log)
    assert store.version == 0
    assert snap.load() is None and kv.load("k") is None and log.load_entries().entries == []
    assert snap.has_pending and kv.has_pending and log.has_pending
    v = flush_together(snap, kv, log)
    assert v == store.version == 1
    assert snap.load() == {"s": 1} and kv.load("k") == 1
    assert log.load_entries().entries == [1, 2]  # committed exactly once


def test_t4_different_stores(store: engine.Store, tmp_path: Path) -> None:
    other = engine.open(None)
    try:
        a = kv_storage(store, "a", debounce_ms=1)
        b = kv_storage(other, "b", debounce_ms=1)
        a.save("k", 1)
        b.save("k", 2)
        with pytest.raises(ValueError, match="another store"):
            flush_together(a, b)
        assert store.version == 0 and other.version == 0
        assert a.has_pending and b.has_pending
    finally:
        other.close()


def test_partial_rollback_tier_contributes_nothing(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    kv = kv_storage(faulty, "kv", debounce_ms=100)
    log = append_log_storage(faulty, "log", debounce_ms=100)
    kv.save("k", 1)
    log.append_entries([1])
    faulty.on_tx_range = log.rollback  # only the append log reads during a flush
    v = flush_together(kv, log)
    assert v == store.version == 1
    assert kv.load("k") == 1 and log.load_entries().entries == []
    assert not log.has_pending


def test_same_tier_twice_and_empty(store: engine.Store) -> None:
    kv = kv_storage(store, "kv", debounce_ms=100)
    assert flush_together() is None
    assert flush_together(kv) is None
    kv.save("k", 1)
    assert flush_together(kv, kv) == 1
    with pytest.raises(TypeError):
        flush_together(object())  # type: ignore[arg-type]


def test_mixed_tables_one_commit(store: engine.Store) -> None:
    a = kv_storage(store, "a", debounce_ms=1, table=engine.EntryKind.source(1))
    b = kv_storage(store, "b", debounce_ms=1, table=engine.EntryKind.operator(2))
    a.save("x", 1)
    b.save("y", 2)
    v = flush_together(a, b)
    assert (a.load("x", version=v), b.load("y", version=v)) == (1, 2)
    assert a.load("x", version=v - 1) is None


def test_paging_options_unaffected(store: engine.Store) -> None:
    log = append_log_storage(store, "log", debounce_ms=1)
    log.append_entries(list(range(5)))
    flush_together(log)
    assert log.load_entries(LoadEntriesOpts(page_size=2)).entries == [0, 1]
