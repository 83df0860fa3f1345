"""Unit tests of the cold tier beyond the shared conformance suite.

A seeded model test (runnable as a script: ``python tests/unit/test_cold.py [seeds]``)
drives random sets, multi-version writes, drops, clears, compactions and reopens with tiny
blocks (so a key's versions span blocks) and compares every read with a dict model, calling
``check()`` after every step. The other tests pin single properties: bloom false-positive
rate, the block cache budget, compaction applying drops without changing answers, many
segments, reopen/recovery, dictionary mode, format-version refusal, locking, fd hygiene and
concurrent readers during compaction.
"""

from __future__ import annotations

import os
import random
import struct
import sys
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from engine.errors import ClosedError, CorruptionError, FormatError, LockedError
from engine.tiers import ColdTier
from engine.tiers.cold.bloom import BloomFilter, bloom_hash, hash_many
from engine.tiers.cold.compaction import plan
from engine.tiers.cold.format import (
    FOOTER,
    FORMAT_VERSION,
    MANIFEST_HEADER,
    SEGMENT_FORMAT_VERSION,
    crc32,
)
from engine.types import Bound, EntryKind, RangeCursor, RawEntry

# --- backends ---------------------------------------------------------------------------
# Every test that builds a ColdTier also runs with the tier's segments and manifest in an
# object store (memory:// private to the test's directory, and file://); the tier's
# directory then holds only the range cache. Tests that edit local files by name, and pure
# helpers, run locally only; the model runs two seeds per object-store backend.

_LOCAL_ONLY = {
    "test_reopen_removes_stray_and_orphan_files", "test_missing_manifest_with_segments_is_corruption",
    "test_unknown_segment_format_version_is_refused", "test_unknown_manifest_format_version_is_refused",
    "test_segment_format_version_refused_on_direct_open", "test_options_are_validated",
    "test_bloom_false_positive_rate_matches_bits_per_key", "test_plan_is_size_tiered_over_contiguous_runs",
    "test_block_parse_rejects_inconsistent_columns", "test_random_against_model_stress",
    "test_no_fd_leak_across_compaction_and_close", "test_random_against_model",
    "test_random_against_model_objstore",
}
_REAL_COLD = ColdTier


def _remote_url(backend: str, path: Path) -> str:
    if backend == "memory":
        return "memory://unitcold" + str(path).replace("/", "_")
    return f"file://{path}-bucket"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    name = metafunc.function.__name__
    if name in _LOCAL_ONLY:
        return
    if "tmp_path" in metafunc.fixturenames:
        metafunc.parametrize("cold_backend", ["local", "memory", "file"], indirect=True)


@pytest.fixture(autouse=True)
def cold_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    backend = getattr(request, "param", "local")
    if backend != "local":
        def make(path, **opts):
            return _REAL_COLD(path, url=_remote_url(backend, Path(path)), **opts)

        monkeypatch.setitem(globals(), "ColdTier", make)
    return backend


T = EntryKind.MULTI
S1 = EntryKind.source(1)
U = Bound.UNBOUNDED
TOP = (1 << 64) - 1

Model = dict[tuple[EntryKind, bytes], dict[int, "bytes | None"]]


def scan(tier, table=T, start=U, end=U, version=TOP, batch=1000, reverse=False):
    cur = RangeCursor()
    out: list[RawEntry] = []
    fn = tier.range_rev_next if reverse else tier.range_next
    while True:
        b = fn(table, cur, start, end, version, batch)
        out.extend(b.entries)
        if not b.has_more:
            break
    return out


def model_visible(model: Model, table, version, start=U, end=U):
    out = []
    for (t, k), chain in model.items():
        if t != table or not start.admits_low(k) or not end.admits_high(k):
            continue
        vis = [v for v in chain if v <= version]
        if vis:
            out.append(RawEntry(k, max(vis), chain[max(vis)]))
    out.sort(key=lambda e: e.key)
    return out


def compare(tier, model: Model, rng: random.Random, universe: list[bytes], tables, versions):
    for table in tables:
        for read in versions:
            want = model_visible(model, table, read)
            for batch in (1, 3, 1000):
                assert scan(tier, table, version=read, batch=batch) == want
                assert scan(tier, table, version=read, batch=batch, reverse=True) == want[::-1]
            assert [e for ch in tier.scan_columns(table, read, chunk_rows=4) for e in ch.entries()] == want
            for _ in range(3):
                a, b = sorted(rng.sample(universe, 2))
                start = Bound(a, rng.random() < 0.5)
                end = Bound(b, rng.random() < 0.5)
                w2 = model_visible(model, table, read, start, end)
                assert scan(tier, table, start, end, read, batch=2) == w2
                assert [e for ch in tier.scan_columns(table, read, start, end) for e in ch.entries()] == w2
                assert scan(tier, table, start, end, read, batch=2, reverse=True) == w2[::-1]
            for k in universe:
                chain = model.get((table, k), {})
                vis = [v for v in chain if v <= read]
                want_e = RawEntry(k, max(vis), chain[max(vis)]) if vis else None
                assert tier.lookup(table, k, read) == want_e, (table, k, read)
            assert tier.get_many(table, universe, read) == [tier.get(table, k, read) for k in universe]
        for k in universe:
            chain = model.get((table, k), {})
            assert tier.get_all_versions(table, k) == sorted(chain.items(), reverse=True)
        want_all = [RawEntry(k, v, val) for (t, k), chain in sorted(model.items(), key=lambda x: x[0][1])
                    if t == table for v, val in sorted(chain.items(), reverse=True)]
        assert list(tier.iter_versions(table)) == want_all
        mid = rng.choice(universe)
        assert list(tier.iter_versions(table, start=mid)) == [e for e in want_all if e.key >= mid]


