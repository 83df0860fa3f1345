"""WarmTier unit tests beyond the shared contract: key encoding, meta CF, write_entries,
reopen, per-thread iterator invalidation, skip limits, check() and closed behaviour."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import (
    ClosedError,
    CorruptionError,
    InvalidKeyError,
    InvalidVersionError,
)
from engine.tiers import WarmTier
from engine.tiers.warm import (
    META_CF,
    META_FORMAT_KEY,
    POINT_SKIP_LIMIT,
    SCAN_SKIP_LIMIT,
    TAG_TOMBSTONE,
    TAG_VALUE,
    decode_key,
    encode_key,
    key_prefix,
)
from engine.types import Bound, EntryKind, RangeCursor, RawEntry

T = EntryKind.MULTI
S1 = EntryKind.source(1)
U = Bound.UNBOUNDED
MAXV = (1 << 64) - 1


@pytest.fixture
def warm(tmp_path: Path):
    t = WarmTier(tmp_path / "warm")
    try:
        yield t
    finally:
        t.close()


def drain(tier, table=T, start=U, end=U, version=MAXV, batch=7, reverse=False):
    cur = RangeCursor()
    fn = tier.range_rev_next if reverse else tier.range_next
    out = []
    while True:
        b = fn(table, cur, start, end, version, batch)
        out.extend(b.entries)
        if not b.has_more:
            return out


# --- key encoding ---------------------------------------------------------------------------

keys_st = st.binary(max_size=12).map(lambda b: bytes(x % 3 if x < 128 else 255 - x % 2 for x in b))
versions_st = st.integers(min_value=0, max_value=MAXV)


@settings(max_examples=400, deadline=None)
@given(keys_st, versions_st, keys_st, versions_st)
def test_encoded_keys_sort_like_key_then_version_desc(a, va, b, vb):
    ea, eb = encode_key(a, va), encode_key(b, vb)
    want = (a, -va) < (b, -vb)
    assert (ea < eb) == want
    assert (ea == eb) == (a == b and va == vb)


@settings(max_examples=300, deadline=None)
@given(keys_st, versions_st, keys_st)
def test_encoding_roundtrip_and_prefix_range(a, va, b):
    e = encode_key(a, va)
    assert decode_key(e) == (a, va)
    p = key_prefix(a)
    assert e.startswith(p) and len(e) == len(p) + 8
    # [prefix, escape(key) + 00 01) holds exactly the key's versions.
    past = p[:-1] + b"\x01"
    for vb in (0, 1, MAXV):
        eb = encode_key(b, vb)
        assert (p <= eb < past) == (a == b)


def test_decode_rejects_bad_encodings():
    for bad in (b"", b"abc", b"a\x00\x01" + bytes(8), b"a\x00b\x00\x00" + bytes(8)):
        with pytest.raises(ValueError):
            decode_key(bad)


def test_encoding_bytes_are_as_documented():
    assert encode_key(b"a\x00b", 1) == b"a\x00\xffb\x00\x00" + b"\xff" * 7 + b"\xfe"
    assert encode_key(b"", 0) == b"\x00\x00" + b"\xff" * 8
    assert encode_key(b"k", MAXV) == b"k\x00\x00" + bytes(8)


def test_physical_layout(warm):
    warm.set(5, {T: [(b"k\x00", b"v"), (b"t", None), (b"e", b"")]})
    cf = warm._cfs[T]
    assert dict(cf.items()) == {
        encode_key(b"k\x00", 5): TAG_VALUE + b"v",
        encode_key(b"t", 5): TAG_TOMBSTONE,
        encode_key(b"e", 5): TAG_VALUE,
    }


# --- meta -----------------------------------------------------------------------------------


def test_meta_written_atomically_with_data_and_hidden_from_tables(warm):
    warm.set(1, {T: [(b"a", b"1")]}, meta={b"store.version": b"\x01", b"x/1": b"a", b"x/2": b"b"})
    assert warm.get(T, b"a", 1) == b"1"
    assert warm.get_meta(b"store.version") == b"\x01"
    assert list(warm.iter_meta(b"x/")) == [(b"x/1", b"a"), (b"x/2", b"b")]
    assert warm.tables() == [T]
    assert all(str(t) != META_CF for t in warm.tables())
    warm.set(2, {T: []}, meta={b"x/1": None})
    assert warm.get_meta(b"x/1") is None
    assert list(warm.iter_meta(b"x/")) == [(b"x/2", b"b")]
    assert warm.get_meta(META_FORMAT_KEY) is not None  # the format stamp lives here too


def test_iter_meta_prefix_edges(warm):
    warm.set(1, {}, meta={b"\xff": b"1", b"\xff\xff": b"2", b"a\xff": b"3", b"b": b"4"})
    assert [k for k, _ in warm.iter_meta(b"\xff")] == [b"\xff", b"\xff\xff"]
    assert [k for k, _ in warm.iter_meta(b"a")] == [b"a\xff"]
    assert [k for k, _ in warm.iter_meta(b"")][-4:] == [b"a\xff", b"b", b"\xff", b"\xff\xff"]


def test_reserved_meta_key_refused_and_nothing_written(warm):
    with pytest.raises(InvalidKeyError):
        warm.set(1, {T: [(b"a", b"1")]}, meta={b"\x00mine": b"x"})
    assert warm.get(T, b"a", 1) is None


def test_meta_survives_reopen(tmp_path):
    with WarmTier(tmp_path / "w") as t:
        t.write_entries({}, meta={b"flushed": b"7"})
    with WarmTier(tmp_path / "w") as t:
        assert t.get_meta(b"flushed") == b"7"


# --- write_entries --------------------------------------------------------------------------


def test_write_entries_many_versions_and_tables(warm):
    rows = {
        T: [RawEntry(b"a", 3, b"a3"), RawEntry(b"a", 1, b"a1"), RawEntry(b"b", 2, None)],
        S1: [RawEntry(b"s", 9, b"")],
    }
    warm.write_entries(rows, meta={b"w": b"3"})
    assert warm.get_all_versions(T, b"a") == [(3, b"a3"), (1, b"a1")]
    assert warm.lookup(T, b"b", 5) == RawEntry(b"b", 2, None)
    assert warm.get(S1, b"s", 9) == b""
    assert warm.get_meta(b"w") == b"3"
    warm.write_entries(rows)  # a re-run (flush retried after a crash) is idempotent
    assert warm.stats()["versions"] == 4
    assert sorted(warm.tables()) == [T, S1]


def test_write_entries_bad_version_writes_nothing(warm):
    new_table = EntryKind.operator(3)
    with pytest.raises(InvalidVersionError):
        warm.write_entries({new_table: [RawEntry(b"a", 1, b"x"), RawEntry(b"b", -1, b"y")]})
    with pytest.raises(InvalidKeyError):
        warm.write_entries({T: [RawEntry("text", 1, b"x")]})  # type: ignore[arg-type]
    assert new_table not in warm.tables()
    assert warm.get(T, b"a", 9) is None and warm.stats()["versions"] == 0


def test_bad_input_leaves_no_new_table(warm):
    with pytest.raises(InvalidKeyError):
        warm.set(1, {S1: [(b"a", b"1"), ("str", b"2")]})  # type: ignore[list-item]
    assert warm.tables() == []
    with pytest.raises(InvalidVersionError):
        warm.set(-1, {T: [(b"a", b"1")]})
    with pytest.raises(InvalidKeyError):
        warm.get(T, "a", 1)  # type: ignore[arg-type]
    with pytest.raises(InvalidVersionError):
        warm.get(T, b"a", 1 << 64)


# --- reopen ---------------------------------------------------------------------------------


def test_reopen_keeps_tables_data_and_empty_tables(tmp_path):
    tables = [T, S1, EntryKind.operator(7), EntryKind.source(1 << 40)]
    with WarmTier(tmp_path / "w", compression="zstd") as t:
        for i, table in enumerate(tables[:3]):
            t.set(i + 1, {table: [(b"k%d" % i, b"v%d" % i)]})
        t.ensure_table(tables[3])
        t.set(9, {T: [(b"k0", None)]})
    with WarmTier(tmp_path / "w") as t:
        assert t.tables() == sorted(tables)
        assert t.get(S1, b"k1", 2) == b"v1"
        assert t.lookup(T, b"k0", 9) == RawEntry(b"k0", 9, None)
        assert t.get(T, b"k0", 8) == b"v0"
        assert drain(t, table=tables[3]) == []
        t.check()


def test_clear_table_keeps_table_across_reopen(tmp_path):
    with WarmTier(tmp_path / "w") as t:
        t.set(1, {T: [(b"\xff" * 40, b"x"), (b"a", b"y")], S1: [(b"s", b"z")]})
        t.clear_table(T)
        assert drain(t) == [] and t.get(T, b"\xff" * 40, 1) is None
        t.clear_table(T)  # empty: a no-op
        t.clear_table(EntryKind.operator(1))  # missing: a no-op
    with WarmTier(tmp_path / "w") as t:
        assert T in t.tables()
        assert drain(t) == [] and t.get(S1, b"s", 1) == b"z"
        t.set(2, {T: [(b"a", b"again")]})
        assert [e.key for e in drain(t)] == [b"a"]


# --- reads: caching, skip limits, long histories --------------------------------------------


def test_cached_iterator_sees_writes_from_other_threads(warm):
    warm.set(1, {T: [(b"k", b"1")]})
    seen = []
    go, done = threading.Event(), threading.Event()

    def reader():
        seen.append(warm.get(T, b"k", MAXV))  # caches this thread's iterator
        go.wait()
        seen.append(warm.get(T, b"k", MAXV))
        done.set()

    th = threading.Thread(target=reader)
    th.start()
    while not seen:
        pass
    warm.set(2, {T: [(b"k", b"2")]})
    go.set()
    done.wait(10)
    th.join()
    assert seen == [b"1", b"2"]
    assert warm.get(T, b"k", MAXV) == b"2"


def test_concurrent_readers_with_one_writer(warm):
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader():
        last = 0
        try:
            while not stop.is_set():
                v = warm.get(T, b"counter", MAXV)
                n = int(v) if v is not None else 0
                assert n >= last, (n, last)  # never goes back
                e = warm.lookup(T, b"counter", MAXV)
                assert e is None or int(e.value) == e.version
                last = n
        except BaseException as e:  # noqa: BLE001 - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for th in threads:
        th.start()
    for v in range(1, 300):
        warm.set(v, {T: [(b"counter", b"%d" % v)]})
    stop.set()
    for th in threads:
        th.join()
    assert not errors, errors
    assert warm.get(T, b"counter", MAXV) == b"299"


def test_point_read_past_many_deleted_entries(warm):
    # Dropped versions leave RocksDB deletion markers that a seek must step over; past the
    # skip limit the cached iterator gives up and the read retries on a bounded iterator.
    n = POINT_SKIP_LIMIT * 3
    warm.set(1, {T: [(b"m%05d" % i, b"x") for i in range(n)] + [(b"z", b"last")]})
    warm.drop({T: [(b"m%05d" % i, 1) for i in range(n)]})
    assert warm.get(T, b"m", 5) is None
    assert warm.lookup(T, b"m00000", 5) is None
    assert warm.lookup(T, b"z", 5) == RawEntry(b"z", 1, b"last")
    for v in range(2, n + 2):
        warm.set(v, {T: [(b"hist", b"%d" % v)]})
    warm.drop({T: [(b"hist", v) for v in range(3, n + 2)]})
    assert warm.get(T, b"hist", MAXV) == b"2"
    assert warm.get_all_versions(T, b"hist") == [(2, b"2")]


def test_batch_and_three_way_point_reads_match_single_reads(warm):
    missing = object()
    warm.set(1, {T: [(b"a", b"1"), (b"n\x00", b"n1"), (b"t", b"t1"), (b"", b"e1")]})
    warm.set(3, {T: [(b"a", b"3"), (b"t", None)]})
    warm.set(2, {S1: [(b"a", b"s")]})
    keys = [b"a", b"n\x00", b"t", b"", b"zz", b"n", bytearray(b"a"), memoryview(b"t")]
    for v in (0, 1, 2, 3, MAXV):
        want_get = [warm.get(T, k, v) for k in keys]
        want_lookup = [warm.lookup(T, k, v) for k in keys]
        assert warm.get_many(T, keys, v) == want_get
        assert warm.lookup_many(T, keys, v) == want_lookup
        assert [warm.get_or(T, k, v, missing) for k in keys] == [
            missing if e is None else e.value for e in want_lookup]
    assert warm.lookup_many(T, [b"t", b"a"], 3) == [RawEntry(b"t", 3, None), RawEntry(b"a", 3, b"3")]
    assert warm.get_or(T, b"t", MAXV, missing) is None  # a tombstone is not a miss
    assert warm.get_or(T, b"zz", MAXV, missing) is missing
    assert warm.get_many(S1, [b"a", b"b"], 2) == [b"s", None]
    assert warm.get_many(EntryKind.source(9), [b"a"], 1) == [None]  # no such table
    assert warm.get_many(T, [], 1) == []
    assert warm.get_many(T, iter([b"a"]), 1) == [b"1"]


def test_point_reads_alternate_versions_and_tables_on_one_thread(warm):
    # The per-thread cache holds one iterator and one encoded read version: switching either
    # between reads must never answer with the previous one.
    warm.set(1, {T: [(b"k", b"1")], S1: [(b"k", b"s1")]})
    warm.set(2, {T: [(b"k", b"2")]})
    for _ in range(3):
        assert warm.get(T, b"k", 1) == b"1"
        assert warm.get(T, b"k", 2) == b"2"
        assert warm.get(S1, b"k", 2) == b"s1"
        assert warm.lookup(T, b"k", 1) == RawEntry(b"k", 1, b"1")
        assert warm.get_many(T, [b"k"], 1) == [b"1"]
        assert warm.get(T, b"k", 0) is None


@pytest.mark.parametrize("bad", [True, 1.0, "1", -1, MAXV + 1, None])
def test_point_reads_refuse_bad_versions_even_when_cached(warm, bad):
    warm.set(1, {T: [(b"k", b"1")]})
    assert warm.get(T, b"k", 1) == b"1"  # the thread's cache now holds version 1
    missing = object()
    for read in (lambda: warm.get(T, b"k", bad), lambda: warm.lookup(T, b"k", bad),
                 lambda: warm.get_or(T, b"k", bad, missing), lambda: warm.get_many(T, [b"k"], bad),
                 lambda: warm.get_many(S1, [b"k"], bad)):
        with pytest.raises((InvalidKeyError, InvalidVersionError)):
            read()


def test_get_many_refuses_bad_keys_before_reading(warm):
    warm.set(1, {T: [(b"k", b"1")]})
    with pytest.raises(InvalidKeyError):
        warm.get_many(T, [b"k", "text"], 1)
    with pytest.raises(InvalidKeyError):
        warm.lookup_many(T, [b"k", 5], 1)


def test_get_many_past_many_deleted_entries(warm):
    # The cached iterator gives up past POINT_SKIP_LIMIT deletion markers; a batch read must
    # retry that key on a bounded iterator and carry on with the rest.
    n = POINT_SKIP_LIMIT * 3
    warm.set(1, {T: [(b"m%05d" % i, b"x") for i in range(n)] + [(b"z", b"last")]})
    warm.drop({T: [(b"m%05d" % i, 1) for i in range(n)]})
    keys = [b"m", b"m00000", b"z", b"m00001", b"z"]
    assert warm.get_many(T, keys, 5) == [None, None, b"last", None, b"last"]
    assert warm.lookup_many(T, keys, 5)[2] == RawEntry(b"z", 1, b"last")


@pytest.mark.parametrize("seed", range(3))
def test_long_histories_scan_both_ways(warm, seed):
    rng = random.Random(seed)
    model: dict[bytes, dict[int, bytes | None]] = {}
    keys = [b"", b"a", b"a\x00", b"b", b"c\xff"] + [b"k%d" % i for i in range(6)]
    nversions = SCAN_SKIP_LIMIT * 4
    for v in rng.sample(range(1, nversions * 3), nversions):
        ks = rng.sample(keys, rng.randrange(1, len(keys)))
        rows = [(k, None if rng.random() < 0.15 else b"%d" % v) for k in ks]
        warm.set(v, {T: rows})
        for k, val in rows:
            model.setdefault(k, {})[v] = val
    for read in (0, 1, nversions, nversions * 2, MAXV):
        want = []
        for k in sorted(model):
            vis = [v for v in model[k] if v <= read]
            if vis:
                want.append(RawEntry(k, max(vis), model[k][max(vis)]))
        live = [(e.key, e.value) for e in want if e.value is not None]
        for batch in (1, 3, 100):
            assert drain(warm, version=read, batch=batch) == want
            assert drain(warm, version=read, batch=batch, reverse=True) == want[::-1]
            assert list(warm.scan_items(T, U, U, read, page=batch)) == live
            assert list(warm.scan_items(T, U, U, read, reverse=True, page=batch)) == live[::-1]
        lo, hi = Bound.included(b"a\x00"), Bound.excluded(b"k3")
        sub = [e for e in want if lo.admits_low(e.key) and hi.admits_high(e.key)]
        assert drain(warm, start=lo, end=hi, version=read) == sub
        assert drain(warm, start=lo, end=hi, version=read, reverse=True) == sub[::-1]
        sub_live = [(e.key, e.value) for e in sub if e.value is not None]
        assert list(warm.scan_items(T, lo, hi, read, page=2)) == sub_live
        assert list(warm.scan_items(T, lo, hi, read, reverse=True, page=2)) == sub_live[::-1]
    warm.check()


@pytest.mark.parametrize("seed", range(4))
def test_scans_match_a_model_across_chunk_edges(warm, seed):
    # Forward pages filter rows a chunk at a time: keys whose versions straddle chunk and page
    # edges, runs just above and below SCAN_SKIP_LIMIT, keys invisible at the read version,
    # tombstones and 00 bytes must all come out as the one-row-at-a-time model says.
    rng = random.Random(seed)
    model: dict[bytes, dict[int, bytes | None]] = {}
    keys = [b"k%03d" % i for i in range(60)] + [b"n\x00%d" % i for i in range(5)] + [b"", b"\x00"]
    runs = {k: rng.choice([1, 1, 2, 3, SCAN_SKIP_LIMIT, SCAN_SKIP_LIMIT + 1, SCAN_SKIP_LIMIT * 3])
            for k in keys}
    v = 0
    for k in keys:
        for _ in range(runs[k]):
            v += 1
            val = None if rng.random() < 0.1 else b"%d" % v
            warm.set(v, {T: [(k, val)]})
            model.setdefault(k, {})[v] = val
    for read in (0, 1, v // 3, v // 2, v, MAXV):
        want = []
        for k in sorted(model):
            vis = [x for x in model[k] if x <= read]
            if vis:
                want.append(RawEntry(k, max(vis), model[k][max(vis)]))
        live = [(e.key, e.value) for e in want if e.value is not None]
        for batch in (1, 2, 7, 16, 1000):
            assert drain(warm, version=read, batch=batch) == want
            assert drain(warm, version=read, batch=batch, reverse=True) == want[::-1]
            assert list(warm.scan_items(T, U, U, read, page=batch)) == live
            assert list(warm.scan_items(T, U, U, read, reverse=True, page=batch)) == live[::-1]
        for lo, hi in ((Bound.excluded(b"k010"), U), (Bound.included(b"k010"), Bound.included(b"k040")),
                       (U, Bound.excluded(b"n\x002")), (Bound.included(b"\x00"), Bound.excluded(b"k005"))):
            sub = [e for e in want if lo.admits_low(e.key) and hi.admits_high(e.key)]
            assert drain(warm, start=lo, end=hi, version=read, batch=5) == sub
            assert drain(warm, start=lo, end=hi, version=read, batch=5, reverse=True) == sub[::-1]
            assert list(warm.scan_items(T, lo, hi, read, reverse=True, page=3)) == [
                (e.key, e.value) for e in sub[::-1] if e.value is not None]


def test_scan_items_checks_arguments_when_called(warm):
    warm.set(1, {T: [(b"a", b"1")]})
    with pytest.raises((InvalidKeyError, InvalidVersionError)):
        warm.scan_items(T, U, U, -1)
    with pytest.raises(ValueError):
        warm.scan_items(T, U, U, 1, page=0)
    assert list(warm.scan_items(S1, U, U, 1)) == []  # no such table
    assert list(warm.scan_items(T, Bound.included(b"b"), Bound.excluded(b"a"), 1)) == []


def test_scans_report_bad_value_tags(warm):
    warm.set(1, {T: [(b"a", b"1"), (b"b", b"2")]})
    warm._cfs[T][encode_key(b"b", 1)] = b"\x07junk"
    with pytest.raises(CorruptionError):
        drain(warm)
    with pytest.raises(CorruptionError):
        list(warm.scan_items(T, U, U, 1))


def test_iter_versions_pages_and_start(warm):
    rows = [(b"%04d" % i, b"v") for i in range(600)]
    warm.set(1, {T: rows})
    warm.set(2, {T: rows[:10]})
    got = list(warm.iter_versions(T))
    assert len(got) == 610
    assert [(e.key, e.version) for e in got[:3]] == [(b"0000", 2), (b"0000", 1), (b"0001", 2)]
    assert [e.key for e in warm.iter_versions(T, start=b"0598")] == [b"0598", b"0599"]


# --- stats, check, options, close -----------------------------------------------------------


def test_stats_exact_and_estimated(warm):
    warm.set(1, {T: [(b"a", b"x" * 50), (b"b", None)]})
    st = warm.stats()
    assert (st["keys"], st["versions"], st["tombstones"], st["tables"]) == (2, 2, 1, 1)
    assert st["bytes"] == len(encode_key(b"a", 1)) * 2 + 51 + 1
    est = warm.stats(exact=False)
    assert est["keys"] is None and est["versions"] >= 0 and "rocksdb" in est


def test_check_detects_foreign_and_damaged_entries(tmp_path):
    with WarmTier(tmp_path / "w") as t:
        t.set(1, {T: [(b"a", b"1")]})
        t.check()
        t._cfs[T].put(b"no-terminator", TAG_VALUE + b"x")
        with pytest.raises(CorruptionError, match="terminator"):
            t.check()
    with WarmTier(tmp_path / "w2") as t:
        t.set(1, {T: [(b"a", b"1")]})
        t._cfs[T].put(encode_key(b"b", 1), b"\x07junk")
        with pytest.raises(CorruptionError, match="tag"):
            t.check()
        with pytest.raises(CorruptionError):
            t.get(T, b"b", 1)


def test_options_validated(tmp_path):
    with pytest.raises(TypeError):
        WarmTier(tmp_path / "a", no_such_option=1)
    with pytest.raises(ValueError):
        WarmTier(tmp_path / "b", compression="snappy-ish")
    with pytest.raises(ValueError):
        WarmTier(tmp_path / "c", block_cache_bytes=0)
    for comp in ("none", "zstd", "lz4"):
        with WarmTier(tmp_path / comp, compression=comp, bloom_bits_per_key=10, sync_writes=True,
                      write_buffer_size=1 << 20, block_cache_bytes=1 << 20) as t:
            t.set(1, {T: [(b"a", b"1")]}, sync=False)
            t.flush_wal()
            t.compact()
            assert t.get(T, b"a", 1) == b"1"


def test_every_read_after_close_raises(tmp_path):
    t = WarmTier(tmp_path / "w")
    t.set(1, {T: [(b"a", b"1")]})
    assert t.get(T, b"a", 1) == b"1"  # caches this thread's iterator
    t.close()
    t.close()  # idempotent
    calls = [
        lambda: t.get(T, b"a", 1), lambda: t.lookup(T, b"a", 1), lambda: t.contains(T, b"a", 1),
        lambda: t.get(S1, b"a", 1), lambda: t.get_all_versions(T, b"a"),
        lambda: t.range_next(T, RangeCursor(), U, U, 1, 10),
        lambda: t.range_rev_next(T, RangeCursor(), U, U, 1, 10),
        lambda: t.tables(), lambda: list(t.iter_versions(T)), lambda: t.stats(), lambda: t.check(),
        lambda: t.get_meta(b"x"), lambda: t.iter_meta(b""), lambda: t.flush_wal(), lambda: t.compact(),
        lambda: t.set(2, {T: []}), lambda: t.write_entries({}), lambda: t.drop({T: [(b"a", 1)]}),
        lambda: t.ensure_table(S1), lambda: t.clear_table(T),
    ]
    for call in calls:
        with pytest.raises(ClosedError):
            call()


def test_close_releases_lock_despite_idle_reader_threads(tmp_path):
    t = WarmTier(tmp_path / "w")
    t.set(1, {T: [(b"a", b"1")]})
    ready, release = threading.Event(), threading.Event()

    def idle_reader():
        t.get(T, b"a", 1)  # leaves a cached iterator in this thread
        ready.set()
        release.wait(10)

    th = threading.Thread(target=idle_reader)
    th.start()
    ready.wait(10)
    t.close()
    try:
        with WarmTier(tmp_path / "w") as again:  # the RocksDB LOCK was released
            assert again.get(T, b"a", 1) == b"1"
    finally:
        release.set()
        th.join()
