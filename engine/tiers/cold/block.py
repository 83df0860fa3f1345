"""In-memory forms of one decompressed block (the byte layout is in format.py).

:class:`BlockView` is what the block cache holds and point reads use: the decompressed bytes
plus a compact index (integer columns read in place through ``memoryview`` casts, offset
arrays of 8 bytes per entry only where lengths vary), no per-entry Python object. A point
read finds its key with ``bytes.find`` over the block's key bytes (C speed; the match is
then checked against the key boundaries), so a cache miss costs a decompression and a few
microseconds of parsing, never a decode of every entry, and the cache is charged close to
the decompressed size.

:class:`DecodedBlock` is the row form scans use (one ``bytes`` per distinct key, versions
and offsets as lists, numpy views on demand for the vectorized filters of large blocks). It
is built from a view the first time a scan visits the block and then kept with the view (and
charged to the cache), so paging through a cached block does not rebuild it, while blocks
that are only ever point-read never pay for it.

Thread safety: both are immutable once built (lazy numpy views are idempotent); share freely.
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left, bisect_right
from itertools import accumulate, repeat
from operator import add, itemgetter
from typing import Final

import numpy as np

from ...errors import CorruptionError
from .format import (
    FLAG_NEXTS,
    FLAG_TOMBSTONES,
    MAX_ENTRIES,
    NEXTS_HEADER,
    RAW_BLOCK_HEADER,
    nexts_end,
)

__all__ = ["SPARSE", "BlockView", "DecodedBlock", "decode_block", "parse_block"]

_CODES: Final = {1: "B", 2: "H", 4: "I", 8: "Q"}
for _width, _code in _CODES.items():
    assert array(_code).itemsize == _width, f"array('{_code}') is not {_width} bytes here"
assert array("q").itemsize == 8
_WIDTHS: Final = frozenset((0, 1, 2, 4, 8))
_BIG: Final = sys.byteorder == "big"
SPARSE: Final = 16
"""Every SPARSE-th key of a block is kept as ``bytes`` (``BlockView.sparse``) to bisect on."""
_FIND_TRIES: Final = 8
"""Misaligned ``bytes.find`` matches tolerated before a point read falls back to bisect."""

Column = memoryview | array
Bounds = array | range


def _column(raw: bytes, off: int, count: int, width: int) -> Column:
    """``count`` little-endian unsigned ints of ``width`` bytes at ``off``: a zero-copy
    ``memoryview`` cast (CPython reads unaligned items safely), a copy on big-endian hosts."""
    if _BIG:  # pragma: no cover - the format is little-endian
        a = array(_CODES[width], raw[off:off + count * width])
        a.byteswap()
        return a
    return memoryview(raw)[off:off + count * width].cast(_CODES[width])  # type: ignore[call-overload]


def _bounds(raw: bytes, off: int, count: int, width: int, base: int, start: int) -> Bounds:
    """Boundaries (count + 1) ``start, start + l0, ...`` of a frame-of-reference length
    column: a ``range`` when every length is ``base``, else ``array('q')`` (C-speed
    accumulate, no numpy: for small blocks numpy's per-call cost exceeds the work)."""
    if width == 0:
        if base == 0:
            return array("q", [start]) * (count + 1)
        return range(start, start + (count + 1) * base, base)
    col = _column(raw, off, count, width)
    return array("q", list(accumulate(map(add, col, repeat(base, count)) if base else col,
                                      initial=start)))


class BlockView:
    """A decompressed block with a compact index for point reads (see the module docstring).

    Attributes: ``raw`` (the bytes), ``nk``/``n`` (distinct keys / entries), ``kpos``/``kend``
    (the key bytes), ``kstride`` (the common key length, or -1 when lengths vary; then
    ``koff`` holds the nk + 1 key boundaries), ``sparse`` (keys 0, SPARSE, 2 * SPARSE, ...), ``kstart`` (nk + 1 run starts; key j owns
    entries ``kstart[j]:kstart[j+1]``, versions descending), ``voff`` (n + 1 value
    boundaries), ``tomb`` (tombstone bitmap or None), ``nexts`` (True when the block has a
    successor column: see :meth:`next_delta`), ``vmin``/``vmax``, ``single`` (one
    version per key), ``rows`` (the :class:`DecodedBlock` once a scan asked for it, kept
    with the view and charged to the cache: see ``BlockCache.attach_rows``), ``nbytes``
    (what the cache is charged; grows by the rows' cost when they are attached).

    Complexity: :meth:`find` O(log keys) plus a C-speed ``bytes.find`` over at most
    ``SPARSE`` keys; the rest O(1). (The newest version <= v in a key's run is a bisect
    over ``ver_col``, inlined in ``Segment.lookup``.)
    """

    __slots__ = ("_ver", "kend", "koff", "kpos", "kstart", "kstride", "n", "nbytes", "nexts", "nk",
                 "nx_base", "nx_col", "raw", "rows", "single", "sparse", "tomb", "ver_base", "ver_col",
                 "vmax", "vmin", "voff")

    raw: bytes
    nk: int
    n: int
    kpos: int
    kend: int
    kstride: int
    koff: Bounds | None
    sparse: list[bytes]
    kstart: Bounds
    ver_base: int
    ver_col: Column | None
    voff: Bounds
    tomb: bytes | None
    nexts: bool
    nx_base: int
    nx_col: Column | None
    vmin: int
    vmax: int
    single: bool
    nbytes: int
    rows: DecodedBlock | None
    _ver: np.ndarray | None

    def __len__(self) -> int:
        return self.n

    def key_at(self, j: int) -> bytes:
        """Key ``j`` (0 <= j < nk). O(len(key))."""
        s = self.kstride
        if s >= 0:
            p = self.kpos + j * s
            return self.raw[p:p + s]
        ko = self.koff
        assert ko is not None
        return self.raw[ko[j]:ko[j + 1]]

    def find(self, key: bytes) -> int:
        """Index of ``key`` among the block's keys, or -1 when it is not here.

        A C ``bisect`` over every ``SPARSE``-th key picks a window of at most ``SPARSE``
        keys; ``bytes.find`` locates the key inside the window's bytes (a match must start
        on a key boundary and span exactly one key: checked). Keys that recur inside other
        keys fall back to a binary search after a few misaligned matches.
        """
        kl = len(key)
        stride = self.kstride
        if stride >= 0 and kl != stride:
            return -1
        sparse = self.sparse
        w = bisect_right(sparse, key) - 1
        if w < 0:
            return -1
        j0 = w * SPARSE
        j1 = min(j0 + SPARSE, self.nk)
        raw = self.raw
        if stride >= 0:
            if not kl:
                return 0  # keys are distinct, so the only key is the empty one
            kpos = self.kpos
            lo = kpos + j0 * kl
            hi = kpos + j1 * kl
            p = raw.find(key, lo, hi)
            tries = 0
            while p >= 0:
                j, r = divmod(p - kpos, kl)
                if not r:
                    return j
                tries += 1
                if tries > _FIND_TRIES:
                    return self._bisect(key)
                p = raw.find(key, p + 1, hi)
            return -1
        ko = self.koff
        assert ko is not None
        if not kl:
            return 0 if ko[1] == ko[0] else -1  # the empty key sorts first
        hi = ko[j1]
        p = raw.find(key, ko[j0], hi)
        tries = 0
        while p >= 0:
            j = bisect_right(ko, p, j0, j1 + 1) - 1  # the last key starting at p
            if ko[j] == p and ko[j + 1] - p == kl:
                return j
            tries += 1
            if tries > _FIND_TRIES:
                return self._bisect(key)
            p = raw.find(key, p + 1, hi)
        return -1

    def _bisect(self, key: bytes) -> int:
        """:meth:`find` by binary search (for keys that recur inside other keys)."""
        j = bisect_left(range(self.nk), key, key=self.key_at)
        return j if j < self.nk and self.key_at(j) == key else -1

    def next_delta(self, j: int) -> int:
        """Successor delta of key ``j`` (FLAG_NEXTS): ``s - v`` where v is the version of the
        key's first entry here and s the version that superseded it; 0 when not known (no
        column, or the run continues from the previous block). O(1)."""
        if not self.nexts:
            return 0
        col = self.nx_col
        return self.nx_base if col is None else self.nx_base + col[j]

    def version(self, i: int) -> int:
        """Version of entry ``i``. O(1)."""
        col = self.ver_col
        return self.ver_base if col is None else self.ver_base + col[i]

    def value(self, i: int) -> bytes | None:
        """Value of entry ``i`` (None for a tombstone). O(len(value))."""
        tomb = self.tomb
        if tomb is not None and (tomb[i >> 3] >> (i & 7)) & 1:
            return None
        voff = self.voff
        return self.raw[voff[i]:voff[i + 1]]

    def decoded(self) -> DecodedBlock:
        """The row form of this block (for scans). O(entries)."""
        return DecodedBlock(self)

    @property
    def ver(self) -> np.ndarray:
        """Every entry's version as ``numpy.uint64``."""
        v = self._ver
        if v is None:
            col = self.ver_col
            if col is None:
                v = np.full(self.n, self.ver_base, dtype=np.uint64)
            else:
                v = np.add(np.asarray(col), np.uint64(self.ver_base), dtype=np.uint64)
            self._ver = v
        return v


def parse_block(raw: bytes, path: object, block_offset: int) -> BlockView:
    """Parse a decompressed block into a :class:`BlockView`, validating its structure.

    Complexity: O(1) Python steps plus C-speed passes over the length columns that vary.

    Raises:
        CorruptionError: the layout is inconsistent (lengths, counts, widths). Payload
            damage is caught earlier by the block checksum; this guards against bugs.
    """
    hs = RAW_BLOCK_HEADER.size
    size = len(raw)
    if size < hs:
        raise CorruptionError("cold block shorter than its header", path=path, offset=block_offset)
    (nk, n, ver_base, run_base, klen_base, vlen_base,
     run_w, klen_w, ver_w, vlen_w, flags) = RAW_BLOCK_HEADER.unpack_from(raw, 0)
    if (not (0 < nk <= n < MAX_ENTRIES) or flags & ~(FLAG_TOMBSTONES | FLAG_NEXTS) or run_base < 1
            or run_w not in _WIDTHS or klen_w not in _WIDTHS or ver_w not in _WIDTHS
            or vlen_w not in _WIDTHS):
        raise CorruptionError(f"cold block header invalid (nkeys={nk}, nentries={n}, flags={flags})",
                              path=path, offset=block_offset)
    tb = (n + 7) >> 3 if flags & FLAG_TOMBSTONES else 0
    kpos = hs + nk * (run_w + klen_w) + n * (ver_w + vlen_w) + tb
    if kpos > size:
        raise CorruptionError("cold block: columns run past the block end", path=path,
                              offset=block_offset)
    v = BlockView()
    if flags & FLAG_NEXTS:
        nx_off = kpos
        kpos = nexts_end(raw, kpos, nk, path, block_offset)
        nx_base, nx_w = NEXTS_HEADER.unpack_from(raw, nx_off)
        v.nexts = True
        v.nx_base = nx_base
        v.nx_col = _column(raw, nx_off + NEXTS_HEADER.size, nk, nx_w) if nx_w else None
    else:
        v.nexts = False
        v.nx_base = 0
        v.nx_col = None
    v.raw = raw
    v.nk = nk
    v.n = n
    v.kpos = kpos
    v._ver = None
    v.rows = None
    extra = 0
    off = hs
    if run_w == 0 and run_base == 1:
        v.kstart = range(nk + 1)
        v.single = True
    else:
        v.kstart = _bounds(raw, off, nk, run_w, run_base, 0)
        v.single = False
        extra += 8 * (nk + 1) if run_w else 0
    off += nk * run_w
    if klen_w == 0:
        v.kstride = klen_base
        v.koff = None
        kend = kpos + nk * klen_base
    else:
        v.kstride = -1
        ko = v.koff = _bounds(raw, off, nk, klen_w, klen_base, kpos)
        kend = ko[nk]
        extra += 8 * (nk + 1)
    if kend > size:
        raise CorruptionError("cold block: keys run past the block end", path=path,
                              offset=block_offset)
    v.kend = kend
    sparse = v.sparse = [v.key_at(0)] if nk <= SPARSE else [v.key_at(j) for j in range(0, nk, SPARSE)]
    extra += 57 * len(sparse) + (kend - kpos) // SPARSE
    off += nk * klen_w
    v.ver_base = ver_base
    if ver_w == 0:
        v.ver_col = None
        v.vmin = v.vmax = ver_base
    else:
        col = v.ver_col = _column(raw, off, n, ver_w)
        v.vmin = ver_base + min(col)
        v.vmax = ver_base + max(col)
        if v.vmax > 0xFFFFFFFFFFFFFFFF:
            raise CorruptionError("cold block: a version overflows 64 bits", path=path,
                                  offset=block_offset)
    off += n * ver_w
    voff = v.voff = _bounds(raw, off, n, vlen_w, vlen_base, kend)
    if vlen_w:
        extra += 8 * (n + 1)
    off += n * vlen_w
    if v.kstart[nk] != n or voff[n] != size:
        raise CorruptionError(
            f"cold block: columns describe {voff[n]} bytes and {v.kstart[nk]} entries, "
            f"block has {size} bytes and {n} entries", path=path, offset=block_offset)
    if tb:
        tomb = v.tomb = raw[off:off + tb]
        if (n & 7) and tomb[-1] >> (n & 7):
            raise CorruptionError("cold block: tombstone bitmap has bits past the last entry",
                                  path=path, offset=block_offset)
        for byte_no, byte in enumerate(tomb):
            if byte:
                for bit in range(8):
                    i = (byte_no << 3) + bit
                    if (byte >> bit) & 1 and voff[i] != voff[i + 1]:
                        raise CorruptionError("cold block: a tombstone has value bytes",
                                              path=path, offset=block_offset)
    else:
        v.tomb = None
    v.nbytes = size + 400 + extra
    return v


class DecodedBlock:
    """A block decoded into rows, for scans and verification.

    Attributes (read-only): ``keys`` (distinct keys ascending, ``list[bytes]``), ``kstart``
    (run starts, as in :class:`BlockView`), ``versions`` (``list[int]``), ``voff`` (value
    boundaries), ``tomb``, ``raw``, ``vmin``, ``vmax``, ``single``; ``ver`` and ``kid``
    (numpy: versions, key index per entry) for vectorized filters; ``nbytes`` (the estimated
    size of the objects built here, beyond the view's).
    """

    __slots__ = ("_kid", "_view", "keys", "kstart", "nbytes", "raw", "single", "tomb", "versions",
                 "vmax", "vmin", "voff")

    def __init__(self, view: BlockView) -> None:
        self._view = view
        raw = self.raw = view.raw
        nk = view.nk
        s = view.kstride
        if s > 0:
            kpos = view.kpos
            self.keys = [raw[p:p + s] for p in range(kpos, kpos + nk * s, s)]
        elif s == 0:
            self.keys = [b""] * nk
        else:
            ko = view.koff
            assert ko is not None
            self.keys = [raw[ko[j]:ko[j + 1]] for j in range(nk)]
        col = view.ver_col
        base = view.ver_base
        n = view.n
        if col is None:
            self.versions = [base] * n
        elif base:
            self.versions = list(map(add, col, repeat(base, n)))
        else:
            self.versions = col.tolist()
        self.kstart = view.kstart
        self.voff = view.voff
        self.tomb = view.tomb
        self.vmin = view.vmin
        self.vmax = view.vmax
        self.single = view.single
        self._kid: np.ndarray | None = None
        # key objects (~57 bytes + key bytes), version ints (~40 each), kid if ever built.
        self.nbytes = 60 * nk + (view.kend - view.kpos) + 48 * n

    def __len__(self) -> int:
        return len(self.versions)

    @property
    def ver(self) -> np.ndarray:
        return self._view.ver

    @property
    def kid(self) -> np.ndarray:
        k = self._kid
        if k is None:
            nk = len(self.keys)
            ar = np.arange(nk, dtype=np.int64)
            k = self._kid = ar if self.single else np.repeat(ar, np.diff(np.asarray(self.kstart)))
        return k

    def is_tomb(self, i: int) -> bool:
        """True if entry ``i`` is a tombstone. O(1)."""
        tomb = self.tomb
        return tomb is not None and bool((tomb[i >> 3] >> (i & 7)) & 1)

    def values(self, idx: list[int]) -> list[bytes | None]:
        """The values of entries ``idx`` (None for tombstones). O(total value bytes)."""
        raw = self.raw
        voff = self.voff
        tomb = self.tomb
        if tomb is None and len(idx) > 1:
            # Slices built and applied by map (no bytecode per value): a contiguous run of
            # entries (the usual case) takes its bounds as one slice of ``voff``.
            if idx[-1] - idx[0] == len(idx) - 1:
                b = voff[idx[0]:idx[-1] + 2]
                return list(map(raw.__getitem__, map(slice, b, b[1:])))
            starts = itemgetter(*idx)(voff)
            ends = itemgetter(*map(add, idx, repeat(1)))(voff)
            return list(map(raw.__getitem__, map(slice, starts, ends)))
        if tomb is None:
            return [raw[voff[i]:voff[i + 1]] for i in idx]
        return [None if (tomb[i >> 3] >> (i & 7)) & 1 else raw[voff[i]:voff[i + 1]] for i in idx]

    def value(self, i: int) -> bytes | None:
        """The value of entry ``i`` (None for a tombstone). O(len(value))."""
        tomb = self.tomb
        if tomb is not None and (tomb[i >> 3] >> (i & 7)) & 1:
            return None
        voff = self.voff
        return self.raw[voff[i]:voff[i + 1]]


def decode_block(raw: bytes, path: object, block_offset: int) -> DecodedBlock:
    """Parse and decode a decompressed block into rows. Raises CorruptionError."""
    return DecodedBlock(parse_block(raw, path, block_offset))