def run_model(seed: int, path: Path, steps: int = 60) -> None:
    rng = random.Random(seed)
    opts = {"block_size": 256, "compact_trigger": rng.choice([None, 3, 5]),
                "dictionary": rng.random() < 0.3, "cache_bytes": rng.choice([0, 4096, 1 << 20]),
                "bloom_bits_per_key": rng.choice([0, 4, 10])}
    tier = ColdTier(path, **opts)
    tables = [T, S1]
    universe = sorted({bytes(rng.randrange(3) for _ in range(rng.randrange(5))) for _ in range(25)})
    model: Model = {}
    next_v = 1
    try:
        for step in range(steps):
            op = rng.random()
            if op < 0.35:
                v = rng.randrange(1, next_v + 3)
                next_v = max(next_v, v + 1)
                batches = {}
                for table in rng.sample(tables, rng.randrange(1, 3)):
                    ks = rng.sample(universe, rng.randrange(1, 8))
                    rows = [(k, None if rng.random() < 0.2 else b"v%d-%d" % (v, step) * rng.randrange(4))
                            for k in ks]
                    batches[table] = rows
                    for k, val in rows:
                        model.setdefault((table, k), {})[v] = val
                tier.set(v, batches)
            elif op < 0.55:
                batches = {}
                for table in rng.sample(tables, rng.randrange(1, 3)):
                    rows = []
                    hot = rng.choice(universe)
                    for _ in range(rng.randrange(1, 40)):
                        k = hot if rng.random() < 0.5 else rng.choice(universe)
                        v = rng.randrange(1, 60)
                        val = None if rng.random() < 0.15 else bytes([65 + step % 26]) * rng.randrange(30)
                        rows.append(RawEntry(k, v, val))
                        model.setdefault((table, k), {})[v] = val
                    batches[table] = rows
                tier.write_entries(batches)
            elif op < 0.75:
                batches = {}
                for table in tables:
                    cands = [(k, v) for (t, k), chain in model.items() if t == table for v in chain]
                    picks = rng.sample(cands, min(len(cands), rng.randrange(0, 6)))
                    picks.append((rng.choice(universe), 999))  # missing: harmless
                    batches[table] = picks
                    for k, v in picks:
                        chain = model.get((table, k))
                        if chain and v in chain:
                            del chain[v]
                            if not chain:
                                del model[(table, k)]
                tier.drop(batches)
            elif op < 0.80:
                table = rng.choice(tables)
                tier.clear_table(table)
                for key in [key for key in model if key[0] == table]:
                    del model[key]
            elif op < 0.90:
                tier.compact(full=rng.random() < 0.5)
            else:
                tier.close()
                tier = ColdTier(path, **opts)
            tier.check()
            if step % 6 == 5 or step == steps - 1:
                reads = sorted({0, 1, rng.randrange(60), rng.randrange(60), TOP})
                compare(tier, model, rng, universe, tables, reads)
                st = tier.stats()
                assert st["versions"] == sum(len(c) for c in model.values())
                assert st["keys"] == len(model)
        tier.compact(full=True)
        tier.check()
        assert tier.stats()["segments"] <= 1 and tier.stats()["drop_files"] == 0
        compare(tier, model, rng, universe, tables, [0, 7, 30, TOP])
    finally:
        tier.close()


@pytest.mark.parametrize("seed", range(8))
def test_random_against_model(tmp_path, seed):
    run_model(seed, tmp_path / "cold")


@pytest.mark.parametrize("backend", ["memory", "file"])
@pytest.mark.parametrize("seed", range(2))
def test_random_against_model_objstore(tmp_path, monkeypatch, backend, seed):
    monkeypatch.setitem(globals(), "ColdTier",
                        lambda path, **o: _REAL_COLD(path, url=_remote_url(backend, Path(path)), **o))
    run_model(seed, tmp_path / "cold")


