"""Bad input is refused with the documented error, and never changes what is stored.

Each test records the store's full visible state (every version of every key, pins, the
store version), provokes the error, and checks the state is identical afterwards; for the
durable store also after a reopen.
"""

from __future__ import annotations

import os

import pytest

import engine
from engine import Bound, EntryKind, RangeCursor, Retention
from engine.errors import (
    ClosedError,
    CorruptionError,
    EngineError,
    FormatError,
    InvalidKeyError,
    InvalidVersionError,
    TransactionClosed,
)

T = EntryKind.MULTI
U = EntryKind.source(1)
TABLES = (T, U)
KEYS = [b"a", b"b", b"c", b""]


def seed(store):
    with store.begin() as tx:
        tx.set(T, b"a", b"1")
        tx.set(T, b"b", b"1")
        tx.set(U, b"c", b"u1")
    with store.begin() as tx:
        tx.set(T, b"a", b"2")
        tx.remove(T, b"b")
        tx.set(T, b"", b"empty")
    store.pin(1, "one")


def state(store):
    """Everything a reader can observe."""
    out = {"version": store.version, "pins": store.pins()}
    for t in TABLES:
        out[str(t)] = {
            "history": {k: store.history(t, k) for k in KEYS},
            "scans": [list(store.range(t, version=v)) for v in range(store.version + 1)],
        }
    return out


@pytest.fixture(params=["memory", "durable"])
def env(request, tmp_path):
    """(store, reopen) where reopen() closes and reopens (durable) or returns the same store."""
    path = tmp_path / "db"
    holder = {}
    if request.param == "memory":
        holder["s"] = engine.open(None)

        def reopen():
            return holder["s"]
    else:
        holder["s"] = engine.open(path, layout="memory")

        def reopen():
            holder["s"].close()
            holder["s"] = engine.open(path, layout="memory")
            return holder["s"]
    seed(holder["s"])
    yield holder["s"], reopen
    holder["s"].close()


def unchanged(env, before):
    store, reopen = env
    assert state(store) == before
    store = reopen()
    assert state(store) == before
    # and the store still works
    with store.begin() as tx:
        tx.set(T, b"after", b"ok")
    assert tx.version == before["version"] + 1
    assert store.get(T, b"after") == b"ok"


BAD_KEYS = ["a", 1, None, 1.5, [b"a"], object()]
BAD_VALUES = ["a", 1, 2.5, [b"a"], {"a": 1}]  # None is not a value: remove() writes tombstones
BAD_TABLES = ["multi", 0, None, b"multi", (0, 0)]


def test_invalid_key_error_is_a_type_error():
    assert issubclass(InvalidKeyError, TypeError)
    assert issubclass(InvalidKeyError, EngineError)
    assert issubclass(InvalidVersionError, ValueError)


@pytest.mark.parametrize("bad", BAD_KEYS, ids=repr)
def test_bad_keys(env, bad):
    store, _ = env
    before = state(store)
    tx = store.begin()
    tx.set(T, b"pending", b"p")
    calls = [lambda: tx.set(T, bad, b"v"), lambda: tx.remove(T, bad), lambda: tx.get(T, bad),
             lambda: tx.drop(T, bad), lambda: store.get(T, bad), lambda: store.contains(T, bad),
             lambda: store.history(T, bad), lambda: Bound.included(bad), lambda: Bound.excluded(bad)]
    if bad is not None:  # None as a range bound or prefix means "unbounded"
        calls += [lambda: tx.range(T, bad, None), lambda: tx.range(T, None, bad),
                  lambda: tx.range(T, prefix=bad), lambda: store.range(T, bad),
                  lambda: store.range(T, None, bad), lambda: store.range(T, prefix=bad),
                  lambda: store.range_next(T, RangeCursor(), bad, None, None, 10),
                  lambda: store.range_next(T, RangeCursor(), None, bad, None, 10)]
    for call in calls:
        with pytest.raises(InvalidKeyError):
            call()
    assert tx.get(T, b"pending") == b"p"
    tx.rollback()
    unchanged(env, before)


@pytest.mark.parametrize("bad", BAD_VALUES, ids=repr)
def test_bad_values(env, bad):
    store, _ = env
    before = state(store)
    with pytest.raises(InvalidKeyError):
        with store.begin() as tx:
            tx.set(T, b"a", b"fine")
            tx.set(T, b"z", bad)
    assert tx.closed  # the exception rolled the whole transaction back
    unchanged(env, before)


def test_bad_value_leaves_transaction_usable_and_unpolluted(env):
    store, _ = env
    before = state(store)
    tx = store.begin()
    tx.set(T, b"z", b"good")
    with pytest.raises(InvalidKeyError):
        tx.set(T, b"z", "text")  # must not replace the good pending write
    with pytest.raises(InvalidKeyError):
        tx.set(T, b"y", None)    # None is not a value (use remove)
    assert tx.get(T, b"z") == b"good"
    assert tx.get(T, b"y") is None
    v = tx.commit()
    assert v == before["version"] + 1
    assert store.get(T, b"z") == b"good"
    assert store.history(T, b"y") == []
    assert state(store)[str(T)]["scans"][: before["version"] + 1] == before[str(T)]["scans"]


