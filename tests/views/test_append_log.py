"""Append-log tier: conformance scenarios 12-20 and T5-T7, over every layout."""

from __future__ import annotations

import threading

import pytest

import engine
from engine.views import (
    AppendCursor,
    AppendLogMode,
    AppendLogStorageTier,
    BackendError,
    LoadEntriesOpts,
    OverwriteSinkRejected,
    append_log_storage,
    check_append_sinks,
    kv_storage,
)

from .conftest import FaultyStore


def entries(log, **kw) -> list:
    version = kw.pop("version", None)
    return log.load_entries(LoadEntriesOpts(**kw), version=version).entries


def test_protocol(store: engine.Store) -> None:
    log = append_log_storage(store, "log")
    assert isinstance(log, AppendLogStorageTier)
    assert log.mode() is AppendLogMode.APPEND


def test_s12_append(store: engine.Store) -> None:
    log = append_log_storage(store, "log")
    log.append_entries([1, 2, 3])
    log.append_entries([4, 5])
    assert entries(log) == [1, 2, 3, 4, 5]
    v = store.version
    assert log.append_entries([]) is None
    assert store.version == v and log.write_count == 5


def test_s13_key_of_partitions(store: engine.Store) -> None:
    log = append_log_storage(store, "log", key_of=lambda e: e["topic"])
    log.append_entries([{"topic": "orders", "n": 1}, {"topic": "shipments", "n": 10}, {"topic": "orders", "n": 2}])
    assert [e["n"] for e in entries(log, key_filter="orders")] == [1, 2]
    assert [e["n"] for e in entries(log, key_filter="shipments")] == [10]
    assert [e["n"] for e in entries(log)] == [1, 2, 10]
    assert log.partitions() == ["orders", "shipments"]
    ab = append_log_storage(store, "ab", key_of=lambda e: e[0])
    ab.append_entries([("alpha", 1), ("beta", 2), ("alpha", 3)])
    assert entries(ab, key_filter="alpha") == [["alpha", 1], ["alpha", 3]]


def test_s14_second_tier_continues(store: engine.Store) -> None:
    append_log_storage(store, "log").append_entries([1, 2])
    second = append_log_storage(store, "log")
    second.append_entries([3, 4])
    assert entries(second) == [1, 2, 3, 4]


def test_s15_overwrite(store: engine.Store) -> None:
    log = append_log_storage(store, "log", mode=AppendLogMode.OVERWRITE)
    assert log.mode() is AppendLogMode.OVERWRITE
    log.append_entries([1, 2, 3])
    v1 = store.version
    log.append_entries([10, 20])
    assert entries(log) == [10, 20]
    assert entries(log, version=v1) == [1, 2, 3]
    log.append_entries([7, 8, 9, 10])
    assert entries(log) == [7, 8, 9, 10]


def test_s16_pagination(store: engine.Store) -> None:
    log = append_log_storage(store, "log")
    log.append_entries([10, 20, 30, 40, 50])
    r = log.load_entries(LoadEntriesOpts(page_size=2))
    assert (r.entries, r.cursor) == ([10, 20], AppendCursor(2))
    r = log.load_entries(LoadEntriesOpts(cursor=r.cursor, page_size=2))
    assert (r.entries, r.cursor) == ([30, 40], AppendCursor(4))
    r = log.load_entries(LoadEntriesOpts(cursor=r.cursor, page_size=2))
    assert (r.entries, r.cursor) == ([50], None)

    seven = append_log_storage(store, "seven")
    seven.append_entries(list(range(7)))
    cursors, cur = [], None
    while True:
        r = seven.load_entries(LoadEntriesOpts(cursor=cur, page_size=3))
        cursors.append(None if r.cursor is None else r.cursor.position)
        cur = r.cursor
        if cur is None:
            break
    assert cursors == [3, 6, None]

    r = log.load_entries(LoadEntriesOpts(page_size=100))
    assert (r.entries, r.cursor) == ([10, 20, 30, 40, 50], None)
    r = log.load_entries(LoadEntriesOpts(cursor=AppendCursor(99), page_size=2))
    assert (r.entries, r.cursor) == ([], None)
    empty = append_log_storage(store, "empty")
    r = empty.load_entries(LoadEntriesOpts(page_size=2))
    assert (r.entries, r.cursor) == ([], None)
    r = log.load_entries(LoadEntriesOpts(cursor=AppendCursor(3)))
    assert (r.entries, r.cursor) == ([40, 50], None)
    r = log.load_entries(LoadEntriesOpts(cursor=AppendCursor(3), page_size=0))
    assert (r.entries, r.cursor) == ([40, 50], None)
    r = log.load_entries(LoadEntriesOpts(cursor=AppendCursor(3), page_size=2))
    assert (r.entries, r.cursor) == ([40, 50], None)  # nothing follows: no cursor