@pytest.mark.stress
@pytest.mark.parametrize("seed", range(8, 200))
def test_random_against_model_stress(tmp_path, seed):
    run_model(seed, tmp_path / "cold", steps=150)


# --- bloom filter -------------------------------------------------------------------------


def test_bloom_false_positive_rate_matches_bits_per_key():
    seed = zlib.crc32(b"table")
    keys = [b"user:%08d" % i for i in range(0, 100_000, 2)]
    misses = [b"user:%08d" % i for i in range(1, 100_000, 2)]
    for bits, lo, hi in ((10, 0.004, 0.0125), (6, 0.03, 0.07)):
        bf = BloomFilter.build(hash_many(keys, seed), bits)
        assert all(bf.may_contain_hash(bloom_hash(k, seed)) for k in keys)  # no false negatives
        fp = float(np.mean(bf.may_contain_many(hash_many(misses, seed))))
        assert lo <= fp <= hi, (bits, fp)
        # scalar and vectorized probes agree
        sample = misses[:2000]
        assert [bf.may_contain_hash(bloom_hash(k, seed)) for k in sample] == \
            list(bf.may_contain_many(hash_many(sample, seed)))


def test_bloom_rejects_misses_in_tier(tmp_path):
    with ColdTier(tmp_path / "c", cache_bytes=1 << 20, cache_on_write=False) as t:
        t.set(1, {T: [(b"user:%08d" % i, b"x" * 50) for i in range(0, 20_000, 2)]})
        before = t.stats()["cache_misses"]
        for i in range(1, 20_000, 2):
            assert t.get(T, b"user:%08d" % i, 5) is None
        # only bloom false positives (~1 % of 10k) reach a block
        assert t.stats()["cache_misses"] - before < 250


# --- block cache --------------------------------------------------------------------------


def test_block_cache_respects_byte_budget(tmp_path):
    budget = 64 * 1024
    with ColdTier(tmp_path / "c", block_size=4096, cache_bytes=budget, dictionary=False) as t:
        rows = [(b"k%06d" % i, os.urandom(60)) for i in range(20_000)]
        t.set(1, {T: rows})
        rng = random.Random(3)
        for _ in range(3000):
            k, v = rng.choice(rows)
            assert t.get(T, k, 1) == v
            assert t._cache.size <= budget
        st = t.stats()
        assert 0 < st["cache_bytes"] <= budget
        assert st["cache_hits"] > 0 and st["cache_misses"] > 0
        t._cache.check()
        # A hot key is served from the cache.
        h0 = t.stats()["cache_hits"]
        for _ in range(100):
            t.get(T, rows[0][0], 1)
        assert t.stats()["cache_hits"] - h0 >= 99


def test_scanned_blocks_keep_rows_within_the_budget(tmp_path):
    budget = 48 * 1024
    with ColdTier(tmp_path / "c", block_size=2048, cache_bytes=budget, dictionary=False) as t:
        rows = [(b"k%06d" % i, b"v%d" % i * 3) for i in range(5000)]
        t.set(1, {T: rows})
        t.get(T, rows[0][0], 1)
        point_only = t._cache.size
        assert scan(t, end=Bound.excluded(b"k000010")) == [RawEntry(k, 1, v) for k, v in rows[:10]]
        assert t._cache.size > point_only  # the scanned block's rows are charged
        t._cache.check()
        for start in range(0, 5000, 250):  # scans and point reads churn the cache
            got = scan(t, start=Bound.included(b"k%06d" % start), end=Bound.excluded(b"k%06d" % (start + 300)))
            assert got == [RawEntry(k, 1, v) for k, v in rows[start:start + 300]]
            assert t.get(T, rows[start][0], 1) == rows[start][1]
            assert t._cache.size <= budget
            t._cache.check()


def test_point_reads_of_keys_inside_other_keys(tmp_path):
    # bytes.find meets many misaligned matches here; answers must come from key boundaries.
    keys = sorted({b"a" * i for i in range(1, 60)} | {b"a" * i + b"b" for i in range(40)}
                  | {b"ba" * i for i in range(1, 30)} | {b""})
    fixed = [b"%03d" % i * 4 for i in range(300)]  # equal-length keys that recur inside others
    for bs in (256, 65536):
        with ColdTier(tmp_path / f"c{bs}", block_size=bs) as t:
            t.write_entries({T: [RawEntry(k, 2, k + b"!") for k in keys] + [RawEntry(k, 1, None) for k in keys[::3]],
                             S1: [RawEntry(k, 5, k) for k in fixed]})
            for k in keys:
                assert t.get(T, k, 9) == k + b"!"
                assert t.lookup(T, k, 1) == (RawEntry(k, 1, None) if k in keys[::3] else None)
            for k in fixed:
                assert t.get(S1, k, 5) == k and t.get(S1, k, 4) is None
            for absent in (b"aaba", b"ab" * 3, b"bb", b"a" * 70, b"000" * 4 + b"x", b"001002003004"):
                assert t.get(T, absent, 9) is None and t.get(S1, absent, 9) is None
            assert t.get_many(T, keys + [b"zz"], 9) == [k + b"!" for k in keys] + [None]


