"""Old reads that cold answers alone: the successor column (FLAG_NEXTS) and ColdTier.get_final.

A "history" demotion records, for every key it moves, the version that superseded the newest
moved one (it stays in warm). ``get_final`` answers a read from cold alone only when cold
proves that nothing newer lies at or below the read version; every answer must equal the
full cascade's, and reads it cannot prove fall back to the cascade (``missing``).
"""

from __future__ import annotations

import itertools
import random
import struct

import pytest

import engine
from engine import EntryKind
from engine.errors import CorruptionError
from engine.tiers import ColdTier
from engine.tiers.cold import format as cold_format
from engine.tiers.cold import writer as cold_writer
from engine.tiers.cold.format import FLAG_NEXTS, RAW_BLOCK_HEADER
from engine.types import RawEntry

T = EntryKind.source(1)
MISSING = object()


def _rows(key: bytes, versions: dict[int, bytes | None]) -> list[RawEntry]:
    return [RawEntry(key, v, val) for v, val in versions.items()]


# --- the tier -------------------------------------------------------------------------------


@pytest.fixture(params=["local", "memory"])
def mk(request):
    """ColdTier(path, **opts), with its segments on local disk or in an object store."""
    if request.param == "local":
        return ColdTier

    def make(path, **opts):
        return ColdTier(path, url="memory://coldfinal" + str(path).replace("/", "_"), **opts)

    return make


def test_get_final_answers_only_what_cold_proves(tmp_path, mk):
    with mk(tmp_path / "c") as t:
        t.write_entries({T: _rows(b"a", {3: b"a3", 5: b"a5"}) + _rows(b"b", {2: b"b2", 4: None})
                         + _rows(b"c", {1: b"c1"})},
                        nexts={T: {b"a": 8, b"b": 6}})  # c: successor unknown
        g = t.get_final
        assert g(T, b"a", 2, MISSING) is MISSING      # nothing <= 2 in cold
        assert g(T, b"a", 3, MISSING) == b"a3"        # 5 follows inside the segment
        assert g(T, b"a", 4, MISSING) == b"a3"
        assert g(T, b"a", 5, MISSING) == b"a5"        # the successor 8 is above
        assert g(T, b"a", 7, MISSING) == b"a5"
        assert g(T, b"a", 8, MISSING) is MISSING      # the answer is above cold
        assert g(T, b"a", 100, MISSING) is MISSING
        assert g(T, b"b", 5, MISSING) is None         # a tombstone is an answer
        assert g(T, b"b", 6, MISSING) is MISSING
        assert g(T, b"c", 1, MISSING) is MISSING      # no successor recorded
        assert g(T, b"zz", 1, MISSING) is MISSING
        assert g(EntryKind.source(9), b"a", 4, MISSING) is MISSING
        assert t.get_final_many(T, [b"a", b"b", b"c"], 3, MISSING) == [b"a3", b"b2", MISSING]
        # The plain reads never see anything of the column.
        assert t.get_all_versions(T, b"a") == [(5, b"a5"), (3, b"a3")]
        assert t.get(T, b"a", 100) == b"a5"
        t.check()


def test_batches_match_single_reads_with_disjoint_and_overlapping_segments(tmp_path, mk):
    """get_final_many takes a shortcut when the segments' key ranges are disjoint (chunked
    demotions): it must answer exactly like get_final, with or without the shortcut."""
    with mk(tmp_path / "c") as t:
        hist = {}
        for chunk in range(3):                       # three disjoint key ranges
            keys = [b"k%02d" % (chunk * 10 + i) for i in range(10)]
            rows = []
            for i, k in enumerate(keys):
                hist[k] = {v: b"%s@%d" % (k, v) for v in range(1 + i % 3, 8, 2 + i % 2)}
                rows += _rows(k, hist[k])
            t.write_entries({T: rows}, nexts={T: {k: 9 + i % 4 for i, k in enumerate(keys)}})
        every = sorted(hist) + [b"a", b"k05x", b"zz"]
        segs = t._state.by_table[T].segs
        assert len(segs) == 3 and all(a[0] > b[1] for a, b in itertools.pairwise(segs))

        def check():
            for v in range(14):
                single = [t.get_final(T, k, v, MISSING) for k in every]
                assert t.get_final_many(T, every, v, MISSING) == single, v
                for k, got in zip(every, single):
                    if got is not MISSING:
                        assert got == hist[k][max(x for x in hist[k] if x <= v)]
            return single

        check()
        t.drop({T: [(b"k12", 7)]})                    # pending drop: that key is unknown
        assert t.get_final_many(T, [b"k12", b"k13"], 8, MISSING)[0] is MISSING
        check()
        t.write_entries({T: _rows(b"k15", {10: b"k15@10"})}, nexts={T: {b"k15": 20}})  # overlaps
        hist[b"k15"][10] = b"k15@10"
        check()


