"""The shared TierStorage conformance suite, run unchanged over every tier."""

from __future__ import annotations

import random

import pytest

from engine.errors import ClosedError, EngineError
from engine.types import Bound, EntryKind, RangeCursor, RawEntry

T = EntryKind.MULTI
S1 = EntryKind.source(1)
O7 = EntryKind.operator(7)
U = Bound.UNBOUNDED


def scan(tier, table=T, start=U, end=U, version=1 << 40, batch=1000, reverse=False):
    """Drain a range into a list of RawEntry, checking the paging contract as it goes."""
    cur = RangeCursor()
    out: list[RawEntry] = []
    fn = tier.range_rev_next if reverse else tier.range_next
    for _ in range(100_000):
        b = fn(table, cur, start, end, version, batch)
        assert len(b.entries) <= batch
        out.extend(b.entries)
        if b.entries:
            assert cur.last_key == b.entries[-1].key
        if not b.has_more:
            assert cur.exhausted
            break
        assert b.entries, "has_more with an empty page"
    again = fn(table, cur, start, end, version, batch)
    assert again.entries == [] and not again.has_more
    return out


def keys(entries):
    return [e.key for e in entries]


# --- scenario 1 / 15 / 16: versioned point reads --------------------------------------


def test_get_at_before_and_after_each_version(tier):
    tier.set(1, {T: [(b"a", b"1")]})
    tier.set(2, {T: [(b"a", b"2")]})
    tier.set(3, {T: [(b"a", b"3")]})
    assert tier.get(T, b"a", 0) is None
    assert tier.get(T, b"a", 1) == b"1"
    assert tier.get(T, b"a", 2) == b"2"
    assert tier.get(T, b"a", 3) == b"3"
    assert tier.get(T, b"a", 4) == b"3"
    assert tier.get(T, b"a", 1024) == b"3"
    assert tier.get(T, b"a", (1 << 64) - 1) == b"3"
    assert tier.lookup(T, b"a", 2) == RawEntry(b"a", 2, b"2")
    assert tier.lookup(T, b"a", 0) is None
    assert tier.contains(T, b"a", 1) and not tier.contains(T, b"a", 0)
    assert tier.get(T, b"b", 5) is None and tier.lookup(T, b"b", 5) is None


def test_versions_with_gaps(tier):
    tier.set(10, {T: [(b"k", b"ten")]})
    tier.set(20, {T: [(b"k", b"twenty")]})
    assert tier.get(T, b"k", 9) is None
    assert tier.get(T, b"k", 15) == b"ten"
    assert tier.lookup(T, b"k", 19) == RawEntry(b"k", 10, b"ten")
    assert tier.get(T, b"k", 25) == b"twenty"


def test_out_of_order_set(tier):
    tier.set(3, {T: [(b"a", b"v3")]})
    tier.set(1, {T: [(b"a", b"v1")]})
    assert tier.get(T, b"a", 2) == b"v1"
    assert tier.get(T, b"a", 3) == b"v3"
    assert tier.get(T, b"a", 0) is None
    tier.set(2, {T: [(b"a", None)]})
    assert tier.get(T, b"a", 2) is None
    assert tier.lookup(T, b"a", 2) == RawEntry(b"a", 2, None)
    assert tier.get_all_versions(T, b"a") == [(3, b"v3"), (2, None), (1, b"v1")]
    assert keys(scan(tier, version=1)) == [b"a"]


def test_tombstones(tier):
    tier.set(1, {T: [(b"a", b"x"), (b"b", b"y")]})
    tier.set(2, {T: [(b"a", None)]})
    assert tier.get(T, b"a", 2) is None
    assert tier.get(T, b"a", 1) == b"x"
    assert tier.lookup(T, b"a", 2) == RawEntry(b"a", 2, None)
    assert tier.lookup(T, b"a", 2).is_tombstone
    assert not tier.contains(T, b"a", 2)
    assert scan(tier, version=2) == [RawEntry(b"a", 2, None), RawEntry(b"b", 1, b"y")]
    assert scan(tier, version=2, reverse=True) == [RawEntry(b"b", 1, b"y"), RawEntry(b"a", 2, None)]
    assert scan(tier, version=1) == [RawEntry(b"a", 1, b"x"), RawEntry(b"b", 1, b"y")]