def test_block_parse_rejects_inconsistent_columns():
    from engine.tiers.cold.block import decode_block, parse_block
    from engine.tiers.cold.format import RAW_BLOCK_HEADER, encode_block

    raw = encode_block([b"a", b"b"], [2, 1], [5, 3, 4], [b"x", None, b"yz"])
    v = parse_block(raw, "seg", 16)
    assert [v.find(k) for k in (b"a", b"b", b"c", b"")] == [0, 1, -1, -1]
    assert [v.value(i) for i in range(3)] == [b"x", None, b"yz"]
    assert decode_block(raw, "seg", 16).keys == [b"a", b"b"]
    head = list(RAW_BLOCK_HEADER.unpack_from(raw, 0))
    for field, bad in ((1, 4), (0, 0), (8, 3), (10, 6)):  # nentries, nkeys, width, flags
        h = list(head)
        h[field] = bad
        with pytest.raises(CorruptionError) as ei:
            parse_block(RAW_BLOCK_HEADER.pack(*h) + raw[RAW_BLOCK_HEADER.size:], "seg", 16)
        assert ei.value.offset == 16
    with pytest.raises(CorruptionError):
        parse_block(raw + b"!", "seg", 16)  # a byte no column accounts for
    # A tombstone bit on an entry that has value bytes.
    tomb_at = RAW_BLOCK_HEADER.size + 2 + 3  # after runs (w1) and the version column (w1)
    bad = bytearray(raw)
    assert head[9] == 1 and head[10] == 1
    bad[tomb_at + 3] |= 1  # entry 0 ("x") marked as a tombstone
    with pytest.raises(CorruptionError, match="tombstone"):
        parse_block(bytes(bad), "seg", 16)


def test_cache_on_write(tmp_path):
    rows = [(b"k%05d" % i, b"v%d" % i * 4) for i in range(3000)]
    for fill in (True, False):
        with ColdTier(tmp_path / str(fill), block_size=1024, cache_on_write=fill) as t:
            t.set(1, {T: rows})
            assert (t._cache.size > 0) == fill
            assert all(t.get(T, k, 1) == v for k, v in rows)
            st = t.stats()
            assert (st["cache_misses"] == 0) == fill and st["cache_hits"] > 0
            t.set(2, {T: rows[:5]})
            t.compact(full=True)  # the merged output is cached as it is written
            m0 = t.stats()["cache_misses"]
            assert all(t.get(T, k, 1) == v for k, v in rows[100:200])
            assert (t.stats()["cache_misses"] == m0) == fill
            t._cache.check()
            t.check()


def test_block_cache_disabled(tmp_path):
    with ColdTier(tmp_path / "c", cache_bytes=0) as t:
        t.set(1, {T: [(b"a", b"1")]})
        for _ in range(5):
            assert t.get(T, b"a", 1) == b"1"
        assert t.stats()["cache_bytes"] == 0 and t.stats()["cache_hits"] == 0


# --- compaction ---------------------------------------------------------------------------


def _answers(t, keys, versions):
    return ([t.lookup(T, k, v) for k in keys for v in versions],
            [scan(t, version=v) for v in versions],
            [scan(t, version=v, reverse=True) for v in versions],
            [t.get_all_versions(T, k) for k in keys],
            list(t.iter_versions(T)))


def test_compaction_applies_drops_and_keeps_answers(tmp_path):
    p = tmp_path / "c"
    with ColdTier(p, compact_trigger=None, block_size=1024) as t:
        keys = [b"k%03d" % i for i in range(200)]
        for v in range(1, 11):
            t.set(v, {T: [(k, b"%s@%d" % (k, v)) for k in keys[v * 7 % 50:][:120]]})
        t.drop({T: [(k, v) for k in keys[::3] for v in range(1, 6)]})
        t.clear_table(S1)  # a clear of an absent table is harmless
        before = _answers(t, keys, [0, 3, 5, 8, 100])
        stats_before = t.stats()
        assert stats_before["drop_files"] == 1 and stats_before["segments"] == 10
        r = t.compact(full=True)
        assert r["merged_segments"] == 10 and r["output_segments"] == 1
        assert r["drop_records_applied"] > 0
        after = _answers(t, keys, [0, 3, 5, 8, 100])
        assert after == before
        st = t.stats()
        assert st["segments"] == 1 and st["drop_files"] == 0 and st["drop_records"] == 0
        assert st["entries_stored"] == st["versions"] == stats_before["versions"]
        assert st["bytes_on_disk"] < stats_before["bytes_on_disk"]
        t.check()
        seg_name = f"{t._state.segments[0].file_no:012d}.seg"
        if t._remote is None:
            names = sorted(os.listdir(p))
        else:  # the retired objects go once no reader holds them (none does now)
            t._reap()
            names = [i.name.rpartition("/")[2] for i in t._remote.client.list("")]
            assert {n for n in os.listdir(p) if not n.endswith(".rng")} == {"LOCK"}
        assert [n for n in names if n.endswith(".seg")] == [seg_name]
        assert not [n for n in names if n.endswith((".drop", ".tmp"))]
    with ColdTier(p) as t:
        assert _answers(t, keys, [0, 3, 5, 8, 100]) == before


