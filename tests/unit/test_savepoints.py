"""Savepoints: tx.savepoint(), tx.rollback_to(sp), tx.release(sp) (issue 12)."""

from __future__ import annotations

import pytest

import engine
from engine import EntryKind, SavepointError, TransactionClosed

T = EntryKind.source(1)
U = EntryKind.source(2)


@pytest.fixture(params=["memory", "hot+warm+cold"])
def store(request, tmp_path):
    s = engine.open(tmp_path / "db", layout=request.param)
    with s.begin() as tx:
        tx.set(T, b"a", b"stored")
    yield s
    s.close()


def test_rollback_to_restores_reads_ranges_and_the_write_set(store):
    with store.begin() as tx:
        tx.set(T, b"b", b"1")
        sp = tx.savepoint()
        tx.set(T, b"b", b"2")
        tx.set(T, b"c", b"3")
        tx.remove(T, b"a")
        tx.set(U, b"u", b"x")
        assert tx.get(T, b"a") is None and dict(tx.range(T)) == {b"b": b"2", b"c": b"3"}
        tx.rollback_to(sp)
        assert tx.get(T, b"a") == b"stored" and tx.get(T, b"b") == b"1" and tx.get(T, b"c") is None
        assert dict(tx.range(T)) == {b"a": b"stored", b"b": b"1"}
        assert tx.get(U, b"u") is None
        tx.set(T, b"d", b"4")                     # the savepoint stays usable
        tx.rollback_to(sp)
        assert tx.get(T, b"d") is None
    assert dict(store.range(T)) == {b"a": b"stored", b"b": b"1"}
    assert store.get(U, b"u") is None
    assert store.history(T, b"c") == []


def test_nested_savepoints_and_release(store):
    with store.begin() as tx:
        sp1 = tx.savepoint()
        tx.set(T, b"x", b"1")
        sp2 = tx.savepoint()
        tx.set(T, b"y", b"2")
        sp3 = tx.savepoint()
        tx.set(T, b"z", b"3")
        tx.rollback_to(sp2)                       # releases sp3
        assert tx.get(T, b"x") == b"1" and tx.get(T, b"y") is None and tx.get(T, b"z") is None
        with pytest.raises(SavepointError):
            tx.rollback_to(sp3)
        tx.set(T, b"w", b"4")
        tx.release(sp2)                           # keeps the writes
        with pytest.raises(SavepointError):
            tx.rollback_to(sp2)
        assert tx.get(T, b"w") == b"4"
        tx.release(sp1)
        with pytest.raises(SavepointError):
            tx.release(sp1)
    assert dict(store.range(T)) == {b"a": b"stored", b"w": b"4", b"x": b"1"}


def test_savepoint_of_another_transaction_or_a_closed_one(store):
    tx1, tx2 = store.begin(), store.begin()
    sp = tx1.savepoint()
    with pytest.raises(SavepointError):
        tx2.rollback_to(sp)
    with pytest.raises(SavepointError):
        tx2.release(sp)
    with pytest.raises(SavepointError):
        tx2.rollback_to("not a savepoint")  # type: ignore[arg-type]
    assert isinstance(SavepointError("x"), ValueError)
    tx2.rollback()
    tx1.set(T, b"k", b"v")
    tx1.commit()
    with pytest.raises(TransactionClosed):
        tx1.rollback_to(sp)
    with pytest.raises(TransactionClosed):
        tx1.savepoint()
    assert store.get(T, b"k") == b"v"


def test_rollback_to_undoes_drops_and_keeps_byte_accounting(store):
    store.max_txn_bytes = 1000
    with store.begin() as tx:
        tx.set(T, b"k", b"x" * 500)
        sp = tx.savepoint()
        tx.set(T, b"k2", b"y" * 400)
        tx.drop(T, b"a", force=True)
        tx.rollback_to(sp)
        tx.set(T, b"k3", b"z" * 400)              # fits again: the 400 bytes went back
    assert store.get(T, b"a") == b"stored"        # the drop was rolled back too
    assert store.get(T, b"k3") == b"z" * 400 and store.get(T, b"k2") is None
