"""ExportLease over both backends (slipstream-kv.md E1-E6)."""

from __future__ import annotations

import threading

import pytest

from engine.kv import ExportLease, LeaseValue, SerializationError, WatchCursor

from .conftest import Backend


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_e1_concurrent_acquirers_one_winner(backend: Backend) -> None:
    b = backend.bucket()
    conns = [backend.new_connection() for _ in range(3)]
    buckets = [b] + [c.store(b.name) for c in conns]
    results: list[object] = []
    barrier = threading.Barrier(12)
    lock = threading.Lock()

    def run(i: int) -> None:
        barrier.wait()
        r = ExportLease.try_acquire(buckets[i % 4], "lease.export", f"h{i}", 60)
        with lock:
            results.append(r)

    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        winners = [r for r in results if r is not None]
        assert len(results) == 12 and len(winners) == 1
        assert ExportLease.current(b, "lease.export").holder_id == winners[0].value.holder_id
        winners[0].abandon()
    finally:
        for c in conns:
            c.shutdown()


def test_e2_e3_live_lease_blocks_then_one_taker_after_expiry(backend: Backend) -> None:
    b = backend.bucket()
    clock = Clock()
    first = ExportLease.try_acquire(b, "lease", "a", 30, clock=clock)
    assert first is not None
    clock.t += 29
    assert ExportLease.try_acquire(b, "lease", "b", 30, clock=clock) is None
    clock.t += 2                                            # expired now
    takers = [ExportLease.try_acquire(b, "lease", h, 30, clock=clock) for h in ("b", "c")]
    assert takers[0] is not None and takers[1] is None      # exactly one taker
    assert ExportLease.current(b, "lease").holder_id == "b"
    first.complete(WatchCursor.from_u64(5))                 # a stale holder changes nothing
    assert ExportLease.current(b, "lease").holder_id == "b"
    assert ExportLease.current(b, "lease").completed_cursor_hex is None
    takers[0].abandon()


def test_e4_corrupt_value_is_stolen_and_current_raises(backend: Backend) -> None:
    b = backend.bucket()
    b.put("lease", b"{garbage")
    with pytest.raises(SerializationError):
        ExportLease.current(b, "lease")
    won = ExportLease.try_acquire(b, "lease", "thief", 10)
    assert won is not None and ExportLease.current(b, "lease").holder_id == "thief"
    won.abandon()


def test_e5_abandon_lets_the_next_acquirer_win_at_once(backend: Backend) -> None:
    b = backend.bucket()
    clock = Clock()
    a = ExportLease.try_acquire(b, "lease", "a", 3600, clock=clock)
    assert a is not None
    a.abandon()
    assert b.get("lease") is None and b.entry("lease") is not None    # an empty-value tombstone
    assert ExportLease.current(b, "lease") is None
    nxt = ExportLease.try_acquire(b, "lease", "b", 3600, clock=clock)
    assert nxt is not None
    nxt.abandon()


def test_e6_complete_keeps_expiry(backend: Backend) -> None:
    b = backend.bucket()
    clock = Clock()
    a = ExportLease.try_acquire(b, "lease", "a", 100, clock=clock)
    assert a is not None
    clock.t += 10
    a.complete(WatchCursor.from_u64(77))
    cur = ExportLease.current(b, "lease")
    assert cur == LeaseValue("a", 1_000_000.0, 1_000_100.0, WatchCursor.from_u64(77).token.hex(),
                             1_000_010.0)
    assert ExportLease.try_acquire(b, "lease", "b", 100, clock=clock) is None


def test_lease_value_rejects_unknown_fields() -> None:
    with pytest.raises(SerializationError):
        LeaseValue.decode(b'{"holder_id":"a","acquired_at_unix":1,"expires_at_unix":2,"x":1}')
    with pytest.raises(ValueError):
        ExportLease.try_acquire(object(), "k", "h", 0)
