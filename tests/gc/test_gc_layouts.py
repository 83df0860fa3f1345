"""GC on the durable layouts: pinned checkpoints, and GC concurrent with readers and writers."""

from __future__ import annotations

import threading

import pytest

import engine
from engine import EntryKind, Retention

T = EntryKind.source(7)
TIERED = ["hot+warm+cold", "warm+cold", "hot+warm", "warm"]


def _open(path, layout, **kw):
    return engine.open(path / "db", layout=engine.Layout.parse(layout, background=False),
                       retention=Retention(history_versions=2), gc_interval=0, **kw)


def _disk_has(store, value: bytes) -> bool:
    """Is ``value`` stored in any tier (physically, not just readable)?"""
    for tier in store._tiers:
        for table in tier.tables():
            for e in tier.iter_versions(table):
                if e.value == value:
                    return True
    return False


@pytest.mark.parametrize("layout", TIERED)
def test_pinned_checkpoint_survives_movement_and_gc_then_goes(tmp_path, layout):
    s = _open(tmp_path, layout)
    with s.begin() as tx:
        for i in range(50):
            tx.set(T, b"node%02d" % i, b"checkpoint-%02d" % i)
    pinned = tx.version
    s.pin(pinned, "checkpoint")
    for r in range(30):
        with s.begin() as tx:
            for i in range(0, 50, 3):
                tx.set(T, b"node%02d" % i, b"round-%02d-%02d" % (r, i))
        if r % 4 == 0:
            s.flush()
        if r % 6 == 0:
            s.demote(policy="history" if r % 12 else "age")
        s.gc()
    s.close()
    s = _open(tmp_path, layout)  # the pin is durable
    assert s.pins() == {"checkpoint": pinned}
    for i in range(50):
        assert s.get(T, b"node%02d" % i, version=pinned) == b"checkpoint-%02d" % i
    assert _disk_has(s, b"checkpoint-00")
    s.check()
    s.unpin("checkpoint")
    s.gc()
    s.compact()
    assert not _disk_has(s, b"checkpoint-00")  # superseded and no longer needed: gone
    assert _disk_has(s, b"checkpoint-01")       # never rewritten: still the live value
    with pytest.raises(engine.HistoryUnavailable):
        s.get(T, b"node00", version=pinned)
    s.check()
    s.close()


@pytest.mark.parametrize("layout", ["hot+warm+cold", "memory"])
def test_gc_concurrent_with_readers_and_writers(tmp_path, layout):
    s = engine.open(tmp_path / "db", layout=engine.Layout.parse(layout, background=False),
                    retention=Retention(history_versions=5), gc_interval=0)
    for r in range(5):
        with s.begin() as tx:
            for i in range(40):
                tx.set(T, b"k%02d" % i, b"%d-%d" % (r, i))
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer():
        r = 5
        while not stop.is_set():
            with s.begin() as tx:
                for i in range(0, 40, 7):
                    tx.set(T, b"k%02d" % i, b"%d-%d" % (r, i))
            r += 1

    def collector():
        while not stop.is_set():
            s.gc(compact=False)
            s.flush()
            s.demote(policy="history")

    def reader():
        try:
            for _ in range(15):
                with s.snapshot() as snap:
                    first = list(snap.range(T))
                    points = {k: snap.get(T, k) for k, _ in first[:10]}
                    for _ in range(10):
                        assert list(snap.range(T)) == first
                        assert {k: snap.get(T, k) for k in points} == points
                        assert s.get(T, first[0][0], version=snap.version) == first[0][1]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=collector)]
    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads + readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    if s.stats()["gc"]["removed_versions"] == 0:  # readers finished before a pass passed the floor
        s.gc(compact=False)
    assert s.stats()["gc"]["removed_versions"] > 0
    s.check()
    s.close()