def test_successors_must_be_above_the_newest_moved_version(tmp_path):
    with ColdTier(tmp_path / "c") as t:
        with pytest.raises(ValueError):
            t.write_entries({T: _rows(b"a", {3: b"a3", 5: b"a5"})}, nexts={T: {b"a": 5}})
        assert t.stats()["segments"] == 0 and t.get(T, b"a", 9) is None


def test_a_later_band_and_pending_drops(tmp_path, mk):
    with mk(tmp_path / "c") as t:
        t.write_entries({T: _rows(b"a", {1: b"a1", 3: b"a3"})}, nexts={T: {b"a": 6}})
        t.write_entries({T: _rows(b"a", {6: b"a6", 9: b"a9"})}, nexts={T: {b"a": 12}})
        g = t.get_final
        assert [g(T, b"a", v, MISSING) for v in range(1, 13)] == [
            b"a1", b"a1", b"a3", b"a3", b"a3", b"a6", b"a6", b"a6", b"a9", b"a9", b"a9", MISSING]
        t.drop({T: [(b"a", 3)]})                        # pending drop: the cascade decides
        assert g(T, b"a", 4, MISSING) is MISSING and g(T, b"a", 10, MISSING) is MISSING
        assert t.get(T, b"a", 4) == b"a1"
        t.compact(full=True)                            # applied: a1 is followed by a6 now
        assert t.stats()["segments"] == 1
        assert [g(T, b"a", v, MISSING) for v in range(1, 13)] == [
            b"a1", b"a1", b"a1", b"a1", b"a1", b"a6", b"a6", b"a6", b"a9", b"a9", b"a9", MISSING]
        t.drop({T: [(b"a", 9)]})
        t.compact(full=True)                            # the newest went: its successor too
        assert g(T, b"a", 7, MISSING) is MISSING and g(T, b"a", 5, MISSING) == b"a1"
        assert t.get(T, b"a", 10) == b"a6"
        t.check()


def test_runs_across_blocks_and_reopen(tmp_path, mk):
    p = tmp_path / "c"
    hist = {v: b"x%03d" % v * 10 for v in range(1, 120, 2)}
    with mk(p, block_size=256) as t:
        t.write_entries({T: _rows(b"k", hist) + _rows(b"j", {5: b"j5"}) + _rows(b"m", {7: b"m7"})},
                        nexts={T: {b"k": 150, b"j": 6, b"m": 8}})
        seg = t._state.segments[0]
        assert len(seg.block_entries) > 5                # the run spans many blocks
    with mk(p, block_size=256) as t:                      # persisted
        for v in range(160):
            want = MISSING if v < 1 or v >= 150 else hist[max(x for x in hist if x <= v)]
            assert t.get_final(T, b"k", v, MISSING) == want, v
        assert t.get_final(T, b"j", 5, MISSING) == b"j5" and t.get_final(T, b"m", 7, MISSING) == b"m7"
        assert t.get_final(T, b"m", 8, MISSING) is MISSING
        t.compact(full=True)
        assert t.get_final(T, b"k", 149, MISSING) == hist[119]
        t.check()


def test_old_format_segments_are_read_and_never_answer_alone(tmp_path, monkeypatch):
    """Segments written before the successor column (format 1) open, read and compact
    correctly; their keys' newest versions fall back to the cascade."""
    p = tmp_path / "c"
    monkeypatch.setattr(cold_format, "SEGMENT_FORMAT_VERSION", 1)
    monkeypatch.setattr(cold_writer, "SEGMENT_FORMAT_VERSION", 1)
    with ColdTier(p) as t:
        t.write_entries({T: _rows(b"a", {1: b"a1", 3: b"a3"})})   # what the old code wrote
    monkeypatch.undo()
    raw = next(p.glob("*.seg")).read_bytes()
    assert struct.unpack_from("<H", raw, 8)[0] == 1
    with ColdTier(p) as t:
        assert t._state.segments[0].format_version == 1
        assert t.get(T, b"a", 2) == b"a1" and t.get(T, b"a", 9) == b"a3"
        assert t.get_final(T, b"a", 2, MISSING) == b"a1"          # 3 follows in the segment
        assert t.get_final(T, b"a", 4, MISSING) is MISSING        # successor unknown
        t.check()
        t.write_entries({T: _rows(b"a", {5: b"a5"})}, nexts={T: {b"a": 7}})
        assert t.get_final(T, b"a", 6, MISSING) == b"a5"
        assert t.get_final(T, b"a", 4, MISSING) is MISSING
        t.compact(full=True)                                       # new format, merged
        assert t._state.segments[0].format_version == 2
        assert [t.get_final(T, b"a", v, MISSING) for v in range(1, 8)] == [
            b"a1", b"a1", b"a3", b"a3", b"a5", b"a5", MISSING]
        t.check()


