"""Tier movement: flush (hot -> warm) and demotion (warm -> cold), on demand and in the background.

Both move the oldest band of versions down, **copy first, delete after** (DESIGN.md
invariant 2):

* **Flush** at watermark ``W`` copies every hot version <= ``W`` into warm in one atomic,
  synced write that also records ``W`` as the flushed watermark, then removes exactly those
  versions from hot once no scan that started before the copy is still running. Commit-log
  files whose records are all <= ``W`` are deleted afterwards; recovery replays only records
  above the watermark.
* **Demotion** at cutoff ``C`` moves warm versions to cold. Policy ``"history"`` moves the
  versions superseded by a newer version <= ``C`` (cold becomes the archive of the past and
  reads at the latest version never touch it); ``"age"`` moves every version <= ``C``. A
  key's movable versions always travel together in one segment, so band order holds even
  if the process dies between segments.

A crash between the copy and the delete leaves identical copies of a version in two
adjacent tiers; reads are unaffected (the same version and value either way), ``check()``
accepts it, and the next pass removes the upper copy.

Notes: thread safety
    One movement runs at a time (``_move_lock``). Movement never takes the commit lock; it
    runs concurrently with commits, reads and garbage collection.
"""

from __future__ import annotations

import ctypes
import logging
import struct
import sys
import threading
import time
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from ..background import Background
from ..errors import ClosedError, CorruptionError
from ..tiers.base import TierStorage
from ..types import EntryKind, RawEntry
from .layout import Layout
from .reader import Router

__all__ = ["Mover", "check_band_order"]

log = logging.getLogger("tierdb.movement")

FLUSHED_META = b"store.flushed"
COLD_SKIP_META = b"store.cold_skip_from"   # u64; 0 = never skip cold (an "age" demotion ran)
U64 = struct.Struct(">Q")
DEMOTE_CHUNK_ENTRIES = 200_000
FLUSH_CHUNK_ENTRIES = 20_000
DEMOTE_COMPACT_MIN = 1_000  # a demotion moving at least this many versions compacts warm
TRIM_MIN_VERSIONS = 50_000  # a movement of at least this many versions returns freed heap


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None elsewhere)."""
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # musl, or no C library symbols in this process
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_MALLOC_TRIM = _load_malloc_trim()


def release_freed_memory() -> None:
    """Hand the C heap's free pages back to the operating system (glibc ``malloc_trim``).

    A large flush or demotion allocates and frees hundreds of MB of short-lived rows; glibc
    keeps that memory in the process (RSS stays at the peak) until it is trimmed. Measured
    at 1M keys: flush + demote left RSS 100 MB above what trimming leaves (bench_peers
    "RSS added"). A no-op where ``malloc_trim`` is not available.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)

_KEY = itemgetter(0)  # RawEntry -> key
Progress = Callable[[int, "int | None"], None]


def _noop(done: int, total: int | None = None) -> None:
    return None


