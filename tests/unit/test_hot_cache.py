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