def test_partial_compaction_keeps_drops_for_older_segments(tmp_path):
    with ColdTier(tmp_path / "c", compact_trigger=None) as t:
        t.set(1, {T: [(b"a", b"old")]})          # oldest segment, not merged below
        for v in range(2, 6):
            t.set(v, {T: [(b"b", b"%d" % v)]})
        t.drop({T: [(b"a", 1), (b"b", 3)]})
        r = t.compact()                          # size-tiered: merges the four small ones
        assert 2 <= r["merged_segments"] <= 5
        assert t.get(T, b"a", 9) is None and t.get_all_versions(T, b"a") == []
        assert t.get_all_versions(T, b"b") == [(5, b"5"), (4, b"4"), (2, b"2")]
        t.check()
        t.compact(full=True)
        assert t.get(T, b"a", 9) is None and t.stats()["drop_records"] == 0


def test_drop_then_set_same_version_again(tmp_path):
    p = tmp_path / "c"
    with ColdTier(p, compact_trigger=None) as t:
        t.set(5, {T: [(b"k", b"first")]})
        t.drop({T: [(b"k", 5)]})
        assert t.lookup(T, b"k", 9) is None
        t.set(5, {T: [(b"k", b"second")]})       # written after the drop: visible again
        assert t.get(T, b"k", 9) == b"second"
        t.set(6, {T: [(b"k", b"six")]})
        t.set(5, {T: [(b"k", b"third")]})        # same (key, version) again: later write wins
        assert t.get_all_versions(T, b"k") == [(6, b"six"), (5, b"third")]
        assert scan(t, version=5) == [RawEntry(b"k", 5, b"third")]
        assert scan(t, version=5, reverse=True) == [RawEntry(b"k", 5, b"third")]
    with ColdTier(p) as t:
        assert t.get(T, b"k", 5) == b"third"
        t.compact(full=True)
        assert t.get_all_versions(T, b"k") == [(6, b"six"), (5, b"third")]


def test_explicit_compact_applies_pending_drops(tmp_path):
    with ColdTier(tmp_path / "c", compact_trigger=None) as t:
        t.set(1, {T: [(b"k%d" % i, b"x" * 200) for i in range(500)]})
        t.set(2, {T: [(b"k%d" % i, b"y" * 200) for i in range(500)]})
        t.drop({T: [(b"k%d" % i, 1) for i in range(500)]})
        before = t.stats()["bytes_on_disk"]
        r = t.compact()  # the policy alone would not merge 2 < compact_min_merge segments
        assert r["merged_segments"] == 2 and r["drop_records_applied"] == 500
        st = t.stats()
        assert st["bytes_on_disk"] < before and st["drop_records"] == 0 and st["versions"] == 500
        assert t.compact()["merged_segments"] == 0  # nothing left to do


def test_clear_then_write_again(tmp_path):
    p = tmp_path / "c"
    with ColdTier(p, compact_trigger=None) as t:
        t.set(1, {T: [(b"a", b"1")], S1: [(b"a", b"s")]})
        t.clear_table(T)
        t.set(2, {T: [(b"b", b"2")]})
        assert scan(t) == [RawEntry(b"b", 2, b"2")]
        assert t.get(S1, b"a", 1) == b"s"
    with ColdTier(p) as t:
        assert scan(t) == [RawEntry(b"b", 2, b"2")]
        t.compact(full=True)
        assert scan(t) == [RawEntry(b"b", 2, b"2")] and t.get(S1, b"a", 1) == b"s"
        assert T in t.tables() and t.stats()["drop_records"] == 0


def test_plan_is_size_tiered_over_contiguous_runs():
    kw = {"min_merge": 4, "max_merge": 32, "size_ratio": 1.0, "max_segments": 8}
    assert plan([100, 1, 1, 1, 1], **kw) == (1, 5)
    assert plan([100, 10, 1, 1, 1], **kw) is None
    assert plan([100, 4, 1, 1, 1, 1], **kw) == (1, 6)
    s, e = plan([1000, 500, 250, 120, 60, 30, 15, 7, 3], **kw)   # no ratio run: count cap
    assert e - s == 4 and e == 9
    assert plan([5], **kw) is None


