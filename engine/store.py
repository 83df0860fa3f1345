"""The store: the facade that wires MVCC, the router, the tiers and the drop worker.

See DESIGN.md section 6 for the API. A store has a :class:`~engine.router.Layout` (which
tiers exist), a version oracle and commit lock, a commit log when the hot tier fronts a
durable store, a registry of live read points, durable pins and a time index.

Commit path (one step under the commit lock): conflict check, version allocation, commit-log
append (or the warm tier's own WAL when warm is the first tier), apply to the first tier,
registration in the conflict window, then publication of :attr:`Store.version`. A
``"sync"`` commit then waits for the group fsync outside the lock.

Notes: thread safety
    A store is shared by any number of threads. Readers never take the commit lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from operator import itemgetter
from pathlib import Path
from typing import Any

from .drop_worker.planner import ReadPointSet
from .drop_worker.retention import Retention
from .drop_worker.worker import DropWorker
from .errors import (
    ChangefeedDisabled,
    ClosedError,
    EngineError,
    FormatError,
    FutureVersionError,
    HistoryUnavailable,
    InvalidKeyError,
    LockedError,
    ReadOnlyError,
    StorageIOError,
)
from .mvcc.changefeed import FEED_DIR, Change, ChangeFeed, Consumer, scan_commits
from .mvcc.commitlog import DURABILITY_MODES, CommitLog
from .mvcc.oracle import Oracle
from .mvcc.pins import PinStore, atomic_write, check_pin_name
from .mvcc.readpoints import ReadPoints
from .mvcc.snapshot import Snapshot
from .mvcc.timeindex import TimeIndex
from .mvcc.transaction import ISOLATION_LEVELS, Transaction, check_table, range_bounds
from .records import decode_json_record, encode_json_record
from .router.layout import Layout
from .router.movement import Mover, check_band_order
from .router.reader import Router
from .tiers.base import DEFAULT_BATCH_SIZE, TierStorage
from .tiers.hot import HotTier
from .types import (
    Bound,
    EntryKind,
    RangeBatch,
    RangeCursor,
    RawEntry,
    as_bytes,
    check_version,
)

_KEY_OF = itemgetter(1)  # (table, key) -> key

# ``observer(version, commit time, batches)``: see Store.add_commit_observer.
CommitObserver = Callable[[int, float, "dict[EntryKind, list[tuple[bytes, bytes | None]]]"], None]


def _release_frames(exc: BaseException) -> None:
    """Clear the locals of the finished frames an I/O error passed through below the store.

    A tier's frames hold RocksDB handles (column families, write batches); a caller that
    keeps the error (a log, ``pytest.raises``, a retry loop) would otherwise keep RocksDB
    and its LOCK alive after ``store.close()``, so the store could not be opened again in
    this process. The traceback's file and line information stays.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        tb = e.__traceback__
        while tb is not None:
            try:
                tb.tb_frame.clear()
            except RuntimeError:  # a frame still executing (this one, its callers)
                pass
            tb = tb.tb_next
        e = e.__cause__ or e.__context__

def _close_tiers(tiers: list[TierStorage]) -> list[BaseException]:
    """Close every tier, even when some fail; return the failures (frames released)."""
    errors: list[BaseException] = []
    for t in tiers:
        try:
            t.close()
        except (OSError, EngineError) as exc:
            _release_frames(exc)
            errors.append(exc)
    return errors


__all__ = ["Store", "open"]

log = logging.getLogger("tierdb.store")

MARKER_NAME = "TIERDB"
MARKER_MAGIC = b"TIERDBST"
STORE_FORMAT_VERSION = 1
# framed as an engine.records record (magic, format version, length, crc32; JSON payload)
VERSION_META = b"store.version"      # warm-first layouts: newest committed version
FLUSHED_META = b"store.flushed"      # hot-fronted layouts: every version <= this is in warm
U64 = struct.Struct(">Q")


def _read_marker(path: Path) -> dict[str, Any]:
    p = path / MARKER_NAME
    meta: dict[str, Any] = decode_json_record(
        p.read_bytes(), MARKER_MAGIC, STORE_FORMAT_VERSION, what="store marker file", path=p,
        truncated=FormatError, bad_magic=FormatError,
        bad_magic_message=f"{path} is not a tierdb store (bad marker)")
    return meta


def _write_marker(path: Path, meta: dict[str, Any]) -> None:
    try:
        atomic_write(path / MARKER_NAME, encode_json_record(MARKER_MAGIC, STORE_FORMAT_VERSION, meta))
    except OSError as exc:
        if isinstance(exc, StorageIOError):
            raise
        raise StorageIOError(f"cannot write the store marker {path / MARKER_NAME}: "
                             f"{exc.strerror or exc}; nothing was created") from exc


