"""The cold tier: immutable zstd segment files behind a manifest, a drop list and a block cache.

Directory layout (names are generated numbers; no table name or key ever reaches a path)::

    LOCK                      flock'd while open (a second opener gets LockedError)
    MANIFEST                  live segments, counters, known tables (atomic replace)
    000000000007.seg          a segment (immutable once a manifest names it)
    000000000009.drop         a drop file (immutable; live while numbered above drop_floor)
    *.tmp                     an interrupted write: removed on open

Write path: ``set`` and ``write_entries`` each write one new segment (fsync, rename, fsync
dir) and then a new manifest naming it; the call returns only when both are durable. ``drop``
and ``clear_table`` write one drop file each. Compaction merges a contiguous run of segments
(see compaction.py), applies drop records, writes a carry-over drop file for records still
needed, swaps the manifest, and only then deletes the files the new manifest no longer names.

Read path: newest segment first; a segment is skipped when its table is cleared, when the key
is outside the table's key range, when its version range cannot improve the answer, or when
the bloom filter rules the key out; decoded blocks live in a byte-budgeted LRU cache.

Notes: thread safety
    Any number of concurrent readers plus one writer at a time. Writers (``set``,
    ``write_entries``, ``drop``, ``clear_table``, ``ensure_table``, compaction's swap) take
    ``_write_lock``; readers take no tier lock: they read ``self._state`` once (an immutable
    snapshot of the segment list) and keep using it, so a compaction swap never disturbs a
    read in flight. A compaction merges without the writer lock (only ``_compact_lock``, so
    at most one runs); writers proceed meanwhile. Files retired by compaction are unlinked
    after the new manifest is durable; readers still holding the old snapshot keep reading
    through their open descriptors, which close when the last reference goes.
    ``close`` waits for a running compaction; it must not race reads of the same tier.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from heapq import merge as heap_merge
from operator import itemgetter
from pathlib import Path
from typing import Any, Self

from ...errors import (
    ClosedError,
    CorruptionError,
    InvalidKeyError,
    LockedError,
    StorageIOError,
)
from ...types import (
    Bound,
    EntryKind,
    RangeBatch,
    RangeCursor,
    RawEntry,
    as_bytes,
    check_version,
)
from ..base import DropBatches, SetBatches, finish_page
from .cache import BlockCache
from .compaction import carry_over, merge_table, plan
from .drops import DropGroup, DropIndex, decode_drops, encode_drops
from .manifest import (
    MANIFEST_NAME,
    Manifest,
    SegmentRef,
    decode_manifest,
    encode_manifest,
    fsync_dir,
    write_atomic,
)
from .options import ColdOptions
from .reader import Candidate, Segment
from .scan import ColumnChunk, chunks_from_rows, segment_columns
from .state import State, drop_name, recover
from .writer import ENTRY_OVERHEAD, SegmentWriter

__all__ = ["ColdOptions", "ColdTier"]

_MAX_DROP_FILES = 32
_first = itemgetter(0)


class ColdTier:
    """Immutable-segment tier implementing :class:`~engine.tiers.base.TierStorage`.

    ``ColdTier(path, **options)``: options are the fields of :class:`ColdOptions`; an
    unknown option raises TypeError, a bad value ValueError. See the module docstring for
    layout, durability and thread safety.

    Complexity: point reads O(S * (bloom + log B)) for S live segments and B blocks, one
    block decode on a cache miss; range pages O(S log S per row) plus block decodes; ``set``
    O(n log n) for n entries plus compression and two fsyncs.

    Raises (constructor): LockedError (another opener), CorruptionError/FormatError (damaged
    or foreign files), StorageIOError (OS failures).
    """

    name = "cold"

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        self.options = ColdOptions(**options)
        self.path = Path(path)
        self._write_lock = threading.RLock()
        self._compact_lock = threading.Lock()
        self._cache = BlockCache(self.options.cache_bytes)
        self._generation = 0
        self._stats_cache: tuple[int, dict[str, int]] | None = None
        self._counters = {"compactions": 0, "compaction_bytes_in": 0, "compaction_bytes_out": 0,
                          "segments_written": 0, "bytes_written": 0, "recovered_temp_files": 0}
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path / "LOCK", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise StorageIOError(f"cannot open cold tier directory {self.path}: {exc}") from exc
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock_fd)
            raise LockedError(f"cold tier {self.path} is open elsewhere (LOCK is held); close "
                              "the other user first") from None
        try:
            rec = recover(self.path, self._cache)
        except BaseException:  # release the lock, then re-raise whatever it was
            os.close(self._lock_fd)
            raise
        self._manifest = rec.manifest
        self._next_file_no = rec.next_file_no
        self._next_seq = rec.next_seq
        self._counters["recovered_temp_files"] = rec.removed_temp_files
        self._state: State | None = rec.state

    # -- helpers -------------------------------------------------------------------------

    def _live(self) -> State:
        st = self._state
        if st is None:
            raise ClosedError(f"cold tier {self.path} is closed; open it again")
        return st

    def _write_manifest(self, segments: Sequence[Segment], tables: frozenset[EntryKind],
                        drop_floor: int | None = None) -> None:
        """Durably replace the manifest (writer lock held)."""
        m = self._manifest
        new = Manifest(
            generation=m.generation + 1,
            next_file_no=self._next_file_no,
            next_seq=self._next_seq,
            drop_floor=m.drop_floor if drop_floor is None else drop_floor,
            segments=[SegmentRef(s.file_no, s.seq, s.file_size, s.footer_crc) for s in segments],
            tables=sorted(tables),
        )
        write_atomic(self.path / MANIFEST_NAME, encode_manifest(new))
        self._manifest = new

    def _alloc_file_no(self) -> int:
        no = self._next_file_no
        self._next_file_no += 1
        return no

    def _changed(self) -> None:
        self._generation += 1

    # -- point reads ---------------------------------------------------------------------

    def _find(self, st: State, table: EntryKind, key: bytes,
              version: int) -> tuple[int, Any, int] | None:
        """(version, block view, index) of the newest live version <= ``version``, or None.

        The hot path of point reads: one table lookup, then per segment two key and two
        version comparisons before the segment's own lookup (block index, cache, bloom on
        a cache miss only).
        """
        tv = st.by_table.get(table)
        if tv is None:
            return None
        tdrops = tv.tdrops
        dv = tdrops.get(key) if tdrops else None
        best = None
        bestv = -1
        for lo_k, hi_k, vmin, vmax, seg, tr in tv.segs:
            if key < lo_k or key > hi_k or vmin > version or vmax <= bestv:
                continue
            r = seg.lookup(tr, key, version, dv)
            if r is not None and r[0] > bestv:
                best = r
                bestv = r[0]
        return best

    def lookup(self, table: EntryKind, key: bytes, version: int) -> RawEntry | None:
        """Newest stored version <= ``version`` (tombstones included); None = not found."""
        # _live() inlined here and in get(): the extra call cost ~10% of bloom-rejected misses.
        st = self._state
        if st is None:
            raise ClosedError(f"cold tier {self.path} is closed; open it again")
        if type(key) is not bytes:
            key = as_bytes(key)
        r = self._find(st, table, key, version)
        if r is None:
            return None
        v, blk, i = r
        return RawEntry(key, v, blk.value(i))

    def get(self, table: EntryKind, key: bytes, version: int) -> bytes | None:
        """Value of the newest version <= ``version``; None for a tombstone or nothing."""
        st = self._state  # _live() inlined: see lookup()
        if st is None:
            raise ClosedError(f"cold tier {self.path} is closed; open it again")
        if type(key) is not bytes:
            key = as_bytes(key)
        r = self._find(st, table, key, version)
        if r is None:
            return None
        return r[1].value(r[2])

    def contains(self, table: EntryKind, key: bytes, version: int) -> bool:
        return self.get(table, key, version) is not None

    def get_all_versions(self, table: EntryKind, key: bytes) -> list[tuple[int, bytes | None]]:
        """Every stored version of ``key``, newest first. O(S + versions)."""
        st = self._live()
        if type(key) is not bytes:
            key = as_bytes(key)
        tdrops = st.drops.keys.get(table)
        dv = tdrops.get(key) if tdrops else None
        cleared = st.drops.cleared.get(table, -1)
        found: dict[int, bytes | None] = {}
        for seg in st.segments:
            if seg.seq <= cleared:
                break
            tr = seg.tables.get(table)
            if tr is None or not seg.may_contain(tr, key):
                continue
            for v, val in seg.versions_of(tr, key, dv):
                if v not in found:  # newest segment first: the first copy wins
                    found[v] = val
        return sorted(found.items(), reverse=True)

    # -- ranges --------------------------------------------------------------------------

    def _sources(self, st: State, table: EntryKind, lo: bytes | None, hi: bytes | None,
                 version: int) -> list[tuple[Segment, Any]]:
        """Segments (newest first) that may hold visible keys of ``table`` in [lo, hi]."""
        tv = st.by_table.get(table)
        if tv is None:
            return []
        out = []
        for lo_k, hi_k, vmin, _vmax, seg, tr in tv.segs:
            if vmin > version or (lo is not None and hi_k < lo) or (hi is not None and lo_k > hi):
                continue
            out.append((seg, tr))
        return out

    def _visible(self, st: State, table: EntryKind, lo: bytes | None, lo_inc: bool,
                 hi: bytes | None, hi_inc: bool, version: int, reverse: bool) -> Iterator[Candidate]:
        tdrops = st.drops.keys.get(table)
        its = [seg.visible(tr, lo, lo_inc, hi, hi_inc, version, tdrops, reverse)
               for seg, tr in self._sources(st, table, lo, hi, version)]
        if not its:
            return iter(())
        if len(its) == 1:
            return its[0]
        return self._merge_visible(its, reverse)

    @staticmethod
    def _merge_visible(its: list[Iterator[Candidate]], reverse: bool) -> Iterator[Candidate]:
        # heapq.merge is stable: among equal keys, earlier iterables (newer segments) come
        # first, so a strictly greater version is needed to replace the current candidate.
        cur: Candidate | None = None
        for cand in heap_merge(*its, key=_first, reverse=reverse):
            if cur is not None and cand[0] == cur[0]:
                if cand[1] > cur[1]:
                    cur = cand
                continue
            if cur is not None:
                yield cur
            cur = cand
        if cur is not None:
            yield cur

    def _page(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
              version: int, batch_size: int, reverse: bool) -> RangeBatch:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        st = self._live()
        if cursor.exhausted:
            return RangeBatch.empty()
        lo, lo_inc = start.key, start.inclusive
        hi, hi_inc = end.key, end.inclusive
        if cursor.last_key is not None:
            if reverse:
                hi, hi_inc = cursor.last_key, False
            else:
                lo, lo_inc = cursor.last_key, False
        out: list[RawEntry] = []
        has_more = False
        srcs = self._sources(st, table, lo, hi, version)
        if len(srcs) == 1:
            # One segment: whole blocks of rows at a time, values sliced only for rows kept.
            seg, tr = srcs[0]
            for ks, vl, blk, el in seg.visible_blocks(tr, lo, lo_inc, hi, hi_inc, version,
                                                      st.drops.keys.get(table), reverse):
                room = batch_size - len(out)
                if room == 0:
                    has_more = True
                    break
                if len(ks) > room:
                    out.extend(map(RawEntry, ks[:room], vl[:room], blk.values(el[:room])))
                    has_more = True
                    break
                out.extend(map(RawEntry, ks, vl, blk.values(el)))
        elif srcs:
            append = out.append
            for key, ver, blk, i in self._visible(st, table, lo, lo_inc, hi, hi_inc, version, reverse):
                if len(out) == batch_size:
                    has_more = True
                    break
                append(RawEntry(key, ver, blk.value(i)))
        return finish_page(cursor, out, has_more)

    def range_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                   version: int, batch_size: int) -> RangeBatch:
        """Next <= ``batch_size`` keys ascending at their newest version <= ``version``."""
        return self._page(table, cursor, start, end, version, batch_size, False)

    def range_rev_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                       version: int, batch_size: int) -> RangeBatch:
        """As :meth:`range_next`, descending."""
        return self._page(table, cursor, start, end, version, batch_size, True)

    def scan_columns(self, table: EntryKind, version: int, start: Bound | None = None,
                     end: Bound | None = None, *, chunk_rows: int = 4096) -> Iterator[ColumnChunk]:
        """Columnar forward scan: the same rows as ``range_next`` (ascending keys, newest
        version <= ``version``, tombstones flagged), as :class:`ColumnChunk` s of numpy
        columns over the decompressed bytes, with no per-row Python object on the fast path
        (one segment holds the table in range and no drop is pending for it; the block cache
        is bypassed). Otherwise rows come from the merge, packed ``chunk_rows`` at a time.
        ``start``/``end`` default to unbounded.

        Reads the segment set current at the call. O(entries scanned), vectorized per block.
        """
        st = self._live()
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
        lo, lo_inc = (start.key, start.inclusive) if start is not None else (None, False)
        hi, hi_inc = (end.key, end.inclusive) if end is not None else (None, False)
        srcs = self._sources(st, table, lo, hi, version)
        if len(srcs) == 1 and not st.drops.keys.get(table):
            seg, tr = srcs[0]
            return segment_columns(seg, tr, lo, lo_inc, hi, hi_inc, version)
        rows = ((k, v, blk.value(i)) for k, v, blk, i in
                self._visible(st, table, lo, lo_inc, hi, hi_inc, version, False))
        return chunks_from_rows(rows, chunk_rows)

    def tables(self) -> list[EntryKind]:
        """Every table ever written, ensured or cleared here, sorted."""
        return sorted(self._live().tables)

    def iter_versions(self, table: EntryKind, start: bytes | None = None) -> Iterator[RawEntry]:
        """Every stored version of ``table`` in (key asc, version desc) order from ``start``.

        Reads the segment set current when iteration starts (a consistent snapshot of the
        segments; drops made meanwhile may or may not show). O(entries log S).
        """
        st = self._live()
        if start is not None and type(start) is not bytes:
            start = as_bytes(start)
        return self._iter_versions(st, table, start)

    @staticmethod
    def _iter_versions(st: State, table: EntryKind, start: bytes | None) -> Iterator[RawEntry]:
        for k, v, val, _seq in merge_table(st.segments, table, st.drops, start):
            yield RawEntry(k, v, val)

    # -- writes --------------------------------------------------------------------------

    def set(self, version: int, batches: SetBatches) -> None:
        """Write every table's ``(key, value | None)`` pairs at ``version`` as one new segment.

        Durable when it returns. Within one call a repeated key keeps its last value; a
        (key, version) already stored is superseded (later write wins). Callers should batch:
        each call costs a segment file and two fsyncs.

        Raises: InvalidKeyError/InvalidVersionError before anything is written;
        ClosedError; StorageIOError.
        """
        version = check_version(version)
        tables: dict[EntryKind, list[tuple[bytes, int, bytes | None]]] = {}
        for table, rows in batches.items():
            if not isinstance(table, EntryKind):
                raise InvalidKeyError(f"table must be an EntryKind, got {type(table).__name__}")
            last: dict[bytes, bytes | None] = {}
            for key, value in rows:
                if type(key) is not bytes:
                    key = as_bytes(key)
                if value is not None and type(value) is not bytes:
                    value = as_bytes(value, "value")
                last[key] = value
            tables[table] = [(k, version, last[k]) for k in sorted(last)]
        self._write_segment(tables)

    def write_entries(self, batches: Mapping[EntryKind, Sequence[RawEntry]]) -> None:
        """Write many entries of any versions atomically as ONE new segment; durable on return.

        Used by demotion (warm -> cold). Entries may come in any order; a repeated
        (key, version) keeps its last occurrence and supersedes any stored copy.

        Raises: as :meth:`set`.
        """
        tables: dict[EntryKind, list[tuple[bytes, int, bytes | None]]] = {}
        for table, rows in batches.items():
            if not isinstance(table, EntryKind):
                raise InvalidKeyError(f"table must be an EntryKind, got {type(table).__name__}")
            last: dict[tuple[bytes, int], bytes | None] = {}
            for e in rows:
                key = e.key if type(e.key) is bytes else as_bytes(e.key)
                value = e.value
                if value is not None and type(value) is not bytes:
                    value = as_bytes(value, "value")
                last[(key, check_version(e.version))] = value
            order = sorted(last, key=lambda kv: (kv[0], -kv[1]))
            tables[table] = [(k, v, last[(k, v)]) for k, v in order]
        self._write_segment(tables)

    def _write_segment(self, tables: dict[EntryKind, list[tuple[bytes, int, bytes | None]]]) -> None:
        opts = self.options
        with self._write_lock:
            st = self._live()
            new_tables = st.tables | frozenset(tables)
            if not any(tables.values()):
                if new_tables != st.tables:
                    self._write_manifest(st.segments, new_tables)
                    self._state = State(st.segments, new_tables, st.drops, st.drop_files)
                return
            file_no = self._alloc_file_no()
            seq = self._next_seq
            raw_hint = sum(len(k) + (len(v) if v is not None else 0) + ENTRY_OVERHEAD
                           for rows in tables.values() for k, _, v in rows)
            w = SegmentWriter(self.path, file_no, seq, block_size=opts.block_size,
                              zstd_level=opts.zstd_level, bloom_bits_per_key=opts.bloom_bits_per_key,
                              dictionary=opts.dictionary, size_hint=raw_hint)
            try:
                for table in sorted(tables):
                    w.add(table, tables[table])
                ws = w.finish()
            except BaseException:  # remove the partial file, then re-raise
                w.abort()
                raise
            assert ws is not None
            try:
                seg = Segment(ws.path, file_no, self._cache, expect_size=ws.file_size,
                              expect_footer_crc=ws.footer_crc, expect_seq=seq)
                fsync_dir(self.path)
                self._next_seq = seq + 1
                segments = (seg, *st.segments)
                self._write_manifest(segments, new_tables)
            except BaseException:  # the segment is not live: remove it, then re-raise
                self._next_seq = seq
                self._unlink_quiet(ws.path)
                raise
            self._state = State(segments, new_tables, st.drops, st.drop_files)
            self._counters["segments_written"] += 1
            self._counters["bytes_written"] += ws.file_size
            self._changed()
        self._maybe_compact()

    @staticmethod
    def _unlink_quiet(p: Path) -> None:
        try:
            os.unlink(p)
        except OSError:
            pass  # an unnamed segment is removed on the next open anyway

    def ensure_table(self, table: EntryKind) -> None:
        """Register ``table`` (durably) if it is new. O(1) when known."""
        st = self._live()
        if table in st.tables:
            return
        with self._write_lock:
            st = self._live()
            if table not in st.tables:
                tables = st.tables | {table}
                self._write_manifest(st.segments, tables)
                self._state = State(st.segments, tables, st.drops, st.drop_files)

    def _write_drop_file(self, st: State, groups: list[DropGroup]) -> None:
        """Persist ``groups`` as one drop file and apply them (writer lock held)."""
        no = self._alloc_file_no()
        write_atomic(self.path / drop_name(no), encode_drops(no, groups))
        for g in groups:
            st.drops.add_group(g)
        st.drop_files.append(no)
        if any(g.items is None for g in groups):  # a clear changes which segments count
            self._state = State(st.segments, st.tables, st.drops, st.drop_files)
        self._changed()

    def drop(self, batches: DropBatches) -> None:
        """Remove exactly the listed (key, version) pairs; effective at once, durable on return.

        Recorded in a drop file (hidden from reads immediately), removed physically by the
        next compaction that rewrites the segments holding them. Missing pairs are harmless.
        """
        groups_in: dict[EntryKind, set[tuple[bytes, int]]] = {}
        for table, rows in batches.items():
            if not isinstance(table, EntryKind):
                raise InvalidKeyError(f"table must be an EntryKind, got {type(table).__name__}")
            items = groups_in.setdefault(table, set())
            for key, version in rows:
                items.add((as_bytes(key), check_version(version)))
        with self._write_lock:
            st = self._live()
            upto = self._next_seq - 1
            present = {t for s in st.segments for t in s.tables}
            groups = [DropGroup(t, upto, tuple(sorted(items)))
                      for t, items in sorted(groups_in.items()) if items and t in present]
            if not groups:
                return
            self._write_drop_file(st, groups)
        self._maybe_compact()

    def clear_table(self, table: EntryKind) -> None:
        """Delete every entry of ``table`` (a durable clear record; files rewritten later)."""
        with self._write_lock:
            st = self._live()
            if table not in st.tables:
                self._write_manifest(st.segments, st.tables | {table})
                st = self._state = State(st.segments, st.tables | {table}, st.drops, st.drop_files)
            if any(table in s.tables and s.seq > st.drops.cleared.get(table, -1) for s in st.segments):
                self._write_drop_file(st, [DropGroup(table, self._next_seq - 1, None)])
        self._maybe_compact()

    # -- compaction ----------------------------------------------------------------------

    def _maybe_compact(self) -> None:
        trig = self.options.compact_trigger
        st = self._state
        if trig is None or st is None:
            return
        if len(st.segments) < trig and len(st.drop_files) <= _MAX_DROP_FILES:
            return
        if not self._compact_lock.acquire(blocking=False):
            return  # another thread is compacting; it will see the new segments next round
        try:
            for _ in range(64):
                st = self._state
                if st is None or (len(st.segments) < trig and len(st.drop_files) <= _MAX_DROP_FILES):
                    break
                try:
                    if not self._compact_step(False)["merged_segments"]:
                        break
                except ClosedError:
                    break  # closed meanwhile: the write itself is durable, nothing to do
        finally:
            self._compact_lock.release()

    def compact(self, full: bool = False) -> dict[str, int]:
        """Run one compaction step now and return what it did: merged_segments,
        output_segments, bytes_in, bytes_out, entries_out, drop_records_applied,
        drop_files_before/after, segments_after.

        ``full=True`` merges every segment and applies every drop record. Otherwise one
        size-tiered step runs; if the policy has nothing to merge while drop records are
        pending, they are applied by a full merge (an explicit call means "reclaim space
        now"; automatic compaction after writes never does that). Readers are never
        blocked; writers only during the final manifest swap.
        """
        with self._compact_lock:
            return self._compact_step(full, explicit=True)

    def _compact_step(self, full: bool, explicit: bool = False) -> dict[str, int]:
        opts = self.options
        with self._write_lock:
            st = self._live()
            old_first = list(reversed(st.segments))
            if full:
                run: tuple[int, int] | None = (0, len(old_first)) if old_first else None
                if run and len(old_first) == 1 and st.drops.is_empty():
                    run = None  # one segment, nothing to apply: already compact
            else:
                run = plan([s.file_size for s in old_first], min_merge=opts.compact_min_merge,
                           max_merge=opts.compact_max_merge, size_ratio=opts.compact_size_ratio,
                           max_segments=opts.compact_trigger)
                if run is None and explicit and old_first and not st.drops.is_empty():
                    run = (0, len(old_first))
            result = {"merged_segments": 0, "output_segments": 0, "bytes_in": 0, "bytes_out": 0,
                      "entries_out": 0, "drop_records_applied": 0,
                      "drop_files_before": len(st.drop_files), "drop_files_after": len(st.drop_files),
                      "segments_after": len(st.segments)}
            if run is None:
                if len(st.drop_files) > (1 if full else _MAX_DROP_FILES):
                    self._consolidate_drops(st)
                    result["drop_files_after"] = len(self._live().drop_files)
                return result
            inputs = old_first[run[0]:run[1]]
            snap = st.drops.copy()
            out_no = self._alloc_file_no()
            out_seq = inputs[-1].seq
            size_hint = sum(s.raw_bytes for s in inputs)
        # Merge without the writer lock: readers and writers carry on.
        w = SegmentWriter(self.path, out_no, out_seq, block_size=opts.block_size,
                          zstd_level=opts.zstd_level, bloom_bits_per_key=opts.bloom_bits_per_key,
                          dictionary=opts.dictionary, size_hint=size_hint)
        newest_first = inputs[::-1]
        try:
            for table in sorted({t for s in inputs for t in s.tables}):
                w.add(table, ((k, v, val) for k, v, val, _s in merge_table(newest_first, table, snap)))
            ws = w.finish()
        except BaseException:  # remove the partial output, then re-raise
            w.abort()
            raise
        out_seg: Segment | None = None
        try:
            if ws is not None:
                out_seg = Segment(ws.path, out_no, self._cache, expect_size=ws.file_size,
                                  expect_footer_crc=ws.footer_crc, expect_seq=out_seq)
                fsync_dir(self.path)
            with self._write_lock:
                st2 = self._live()
                gone = {s.file_no for s in inputs}
                remaining = [s for s in st2.segments if s.file_no not in gone]
                if out_seg is not None:
                    remaining.append(out_seg)
                remaining.sort(key=lambda s: -s.seq)
                min_other: dict[EntryKind, int] = {}
                for s in remaining:
                    if s is out_seg:
                        continue
                    for t in s.tables:
                        if s.seq < min_other.get(t, s.seq + 1):
                            min_other[t] = s.seq
                carry, applied = carry_over(st2.drops, snap, min_other)
                old_drop_files = list(st2.drop_files)
                floor = max(old_drop_files) if old_drop_files else self._manifest.drop_floor
                new_files: list[int] = []
                if not carry.is_empty():
                    cno = self._alloc_file_no()
                    write_atomic(self.path / drop_name(cno), encode_drops(cno, list(carry.groups())))
                    new_files.append(cno)
                self._write_manifest(remaining, st2.tables, drop_floor=floor)
                self._state = State(tuple(remaining), st2.tables, carry, new_files)
                self._changed()
        except BaseException:  # the output is not live: remove it, then re-raise
            if ws is not None and (self._state is None or out_seg is None
                                   or out_seg not in self._state.segments):
                self._unlink_quiet(ws.path)
            raise
        # The new manifest is durable: now the retired files may go.
        for s in inputs:
            self._unlink_quiet(s.path)
        for no in old_drop_files:
            self._unlink_quiet(self.path / drop_name(no))
        self._cache.discard_files(gone)
        bytes_in = sum(s.file_size for s in inputs)
        bytes_out = ws.file_size if ws is not None else 0
        c = self._counters
        c["compactions"] += 1
        c["compaction_bytes_in"] += bytes_in
        c["compaction_bytes_out"] += bytes_out
        result.update(merged_segments=len(inputs), output_segments=int(ws is not None),
                      bytes_in=bytes_in, bytes_out=bytes_out,
                      entries_out=ws.nentries if ws is not None else 0,
                      drop_records_applied=applied, drop_files_after=len(new_files),
                      segments_after=len(remaining))
        return result

    def _consolidate_drops(self, st: State) -> None:
        """Fold every live drop file into one (writer lock held)."""
        old = list(st.drop_files)
        no = self._alloc_file_no()
        write_atomic(self.path / drop_name(no), encode_drops(no, list(st.drops.groups())))
        self._write_manifest(st.segments, st.tables, drop_floor=max(old))
        self._state = State(st.segments, st.tables, st.drops, [no])
        for n in old:
            self._unlink_quiet(self.path / drop_name(n))

    # -- maintenance ---------------------------------------------------------------------

    def check(self) -> None:
        """Verify the manifest, every drop file, every segment block checksum and layout,
        and the cache accounting. O(total bytes).

        Raises:
            CorruptionError: names the file and offset of the first damaged record.
        """
        with self._write_lock:
            st = self._live()
            mpath = self.path / MANIFEST_NAME
            try:
                data = mpath.read_bytes()
            except OSError as exc:
                raise StorageIOError(f"cannot read {mpath}: {exc}") from exc
            m = decode_manifest(data, mpath)
            want = [SegmentRef(s.file_no, s.seq, s.file_size, s.footer_crc) for s in st.segments]
            if m.segments != want or frozenset(m.tables) != st.tables:
                raise CorruptionError("cold manifest on disk disagrees with the open tier",
                                      path=mpath, offset=0)
            rebuilt = DropIndex()
            for no in st.drop_files:
                p = self.path / drop_name(no)
                try:
                    ddata = p.read_bytes()
                except OSError as exc:
                    raise CorruptionError(f"cold drop file unreadable: {exc}", path=p, offset=0) from None
                for g in decode_drops(ddata, p, no):
                    rebuilt.add_group(g)
            if rebuilt.nonempty() != st.drops.nonempty() or rebuilt.cleared != st.drops.cleared:
                raise CorruptionError("cold drop files disagree with the in-memory drop list",
                                      path=self.path, offset=None)
            segments = st.segments
        seqs = [s.seq for s in segments]
        if seqs != sorted(seqs, reverse=True) or len(set(seqs)) != len(seqs):
            raise CorruptionError("cold segments not in strictly descending seq order",
                                  path=mpath, offset=0)
        for seg in segments:
            seg.check()
        try:
            self._cache.check()
        except ValueError as exc:
            raise CorruptionError(f"cold block cache: {exc}") from None

    def _exact_counts(self, st: State) -> dict[str, int]:
        segs = st.segments
        if len(segs) == 1 and st.drops.is_empty():
            s = segs[0]
            return {"keys": s.nkeys, "versions": s.nentries, "bytes": s.file_size,
                    "bytes_raw": s.raw_bytes}
        keys = versions = 0
        live_raw: dict[int, int] = {}
        all_tables = sorted({t for s in segs for t in s.tables})
        for table in all_tables:
            last = None
            for k, _v, val, seq in merge_table(segs, table, st.drops):
                versions += 1
                if k != last:
                    keys += 1
                    last = k
                live_raw[seq] = live_raw.get(seq, 0) + len(k) + (len(val) if val is not None else 0) + ENTRY_OVERHEAD
        nbytes = 0
        for s in segs:
            lr = live_raw.get(s.seq, 0)
            nbytes += s.file_size if lr >= s.raw_bytes else (s.file_size * lr) // max(1, s.raw_bytes)
        return {"keys": keys, "versions": versions, "bytes": nbytes,
                "bytes_raw": sum(live_raw.values())}

    def stats(self) -> dict[str, Any]:
        """Counts and bytes.

        ``keys``/``versions``: distinct live keys and versions (drops applied); ``bytes``:
        on-disk bytes of live segments, each prorated by the share of its raw bytes still
        live (equals the file sizes when nothing is dropped or shadowed); ``bytes_on_disk``:
        the plain file sizes; ``bytes_raw``: live keys + values + 8 per version. Exact counts
        need a merge over all segments when there is more than one or any drop is pending:
        O(entries), cached until the next change.
        """
        st = self._live()
        gen = self._generation
        cached = self._stats_cache
        if cached is None or cached[0] != gen:
            cached = (gen, self._exact_counts(st))
            self._stats_cache = cached
        base = cached[1]
        cache = self._cache
        return {
            "tier": "cold",
            "tables": len(st.tables),
            **base,
            "bytes_on_disk": sum(s.file_size for s in st.segments),
            "segments": len(st.segments),
            "entries_stored": sum(s.nentries for s in st.segments),
            "drop_records": st.drops.count + len(st.drops.cleared),
            "drop_files": len(st.drop_files),
            "cache_hits": cache.hits,
            "cache_misses": cache.misses,
            "cache_bytes": cache.size,
            "cache_capacity": cache.capacity,
            "dictionary_segments": sum(1 for s in st.segments if s.has_dict),
            **self._counters,
        }

    def close(self) -> None:
        """Release the directory lock and the cache. Idempotent; later calls raise ClosedError.

        Waits for a running compaction. Segment descriptors close as soon as no reader
        references them (immediately when none is in flight).
        """
        with self._compact_lock, self._write_lock:
            if self._state is None:
                return
            self._state = None
            self._cache.clear()
            try:
                os.close(self._lock_fd)
            except OSError:
                pass  # already closed: nothing left to release

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        st = self._state
        state = "closed" if st is None else f"{len(st.segments)} segments"
        return f"ColdTier({str(self.path)!r}, {state})"
