"""Row searches over one segment's blocks, for range pages and merges: the newest visible
version of every key in bounds (:func:`visible_blocks`, :func:`visible`) and every stored
entry in order (:func:`entries`). ``Segment`` exposes them as methods; the point read
(``Segment.lookup``) stays in reader.py beside the block access it inlines.

A key's versions may continue from one block into the next (``BLOCK_CONTINUES``); every
function here handles that, in both directions.

Thread safety: generators over an immutable segment; one consumer per generator.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from .block import DecodedBlock
from .writer import BLOCK_CONTINUES

if TYPE_CHECKING:
    from .reader import Segment, TableRange

__all__ = ["BlockRows", "Candidate", "entries", "entries_nexts", "visible", "visible_blocks"]

Candidate = tuple[bytes, int, DecodedBlock, int]
"""(key, version, block, entry index): a visible version found in one segment."""

BlockRows = tuple[list[bytes], list[int], DecodedBlock, list[int]]
"""(keys, versions, block, entry indexes): visible versions found in one block, in order."""

_EMPTY: tuple[list[int], list[int]] = ([], [])


def _block_cands(blk: DecodedBlock, j_lo: int, j_hi: int, version: int,
                 tdrops: dict[bytes, dict[int, int]] | None, seq: int
                 ) -> tuple[list[int] | range, list[int] | range]:
    """Key indices and entry indices of the newest non-dropped version <= ``version`` of each
    key ``j_lo <= j < j_hi`` that has one. Vectorized; O(entries of those keys)."""
    ks = blk.kstart
    a = ks[j_lo]
    e = ks[j_hi]
    if a == e or blk.vmin > version:
        return _EMPTY
    if not tdrops and blk.vmax <= version:
        if blk.single:
            return range(j_lo, j_hi), range(a, e)
        return range(j_lo, j_hi), list(ks[j_lo:j_hi])
    if e - a <= _SMALL_SPAN:
        return _span_cands(blk, j_lo, j_hi, version, tdrops, seq)
    mask = blk.ver[a:e] <= version
    if tdrops:
        keys = blk.keys
        vers = blk.versions
        for j in range(j_lo, j_hi):
            dv = tdrops.get(keys[j])
            if dv:
                for i in range(ks[j], ks[j + 1]):
                    if dv.get(vers[i], -1) >= seq:
                        mask[i - a] = False
    idx = np.flatnonzero(mask)
    if not len(idx):
        return _EMPTY
    kid = blk.kid[a:e][idx]
    if len(idx) > 1:
        first = np.empty(len(idx), dtype=bool)
        first[0] = True
        np.not_equal(kid[1:], kid[:-1], out=first[1:])
        idx = idx[first]
        kid = kid[first]
    idx += a
    return kid.tolist(), idx.tolist()


_SMALL_SPAN = 64
"""Below this many entries a plain loop beats numpy's per-call overhead."""


def _span_cands(blk: DecodedBlock, j_lo: int, j_hi: int, version: int,
                tdrops: dict[bytes, dict[int, int]] | None, seq: int) -> tuple[list[int], list[int]]:
    """:func:`_block_cands` as a plain loop, for small spans. O(entries of those keys)."""
    ks = blk.kstart
    vers = blk.versions
    keys = blk.keys
    kout: list[int] = []
    eout: list[int] = []
    for j in range(j_lo, j_hi):
        i = ks[j]
        e = ks[j + 1]
        while i < e and vers[i] > version:
            i += 1
        if tdrops and i < e:
            dv = tdrops.get(keys[j])
            if dv:
                while i < e and dv.get(vers[i], -1) >= seq:
                    i += 1
        if i < e:
            kout.append(j)
            eout.append(i)
    return kout, eout


