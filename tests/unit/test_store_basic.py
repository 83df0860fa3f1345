"""The store API of DESIGN.md section 6 on the memory layout and the durable hot + commit log store."""

from __future__ import annotations

import threading
import time

import pytest

import engine
from engine import Bound, EntryKind, RangeCursor
from engine.errors import (
    ClosedError,
    FutureVersionError,
    ReadOnlyError,
    TransactionClosed,
)

T = EntryKind.MULTI
U = EntryKind.source(7)


@pytest.fixture(params=["memory", "durable"])
def store(request, tmp_path):
    if request.param == "memory":
        s = engine.open(None)
    else:
        s = engine.open(tmp_path / "db", layout="memory")
    yield s
    s.close()


def put(store, *pairs, table=T):
    with store.begin() as tx:
        for k, v in pairs:
            if v is None:
                tx.remove(table, k)
            else:
                tx.set(table, k, v)
    return tx.version


# -- transactions --------------------------------------------------------------------------


def test_fresh_store_is_empty_at_version_zero(store):
    assert store.version == 0
    assert store.get(T, b"a") is None
    assert store.get(T, b"a", version=0) is None
    assert list(store.range(T)) == []
    assert store.history(T, b"a") == []


def test_context_manager_commits_and_versions_increase_by_one(store):
    versions = []
    for i in range(5):
        with store.begin() as tx:
            tx.set(T, b"k", b"%d" % i)
            assert tx.version is None  # not committed yet
        versions.append(tx.version)
        assert store.version == tx.version
    assert versions == [1, 2, 3, 4, 5]
    assert store.get(T, b"k") == b"4"


def test_context_manager_rolls_back_on_exception(store):
    put(store, (b"a", b"1"))
    with pytest.raises(RuntimeError, match="boom"):
        with store.begin() as tx:
            tx.set(T, b"a", b"2")
            tx.set(T, b"b", b"2")
            raise RuntimeError("boom")
    assert tx.closed
    assert store.version == 1
    assert store.get(T, b"a") == b"1"
    assert store.get(T, b"b") is None


def test_explicit_commit_and_rollback(store):
    tx = store.begin()
    tx.set(T, b"a", b"1")
    v = tx.commit()
    assert v == tx.version == 1 == store.version
    tx2 = store.begin()
    tx2.set(T, b"a", b"2")
    tx2.remove(T, b"b")
    tx2.rollback()
    assert store.version == 1
    assert store.get(T, b"a") == b"1"
    assert store.history(T, b"a") == [(1, b"1")]


def test_used_transaction_raises_transaction_closed(store):
    tx = store.begin()
    tx.set(T, b"a", b"1")
    tx.commit()
    for call in (lambda: tx.set(T, b"a", b"2"), lambda: tx.get(T, b"a"), tx.commit, tx.rollback,
                 lambda: tx.remove(T, b"a"), lambda: tx.range(T)):
        with pytest.raises(TransactionClosed):
            call()
    tx = store.begin()
    tx.rollback()
    with pytest.raises(TransactionClosed):
        tx.commit()
    assert store.get(T, b"a") == b"1" and store.version == 1


def test_read_only_transaction_commit_returns_read_version_without_new_version(store):
    put(store, (b"a", b"1"))
    with store.begin() as tx:
        assert tx.get(T, b"a") == b"1"
    assert tx.version == 1
    assert store.version == 1


def test_multi_table_commit_is_one_version(store):
    with store.begin() as tx:
        tx.set(T, b"k", b"multi")
        tx.set(U, b"k", b"source")
        tx.set(EntryKind.operator(3), b"k", b"op")
    assert tx.version == 1
    assert store.get(T, b"k") == b"multi"
    assert store.get(U, b"k") == b"source"
    assert store.get(EntryKind.operator(3), b"k") == b"op"
    assert store.get(EntryKind.source(8), b"k") is None