def test_tombstone_only_key(tier):
    tier.set(4, {T: [(b"ghost", None)]})
    assert tier.lookup(T, b"ghost", 4) == RawEntry(b"ghost", 4, None)
    assert tier.lookup(T, b"ghost", 3) is None
    assert tier.get_all_versions(T, b"ghost") == [(4, None)]


def test_empty_key_and_empty_value(tier):
    tier.set(1, {T: [(b"", b"empty-key"), (b"e", b"")]})
    assert tier.get(T, b"", 1) == b"empty-key"
    assert tier.get(T, b"e", 1) == b""
    assert tier.lookup(T, b"e", 1) == RawEntry(b"e", 1, b"")
    assert tier.contains(T, b"e", 1)
    assert scan(tier) == [RawEntry(b"", 1, b"empty-key"), RawEntry(b"e", 1, b"")]
    assert keys(scan(tier, start=Bound.excluded(b""))) == [b"e"]
    assert keys(scan(tier, end=Bound.included(b""))) == [b""]


def test_one_mib_values(tier):
    big = bytes(random.Random(1).getrandbits(8) for _ in range(1 << 16)) * 16
    assert len(big) == 1 << 20
    tier.set(1, {T: [(b"big", big)]})
    tier.set(2, {T: [(b"big", big[::-1])]})
    assert tier.get(T, b"big", 1) == big
    assert tier.get(T, b"big", 2) == big[::-1]
    assert scan(tier, version=1)[0].value == big


def test_bytes_like_keys(tier):
    tier.set(1, {T: [(bytearray(b"ba"), b"1"), (memoryview(b"mv"), bytearray(b"2"))]})
    assert tier.get(T, b"ba", 1) == b"1"
    assert tier.get(T, bytearray(b"mv"), 1) == b"2"
    assert tier.get(T, memoryview(b"ba"), 1) == b"1"
    assert all(type(e.key) is bytes for e in scan(tier))
    assert all(type(e.value) is bytes for e in scan(tier))


def test_binary_keys_keep_byte_order(tier):
    ks = [b"a", b"a\x00", b"a\x00\x00", b"a\x00\x01", b"a\x01", b"a\xff", b"ab", b"b", b"\x00", b"\xff\xff"]
    tier.set(1, {T: [(k, k) for k in ks]})
    assert keys(scan(tier)) == sorted(ks)
    assert keys(scan(tier, reverse=True)) == sorted(ks, reverse=True)
    for k in ks:
        assert tier.get(T, k, 1) == k
    assert keys(scan(tier, start=Bound.included(b"a\x00"), end=Bound.excluded(b"a\x01"))) == [
        b"a\x00", b"a\x00\x00", b"a\x00\x01"]


# --- scenarios 2 / 3: scans at versions -----------------------------------------------


@pytest.fixture
def fixture_v6(tier):
    tier.set(1, {T: [(b"a", b"a1")]})
    tier.set(2, {T: [(b"b", b"b2")]})
    tier.set(3, {T: [(b"ba", b"ba3")]})
    tier.set(4, {T: [(b"bb", b"bb4")]})
    tier.set(5, {T: [(b"a", b"a5")]})
    tier.set(6, {T: [(b"c", b"c6")]})
    return tier


def test_scan_at_version(fixture_v6):
    t = fixture_v6
    assert scan(t, version=0) == []
    assert keys(scan(t, version=4)) == [b"a", b"b", b"ba", b"bb"]
    assert scan(t, version=4)[0] == RawEntry(b"a", 1, b"a1")
    assert keys(scan(t, version=6)) == [b"a", b"b", b"ba", b"bb", b"c"]
    assert scan(t, version=6)[0] == RawEntry(b"a", 5, b"a5")
    assert keys(scan(t, version=4, reverse=True)) == [b"bb", b"ba", b"b", b"a"]
    assert keys(scan(t, version=6, reverse=True)) == [b"c", b"bb", b"ba", b"b", b"a"]