@pytest.mark.parametrize("bad", [2.5, float("nan"), "3", True])
def test_s16_bad_page_size(bad: object) -> None:
    with pytest.raises(TypeError):
        LoadEntriesOpts(page_size=bad)  # type: ignore[arg-type]


def test_s16_negative_page_size_and_cursor() -> None:
    with pytest.raises(ValueError):
        LoadEntriesOpts(page_size=-1)
    with pytest.raises(ValueError):
        AppendCursor(-1)
    with pytest.raises(ValueError):
        AppendCursor(0, tag="x")  # type: ignore[arg-type]


def test_s17_batch_crossing_compact_every(store: engine.Store) -> None:
    log = append_log_storage(store, "log", debounce_ms=100, compact_every=3)
    assert log.append_entries([1, 2, 3, 4, 5]) == 1
    assert entries(log) == [1, 2, 3, 4, 5]
    log.append_entries([6])  # count 6: crosses the multiple 6
    assert entries(log) == [1, 2, 3, 4, 5, 6]
    log.append_entries([7])
    assert entries(log) == [1, 2, 3, 4, 5, 6]


def test_s18_rollback(store: engine.Store) -> None:
    log = append_log_storage(store, "log", debounce_ms=100)
    log.append_entries([1])
    log.flush()
    log.append_entries([2])
    log.append_entries([3])
    log.rollback()
    assert log.flush() is None
    assert entries(log) == [1]
    log.rollback()  # after a flush: changes nothing
    assert entries(log) == [1]
    log.append_entries([4])
    log.flush()
    assert entries(log) == [1, 4]


