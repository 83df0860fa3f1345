"""KV tier: conformance scenarios 8-11, T2 and T10, over every layout."""

from __future__ import annotations

import pytest

import engine
from engine.views import BackendError, BackendNoListSupport, KvStorageTier, kv_storage

from .conftest import FaultyStore


def test_protocol(store: engine.Store) -> None:
    assert isinstance(kv_storage(store, "kv"), KvStorageTier)


def test_s08_round_trip_list_delete(store: engine.Store) -> None:
    kv = kv_storage(store, "kv")
    kv.save("a", {"n": 1})
    kv.save("ns/2", 2)
    kv.save("ns/1", [1])
    kv.save("b", None)  # JSON null is a value
    assert kv.load("a") == {"n": 1}
    assert kv.load("missing") is None
    assert kv.list("") == ["a", "b", "ns/1", "ns/2"]
    assert kv.list("ns/") == ["ns/1", "ns/2"]
    assert kv.list("n") == ["ns/1", "ns/2"]
    assert kv.list("zzz") == []
    kv.delete("a")
    assert kv.load("a") is None
    assert kv.list() == ["b", "ns/1", "ns/2"]


def test_s09_compact_every(store: engine.Store) -> None:
    kv = kv_storage(store, "kv", debounce_ms=100, compact_every=2)
    kv.save("a", 1)
    assert kv.load("a") is None
    assert kv.save("b", 2) == 1  # the second save flushes both keys in one commit
    assert (kv.load("a"), kv.load("b")) == (1, 2)
    nine = kv_storage(store, "nine", debounce_ms=100, compact_every=3)
    before = store.version
    for i in range(9):
        nine.save(f"k{i}", i)
    assert nine.list() == [f"k{i}" for i in range(9)]
    assert store.version == before + 3 and not nine.has_pending


def test_s10_failed_delete_keeps_pending(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    kv = kv_storage(faulty, "kv", debounce_ms=100)
    kv.save("k", "pending")
    faulty.fail_commits = 1
    with pytest.raises(BackendError) as info:
        kv.delete("k")
    assert isinstance(info.value.source, engine.StorageIOError)
    assert info.value.__cause__ is info.value.source
    assert kv.has_pending
    kv.flush()
    assert kv.load("k") == "pending"


def test_delete_clears_pending_after_commit(store: engine.Store) -> None:
    kv = kv_storage(store, "kv", debounce_ms=100)
    kv.save("k", 1)
    v = kv.delete("k")
    assert v == store.version
    assert not kv.has_pending
    assert kv.flush() is None and kv.load("k") is None


def test_s11_list_by_prefix_bytes(store: engine.Store) -> None:
    kv = kv_storage(store, "kv")
    for key in ("g/02", "g/01", "g/10", "other", "g", "gx/1"):
        kv.save(key, key)
    kv.save("g/empty", "x")
    it = kv.list_by_prefix_bytes("g/")
    assert [k for k, _ in it] == ["g/01", "g/02", "g/10", "g/empty"]
    assert dict(kv.list_by_prefix_bytes("g/"))["g/01"] == b'"g/01"'
    # literal prefix: "a/" does not match "ab/2"
    kv.save("ab/2", 1)
    kv.save("a/1", 1)
    assert [k for k, _ in kv.list_by_prefix_bytes("a/")] == ["a/1"]


def test_s11_listing_refused(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    kv = kv_storage(faulty, "kv")
    kv.save("g/1", 1)
    faulty.refuse_list = True
    it = kv.list_by_prefix_bytes("g/")
    with pytest.raises(BackendNoListSupport) as info:
        next(it)
    assert info.value.tier == "kv" and isinstance(info.value, NotImplementedError)
    assert list(it) == []  # the next step yields nothing
    with pytest.raises(BackendNoListSupport):
        kv.list("")


def test_empty_values_skipped_by_list_by_prefix_bytes(store: engine.Store) -> None:
    from engine.views import BytesCodec

    kv = kv_storage(store, "raw", codec=BytesCodec())
    kv.save("a", b"")
    kv.save("b", b"x")
    assert list(kv.list_by_prefix_bytes("")) == [("b", b"x")]
    assert kv.load("a") is None  # empty bytes read as missing
    assert kv.list() == ["a", "b"]


def test_t2_time_travel(store: engine.Store) -> None:
    kv = kv_storage(store, "kv")
    v_save = kv.save("k", 1)
    v_other = kv.save("j", 2)
    v_del = kv.delete("k")
    assert kv.load("k") is None
    assert kv.load("k", version=v_save) == 1
    assert kv.list("", version=v_save) == ["k"]
    assert kv.list("", version=v_other) == ["j", "k"]
    assert kv.list("", version=v_del) == ["j"]
    assert kv.list("", version=0) == []
    assert dict(kv.list_by_prefix_bytes("", version=v_save)) == {"k": b"1"}
    with pytest.raises(engine.FutureVersionError):
        kv.load("k", version=store.version + 1)
    with pytest.raises(engine.FutureVersionError):
        kv.list("", version=store.version + 5)
    with pytest.raises(engine.FutureVersionError):
        next(kv.list_by_prefix_bytes("", version=store.version + 5))


def test_t10_list_by_prefix_bytes_fixed_version(store: engine.Store) -> None:
    kv = kv_storage(store, "kv", debounce_ms=1)
    kv.save_many({f"g/{i}": i for i in range(5)})
    kv.flush()
    it = kv.list_by_prefix_bytes("g/")
    first = next(it)
    kv.save("g/4", 400)
    kv.save("g/5", 5)
    kv.delete("g/3")
    kv.flush()
    rest = list(it)
    assert [first] + rest == [(f"g/{i}", str(i).encode()) for i in range(5)]
    assert kv.load("g/4") == 400


def test_newer_save_wins_over_failed_flush(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    kv = kv_storage(faulty, "kv", debounce_ms=1)
    kv.save("a", 1)
    kv.save("b", 1)
    faulty.fail_commits = 1
    with pytest.raises(BackendError):
        kv.flush()
    kv.save("a", 2)  # saved after the failure: wins over the returned data
    kv.flush()
    assert (kv.load("a"), kv.load("b")) == (2, 1)


def test_non_str_key_rejected(store: engine.Store) -> None:
    kv = kv_storage(store, "kv")
    with pytest.raises(TypeError):
        kv.save(b"k", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        kv.load(1)  # type: ignore[arg-type]


def test_filter(store: engine.Store) -> None:
    kv = kv_storage(store, "kv", debounce_ms=1, compact_every=2, filter=lambda k, v: not k.startswith("_"))
    kv.save("_skip", 1)
    kv.save("a", 1)
    assert kv.write_count == 1 and store.version == 0
    kv.save("b", 1)
    assert kv.list() == ["a", "b"]