def test_read_your_writes_point(store):
    put(store, (b"a", b"1"), (b"b", b"1"))
    tx = store.begin()
    tx.set(T, b"a", b"2")
    tx.remove(T, b"b")
    tx.set(T, b"c", b"")
    assert tx.get(T, b"a") == b"2"
    assert tx.get(T, b"b") is None
    assert tx.get(T, b"c") == b""  # empty value is a value, not a tombstone
    assert tx.contains(T, b"c")
    assert not tx.contains(T, b"b")
    # nothing visible outside the transaction
    assert store.get(T, b"a") == b"1" and store.get(T, b"b") == b"1" and store.get(T, b"c") is None
    tx.set(T, b"b", b"3")  # overwrite own tombstone
    assert tx.get(T, b"b") == b"3"
    tx.commit()
    assert store.get(T, b"b") == b"3" and store.get(T, b"c") == b""


def test_read_your_writes_ranges_tombstones_and_prefix(store):
    put(store, *[(b"k%d" % i, b"old%d" % i) for i in range(0, 10, 2)], (b"other", b"o"))
    tx = store.begin()
    tx.set(T, b"k1", b"new1")      # insert between stored keys
    tx.set(T, b"k4", b"new4")      # overwrite a stored key
    tx.remove(T, b"k6")            # hide a stored key
    tx.remove(T, b"k7")            # tombstone for a key that never existed
    tx.set(T, b"k9", b"new9")      # after the last stored key
    tx.set(T, b"j", b"before")     # outside the prefix
    expected = [(b"k0", b"old0"), (b"k1", b"new1"), (b"k2", b"old2"), (b"k4", b"new4"),
                (b"k8", b"old8"), (b"k9", b"new9")]
    assert list(tx.range(T, prefix=b"k")) == expected
    assert list(tx.range(T, prefix=b"k", reverse=True)) == expected[::-1]
    assert list(tx.range(T, b"k1", b"k8")) == expected[1:4]
    assert list(tx.range(T, b"k1", b"k8", reverse=True)) == expected[1:4][::-1]
    assert list(tx.range(T, Bound.excluded(b"k1"), Bound.included(b"k8"))) == expected[2:5]
    assert list(tx.range(T)) == [(b"j", b"before")] + expected + [(b"other", b"o")]
    # writes made while an iterator is open do not disturb it
    it = tx.range(T, prefix=b"k")
    first = next(it)
    tx.set(T, b"k3", b"late")
    assert [first] + list(it) == expected
    assert (b"k3", b"late") in list(tx.range(T, prefix=b"k"))
    tx.rollback()
    assert list(store.range(T, prefix=b"k")) == [(b"k%d" % i, b"old%d" % i) for i in range(0, 10, 2)]


def test_transaction_reads_at_its_begin_version(store):
    put(store, (b"a", b"1"))
    tx = store.begin()
    put(store, (b"a", b"2"), (b"b", b"2"))
    assert tx.read_version == 1
    assert tx.get(T, b"a") == b"1"
    assert tx.get(T, b"b") is None
    assert list(tx.range(T)) == [(b"a", b"1")]
    tx.rollback()


# -- store reads ---------------------------------------------------------------------------


def test_get_at_every_version_and_tombstones(store):
    v1 = put(store, (b"a", b"1"))
    v2 = put(store, (b"a", b"2"))
    v3 = put(store, (b"a", None))
    v4 = put(store, (b"a", b"4"))
    assert (v1, v2, v3, v4) == (1, 2, 3, 4)
    assert [store.get(T, b"a", version=v) for v in range(5)] == [None, b"1", b"2", None, b"4"]
    assert store.get(T, b"a") == b"4"
    assert store.contains(T, b"a")
    assert not store.contains(T, b"a", version=3)
    assert store.history(T, b"a") == [(4, b"4"), (3, None), (2, b"2"), (1, b"1")]
    assert store.history(U, b"a") == []


