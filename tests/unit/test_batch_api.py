"""Batch fast paths (store.get_many, tx.set_many) and the hot tier's write path.

Each batch call must answer exactly as the single calls it stands for, on every layout.
"""

from __future__ import annotations

import random

import pytest

import engine
from engine import EntryKind
from engine.errors import (FutureVersionError, InvalidKeyError, TransactionClosed,
                           TransactionTooLarge)
from engine.tiers import HotTier

T = EntryKind.source(1)
U = EntryKind.source(2)
LAYOUTS = ["memory", "warm", "hot+warm", "hot+warm+cold", "warm+cold"]


@pytest.fixture(params=LAYOUTS)
def store(request, tmp_path):
    s = engine.open(tmp_path / "db", layout=request.param)
    yield s
    s.close()


def _fill(store: engine.Store, n: int = 300, seed: int = 7) -> tuple[dict[int, dict[bytes, bytes | None]], list[int]]:
    """Three passes of writes/removes; returns the model per version and the versions."""
    rng = random.Random(seed)
    model: dict[bytes, bytes | None] = {}
    states: dict[int, dict[bytes, bytes | None]] = {}
    versions = []
    for r in range(3):
        for b in range(0, n, 50):
            with store.begin() as tx:
                for i in range(b, b + 50):
                    k = b"k%05d" % i
                    if r and rng.random() < 0.3:
                        tx.remove(T, k)
                        model[k] = None
                    elif not r or rng.random() < 0.5:
                        v = b"v%d-%d" % (r, i)
                        tx.set(T, k, v)
                        model[k] = v
            states[tx.version] = dict(model)
            versions.append(tx.version)
        if r == 1:
            store.flush()
            store.demote()
    return states, versions


def test_get_many_matches_get_at_every_version(store):
    states, versions = _fill(store)
    keys = [b"k%05d" % i for i in range(0, 320, 3)] + [b"absent", b"k00001", b"k00001"]
    for v in versions[::4] + [None]:
        want = [store.get(T, k, version=v) for k in keys]
        assert store.get_many(T, keys, version=v) == want
        model = states[v if v is not None else versions[-1]]
        assert want == [model.get(k) for k in keys]


def test_get_many_bad_input_and_versions(store):
    with store.begin() as tx:
        tx.set(T, b"a", b"1")
    assert store.get_many(T, [bytearray(b"a"), memoryview(b"a")]) == [b"1", b"1"]
    assert store.get_many(T, []) == []
    assert store.get_many(U, [b"a"]) == [None]
    with pytest.raises(InvalidKeyError):
        store.get_many(T, [b"a", "text"])
    with pytest.raises(InvalidKeyError):
        store.get_many("not a table", [b"a"])  # type: ignore[arg-type]
    with pytest.raises(InvalidKeyError):
        store.get_many(T, 5)
    with pytest.raises(FutureVersionError):
        store.get_many(T, [b"a"], version=store.version + 1)


def test_set_many_is_the_same_as_set_in_order(store):
    pairs = [(b"x%03d" % i, b"v%d" % i) for i in range(200)] + [(b"x005", b"last")]
    with store.begin() as tx:
        tx.set(T, b"x007", b"before")          # overwritten by the batch
        tx.set_many(T, pairs)
        tx.set(U, b"other", b"table")          # a second table in the same commit
        assert tx.get(T, b"x005") == b"last"
        assert [k for k, _ in tx.range(T, b"x000", b"x003")] == [b"x000", b"x001", b"x002"]
    assert store.get(T, b"x005") == b"last"
    assert store.get(T, b"x007") == b"v7"
    assert store.get(U, b"other") == b"table"
    assert len(list(store.range(T))) == 200
    with store.begin() as tx:
        tx.set_many(T, {b"x001": b"m1"})
        tx.set_many(T, [(bytearray(b"x002"), memoryview(b"m2"))])
    assert store.get_many(T, [b"x001", b"x002", b"x003"]) == [b"m1", b"m2", b"v3"]
    assert store.history(T, b"x001")[0] == (tx.version, b"m1")


def test_set_many_validates_everything_first(store):
    with store.begin() as tx:
        tx.set(T, b"keep", b"1")
        for bad in ([(b"ok", b"v"), ("text", b"v")], [(b"ok", b"v"), (b"k", None)],
                    [(b"ok", b"v"), (b"too", b"many", b"parts")], [b"notapair"], 42):
            with pytest.raises(InvalidKeyError):
                tx.set_many(T, bad)  # type: ignore[arg-type]
        with pytest.raises(InvalidKeyError):
            tx.set_many("nope", [(b"a", b"b")])  # type: ignore[arg-type]
        assert tx.get(T, b"ok") is None
    assert store.get(T, b"ok") is None and store.get(T, b"keep") == b"1"
    with pytest.raises(TransactionClosed):
        tx.set_many(T, [(b"a", b"b")])


def test_set_many_respects_the_transaction_caps(tmp_path):
    s = engine.open(None)
    s.max_txn_entries = 10
    with s.begin() as tx:
        tx.set_many(T, [(b"%d" % i, b"v") for i in range(8)])
        with pytest.raises(TransactionTooLarge):
            tx.set_many(T, [(b"%d" % i, b"v") for i in range(5, 13)])  # 5 new -> 13 > 10
        tx.set_many(T, [(b"%d" % i, b"w") for i in range(6, 10)])    # 2 new -> 10
        tx.rollback()
    s.close()


def test_hot_set_is_atomic_on_bad_input():
    """Issue 12: a bad row in any table leaves every table as it was."""
    h = HotTier()
    h.set(1, {T: [(b"a", b"1")]})
    with pytest.raises(InvalidKeyError):
        h.set(2, {T: [(b"ok", b"v")], U: [("text-key", b"v")]})  # type: ignore[list-item]
    with pytest.raises(InvalidKeyError):
        h.set(2, {T: [(b"ok", b"v"), (b"bad", 5)]})  # type: ignore[list-item]
    assert h.get(T, b"ok", 10) is None and h.get(U, b"text-key", 10) is None
    assert h.get_all_versions(T, b"a") == [(1, b"1")]
    h.check()


def test_hot_index_survives_removal_and_rewrites():
    """Keys removed by flushes and written again keep one index entry (lazy index)."""
    rng = random.Random(3)
    h = HotTier()
    model: dict[bytes, dict[int, bytes | None]] = {}
    v = 0
    for step in range(60):
        v += 1
        rows = [(b"k%04d" % rng.randrange(3000), None if rng.random() < 0.1 else b"%d" % v)
                for _ in range(rng.randrange(1, 200))]
        h.set(v, {T: rows})
        for k, val in rows:
            model.setdefault(k, {})[v] = val
        if step % 7 == 6:  # a flush: evict everything <= some watermark
            w = v - rng.randrange(3)
            keys = [k for k in model]
            h.drop_through(T, keys, w)
            for k in keys:
                model[k] = {x: y for x, y in model[k].items() if x > w}
                if not model[k]:
                    del model[k]
        h.check()
        page = h.range_next(T, engine.RangeCursor(), engine.Bound.UNBOUNDED, engine.Bound.UNBOUNDED,
                            v, 10_000)
        assert [e.key for e in page.entries] == sorted(model)
        for e in page.entries:
            assert e.version == max(model[e.key]) and e.value == model[e.key][e.version]
    assert sorted({e.key for e in h.iter_versions(T)}) == sorted(model)