def test_range_at_version(fixture_v6):
    t = fixture_v6
    assert keys(scan(t, start=Bound.included(b"b"), end=Bound.excluded(b"bb"), version=2)) == [b"b"]
    assert keys(scan(t, start=Bound.included(b"b"), end=Bound.included(b"bb"), version=3)) == [b"b", b"ba"]
    assert keys(scan(t, start=Bound.included(b"bb"), version=3)) == []
    assert keys(scan(t, start=Bound.included(b"bb"), version=4)) == [b"bb"]
    assert keys(scan(t, start=Bound.included(b"bb"), version=6)) == [b"bb", b"c"]
    assert keys(scan(t, start=Bound.excluded(b"bb"), version=6, reverse=True)) == [b"c"]


ALL_KEYS = [b"k%02d" % i for i in range(12)]


def _bounds():
    yield U
    for k in (b"k00", b"k03", b"k035", b"k11", b"k99", b""):
        yield Bound.included(k)
        yield Bound.excluded(k)


@pytest.mark.parametrize("reverse", [False, True])
def test_every_bound_kind_and_batch_size(tier, reverse):
    tier.set(1, {T: [(k, b"v" + k) for k in ALL_KEYS]})
    bounds = list(_bounds())
    for start in bounds:
        for end in bounds:
            want = [k for k in ALL_KEYS if start.admits_low(k) and end.admits_high(k)]
            if reverse:
                want.reverse()
            for batch in (1, 5, len(want) + 1):
                got = scan(tier, start=start, end=end, version=1, batch=batch, reverse=reverse)
                assert keys(got) == want, (start, end, batch)


@pytest.mark.parametrize("reverse", [False, True])
def test_batches_one_to_n_plus_one(tier, reverse):
    n = 10
    ks = [b"%03d" % i for i in range(n)]
    for i, k in enumerate(ks):
        tier.set(i + 1, {T: [(k, b"x")]})
    for batch in range(1, n + 2):
        got = scan(tier, version=n, batch=batch, reverse=reverse)
        assert keys(got) == (ks[::-1] if reverse else ks)


def test_streaming_ten_keys_batch_three(tier):
    tier.set(1, {T: [(b"%d" % i, b"v") for i in range(10)]})
    cur = RangeCursor()
    sizes = []
    while True:
        b = tier.range_next(T, cur, U, U, 1, 3)
        sizes.append(len(b.entries))
        if not b.has_more:
            break
    assert sizes[:3] == [3, 3, 3]
    assert sum(sizes) == 10 and sizes[-1] <= 3
    assert cur.exhausted
    assert tier.range_next(T, cur, U, U, 1, 3).entries == []


@pytest.mark.parametrize("reverse", [False, True])
def test_keys_newer_than_read_version_do_not_end_scan(tier, reverse):
    # Many keys visible only above the read version sit between the visible ones.
    rows_old = [(b"a", b"old-a"), (b"z", b"old-z")]
    tier.set(1, {T: rows_old})
    tier.set(5, {T: [(b"m%03d" % i, b"new") for i in range(50)]})
    for batch in (1, 2, 3, 10):
        got = scan(tier, version=1, batch=batch, reverse=reverse)
        assert keys(got) == ([b"z", b"a"] if reverse else [b"a", b"z"])


def test_multi_table_set_is_isolated_per_table(tier):
    tier.set(1, {T: [(b"k", b"multi")], S1: [(b"k", b"src")], O7: [(b"k", None)]})
    assert tier.get(T, b"k", 1) == b"multi"
    assert tier.get(S1, b"k", 1) == b"src"
    assert tier.lookup(O7, b"k", 1) == RawEntry(b"k", 1, None)
    assert tier.get(EntryKind.source(2), b"k", 1) is None
    assert set(tier.tables()) >= {T, S1, O7}
    assert keys(scan(tier, table=S1)) == [b"k"]
    assert scan(tier, table=EntryKind.operator(99)) == []