def test_check_refuses_a_successor_on_a_continued_run(tmp_path):
    from engine.tiers.cold.block import parse_block
    from engine.tiers.cold.format import encode_block

    raw = encode_block([b"a", b"b"], [2, 1], [5, 3, 4], [b"x", None, b"y"], [2, 0])
    hdr = RAW_BLOCK_HEADER.unpack_from(raw, 0)
    assert hdr[-1] & FLAG_NEXTS
    v = parse_block(raw, "seg", 16)
    assert v.next_delta(0) == 2 and v.next_delta(1) == 0
    assert v.decoded().keys == [b"a", b"b"] and v.value(2) == b"y" and v.value(1) is None
    with pytest.raises(CorruptionError):
        parse_block(raw[:RAW_BLOCK_HEADER.size + 8], "seg", 16)
    plain = encode_block([b"a"], [1], [5], [b"x"], [0])
    assert not RAW_BLOCK_HEADER.unpack_from(plain, 0)[-1] & FLAG_NEXTS   # no column if unused


def test_random_histories_against_the_full_cascade(tmp_path, mk):
    """Random commits, "history" and "age" demotions (sometimes leaving the upper copy, as a
    crash between copy and delete does), drops, compactions and reopens: whenever get_final
    answers, it is the answer of the whole history; the model's upper tier stands in for
    hot and warm. Reads whose answer was dropped are not retained read points: skipped."""
    assert _random_histories(tmp_path, mk, range(6)) > 6 * 20


@pytest.mark.stress
def test_random_histories_stress(tmp_path, mk):
    assert _random_histories(tmp_path, mk, range(6, 206)) > 200 * 20


def _random_histories(tmp_path, mk, seeds) -> int:
    """Run the model for each seed; return how many reads get_final answered."""
    total = 0
    for seed in seeds:
        rng = random.Random(seed)
        p = tmp_path / f"c{seed}"
        bs = rng.choice([256, 4096])
        t = mk(p, block_size=bs)
        keys = [b"k%d" % i for i in range(6)]
        full: dict[bytes, dict[int, bytes | None]] = {k: {} for k in keys}
        upper: dict[bytes, dict[int, bytes | None]] = {k: {} for k in keys}
        dropped: set[tuple[bytes, int]] = set()
        cold_rows: set[tuple[bytes, int]] = set()
        version = 0
        answered = 0
        for _step in range(60):
            for _ in range(rng.randrange(1, 6)):
                version += 1
                k = rng.choice(keys)
                val = None if rng.random() < 0.15 else b"v%d." % version * rng.randrange(1, 12)
                full[k][version] = val
                upper[k][version] = val
            r = rng.random()
            if r < 0.45:
                cutoff = rng.randrange(1, version + 1)
                age = rng.random() < 0.1
                batch: list[RawEntry] = []
                nexts: dict[bytes, int] = {}
                for k in keys:
                    below = sorted(v for v in upper[k] if v <= cutoff)
                    move = below if age else below[:-1]
                    if not move:
                        continue
                    batch.extend(RawEntry(k, v, upper[k][v]) for v in move)
                    if not age:
                        nexts[k] = below[-1]
                    keep_copy = rng.random() < 0.2
                    for v in move:
                        cold_rows.add((k, v))
                        if not keep_copy:
                            del upper[k][v]
                if batch:
                    t.write_entries({T: batch}, nexts={T: nexts} if nexts else None)
            elif r < 0.6:
                k = rng.choice(keys)
                live = [v for v in full[k] if (k, v) not in dropped]
                if live:
                    v = rng.choice(live)
                    dropped.add((k, v))
                    upper[k].pop(v, None)
                    t.drop({T: [(k, v)]})
            elif r < 0.7:
                t.compact(full=rng.random() < 0.5)
            elif r < 0.75:
                t.close()
                t = mk(p, block_size=bs)
            for _ in range(25):
                k = rng.choice(keys)
                v = rng.randrange(0, version + 2)
                older = [x for x in full[k] if x <= v]
                if older and (k, max(older)) in dropped:
                    continue  # the answer was dropped: no retained read asks this
                want = full[k][max(older)] if older else None
                got = t.get_final(T, k, v, MISSING)
                assert t.get_final_many(T, [k, k], v, MISSING) == [got, got]
                if got is not MISSING:
                    answered += 1
                    assert got == want, (seed, k, v)
                up = [x for x in upper[k] if x <= v]
                cascade = upper[k][max(up)] if up else t.get(T, k, v)
                assert cascade == want, (seed, k, v)
        t.check()
        t.close()
        total += answered
    return total