def test_many_segments_and_auto_compaction(tmp_path):
    with ColdTier(tmp_path / "manual", compact_trigger=None) as t:
        for v in range(1, 121):
            t.set(v, {T: [(b"k%03d" % (v % 40), b"%d" % v)]})
        assert t.stats()["segments"] == 120
        for k in range(40):
            want = max(v for v in range(1, 121) if v % 40 == k)
            assert t.get(T, b"k%03d" % k, 1000) == b"%d" % want
        t.check()
    with ColdTier(tmp_path / "auto", compact_trigger=6) as t:
        for v in range(1, 121):
            t.set(v, {T: [(b"k%03d" % (v % 40), b"%d" % v)]})
            assert t.stats()["segments"] < 6 + 4
        st = t.stats()
        assert st["compactions"] > 0 and st["versions"] == 120 and st["keys"] == 40
        for k in range(40):
            want = max(v for v in range(1, 121) if v % 40 == k)
            assert t.get(T, b"k%03d" % k, 1000) == b"%d" % want
            assert t.get(T, b"k%03d" % k, want - 1) == (b"%d" % (want - 40) if want > 40 else None)
        t.check()


def test_readers_during_compaction_see_consistent_answers(tmp_path):
    with ColdTier(tmp_path / "c", compact_trigger=None, block_size=2048, cache_bytes=32 * 1024) as t:
        keys = [b"k%05d" % i for i in range(3000)]
        for v in range(1, 9):
            t.set(v, {T: [(k, b"%s-%d" % (k, v)) for k in keys[v - 1::8]]})
        stop = threading.Event()
        errors: list[BaseException] = []

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            try:
                while not stop.is_set():
                    i = rng.randrange(len(keys))
                    v = i % 8 + 1
                    assert t.get(T, keys[i], 100) == b"%s-%d" % (keys[i], v)
                    assert t.get(T, keys[i], v - 1) is None
                    page = t.range_next(T, RangeCursor(), Bound.included(keys[i]), U, 100, 5)
                    assert page.entries[0].key == keys[i]
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, re-raised there
                errors.append(exc)

        threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)]
        for th in threads:
            th.start()
        try:
            for _ in range(3):
                t.set(1000, {S1: [(b"x", b"y")]})
                t.compact(full=True)
        finally:
            stop.set()
            for th in threads:
                th.join()
        assert not errors, errors[0]
        t.check()


def test_writes_and_drops_during_compaction_merge(tmp_path):
    """Segments, drops and clears that land while a compaction merges must survive the swap."""
    from engine.tiers.cold import compaction as comp_mod

    p = tmp_path / "c"
    t = ColdTier(p, compact_trigger=None, block_size=512)
    model: Model = {}
    for v in range(1, 9):
        rows = [(b"k%02d" % ((v * 3 + j) % 20), b"v%d" % v) for j in range(6)]
        t.set(v, {T: rows, S1: rows[:2]})
        for k, val in rows:
            model.setdefault((T, k), {})[v] = val
        for k, val in rows[:2]:
            model.setdefault((S1, k), {})[v] = val
    t.drop({T: [(b"k03", 1)]})
    model[(T, b"k03")].pop(1, None)
    if not model[(T, b"k03")]:
        del model[(T, b"k03")]
    started = threading.Event()
    release = threading.Event()
    orig = comp_mod.merge_table_nexts

    def slow_merge(*a, **kw):  # park the merge so writers can act mid-compaction
        started.set()
        release.wait(10)
        yield from orig(*a, **kw)

    errors: list[BaseException] = []

    def compactor() -> None:
        try:
            t.compact(full=True)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, re-raised there
            errors.append(exc)

    import engine.tiers.cold.compactor as tier_mod
    tier_mod.merge_table_nexts = slow_merge  # type: ignore[assignment]
    try:
        th = threading.Thread(target=compactor)
        th.start()
        assert started.wait(10)
        # Meanwhile: a new segment, drops of versions the merge is rewriting, and a clear.
        t.set(50, {T: [(b"k05", b"fifty")]})
        model.setdefault((T, b"k05"), {})[50] = b"fifty"
        victims = [(k, v) for (tb, k), chain in model.items() if tb == T for v in chain][:5]
        t.drop({T: victims})
        for k, v in victims:
            del model[(T, k)][v]
            if not model[(T, k)]:
                del model[(T, k)]
        t.clear_table(S1)
        for key in [key for key in model if key[0] == S1]:
            del model[key]
        for k, v in victims:  # drops take effect at once, even mid-compaction
            assert v not in dict(t.get_all_versions(T, k))
        release.set()
        th.join(10)
    finally:
        tier_mod.merge_table_nexts = orig  # type: ignore[assignment]
        release.set()
    assert not errors, errors[0]
    t.check()

    def state(t: ColdTier) -> Model:
        out: Model = {}
        for table in (T, S1):
            for k in [b"k%02d" % i for i in range(20)]:
                vs = t.get_all_versions(table, k)
                if vs:
                    out[(table, k)] = dict(vs)
        return out

    assert state(t) == model
    assert t.stats()["drop_records"] > 0  # the records made mid-merge were carried over
    t.close()
    with ColdTier(p) as t2:
        assert state(t2) == model
        t2.compact(full=True)
        assert state(t2) == model and t2.stats()["drop_records"] == 0
        t2.check()