def test_future_version_raises(store):
    put(store, (b"a", b"1"))
    with pytest.raises(FutureVersionError):
        store.get(T, b"a", version=2)
    with pytest.raises(FutureVersionError):
        store.range(T, version=2)
    with pytest.raises(FutureVersionError):
        store.range_next(T, RangeCursor(), None, None, 2, 10)
    with pytest.raises(FutureVersionError):
        store.snapshot(2)
    with pytest.raises(FutureVersionError):
        store.pin(5, "future")
    assert isinstance(FutureVersionError("x"), ValueError)
    assert store.pins() == {}
    assert store.get(T, b"a", version=1) == b"1"


# The scan fixture of SEMANTICS section 14 scenarios 2 and 3.
SCAN_FIXTURE = [(b"a", b"a1"), (b"b", b"b2"), (b"ba", b"ba3"), (b"bb", b"bb4"), (b"a", b"a5"), (b"c", b"c6")]


def test_scan_and_range_at_version(store):
    for k, v in SCAN_FIXTURE:
        put(store, (k, v))
    keys = lambda **kw: [k for k, _ in store.range(T, **kw)]  # noqa: E731
    assert keys(version=0) == []
    assert keys(version=4) == [b"a", b"b", b"ba", b"bb"]
    assert keys(version=6) == [b"a", b"b", b"ba", b"bb", b"c"]
    assert keys(version=4, reverse=True) == [b"bb", b"ba", b"b", b"a"]
    assert keys(reverse=True) == [b"c", b"bb", b"ba", b"b", b"a"]
    assert dict(store.range(T, version=4))[b"a"] == b"a1"
    assert dict(store.range(T))[b"a"] == b"a5"
    assert keys(start=b"b", end=b"bb", version=2) == [b"b"]
    assert keys(start=b"b", end=Bound.included(b"bb"), version=3) == [b"b", b"ba"]
    assert keys(start=b"bb", version=3) == []
    assert keys(start=b"bb", version=4) == [b"bb"]
    assert keys(start=b"bb", version=6) == [b"bb", b"c"]
    assert keys(prefix=b"b") == [b"b", b"ba", b"bb"]
    assert keys(prefix=b"b", reverse=True) == [b"bb", b"ba", b"b"]
    assert keys(prefix=b"b", start=b"ba") == [b"ba", b"bb"]
    assert keys(prefix=b"b", end=b"bb") == [b"b", b"ba"]
    assert keys(prefix=b"z") == []
    assert keys(start=Bound.excluded(b"a"), end=Bound.excluded(b"c")) == [b"b", b"ba", b"bb"]
    assert keys(start=b"c", end=b"a") == []  # inverted bounds are empty, not an error


def test_range_skips_tombstones_and_uses_batches(store):
    put(store, *[(b"%03d" % i, b"v%d" % i) for i in range(50)])
    put(store, *[(b"%03d" % i, None) for i in range(0, 50, 3)])
    live = [(b"%03d" % i, b"v%d" % i) for i in range(50) if i % 3]
    for bs in (1, 2, 7, 1000):
        assert list(store.range(T, batch_size=bs)) == live
        assert list(store.range(T, batch_size=bs, reverse=True)) == live[::-1]
    assert len(list(store.range(T, version=1))) == 50


def test_prefix_with_ff_bytes(store):
    put(store, (b"\xff", b"1"), (b"\xff\xff", b"2"), (b"\xff\x00", b"3"), (b"\xfe\xff", b"4"))
    assert [k for k, _ in store.range(T, prefix=b"\xff")] == [b"\xff", b"\xff\x00", b"\xff\xff"]
    assert [k for k, _ in store.range(T, prefix=b"\xfe")] == [b"\xfe\xff"]
    assert [k for k, _ in store.range(T, prefix=b"")] == [b"\xfe\xff", b"\xff", b"\xff\x00", b"\xff\xff"]