def _key_span(keys: list[bytes], lo: bytes | None, lo_inc: bool, hi: bytes | None,
              hi_inc: bool) -> tuple[int, int]:
    """Indices ``j_lo:j_hi`` of the block's ``keys`` inside the bounds. O(log keys)."""
    j_lo = 0
    j_hi = len(keys)
    if lo is not None and keys[0] <= lo:
        j_lo = bisect_left(keys, lo) if lo_inc else bisect_right(keys, lo)
    if hi is not None and keys[-1] >= hi:
        j_hi = bisect_right(keys, hi) if hi_inc else bisect_left(keys, hi)
    return j_lo, j_hi


def visible_blocks(seg: Segment, tr: TableRange, lo: bytes | None, lo_inc: bool, hi: bytes | None,
                   hi_inc: bool, version: int, tdrops: dict[bytes, dict[int, int]] | None,
                   reverse: bool) -> Iterator[BlockRows]:
    """For each key in the bounds (ascending, or descending if ``reverse``), its newest
    non-dropped version <= ``version`` in this segment, one block at a time.

    Yields ``(keys, versions, block, indexes)``: aligned lists in output order; values
    stay in the block until the caller slices the ones it keeps. Keys without a visible
    version are skipped; a key whose versions span blocks is answered once, from the
    earliest block holding a visible version. Lazy: blocks are read as the caller
    advances. O(entries of the blocks touched), vectorized per block.
    """
    if lo is not None and hi is not None and (lo > hi or (lo == hi and not (lo_inc and hi_inc))):
        return
    bs, be = seg.block_span(tr, lo, hi, hi_inc)
    if be < bs:
        return
    seq = seg.seq
    flags = seg.block_flags
    if not reverse:
        last: bytes | None = None
        for b in range(bs, be + 1):
            blk = seg.block(b)
            keys = blk.keys
            j_lo, j_hi = _key_span(keys, lo, lo_inc, hi, hi_inc)
            if j_lo >= j_hi:
                continue
            kidx, eidx = _block_cands(blk, j_lo, j_hi, version, tdrops, seq)
            if not kidx:
                continue
            if type(kidx) is range:
                ks = keys[kidx.start:kidx.stop]
            else:
                ks = [keys[j] for j in kidx]
            vs = blk.versions
            if type(eidx) is range:
                vl = vs[eidx.start:eidx.stop]
            else:
                vl = [vs[i] for i in eidx]
            el = list(eidx)
            if kidx[0] == 0 and flags[b] & BLOCK_CONTINUES and ks[0] == last:
                del ks[0], vl[0], el[0]  # the run continued from the previous block: answered
            last = keys[kidx[-1]]
            if ks:
                yield ks, vl, blk, el
        return
    # Not the forward loop run backwards: a run continued across blocks has its newest
    # versions in the earlier block, reached last, so its first key waits in ``pending``.
    pending: tuple[bytes, int, DecodedBlock, int] | None = None
    for b in range(be, bs - 1, -1):
        blk = seg.block(b)
        keys = blk.keys
        nk = len(keys)
        j_lo, j_hi = _key_span(keys, lo, lo_inc, hi, hi_inc)
        if j_lo < j_hi:
            kidx, eidx = _block_cands(blk, j_lo, j_hi, version, tdrops, seq)
            kl = list(kidx)
            el = list(eidx)
        else:
            kl, el = [], []
        cont = bool(flags[b] & BLOCK_CONTINUES)
        vs = blk.versions
        out_k: list[bytes] = []
        out_v: list[int] = []
        out_b: list[DecodedBlock] = []
        out_i: list[int] = []
        if pending is not None:
            if keys[-1] == pending[0]:
                # This block holds newer versions of the pending key.
                if kl and kl[-1] == nk - 1:
                    i = el.pop()
                    kl.pop()
                    pending = (keys[nk - 1], vs[i], blk, i)
                if nk == 1 and cont:
                    continue  # the run started further back: those blocks hold newer versions
            out_k.append(pending[0])
            out_v.append(pending[1])
            out_b.append(pending[2])
            out_i.append(pending[3])
            pending = None
        if kl and kl[0] == 0 and cont:
            i = el.pop(0)
            kl.pop(0)
            pending = (keys[0], vs[i], blk, i)
        kl.reverse()
        el.reverse()
        out_k.extend([keys[j] for j in kl])
        out_v.extend([vs[i] for i in el])
        if out_b:
            # The carried entry lives in another block: hand it over on its own.
            yield out_k[:1], out_v[:1], out_b[0], out_i
            out_k = out_k[1:]
            out_v = out_v[1:]
        if out_k:
            yield out_k, out_v, blk, el
    if pending is not None:
        yield [pending[0]], [pending[1]], pending[2], [pending[3]]