class Mover:
    """Runs flushes and demotions for one store (see module docstring)."""

    def __init__(self, router: Router, layout: Layout, current_version: Callable[[], int],
                 truncate_log: Callable[[int], object] | None,
                 drain_log: Callable[[], object] | None = None) -> None:
        self.router = router
        self.layout = layout
        tiers = {t.name: t for t in router.tiers}
        self.hot: Any = tiers.get("hot")
        self.warm: Any = tiers.get("warm")
        self.cold: Any = tiers.get("cold")
        self._version = current_version
        self._truncate_log = truncate_log
        # Writes the commit log's in-process buffer ("none" durability) to the OS, so no
        # version reaches warm (durable) before the log holds it (see flush).
        self._drain_log = drain_log
        # None: no demotion yet; 0: never skip cold; C > 0: reads at >= C may skip cold.
        self._cold_skip: int | None = None
        warm: Any = self.warm  # a WarmTier (get_meta is beyond the TierStorage protocol)
        # The persisted flushed watermark never moves back (a lagging flush after a full one).
        self._flushed_w = 0
        if warm is not None and self.hot is not None:
            raw = warm.get_meta(FLUSHED_META)
            if raw is not None:
                self._flushed_w = U64.unpack(raw)[0]
        if warm is not None and self.cold is not None:
            raw = warm.get_meta(COLD_SKIP_META)
            if raw is not None:
                self._cold_skip = U64.unpack(raw)[0]
                router.cold_skip_from = self._cold_skip or None
        self._move_lock = threading.Lock()
        # Rewritten keys flushed since the last "history" demotion, and the newest version
        # among them: a background demotion scans warm only when it can find something
        # (a full scan is Python work per stored version), or every 10 intervals anyway.
        self._rewrites = 0
        self._rewrites_upto = 0
        self._last_full_demote = time.monotonic()
        self._flushed = threading.Event()
        self._last_flush = self._last_demote = time.monotonic()
        intervals = [x for x in (layout.flush_interval, layout.demote_interval) if x > 0]
        self._loop_pause = min(intervals + [1.0])
        self.counters: dict[str, Any] = {
            "flushes": 0, "flushed_versions": 0, "flushed_watermark": 0,
            "demotions": 0, "demoted_versions": 0, "demoted_cutoff": 0,
            "background_errors": 0, "last_error": None,
        }
        self._loop = Background("tierdb-mover", self._tick, self._loop_pause, self.counters)

    # -- flush -------------------------------------------------------------------------

    @property
    def can_flush(self) -> bool:
        return self.hot is not None and self.warm is not None

    def flush(self, watermark: int | None = None, progress: Progress = _noop) -> dict[str, Any]:
        """Move every hot version <= ``watermark`` (default: all committed) to warm.

        Works in chunks (bounded memory): each chunk is written to warm, then removed from
        hot once no older scan runs. The last write is synced and carries the watermark, so
        the commit log can forget versions <= ``watermark`` only once they are all durable.
        A crash part-way leaves some versions in warm *and* in the log; recovery replays
        them into hot, reads are unaffected (identical copies), and the next flush settles
        them.
        """
        if not self.can_flush:
            return {"moved_versions": 0, "watermark": None}
        with self._move_lock:
            w = self._version() if watermark is None else min(watermark, self._version())
            if self._drain_log is not None:
                # Under "none" durability the log buffers records in the process: write them
                # out first, or a kill -9 after RocksDB persisted the copies would leave warm
                # holding versions above the recovered version.
                self._drain_log()
            total = 0
            for table, rows in self.hot.iter_versions_up_to(w, FLUSH_CHUNK_ENTRIES):
                # Unlogged: the commit log keeps these versions until the synced watermark
                # write below, which first persists warm's memtables (WarmTier.write_entries).
                self.warm.write_entries({table: rows}, sync=False, logged=False)
                self._drop_flushed_later(table, rows, w)
                total += len(rows)
                progress(total, None)
            # The data and the watermark that says it is there, made durable together.
            flushed = max(w, self._flushed_w)  # never move the persisted watermark back
            self.warm.write_entries({}, sync=True, meta={FLUSHED_META: U64.pack(flushed)})
            self._flushed_w = flushed
            if self._truncate_log is not None:
                self._truncate_log(w)
            if total >= TRIM_MIN_VERSIONS:
                release_freed_memory()
            self.counters["flushes"] += 1
            self.counters["flushed_versions"] += total
            self.counters["flushed_watermark"] = max(self.counters["flushed_watermark"], w)
            self._flushed.set()
            return {"moved_versions": total, "watermark": w}

    def wait_for_flush(self, timeout: float) -> None:
        """Block until the next flush finishes (commit back-pressure), at most ``timeout``."""
        if not self._loop.running:
            return
        self._flushed.clear()
        self.kick()
        self._flushed.wait(timeout)

    # -- demotion ----------------------------------------------------------------------

    @property
    def can_demote(self) -> bool:
        return self.warm is not None and self.cold is not None

    def demote(self, cutoff: int | None = None, policy: str | None = None,
               progress: Progress = _noop) -> dict[str, Any]:
        """Move warm versions to cold under ``policy`` at ``cutoff`` (default: now)."""
        if not self.can_demote:
            return {"moved_versions": 0, "cutoff": None}
        policy = policy or self.layout.demotion_policy
        if policy not in ("history", "age"):
            raise ValueError(f"demotion policy must be 'history' or 'age', got {policy!r}")
        with self._move_lock:
            c = self._version() if cutoff is None else min(cutoff, self._version())
            flushed = self._flushed_w  # every version <= this was in warm before this pass
            moved = 0
            chunk: dict[EntryKind, list[RawEntry]] = {}
            # Each moved key's successor: the version that superseded its newest moved one
            # and stays in warm ("history" only; "age" moves keys whose next version may not
            # exist yet). Cold stores it so old reads can stop at cold (ColdTier.get_final).
            nexts: dict[EntryKind, dict[bytes, int]] | None = {} if policy == "history" else None
            chunk_n = 0
            for table in self.warm.tables():
                for key_rows in _group_by_key(self.warm.iter_versions(table)):
                    movable = _movable(key_rows, c, policy)
                    if not movable:
                        continue
                    chunk.setdefault(table, []).extend(movable)
                    if nexts is not None:
                        # key_rows is newest first: the version just above the moved band
                        nexts.setdefault(table, {})[movable[0].key] = \
                            key_rows[len(key_rows) - len(movable) - 1].version
                    chunk_n += len(movable)
                    if chunk_n >= DEMOTE_CHUNK_ENTRIES:
                        moved += self._demote_chunk(chunk, nexts)
                        progress(moved, None)
                        chunk, chunk_n = {}, 0
                        nexts = {} if nexts is not None else None
            if chunk_n:
                moved += self._demote_chunk(chunk, nexts)
                progress(moved, None)
            self._note_cold_skip(c if policy == "history" else 0)
            self._note_settled(min(c, flushed) if policy == "history" else 0)
            self._last_full_demote = time.monotonic()
            if c >= self._rewrites_upto:
                self._rewrites = 0
            if moved >= DEMOTE_COMPACT_MIN:
                self._compact_warm_later()
            if moved >= TRIM_MIN_VERSIONS:
                release_freed_memory()
            self.counters["demotions"] += 1
            self.counters["demoted_versions"] += moved
            self.counters["demoted_cutoff"] = max(self.counters["demoted_cutoff"], c)
            return {"moved_versions": moved, "cutoff": c, "policy": policy}

    def _drop_flushed_later(self, table: EntryKind, rows: list[RawEntry], watermark: int) -> None:
        """Remove the hot copy of flushed ``rows`` (every version <= ``watermark`` of their
        keys) once no older scan can still need it."""
        hot = self.hot
        keys = list(dict.fromkeys(map(_KEY, rows)))  # a key's versions are adjacent

        # Keys flushed with several versions, or again after an earlier flush, may have made
        # older warm versions superseded: the background "history" demotion runs only then.
        multi = len(rows) - len(keys)

        def drop() -> None:
            try:
                self._note_rewrites(multi + hot.drop_through(table, keys, watermark), watermark)
            except ClosedError:
                log.info("deferred removal of %d flushed keys skipped: hot tier closed", len(keys))

        self.router.epochs.defer(drop)

    def _note_rewrites(self, n: int, version: int) -> None:
        if n:
            self._rewrites += n
            self._rewrites_upto = max(self._rewrites_upto, version)

    def _compact_warm_later(self) -> None:
        """Compact warm once the demoted versions' deferred removals ran: RocksDB keeps
        deleted versions (and the flushes' WAL) on disk until a compaction rewrites them,
        which after a large demotion would leave warm several times its live size. RocksDB
        compacts without the interpreter lock; readers and committers go on."""
        warm = self.warm

        def compact() -> None:
            try:
                warm.compact()
                self.counters["warm_compactions"] = self.counters.get("warm_compactions", 0) + 1
            except ClosedError:
                log.info("warm compaction after demotion skipped: warm tier closed")

        self.router.epochs.defer(compact)

    def _drop_later(self, tier: Any, drops: dict[EntryKind, list[tuple[bytes, int]]]) -> None:
        """Remove the upper copy of a moved band once no older scan can still need it."""

        def drop() -> None:
            try:
                tier.drop(drops)
            except ClosedError:
                # The store closed while an old scan was still open. The copy stays in the
                # upper tier (identical to the lower one); the next movement settles it.
                log.info("deferred removal of %d moved versions skipped: tier %s closed",
                         sum(len(d) for d in drops.values()), tier.name)

        self.router.epochs.defer(drop)

    def _note_cold_skip(self, cutoff: int) -> None:
        """Record how far reads may skip cold (0: never again), durably in warm's metadata.

        After a "history" demotion at C, every key cold holds keeps in warm its newest
        version <= C, so reads at versions >= C are answered without cold. An "age" demotion
        moves whole keys and switches the shortcut off for good.
        """
        state = self._cold_skip
        if state == 0:
            return
        new = 0 if cutoff == 0 else max(state or 0, cutoff)
        if new != state:
            self.warm.write_entries({}, sync=True, meta={COLD_SKIP_META: U64.pack(new)})
            self._cold_skip = new
            self.router.cold_skip_from = new or None

    def _note_settled(self, through: int) -> None:
        """Tell the hot tier how far its clean copies prove "nothing older in warm".

        After a "history" demotion at C, a key whose newest version c was in warm when the
        pass began (c <= the flushed watermark) and is <= C keeps c in warm and has every
        older version in cold; later flushes only add versions above that watermark, so the
        fact stays true. A clean copy is a key's newest version, so a read below a clean copy
        at or under ``through`` goes straight to cold (:data:`~engine.tiers.base.BOTTOM_ONLY`).
        Not persisted: a reopened store has no clean copies of versions that old. An "age"
        demotion (0) switches it off, like the cold skip.
        """
        hot = self.hot
        if hot is None:
            return
        if through == 0 or self._cold_skip == 0:
            hot.settled_through = 0
        else:
            hot.settled_through = max(hot.settled_through, through)

    def _demote_chunk(self, chunk: dict[EntryKind, list[RawEntry]],
                      nexts: dict[EntryKind, dict[bytes, int]] | None = None) -> int:
        if nexts and getattr(self.cold, "get_final", None) is not None:
            self.cold.write_entries(chunk, nexts)
        else:
            self.cold.write_entries(chunk)
        drops = {t: [(e.key, e.version) for e in es] for t, es in chunk.items()}
        self._drop_later(self.warm, drops)
        return sum(len(es) for es in chunk.values())

    # -- background --------------------------------------------------------------------

    def start(self) -> None:
        if (self.can_flush or self.can_demote) and self.layout.background:
            now = time.monotonic()
            self._last_flush = self._last_demote = now
            self._loop.start()

    def kick(self) -> None:
        """Ask the background mover to look at its triggers now."""
        self._loop.kick()

    def _tick(self) -> float:
        """One look at the triggers: hot over half its budget, or an interval elapsed."""
        lay = self.layout
        now = time.monotonic()
        if self.can_flush:
            over = self.hot.bytes > lay.hot_bytes // 2
            due = lay.flush_interval > 0 and now - self._last_flush >= lay.flush_interval
            if over or due:
                lag = 0 if over else lay.flush_lag_versions
                self._last_flush = now
                self.flush(max(0, self._version() - lag))
        if self.can_demote and lay.demote_interval > 0 and now - self._last_demote >= lay.demote_interval:
            self._last_demote = now
            cutoff = max(0, self._version() - lay.demotion_age_versions)
            useful = (lay.demotion_policy != "history" or self._rewrites > 0
                      or now - self._last_full_demote >= 10 * lay.demote_interval)
            if useful:
                self.demote(cutoff)
            else:
                self.counters["demotions_skipped"] = self.counters.get("demotions_skipped", 0) + 1
        return self._loop_pause

    def stop(self) -> None:
        self._loop.stop()
        with self._move_lock:
            self.router.epochs.run_pending()