# --- through the store ----------------------------------------------------------------------


def _open(path, layout="hot+warm+cold", **knobs):
    return engine.open(path, layout=engine.Layout.parse(layout, background=False, **knobs))


def _history_store(path, layout="hot+warm+cold", rounds=4, nkeys=40, **knobs):
    s = _open(path, layout, **knobs)
    keys = [b"k%03d" % i for i in range(nkeys)]
    for r in range(rounds):
        with s.begin() as tx:
            for i, k in enumerate(keys):
                if r == 0 or i % (r + 1) == 0:
                    tx.set(T, k, b"v%d.%d" % (r, i))
                elif i % 7 == r:
                    tx.remove(T, k)
    return s, keys


def _expected(s, keys):
    return {v: [s.get(T, k, v) for k in keys] for v in range(1, s.version + 1)}


def _count_warm(s):
    """Record every key warm is asked about (point and batch reads)."""
    asked: list[bytes] = []
    router = s._router
    warm = router.tiers[-2]
    lookups = router._chain_all[0]
    inner = lookups[-1]

    def counted(table, key, version, missing):
        asked.append(key)
        return inner(table, key, version, missing)

    lookups[-1] = counted
    name = "get_or_many" if hasattr(warm, "get_or_many") else "lookup_many"
    many = getattr(warm, name)

    def counted_many(table, ks, version, *rest):
        asked.extend(ks)
        return many(table, ks, version, *rest)

    setattr(warm, name, counted_many)
    return asked


@pytest.mark.parametrize("layout", ["hot+warm+cold", "warm+cold"])
def test_old_reads_stop_at_cold_without_warm(tmp_path, layout):
    """Reopened (no clean copies), after flush + "history" demotion: a read whose answer is
    archived (older than the key's version in warm) is answered by cold; warm is not asked."""
    s, keys = _history_store(tmp_path / "db", layout)
    want = _expected(s, keys)          # before any movement: hot/warm answer everything
    s.flush()
    s.demote()
    s.close()
    s = _open(tmp_path / "db", layout)
    assert s._router.cold_skip_from == s.version
    hist = {k: s.history(T, k) for k in keys}
    asked = _count_warm(s)
    archived_reads = 0
    for v, row in want.items():
        del asked[:]
        cold_before = s._router.reads_served[-1]
        assert [s.get(T, k, v) for k in keys] == row, v
        single = list(asked)
        assert s.get_many(T, keys, v) == row, v
        archived = [k for k in keys
                    if any(x <= v for x, _ in hist[k]) and hist[k][0][0] > v]
        archived_reads += len(archived)
        assert not set(archived) & set(asked), v         # neither get nor get_many asked warm
        assert s._router.reads_served[-1] - cold_before >= 2 * len(archived)
        assert len(single) <= len(keys) - len(archived)
    assert archived_reads > 50
    s.check()
    s.close()


def test_updates_erase_and_age_after_the_demotion(tmp_path):
    s, keys = _history_store(tmp_path / "db")
    s.flush()
    s.demote()
    want = _expected(s, keys)
    with s.begin() as tx:                       # updates after the demotion
        for k in keys[:10]:
            tx.set(T, k, b"late")
    late = tx.version
    s.flush()
    s.demote()
    erased = keys[0]
    s.erase(T, erased)
    want = {v: [None if k == erased else x for k, x in zip(keys, row)] for v, row in want.items()}
    for v, row in want.items():
        assert [s.get(T, k, v) for k in keys] == row, v
        assert s.get_many(T, keys, v) == row, v
    assert s.get_many(T, keys[:10], late) == [None] + [b"late"] * 9
    s.compact()
    for v, row in want.items():
        assert s.get_many(T, keys, v) == row, v
    s.demote(policy="age")                      # whole keys move: cold_skip off, no shortcut
    assert s._router.cold_skip_from is None
    for v, row in want.items():
        assert [s.get(T, k, v) for k in keys] == row, v
    assert s.history(T, erased) == []
    s.check()
    s.close()


