"""``watch_applied``: fold a watch into a local store with cursor-after-apply semantics.

Invariant (``slipstream-kv.md`` 7.2): if cursor C was persisted or reported, ``apply()`` has
returned for every revision <= C. With a :class:`~engine.kv.fold.StoreFold` the raw updates
and the cursor are written in one store commit, so a crash anywhere leaves the fold and its
cursor consistent; the restart resumes from the **persisted** cursor and the service
re-delivers everything above it.

A flush: ``apply(parsed)``; ``applied = batch_high``; ``store.apply(raw, applied)``;
``on_applied(applied)`` if the cursor moved. A failed store write re-queues the raw batch at
the front (committed with the next flush); 16 failures in a row raise :class:`WatchError`.

Notes: thread safety
    ``watch_applied`` runs on the calling thread until ``shutdown`` is set (from any thread),
    the watch ends, or an error is raised.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .api import KvReader, KvWatch, KvWatcher
from .errors import CursorExpired, KvError, WatchError
from .fold import SnapshotStore
from .protocol import (
    StoreFailureAction,
    advance_batch_high,
    flush_due,
    resync_deletions,
    store_failure_action,
)
from .types import Delete, KvUpdate, VersionToken, WatchCursor, WatchScope

__all__ = ["BatchConfig", "ExportRequest", "watch_applied"]

log = logging.getLogger("tierdb.kv.apply")
U = TypeVar("U")
_POLL = 0.05   # how often a quiet loop checks shutdown and the export queue


@dataclass(frozen=True)
class BatchConfig:
    """Flush when ``window`` seconds passed since the first pending update, or at ``max``."""

    window: float = 0.010
    max: int = 100
    channel_capacity: int = 256

    def __post_init__(self) -> None:
        if not self.window > 0 or self.max < 1 or self.channel_capacity < 1:
            raise ValueError(f"bad BatchConfig {self!r}: window > 0, max >= 1, capacity >= 1")


@dataclass
class ExportRequest:
    """Ask a running ``watch_applied`` to export its fold to ``dest_dir`` between flushes.

    ``reply`` receives the artifact path, or the exception (the watch continues).
    """

    dest_dir: Any
    reply: concurrent.futures.Future[Any]


class _Folder(Generic[U]):
    """The mutable state of one ``watch_applied`` run."""

    def __init__(self, *, store: SnapshotStore | None, parse: Callable[[KvUpdate], U | None],
                 apply: Callable[[list[U]], None], on_applied: Callable[[WatchCursor], None] | None,
                 applied: WatchCursor) -> None:
        self.store = store
        self.parse = parse
        self.apply_fn = apply
        self.on_applied = on_applied
        self.applied = applied
        self.reported = applied
        self.raw: list[KvUpdate] = []
        self.parsed: list[U] = []
        self.requeued: list[KvUpdate] = []   # raw updates whose store write failed
        self.requeued_cursor: WatchCursor | None = None
        self.high: int | None = applied.as_u64()
        self.failures = 0

    def receive(self, u: KvUpdate) -> None:
        self.raw.append(u)
        p = self.parse(u)
        if p is not None:
            self.parsed.append(p)
        self.high = advance_batch_high(self.high, u.version.as_u64())

    @property
    def pending(self) -> bool:
        return bool(self.raw) or bool(self.requeued) or self.requeued_cursor is not None

    def flush(self) -> None:
        """One flush (7.3). Raises WatchError after 16 store failures in a row."""
        if self.parsed:
            self.apply_fn(self.parsed)
        raw = self.requeued + self.raw
        new_cursor = self.applied if self.high is None else WatchCursor.from_u64(self.high)
        self.raw, self.parsed = [], []
        if self.store is not None and (raw or new_cursor != self.applied or self.requeued_cursor):
            try:
                self.store.apply(raw, new_cursor)
            except Exception as exc:
                self.failures += 1
                self.requeued = raw
                self.requeued_cursor = new_cursor
                if store_failure_action(self.failures) is StoreFailureAction.FATAL:
                    raise WatchError(f"the fold store failed {self.failures} times in a row; "
                                     f"last error: {exc!r}") from exc
                log.warning("fold store write failed (%d in a row), re-queued: %r", self.failures, exc)
                return
        self.failures = 0
        self.requeued, self.requeued_cursor = [], None
        self.applied = new_cursor
        if self.on_applied is not None and self.applied != self.reported:
            self.on_applied(self.applied)
        self.reported = self.applied


def _open_watch(watcher: KvWatcher, scope: WatchScope, cursor: WatchCursor | None) -> KvWatch:
    return watcher.watch(scope, cursor)


def _resync(folder: _Folder[Any], scope: WatchScope, reader: KvReader, store: SnapshotStore) -> None:
    """7.6: list live keys, diff against the fold, delete what vanished, then acknowledge."""
    live: set[str] = set()
    try:
        for prefix in scope.list_prefixes():
            live.update(reader.keys(prefix))
    except KvError as exc:
        raise WatchError(f"resync after an expired cursor failed while listing keys: {exc}") from exc
    folder.flush()
    fold_keys: set[str] = set()
    for prefix in scope.list_prefixes():
        fold_keys.update(k for k, _ in store.range(prefix))
    for key in resync_deletions(fold_keys, live):
        folder.receive(Delete(key, VersionToken.empty()))
    folder.flush()
    if folder.requeued:
        raise WatchError("resync after an expired cursor could not store its synthetic deletes")


def watch_applied(watcher: KvWatcher, scope: WatchScope, *, resume: WatchCursor | None = None,
                  reader: KvReader | None = None, store: SnapshotStore | None = None,
                  exports: queue.Queue[ExportRequest] | None = None,
                  batch: BatchConfig | None = None,
                  parse: Callable[[KvUpdate], U | None],
                  apply: Callable[[list[U]], None],
                  on_applied: Callable[[WatchCursor], None] | None = None,
                  shutdown: threading.Event) -> WatchCursor:
    """Fold ``scope`` of ``watcher`` until ``shutdown`` is set; return the applied cursor.

    With a ``store``, the resume point is always the store's persisted cursor (``resume``
    is used only without a store). An expired cursor is resynced through ``reader`` (7.6);
    without a reader the fallback only re-lists (keys deleted in the gap stay: a
    documented hazard).

    Raises:
        WatchError: 16 store failures in a row, a failed resync, a tripped floor guard.
        KvError: the watch could not be opened.
    """
    cfg = batch or BatchConfig()
    start = store.cursor() if store is not None else (resume or WatchCursor.none())
    folder: _Folder[U] = _Folder(store=store, parse=parse, apply=apply, on_applied=on_applied,
                                 applied=start)
    try:
        watch = _open_watch(watcher, scope, None if start.is_none else start)
    except CursorExpired:
        if reader is not None and store is not None:
            log.info("cursor %r expired; resyncing through the reader", start)
            _resync(folder, scope, reader, store)
        else:
            log.warning("cursor %r expired and no reader/store was given: falling back to a full "
                        "re-list; keys deleted during the gap stay in the fold", start)
        watch = _open_watch(watcher, scope, None)
    try:
        deadline: float | None = None
        while True:
            stopping = shutdown.is_set()
            closed = watch.ended
            now = time.monotonic()
            expired = deadline is not None and now >= deadline
            backlog = len(folder.raw) + len(folder.requeued) + (folder.requeued_cursor is not None)
            if folder.pending and flush_due(raw_count=backlog, parsed_count=len(folder.parsed),
                                            max_batch=cfg.max, window_expired=expired,
                                            shutdown=stopping, closed=closed):
                folder.flush()
                deadline = time.monotonic() + cfg.window if folder.requeued else None
            if stopping or (closed and not folder.pending):
                break
            if exports is not None:
                _serve_exports(exports, folder, store)
            wait = _POLL if deadline is None else max(0.0, min(_POLL, deadline - time.monotonic()))
            u = watch.next(wait)
            if u is not None:
                folder.receive(u)
                if deadline is None:
                    deadline = time.monotonic() + cfg.window
    finally:
        watch.close()
    return folder.applied


def _serve_exports(exports: queue.Queue[ExportRequest], folder: _Folder[Any],
                   store: SnapshotStore | None) -> None:
    while True:
        try:
            req = exports.get_nowait()
        except queue.Empty:
            return
        try:
            if store is None:
                raise WatchError("export requested but watch_applied has no store to export")
            if folder.pending:
                folder.flush()
            if folder.requeued:
                raise WatchError("export refused: the fold store is failing; retry later")
            req.reply.set_result(store.export_to(req.dest_dir))
        except WatchError as exc:
            if folder.failures and store_failure_action(folder.failures) is StoreFailureAction.FATAL:
                raise
            req.reply.set_exception(exc)
        except Exception as exc:  # noqa: BLE001 - a failed export is reported, the watch goes on
            req.reply.set_exception(exc)