def visible(seg: Segment, tr: TableRange, lo: bytes | None, lo_inc: bool, hi: bytes | None,
            hi_inc: bool, version: int, tdrops: dict[bytes, dict[int, int]] | None,
            reverse: bool) -> Iterator[Candidate]:
    """:meth:`visible_blocks` flattened to one ``(key, version, block, index)`` per key."""
    for ks, vl, blk, el in visible_blocks(seg, tr, lo, lo_inc, hi, hi_inc, version, tdrops, reverse):
        for k, v, i in zip(ks, vl, el):
            yield k, v, blk, i


def entries(seg: Segment, tr: TableRange, start: bytes | None,
            tdrops: dict[bytes, dict[int, int]] | None) -> Iterator[tuple[bytes, int, bytes | None]]:
    """Every non-dropped entry of the table from key ``start`` on, in (key asc, version
    desc) order. O(entries)."""
    bs = tr.b0 if start is None else seg.first_block(tr, start)
    seq = seg.seq
    for b in range(bs, tr.b1):
        blk = seg.block(b)
        keys = blk.keys
        ks = blk.kstart
        vs = blk.versions
        voff = blk.voff
        raw = blk.raw
        tomb = blk.tomb
        j0 = 0
        if start is not None and keys[0] < start:
            j0 = bisect_left(keys, start)
        for j in range(j0, len(keys)):
            key = keys[j]
            dv = tdrops.get(key) if tdrops else None
            for i in range(ks[j], ks[j + 1]):
                v = vs[i]
                if dv is not None and dv.get(v, -1) >= seq:
                    continue
                yield key, v, (None if tomb is not None and (tomb[i >> 3] >> (i & 7)) & 1
                               else raw[voff[i]:voff[i + 1]])


def entries_nexts(seg: Segment, tr: TableRange,
                  tdrops: dict[bytes, dict[int, int]] | None
                  ) -> Iterator[tuple[bytes, int, bytes | None, int]]:
    """:func:`entries` of the whole table as ``(key, version, value, next)``: ``next`` is the
    stored successor (FLAG_NEXTS) on a key's newest entry in the segment when that entry is
    not dropped, else 0 (a dropped newest entry takes its successor with it: the entry that
    remains newest is followed by the dropped one, not by the successor). O(entries)."""
    seq = seg.seq
    flags = seg.block_flags
    for b in range(tr.b0, tr.b1):
        view = seg.view(b)
        blk = seg.block(b)
        keys = blk.keys
        ks = blk.kstart
        vs = blk.versions
        voff = blk.voff
        raw = blk.raw
        tomb = blk.tomb
        has_nexts = view.nexts
        cont = bool(flags[b] & BLOCK_CONTINUES)
        for j in range(len(keys)):
            key = keys[j]
            dv = tdrops.get(key) if tdrops else None
            first = ks[j]
            for i in range(first, ks[j + 1]):
                v = vs[i]
                if dv is not None and dv.get(v, -1) >= seq:
                    continue
                nxt = 0
                if has_nexts and i == first and not (cont and j == 0):
                    d = view.next_delta(j)
                    if d:
                        nxt = v + d
                yield key, v, (None if tomb is not None and (tomb[i >> 3] >> (i & 7)) & 1
                               else raw[voff[i]:voff[i + 1]]), nxt