def test_set_many_keys_one_version(tier):
    rows = [(b"%05d" % i, b"%d" % i) for i in range(2000)]
    tier.set(7, {S1: rows})
    assert tier.get(S1, b"01234", 7) == b"1234"
    assert len(scan(tier, table=S1, version=7, batch=333)) == 2000
    assert scan(tier, table=S1, version=6) == []


# --- drop, get_all_versions, clear ----------------------------------------------------


def test_drop_exact_versions(tier):
    for v in (1, 5, 10, 20, 100):
        tier.set(v, {T: [(b"k", b"v%d" % v)]})
    tier.drop({T: [(b"k", 1), (b"k", 5)]})
    assert tier.get_all_versions(T, b"k") == [(100, b"v100"), (20, b"v20"), (10, b"v10")]
    assert tier.get(T, b"k", 7) is None
    assert tier.get(T, b"k", 10) == b"v10"


def test_drop_newest_keeps_older(tier):
    tier.set(1, {T: [(b"k", b"one")]})
    tier.set(2, {T: [(b"k", b"two")]})
    tier.drop({T: [(b"k", 2)]})
    assert tier.get_all_versions(T, b"k") == [(1, b"one")]
    assert tier.get(T, b"k", 5) == b"one"
    assert keys(scan(tier, version=5)) == [b"k"]


def test_drop_all_versions_then_set_again(tier):
    tier.set(1, {T: [(b"k", b"one"), (b"other", b"o")]})
    tier.set(2, {T: [(b"k", None)]})
    tier.drop({T: [(b"k", 1), (b"k", 2)]})
    assert tier.get_all_versions(T, b"k") == []
    assert tier.lookup(T, b"k", 9) is None
    assert keys(scan(tier, version=9)) == [b"other"]
    tier.set(3, {T: [(b"k", b"again")]})
    assert tier.get_all_versions(T, b"k") == [(3, b"again")]


def test_drop_missing_is_harmless(tier):
    tier.set(1, {T: [(b"k", b"one")]})
    tier.drop({T: [(b"k", 2), (b"nope", 1)], S1: [(b"x", 1)]})
    assert tier.get_all_versions(T, b"k") == [(1, b"one")]


def test_get_all_versions_newest_first(tier):
    for v in (4, 2, 9, 1):
        tier.set(v, {T: [(b"k", None if v == 2 else b"%d" % v)]})
    assert tier.get_all_versions(T, b"k") == [(9, b"9"), (4, b"4"), (2, None), (1, b"1")]
    assert tier.get_all_versions(T, b"absent") == []
    assert tier.get_all_versions(S1, b"k") == []


def test_clear_table(tier):
    tier.set(1, {T: [(b"a", b"1")], S1: [(b"a", b"s")]})
    tier.clear_table(T)
    assert tier.get(T, b"a", 1) is None
    assert scan(tier) == []
    assert tier.get(S1, b"a", 1) == b"s"
    tier.set(2, {T: [(b"b", b"2")]})
    assert keys(scan(tier)) == [b"b"]
    tier.ensure_table(EntryKind.source(5))
    tier.ensure_table(EntryKind.source(5))
    assert scan(tier, table=EntryKind.source(5)) == []


def test_iter_versions_order(tier):
    tier.set(1, {T: [(b"b", b"b1"), (b"a", b"a1")]})
    tier.set(3, {T: [(b"a", None)]})
    tier.set(2, {T: [(b"a", b"a2")]})
    got = list(tier.iter_versions(T))
    assert got == [RawEntry(b"a", 3, None), RawEntry(b"a", 2, b"a2"), RawEntry(b"a", 1, b"a1"),
                   RawEntry(b"b", 1, b"b1")]
    assert list(tier.iter_versions(T, start=b"aa")) == [RawEntry(b"b", 1, b"b1")]
    assert list(tier.iter_versions(S1)) == []


