"""The change feed (CDC): every commit of an opted-in store, durable, in version order.

A store opened with ``engine.open(path, changefeed=True)`` registers a :class:`ChangeFeed` as
a commit observer. The feed keeps its own append-only, checksummed log under
``<store>/changes/`` (``feed-<first version, 20 digits>.log`` segments framed like the commit
log, plus a ``STATE`` file holding the trimmed floor and the durable consumers; formats in
docs/FORMATS.md), because the commit log is retired as soon as a flush moves its versions to
the warm tier.

Durability: a commit is in the feed iff it is in the store.

* Layouts with a commit log (hot tier first): the feed buffers records in memory and writes
  them in chunks; a commit the feed lost in a crash is still in the commit log, whose replay
  re-feeds it on the next open (:meth:`ChangeFeed.recovered`). The feed is written and
  fsynced before any commit-log file is retired (:meth:`ChangeFeed.guard`), so the log never
  forgets a record the feed has not made durable.
* Warm-first layouts (no commit log): each record is written (and, under ``"sync"``,
  fdatasynced) right after RocksDB applied the commit, under the commit lock. The only gap a
  kill -9 can leave is the commit in flight; recovery rebuilds missing versions from the
  tiers (:func:`scan_commits`).
* Feed records above the recovered store version (possible only under ``"none"``, whose
  commits a crash may lose) are truncated on open.

Retention: the feed keeps every change above its *floor*. With durable consumers the floor
follows the lowest consumer position; without consumers it follows the store's history floor
(``engine.Retention``; keep-everything keeps the whole feed). Whole segments at or below the
floor are deleted when the floor moves (on ``ack``, consumer removal and segment rotation).
Reading below the floor raises :class:`~engine.errors.ChangesTrimmed`.

Notes: thread safety
    :meth:`ChangeFeed.observe` runs under the store's commit lock and takes the feed lock
    (tail, segments, the active file), which readers and :meth:`sync` share. Readers hold it
    only to take a consistent view (segment list, bytes on disk, in-memory tail); they read
    files and yield outside it. Consumers, the ``STATE`` file and trimming have their own
    state lock, always taken before the feed lock, so an ``ack``'s fsync never blocks a
    committer; a committer trims (outside the feed lock) only after a segment rotation.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import (
    ChangesTrimmed,
    ClosedError,
    ConsumerRemoved,
    CorruptionError,
    FormatError,
    InvalidKeyError,
    StorageIOError,
)
from ..types import EntryKind
from .commitlog import REC_HEADER, decode_batches, encode_batches
from .feedlog import (
    FEED_DIR,
    FEED_HEADER,
    FILE_HEADER,
    STATE_NAME,
    VERSION,
    Writes,
    check_header,
    fsync_dir,
    read_state,
    records,
    scan_commits,
    scan_tail_segment,
    segment_name,
    truncate_file,
    write_state,
)
from .pins import atomic_write

__all__ = ["FEED_DIR", "Change", "ChangeFeed", "Consumer", "scan_commits"]

log = logging.getLogger("tierdb.changefeed")

SEGMENT_BYTES = 16 << 20   # rotate the active segment past this size
TAIL_RECORDS = 256         # buffered records (commit-log layouts) before a write


class Change(NamedTuple):
    """One commit as the change feed reports it.

    ``writes`` is ``{EntryKind: [(key, value or None), ...]}``: every row the commit wrote
    (``None`` is a tombstone), per table, in the order the transaction wrote them (rows the
    feed rebuilt from the tiers after a crash come in key order).
    """

    version: int
    time: float
    writes: Writes


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidKeyError(f"consumer name must be a non-empty str, got {name!r}")
    return name


class Consumer:
    """A durable named read point of the change feed (like a pin, for the feed only).

    ``position`` is the newest version the consumer has processed: the feed keeps every
    change above the lowest position of all consumers. Get one with ``store.consumer(name)``.
    """

    __slots__ = ("_feed", "name")

    def __init__(self, feed: ChangeFeed, name: str) -> None:
        self._feed = feed
        self.name = name

    @property
    def position(self) -> int:
        """The acknowledged version (changes at or below it may be trimmed)."""
        return self._feed.position(self.name)

    def ack(self, version: int) -> None:
        """Record that every change up to ``version`` is processed (durable, atomic).

        Moving back is allowed down to the feed's floor (to process changes again).
        Raises: FutureVersionError (above ``store.version``), ChangesTrimmed (below the
        floor), InvalidVersionError, ClosedError, ConsumerRemoved (a KeyError: the consumer
        was removed).
        """
        self._feed.ack(self.name, version)

    def changes(self, *, tables: Iterable[EntryKind] | None = None, wait: bool = False,
                timeout: float | None = None) -> Iterator[Change]:
        """``store.changes(after=self.position, ...)``."""
        return self._feed.read(self.position, tables=tables, wait=wait, timeout=timeout)

    def __repr__(self) -> str:
        try:
            return f"<tierdb.Consumer {self.name!r} position={self.position}>"
        except (ConsumerRemoved, ClosedError):
            return f"<tierdb.Consumer {self.name!r} (gone)>"


class ChangeFeed:
    """The feed of one store: segments on disk (or none, in memory), consumers, waiting.

    ``directory=None`` keeps everything in memory (memory-only stores). ``write_through``:
    write each record at once (warm-first layouts) instead of buffering (commit-log layouts).
    ``history_floor``: the store's history floor, the retention without consumers.
    ``current_version``: the store's newest visible version (bounds ``ack``).
    """

    def __init__(self, directory: Path | None, *, durability: str, write_through: bool,
                 history_floor: Callable[[], int], current_version: Callable[[], int],
                 segment_bytes: int | None = None) -> None:
        self.dir = directory
        self.durability = durability
        self._write_through = write_through and directory is not None
        self._history_floor = history_floor
        self._current_version = current_version
        self.segment_bytes = segment_bytes or SEGMENT_BYTES
        self._lock = threading.Lock()          # tail, segments, writing, floor reads
        self._state_lock = threading.RLock()   # consumers, STATE writes, trimming (taken first)
        self._trim_due = False
        self._gap_floor = 0  # a jump in versions (a replica loading a snapshot) raises the floor
        self._cond = threading.Condition(self._lock)
        self._waiters = 0
        # Not yet on disk (everything, in memory): (version, time, writes, framed record or
        # None). The record is the commit log's own bytes when it has them (same framing).
        self._tail: list[tuple[int, float, Writes, bytes | None]] = []
        self.encoded: Callable[[], bytes | None] | None = None
        self._segments: list[tuple[int, Path]] = []       # (first version, path), oldest first
        self._fd: int | None = None
        self._active_size = 0
        self._disk_last = 0   # newest version written to a segment
        self._last = 0        # newest version fed
        self._floor = 0
        self._consumers: dict[str, int] = {}
        self._closed = False
        self._broken: str | None = None
        self._fresh = True
        self.recovery: dict[str, Any] = {}
        if directory is not None:
            self._load()

    # -- opening and recovery -----------------------------------------------------------

    def _load(self) -> None:
        d = self.dir
        assert d is not None
        d.mkdir(parents=True, exist_ok=True)
        for tmp in d.glob("*.tmp"):
            tmp.unlink()
        state = d / STATE_NAME
        if state.exists():
            self._fresh = False
            meta = read_state(state)
            self._floor = int(meta["floor"])
            self._consumers = {str(k): int(v) for k, v in meta["consumers"].items()}
        for p in sorted(d.glob("feed-*.log")):
            try:
                first = int(p.name[len("feed-"):-len(".log")])
            except ValueError:
                raise FormatError(f"unexpected file in the change feed directory: {p.name}", path=p) from None
            self._segments.append((first, p))
        torn = None
        if self._segments:
            first, p = self._segments[-1]
            last, good, size = scan_tail_segment(p)
            if good < size:
                torn = {"file": str(p), "offset": good, "bytes": size - good}
                log.warning("change feed %s: torn tail of %d bytes at offset %d truncated", p, size - good, good)
                truncate_file(p, good)
                if good < FEED_HEADER.size:
                    self._segments.pop()
            self._active_size = good
            # versions are gap-free across segments: a segment with no whole record
            # follows the one holding ``first - 1``
            self._disk_last = last or max(first - 1, self._floor)
        else:
            self._disk_last = self._floor
        self._last = self._disk_last
        self.recovery = {"torn_tail": torn, "disk_last": self._disk_last}

    def _write_state(self) -> None:
        if self.dir is not None:
            write_state(self.dir, self._floor, self._consumers)

    def recovered(self, version: int, timestamp: float, batches: Writes) -> None:
        """Commit-log replay during the store's recovery: re-feed what the feed lacks."""
        if version > self._last:
            self._tail.append((version, timestamp, batches, None))
            self._last = version

    def finish_recovery(self, version: int, rebuild: Callable[[int, int], list[tuple[int, float | None, Writes]]],
                        commit_time: Callable[[int], float | None]) -> None:
        """Make the feed agree with the recovered store at ``version``; then persist it.

        A new feed starts at ``version`` (earlier commits are below its floor). Records above
        ``version`` are dropped; versions still missing are rebuilt from the tiers.
        """
        if self._fresh:
            self._floor = self._disk_last = self._last = version
            self._tail = []
            for _first, p in self._segments:
                p.unlink()
            self._segments = []
            self._write_state()
            self._fresh = False
            self.recovery.update(rebuilt=0, dropped=0)
            return
        dropped = 0
        if self._last > version:  # only "none" durability: commits the store lost
            dropped = self._last - version
            self._tail = [r for r in self._tail if r[0] <= version]
            if self._disk_last > version:
                self._truncate_disk_above(version)
            self._last = self._tail[-1][0] if self._tail else self._disk_last
            # The versions above ``version`` will be new commits: consumers and the floor
            # that had passed the lost ones come back, so nobody skips the new ones.
            clamped = {n: min(p, version) for n, p in self._consumers.items()}
            if clamped != self._consumers or self._floor > version:
                self._consumers, self._floor = clamped, min(self._floor, version)
                self._write_state()
        rebuilt = 0
        if self._last < version:
            for v, ts, writes in rebuild(self._last, version):
                self._tail.append((v, ts if ts is not None else (commit_time(v) or time.time()), writes, None))
                rebuilt += 1
            self._last = version
            log.warning("change feed %s: rebuilt %d commit(s) up to version %d from the tiers",
                        self.dir, rebuilt, version)
        self.recovery.update(rebuilt=rebuilt, dropped=dropped)
        if self.dir is not None:
            with self._lock:
                self._write_tail_locked()
                self._sync_locked()

    def _truncate_disk_above(self, version: int) -> None:
        while self._segments and self._segments[-1][0] > version:
            _first, p = self._segments.pop()
            p.unlink()
        if self._segments:
            p = self._segments[-1][1]
            data = p.read_bytes()
            cut = FEED_HEADER.size
            for v, _payload, end in records(data, p, FEED_HEADER.size, len(data)):
                if v > version:
                    break
                cut = end
            truncate_file(p, cut)
        self._disk_last = min(self._disk_last, version)

    # -- writing ------------------------------------------------------------------------

    def observe(self, version: int, timestamp: float, batches: Writes) -> None:
        """The commit observer: feed one commit (under the store's commit lock)."""
        with self._lock:
            if version != self._last + 1:
                # Versions below were never fed (a replica bootstrapped from a snapshot jumps
                # to the snapshot's version): the floor rises to just below this one.
                self._gap_floor = max(self._gap_floor, version - 1)
                self._trim_due = True
            fd = self._fd
            if (self._write_through and fd is not None and self._broken is None
                    and not self._tail and self._active_size < self.segment_bytes):
                # Warm-first fast path: one record straight to the open segment.
                payload = encode_batches(version, timestamp, batches)
                framed = REC_HEADER.pack(len(payload), zlib.crc32(payload)) + payload
                try:
                    if os.write(fd, framed) != len(framed):
                        raise OSError(f"short write to the change feed ({self.dir})")
                    if self.durability == "sync":
                        os.fdatasync(fd)
                except OSError as exc:
                    self._broken = str(exc.strerror or exc)
                    try:
                        os.ftruncate(fd, self._active_size)
                    except OSError:
                        pass
                    log.error("change feed %s: write failed (%s); records stay in memory until "
                              "the store is reopened", self.dir, exc)
                    self._tail.append((version, timestamp, batches, None))
                else:
                    self._active_size += len(framed)
                    self._disk_last = version
                self._last = version
                if self._waiters:
                    self._cond.notify_all()
            else:
                self._observe_buffered_locked(version, timestamp, batches)
        if self._trim_due:
            self._trim_quietly()

    def _observe_buffered_locked(self, version: int, timestamp: float, batches: Writes) -> None:
        """:meth:`observe` for buffered (commit-log) layouts and the slow path."""
        tail = self._tail
        rec = None
        if self.encoded is not None:
            rec = self.encoded()  # the commit log's record of this very commit
            if rec is not None and VERSION.unpack_from(rec, REC_HEADER.size)[0] != version:
                rec = None
        tail.append((version, timestamp, batches, rec))
        self._last = version
        if self._write_through or len(tail) >= TAIL_RECORDS:
            if self.dir is None:
                if not len(tail) % TAIL_RECORDS:
                    self._trim_due = True
            elif self._broken is None:
                # Never raise into the committer (its commit is applied): a failed write
                # keeps the records in memory, readers still see them, and sync/close
                # (hence commit-log retirement) raise until the store is reopened, whose
                # recovery re-feeds them from the commit log or the tiers.
                try:
                    self._write_tail_locked()
                    if self._write_through and self.durability == "sync":
                        self._sync_locked()
                except StorageIOError as exc:
                    log.error("change feed %s: %s", self.dir, exc)
        if self._waiters:
            self._cond.notify_all()

    def _write_tail_locked(self) -> None:
        """Write the in-memory tail to the active segment (rotating first when it is full)."""
        tail = self._tail
        if not tail or self.dir is None:
            return
        if self._broken is not None:
            raise StorageIOError(f"the change feed {self.dir} failed earlier ({self._broken}); "
                                 "close the store and open it again (recovery re-feeds from the commit log)")
        good = self._active_size
        try:
            if self._fd is None or self._active_size >= self.segment_bytes:
                self._rotate_locked(tail[0][0])
            good = self._active_size
            parts: list[bytes] = []
            for v, ts, batches, rec in tail:
                if rec is None:
                    payload = encode_batches(v, ts, batches)
                    parts.append(REC_HEADER.pack(len(payload), zlib.crc32(payload)))
                    parts.append(payload)
                else:
                    parts.append(rec)
            data = memoryview(b"".join(parts))
            assert self._fd is not None
            while data:
                n = os.write(self._fd, data)
                data = data[n:]
                self._active_size += n
        except OSError as exc:
            self._broken = str(exc.strerror or exc)
            if self._fd is not None:  # no half record may stay in front of later ones
                try:
                    os.ftruncate(self._fd, good)
                except OSError:
                    pass
            raise StorageIOError(f"change feed write failed in {self.dir} ({exc.strerror or exc}); the "
                                 "commit is applied; close and reopen the store to re-feed it") from exc
        self._disk_last = tail[-1][0]
        self._tail = []   # readers holding the old list keep a consistent view

    def _rotate_locked(self, first: int) -> None:
        d = self.dir
        assert d is not None
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        p = d / segment_name(first)
        if self._segments and self._segments[-1][1] == p:
            fd = os.open(p, os.O_WRONLY | os.O_APPEND)
            self._fd, self._active_size = fd, os.fstat(fd).st_size
            return
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, FILE_HEADER)
            os.fsync(fd)
            fsync_dir(d)
        except OSError:
            os.close(fd)
            p.unlink(missing_ok=True)
            raise
        self._fd, self._active_size = fd, len(FILE_HEADER)
        self._segments.append((first, p))
        if len(self._segments) > 1:
            self._trim_due = True  # run by the writer after it released the feed lock

    def _sync_locked(self) -> None:
        if self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._broken = str(exc.strerror or exc)
                raise StorageIOError(f"change feed fsync failed in {self.dir} ({exc.strerror or exc})") from exc

    def sync(self) -> None:
        """Write the buffered tail and fsync the active segment."""
        with self._lock:
            if self._closed or self.dir is None:
                return
            self._write_tail_locked()
            # fsync a duplicate outside the lock: committers keep appending meanwhile, and a
            # rotation may close the original (it fsyncs the file it closes itself)
            fd = None if self._fd is None else os.dup(self._fd)
        if fd is not None:
            try:
                os.fsync(fd)
            except OSError as exc:
                self._broken = str(exc.strerror or exc)
                raise StorageIOError(f"change feed fsync failed in {self.dir} ({exc.strerror or exc})") from exc
            finally:
                os.close(fd)
        if self._trim_due:
            self._trim_quietly()

    def seal(self) -> None:
        """Write the tail, fsync and close the active segment: every existing segment is then
        immutable (the next record starts a new one), so it may be hard-linked (backups).
        Blocks committers for one fsync. Raises StorageIOError."""
        with self._lock:
            if self._closed or self.dir is None:
                return
            self._write_tail_locked()
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                except OSError as exc:
                    self._broken = str(exc.strerror or exc)
                    raise StorageIOError(f"change feed fsync failed in {self.dir} ({exc.strerror or exc})") from exc
                os.close(self._fd)
                self._fd = None

    def guard(self, truncate: Callable[[int], int]) -> Callable[[int], int]:
        """Wrap the commit log's ``truncate_through``: the feed is durable before the log
        forgets anything."""
        def truncate_through(version: int) -> int:
            self.sync()
            return truncate(version)
        return truncate_through

    def close(self) -> None:
        """Write and fsync everything; wake waiting readers (their iterations end)."""
        with self._lock:
            if self._closed:
                return
            try:
                if self.dir is not None and self._broken is None:
                    self._write_tail_locked()
                    self._sync_locked()
            finally:
                if self._fd is not None:
                    os.close(self._fd)
                    self._fd = None
                self._closed = True
                self._cond.notify_all()

    def forget(self, table: EntryKind, key: bytes) -> int:
        """Remove every row of ``key`` in ``table`` from the feed (``store.erase``); return
        how many went. Commits keep their versions (one may be left with no writes).

        Each segment holding the key is rewritten to a temporary file, fsynced and renamed
        over the old one (a crash leaves the old or the new file); the active segment is
        closed first, so the next commit starts a new one. Blocks committers for the
        rewrite: O(feed bytes). Raises StorageIOError.
        """
        def without(batches: Writes) -> tuple[Writes, int]:
            rows = batches.get(table)
            if not rows or all(k != key for k, _ in rows):
                return batches, 0
            kept = [(k, v) for k, v in rows if k != key]
            out = {t: r for t, r in batches.items() if t != table}
            if kept:
                out[table] = kept
            return out, len(rows) - len(kept)

        removed = 0
        with self._lock:
            self._check_open()
            tail = []
            for v, ts, batches, rec in self._tail:
                b, n = without(batches)
                removed += n
                tail.append((v, ts, b, None if n else rec))
            self._tail = tail
            if self.dir is None:
                return removed
            try:
                if self._fd is not None:
                    os.fsync(self._fd)
                    os.close(self._fd)
                    self._fd = None
                for _first, p in self._segments:
                    data = p.read_bytes()
                    check_header(data, p)
                    out, hit = [FILE_HEADER], 0
                    for _v, payload, _end in records(data, p, FEED_HEADER.size, len(data)):
                        version, ts, batches = decode_batches(payload)
                        b, n = without(batches)
                        if n:
                            hit += n
                            payload = encode_batches(version, ts, b)
                        out.append(REC_HEADER.pack(len(payload), zlib.crc32(payload)))
                        out.append(payload)
                    if hit:
                        atomic_write(p, b"".join(out))
                        removed += hit
            except OSError as exc:
                raise StorageIOError(f"change feed rewrite in {self.dir} failed ({exc.strerror or exc}); "
                                     "erase again to finish") from exc
        return removed

    # -- retention ----------------------------------------------------------------------

    @property
    def floor(self) -> int:
        """Changes at or below this version may be gone; ``changes(after)`` needs ``after >= floor``."""
        return self._floor

    @property
    def last(self) -> int:
        """The newest version in the feed."""
        return self._last

    def _target_floor(self) -> int:
        if self._consumers:
            return max(min(self._consumers.values()), self._gap_floor)
        return max(min(self._history_floor(), self._last), self._gap_floor)

    def _trim(self) -> None:
        """Raise the floor to the lowest consumer (or the history floor) and delete whole
        segments at or below it. The new floor is persisted before any file goes. Runs
        under the state lock only (files are deleted outside the feed lock)."""
        with self._state_lock:
            self._trim_due = False
            target = self._target_floor()
            if target > self._floor:
                old = self._floor
                self._floor = target
                try:
                    self._write_state()
                except BaseException:
                    self._floor = old
                    raise
            with self._lock:
                floor = self._floor
                if self.dir is None:
                    n = 0
                    while n < len(self._tail) and self._tail[n][0] <= floor:
                        n += 1
                    if n:
                        self._tail = self._tail[n:]
                    return
                segs = self._segments
                doomed = [p for i, (_f, p) in enumerate(segs[:-1]) if segs[i + 1][0] - 1 <= floor]
                self._segments = segs[len(doomed):]
            if doomed:
                for p in doomed:
                    p.unlink(missing_ok=True)
                fsync_dir(self.dir)

    def _trim_quietly(self) -> None:
        """:meth:`_trim` from the commit path: never raise into a committer."""
        try:
            self._trim()
        except OSError as exc:
            log.error("change feed %s: trimming failed (%s); it is retried at the next rotation",
                      self.dir, exc)

    def trim(self) -> int:
        """Apply retention now; return the floor."""
        self._check_open()
        self._trim()
        return self._floor

    # -- consumers ----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError("the store is closed; open it again with engine.open()")

    def consumer(self, name: str) -> Consumer:
        """Get (or durably create, at the floor) the consumer ``name``."""
        n = _check_name(name)
        with self._state_lock:
            self._check_open()
            if n not in self._consumers:
                self._consumers[n] = self._floor
                try:
                    self._write_state()
                except BaseException:
                    del self._consumers[n]
                    raise
        return Consumer(self, n)

    def consumers(self) -> dict[str, int]:
        with self._state_lock:
            self._check_open()
            return dict(self._consumers)

    def drop_consumer(self, name: str) -> bool:
        n = _check_name(name)
        with self._state_lock:
            self._check_open()
            if n not in self._consumers:
                return False
            old = self._consumers.pop(n)
            try:
                self._write_state()
            except BaseException:
                self._consumers[n] = old
                raise
            self._trim()
            return True

    def position(self, name: str) -> int:
        with self._state_lock:
            self._check_open()
            try:
                return self._consumers[name]
            except KeyError:
                raise ConsumerRemoved(f"consumer {name!r} was removed; store.consumer({name!r}) "
                               "creates it again at the feed's floor") from None

    def ack(self, name: str, version: int) -> None:
        """Move consumer ``name`` to ``version``; persisted (one atomic file replace) before
        returning. Committers are not blocked by the fsync (it runs under the state lock)."""
        from ..errors import FutureVersionError
        from ..types import check_version

        v = check_version(version)
        with self._state_lock:
            self._check_open()
            if name not in self._consumers:
                raise ConsumerRemoved(f"consumer {name!r} was removed; store.consumer({name!r}) "
                               "creates it again at the feed's floor")
            current = self._current_version()
            if v > current:
                raise FutureVersionError(f"cannot ack version {v}: the newest committed version is {current}")
            if v < self._floor:
                raise ChangesTrimmed(f"cannot move consumer {name!r} to {v}: changes at or below the "
                                     f"feed floor {self._floor} are trimmed", floor=self._floor)
            old = self._consumers[name]
            if old == v:
                return
            self._consumers[name] = v
            try:
                self._write_state()
            except BaseException:
                self._consumers[name] = old
                raise
            if v > old or not self._consumers:
                self._trim()

    # -- reading ------------------------------------------------------------------------

    def read(self, after: int = 0, *, tables: Iterable[EntryKind] | None = None, wait: bool = False,
             timeout: float | None = None) -> Iterator[Change]:
        """Every change above ``after`` in version order (see ``Store.changes``)."""
        from ..types import check_version

        after = check_version(after, "after")
        wanted: frozenset[EntryKind] | None = None
        if tables is not None:
            if isinstance(tables, EntryKind):
                tables = [tables]
            wanted = frozenset(tables)
            for t in wanted:
                if not isinstance(t, EntryKind):
                    raise InvalidKeyError(f"tables must hold EntryKind values, got {type(t).__name__}")
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 or None, got {timeout!r}")
        current = self._current_version()
        if after > current:
            from ..errors import FutureVersionError

            raise FutureVersionError(f"after={after} is in the future: the newest committed version is {current}")
        with self._lock:
            self._check_open()
            self._check_floor(after)
        return self._iterate(after, wanted, wait, timeout)

    def _check_floor(self, after: int) -> None:
        if after < self._floor:
            raise ChangesTrimmed(
                f"changes at or below version {self._floor} are trimmed from the feed; read with "
                f"after >= {self._floor} (a durable consumer keeps changes until it acks them)",
                floor=self._floor)

    def _iterate(self, pos: int, wanted: frozenset[EntryKind] | None, wait: bool,
                 timeout: float | None) -> Iterator[Change]:
        resume: dict[str, Any] = {}
        while True:
            with self._lock:
                if self._closed:
                    return
                self._check_floor(pos)
                if self._last <= pos:
                    if not wait:
                        return
                    deadline = None if timeout is None else time.monotonic() + timeout
                    self._waiters += 1
                    try:
                        while self._last <= pos and not self._closed:
                            left = None if deadline is None else deadline - time.monotonic()
                            if left is not None and left <= 0:
                                return
                            self._cond.wait(left)
                    finally:
                        self._waiters -= 1
                    if self._closed:
                        return
                segments = list(self._segments) if self._disk_last > pos else []
                disk_last, tail, last = self._disk_last, self._tail, self._last
                # bytes of the segment being appended that hold whole records
                active_size = self._active_size if self._fd is not None else -1
            start = pos
            for change in self._from_disk(segments, disk_last, active_size, pos, resume):
                self._check_next(pos, change.version)
                pos = change.version
                if wanted is None:
                    yield change
                else:
                    w = {t: rows for t, rows in change.writes.items() if t in wanted}
                    if w:
                        yield Change(change.version, change.time, w)
            for v, ts, batches, _rec in tail:
                if v <= pos:
                    continue
                if v > last:
                    # Appended after the snapshot: the next round takes a fresh one (in
                    # write-through mode later records may be on disk, not in this list).
                    break
                self._check_next(pos, v)
                pos = v
                if wanted is None:
                    yield Change(v, ts, batches)
                else:
                    w = {t: rows for t, rows in batches.items() if t in wanted}
                    if w:
                        yield Change(v, ts, w)
            if pos == start and last > pos:
                raise CorruptionError(f"change feed holds no record above version {pos} although "
                                      f"it was fed up to {last}", path=self.dir)

    @staticmethod
    def _check_next(pos: int, version: int) -> None:
        if version != pos + 1:
            raise ChangesTrimmed(
                f"versions {pos + 1}..{version - 1} are not in the change feed (a replica that "
                f"loaded a snapshot, or trimmed while this reader read); read with after >= "
                f"{version - 1}", floor=version - 1)

    def _from_disk(self, segments: Sequence[tuple[int, Path]], disk_last: int, active_size: int,
                   after: int, resume: dict[str, Any]) -> Iterator[Change]:
        """Changes ``after < v <= disk_last`` from the segment files, checksums verified.

        ``resume`` (the caller's, kept across calls): where the last record read ended, so a
        live reader reads only new bytes of the segment being appended, not all of it again.
        """
        if not segments or disk_last <= after:
            return
        start = 0
        for i, (first, _p) in enumerate(segments):
            if first <= after + 1:
                start = i
        for i in range(start, len(segments)):
            first, p = segments[i]
            try:
                with open(p, "rb") as fh:
                    key = (p, os.fstat(fh.fileno()).st_ino)  # an erase rewrite is a new inode
                    off = FEED_HEADER.size
                    if resume.get("key") == key and resume["version"] <= after:
                        off = resume["offset"]
                    else:
                        check_header(fh.read(FEED_HEADER.size), p)
                    fh.seek(off)
                    data = fh.read()
            except FileNotFoundError:
                raise ChangesTrimmed(f"changes after version {after} were trimmed while this reader "
                                     f"read them (floor {self._floor}); use a durable consumer to keep "
                                     "them", floor=self._floor) from None
            end_at = len(data)
            if i == len(segments) - 1 and active_size >= 0:
                end_at = min(end_at, active_size - off)
            for v, payload, end in records(data, p, 0, end_at, base=off):
                if v > disk_last:
                    return
                resume.update(key=key, offset=off + end, version=v)
                if v <= after:
                    continue
                try:
                    version, ts, writes = decode_batches(payload)
                except (ValueError, struct.error) as exc:
                    raise CorruptionError(f"malformed change feed record ({exc})", path=p) from None
                yield Change(version, ts, writes)
                after = v

    # -- checking and stats -------------------------------------------------------------

    def check(self) -> dict[str, Any]:
        """Verify every record's checksum and that versions above the floor are gap-free
        and increasing, ending at :attr:`last`. Raises CorruptionError."""
        with self._lock:
            self._check_open()
            floor, last = self._floor, self._last
        expect = floor
        n = 0
        try:
            for ch in self._iterate(floor, None, False, None):
                expect = ch.version
                n += 1
        except ChangesTrimmed as exc:
            raise CorruptionError(f"change feed has a gap above its floor {floor}: {exc}", path=self.dir) from None
        if expect < last:
            raise CorruptionError(f"change feed ends at {expect}, expected {last}", path=self.dir)
        return {"changes": n, "floor": floor, "last": expect}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            size = 0
            for _f, p in self._segments:
                try:
                    size += p.stat().st_size
                except FileNotFoundError:
                    pass
            return {"floor": self._floor, "last": self._last, "segments": len(self._segments),
                    "bytes": size, "buffered": len(self._tail), "consumers": dict(self._consumers)}