def _group_by_key(rows: Any) -> Any:
    """Group an iterator of RawEntry (key asc, version desc) into per-key lists."""
    current: list[RawEntry] = []
    for e in rows:
        if current and current[0].key != e.key:
            yield current
            current = []
        current.append(e)
    if current:
        yield current


def _movable(key_rows: list[RawEntry], cutoff: int, policy: str) -> list[RawEntry]:
    """The versions of one key (newest first) that demotion moves."""
    if policy == "age":
        return [e for e in key_rows if e.version <= cutoff]
    for i, e in enumerate(key_rows):
        if e.version <= cutoff:
            return key_rows[i + 1:]  # superseded by e, which is <= cutoff and stays
    return []


def check_band_order(tiers: list[TierStorage]) -> int:
    """Verify band order across adjacent tiers; return the number of keys checked.

    For every key, every version in a higher tier must be newer than every version in a
    lower tier. The one exception is a move interrupted between copy and delete: the top
    versions of the lower tier may also sit, identical, at the bottom of the higher tier.
    Raises CorruptionError. O(total versions).
    """
    checked = 0
    for upper, lower in zip(tiers, tiers[1:]):
        for table in lower.tables():
            for key_rows in _group_by_key(lower.iter_versions(table)):
                key = key_rows[0].key
                checked += 1
                newest_lower = key_rows[0].version
                overlap = [(v, val) for v, val in upper.get_all_versions(table, key) if v <= newest_lower]
                if not overlap:
                    continue
                lower_top = [(e.version, e.value) for e in key_rows if e.version >= overlap[-1][0]]
                if overlap != lower_top:
                    raise CorruptionError(
                        f"band order violated for {table} key {key!r}: {upper.name} holds version "
                        f"{overlap[-1][0]} but {lower.name} holds newer or different versions "
                        f"(up to {newest_lower})")
    return checked