def test_retention_gc_and_pins_with_old_reads(tmp_path):
    s = _open(tmp_path / "db")
    keys = [b"k%02d" % i for i in range(20)]
    versions = []
    for r in range(8):
        with s.begin() as tx:
            for i, k in enumerate(keys):
                if i % (r % 3 + 1) == 0:
                    tx.set(T, k, b"%d.%d" % (r, i))
        versions.append(tx.version)
        if r == 2:
            s.pin(tx.version, "p")
    want = _expected(s, keys)
    s.flush()
    s.demote()
    s.close()
    s = engine.open(tmp_path / "db", layout=engine.Layout.parse("hot+warm+cold", background=False),
                    retention=engine.Retention(history_versions=2))
    s.gc()
    s.compact()
    for v in [versions[2], *versions[-2:]]:
        assert [s.get(T, k, v) for k in keys] == want[v], v
        assert s.get_many(T, keys, v) == want[v], v
    with pytest.raises(engine.errors.HistoryUnavailable):
        s.get(T, keys[0], versions[1])
    s.check()
    s.close()


def test_scans_history_backup_and_clone_see_no_difference(tmp_path):
    s, keys = _history_store(tmp_path / "db")
    want = _expected(s, keys)
    hist = {k: s.history(T, k) for k in keys}
    scans = {v: list(s.range(T, version=v)) for v in range(1, s.version + 1)}
    s.flush()
    s.demote()
    assert {k: s.history(T, k) for k in keys} == hist
    assert {v: list(s.range(T, version=v)) for v in scans} == scans
    assert {v: list(s.range(T, version=v, reverse=True)) for v in scans} == \
        {v: rows[::-1] for v, rows in scans.items()}
    s.backup(tmp_path / "bk")
    cut = 2
    s.clone(tmp_path / "cl", version=cut)
    s.close()
    engine.restore_backup(tmp_path / "bk", tmp_path / "rs")
    r = _open(tmp_path / "rs")
    assert {k: r.history(T, k) for k in keys} == hist
    for v, row in want.items():
        assert r.get_many(T, keys, v) == row
    r.check()
    r.close()
    # The clone ends at version 2; its own commits then take versions the source used, and
    # cold's recorded successors (from the source's later versions) must not hide them.
    c = _open(tmp_path / "cl")
    assert c.version == cut
    with c.begin() as tx:
        for k in keys:
            tx.set(T, k, b"clone")
    for k in keys:
        assert c.get(T, k, tx.version) == b"clone"
        assert c.get(T, k, cut) == want[cut][keys.index(k)]
    c.flush()
    c.demote()
    assert c.get_many(T, keys, cut) == want[cut]
    assert c.get_many(T, keys, tx.version) == [b"clone"] * len(keys)
    c.check()
    c.close()


def test_random_store_model_with_old_reads(tmp_path):
    """A seeded model of the store: commits, flushes, history demotions, compactions, erases
    and reopens; every old read (get and get_many) equals the model, and cold answers a
    good share of them alone."""
    rng = random.Random(11)
    s = _open(tmp_path / "db", hot_cache_bytes=rng.choice([0, 4000]))
    keys = [b"k%02d" % i for i in range(25)]
    model: dict[bytes, dict[int, bytes | None]] = {k: {} for k in keys}
    cold_answers = 0
    for step in range(40):
        with s.begin() as tx:
            for k in rng.sample(keys, rng.randrange(1, 10)):
                val = None if rng.random() < 0.15 else b"%d.%s" % (step, k)
                if val is None:
                    tx.remove(T, k)
                else:
                    tx.set(T, k, val)
        v = tx.version
        for k in keys:
            got = s.get(T, k)
            if got is not None or model[k]:
                model[k][v] = got
        r = rng.random()
        if r < 0.3:
            s.flush()
        elif r < 0.55:
            s.flush()
            s.demote(cutoff=rng.randrange(1, s.version + 1))
        elif r < 0.6:
            s.compact()
        elif r < 0.65:
            k = rng.choice(keys)
            s.erase(T, k)
            model[k] = {}
        elif r < 0.7:
            s.close()
            s = _open(tmp_path / "db")
        before = s._router.reads_served[-1]
        for _ in range(20):
            rv = rng.randrange(1, s.version + 1)
            ks = rng.sample(keys, 8)
            want = []
            for k in ks:
                older = [x for x in model[k] if x <= rv]
                want.append(model[k][max(older)] if older else None)
            assert [s.get(T, k, rv) for k in ks] == want, (step, rv)
            assert s.get_many(T, ks, rv) == want, (step, rv)
        cold_answers += s._router.reads_served[-1] - before
    s.check()
    s.close()
    assert cold_answers > 100