def test_empty_key_and_bytes_like_keys(store):
    put(store, (b"", b"empty key"))
    with store.begin() as tx:
        tx.set(T, bytearray(b"ba"), memoryview(b"mv"))
    assert store.get(T, b"") == b"empty key"
    assert store.get(T, memoryview(b"ba")) == b"mv"
    assert list(store.range(T)) == [(b"", b"empty key"), (b"ba", b"mv")]


def test_range_next_pages_until_exhausted(store):
    put(store, *[(b"k%02d" % i, b"%d" % i) for i in range(10)])
    put(store, (b"k05", None))
    expected = [b"k%02d" % i for i in range(10) if i != 5]
    for reverse in (False, True):
        cursor = RangeCursor()
        pages = []
        while True:
            batch = store.range_next(T, cursor, None, None, None, 3, reverse=reverse)
            pages.append([e.key for e in batch.entries])
            assert all(e.value is not None for e in batch.entries)
            if not batch.has_more:
                break
        assert cursor.exhausted
        assert [k for p in pages for k in p] == (expected[::-1] if reverse else expected)
        assert all(len(p) == 3 for p in pages[:-1])
        assert store.range_next(T, cursor, None, None, None, 3).entries == []
    # bounded and at an old version
    cursor = RangeCursor()
    batch = store.range_next(T, cursor, b"k03", b"k07", 1, 100)
    assert [e.key for e in batch.entries] == [b"k03", b"k04", b"k05", b"k06"]
    assert not batch.has_more and cursor.exhausted


def test_range_iterator_holds_its_version(store):
    put(store, (b"a", b"1"), (b"b", b"1"))
    it = store.range(T)
    assert next(it) == (b"a", b"1")
    put(store, (b"b", b"2"), (b"c", b"2"))
    assert list(it) == [(b"b", b"1")]


# -- snapshots and pins --------------------------------------------------------------------


def test_snapshot_is_read_only_and_fixed(store):
    put(store, (b"a", b"1"), (b"b", b"1"))
    with store.snapshot() as snap:
        assert snap.version == 1
        put(store, (b"a", b"2"), (b"b", None))
        assert snap.get(T, b"a") == b"1"
        assert snap.contains(T, b"b")
        assert list(snap.range(T)) == [(b"a", b"1"), (b"b", b"1")]
        assert list(snap.range(T, reverse=True)) == [(b"b", b"1"), (b"a", b"1")]
        assert snap.history(T, b"a") == [(1, b"1")]
        batch = snap.range_next(T, RangeCursor(), None, None, 10)
        assert [e.key for e in batch.entries] == [b"a", b"b"]
        with pytest.raises(ReadOnlyError):
            snap.set(T, b"a", b"x")
        with pytest.raises(ReadOnlyError):
            snap.remove(T, b"a")
        assert isinstance(ReadOnlyError("x"), PermissionError)
    assert snap.closed
    with pytest.raises(ClosedError):
        snap.get(T, b"a")
    with store.snapshot(version=1) as old:
        assert old.get(T, b"b") == b"1"
    assert store.get(T, b"a") == b"2"
    assert store.get(T, b"b") is None


def test_snapshot_registers_a_read_point(store):
    put(store, (b"a", b"1"))
    before = store.stats()["read_points"]
    snap = store.snapshot()
    assert store.stats()["read_points"] == before + 1
    snap.close()
    snap.close()  # idempotent
    assert store.stats()["read_points"] == before


def test_pins(store):
    for i in range(3):
        put(store, (b"a", b"%d" % i))
    store.pin(1, "first")
    store.pin(3, "latest")
    store.pin(2, "first")  # re-pinning moves the name
    assert store.pins() == {"first": 2, "latest": 3}
    assert store.unpin("latest") is True
    assert store.unpin("latest") is False
    assert store.pins() == {"first": 2}
    p = store.pins()
    p["mutated"] = 1
    assert store.pins() == {"first": 2}  # a copy
    assert store.get(T, b"a", version=2) == b"1"


# -- time ----------------------------------------------------------------------------------


