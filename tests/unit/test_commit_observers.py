"""Store.add_commit_observer: every writing commit once, in order, with its exact batches."""

from __future__ import annotations

import pytest

import engine
from engine import EntryKind


def test_observers_see_each_writing_commit_in_order(tmp_path):
    store = engine.open(tmp_path / "s")
    seen = []
    obs = lambda v, t, b: seen.append((v, {k: list(r) for k, r in b.items()}))
    store.add_commit_observer(obs)
    with store.begin() as tx:
        tx.set(EntryKind.MULTI, b"a", b"1")
        tx.remove(EntryKind.source(3), b"b")
    with store.begin() as tx:  # read-only: not observed
        tx.get(EntryKind.MULTI, b"a")
    with store.begin() as tx:
        tx.set(EntryKind.MULTI, b"a", b"2")
    assert seen == [(1, {EntryKind.MULTI: [(b"a", b"1")], EntryKind.source(3): [(b"b", None)]}),
                    (2, {EntryKind.MULTI: [(b"a", b"2")]})]
    assert store.remove_commit_observer(obs) is True
    assert store.remove_commit_observer(obs) is False
    with store.begin() as tx:
        tx.set(EntryKind.MULTI, b"c", b"3")
    assert len(seen) == 2
    with pytest.raises(TypeError):
        store.add_commit_observer(42)  # type: ignore[arg-type]
    store.close()


def test_observer_sees_version_already_visible(tmp_path):
    store = engine.open(None)
    at = []
    store.add_commit_observer(lambda v, t, b: at.append((v, store.version, store.commit_time(v) is not None)))
    with store.begin() as tx:
        tx.set(EntryKind.MULTI, b"k", b"v")
    assert at == [(1, 1, True)]