class Store:
    """A versioned key-value store. Create one with :func:`engine.open`."""

    # Replication (engine/replication) sets these; None = a plain local store.
    # _pre_apply(version, ts, batches) runs under the commit lock after the conflict check
    # and before anything is applied: it ships the commit (raising leaves the store as it was).
    _pre_apply: Any = None
    # _group_commit(tx, batches, durability) -> (version, log end) replaces the locked
    # check-and-apply step when set (ack="sync" replication: one quorum round trip per group).
    _group_commit: Any = None
    _read_only: str | None = None   # the message of the ReadOnlyError writes raise (replicas)
    # A floor the store's own files impose (TIERDB "history_floor": a clone or restored backup
    # whose source had already collected history below it; engine/backup). 0 = none.
    _min_floor = 0
    _replication: Any = None        # the attached primary or replica link

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 layout: Layout | str | None = None, retention: Retention | None = None,
                 durability: str = "normal", max_txn_entries: int = 1_000_000,
                 max_txn_bytes: int = 1 << 30, conflict_window: int = 10_000,
                 gc_interval: float = 10.0, changefeed: bool | None = None,
                 storage_options: Mapping[str, Any] | None = None) -> None:
        # Object-store options for a layout's cold_url (credentials: kept in memory only).
        self._storage_options = dict(storage_options or {})
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY_MODES)}, got {durability!r}")
        if changefeed is not None and not isinstance(changefeed, bool):
            raise TypeError(f"changefeed must be True, False or None, got {changefeed!r}")
        self._changefeed = changefeed  # None: as the store was created; resolved on open
        self._feed: ChangeFeed | None = None
        if retention is None:
            retention = Retention()
        elif not isinstance(retention, Retention):
            raise TypeError(f"retention must be an engine.Retention, got {type(retention).__name__}")
        self.durability = durability
        self.retention = retention
        self.max_txn_entries = max_txn_entries
        self.max_txn_bytes = max_txn_bytes
        self._conflict_window = conflict_window
        self._gc_interval = gc_interval
        self._closed = True
        self._lock_fd: int | None = None
        self._commit_lock = threading.Lock()
        self._readpoints = ReadPoints()
        self._active_txns = ReadPoints()  # read versions of open transactions (conflict window)
        self._log: CommitLog | None = None
        # Commit observers: ``fn(version, time, batches)`` called under the commit lock after
        # the version is applied and published (see :meth:`add_commit_observer`).
        self._commit_observers: list[CommitObserver] = []
        self.path: Path | None = None if path is None else Path(path)
        self.recovery: dict[str, Any] = {}
        self._tiers: list[TierStorage] = []
        try:
            self._open(layout)
        except BaseException:
            self._release_resources()
            raise
        self._closed = False

    # -- opening -----------------------------------------------------------------------

    def _open(self, layout_arg: Layout | str | None) -> None:
        path = self.path
        if isinstance(layout_arg, str):
            layout_arg = Layout.parse(layout_arg)
        elif layout_arg is not None and not isinstance(layout_arg, Layout):
            raise TypeError(f"layout must be an engine.Layout or a preset name, got {type(layout_arg).__name__}")
        if path is None:
            layout = layout_arg or Layout.parse("memory")
            if layout.tiers != ("hot",):
                raise ValueError(f"layout {layout.name!r} needs a path; engine.open(None) is memory only")
            self.layout = layout
            self._tiers = [HotTier()]
            self._pins = PinStore(None)
            self._policies = PinStore(None)
            self._time = TimeIndex(None)
            if self._changefeed:
                self._feed = self._make_feed(None)
            self._finish_open(0)
            return
        self._open_dir(path, layout_arg)

    def _open_dir(self, path: Path, layout_arg: Layout | None) -> None:
        if path.exists() and not path.is_dir():
            raise FormatError(f"{path} is a file, not a tierdb store directory", path=path)
        fresh = not (path / MARKER_NAME).exists()
        if fresh and path.exists() and any(p.name != "LOCK" for p in path.iterdir()):
            raise FormatError(
                f"{path} is not empty and is not a tierdb store (no {MARKER_NAME} marker); "
                "choose an empty or new directory", path=path)
        meta: dict[str, Any] = {}
        if not fresh:
            meta = _read_marker(path)
            self._min_floor = int(meta.get("history_floor", 0))
        path.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(path / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockedError(f"store {path} is already open (another process or another Store in this one); close it there first") from None
        for stale in path.glob(".tierdb-staging-*"):  # a backup or clone killed mid-way (engine/backup)
            shutil.rmtree(stale, ignore_errors=True)  # we hold the lock: nobody else uses it
        if fresh:
            layout = layout_arg or Layout()
            before = {p.name for p in path.iterdir()}
            try:
                _write_marker(path, {"format": STORE_FORMAT_VERSION, "layout": layout.name,
                                     "created": time.time(),
                                     **({"cold_url": layout.cold_url} if layout.cold_url else {}),
                                     **({"changefeed": True} if self._changefeed else {})})
                self.layout = layout
                self._open_parts(path, layout)
            except BaseException:
                # A store that failed while being created must not be left half-made (every
                # later open would refuse it): remove what this call wrote, then re-raise.
                self._remove_created(path, before)
                raise
            return
        stored = meta.get("layout")
        stored_url = meta.get("cold_url")
        layout = layout_arg or Layout.parse(str(stored), cold_url=stored_url)
        if layout.cold_url is None and stored_url is not None:
            layout = dataclasses.replace(layout, cold_url=stored_url)  # remembered by the store
        if layout.cold_url != stored_url:
            raise ValueError(
                f"store {path} keeps its cold tier at {stored_url or '<store>/cold'}; open it "
                f"with that cold_url (or none) rather than {layout.cold_url or '<store>/cold'}")
        if stored != layout.name:
            raise ValueError(
                f"store {path} was created with layout {stored!r}; open it with that layout "
                f"(or none) rather than {layout.name!r}")
        self.layout = layout
        if meta.get("changefeed"):
            if self._changefeed is False:
                raise ValueError(f"store {path} records a change feed; open it with changefeed=True "
                                 "or None (turning the feed off is not supported)")
            self._changefeed = True
        elif self._changefeed:  # opting in on an existing store: remembered from now on
            _write_marker(path, {**meta, "changefeed": True})
        self._open_parts(path, layout)

    def _open_parts(self, path: Path, layout: Layout) -> None:
        self._tiers = self._make_tiers(path, layout)
        self._pins = PinStore(path / "PINS")
        self._policies = PinStore(path / "POLICIES")
        self._time = TimeIndex(path / "TIME")
        if self._changefeed:
            self._feed = self._make_feed(path / FEED_DIR)
        recovered = self._recover(path, layout)
        self._finish_open(recovered)

    def _remove_created(self, path: Path, before: set[str]) -> None:
        _close_tiers(self._tiers)
        for name in ("_log", "_time", "_feed"):
            part = getattr(self, name, None)
            if part is not None:
                try:
                    part.close()
                except OSError:
                    pass
        for p in path.iterdir():
            if p.name in before or p.name == "LOCK":
                continue
            try:
                if p.is_dir():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            except OSError as exc:  # the original error matters more; say what is left
                log.warning("could not remove %s after a failed store creation: %s", p, exc)

    def _make_tiers(self, path: Path, layout: Layout) -> list[TierStorage]:
        tiers: list[TierStorage] = []
        try:
            self._open_tiers(path, layout, tiers)
        except BaseException:
            # A tier that fails to open must not leave the ones already open holding their
            # locks (RocksDB's LOCK would make every later open in this process fail).
            _close_tiers(tiers)
            raise
        return tiers

    def _open_tiers(self, path: Path, layout: Layout, tiers: list[TierStorage]) -> None:
        for name in layout.tiers:
            if name == "hot":
                tiers.append(HotTier(clean_budget=layout.hot_cache_bytes if layout.tiers != ("hot",) else 0))
            elif name == "warm":
                from .tiers.warm import WarmTier
                tiers.append(WarmTier(path / "warm", block_cache_bytes=layout.warm_cache_bytes,
                                      write_buffer_size=layout.warm_write_buffer_bytes,
                                      sync_writes=self.durability == "sync"))
            elif name == "cold":
                from .tiers.cold import ColdTier
                remote: dict[str, Any] = {} if layout.cold_url is None else {
                    "url": layout.cold_url, "storage_options": self._storage_options,
                    "disk_cache_bytes": layout.cold_disk_cache_bytes, "ref_path": path / "COLD-REF"}
                tiers.append(ColdTier(path / ("cold" if layout.cold_url is None else "cold-cache"),
                                      block_size=layout.block_size,
                                      zstd_level=layout.zstd_level, cache_bytes=layout.cold_cache_bytes,
                                      bloom_bits_per_key=layout.bloom_bits_per_key, **remote))

    def _warm(self) -> Any:
        for t in self._tiers:
            if t.name == "warm":
                return t
        return None

    def _recover(self, path: Path, layout: Layout) -> int:
        version = 0
        warm = self._warm()
        flushed = 0
        if warm is not None:
            raw = warm.get_meta(VERSION_META)
            if raw is not None:
                version = U64.unpack(raw)[0]
            raw = warm.get_meta(FLUSHED_META)
            if raw is not None:
                flushed = U64.unpack(raw)[0]
                version = max(version, flushed)
        if layout.has_hot:
            self._log = CommitLog(path / "log", self.durability)
            hot = self._tiers[0]
            replayed = 0
            feed = self._feed
            for rec in self._log.recover():
                if feed is not None:  # the commit log re-feeds what a crash kept from the feed
                    feed.recovered(rec.version, rec.timestamp, rec.batches)
                self._time.record(rec.version, rec.timestamp)
                if rec.version > flushed:
                    hot.set(rec.version, rec.batches)
                    replayed += 1
                version = max(version, rec.version)
            rep = self._log.recovery
            self.recovery = {"records": rep.records, "replayed": replayed, "torn_tail": rep.torn_tail,
                             "flushed": flushed}
            if rep.torn_tail:
                log.warning("store %s: recovered with a torn commit-log tail %s", path, rep.torn_tail)
        else:
            self.recovery = {"records": 0, "replayed": 0, "torn_tail": None, "flushed": flushed}
        self.recovery["version"] = version
        return version

    def _finish_open(self, version: int) -> None:
        self._version = version
        self._oracle = Oracle(version + 1, window_commits=self._conflict_window)
        self._router = Router(self._tiers)
        first = self._tiers[0]
        self._first = first
        self._single = len(self._tiers) == 1
        self._lookup_first = first.lookup
        self._get_first = first.get
        self._warm_first = first.name == "warm"
        # The commit path hands the hot tier rows the transaction already validated.
        self._apply_first = getattr(first, "apply", first.set)
        log_ = self._log
        truncate: Callable[[int], int] | None = None if log_ is None else log_.truncate_through
        if truncate is not None and self._feed is not None:  # the feed is durable first
            truncate = self._feed.guard(truncate)
        self._mover = Mover(self._router, self.layout, lambda: self._version, truncate,
                            None if log_ is None else self._drain_log)
        self._track_gc = not self.retention.keeps_everything or self._min_floor > 0
        self._gc = DropWorker(self._tiers, self._mover._move_lock, self._retained_points,
                              interval=self._gc_interval)
        if not self._track_gc:
            self._gc._full_scan = True
        if self._feed is not None:
            self._feed.finish_recovery(version, lambda lo, hi: scan_commits(self._router, lo, hi),
                                       self._time.time_of)
            self.recovery["changefeed"] = self._feed.recovery
            if log_ is not None:  # the feed reuses the commit log's encoded record
                self._feed.encoded = lambda: log_.last_record
            self._commit_observers = [*self._commit_observers, self._feed.observe]
        if self.path is not None:
            self._mover.start()
            if self._track_gc:
                self._gc.start()

    # -- helpers -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("store is closed; open it again with engine.open()")

    def history_floor(self) -> int:
        """The lowest version every read may use (0 = all history kept)."""
        return max(self.retention.floor(self._version, self._time.version_at), self._min_floor)

    def _drain_log(self) -> None:
        """Hand the commit log's buffered records ("none" durability) to the OS."""
        log_ = self._log
        if log_ is not None and log_.durability == "none":
            try:
                log_.flush(sync=False)
            except OSError as exc:
                raise StorageIOError(f"commit log write failed ({exc.strerror or exc})") from exc

    def _retained_points(self) -> ReadPointSet:
        # GC plans from the newest visible version: every commit up to it must survive a
        # kill -9 before GC removes what those commits superseded ("none" durability).
        self._drain_log()
        extra = self._pins.versions() | set(self._readpoints.versions())
        return ReadPointSet.of(self.history_floor(), extra)

    def _retained(self, version: int, own_hold: bool = False) -> bool:
        """Is ``version`` a pinned or held read point (not counting the caller's own hold)?"""
        if version in self._pins.versions():
            return True
        return self._readpoints.count(version) > (1 if own_hold else 0)

    def _read_version(self, version: object, table: EntryKind | None = None,
                      own_hold: bool = False) -> int:
        """Validate a read version (None = latest). Raises Future/HistoryUnavailable.

        ``own_hold``: the caller already holds ``version`` as a read point; that hold does
        not count as a reason to keep the version.
        """
        if version is None:
            return self._version
        v = version if type(version) is int and version >= 0 else check_version(version)
        current = self._version
        if v > current:
            raise FutureVersionError(
                f"version {v} is in the future: the newest committed version is {current}")
        policies = self._policies._pins  # the dict itself: all() copies it
        if table is not None and v < current and policies \
                and str(table) in policies and not self._retained(v, own_hold):
            raise HistoryUnavailable(
                f"table {table} keeps only its latest versions (set_table_policy); version {v} "
                f"is not retained: read at {current}, or pin versions you need with store.pin()")
        if self._track_gc and v < current:  # a finite retention, or a floor in the marker
            floor = self.history_floor()
            if v < floor and not self._retained(v, own_hold):
                raise HistoryUnavailable(
                    f"version {v} is below the history floor {floor} and is not pinned; "
                    f"read at {floor} or later, or pin versions you need with store.pin()")
        return v

    def _hold(self, version: object, table: EntryKind | None = None) -> tuple[int, int]:
        """Validate a read version (None = latest) and hold it as a read point.

        Returns ``(version, token)``; release the token when the read is over. The hold is
        taken *before* the version is validated, so a GC pass that starts in between already
        sees it. For the latest version the loop re-reads when commits pushed the floor past
        the version just read (possible with a tiny ``history_versions`` and a fast writer).
        """
        if version is None:
            while True:
                v = self._version
                token = self._readpoints.acquire(v)
                if self.retention.keeps_everything or v >= self.history_floor():
                    return v, token
                self._readpoints.release(token)
        token = self._readpoints.acquire(check_version(version))
        try:
            v = self._read_version(version, table, own_hold=True)
        except BaseException:
            self._readpoints.release(token)
            raise
        return v, token

    def _lookup(self, table: EntryKind, key: bytes, version: int) -> RawEntry | None:
        if self._single:
            return self._lookup_first(table, key, version)
        return self._router.lookup(table, key, version)

    def _scan(self, table: EntryKind, lo: Bound, hi: Bound, version: int, reverse: bool,
              chunk: int = DEFAULT_BATCH_SIZE) -> Iterator[RawEntry]:
        return self._router.scan(table, lo, hi, version, reverse, chunk)

    # -- public reads ------------------------------------------------------------------

    @property
    def version(self) -> int:
        """The newest committed and visible version (0 before the first commit)."""
        return self._version

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, table: EntryKind, key: bytes, version: int | None = None) -> bytes | None:
        """The value of ``key`` as of ``version`` (None = latest); None if absent or deleted.

        Complexity: O(1) in the hot tier at the latest version; one probe per tier below.
        Raises: FutureVersionError, HistoryUnavailable, InvalidKeyError, ClosedError.
        """
        if self._closed:
            raise ClosedError("store is closed; open it again with engine.open()")
        if table.__class__ is not EntryKind:
            check_table(table)
        if type(key) is not bytes:
            key = as_bytes(key)
        if version is None:
            if self._single:
                return self._get_first(table, key, self._version)
            return self._router.get(table, key, self._version)
        if not self._track_gc and type(version) is int and 0 <= version <= self._version \
                and not self._policies._pins:  # the dict itself: PinStore.__len__ is a Python call
            # Fast path: all history is kept and no table policy trims it, so no GC can remove
            # a version this read needs (only tombstones no read can tell from "absent"): the
            # read needs no hold. bench_store "get old".
            if self._single:
                return self._get_first(table, key, version)
            return self._router.get(table, key, version)
        # An explicit version is held as a read point while it is validated and read, so a
        # concurrent GC pass cannot remove what this read needs.
        v, token = self._hold(version, table)
        try:
            if self._single:
                return self._get_first(table, key, v)
            return self._router.get(table, key, v)
        finally:
            self._readpoints.release(token)

    def get_many(self, table: EntryKind, keys: Any, version: int | None = None) -> list[bytes | None]:
        """``[store.get(table, k, version) for k in keys]`` as one batch (the multi-get fast
        path): one read version for every key, each tier asked once for the keys still
        unanswered.

        Complexity: O(len(keys)) per tier consulted.
        Raises: FutureVersionError, HistoryUnavailable, InvalidKeyError, ClosedError; on bad
            input nothing is read.
        """
        self._check_open()
        t = check_table(table)
        try:
            ks = list(keys)
        except TypeError:
            raise InvalidKeyError(f"keys must be an iterable of bytes keys, got {type(keys).__name__}") from None
        if not all(type(k) is bytes for k in ks):
            ks = [as_bytes(k) for k in ks]
        v, token = self._hold(version, t)
        try:
            if self._single:
                many = getattr(self._first, "get_many", None)
                if many is not None:
                    return many(t, ks, v)  # type: ignore[no-any-return]
                get = self._get_first
                return [get(t, k, v) for k in ks]
            return self._router.get_many(t, ks, v)
        finally:
            self._readpoints.release(token)

    def contains(self, table: EntryKind, key: bytes, version: int | None = None) -> bool:
        return self.get(table, key, version) is not None

    def range(self, table: EntryKind, start: Any = None, end: Any = None, *,
              version: int | None = None, reverse: bool = False, prefix: Any = None,
              batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[tuple[bytes, bytes]]:
        """Iterate ``(key, value)`` with ``start <= key < end`` as of ``version``.

        ``start``/``end`` may be :class:`Bound` objects to choose inclusivity; ``prefix``
        restricts to keys starting with it. Deleted keys are skipped. The read version is
        fixed when the call is made and held (against GC) until the iterator is exhausted
        or closed.
        """
        self._check_open()
        t = check_table(table)
        lo, hi = range_bounds(start, end, prefix)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        v, token = self._hold(version, t)
        # One generator for the whole scan: it releases the hold when exhausted or closed.
        return self._router.scan_items(t, lo, hi, v, reverse, batch_size,
                                       release=lambda: self._readpoints.release(token))

    def range_next(self, table: EntryKind, cursor: RangeCursor, start: Any = None, end: Any = None,
                   version: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE, *,
                   reverse: bool = False) -> RangeBatch:
        """One page of a range scan, resumable from ``cursor`` (tier-shaped paging).

        Returns up to ``batch_size`` live entries (deleted keys are skipped) and advances
        ``cursor``; ``has_more`` is False (and ``cursor.exhausted`` True) at the end.
        """
        self._check_open()
        t = check_table(table)
        if not isinstance(cursor, RangeCursor):
            raise InvalidKeyError(f"cursor must be a RangeCursor, got {type(cursor).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        lo, hi = range_bounds(start, end, None)
        if cursor.exhausted:
            return RangeBatch.empty()
        v, token = self._hold(version, t)
        if cursor.last_key is not None:
            if reverse:
                hi = Bound.excluded(cursor.last_key)
            else:
                lo = Bound.excluded(cursor.last_key)
        out: list[RawEntry] = []
        has_more = False
        try:
            it = self._router.scan(t, lo, hi, v, reverse, batch_size + 1)
            try:
                for e in it:
                    if e.value is None:
                        continue
                    if len(out) == batch_size:
                        has_more = True
                        break
                    out.append(e)
            finally:
                it.close()  # type: ignore[attr-defined]
        finally:
            self._readpoints.release(token)
        if out:
            cursor.last_key = out[-1].key
        if not has_more:
            cursor.exhausted = True
        return RangeBatch(out, has_more)

    def history(self, table: EntryKind, key: bytes) -> list[tuple[int, bytes | None]]:
        """Every retained version of ``key`` as ``(version, value or None)``, newest first."""
        self._check_open()
        t = check_table(table)
        k = key if type(key) is bytes else as_bytes(key)
        current = self._version
        return [(v, val) for v, val in self._router.history(t, k) if v <= current]

    def snapshot(self, version: int | None = None) -> Snapshot:
        """A read-only view at ``version`` (None = latest), retained until closed."""
        self._check_open()
        v, token = self._hold(version)
        return Snapshot(self, v, token)

    # -- transactions ------------------------------------------------------------------

    def begin(self, isolation: str = "serializable", *, durability: str | None = None) -> Transaction:
        """Start an optimistic transaction reading at the current version.

        ``isolation``: ``"serializable"`` (default) or ``"snapshot"`` (write-write only).
        ``durability``: override the store's mode for this commit (``"sync"`` waits for fsync).
        """
        self._check_open()
        if isolation not in ISOLATION_LEVELS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATION_LEVELS)}, got {isolation!r}")
        if durability is not None and durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {', '.join(DURABILITY_MODES)}, got {durability!r}")
        # Register in the conflict window *before* choosing the read version: a commit that
        # evicts window records between the two steps then cannot evict one this
        # transaction needs (Oracle.register keeps records above the oldest registration).
        active = self._active_txns.acquire(self._version)
        v, token = self._hold(None)
        tx = Transaction(self, v, isolation, durability, token)
        tx._active = active
        return tx

    def _commit(self, tx: Transaction) -> int:
        writes = tx._writes
        if self._read_only is not None and (writes or tx._drops):
            raise ReadOnlyError(self._read_only)
        serializable = tx.isolation == "serializable"
        oracle = self._oracle
        if not writes and tx._drops:
            with self._commit_lock:
                self._check_open()
                oracle.check(tx.read_version, (), tx._reads, tx._ranges, tx._read_all, serializable)
            tx._release()
            self._drop_explicit(tx._drops)
            return tx.read_version
        if not writes:
            if serializable and (tx._reads or tx._ranges or tx._read_all):
                with self._commit_lock:
                    self._check_open()
                    oracle.check(tx.read_version, (), tx._reads, tx._ranges, tx._read_all, True)
            return tx.read_version
        batches: dict[EntryKind, list[tuple[bytes, bytes | None]]] = {}
        last_table: object = None
        rows: list[tuple[bytes, bytes | None]] = []
        if tx._table.__class__ is EntryKind:  # one table: the batch is built in C
            batches[tx._table] = list(zip(map(_KEY_OF, writes), writes.values()))
            writes_items: Any = ()
        else:
            writes_items = writes.items()
        for (table, key), value in writes_items:
            if table is not last_table:  # skips a Python-level EntryKind hash per write
                last_table = table
                rows = batches.get(table)  # type: ignore[assignment]
                if rows is None:
                    rows = batches[table] = []
            rows.append((key, value))
        durability = tx.durability or self.durability
        if self._group_commit is not None:
            # A replicated ack="sync" store: one leader checks, publishes and applies a
            # whole group of waiting commits per quorum round trip (engine/replication).
            version, end = self._group_commit(tx, batches, durability)
        else:
            with self._commit_lock:
                self._check_open()
                oracle.check(tx.read_version, writes.keys(), tx._reads, tx._ranges, tx._read_all,
                             serializable)
                version = oracle.next_version
                ts = time.time()
                if self._pre_apply is not None:
                    # Async replication queues the commit here, under the lock (one version
                    # order): an error leaves nothing applied.
                    self._pre_apply(version, ts, batches)
                end = self._apply_locked(tx, version, ts, batches, durability)
        if durability == "sync" and self._log is not None:
            self._log.sync_to(end)
        tx._release()  # the committed transaction no longer holds its read point
        if self._track_gc:
            self._gc.note_commit(writes.keys())
        if tx._drops:
            self._drop_explicit(tx._drops)
        policies = self._policies.all() if self._policies._pins else None  # no copy per commit
        if policies:
            eager = [(t, k, None, policies[str(t)], False) for t, rows in batches.items()
                     if str(t) in policies for k, _ in rows]
            if eager:
                points = ReadPointSet.of(version, self._pins.versions() | set(self._readpoints.versions()))
                self._gc.drop_explicit(eager, points)
        if self._mover.can_flush:
            # The mover flushes from half the hot budget; at the full budget committers
            # wait for it (back-pressure), so a fast loader cannot outrun the flush.
            hot_bytes = self._first.bytes  # type: ignore[attr-defined]
            budget = self.layout.hot_bytes
            if hot_bytes > budget // 2:
                self._mover.kick()
                if hot_bytes > budget:
                    self._mover.wait_for_flush(timeout=10.0)
        return version

    def _write_first(self, version: int, ts: float,
                     batches: dict[EntryKind, list[tuple[bytes, bytes | None]]], sync: bool) -> int:
        """Make commit ``version`` durable-to-be and visible to the first tier (under the
        commit lock): commit-log append then hot apply, or the warm tier's own WAL when warm
        is first. Returns the log offset a ``"sync"`` commit waits for (0: none)."""
        end = 0
        if self._log is not None:
            end = self._log.append(version, ts, batches)
        if self._warm_first:
            try:
                self._first.set(version, batches, sync=sync,  # type: ignore[call-arg]
                                meta={VERSION_META: U64.pack(version)})
            except StorageIOError as exc:
                _release_frames(exc)
                raise
        else:
            self._apply_first(version, batches)
        return end

    def _apply_locked(self, tx: Transaction, version: int, ts: float,
                      batches: dict[EntryKind, list[tuple[bytes, bytes | None]]],
                      durability: str) -> int:
        """Apply checked commit ``version`` of ``tx`` (the caller holds the commit lock and
        ran the conflict check): commit-log append (or the warm WAL), apply to the first
        tier, conflict-window registration, time index, then :attr:`version` and the commit
        observers. Returns the log offset a ``"sync"`` commit waits for."""
        end = self._write_first(version, ts, batches, durability == "sync")
        self._oracle.allocate()
        self._active_txns.release(tx._active)
        tx._active = 0
        self._publish_version(version, ts, batches, frozenset(tx._writes))
        return end

    def _publish_version(self, version: int, ts: float,
                         batches: dict[EntryKind, list[tuple[bytes, bytes | None]]],
                         writes: frozenset[tuple[EntryKind, bytes]]) -> None:
        """The last steps of a commit applied to the first tier (under the commit lock):
        conflict-window registration, time index, :attr:`version`, commit observers."""
        self._oracle.register(version, writes, self._active_txns.oldest())
        self._time.record(version, ts)
        self._version = version
        if self._commit_observers:  # the only cost for stores without observers
            for observe in self._commit_observers:
                observe(version, ts, batches)

    def _apply_replicated(self, version: int, ts: float,
                          batches: dict[EntryKind, list[tuple[bytes, bytes | None]]], *,
                          jump: bool = False, locked: bool = False) -> None:
        """Apply one commit shipped by a primary at its own ``version`` and commit time ``ts``
        (engine/replication; the caller verified the message's checksum and types).

        The same steps as a local commit without the conflict check: commit-log append (or
        the warm WAL), apply, conflict-window registration, then :attr:`version`. ``version``
        must be :attr:`version` + 1; ``jump`` allows a higher one (loading a snapshot whose
        older versions GC removed). ``locked``: the caller holds the commit lock (a primary
        repairing from inside its pre-apply hook). Raises ValueError for any other version,
        before any write.
        """
        writes = [(t, k) for t, rows in batches.items() for k, _ in rows]
        with contextlib.nullcontext() if locked else self._commit_lock:
            self._check_open()
            cur = self._version
            if version != cur + 1 and not (jump and version > cur):
                raise ValueError(f"replicated commit {version} does not follow version {cur}")
            end = self._write_first(version, ts, batches, self.durability == "sync")
            self._oracle._next = version + 1
            self._publish_version(version, ts, batches, frozenset(writes))  # a replica's feed too
        if self.durability == "sync" and self._log is not None:
            self._log.sync_to(end)
        if self._track_gc:
            self._gc.note_commit(writes)
        if self._mover.can_flush:
            hot_bytes = self._first.bytes  # type: ignore[attr-defined]
            if hot_bytes > self.layout.hot_bytes // 2:
                self._mover.kick()
                if hot_bytes > self.layout.hot_bytes:
                    self._mover.wait_for_flush(timeout=10.0)

    # -- replication (engine/replication sits above the store: imported on use) ---------

    def replicate(self, servers: list[str], stream: str, *, replicas: int = 3,
                  ack: str = "sync", **options: Any) -> Any:
        """Ship every commit from now on to the JetStream stream ``stream`` (this store
        becomes its primary). ``ack="sync"``: a commit returns after JetStream's quorum
        acknowledged it; ``"async"``: a background shipper publishes (see
        :meth:`replication_lag`). See docs/SCALING.md. Returns the primary link.

        Raises: FencedError (another store is the stream's primary), ReplicationError.
        """
        from .replication.primary import start_primary
        self._check_open()
        return start_primary(self, servers=servers, stream=stream, replicas=replicas, ack=ack,
                             **options)

    def replication_lag(self) -> int:
        """Commits applied locally but not yet acknowledged by the stream (0 with
        ``ack="sync"`` or without replication)."""
        rep = self._replication
        return 0 if rep is None else int(rep.lag())

    def replication_snapshot(self) -> Any:
        """Write a snapshot of this primary to the stream's object store now (bootstrap for
        new replicas; the stream is then trimmed below it). Returns its description."""
        rep = self._replication
        if rep is None or not hasattr(rep, "snapshot"):
            raise ValueError("this store is not a replication primary; call store.replicate() first")
        return rep.snapshot()

    def erase(self, table: EntryKind, key: bytes) -> int:
        """Remove every version of ``key`` from every tier, history and tombstones included,
        whatever the retention, pins or open snapshots (readers at old versions then see
        the key as absent). Returns the number of versions removed.

        After the next :meth:`compact` returns, the erased values' bytes are in no file under
        the store's directory: the commit log is flushed past the key's versions and
        retired (or, without a warm tier, rewritten without them), RocksDB compaction drops
        them from SST and WAL files, and the cold tier rewrites its segments. Costs a flush
        (or a commit-log rewrite) now and a full compaction later; see docs/DECISIONS.md.

        Raises: InvalidKeyError, ClosedError, StorageIOError.
        """
        if self._read_only is not None:
            raise ReadOnlyError(self._read_only)
        try:
            return self._erase(table, key)
        except StorageIOError as exc:
            _release_frames(exc)
            raise

    def _erase(self, table: EntryKind, key: bytes) -> int:
        """:meth:`erase` (errors not yet stripped of tier frames)."""
        self._check_open()
        t = check_table(table)
        k = key if type(key) is bytes else as_bytes(key)
        before = {v for tier in self._tiers for v, _ in tier.get_all_versions(t, k)}
        self._forget_logged({(t, k): None})
        self._drop_explicit([(t, k, None, None, True)])
        if self._feed is not None:  # the change feed forgets the key's rows too
            self._feed.forget(t, k)
        after = {v for tier in self._tiers for v, _ in tier.get_all_versions(t, k)}
        return len(before - after)

    def _forget_logged(self, doomed: dict[tuple[EntryKind, bytes], set[int] | None]) -> None:
        """Make the commit log forget ``doomed`` rows ((table, key) -> versions, None = all),
        so a reopen cannot replay versions an erase or a drop removed from the hot tier: with
        a warm tier, flush past them (the closed log files are then deleted); without one,
        rewrite the closed files without those rows."""
        log_ = self._log
        if log_ is None or not doomed:
            return
        with self._commit_lock:
            self._check_open()
            log_.rotate()   # every record of those versions now sits in a closed file
            if not self._mover.can_flush:
                log_.rewrite_without(doomed)
        if self._mover.can_flush:
            self.flush()    # closed files are all <= the watermark: they are deleted

    def _drop_explicit(self, drops: list[tuple[EntryKind, bytes, int | None, int | None, bool]]) -> None:
        """Apply ``tx.drop`` requests. They may remove a key's newest version (``force``), so
        the hot tier's clean copies of those tables go too, before and after (see HotTier)."""
        forget = getattr(self._first, "forget_clean", None)
        tables = {d[0] for d in drops}
        if forget is not None:
            for t in tables:
                forget(t)
        hot = self._first if self._first.name == "hot" and self._log is not None else None
        held: dict[tuple[EntryKind, bytes], set[int]] = {}
        if hot is not None:  # versions only the commit log keeps durable: see _forget_logged
            for d in drops:
                held[(d[0], d[1])] = {v for v, _ in hot.get_all_versions(d[0], d[1])}
        try:
            self._gc.drop_explicit(drops)
        finally:
            if forget is not None:
                for t in tables:
                    forget(t)
        if hot is not None:
            gone: dict[tuple[EntryKind, bytes], set[int] | None] = {}
            for (t, k), vs in held.items():
                left = vs.difference(v for v, _ in hot.get_all_versions(t, k))
                if left:
                    gone[(t, k)] = left
            self._forget_logged(gone)

    # -- commit observers --------------------------------------------------------------

    def add_commit_observer(self, observer: CommitObserver) -> None:
        """Call ``observer(version, time, batches)`` after every commit that writes.

        ``batches`` is ``{EntryKind: [(key, value or None), ...]}`` exactly as committed (do not
        mutate it); ``time`` is the commit's wall-clock time. Observers run in registration
        order under the commit lock, after the version is applied and visible and after its
        commit-log record is written, before a ``"sync"`` commit waits for its fsync: they
        see every commit once, in version order, and must be quick (no blocking I/O). An
        exception from an observer propagates to the committer, whose commit is nevertheless
        applied. Commits without writes (read-only, drop-only) are not observed. A store
        without observers pays one attribute test per commit.

        Notes: thread safety
            Safe from any thread at any time: the list is replaced (copy-on-write) under the
            commit lock, so a commit sees an observer for all of it or not at all.
        """
        if not callable(observer):
            raise TypeError(f"a commit observer must be callable, got {type(observer).__name__}")
        with self._commit_lock:
            self._commit_observers = [*self._commit_observers, observer]

    def remove_commit_observer(self, observer: CommitObserver) -> bool:
        """Stop calling ``observer``; True if it was registered."""
        with self._commit_lock:
            if observer not in self._commit_observers:
                return False
            self._commit_observers = [o for o in self._commit_observers if o is not observer]
            return True

    # -- change feed (engine/mvcc/changefeed.py) ---------------------------------------

    def _make_feed(self, directory: Path | None) -> ChangeFeed:
        return ChangeFeed(directory, durability=self.durability,
                          write_through=self.layout.tiers[0] != "hot",
                          history_floor=self.history_floor, current_version=lambda: self._version)

    def _require_feed(self) -> ChangeFeed:
        self._check_open()
        if self._feed is None:
            raise ChangefeedDisabled(
                f"store {self.path or '(memory)'} has no change feed: open it with "
                "engine.open(path, changefeed=True) (the choice is remembered)")
        return self._feed

    @property
    def changefeed(self) -> bool:
        """True when this store records a change feed (``engine.open(..., changefeed=True)``)."""
        return self._feed is not None

    def changes(self, after: int = 0, *, tables: Any = None, wait: bool = False,
                timeout: float | None = None) -> Iterator[Change]:
        """Every commit above version ``after``, in version order, as :class:`engine.Change`.

        ``tables``: only these tables' writes (commits touching none of them are skipped).
        ``wait``: after the last commit, wait for new ones; the iteration ends when
        ``timeout`` seconds pass without one (``None``: until the store closes). Each commit
        appears once, as soon as it is visible to reads. docs/CHANGEFEED.md.

        Raises: ChangefeedDisabled, ChangesTrimmed (``after`` below the feed's floor; also
        mid-iteration if the floor passes a slow reader), InvalidVersionError, ClosedError.
        """
        return self._require_feed().read(after, tables=tables, wait=wait, timeout=timeout)

    def consumer(self, name: str) -> Consumer:
        """The durable change-feed consumer ``name`` (created at the feed's floor if new).

        The feed keeps every change above the lowest consumer ``position``; ``ack(version)``
        moves it (persisted atomically). Raises: ChangefeedDisabled, InvalidKeyError.
        """
        return self._require_feed().consumer(name)

    def consumers(self) -> dict[str, int]:
        """Every change-feed consumer as ``{name: position}``."""
        return self._require_feed().consumers()

    def drop_consumer(self, name: str) -> bool:
        """Remove a consumer (the feed may then trim what only it held); True if it existed."""
        return self._require_feed().drop_consumer(name)

    # -- pins --------------------------------------------------------------------------

    def pin(self, version: int, name: str) -> None:
        """Keep ``version`` readable under ``name`` until :meth:`unpin` (durable)."""
        self._check_open()
        n = check_pin_name(name)
        v = check_version(version)
        token = self._readpoints.acquire(v)
        try:
            self._read_version(v, own_hold=True)
            self._pins.set(n, v)
        finally:
            self._readpoints.release(token)

    def unpin(self, name: str) -> bool:
        """Release a pin; True if it existed."""
        self._check_open()
        return self._pins.remove(check_pin_name(name))

    def pins(self) -> dict[str, int]:
        """Every pin as ``{name: version}``."""
        self._check_open()
        return self._pins.all()

    # -- time --------------------------------------------------------------------------

    def version_at(self, timestamp: float) -> int:
        """The version that was current at wall-clock ``timestamp`` (0 if before the first)."""
        self._check_open()
        return self._time.version_at(float(timestamp))

    def commit_time(self, version: int) -> float | None:
        """Wall-clock time of ``version``'s commit (millisecond resolution), if known."""
        self._check_open()
        return self._time.time_of(check_version(version))

    # -- maintenance -------------------------------------------------------------------

    def flush(self, watermark: int | None = None, *, progress: Any = None) -> dict[str, Any]:
        """Make buffered commits durable and move hot versions <= ``watermark`` to warm.

        ``watermark`` defaults to :attr:`version` (everything committed). Without a warm tier
        only the durability part applies. Returns ``{"moved_versions", "watermark"}``.
        """
        self._check_open()
        if self._log is not None:
            self._log.flush(sync=True)
        warm = self._warm()
        if warm is not None and self._warm_first:
            warm.flush_wal(sync=True)
        self._time.flush()
        if watermark is not None:
            check_version(watermark, "watermark")
        return self._mover.flush(watermark, **({"progress": progress} if progress else {}))

    def demote(self, cutoff: int | None = None, *, policy: str | None = None,
               progress: Any = None) -> dict[str, Any]:
        """Move old versions warm -> cold (no-op without a cold tier).

        ``cutoff`` defaults to :attr:`version`; ``policy`` to the layout's
        (``"history"``: move superseded versions; ``"age"``: move every version <= cutoff).
        """
        self._check_open()
        if cutoff is not None:
            check_version(cutoff, "cutoff")
        return self._mover.demote(cutoff, policy, **({"progress": progress} if progress else {}))

    def gc(self, *, compact: bool = True, progress: Any = None) -> dict[str, Any]:
        """Run one garbage-collection pass now; return what it removed.

        Removes every version no retained read point needs (DESIGN.md invariant 4) among
        the keys written since the last pass (all keys on the first pass after opening).
        With ``compact`` (default) the persistent tiers that lost data are compacted so the
        space is really returned. Returns ``{"removed_versions", "removed_bytes": {tier:
        bytes}, "keys_examined", "floor"}``.
        """
        self._check_open()
        try:
            result = self._gc.run_pass(progress)
            if compact:
                for t in self._tiers:
                    if t.name != "hot" and result["removed_bytes"].get(t.name):
                        t.compact()  # type: ignore[attr-defined]
        except StorageIOError as exc:
            _release_frames(exc)  # a kept error must not keep RocksDB open (see _release_frames)
            raise
        return result

    def set_table_policy(self, table: EntryKind, *, keep_last_versions: int | None) -> None:
        """Declare that ``table`` keeps only its newest ``keep_last_versions`` versions per key.

        Superseded versions are removed eagerly after each commit (pins and open snapshots
        still win); reads of such a table below the latest version that no pin or snapshot
        retains raise HistoryUnavailable. ``None`` removes the policy. Durable.
        """
        self._check_open()
        t = check_table(table)
        if keep_last_versions is None:
            self._policies.remove(str(t))
            return
        if isinstance(keep_last_versions, bool) or not isinstance(keep_last_versions, int) \
                or keep_last_versions < 1:
            raise ValueError(f"keep_last_versions must be an int >= 1 or None, got {keep_last_versions!r}")
        self._policies.set(str(t), keep_last_versions)

    def table_policies(self) -> dict[str, int]:
        """``{table name: keep_last_versions}`` for every table with a policy."""
        return self._policies.all()

    def compact(self) -> dict[str, Any]:
        """Compact the persistent tiers (RocksDB compaction; cold segment merge)."""
        self._check_open()
        out: dict[str, Any] = {}
        for t in self._tiers:
            if t.name != "hot":
                out[t.name] = t.compact()  # type: ignore[attr-defined]
        return out

    def backup(self, dest: str | os.PathLike[str], *, progress: Any = None,
               **storage_options: Any) -> dict[str, Any]:
        """Write a consistent, checksummed backup as of the current version to ``dest`` (an
        empty or new directory, or an object-store URL) while commits continue. See
        :func:`engine.backup.backup`; restore with ``engine.restore_backup``."""
        from .backup import backup

        return backup(self, dest, progress=progress, **storage_options)

    def clone(self, dest: str | os.PathLike[str], *, version: int | None = None,
              cold_url: str | None = None, cold_storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
        """Create at ``dest`` a writable store whose history ends at ``version`` (default:
        now), sharing immutable files by hard link. See :func:`engine.backup.clone`."""
        from .backup.clone import clone_store

        return clone_store(self, dest, version=version, cold_url=cold_url,
                           cold_storage_options=cold_storage_options)

    def check(self) -> dict[str, Any]:
        """Verify every tier's invariants and band order. Raises CorruptionError."""
        self._check_open()
        for t in self._tiers:
            t.check()
        keys = check_band_order(self._tiers)
        out: dict[str, Any] = {"ok": True, "tiers": [t.name for t in self._tiers], "band_order_keys": keys}
        if self._feed is not None:
            out["changefeed"] = self._feed.check()
        return out

    def stats(self) -> dict[str, Any]:
        """Per-tier counts and bytes, plus store-level figures."""
        self._check_open()
        out: dict[str, Any] = {
            "version": self._version,
            "layout": self.layout.name,
            "durability": self.durability,
            "tiers": self._router.stats(),
            "read_points": len(self._readpoints),
            "pins": len(self._pins.all()),
            "history_floor": self.history_floor(),
            "movement": dict(self._mover.counters),
            "gc": dict(self._gc.counters, pending_candidates=self._gc.pending()),
        }
        if self._log is not None:
            out["commit_log_bytes"] = self._log.size_bytes()
        if self._feed is not None:
            out["changefeed"] = self._feed.stats()
        return out

    def tables(self) -> list[EntryKind]:
        """Every table that holds data in any tier."""
        self._check_open()
        return self._router.tables()

    # -- closing -----------------------------------------------------------------------

    def close(self) -> None:
        """Flush and release everything. Idempotent; later calls raise ClosedError."""
        if self._closed:
            return
        rep = self._replication
        if rep is not None:  # ships what async replication still holds, stops following
            stop = getattr(rep, "stop_commits", None)
            if stop is not None:
                stop()       # a commit racing close() fails rather than apply unshipped
            rep.close()
        with self._commit_lock:
            self._closed = True
        self._mover.stop()
        self._gc.stop()
        self._release_resources()

    def _release_resources(self) -> None:
        errors: list[BaseException] = []
        if self._feed is not None:  # first: it needs no tier, and its readers wake up
            try:
                self._feed.close()
            except OSError as exc:
                errors.append(exc)
        if self._log is not None:
            try:
                self._log.close()
            except OSError as exc:
                errors.append(exc)
        tm = getattr(self, "_time", None)
        if tm is not None:
            try:
                tm.close()
            except OSError as exc:
                errors.append(exc)
        # Every tier is closed and the store's LOCK released even when one of them fails
        # (e.g. RocksDB cannot flush on a full disk): a failed close must not leave the store
        # locked in this process for good. The first failure is raised afterwards.
        try:
            errors += _close_tiers(self._tiers)
        finally:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
        if errors:
            first = errors[0]
            if len(errors) == 1 and isinstance(first, StorageIOError):
                raise first
            raise StorageIOError(
                f"errors while closing the store: {'; '.join(str(e) for e in errors)}; the store "
                "is closed and unlocked: free the cause (e.g. disk space) and open it again") from first

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        return f"<tierdb.Store {where} layout={self.layout.name if hasattr(self, 'layout') else '?'} version={getattr(self, '_version', 0)}{' closed' if self._closed else ''}>"


def open(path: str | os.PathLike[str] | None = None, *, layout: Layout | str | None = None,
         retention: Retention | None = None, durability: str = "normal",
         **options: Any) -> Store:
    """Open (or create) a store.

    ``engine.open(None)`` is memory only. With a path, the default layout is hot + warm + cold
    (an existing store reopens with the layout it was created with).

    Raises:
        FormatError: ``path`` is not a tierdb store or was written by a newer tierdb.
        LockedError: another process has the store open.
        CorruptionError: the commit log has a damaged record before its tail.
    """
    return Store(path, layout=layout, retention=retention, durability=durability, **options)
