"""Compaction policy (size-tiered over contiguous runs) and the k-way merge of segments.

Why size-tiered, and why contiguous runs
    Segments are ordered by ``seq``; for the same (table, key, version) the newer segment
    wins, and drop records hide versions only in segments with ``seq <= upto_seq``. Merging a
    *contiguous* run of segments into one output that takes the run's largest ``seq`` keeps
    both rules exact without rewriting any drop record. Leveled compaction would need
    key-partitioned levels whose files interleave in ``seq``, which breaks that property (or
    needs per-entry sequence numbers, 8 more bytes per entry). The cold tier's workload is
    write-once batches (demotion) and rare reads of history, the case size-tiered handles with
    the least write amplification: every entry is rewritten about ``log_min_merge(N)`` times.
    benches/bench_cold.py measures write amplification and the resulting segment counts
    (docs/FORMATS.md records the figures).

Policy (:func:`plan`), over live segments ordered oldest first:
    1. Size ratio: starting from the newest segment, grow a run toward older segments while
       the next older one is at most ``size_ratio`` times the run's total size; the first run
       of at least ``min_merge`` segments (trying each newest end in turn) is merged.
    2. Count cap: if there are still ``max_segments`` or more segments, merge the
       ``min_merge`` adjacent segments with the smallest total size (cheapest merge that cuts
       the count).

Thread safety: pure functions; :func:`merge_table` reads immutable segments and a drop
index that the caller copied (or that only grows under the writer lock; only ``dict.get``
is used on it).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ...types import EntryKind
from .drops import DropIndex
from .reader import Segment

__all__ = ["carry_over", "merge_table", "merge_table_nexts", "plan"]


def plan(sizes: Sequence[int], *, min_merge: int, max_merge: int, size_ratio: float,
         max_segments: int | None) -> tuple[int, int] | None:
    """Choose a contiguous run ``[start, end)`` of ``sizes`` (oldest first) to merge, or None.

    Complexity O(n * max_merge).
    """
    n = len(sizes)
    if n < 2:
        return None
    for end in range(n, 1, -1):
        start = end - 1
        total = sizes[start]
        while start > 0 and end - start < max_merge and sizes[start - 1] <= total * size_ratio:
            start -= 1
            total += sizes[start]
        if end - start >= min_merge:
            return start, end
    if max_segments is not None and n >= max_segments:
        width = min(min_merge, n)
        best = min(range(n - width + 1), key=lambda s: (sum(sizes[s:s + width]), -s))
        return best, best + width
    return None


def merge_table(segments: Sequence[Segment], table: EntryKind, drops: DropIndex,
                start: bytes | None = None) -> Iterator[tuple[bytes, int, bytes | None, int]]:
    """Every live version of ``table`` across ``segments`` (any order) as
    ``(key, version, value, seq)`` in (key asc, version desc) order.

    Applies drops and clears; of several copies of one (key, version) the one from the
    newest segment wins. If that copy is dropped, every older copy is too (its record's
    ``upto_seq`` covers them), so filtering per segment first is exact.

    Complexity O(E log S) for E entries in S segments.
    """
    def rows(seg: Segment, tr: Any, tdrops: Any) -> Iterator[tuple[bytes, int, bytes | None, int]]:
        s = seg.seq
        for k, v, val in seg.entries(tr, start, tdrops):
            yield k, v, val, s
    return _merged(segments, table, drops, start, rows)


def merge_table_nexts(segments: Sequence[Segment], table: EntryKind, drops: DropIndex
                      ) -> Iterator[tuple[bytes, int, bytes | None, int]]:
    """:func:`merge_table` for compaction: ``(key, version, value, next)`` rows, where
    ``next`` is the successor the winning copy's segment stores for it (non-zero only where
    that copy is its segment's newest entry of the key; see ``Segment.entries_nexts``).

    The merged output's newest entry of a key keeps its successor only when it had one in
    its own segment: then the successor is still the next version of the key after it (a
    demotion recorded it, and no version is ever committed in between). Complexity as
    :func:`merge_table`.
    """
    return _merged(segments, table, drops, None,
                   lambda seg, tr, tdrops: seg.entries_nexts(tr, tdrops))


def _merged(segments: Sequence[Segment], table: EntryKind, drops: DropIndex,
            start: bytes | None,
            rows: Callable[[Segment, Any, Any], Iterator[tuple[bytes, int, bytes | None, int]]],
            ) -> Iterator[tuple[bytes, int, bytes | None, int]]:
    """The rows ``rows(segment, table range, table drops)`` gives for each segment holding
    ``table`` (not cleared, reaching ``start``), merged in (key asc, version desc) order;
    of several copies of one (key, version) the newest segment's wins."""
    cleared = drops.cleared.get(table, -1)
    tdrops = drops.keys.get(table)
    streams = []
    for seg in segments:
        tr = seg.tables.get(table)
        if tr is None or seg.seq <= cleared:
            continue
        if start is not None and tr.max_key < start:
            continue
        streams.append((seg, tr))
    if not streams:
        return
    if len(streams) == 1:
        seg, tr = streams[0]
        yield from rows(seg, tr, tdrops)
        return

    def tagged(seg: Segment, tr: object) -> Iterator[tuple[bytes, int, int, bytes | None, int]]:
        ns = -seg.seq
        for k, v, val, extra in rows(seg, tr, tdrops):
            yield k, -v, ns, val, extra

    merged = heapq.merge(*(tagged(seg, tr) for seg, tr in streams))
    last_k: bytes | None = None
    last_nv = 1
    for k, nv, _ns, val, extra in merged:
        if nv == last_nv and k == last_k:
            continue  # an older segment's copy of the same (key, version)
        last_k = k
        last_nv = nv
        yield k, -nv, val, extra


def carry_over(current: DropIndex, snap: DropIndex,
                min_other: dict[EntryKind, int]) -> tuple[DropIndex, int]:
    """Records still needed after a merge, and how many were retired.

    ``min_other[t]`` is the smallest seq of a remaining segment (other than the merge
    output) that holds table ``t``; the merged run need not be the newest or the oldest
    segments, so segments on both sides count. A record the merge applied (unchanged
    since the snapshot) is retired when no such segment has ``seq <= upto_seq``; records
    added during the merge are always kept (they may apply to the output).
    """
    out = DropIndex()
    applied = 0
    for t, up in current.cleared.items():
        if snap.cleared.get(t) == up and min_other.get(t, up + 1) > up:
            applied += 1
        else:
            out.cleared[t] = up
    for t, tk in current.keys.items():
        stk = snap.keys.get(t, {})
        floor = min_other.get(t)
        for k, dv in list(tk.items()):
            sdv = stk.get(k, {})
            for v, up in list(dv.items()):
                if sdv.get(v) == up and (floor is None or floor > up):
                    applied += 1
                    continue
                out.keys.setdefault(t, {}).setdefault(k, {})[v] = up
                out.count += 1
    return out, applied
