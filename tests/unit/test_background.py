"""The background loop: kicks, pauses, errors counted and retried, clean stop."""

from __future__ import annotations

import threading
import time

import engine
from engine import EntryKind
from engine.background import Background
from engine.errors import StorageIOError


def test_errors_are_counted_and_the_loop_keeps_going():
    counters: dict = {}
    calls = []
    done = threading.Event()

    def tick() -> float:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise StorageIOError("disk full (injected)")
        done.set()
        return 60.0

    loop = Background("test-loop", tick, 0.01, counters)
    loop.start()
    assert done.wait(5)
    loop.stop()
    assert not loop.running
    assert counters["background_errors"] == 2
    assert "disk full" in counters["last_error"]
    assert len(calls) == 3


def test_kick_runs_a_tick_before_the_pause():
    ran = threading.Event()
    loop = Background("test-kick", lambda: (ran.set(), 60.0)[1], 60.0, {})
    loop.start()
    assert not ran.wait(0.1)
    loop.kick()
    assert ran.wait(5)
    loop.stop()


def test_background_mover_keeps_hot_under_its_budget(tmp_path):
    lay = engine.Layout.parse("hot+warm", hot_bytes=256 << 10, flush_interval=0, demote_interval=0)
    T = EntryKind.source(1)
    with engine.open(tmp_path / "db", layout=lay) as s:
        for r in range(60):
            with s.begin() as tx:
                for i in range(100):
                    tx.set(T, b"k%03d-%02d" % (i, r), b"x" * 100)
        deadline = time.monotonic() + 10
        while s._tiers[0].bytes > lay.hot_bytes and time.monotonic() < deadline:
            time.sleep(0.05)
        st = s.stats()
        assert st["movement"]["flushes"] >= 1
        assert st["tiers"]["hot"]["bytes"] <= lay.hot_bytes
        assert st["tiers"]["warm"]["versions"] > 0
        assert len(list(s.range(T))) == 6000