@pytest.mark.parametrize("bad", BAD_TABLES, ids=repr)
def test_bad_tables(env, bad):
    store, _ = env
    before = state(store)
    tx = store.begin()
    for call in (lambda: tx.set(bad, b"a", b"v"), lambda: tx.remove(bad, b"a"), lambda: tx.get(bad, b"a"),
                 lambda: tx.range(bad)):
        with pytest.raises(InvalidKeyError):
            call()
    tx.rollback()
    for call in (lambda: store.get(bad, b"a"), lambda: store.history(bad, b"a"), lambda: store.range(bad),
                 lambda: store.range_next(bad, RangeCursor(), None, None, None, 10),
                 lambda: store.set_table_policy(bad, keep_last_versions=1)):
        with pytest.raises(InvalidKeyError):
            call()
    unchanged(env, before)


def test_entry_kind_constructors_refuse_bad_ids():
    for bad in (-1, 1.0, "3", True, 2**64):
        with pytest.raises(ValueError):
            EntryKind.source(bad)
        with pytest.raises(ValueError):
            EntryKind.operator(bad)
    for text in ("", "Multi", "source:", "source:-1", "source:01", "operator:x", "table:1", "source:1:2"):
        with pytest.raises(ValueError):
            EntryKind.parse(text)
    assert EntryKind.parse("source:42") == EntryKind.source(42)


@pytest.mark.parametrize("bad", [-1, -(2**70), 2**64], ids=repr)
def test_out_of_range_versions(env, bad):
    store, _ = env
    before = state(store)
    for call in (lambda: store.get(T, b"a", version=bad), lambda: store.range(T, version=bad),
                 lambda: store.range_next(T, RangeCursor(), None, None, bad, 10),
                 lambda: store.snapshot(bad), lambda: store.pin(bad, "bad"),
                 lambda: store.commit_time(bad), lambda: store.flush(bad)):
        with pytest.raises(InvalidVersionError):
            call()
    unchanged(env, before)


@pytest.mark.parametrize("bad", [1.0, 0.5, "1", True, None], ids=repr)
def test_non_int_versions(env, bad):
    store, _ = env
    before = state(store)
    calls = [lambda: store.snapshot(bad) if bad is not None else store.pin(bad, "x"),
             lambda: store.pin(bad, "bad")]
    if bad is not None:  # None means "latest" for reads
        calls += [lambda: store.get(T, b"a", version=bad), lambda: store.range(T, version=bad),
                  lambda: store.range_next(T, RangeCursor(), None, None, bad, 10),
                  lambda: store.commit_time(bad)]
    for call in calls:
        with pytest.raises(InvalidKeyError):
            call()
    assert store.pins() == before["pins"]
    unchanged(env, before)


def test_bad_batch_sizes_cursor_and_pin_names(env):
    store, _ = env
    before = state(store)
    for bs in (0, -1):
        with pytest.raises(ValueError):
            store.range(T, batch_size=bs)
        with pytest.raises(ValueError):
            store.range_next(T, RangeCursor(), None, None, None, bs)
    with pytest.raises(InvalidKeyError):
        store.range_next(T, "cursor", None, None, None, 10)
    for name in ("", None, 3, b"name"):
        with pytest.raises(InvalidKeyError):
            store.pin(1, name)
        with pytest.raises(InvalidKeyError):
            store.unpin(name)
    tx = store.begin()
    for bad in (-1, 1.5, "2"):
        with pytest.raises(ValueError):
            tx.drop(T, b"a", up_to_version=bad)
        with pytest.raises(ValueError):
            tx.drop(T, b"a", keep_last_versions=bad)
    tx.rollback()
    with pytest.raises(ValueError):
        store.set_table_policy(T, keep_last_versions=0)
    assert store.table_policies() == {}
    unchanged(env, before)


def test_unknown_isolation_and_durability(env):
    store, _ = env
    before = state(store)
    for iso in ("SERIALIZABLE", "read committed", "", None, 1):
        with pytest.raises(ValueError):
            store.begin(isolation=iso)
    for dur in ("fsync", "", "NONE", 0):
        with pytest.raises(ValueError):
            store.begin(durability=dur)
    assert store.stats()["read_points"] == 0  # refused begins hold no read point
    unchanged(env, before)


def test_bad_open_arguments_create_nothing(tmp_path):
    path = tmp_path / "never"
    for kwargs in ({"durability": "fast"}, {"durability": None}, {"layout": "bogus"},
                   {"layout": 42}, {"retention": 5}, {"layout": "memory:nope=1"},
                   {"layout": "memory", "durability": "SYNC"}):
        with pytest.raises((ValueError, TypeError)):
            engine.open(path, **kwargs)
        assert not path.exists(), kwargs
    with pytest.raises(ValueError):
        engine.open(None, durability="fast")
    with pytest.raises(ValueError):
        engine.open(None, layout="hot+warm")  # needs a path
    with pytest.raises(TypeError):
        engine.open(None, retention="forever")
    assert isinstance(engine.open(None, retention=Retention()), engine.Store)