def test_s19_write_fault_retry_no_duplicates(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    log = append_log_storage(faulty, "log", debounce_ms=100)
    log.append_entries([1, 2])
    log.flush()
    log.append_entries([3, 4])
    faulty.fail_commits = 1
    with pytest.raises(BackendError):
        log.flush()
    assert entries(log) == [1, 2] and log.has_pending
    log.append_entries([5])  # appended after the failure: goes after the returned entries
    log.flush()
    assert entries(log) == [1, 2, 3, 4, 5]


def test_s19_overwrite_fault_puts_back_bucket(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    log = append_log_storage(faulty, "log", debounce_ms=100, mode=AppendLogMode.OVERWRITE)
    log.append_entries([1, 2])
    log.flush()
    log.append_entries([3, 4])
    faulty.fail_commits = 1
    with pytest.raises(BackendError):
        log.flush()
    assert entries(log) == [1, 2]
    log.flush()
    assert entries(log) == [3, 4]


def test_s20_rollback_during_flush_of_two_buckets(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    log = append_log_storage(faulty, "log", debounce_ms=100, key_of=lambda e: e[0])
    log.append_entries([("a", 1), ("b", 2)])
    calls = []

    def hook() -> None:  # the flush reads one bucket's tail per bucket; roll back on the second
        calls.append(1)
        if len(calls) == 2:
            log.rollback()

    faulty.on_tx_range = hook
    v = store.version
    assert log.flush() is None  # returns normally
    assert len(calls) == 2
    assert store.version == v and entries(log) == []  # neither bucket persisted
    assert not log.has_pending
    faulty.on_tx_range = None
    # a rollback after the commit changes nothing
    log.append_entries([("a", 1), ("b", 2)])
    log.flush()
    log.rollback()
    assert entries(log) == [["a", 1], ["b", 2]]


def test_rollback_during_failing_commit_drops_data(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    log = append_log_storage(faulty, "log", debounce_ms=100)
    log.append_entries([1])
    faulty.on_tx_range = log.rollback
    # The epoch check happens before commit, so this flush abandons its transaction.
    assert log.flush() is None
    faulty.on_tx_range = None
    assert not log.has_pending and entries(log) == []


def test_t5_partition_order(store: engine.Store) -> None:
    log = append_log_storage(store, "log", key_of=lambda e: e.split("#")[0])
    log.append_entries(["b#1", "a/0#1", "a-b#1", "a#1", "a/0#2", "a#2"])
    assert entries(log) == ["a#1", "a#2", "a-b#1", "a/0#1", "a/0#2", "b#1"]
    assert entries(log, key_filter="a") == ["a#1", "a#2", "a-b#1", "a/0#1", "a/0#2"]
    assert entries(log, key_filter="a-") == ["a-b#1"]
    assert entries(log, key_filter="a/") == ["a/0#1", "a/0#2"]
    assert entries(log, key_filter="") == entries(log)
    # NUL bytes in partition keys keep the order and the prefix filter exact
    nul = append_log_storage(store, "nul", key_of=lambda e: e[0])
    nul.append_entries([["a\x00b", 1], ["a", 2], ["a\x00", 3], ["a\x01", 4]])
    assert [e[1] for e in entries(nul)] == [2, 3, 1, 4]
    assert [e[1] for e in entries(nul, key_filter="a\x00")] == [3, 1]
    assert [p for p, _ in nul.list_by_prefix_bytes("a\x00")] == ["a\x00", "a\x00b"]


def test_t6_paging_at_fixed_version(store: engine.Store) -> None:
    log = append_log_storage(store, "log")
    log.append_entries([1, 2, 3, 4, 5])
    v = store.version
    page1 = log.load_entries(LoadEntriesOpts(page_size=2), version=v)
    over = append_log_storage(store, "log", mode=AppendLogMode.OVERWRITE)
    over.append_entries([9])
    page2 = log.load_entries(LoadEntriesOpts(cursor=page1.cursor, page_size=10), version=v)
    assert page1.entries + page2.entries == [1, 2, 3, 4, 5]
    assert entries(log) == [9]


def test_t7_concurrent_flush_conflict_retry(store: engine.Store) -> None:
    faulty = FaultyStore(store)
    a = append_log_storage(faulty, "log", debounce_ms=100)
    b = append_log_storage(faulty, "log", debounce_ms=100)
    a.append_entries(["a1", "a2"])
    b.append_entries(["b1", "b2"])
    fired = []

    def hook() -> None:  # while A is inside its flush transaction, B commits
        if not fired:
            fired.append(1)
            b.flush()

    faulty.on_tx_range = hook
    with pytest.raises(BackendError) as info:
        a.flush()
    faulty.on_tx_range = None
    assert isinstance(info.value.source, engine.ConflictError)
    assert entries(a) == ["b1", "b2"] and a.has_pending
    a.flush()  # the retry appends after the winner, no duplicates
    assert entries(a) == ["b1", "b2", "a1", "a2"]


def test_t7_threads(store: engine.Store) -> None:
    tiers = [append_log_storage(store, "log", debounce_ms=100) for _ in range(2)]
    rounds = 30

    def run(idx: int) -> None:
        t = tiers[idx]
        for r in range(rounds):
            t.append_entries([f"{idx}:{r}"])
            while True:
                try:
                    t.flush()
                    break
                except BackendError as exc:
                    assert isinstance(exc.source, engine.ConflictError)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    got = entries(tiers[0])
    assert sorted(got) == sorted(f"{i}:{r}" for i in range(2) for r in range(rounds))
    for i in range(2):  # each writer's entries stay in its commit order
        mine = [e for e in got if e.startswith(f"{i}:")]
        assert mine == [f"{i}:{r}" for r in range(rounds)]


def test_list_by_prefix_bytes_per_entry(store: engine.Store) -> None:
    log = append_log_storage(store, "log", key_of=lambda e: e[0])
    log.append_entries([["x", 1], ["y", 2], ["x", 3]])
    assert list(log.list_by_prefix_bytes("x")) == [("x", b'["x",1]'), ("x", b'["x",3]')]


def test_atomic_batch_encode(store: engine.Store) -> None:
    log = append_log_storage(store, "log", debounce_ms=1)
    with pytest.raises(engine.views.CodecError):
        log.append_entries([1, float("inf")])
    assert not log.has_pending and log.write_count == 0
    with pytest.raises(TypeError):
        log.append_entries("abc")  # type: ignore[arg-type]


def test_overwrite_sink_rejected(store: engine.Store) -> None:
    ok = append_log_storage(store, "a")
    bad = append_log_storage(store, "b", mode=AppendLogMode.OVERWRITE)
    check_append_sinks([ok])
    with pytest.raises(OverwriteSinkRejected) as info:
        check_append_sinks([ok, bad])
    assert info.value.sink_index == 1


def test_check_detects_damage(store: engine.Store) -> None:
    log = append_log_storage(store, "log")
    log.append_entries([1, 2, 3])
    assert log.check() == {"keys": 3, "pending": 0, "writes": 3, "version": store.version}
    from engine.views.keys import entry_key, keyspace_prefix

    with store.begin() as tx:  # a hole in the seqs
        tx.remove(engine.EntryKind.MULTI, entry_key(keyspace_prefix("log"), "log", 1))
    with pytest.raises(engine.CorruptionError, match="expected seq 1"):
        log.check()
    assert log.check(version=1)["keys"] == 3  # the past is intact
    kv_storage(store, "bad", keyspace="log").save("stray", 1)  # not an entry key
    with pytest.raises(engine.CorruptionError):
        append_log_storage(store, "log").check()


def test_check_kv_undecodable(store: engine.Store) -> None:
    from engine.views import BytesCodec

    kv_storage(store, "kv", codec=BytesCodec()).save("k", b"\xff not json")
    with pytest.raises(engine.CorruptionError, match="'kv'"):
        kv_storage(store, "kv").check()