def test_commit_time_and_version_at(store):
    assert store.version_at(time.time()) == 0
    t0 = time.time()
    put(store, (b"a", b"1"))
    time.sleep(0.01)
    put(store, (b"a", b"2"))
    time.sleep(0.01)
    t_end = time.time()
    c1, c2 = store.commit_time(1), store.commit_time(2)
    assert c1 is not None and c2 is not None
    assert t0 - 0.002 <= c1 < c2 <= t_end
    assert store.version_at(c1) == 1
    assert store.version_at(c2) == 2
    assert store.version_at((c1 + c2) / 2) == 1
    assert store.version_at(t0 - 10) == 0
    assert store.version_at(t_end + 10) == 2
    assert store.commit_time(0) is None


def test_version_at_after_a_burst_of_commits_is_the_latest(store):
    # Many commits inside one millisecond: any time after the burst must map to the last one.
    for i in range(50):
        put(store, (b"k", b"%d" % i))
    time.sleep(0.005)
    assert store.version_at(time.time()) == store.version == 50
    ct = store.commit_time(50)
    assert ct is not None and ct <= time.time()


# -- misc ----------------------------------------------------------------------------------


def test_maintenance_calls_are_harmless(store):
    put(store, (b"a", b"1"), (b"b", b"2"))
    put(store, (b"a", None))
    store.flush()
    store.demote()
    store.gc()
    store.compact()
    assert store.check()["ok"] is True
    st = store.stats()
    assert st["version"] == 2
    assert st["tiers"]["hot"]["keys"] == 2
    assert st["tiers"]["hot"]["versions"] == 3
    assert st["tiers"]["hot"]["bytes"] > 0
    assert store.get(T, b"b") == b"2" and store.history(T, b"a") == [(2, None), (1, b"1")]


def test_close_is_idempotent_and_blocks_use(store):
    put(store, (b"a", b"1"))
    tx = store.begin()
    store.close()
    store.close()
    assert store.closed
    with pytest.raises(ClosedError):
        store.get(T, b"a")
    tx.set(T, b"b", b"1")
    with pytest.raises(ClosedError):
        tx.commit()


def test_concurrent_readers_see_whole_commits(store):
    """Readers never see half a commit: every commit sets all keys to the same value."""
    keys = [b"k%d" % i for i in range(8)]
    put(store, *[(k, b"0") for k in keys])
    stop = threading.Event()
    errors: list[str] = []

    def reader():
        while not stop.is_set():
            v = store.version
            vals = {store.get(T, k, version=v) for k in keys}
            if len(vals) != 1:
                errors.append(f"torn point reads at {v}: {vals}")
            rows = {val for _, val in store.range(T)}
            if len(rows) != 1:
                errors.append(f"torn range at latest: {rows}")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(1, 300):
            put(store, *[(k, b"%d" % i) for k in keys])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []


# -- durable reopen ------------------------------------------------------------------------


def test_reopen_keeps_data_pins_versions_and_continues(tmp_path):
    path = tmp_path / "db"
    s = engine.open(path, layout="memory")
    put(s, (b"a", b"1"), (b"b", b"1"))
    put(s, (b"a", b"2"), (b"b", None), table=T)
    put(s, (b"x", b"u"), table=U)
    s.pin(1, "one")
    times = [s.commit_time(v) for v in (1, 2, 3)]
    s.close()

    s = engine.open(path)  # the stored layout is used
    try:
        assert s.layout.name == "memory"
        assert s.version == 3
        assert s.recovery["records"] == 3 and s.recovery["torn_tail"] is None
        assert s.pins() == {"one": 1}
        assert s.get(T, b"a") == b"2" and s.get(T, b"b") is None
        assert s.get(T, b"a", version=1) == b"1" and s.get(T, b"b", version=1) == b"1"
        assert s.get(U, b"x") == b"u"
        assert s.history(T, b"b") == [(2, None), (1, b"1")]
        assert [s.commit_time(v) for v in (1, 2, 3)] == times
        v = put(s, (b"c", b"3"))
        assert v == 4
        s.unpin("one")
        s.pin(4, "four")
    finally:
        s.close()

    s = engine.open(path, layout="memory")
    try:
        assert s.version == 4
        assert s.pins() == {"four": 4}
        assert list(s.range(T)) == [(b"a", b"2"), (b"c", b"3")]
        assert list(s.range(T, version=1)) == [(b"a", b"1"), (b"b", b"1")]
    finally:
        s.close()


