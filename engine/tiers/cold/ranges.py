"""Range reads of the cold tier: ``range_next``/``range_rev_next`` pages, columnar
``scan_columns``, and ``iter_versions`` (every stored version, for movement and GC).

One segment in range: whole blocks of visible rows at a time, values sliced only for the
rows kept. Several: a stable heap merge of per-segment visible-version streams, the highest
version of a key winning.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from heapq import merge as heap_merge
from itertools import repeat
from operator import itemgetter
from typing import Any

from ...types import Bound, EntryKind, RangeBatch, RangeCursor, RawEntry, as_bytes
from ..base import finish_page
from .compaction import merge_table
from .core import TierCore
from .reader import Candidate, Segment
from .scan import ColumnChunk, chunks_from_rows, segment_columns
from .state import State

_first = itemgetter(0)
_third = itemgetter(2)
_key_version = itemgetter(0, 1)
_tuple_new = tuple.__new__
"""``tuple.__new__(RawEntry, (k, v, value))`` builds a row without the NamedTuple's Python
``__new__`` (a third of a page's cost per row; the warm and hot tiers do the same)."""


class RangeReads(TierCore):
    """The range-read half of :class:`~engine.tiers.cold.tier.ColdTier` (thread safety: any
    number of concurrent readers; each call reads the segment set current when it starts)."""

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

    @staticmethod
    def _merged_rows(srcs: list[tuple[Segment, Any]], tdrops: Any, lo: bytes | None, lo_inc: bool,
                     hi: bytes | None, hi_inc: bool, version: int, reverse: bool,
                     want: int) -> tuple[list[tuple[bytes, int, bytes | None]], bool]:
        """Up to ``want`` winning rows across several segments, in key order, and whether
        more may follow.

        Works a block batch at a time instead of a heap step per row: every source keeps a
        buffer of its visible rows; all rows up to the horizon (the nearest last buffered
        key among sources not yet drained, so every source's rows up to it are buffered)
        are taken, sorted by key (stable: newer segments first among equal keys) and
        reduced to the highest version per key (a dict over the (key, version)-sorted rows).
        Values are sliced per block batch as the buffers fill, so rows come out as ``(key,
        version, value)``. O(rows log sources), every per-row step in C.
        """
        its = [seg.visible_blocks(tr, lo, lo_inc, hi, hi_inc, version, tdrops, reverse)
               for seg, tr in srcs]
        nsrc = len(its)
        Row = tuple[bytes, int, bytes | None]
        bufs: list[list[Row]] = [[] for _ in its]
        pos = [0] * nsrc
        live = [True] * nsrc
        out: list[Row] = []
        while len(out) < want:
            for s in range(nsrc):
                if live[s] and pos[s] >= len(bufs[s]):
                    nxt = next(its[s], None)
                    if nxt is None:
                        live[s] = False
                    else:
                        ks, vl, blk, el = nxt
                        bufs[s] = list(zip(ks, vl, blk.values(el)))
                        pos[s] = 0
            active = [s for s in range(nsrc) if pos[s] < len(bufs[s])]
            if not active:
                return out, False
            lasts = [bufs[s][-1][0] for s in active if live[s]]
            batch: list[Row] = []
            for s in active:
                b = bufs[s]
                p = pos[s]
                if not lasts:
                    e = len(b)  # every source drained: take the rest
                elif not reverse:
                    e = bisect_right(b, min(lasts), p, key=_first)
                else:
                    horizon = max(lasts)
                    e = p
                    n = len(b)
                    while e < n and b[e][0] >= horizon:
                        e += 1
                batch.extend(b[p:e])
                pos[s] = e
            # Highest version per key, in C: sort by (key, version) ascending, then a dict
            # keeps each key's last row (its newest) at the key's first position. The batch
            # lists newer segments first: reversed before the stable sort, a newer segment's
            # row comes last among equal (key, version) rows, and wins.
            batch.reverse()
            batch.sort(key=_key_version)
            rows = list(dict(zip(map(_first, batch), batch)).values())
            if reverse:
                rows.reverse()
            out += rows
        if len(out) > want:
            del out[want:]
            return out, True
        for s in range(nsrc):  # exactly ``want``: more only if some source has another row
            if pos[s] < len(bufs[s]) or (live[s] and next(its[s], None) is not None):
                return out, True
        return out, False

    def _page(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
              version: int, batch_size: int, reverse: bool, pairs: bool = False) -> RangeBatch:
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
        out: list[Any] = []  # RawEntry rows, or (key, value) pairs
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
                    if pairs:
                        out.extend(zip(ks[:room], blk.values(el[:room])))
                    else:
                        out.extend(map(_tuple_new, repeat(RawEntry, room),
                                       zip(ks[:room], vl[:room], blk.values(el[:room]))))
                    has_more = True
                    break
                if pairs:
                    out.extend(zip(ks, blk.values(el)))
                else:
                    out.extend(map(_tuple_new, repeat(RawEntry, len(ks)), zip(ks, vl, blk.values(el))))
        elif srcs:
            rows, has_more = self._merged_rows(srcs, st.drops.keys.get(table), lo, lo_inc, hi,
                                               hi_inc, version, reverse, batch_size)
            if pairs:
                out = list(zip(map(_first, rows), map(_third, rows)))
            else:
                out = list(map(_tuple_new, repeat(RawEntry, len(rows)), rows))
        return finish_page(cursor, out, has_more)

    def range_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                   version: int, batch_size: int) -> RangeBatch:
        """Next <= ``batch_size`` keys ascending at their newest version <= ``version``."""
        return self._page(table, cursor, start, end, version, batch_size, False)

    def range_rev_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                       version: int, batch_size: int) -> RangeBatch:
        """As :meth:`range_next`, descending."""
        return self._page(table, cursor, start, end, version, batch_size, True)

    def range_pairs_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                         version: int, batch_size: int, reverse: bool = False) -> RangeBatch:
        """As :meth:`range_next` / :meth:`range_rev_next`, entries as ``(key, value or None)``
        pairs (a merged scan's rows: no :class:`RawEntry`)."""
        return self._page(table, cursor, start, end, version, batch_size, reverse, True)

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
