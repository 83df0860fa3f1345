"""The hot tier's clean copies: a bounded cache of flushed keys' newest versions.

Every answer must be the one warm (and cold) would give, whatever happens to the key below.
"""

from __future__ import annotations

import random

import pytest

import engine
from engine import EntryKind

T = EntryKind.source(1)


def _open(path, layout="hot+warm+cold", **knobs):
    return engine.open(path, layout=engine.Layout.parse(layout, background=False, **knobs))


@pytest.mark.parametrize("layout", ["hot+warm", "hot+warm+cold"])
def test_latest_reads_after_a_flush_are_served_from_hot(tmp_path, layout):
    s = _open(tmp_path / "db", layout)
    with s.begin() as tx:
        tx.set_many(T, [(b"k%03d" % i, b"v%d" % i) for i in range(100)])
    v1 = tx.version
    s.flush()
    hot = s._router.tiers[0].stats()
    assert hot["keys"] == 0 and hot["clean_keys"] == 100
    served = list(s._router.reads_served)
    assert [s.get(T, b"k%03d" % i) for i in range(100)] == [b"v%d" % i for i in range(100)]
    assert s._router.reads_served[0] - served[0] == 100          # hot answered every one
    with s.begin() as tx:
        tx.set(T, b"k000", b"new")
        tx.remove(T, b"k001")
    assert s.get(T, b"k000") == b"new" and s.get(T, b"k001") is None
    assert s.get(T, b"k000", version=v1) == b"v0" and s.get(T, b"k001", version=v1) == b"v1"
    s.flush()
    s.demote()
    assert s.get_many(T, [b"k000", b"k001", b"k002"]) == [b"new", None, b"v2"]
    assert s.get_many(T, [b"k000", b"k001", b"k002"], version=v1) == [b"v0", b"v1", b"v2"]
    s.check()
    s.close()


def test_forced_drop_of_the_newest_version_is_not_answered_from_the_cache(tmp_path):
    s = _open(tmp_path / "db")
    with s.begin() as tx:
        tx.set(T, b"k", b"old")
    with s.begin() as tx:
        tx.set(T, b"k", b"new")
    v2 = tx.version
    s.flush()
    assert s.get(T, b"k") == b"new"
    with s.begin() as tx:
        tx.drop(T, b"k", up_to_version=v2 + 1, keep_last_versions=1, force=True)  # keeps "new"
    assert s.get(T, b"k") == b"new"
    with s.begin() as tx:
        tx.drop(T, b"k", up_to_version=v2 + 1, force=True)                      # removes both
    assert s.get(T, b"k") is None and s.history(T, b"k") == []
    s.close()


def test_the_cache_stays_within_its_budget_and_answers_like_warm(tmp_path):
    rng = random.Random(5)
    s = _open(tmp_path / "db", hot_cache_bytes=20_000)
    model: dict[bytes, bytes | None] = {}
    for r in range(30):
        with s.begin() as tx:
            for _ in range(40):
                k = b"key%04d" % rng.randrange(400)
                if rng.random() < 0.2:
                    tx.remove(T, k)
                    model[k] = None
                else:
                    model[k] = b"%d" % rng.randrange(10**9)
                    tx.set(T, k, model[k])
        if r % 3 == 2:
            s.flush()
        if r % 9 == 8:
            s.demote()
        hot = s._router.tiers[0]
        assert hot.stats()["clean_bytes"] <= 20_000
        hot.check()
        keys = sorted(model)
        assert s.get_many(T, keys) == [model[k] for k in keys]
        assert [s.get(T, k) for k in keys] == [model[k] for k in keys]
    s.close()


def test_cache_off_and_memory_layout(tmp_path):
    s = _open(tmp_path / "db", hot_cache_bytes=0)
    with s.begin() as tx:
        tx.set(T, b"a", b"1")
    s.flush()
    assert s._router.tiers[0].stats()["clean_keys"] == 0
    assert s.get(T, b"a") == b"1"
    s.close()
    with pytest.raises(ValueError):
        engine.Layout.parse("hot+warm", hot_cache_bytes=-1)
    assert engine.Layout.parse("hot+warm:hot_cache_bytes=1MiB").hot_cache_bytes == 1 << 20