# --- durability, reopen, recovery ---------------------------------------------------------


def test_reopen_removes_stray_and_orphan_files(tmp_path):
    p = tmp_path / "c"
    with ColdTier(p) as t:
        t.set(1, {T: [(b"a", b"1")]})
    (p / "000000000999.seg.tmp").write_bytes(b"partial")
    (p / "MANIFEST.tmp").write_bytes(b"partial")
    (p / "000000000998.seg").write_bytes(b"never named by a manifest")
    (p / "notes.txt").write_text("user file: left alone")
    with ColdTier(p) as t:
        assert t.get(T, b"a", 1) == b"1"
        assert t.stats()["recovered_temp_files"] == 2
        # new numbers never collide with a (non-temp) file seen on disk
        t.set(2, {T: [(b"a", b"2")]})
        assert t._state.segments[0].file_no > 998
    names = set(os.listdir(p))
    assert "000000000998.seg" not in names and "MANIFEST.tmp" not in names
    assert "notes.txt" in names


def test_missing_manifest_with_segments_is_corruption(tmp_path):
    p = tmp_path / "c"
    with ColdTier(p) as t:
        t.set(1, {T: [(b"a", b"1")]})
    os.unlink(p / "MANIFEST")
    with pytest.raises(CorruptionError) as ei:
        ColdTier(p)
    assert "MANIFEST" in str(ei.value)


def test_second_open_is_locked(tmp_path):
    with ColdTier(tmp_path / "c") as t:
        with pytest.raises(LockedError):
            ColdTier(tmp_path / "c")
        t.set(1, {T: [(b"a", b"1")]})
    with ColdTier(tmp_path / "c") as t:
        assert t.get(T, b"a", 1) == b"1"


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_no_fd_leak_across_compaction_and_close(tmp_path):
    base = _open_fds()
    t = ColdTier(tmp_path / "c", compact_trigger=3)
    for v in range(1, 30):
        t.set(v, {T: [(b"k%d" % (v % 7), b"v")]})
        t.get(T, b"k1", v)
    assert _open_fds() <= base + 1 + t.stats()["segments"]
    t.close()
    assert _open_fds() == base
    t.close()  # idempotent
    with pytest.raises(ClosedError):
        t.stats()


def test_options_are_validated():
    with pytest.raises(TypeError):
        ColdTier("/nonexistent/never", block_sise=4096)
    for bad in ({"block_size": 10}, {"zstd_level": 99}, {"bloom_bits_per_key": -1},
                {"cache_bytes": -5}, {"compact_trigger": 1}, {"compact_min_merge": 1}):
        with pytest.raises(ValueError):
            ColdTier("/nonexistent/never", **bad)


def test_bad_input_writes_nothing(tmp_path):
    with ColdTier(tmp_path / "c") as t:
        with pytest.raises(TypeError):
            t.set(1, {T: [(b"a", b"1"), ("text-key", b"2")]})
        with pytest.raises(ValueError):
            t.set(-1, {T: [(b"a", b"1")]})
        with pytest.raises(TypeError):
            t.write_entries({T: [RawEntry(b"a", 1, "text")]})  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            t.set(1, {"multi": [(b"a", b"1")]})  # type: ignore[dict-item]
        with pytest.raises(TypeError):
            t.drop({"multi": [(b"a", 1)]})  # type: ignore[dict-item]
        assert t.stats()["segments"] == 0 and t.get(T, b"a", 1) is None


# --- format -------------------------------------------------------------------------------


def test_unknown_segment_format_version_is_refused(tmp_path):
    p = tmp_path / "c"
    with ColdTier(p) as t:
        t.set(1, {T: [(b"a", b"1")]})
        seg = t._state.segments[0].path
    data = bytearray(seg.read_bytes())
    foff = len(data) - FOOTER.size
    fields = list(FOOTER.unpack_from(data, foff))
    fields[1] = SEGMENT_FORMAT_VERSION + 1
    fields[-1] = 0
    head = FOOTER.pack(*fields)[:-4]
    data[foff:] = head + struct.pack("<I", crc32(head))
    seg.write_bytes(bytes(data))
    with pytest.raises(CorruptionError):  # the manifest pins the old footer checksum
        ColdTier(p)


