"""Columnar scans: visible versions as numpy columns over the decompressed block bytes.

``range_next`` must build one :class:`~engine.types.RawEntry` per row, and that object costs
more than decompressing the row (benches/bench_cold.py measures both). Bulk consumers
(exports, movement checks, analytics) can instead take :class:`ColumnChunk` s: per block,
the selected rows' key and value boundaries inside the block's bytes, their versions and a
tombstone mask, computed with a handful of vectorized numpy operations and no per-row Python
object. Slice ``chunk.data`` yourself, or call ``keys()``/``values()``/``entries()``.

The fast path (one segment holds the table in range, no pending drops for it) reads blocks
directly and bypasses the block cache, so a big scan does not evict the point-read working
set. Anything else (several overlapping segments, pending drops) falls back to the row merge
and packs its rows into chunks; answers are identical either way.

Thread safety: generators over immutable segments; one consumer per generator.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import numpy as np

from ...types import RawEntry
from .format import BlockColumns, decode_columns
from .reader import Segment, TableRange
from .writer import BLOCK_CONTINUES

__all__ = ["ColumnChunk", "chunks_from_rows", "segment_columns"]

_FALSE = np.zeros(1 << 16, dtype=bool)
_FALSE.flags.writeable = False  # shared, read-only "no tombstone" mask (sliced per chunk)


def _no_tombs(n: int) -> np.ndarray:
    return _FALSE[:n] if n <= len(_FALSE) else np.zeros(n, dtype=bool)


class ColumnChunk(NamedTuple):
    """Rows of a columnar scan, in key order.

    Row i: key ``data[key_start[i]:key_end[i]]``, version ``versions[i]``, value
    ``data[value_start[i]:value_end[i]]`` unless ``tombstone[i]`` (then the value is None).
    Offsets are int64, versions uint64. The arrays may be views: copy them to keep them
    beyond the block's lifetime (``data`` keeps the bytes alive).
    """

    data: bytes
    key_start: np.ndarray
    key_end: np.ndarray
    versions: np.ndarray
    value_start: np.ndarray
    value_end: np.ndarray
    tombstone: np.ndarray

    def __len__(self) -> int:  # type: ignore[override]
        return len(self.versions)

    def keys(self) -> list[bytes]:
        d = self.data
        return [d[a:b] for a, b in zip(self.key_start.tolist(), self.key_end.tolist())]

    def values(self) -> list[bytes | None]:
        d = self.data
        return [None if t else d[a:b] for a, b, t in
                zip(self.value_start.tolist(), self.value_end.tolist(), self.tombstone.tolist())]

    def entries(self) -> list[RawEntry]:
        return list(map(RawEntry, self.keys(), self.versions.tolist(), self.values()))


def chunks_from_rows(rows: Iterable[tuple[bytes, int, bytes | None]], chunk_rows: int) -> Iterator[ColumnChunk]:
    """Pack ``(key, version, value)`` rows into chunks of at most ``chunk_rows``."""
    buf: list[tuple[bytes, int, bytes | None]] = []
    for row in rows:
        buf.append(row)
        if len(buf) == chunk_rows:
            yield _pack(buf)
            buf = []
    if buf:
        yield _pack(buf)


def _pack(rows: list[tuple[bytes, int, bytes | None]]) -> ColumnChunk:
    n = len(rows)
    parts: list[bytes] = []
    lens = np.empty(2 * n, dtype=np.int64)
    tomb = np.zeros(n, dtype=bool)
    for i, (k, _v, val) in enumerate(rows):
        parts.append(k)
        lens[2 * i] = len(k)
        if val is None:
            tomb[i] = True
            val = b""
        parts.append(val)
        lens[2 * i + 1] = len(val)
    ends = np.cumsum(lens)
    starts = ends - lens
    return ColumnChunk(b"".join(parts), starts[0::2], ends[0::2],
                       np.fromiter((r[1] for r in rows), dtype=np.uint64, count=n),
                       starts[1::2], ends[1::2], tomb)


def _keys_of(c: BlockColumns) -> list[bytes]:
    raw = c.raw
    kl = c.koff.tolist()
    return [raw[kl[i]:kl[i + 1]] for i in range(c.nk)]


def segment_columns(seg: Segment, tr: TableRange, lo: bytes | None, lo_inc: bool,
                    hi: bytes | None, hi_inc: bool, version: int) -> Iterator[ColumnChunk]:
    """The fast path: one chunk per block of ``seg`` (no drops may be pending for the table).

    Only blocks that the bounds cut build a key list (for ``bisect``); every other block is
    decoded and filtered with numpy alone. O(blocks * numpy calls + bytes decompressed).
    """
    if lo is not None and hi is not None and (lo > hi or (lo == hi and not (lo_inc and hi_inc))):
        return
    bs, be = seg.block_span(tr, lo, hi, hi_inc)
    fks = seg.first_keys
    flags = seg.block_flags
    prev_last = False  # the previous block answered its last key
    for b in range(bs, be + 1):
        c = decode_columns(seg.read_raw(b), seg.path, seg.offsets[b])
        nk = c.nk
        j_lo = 0
        j_hi = nk
        keys: list[bytes] | None = None
        fk = fks[b]
        if lo is not None and not (fk > lo or (lo_inc and fk == lo)):
            keys = _keys_of(c)
            j_lo = bisect_left(keys, lo) if lo_inc else bisect_right(keys, lo)
        upper = fks[b + 1] if b + 1 < tr.b1 else tr.max_key
        if hi is not None and not (upper < hi or (hi_inc and upper == hi)):
            keys = keys if keys is not None else _keys_of(c)
            j_hi = bisect_right(keys, hi) if hi_inc else bisect_left(keys, hi)
        if j_lo >= j_hi:
            prev_last = False
            continue
        ks = c.kstart
        ver = c.ver
        if nk == c.n:
            # One version per key: entry index == key index.
            sel = np.arange(j_lo, j_hi, dtype=np.int64) if int(ver[j_lo:j_hi].max()) > version else None
            if sel is not None:
                sel = sel[ver[j_lo:j_hi] <= version]
                ksel = sel
            else:
                ksel = None
        else:
            heads = ks[j_lo:j_hi]
            if int(ver[heads].max()) <= version:
                sel = heads  # the newest version of every key is visible: take the run heads
                ksel = None
            else:
                a = int(ks[j_lo])
                e = int(ks[j_hi])
                idx = np.flatnonzero(ver[a:e] <= version)
                if len(idx):
                    k = c.kid[a:e][idx]
                    first = np.empty(len(idx), dtype=bool)
                    first[0] = True
                    np.not_equal(k[1:], k[:-1], out=first[1:])
                    sel = idx[first] + a
                    ksel = k[first]
                else:
                    sel = ksel = idx
        if sel is None:  # every key j_lo..j_hi-1 at its only version
            first_k, last_k, count = j_lo, j_hi - 1, j_hi - j_lo
        else:
            count = len(sel)
            if not count:
                prev_last = nk == 1 and bool(flags[b] & BLOCK_CONTINUES) and prev_last
                continue
            if ksel is None:
                first_k, last_k = j_lo, j_hi - 1
            else:
                first_k, last_k = int(ksel[0]), int(ksel[-1])
        answered_last = last_k == nk - 1
        skip = 1 if flags[b] & BLOCK_CONTINUES and prev_last and first_k == 0 else 0
        if skip:
            answered_last = answered_last or nk == 1  # the previous block answered this run
        prev_last = answered_last
        if count - skip <= 0:
            continue
        koff = c.koff
        voff = c.voff
        if sel is None:
            lo_k = j_lo + skip
            yield ColumnChunk(c.raw, koff[lo_k:j_hi], koff[lo_k + 1:j_hi + 1], ver[lo_k:j_hi],
                              voff[lo_k:j_hi], voff[lo_k + 1:j_hi + 1],
                              c.tomb[lo_k:j_hi] if c.tomb is not None else _no_tombs(j_hi - lo_k))
            continue
        if skip:
            sel = sel[1:]
            if ksel is not None:
                ksel = ksel[1:]
        if ksel is None:
            kk = np.arange(j_lo + skip, j_hi, dtype=np.int64) if sel is not heads or skip else None
            if kk is None:
                ks_start = koff[j_lo:j_hi]
                ks_end = koff[j_lo + 1:j_hi + 1]
            else:
                ks_start = koff[kk]
                ks_end = koff[kk + 1]
        else:
            ks_start = koff[ksel]
            ks_end = koff[ksel + 1]
        yield ColumnChunk(c.raw, ks_start, ks_end, ver[sel], voff[sel], voff[sel + 1],
                          c.tomb[sel] if c.tomb is not None else _no_tombs(len(sel)))
