"""The iterator ``store.range`` returns: rows equal the merged scan's, and its read point is
released on exhaustion, on close (started or not) and when it is dropped."""

from __future__ import annotations

import gc

import pytest

import engine
from engine import EntryKind
from engine.router.reader import ScanIterator

T = EntryKind.source(1)


@pytest.fixture
def store(tmp_path):
    s = engine.open(tmp_path / "db")
    for r in range(3):
        with s.begin() as tx:
            for i in range(300):
                if r == 0 or i % (r + 1) == 0:
                    tx.set(T, b"k%04d" % i, b"v%d.%d" % (r, i))
                elif r == 2 and (i % 7 == 3 or 100 <= i < 160):  # scattered and a long run
                    tx.remove(T, b"k%04d" % i)
        if r == 0:
            s.flush()
        if r == 1:
            s.flush()
            s.demote()
    yield s
    s.close()


def _model(store, version):
    return [(k, v) for k, v in ((b"k%04d" % i, store.get(T, b"k%04d" % i, version)) for i in range(300))
            if v is not None]


@pytest.mark.parametrize("batch", [1, 7, 64, 1024])
def test_rows_at_every_version_and_batch_size(store, batch):
    for version in range(1, store.version + 1):
        got = list(store.range(T, version=version, batch_size=batch))
        assert got == _model(store, version)
        rev = list(store.range(T, version=version, batch_size=batch, reverse=True))
        assert rev == got[::-1]
        sub = list(store.range(T, b"k0090", b"k0170", version=version, batch_size=batch))
        assert sub == [kv for kv in got if b"k0090" <= kv[0] < b"k0170"]


def test_tombstones_do_not_shorten_pages(store):
    """A page of live rows skips tombstoned keys without ending the scan early."""
    store.flush()
    store.demote()
    got = list(store.range(T, batch_size=50))
    assert got == _model(store, store.version)
    assert len(got) < 300


def test_read_point_released_on_close_even_unstarted(store):
    held = store._readpoints.versions
    it = store.range(T, version=1)
    assert isinstance(it, ScanIterator)
    assert held() == [1]
    it.close()
    assert held() == []
    it.close()  # idempotent
    assert list(it) == []


def test_read_point_released_on_exhaustion_and_when_dropped(store):
    held = store._readpoints.versions
    it = store.range(T, version=2)
    assert next(it)[0] == b"k0000"
    assert held() == [2]
    assert len(list(it)) == len(_model(store, 2)) - 1
    assert held() == []
    it = store.range(T, version=2)
    next(it)
    del it
    gc.collect()
    assert held() == []


def test_context_manager_closes(store):
    with store.range(T, version=3) as it:
        first = next(it)
    assert first == _model(store, 3)[0]
    assert store._readpoints.versions() == []
