"""``watch_applied`` over both backends (slipstream-kv.md B5-B12 and C1-C5)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.kv import (
    BatchConfig,
    Delete,
    KvError,
    KvUpdate,
    Purge,
    Put,
    StoreFold,
    WatchCursor,
    WatchError,
    WatchScope,
    watch_applied,
)

from .conftest import Backend, wait_for


class Runner:
    """Runs ``watch_applied`` in a thread and records what ``apply``/``on_applied`` saw."""

    def __init__(self, bucket: Any, fold: Any, scope: WatchScope | None = None, *,
                 reader: Any = "same", parse: Any = None, batch: BatchConfig | None = None,
                 resume: WatchCursor | None = None) -> None:
        self.applied: list[KvUpdate] = []
        self.reports: list[WatchCursor] = []
        self.shutdown = threading.Event()
        self.result: WatchCursor | None = None
        self.error: BaseException | None = None
        self.fold = fold
        kwargs: dict[str, Any] = dict(
            resume=resume, reader=bucket.reader() if reader == "same" else reader, store=fold,
            batch=batch or BatchConfig(window=0.005, max=50), parse=parse or (lambda u: u),
            apply=self.applied.extend, on_applied=self.reports.append, shutdown=self.shutdown)

        def run() -> None:
            try:
                self.result = watch_applied(bucket.watcher(), scope or WatchScope.All(), **kwargs)
            except BaseException as exc:  # noqa: BLE001 - asserted by the tests
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self) -> WatchCursor | None:
        self.shutdown.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        if self.error is not None:
            raise self.error
        return self.result


def state_of(bucket: Any, prefixes: list[str] | None = None) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for p in prefixes or [""]:
        out.update({e.key: e.value for e in bucket.scan(p)})
    return out


def caught_up(fold: StoreFold, bucket: Any) -> bool:
    return fold.state() == state_of(bucket)


@pytest.fixture
def fold(tmp_path: Path) -> Any:
    f = StoreFold.open(tmp_path / "fold", layout="warm")
    yield f
    f.close()


def test_fold_follows_writes_and_shutdown_returns_last_cursor(backend: Backend, fold: StoreFold) -> None:
    b = backend.bucket()
    b.put("a", b"1")
    b.put("b", b"2")
    r = Runner(b, fold)
    assert wait_for(lambda: caught_up(fold, b))
    b.delete("a")
    b.put("c", b"")                         # an empty value is kept as a value (C5)
    last = b.put("d", b"4")
    assert wait_for(lambda: fold.cursor() == WatchCursor(last))
    cursor = r.stop()
    assert cursor == WatchCursor(last) == fold.cursor()
    assert fold.state() == {"b": b"2", "c": b"", "d": b"4"}
    assert r.reports[-1] == cursor
    cursors = [c.as_u64() for c in r.reports]
    assert cursors == sorted(cursors) and len(set(cursors)) == len(cursors)


def test_b6_rejected_updates_still_advance_cursor(backend: Backend, fold: StoreFold) -> None:
    b = backend.bucket()
    r = Runner(b, fold, parse=lambda u: None)
    last = None
    for i in range(5):
        last = b.put(f"k{i}", b"x")
    assert wait_for(lambda: fold.cursor() == WatchCursor(last))
    r.stop()
    assert r.applied == []
    assert fold.state() == {f"k{i}": b"x" for i in range(5)}     # the raw updates are folded


def test_b7_flush_on_max_and_window(backend: Backend, fold: StoreFold) -> None:
    b = backend.bucket()
    for i in range(30):
        b.put(f"k{i:02d}", b"x")
    r = Runner(b, fold, batch=BatchConfig(window=30.0, max=10))
    # the window is 30 s: only the max trigger can flush the first 30 updates
    assert wait_for(lambda: fold.count() == 30, timeout=10)
    v = b.put("late", b"y")                  # 1 update: waits for the (long) window...
    time.sleep(0.3)
    assert fold.get("late") is None
    cursor = r.stop()                        # ...but shutdown flushes it
    assert cursor == WatchCursor(v) and fold.get("late") == b"y"


def test_b7_flush_when_channel_closes(backend: Backend, fold: StoreFold) -> None:
    b = backend.bucket()
    b.put("a", b"1")
    shutdown = threading.Event()
    out: list[Any] = []
    w_holder: list[Any] = []
    watcher = b.watcher()

    class Closing:
        def watch(self, scope: WatchScope, cursor: Any = None) -> Any:
            w = watcher.watch(scope, cursor)
            w_holder.append(w)
            return w

    t = threading.Thread(target=lambda: out.append(watch_applied(
        Closing(), WatchScope.All(), store=fold, batch=BatchConfig(window=30.0, max=100),
        parse=lambda u: u, apply=lambda us: None, shutdown=shutdown)))
    t.start()
    assert wait_for(lambda: bool(w_holder))
    time.sleep(0.3)
    w_holder[0].close()
    t.join(10)
    assert not t.is_alive() and out and fold.get("a") == b"1"


def test_b8_store_failures_requeue_then_commit_together(backend: Backend, fold: StoreFold) -> None:
    b = backend.bucket()
    real = fold.apply
    calls: list[int] = []
    fail = {"left": 3}

    def flaky(batch: list[KvUpdate], cursor: WatchCursor) -> None:
        calls.append(len(batch))
        if fail["left"] > 0:
            fail["left"] -= 1
            raise OSError("disk hiccup")
        # the cursor never passes data the store does not hold
        real(batch, cursor)

    fold.apply = flaky  # type: ignore[method-assign]
    r = Runner(b, fold)
    b.put("a", b"1")
    time.sleep(0.1)
    last = b.put("b", b"2")
    assert wait_for(lambda: fold.cursor() == WatchCursor(last))
    r.stop()
    assert fold.state() == {"a": b"1", "b": b"2"}
    assert len(calls) >= 4


def test_b8_sixteen_store_failures_raise_watch_error(backend: Backend, fold: StoreFold) -> None:
    b = backend.bucket()

    def broken(batch: list[KvUpdate], cursor: WatchCursor) -> None:
        raise OSError("disk gone")

    fold.apply = broken  # type: ignore[method-assign]
    r = Runner(b, fold)
    b.put("a", b"1")
    r.thread.join(30)
    assert isinstance(r.error, WatchError) and "16" in str(r.error)
    assert fold.cursor().is_none


def test_b9_expiry_resync_with_reader(backend: Backend, fold: StoreFold) -> None:
    b = backend.bucket()
    for k in ["keep", "gone", "back"]:
        b.put(k, b"1")
    r = Runner(b, fold)
    assert wait_for(lambda: caught_up(fold, b))
    r.stop()
    # the gap: delete two keys, re-create one, then lose the markers (cursor expires)
    # (on NATS only a removal right above the cursor is detectable: first_seq must pass it)
    b.delete("gone")
    b.put("keep", b"1")
    b.delete("back")
    b.purge_deletes(0)
    b.put("back", b"2")
    b.put("new", b"3")
    b.delete("tmp")
    b.purge_deletes(0)
    with pytest.raises(KvError):
        b.watch_all_from(fold.cursor())       # expired indeed
    r = Runner(b, fold)
    assert wait_for(lambda: caught_up(fold, b))
    r.stop()
    assert fold.state() == {"keep": b"1", "back": b"2", "new": b"3"}


def test_b9_failed_listing_is_fatal(backend: Backend, fold: StoreFold) -> None:
    b = backend.bucket()
    b.put("a", b"1")
    r = Runner(b, fold)
    assert wait_for(lambda: caught_up(fold, b))
    r.stop()
    b.delete("a")
    b.put("z", b"1")
    b.purge_deletes(0)

    class BrokenReader:
        def keys(self, prefix: str = "") -> list[str]:
            raise KvError("listing failed")

    r = Runner(b, fold, reader=BrokenReader())
    r.thread.join(30)
    assert isinstance(r.error, WatchError)
    assert fold.get("a") == b"1"               # nothing degraded silently


def test_b10_expiry_without_reader_keeps_stale_key(backend: Backend, fold: StoreFold) -> None:
    b = backend.bucket()
    b.put("stale", b"1")
    b.put("other", b"1")
    r = Runner(b, fold, reader=None)
    assert wait_for(lambda: caught_up(fold, b))
    r.stop()
    b.delete("stale")
    b.purge_deletes(0)
    last = b.put("other", b"2")
    r = Runner(b, fold, reader=None)
    assert wait_for(lambda: fold.get("other") == b"2")
    r.stop()
    assert fold.get("stale") == b"1"           # the documented hazard
    assert fold.cursor() == WatchCursor(last)


def test_b11_overrun_live_watch_raises_then_restart_repairs(tmp_path: Path) -> None:
    """Local backend: the live floor guard is exact (a removed marker above the frontier)."""
    from engine.kv import LocalConnection
    store = engine.open(None)
    conn = LocalConnection(store)
    conn.connect()
    b = conn.store("overrun")
    fold = StoreFold.open(tmp_path / "f", layout="warm")
    try:
        b.put("a", b"1")
        gate = threading.Event()
        entered = threading.Event()

        def slow_parse(u: KvUpdate) -> KvUpdate:
            if u.key == "x":
                entered.set()
                gate.wait(10)
            return u

        r = Runner(b, fold, parse=slow_parse)
        assert wait_for(lambda: fold.get("a") == b"1")
        b.put("x", b"1")
        assert entered.wait(10)
        b.put("a", b"2")
        b.delete("a")
        b.purge_deletes(0)                      # the DEL marker vanishes before delivery
        gate.set()
        r.thread.join(30)
        assert isinstance(r.error, WatchError)
        assert fold.get("a") is not None       # not yet repaired
        r = Runner(b, fold)                     # restart: expiry -> resync through the reader
        assert wait_for(lambda: caught_up(fold, b))
        r.stop()
        assert fold.get("a") is None and fold.get("x") == b"1"
    finally:
        fold.close()
        conn.shutdown()
        store.close()


def test_b12_resume_from_store_cursor_not_in_memory(backend: Backend, fold: StoreFold) -> None:
    b = backend.bucket()
    b.put("a", b"1")
    v = b.put("b", b"2")
    r = Runner(b, fold)
    assert wait_for(lambda: fold.cursor() == WatchCursor(v))
    r.stop()
    b.put("c", b"3")
    # a bogus in-memory cursor ahead of everything is ignored in favour of the store's
    r = Runner(b, fold, resume=WatchCursor.from_u64(10**9))
    assert wait_for(lambda: fold.get("c") == b"3")
    r.stop()
    assert [u.key for u in r.applied] == ["c"]     # resumed at cursor + 1: no re-list


def test_scoped_fold(backend: Backend, fold: StoreFold) -> None:
    b = backend.bucket()
    b.put("u.1", b"1")
    b.put("v.1", b"1")
    r = Runner(b, fold, WatchScope.Prefixes(["u.", "w."]))
    b.put("w.1", b"1")
    b.put("v.2", b"1")
    assert wait_for(lambda: fold.state() == {"u.1": b"1", "w.1": b"1"})
    r.stop()


# -- C. the store-backed snapshot store --------------------------------------------------------

def test_c_fold_store_semantics(tmp_path: Path) -> None:
    from engine.kv import KvEntry, VersionToken
    t = VersionToken.from_u64
    with StoreFold.open(tmp_path / "s", layout="warm") as f:
        assert f.cursor().is_none
        f.apply([Put(KvEntry("a", b"1", t(1))), Put(KvEntry("b", b"", t(2))),
                 Put(KvEntry("c", b"3", t(3)))], WatchCursor.from_u64(3))
        f.apply([Purge("c", t(4)), Delete("x", t(5))], WatchCursor.from_u64(5))   # C3
        f.apply([], WatchCursor.from_u64(9))                                      # C4
        state = f.state()
        assert state == {"a": b"1", "b": b""}                                     # C5
    cursor, f = StoreFold.load(tmp_path / "s")                                    # C1
    with f:
        assert cursor == WatchCursor.from_u64(9) and f.state() == state
        assert f.range("") == sorted(state.items())
        seen: list[str] = []
        f.for_each_in_range("", lambda k, v: seen.append(k))
        assert seen == ["a", "b"]
    # C2: wipe + replay of the same log gives the same state
    with StoreFold.open(tmp_path / "s2", layout="warm") as g:
        g.apply([Put(KvEntry("a", b"1", t(1))), Put(KvEntry("b", b"", t(2))),
                 Put(KvEntry("c", b"3", t(3))), Purge("c", t(4)), Delete("x", t(5))],
                WatchCursor.from_u64(9))
        assert g.state() == state