def test_use_after_close(env):
    store, reopen = env
    before = state(store)
    tx = store.begin()
    tx.set(T, b"a", b"lost")
    snap = store.snapshot()
    it = store.range(T)
    store.close()
    calls = [lambda: store.get(T, b"a"), lambda: store.range(T), lambda: store.begin(),
             lambda: store.snapshot(), lambda: store.history(T, b"a"), lambda: store.pins(),
             lambda: store.pin(1, "x"), lambda: store.unpin("one"),
             lambda: store.range_next(T, RangeCursor(), None, None, None, 10),
             store.flush, store.check, store.stats, store.gc, store.compact, store.demote,
             lambda: store.version_at(0.0), lambda: store.commit_time(1), tx.commit,
             lambda: snap.get(T, b"a"), lambda: list(it)]
    for call in calls:
        with pytest.raises(ClosedError):
            call()
    assert issubclass(ClosedError, RuntimeError)
    if store.path is None:
        return  # a closed memory store has nothing left to compare
    store = reopen()
    assert state(store) == before


def test_used_transaction(env):
    store, _ = env
    before = state(store)
    tx = store.begin()
    tx.set(T, b"new", b"1")
    v = tx.commit()
    after = state(store)
    calls = [tx.commit, tx.rollback, lambda: tx.set(T, b"x", b"1"), lambda: tx.remove(T, b"a"),
             lambda: tx.get(T, b"a"), lambda: tx.range(T), lambda: tx.drop(T, b"a")]
    for call in calls:
        with pytest.raises(TransactionClosed):
            call()
    assert tx.version == v
    rolled = store.begin()
    rolled.set(T, b"gone", b"1")
    rolled.rollback()
    for call in (rolled.commit, rolled.rollback, lambda: rolled.set(T, b"gone", b"2")):
        with pytest.raises(TransactionClosed):
            call()
    assert state(store) == after
    assert after["version"] == before["version"] + 1


def test_non_tierdb_directory_is_refused_and_untouched(tmp_path):
    d = tmp_path / "notastore"
    d.mkdir()
    (d / "data.txt").write_bytes(b"precious")
    (d / "sub").mkdir()
    with pytest.raises(FormatError):
        engine.open(d, layout="memory")
    with pytest.raises(FormatError):
        engine.open(d)
    assert sorted(os.listdir(d)) == ["data.txt", "sub"]
    assert (d / "data.txt").read_bytes() == b"precious"
    f = tmp_path / "afile"
    f.write_bytes(b"x")
    with pytest.raises(FormatError):
        engine.open(f, layout="memory")
    assert f.read_bytes() == b"x"
    assert issubclass(FormatError, CorruptionError)


def test_foreign_or_damaged_marker_is_refused(tmp_path):
    path = tmp_path / "db"
    s = engine.open(path, layout="memory")
    seed(s)
    before = state(s)
    s.close()
    marker = path / "TIERDB"
    good = marker.read_bytes()
    for bad in (b"", b"NOTTIER!" + good[8:], good[:-1] + bytes([good[-1] ^ 1]), good[:10]):
        marker.write_bytes(bad)
        with pytest.raises(CorruptionError):  # FormatError is one
            engine.open(path)
    marker.write_bytes(good)
    s = engine.open(path)
    assert state(s) == before
    s.close()


def test_transaction_caps(tmp_path):
    from engine.errors import TransactionTooLarge

    s = engine.open(None, max_txn_entries=3, max_txn_bytes=100)
    try:
        seed(s)
        before = state(s)
        tx = s.begin()
        tx.set(T, b"k1", b"x" * 10)
        tx.set(T, b"k2", b"x" * 10)
        tx.remove(T, b"k3")
        with pytest.raises(TransactionTooLarge):
            tx.set(T, b"k4", b"x")            # a 4th entry
        with pytest.raises(TransactionTooLarge):
            tx.remove(T, b"k4")
        tx.set(T, b"k1", b"y" * 40)           # overwrites do not add entries
        with pytest.raises(TransactionTooLarge):
            tx.set(T, b"k2", b"z" * 80)       # 2+40 + 2+80 + 2 bytes > 100
        assert tx.get(T, b"k2") == b"x" * 10  # the refused write left the old one in place
        tx.set(T, b"k2", b"z" * 50)           # 42 + 52 + 2 = 96 fits
        assert issubclass(TransactionTooLarge, ValueError)
        v = tx.commit()
        assert s.get(T, b"k1") == b"y" * 40 and s.get(T, b"k2") == b"z" * 50
        assert s.history(T, b"k4") == []
        assert state(s)[str(T)]["scans"][: before["version"] + 1] == before[str(T)]["scans"]
        assert v == before["version"] + 1
    finally:
        s.close()
