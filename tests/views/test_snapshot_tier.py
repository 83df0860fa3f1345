"""Snapshot tier: conformance scenarios 1-7 and T1, over every layout."""

from __future__ import annotations

import pytest

import engine
from engine.views import SnapshotStorageTier, snapshot_storage
from engine.views.keys import encode_view_key, keyspace_prefix


def test_protocol(store: engine.Store) -> None:
    assert isinstance(snapshot_storage(store, "s"), SnapshotStorageTier)


def test_s01_write_through(store: engine.Store) -> None:
    t = snapshot_storage(store, "s")
    v1 = t.save({"x": 1})
    assert v1 == store.version == 1
    assert t.load() == {"x": 1}
    t.save({"x": 2})
    assert t.load() == {"x": 2}
    assert store.version == 2  # one commit per accepted write


def test_s02_debounce_buffers_until_flush(store: engine.Store) -> None:
    t = snapshot_storage(store, "s", debounce_ms=50)
    assert t.save({"x": 1}) is None
    assert store.version == 0 and t.load() is None and t.has_pending
    v = t.flush()
    assert v == store.version == 1
    assert t.load() == {"x": 1} and not t.has_pending
    assert t.flush() is None  # nothing to write: no commit
    assert store.version == 1


def test_s03_compact_every_under_debounce(store: engine.Store) -> None:
    t = snapshot_storage(store, "s", debounce_ms=50, compact_every=3)
    t.save(1)
    t.save(2)
    assert store.version == 0 and t.load() is None
    assert t.save(3) == 1
    assert t.load() == 3


def test_s04_rollback(store: engine.Store) -> None:
    t = snapshot_storage(store, "s", debounce_ms=50)
    t.save("x1")
    t.flush()
    t.save("x2")
    t.rollback()
    assert t.load() == "x1"
    assert t.flush() is None
    t.save("x3")
    t.rollback()
    assert t.flush() is None
    assert t.load() == "x1" and store.version == 1


def test_s05_filter_and_counting(store: engine.Store) -> None:
    t = snapshot_storage(store, "s", filter=lambda v: v > 0)
    assert t.save(0) is None
    assert t.load() is None and store.version == 0
    t.save(5)
    assert t.load() == 5
    d = snapshot_storage(store, "d", debounce_ms=10, compact_every=2, filter=lambda v: v > 0)
    d.save(0)
    d.save(0)
    d.save(1)
    assert d.write_count == 1 and d.load() is None  # rejected saves do not count
    d.save(2)
    assert d.load() == 2


def test_s06_key_of(store: engine.Store) -> None:
    t = snapshot_storage(store, "s", key_of=lambda r: r["name"])
    t.save({"name": "alpha", "v": 1})
    t.save({"name": "beta", "v": 2})
    assert t.load() == {"name": "beta", "v": 2}
    assert t.last_saved_key == "beta"
    keys = [k for k, _ in t.list_by_prefix_bytes("")]
    assert keys == ["alpha", "beta"]
    prefix = keyspace_prefix("s")
    assert store.get(engine.EntryKind.MULTI, encode_view_key(prefix, "alpha")) == b'{"name":"alpha","v":1}'
    # A fresh tier (a restart) reads the tier name, not the custom key (kept from Rust).
    assert snapshot_storage(store, "s", key_of=lambda r: r["name"]).load() is None


def test_s07_compact_and_construction(store: engine.Store) -> None:
    t = snapshot_storage(store, "s", debounce_ms=1000)
    assert t.load() is None  # before any save
    t.save({"a": 1})
    assert store.version == 0
    assert t.compact() == 1
    assert t.load() == {"a": 1}
    with pytest.raises(ValueError):
        snapshot_storage(store, "bad", compact_every=0)
    with pytest.raises(ValueError):
        snapshot_storage(store, "bad", compact_every=-2)
    with pytest.raises(TypeError):
        snapshot_storage(store, "bad", compact_every=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        snapshot_storage(store, "bad", debounce_ms=-1)
    with pytest.raises(ValueError):
        snapshot_storage(store, "")
    with pytest.raises(TypeError):
        snapshot_storage(store, "x", table="multi")  # type: ignore[arg-type]


def test_t1_time_travel(store: engine.Store) -> None:
    t = snapshot_storage(store, "s")
    v1 = t.save("x1")
    v2 = t.save("x2")
    assert t.load(version=v1) == "x1"
    assert t.load(version=v2) == "x2"
    assert t.load(version=0) is None
    with pytest.raises(engine.FutureVersionError):
        t.load(version=store.version + 1)


def test_encode_error_refused_at_save_nothing_buffered(store: engine.Store) -> None:
    t = snapshot_storage(store, "s", debounce_ms=5)
    with pytest.raises(engine.views.CodecError):
        t.save({"bad": float("nan")})
    assert not t.has_pending and t.write_count == 0


def test_value_semantics_at_save(store: engine.Store) -> None:
    t = snapshot_storage(store, "s", debounce_ms=5)
    rec = {"a": [1]}
    t.save(rec)
    rec["a"].append(2)  # mutation after save does not change what is written
    t.flush()
    assert t.load() == {"a": [1]}


def test_keyspaces_never_collide(store: engine.Store) -> None:
    # "a\x00" and "a" and "a/x": different views, different keyspaces.
    a = snapshot_storage(store, "a")
    a0 = snapshot_storage(store, "a\x00")
    ax = snapshot_storage(store, "a", keyspace="a\x00\x00")
    a.save(1)
    a0.save(2)
    ax.save(3)
    assert (a.load(), a0.load(), ax.load()) == (1, 2, 3)
    assert [k for k, _ in a.list_by_prefix_bytes("")] == ["a"]


def test_custom_table(store: engine.Store) -> None:
    t = snapshot_storage(store, "s", table=engine.EntryKind.operator(7))
    t.save(1)
    assert snapshot_storage(store, "s").load() is None
    assert snapshot_storage(store, "s", table=engine.EntryKind.operator(7)).load() == 1