def test_a_partial_flush_retires_the_older_clean_copy():
    """A key flushed once (clean copy v1), written twice more (v5, v9), then flushed up to
    v6 (v5 to warm, v9 stays): a read at v7 must fall through to warm (v5), not answer the
    stale clean copy v1 (found by the GC-with-readers test as a snapshot reading an older
    value than before)."""
    from engine.tiers import HotTier

    missing = object()
    h = HotTier(clean_budget=1 << 20)
    h.set(1, {T: [(b"k", b"v1")]})
    h.drop_through(T, [b"k"], 1)
    assert h.get_or(T, b"k", 3, missing) == b"v1"
    h.set(5, {T: [(b"k", b"v5")]})
    h.set(9, {T: [(b"k", b"v9")]})
    h.drop_through(T, [b"k"], 6)
    assert h.get_or(T, b"k", 7, missing) is missing
    assert h.lookup(T, b"k", 7) is None
    assert h.get_or_many(T, [b"k"], 7, missing) == [missing]
    assert h.lookup_many(T, [b"k"], 7) == [None]
    assert h.get_or(T, b"k", 9, missing) == b"v9"
    h.check()


def test_old_reads_of_settled_keys_skip_warm_and_answer_like_it(tmp_path):
    """After flush + "history" demotion, a read below a key's clean copy goes straight to cold
    (warm holds nothing older): the answers equal a store without clean copies."""
    s = _open(tmp_path / "db")
    ref = _open(tmp_path / "ref", hot_cache_bytes=0)
    keys = [b"k%03d" % i for i in range(60)]
    for r in range(3):
        for db in (s, ref):
            with db.begin() as tx:
                for i, k in enumerate(keys):
                    if r == 0 or i % (r + 1) == 0:
                        tx.set(T, k, b"v%d.%d" % (r, i))
                    elif r == 2 and i % 5 == 1:
                        tx.remove(T, k)
    for db in (s, ref):
        db.flush()
        db.demote()
    warm = s._router.tiers[1]
    asked = []
    lookups = s._router._chain_all[0]
    warm_get_or = lookups[1]

    def counted_get_or(table, key, version, missing):
        asked.append(key)
        return warm_get_or(table, key, version, missing)

    lookups[1] = counted_get_or
    many = warm.get_or_many if hasattr(warm, "get_or_many") else warm.lookup_many
    name = "get_or_many" if hasattr(warm, "get_or_many") else "lookup_many"

    def counted_many(table, ks, version, *rest):
        asked.extend(ks)
        return many(table, ks, version, *rest)

    setattr(warm, name, counted_many)
    skipped = 0
    for version in range(1, s.version + 1):
        want = [ref.get(T, k, version) for k in keys]
        assert [s.get(T, k, version) for k in keys] == want
        assert s.get_many(T, keys, version) == want
        skipped += sum(1 for k in keys if ref.history(T, k)[0][0] > version)
    # Reads at or above a key's newest version are answered by its clean copy; reads below
    # it (a third of them here) skip warm, which holds nothing older: warm is never asked.
    assert skipped > 0
    assert asked == []
    s.close()
    ref.close()


def test_a_flush_after_the_demotion_does_not_hide_older_warm_versions(tmp_path):
    """A version committed before a demotion but flushed after it: the key's previous warm
    version was not moved to cold, so reads below the new clean copy must still ask warm."""
    s = _open(tmp_path / "db")
    with s.begin() as tx:
        tx.set(T, b"k", b"one")
    v1 = tx.version
    s.flush()
    with s.begin() as tx:
        tx.set(T, b"k", b"two")
    s.demote()          # cutoff covers "two", which is still in hot: "one" stays in warm
    s.flush()           # "two" goes to warm; its clean copy is the key's newest version
    assert s._router.tiers[0].stats()["clean_keys"] == 1
    assert s.get(T, b"k", version=v1) == b"one"
    assert s.get_many(T, [b"k"], version=v1) == [b"one"]
    s.demote()          # now "one" goes to cold, and the skip applies
    assert s.get(T, b"k", version=v1) == b"one"
    assert s.get_many(T, [b"k"], version=v1) == [b"one"]
    s.check()
    s.close()
