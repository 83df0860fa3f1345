"""The router's read cascade and merged range cursors, over real tiers.

Three hot tiers stand in for hot/warm/cold here so the merge logic is tested on its own
(layout tests exercise the real warm and cold tiers); data is placed in bands as movement
would place it: for each key, newer versions in higher tiers.
"""

from __future__ import annotations

import random

import pytest

from engine.router.reader import MergedScan, Router, ScanEpochs
from engine.tiers import HotTier
from engine.types import Bound, EntryKind, RawEntry

T = EntryKind.MULTI
U = Bound.UNBOUNDED


def banded(rng: random.Random, nkeys: int = 40, max_versions: int = 6):
    """Random history per key split into bands across three tiers; returns (tiers, model)."""
    tiers = [HotTier(), HotTier(), HotTier()]
    model: dict[bytes, list[tuple[int, bytes | None]]] = {}
    for i in range(nkeys):
        key = b"k%03d" % rng.randrange(200)
        if key in model:
            continue
        versions = sorted(rng.sample(range(1, 60), rng.randrange(1, max_versions)))
        chain = [(v, None if rng.random() < 0.25 else b"%s@%d" % (key, v)) for v in versions]
        model[key] = chain
        # split ascending chain into three bands: cold gets the oldest
        cuts = sorted(rng.randrange(len(chain) + 1) for _ in range(2))
        bands = [chain[cuts[1]:], chain[cuts[0]:cuts[1]], chain[:cuts[0]]]
        for tier, band in zip(tiers, bands):
            for v, val in band:
                tier.set(v, {T: [(key, val)]})
    return tiers, model


def expected(model, version, lo=U, hi=U, reverse=False):
    out = []
    for key in sorted(model):
        if not (lo.admits_low(key) and hi.admits_high(key)):
            continue
        vis = [(v, val) for v, val in model[key] if v <= version]
        if vis:
            v, val = vis[-1]
            out.append(RawEntry(key, v, val))
    return out[::-1] if reverse else out


@pytest.mark.parametrize("seed", range(12))
def test_merged_scan_matches_model(seed):
    rng = random.Random(seed)
    tiers, model = banded(rng)
    router = Router(tiers)
    keys = sorted(model)
    for _ in range(20):
        version = rng.randrange(0, 65)
        reverse = rng.random() < 0.5
        lo = U if rng.random() < 0.3 else rng.choice([Bound.included, Bound.excluded])(rng.choice(keys))
        hi = U if rng.random() < 0.3 else rng.choice([Bound.included, Bound.excluded])(rng.choice(keys))
        chunk = rng.choice([1, 2, 3, 7, 100])
        got = list(router.scan(T, lo, hi, version, reverse, chunk))
        assert got == expected(model, version, lo, hi, reverse)
        for key in keys:
            want = [(v, val) for v, val in model[key] if v <= version]
            e = router.lookup(T, key, version)
            assert e == (RawEntry(key, *want[-1]) if want else None)


def test_higher_tier_wins_and_tombstone_hides_lower_ghost():
    hot, warm, cold = HotTier(), HotTier(), HotTier()
    cold.set(1, {T: [(b"a", b"cold-a"), (b"g", b"ghost")]})
    warm.set(2, {T: [(b"a", b"warm-a")]})
    hot.set(3, {T: [(b"g", None)]})
    hot.set(4, {T: [(b"z", b"hot-z")]})
    r = Router([hot, warm, cold])
    assert r.lookup(T, b"a", 5).value == b"warm-a"     # scenario 18
    assert r.lookup(T, b"a", 1).value == b"cold-a"     # scenario 19: falls through
    assert r.lookup(T, b"g", 3) == RawEntry(b"g", 3, None)  # scenario 20
    assert r.lookup(T, b"g", 2).value == b"ghost"
    got = list(r.scan(T, U, U, 5, False, 1))
    assert got == [RawEntry(b"a", 2, b"warm-a"), RawEntry(b"g", 3, None), RawEntry(b"z", 4, b"hot-z")]