def test_stats_counts(tier):
    tier.set(1, {T: [(b"a", b"x" * 100), (b"b", b"y")]})
    tier.set(2, {T: [(b"a", None)]})
    st = tier.stats()
    assert st["keys"] == 2
    assert st["versions"] == 3
    assert st["bytes"] >= 101
    tier.drop({T: [(b"a", 1), (b"a", 2)]})
    st2 = tier.stats()
    assert st2["keys"] == 1 and st2["versions"] == 1
    assert st2["bytes"] < st["bytes"]


def test_check_passes_on_healthy_tier(tier):
    tier.set(1, {T: [(b"a", b"1"), (b"b", None)]})
    tier.drop({T: [(b"a", 1)]})
    tier.check()


def test_use_after_close_raises(factory, tmp_path):
    t = factory.make(tmp_path)
    t.set(1, {T: [(b"a", b"1")]})
    t.close()
    with pytest.raises(ClosedError):
        t.get(T, b"a", 1)
    with pytest.raises(ClosedError):
        t.set(2, {T: [(b"a", b"2")]})
    assert issubclass(ClosedError, EngineError)


def test_reopen_keeps_data(persistent_factory, tmp_path):
    factory = persistent_factory
    t = factory.make(tmp_path)
    t.set(1, {T: [(b"a", b"1")], S1: [(b"s", b"x")]})
    t.set(2, {T: [(b"a", None)]})
    t.drop({S1: [(b"s", 1)]})
    t.close()
    t = factory.make(tmp_path)
    try:
        assert t.get(T, b"a", 1) == b"1"
        assert t.lookup(T, b"a", 2) == RawEntry(b"a", 2, None)
        assert t.get_all_versions(S1, b"s") == []
        assert T in t.tables()
        t.check()
    finally:
        t.close()


# --- a randomized comparison against a dict model -------------------------------------


@pytest.mark.parametrize("seed", range(4))
def test_random_against_model(tier, seed):
    rng = random.Random(seed)
    model: dict[tuple[EntryKind, bytes], dict[int, bytes | None]] = {}
    tables = [T, S1]
    universe = [bytes([rng.randrange(3) for _ in range(rng.randrange(4))]) for _ in range(30)]
    versions = list(range(1, 41))
    rng.shuffle(versions)
    for v in versions:
        batches: dict[EntryKind, list] = {}
        for table in tables:
            ks = {rng.choice(universe) for _ in range(rng.randrange(1, 5))}
            rows = [(k, None if rng.random() < 0.2 else b"%d" % v) for k in ks]
            batches[table] = rows
            for k, val in rows:
                model.setdefault((table, k), {})[v] = val
        tier.set(v, batches)
        if rng.random() < 0.2 and model:
            (table, k), chain = rng.choice(sorted(model.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])))
            dv = rng.choice(sorted(chain))
            tier.drop({table: [(k, dv)]})
            del chain[dv]
            if not chain:
                del model[(table, k)]
    for table in tables:
        for read in (0, 5, 17, 40, 99):
            want = []
            for (tb, k), chain in sorted(model.items(), key=lambda kv: kv[0][1]):
                if tb != table:
                    continue
                vis = [v for v in chain if v <= read]
                if vis:
                    want.append(RawEntry(k, max(vis), chain[max(vis)]))
                got_lookup = tier.lookup(table, k, read)
                assert got_lookup == (RawEntry(k, max(vis), chain[max(vis)]) if vis else None)
            for batch in (1, 4, 100):
                assert scan(tier, table=table, version=read, batch=batch) == want
                assert scan(tier, table=table, version=read, batch=batch, reverse=True) == want[::-1]
        for (tb, k), chain in model.items():
            if tb == table:
                assert tier.get_all_versions(table, k) == sorted(chain.items(), reverse=True)
    tier.check()