@pytest.mark.parametrize("durability", ["sync", "normal", "none"])
def test_every_durability_mode_survives_clean_close(tmp_path, durability):
    path = tmp_path / "db"
    s = engine.open(path, layout="memory", durability=durability)
    for i in range(20):
        put(s, (b"k%d" % i, b"v%d" % i))
    with s.begin(durability="sync") as tx:
        tx.set(T, b"synced", b"yes")
    s.close()
    s = engine.open(path)
    try:
        assert s.version == 21
        assert s.get(T, b"synced") == b"yes"
        assert len(list(s.range(T))) == 21
    finally:
        s.close()


def test_second_open_of_same_path_is_refused(tmp_path):
    path = tmp_path / "db"
    s = engine.open(path, layout="memory")
    try:
        with pytest.raises(engine.LockedError):
            engine.open(path, layout="memory")
        put(s, (b"a", b"1"))
    finally:
        s.close()
    s = engine.open(path)
    assert s.get(T, b"a") == b"1"
    s.close()


def test_reopen_with_another_layout_is_refused(tmp_path):
    path = tmp_path / "db"
    engine.open(path, layout="memory").close()
    with pytest.raises(ValueError):
        engine.open(path, layout="hot+warm")
    s = engine.open(path)
    assert s.layout.name == "memory"
    s.close()


def test_time_index_keeps_the_end_of_a_burst_across_reopen(tmp_path):
    from engine.mvcc.timeindex import TimeIndex

    ti = TimeIndex(tmp_path / "TIME")
    base = 1_000_000.0
    for v in range(1, 6):          # one millisecond bucket
        ti.record(v, base + v * 1e-5)
    ti.record(6, base + 0.5)       # a new bucket closes the first one
    ti.record(7, base + 0.5 + 1e-5)
    assert ti.version_at(base + 0.25) == 5
    assert ti.version_at(base + 10) == 7
    assert ti.time_of(3) == base + 1e-5
    ti.close()
    ti = TimeIndex(tmp_path / "TIME")
    assert [ti.version_at(base + d) for d in (-1, 0.25, 10)] == [0, 5, 7]
    assert ti.time_of(7) == base + 0.5
    ti.record(8, base + 0.5 + 2e-5)  # continues the reloaded bucket
    ti.flush()
    ti.close()
    ti = TimeIndex(tmp_path / "TIME")
    assert ti.version_at(base + 10) == 8
    ti.close()


@pytest.mark.parametrize("durability", ["none", "normal", "sync"])
def test_flush_concurrent_with_commits_loses_nothing(tmp_path, durability):
    """store.flush() runs outside the commit lock; it must not race the commit log or time index."""
    path = tmp_path / "db"
    s = engine.open(path, layout="memory", durability=durability)
    stop = threading.Event()
    errors: list[BaseException] = []

    def flusher():
        try:
            while not stop.is_set():
                s.flush()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    import sys

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    th = threading.Thread(target=flusher)
    th.start()
    try:
        n = 300 if durability == "sync" else 3000
        for i in range(n):
            put(s, (b"k%05d" % i, b"x" * (i % 50)))
    finally:
        stop.set()
        th.join()
        sys.setswitchinterval(old)
    assert errors == []
    s.close()
    s = engine.open(path)
    try:
        assert s.version == n
        assert [k for k, _ in s.range(T)] == [b"k%05d" % i for i in range(n)]
        assert s.version_at(time.time() + 1) == n
    finally:
        s.close()