def test_page_filtered_in_one_tier_does_not_end_scan():
    """Paging regression: every row of a page in one tier is newer than the read version."""
    hot, warm = HotTier(), HotTier()
    hot.set(50, {T: [(b"m%03d" % i, b"new") for i in range(100)]})
    hot.set(1, {T: [(b"zz", b"old-hot")]})
    warm.set(1, {T: [(b"a", b"old")]})
    for chunk in (1, 2, 5):
        got = [e.key for e in Router([hot, warm]).scan(T, U, U, 10, False, chunk)]
        assert got == [b"a", b"zz"]
        got = [e.key for e in Router([hot, warm]).scan(T, U, U, 10, True, chunk)]
        assert got == [b"zz", b"a"]


def test_key_with_versions_on_both_sides_of_read_version():
    hot, warm, cold = HotTier(), HotTier(), HotTier()
    cold.set(1, {T: [(b"k", b"v1")]})
    cold.set(2, {T: [(b"k", b"v2")]})
    warm.set(5, {T: [(b"k", b"v5")]})
    hot.set(9, {T: [(b"k", b"v9")]})
    r = Router([hot, warm, cold])
    for read, want in ((1, b"v1"), (3, b"v2"), (5, b"v5"), (8, b"v5"), (9, b"v9"), (100, b"v9")):
        assert [e.value for e in r.scan(T, U, U, read, False, 1)] == [want]
        assert [e.value for e in r.scan(T, U, U, read, True, 1)] == [want]
        assert r.lookup(T, b"k", read).value == want
    assert r.history(T, b"k") == [(9, b"v9"), (5, b"v5"), (2, b"v2"), (1, b"v1")]


def test_reverse_across_three_tiers_interleaved():
    tiers = [HotTier(), HotTier(), HotTier()]
    for i, key in enumerate([b"a", b"b", b"c", b"d", b"e", b"f"]):
        tiers[i % 3].set(10 - i, {T: [(key, key)]})
    r = Router(tiers)
    assert [e.key for e in r.scan(T, U, U, 100, True, 1)] == [b"f", b"e", b"d", b"c", b"b", b"a"]
    assert list(r.scan(T, U, U, 4, True, 1)) == []  # scenario 21: none visible at v4


def test_scan_epochs_defer_until_older_scans_finish():
    epochs = ScanEpochs()
    ran = []
    e1 = epochs.enter()
    epochs.defer(lambda: ran.append("drop"))
    assert ran == [] and epochs.pending() == 1
    e2 = epochs.enter()  # a scan that started after the copy does not hold the drop back
    epochs.exit(e1)
    assert ran == ["drop"]
    epochs.exit(e2)
    epochs.defer(lambda: ran.append("now"))
    assert ran == ["drop", "now"]


def test_rows_moving_during_a_merged_scan_are_not_lost():
    """Copy to the lower tier, then the deferred delete: a running scan sees every key once."""
    hot, warm = HotTier(), HotTier()
    hot.set(1, {T: [(b"%03d" % i, b"x") for i in range(0, 100, 2)]})
    warm.set(1, {T: [(b"%03d" % i, b"x") for i in range(1, 100, 2)]})
    r = Router([hot, warm])
    it = r.scan(T, U, U, 1, False, 4)
    seen = [next(it).key for _ in range(10)]
    # move everything hot -> warm the way the mover does it
    rows: dict = {}
    for table, entries in hot.iter_versions_up_to(1, chunk_entries=7):
        rows.setdefault(table, []).extend(entries)
        for e in entries:
            warm.set(e.version, {table: [(e.key, e.value)]})
    drops = {t: [(e.key, e.version) for e in es] for t, es in rows.items()}
    r.epochs.defer(lambda: hot.drop(drops))
    assert hot.stats()["keys"] == 50  # deferred: our scan is still running
    seen += [e.key for e in it]
    assert seen == [b"%03d" % i for i in range(100)]
    assert hot.stats()["keys"] == 0  # ran when the scan finished


def test_merged_scan_single_tier_fast_path_equivalent():
    rng = random.Random(7)
    tiers, model = banded(rng)
    for table_tiers in ([tiers[0]],):
        got = list(MergedScan(table_tiers, T, U, U, 30, False, 3))
        exp = list(MergedScan([HotTier(), *table_tiers], T, U, U, 30, False, 3))
        assert got == exp