def test_unknown_manifest_format_version_is_refused(tmp_path):
    p = tmp_path / "c"
    ColdTier(p).close()
    data = bytearray((p / "MANIFEST").read_bytes())
    struct.pack_into("<H", data, 8, FORMAT_VERSION + 1)
    body = bytes(data[:-4])
    (p / "MANIFEST").write_bytes(body + struct.pack("<I", crc32(body)))
    with pytest.raises(FormatError) as ei:
        ColdTier(p)
    assert "version" in str(ei.value)
    assert MANIFEST_HEADER.size == 56


def test_segment_format_version_refused_on_direct_open(tmp_path):
    from engine.tiers.cold.cache import BlockCache
    from engine.tiers.cold.reader import Segment

    p = tmp_path / "c"
    with ColdTier(p) as t:
        t.set(1, {T: [(b"a", b"1")]})
        seg = t._state.segments[0].path
    data = bytearray(seg.read_bytes())
    struct.pack_into("<H", data, 8, SEGMENT_FORMAT_VERSION + 7)
    struct.pack_into("<I", data, 12, crc32(bytes(data[:12])))
    seg.write_bytes(bytes(data))
    with pytest.raises(FormatError):
        Segment(seg, 1, BlockCache(0))


def test_dictionary_mode(tmp_path):
    rng = random.Random(5)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta"]
    rows = [(b"user:%08d" % i,
             b'{"id":%d,"name":"%s_%d","city":"%s","score":%d,"tags":["%s","%s"]}' % (
                 i, rng.choice(words), rng.randrange(10**6), rng.choice(words), rng.randrange(1000),
                 rng.choice(words), rng.choice(words)))
            for i in range(30_000)]
    sizes = {}
    for use in (True, False):
        with ColdTier(tmp_path / str(use), block_size=4096, dictionary=use) as t:
            t.set(1, {T: rows})
            st = t.stats()
            assert st["dictionary_segments"] == (1 if use else 0)
            sizes[use] = st["bytes_on_disk"]
            for k, v in rng.sample(rows, 200):
                assert t.get(T, k, 1) == v
            assert scan(t, version=1)[1234] == RawEntry(rows[1234][0], 1, rows[1234][1])
            t.check()
        with ColdTier(tmp_path / str(use)) as t:  # the dictionary is read back from the file
            assert t.get(T, rows[77][0], 1) == rows[77][1]
    assert sizes[True] < sizes[False] * 0.95


def test_dictionary_skipped_for_small_segments(tmp_path):
    with ColdTier(tmp_path / "c", dictionary=True) as t:
        t.set(1, {T: [(b"k%d" % i, b"v" * 20) for i in range(100)]})
        assert t.stats()["dictionary_segments"] == 0


def test_long_version_chain_spans_blocks(tmp_path):
    with ColdTier(tmp_path / "c", block_size=512) as t:
        t.write_entries({T: [RawEntry(b"hot", v, b"x%05d" % v if v % 7 else None)
                             for v in range(1, 3001)]
                         + [RawEntry(b"a", 5, b"A"), RawEntry(b"z", 9, b"Z")]})
        assert len(t._state.segments[0].first_keys) > 20
        for v in (1, 7, 8, 1500, 2999, 3000, 5000):
            want = None if (min(v, 3000) % 7 == 0) else b"x%05d" % min(v, 3000)
            assert t.get(T, b"hot", v) == want
            e = t.lookup(T, b"hot", v)
            assert e is not None and e.version == min(v, 3000)
        for v in (4, 6, 3000):
            got = scan(t, version=v)
            assert [e.key for e in got] == ([b"a"] if v >= 5 else []) + [b"hot"] + ([b"z"] if v >= 9 else [])
            assert scan(t, version=v, reverse=True) == got[::-1]
        t.drop({T: [(b"hot", v) for v in range(1000, 3001)]})
        assert t.lookup(T, b"hot", 5000) == RawEntry(b"hot", 999, b"x00999")
        assert scan(t, version=5000, reverse=True)[1] == RawEntry(b"hot", 999, b"x00999")
        assert len(t.get_all_versions(T, b"hot")) == 999
        t.check()


def test_stats_fields(tmp_path):
    with ColdTier(tmp_path / "c") as t:
        st = t.stats()
        for k in ("keys", "versions", "bytes", "tables", "segments", "cache_hits", "cache_misses",
                  "bytes_raw", "bytes_on_disk"):
            assert k in st
        t.set(1, {T: [(b"a", b"x" * 100)]})
        st = t.stats()
        assert st["bytes"] == st["bytes_on_disk"] > 0 and st["bytes_raw"] == 1 + 100 + 8


if __name__ == "__main__":  # seeded model runs as a script: python tests/unit/test_cold.py 0 50
    import tempfile

    lo, hi = (int(sys.argv[1]), int(sys.argv[2])) if len(sys.argv) > 2 else (0, 20)
    for s in range(lo, hi):
        with tempfile.TemporaryDirectory() as d:
            run_model(s, Path(d) / "cold", steps=150)
        print("seed", s, "ok")
