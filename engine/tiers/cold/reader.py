"""Reading one immutable segment: open and verify, block access through the cache, the point
lookup and version history; the row searches for range pages (visible versions, raw entry
iteration) are in rowscan.py and exposed here as methods.

Opening a segment reads and verifies the header, the footer and the meta section (table
directory, block index, bloom filter, dictionary); blocks are read lazily, verified against
their CRC on every read from disk, and parsed into a compact :class:`BlockView` kept in the
shared :class:`BlockCache`. Point reads work on the view directly; scans decode the rows they
visit (:class:`DecodedBlock`).

A key's versions may continue from one block into the next (``BLOCK_CONTINUES`` in the
block flags); every algorithm here handles that, in both directions.

Thread safety: a :class:`Segment` is immutable after ``__init__``; reads use ``os.pread`` on
one file descriptor (no shared file position) and a per-thread zstd decompressor, so any
number of threads may read concurrently. The descriptor is closed by :meth:`Segment.close`
or, for segments retired by compaction, when the last reader drops its reference (a
``weakref.finalize``), so a reader never sees a closed or reused descriptor; on Linux the
open descriptor keeps an unlinked file readable.
"""

from __future__ import annotations

import struct
import sys
import threading
import weakref
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from operator import neg
from pathlib import Path
from typing import TypeVar

import zstandard as zstd

from ...errors import CorruptionError, FormatError
from ...types import EntryKind
from . import rowscan
from .block import BlockView, DecodedBlock, parse_block
from .bloom import BloomFilter, bloom_hash
from .cache import BlockCache
from .format import (
    BLOCK_HEADER,
    FLAG_DICTIONARY,
    FOOTER,
    FOOTER_MAGIC,
    META_HEADER,
    SEGMENT_FORMAT_VERSION,
    SEGMENT_FORMAT_VERSIONS,
    SEGMENT_HEADER,
    SEGMENT_MAGIC,
    TABLE_ENTRY,
    crc32,
    table_from_code,
)
from .rowscan import BlockRows, Candidate
from .source import FileSource, SegmentSource
from .writer import BLOCK_CONTINUES, ENTRY_OVERHEAD, table_seed

__all__ = ["BlockRows", "Candidate", "Segment", "TableRange"]

_BIG = sys.byteorder == "big"
_T = TypeVar("_T")


class TableRange:
    """Where one table lives inside a segment: blocks ``b0:b1``, key range, counts, bloom seed."""

    __slots__ = ("b0", "b1", "max_key", "min_key", "nentries", "nkeys", "seed", "table")

    def __init__(self, table: EntryKind, b0: int, b1: int, min_key: bytes, max_key: bytes,
                 nentries: int, nkeys: int) -> None:
        self.table = table
        self.b0 = b0
        self.b1 = b1
        self.min_key = min_key
        self.max_key = max_key
        self.nentries = nentries
        self.nkeys = nkeys
        self.seed = table_seed(table)


def _le_array(code: str, data: bytes) -> array:
    a = array(code)
    a.frombytes(data)
    if _BIG:  # pragma: no cover - the format is little-endian
        a.byteswap()
    return a


class _Scratch:
    """Attribute bag for :meth:`Segment.check` re-verification."""


class Segment:
    """An open, verified segment file.

    Attributes: ``path``, ``file_no``, ``seq``, ``file_size``, ``footer_crc``, ``nentries``,
    ``nkeys``, ``raw_bytes``, ``min_version``, ``max_version``, ``tables`` (EntryKind ->
    :class:`TableRange`), ``first_keys``, ``offsets``, ``block_entries``, ``block_flags``,
    ``bloom`` (or None), ``has_dict``.

    Raises (constructor): CorruptionError (names the file and the offset of the bad
    record), FormatError (unknown format version), StorageIOError (cannot open/read).
    """

    # Set by _open/_parse_meta (which can also fill a scratch object for check()).
    format_version: int
    file_size: int
    footer_crc: int
    seq: int
    nentries: int
    nkeys: int
    raw_bytes: int
    min_version: int
    max_version: int
    meta_offset: int
    offsets: array
    block_entries: array
    block_flags: bytes
    first_keys: list[bytes]
    bloom: BloomFilter | None
    has_dict: bool
    _dict: zstd.ZstdCompressionDict | None
    tables: dict[EntryKind, TableRange]

    def __init__(self, path: Path | str, file_no: int, cache: BlockCache, *,
                 expect_size: int | None = None, expect_footer_crc: int | None = None,
                 expect_seq: int | None = None, source: SegmentSource | None = None) -> None:
        self.path = path
        self.file_no = file_no
        self._cache = cache
        self._local = threading.local()
        src: SegmentSource = FileSource(Path(path)) if source is None else source
        self._src = src
        self._finalizer = weakref.finalize(self, src.close)
        try:
            self._refetching(lambda: self._open(expect_size, expect_footer_crc, expect_seq))
        except BaseException:  # close the descriptor, then re-raise whatever it was
            self._finalizer()
            raise

    def _refetching(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn``; if it finds damage in bytes a cache served, drop them and run it once
        more from the source of truth (a damaged cache is not a damaged segment)."""
        try:
            return fn()
        except CorruptionError:
            if not self._src.forget_cached():
                raise
            return fn()

    # -- opening -------------------------------------------------------------------------

    def _pread(self, n: int, off: int) -> bytes:
        data = self._src.pread(n, off)
        if len(data) != n:
            raise CorruptionError(f"cold segment truncated: wanted {n} bytes at {off}, got {len(data)}",
                                  path=self.path, offset=off)
        return data

    def _corrupt(self, msg: str, offset: int | None) -> CorruptionError:
        return CorruptionError(f"cold segment: {msg}", path=self.path, offset=offset)

    def _open(self, expect_size: int | None, expect_fcrc: int | None, expect_seq: int | None,
              t: object = None) -> None:
        """Read and verify header, footer and meta into ``t`` (default: this segment).

        ``check`` passes a scratch object to re-verify the file through the same descriptor
        without touching the attributes concurrent readers use.
        """
        t = self if t is None else t
        size = self._src.size()
        if expect_size is not None and size != expect_size:
            raise self._corrupt(f"file is {size} bytes but the manifest says {expect_size} "
                                "(truncated or replaced)", min(size, expect_size))
        if size < SEGMENT_HEADER.size + FOOTER.size:
            raise self._corrupt(f"file too short ({size} bytes)", 0)
        head = self._pread(SEGMENT_HEADER.size, 0)
        magic, version, _flags, hcrc = SEGMENT_HEADER.unpack(head)
        if crc32(head[:12]) != hcrc:
            raise self._corrupt("header checksum mismatch", 0)
        if magic != SEGMENT_MAGIC:
            raise FormatError("not a tierdb cold segment (bad magic)", path=self.path, offset=0)
        if version not in SEGMENT_FORMAT_VERSIONS:
            raise FormatError(f"cold segment format version {version} is not supported (this "
                              f"tierdb reads versions up to {SEGMENT_FORMAT_VERSION}); upgrade tierdb",
                              path=self.path, offset=0)
        foff = size - FOOTER.size
        raw_footer = self._pread(FOOTER.size, foff)
        (fmagic, fversion, flags, nblocks, nentries, nkeys, raw_bytes, vmin, vmax, seq,
         meta_off, meta_len, meta_crc, fcrc) = FOOTER.unpack(raw_footer)
        if crc32(raw_footer[:FOOTER.size - 4]) != fcrc:
            raise self._corrupt("footer checksum mismatch", foff)
        if fmagic != FOOTER_MAGIC:
            raise FormatError("not a tierdb cold segment (bad footer magic)", path=self.path, offset=foff)
        if fversion != version:
            raise FormatError(f"cold segment footer says format version {fversion}, its header "
                              f"{version} (this tierdb reads versions up to "
                              f"{SEGMENT_FORMAT_VERSION}); upgrade tierdb",
                              path=self.path, offset=foff)
        if expect_fcrc is not None and fcrc != expect_fcrc:
            raise self._corrupt("footer does not match the manifest (file replaced?)", foff)
        if expect_seq is not None and seq != expect_seq:
            raise self._corrupt(f"footer seq {seq} does not match the manifest's {expect_seq}", foff)
        if meta_off < SEGMENT_HEADER.size or meta_off + meta_len != foff or flags & ~FLAG_DICTIONARY:
            raise self._corrupt("footer describes an impossible layout", foff)
        meta = self._pread(meta_len, meta_off)
        if crc32(meta) != meta_crc:
            raise self._corrupt("meta section checksum mismatch", meta_off)
        t.format_version = version  # type: ignore[attr-defined]
        t.file_size = size  # type: ignore[attr-defined]
        t.footer_crc = fcrc  # type: ignore[attr-defined]
        t.seq = seq  # type: ignore[attr-defined]
        t.nentries = nentries  # type: ignore[attr-defined]
        t.nkeys = nkeys  # type: ignore[attr-defined]
        t.raw_bytes = raw_bytes  # type: ignore[attr-defined]
        t.min_version = vmin  # type: ignore[attr-defined]
        t.max_version = vmax  # type: ignore[attr-defined]
        t.meta_offset = meta_off  # type: ignore[attr-defined]
        try:
            self._parse_meta(t, meta, nblocks, bool(flags & FLAG_DICTIONARY))
        except ValueError as exc:  # _parse_meta turns struct.error into ValueError
            raise self._corrupt(f"meta section invalid: {exc}", meta_off) from None

    def _parse_meta(self, t: object, meta: bytes, nblocks: int, has_dict: bool) -> None:
        try:
            (ntables, mblocks, bloom_k, _r0, bloom_m, dict_len, _r1) = META_HEADER.unpack_from(meta, 0)
            if mblocks != nblocks or nblocks == 0:
                raise ValueError(f"block count {mblocks} vs footer {nblocks}")
            off = META_HEADER.size
            rows = []
            for _ in range(ntables):
                rows.append(TABLE_ENTRY.unpack_from(meta, off))
                off += TABLE_ENTRY.size
        except struct.error as exc:
            raise ValueError(str(exc)) from None
        max_keys = []
        for row in rows:
            kl = row[4]
            max_keys.append(meta[off:off + kl])
            off += kl
        n1 = nblocks + 1
        need = off + 8 * n1 + 4 * nblocks + 4 * nblocks + nblocks
        if need > len(meta):
            raise ValueError("block index runs past the meta section")
        offsets = _le_array("Q", meta[off:off + 8 * n1])
        off += 8 * n1
        block_entries = _le_array("I", meta[off:off + 4 * nblocks])
        off += 4 * nblocks
        fk_lens = _le_array("I", meta[off:off + 4 * nblocks])
        off += 4 * nblocks
        block_flags = meta[off:off + nblocks]
        off += nblocks
        fks = []
        for ln in fk_lens:
            if off + ln > len(meta):
                raise ValueError("first keys run past the meta section")
            fks.append(meta[off:off + ln])
            off += ln
        bloom_bytes = (bloom_m + 7) // 8
        if off + bloom_bytes + dict_len != len(meta):
            raise ValueError("meta section length does not match its contents")
        bloom: BloomFilter | None = None
        if bloom_m:
            bloom = BloomFilter(meta[off:off + bloom_bytes], bloom_m, bloom_k)
        off += bloom_bytes
        zdict: zstd.ZstdCompressionDict | None = None
        if has_dict:
            if not dict_len:
                raise ValueError("dictionary flag set but no dictionary stored")
            zdict = zstd.ZstdCompressionDict(meta[off:off + dict_len])
        elif dict_len:
            raise ValueError("dictionary stored but flag not set")
        meta_off = t.meta_offset  # type: ignore[attr-defined]
        if offsets[0] != SEGMENT_HEADER.size or offsets[nblocks] != meta_off or any(
                offsets[i] + BLOCK_HEADER.size >= offsets[i + 1] for i in range(nblocks)):
            raise ValueError("block offsets not strictly increasing from the header to meta")
        if sum(block_entries) != t.nentries:  # type: ignore[attr-defined]
            raise ValueError("block entry counts do not add up to the footer's")
        if any(f & ~BLOCK_CONTINUES for f in block_flags):
            raise ValueError("unknown block flag")
        tables: dict[EntryKind, TableRange] = {}
        expect_b = 0
        last: EntryKind | None = None
        for (tag, first_block, ident, tblocks, _kl, tentries, tkeys), mk in zip(rows, max_keys):
            table = table_from_code(tag, ident, self.path, meta_off)
            if first_block != expect_b or tblocks == 0 or (last is not None and not last < table):
                raise ValueError(f"table directory out of order at {table}")
            expect_b = first_block + tblocks
            if expect_b > nblocks or block_flags[first_block] & BLOCK_CONTINUES:
                raise ValueError(f"table {table} block range invalid")
            tables[table] = TableRange(table, first_block, expect_b, fks[first_block], mk,
                                       tentries, tkeys)
            last = table
        if expect_b != nblocks:
            raise ValueError("table directory does not cover every block")
        t.offsets = offsets  # type: ignore[attr-defined]
        t.block_entries = block_entries  # type: ignore[attr-defined]
        t.block_flags = block_flags  # type: ignore[attr-defined]
        t.first_keys = fks  # type: ignore[attr-defined]
        t.bloom = bloom  # type: ignore[attr-defined]
        t.has_dict = has_dict  # type: ignore[attr-defined]
        t._dict = zdict  # type: ignore[attr-defined]
        t.tables = tables  # type: ignore[attr-defined]

    # -- verification --------------------------------------------------------------------

    def check(self) -> dict[str, int]:
        """Re-read the whole file through the open descriptor and verify everything.

        Header, footer and meta checksums; every block's checksum and layout; keys strictly
        ascending per table (a key repeated across a block boundary only with the
        BLOCK_CONTINUES flag, and only then); versions strictly descending per key; the
        block index (first keys, entry counts); the bloom filter (holds every key); footer
        and table-directory counts, key and version ranges. Returns counters.
        O(file size); uses no cache.

        Raises:
            CorruptionError: the first violation, naming this file and the offset of the
                record (block, meta, footer) that is wrong.
        """
        scratch = _Scratch()
        self._refetching(lambda: self._open(self.file_size, self.footer_crc, self.seq, scratch))
        nentries = nkeys = raw_bytes = 0
        vmin: int | None = None
        vmax = 0
        flags = self.block_flags
        for table, tr in self.tables.items():
            prev_key: bytes | None = None
            prev_ver = 0
            t_entries = t_keys = 0
            for b in range(tr.b0, tr.b1):
                off = self.offsets[b]
                view = parse_block(self.read_raw(b), self.path, off)
                blk = view.decoded()
                keys = blk.keys
                if view.nexts and (self.format_version < 2 or (
                        flags[b] & BLOCK_CONTINUES and view.next_delta(0))):
                    raise self._corrupt(f"block {b} has a successor where none can be", off)
                n = len(blk)
                if n != self.block_entries[b] or keys[0] != self.first_keys[b]:
                    raise self._corrupt(f"block {b} disagrees with the block index", off)
                if any(keys[i] >= keys[i + 1] for i in range(len(keys) - 1)):
                    raise self._corrupt(f"block {b} keys not strictly ascending", off)
                ver = blk.ver
                kid = blk.kid
                if n > 1 and bool(((kid[1:] == kid[:-1]) & (ver[1:] >= ver[:-1])).any()):
                    raise self._corrupt(f"block {b} versions of a key not strictly descending", off)
                cont = bool(flags[b] & BLOCK_CONTINUES)
                if prev_key is not None:
                    if keys[0] < prev_key or (keys[0] == prev_key) != cont:
                        raise self._corrupt(f"block {b} order or continuation flag wrong", off)
                    if cont and blk.versions[0] >= prev_ver:
                        raise self._corrupt(f"block {b} continued run not descending", off)
                elif cont:
                    raise self._corrupt(f"block {b} continues nothing", off)
                if self.bloom is not None:
                    bloom = self.bloom
                    for k in keys:
                        if not bloom.may_contain_hash(bloom_hash(k, tr.seed)):
                            raise self._corrupt(f"bloom filter misses key {k!r} of block {b}",
                                                self.meta_offset)
                t_entries += n
                t_keys += len(keys) - (1 if cont else 0)
                vs = blk.versions
                raw_bytes += (sum(len(keys[j]) * (blk.kstart[j + 1] - blk.kstart[j])
                                  for j in range(len(keys)))
                              + (blk.voff[n] - blk.voff[0]) + ENTRY_OVERHEAD * n)
                vmin = blk.vmin if vmin is None else min(vmin, blk.vmin)
                vmax = max(vmax, blk.vmax)
                prev_key = keys[-1]
                prev_ver = vs[n - 1]
            if t_entries != tr.nentries or t_keys != tr.nkeys or prev_key != tr.max_key:
                raise self._corrupt(f"table directory of {table} disagrees with its blocks",
                                    self.meta_offset)
            nentries += t_entries
            nkeys += t_keys
        foff = self.file_size - FOOTER.size
        if (nentries, nkeys, raw_bytes, vmin, vmax) != (
                self.nentries, self.nkeys, self.raw_bytes, self.min_version, self.max_version):
            raise self._corrupt("footer counts or version range disagree with the blocks", foff)
        return {"blocks": len(self.block_entries), "entries": nentries, "keys": nkeys}

    # -- blocks --------------------------------------------------------------------------

    def _decompressor(self) -> zstd.ZstdDecompressor:
        d = getattr(self._local, "d", None)
        if d is None:
            d = self._local.d = zstd.ZstdDecompressor(dict_data=self._dict) if self._dict else \
                zstd.ZstdDecompressor()
        return d

    def read_raw(self, b: int) -> bytes:
        """Read, verify and decompress block ``b`` (no block cache; a remote segment's bytes
        may come from the on-disk range cache, refetched once if they fail their checksum).
        Raises CorruptionError."""
        return self._refetching(lambda: self._read_raw(b))

    def _read_raw(self, b: int) -> bytes:
        off = self.offsets[b]
        data = self._pread(self.offsets[b + 1] - off, off)
        mv = memoryview(data)
        plen, rlen, crc = BLOCK_HEADER.unpack_from(data, 0)
        if crc32(mv[BLOCK_HEADER.size:], crc32(mv[:8])) != crc:
            raise self._corrupt(f"block {b} checksum mismatch", off)
        if plen != len(data) - BLOCK_HEADER.size:
            raise self._corrupt(f"block {b} length disagrees with the block index", off)
        try:
            raw = self._decompressor().decompress(mv[BLOCK_HEADER.size:], max_output_size=rlen)
        except zstd.ZstdError as exc:
            raise self._corrupt(f"block {b} does not decompress: {exc}", off) from None
        if len(raw) != rlen:
            raise self._corrupt(f"block {b} decompressed to {len(raw)} bytes, expected {rlen}", off)
        return raw

    def view(self, b: int) -> BlockView:
        """Parsed block ``b``, through the shared cache. O(1) on a hit."""
        v = self._cache.get((self.file_no, b))
        return self._load(b) if v is None else v

    def _load(self, b: int) -> BlockView:
        """Read, verify, decompress and parse block ``b``; keep it in the cache."""
        v = parse_block(self.read_raw(b), self.path, self.offsets[b])
        self._cache.put((self.file_no, b), v)
        return v

    def block(self, b: int) -> DecodedBlock:
        """Block ``b`` decoded into rows: the cached view's rows, built (O(entries)) and
        attached to the view on the first visit."""
        v = self.view(b)
        rows = v.rows
        if rows is None:
            rows = self._cache.attach_rows((self.file_no, b), v, v.decoded())
        return rows

    def close(self) -> None:
        """Close the file descriptor now (idempotent). Only when no reader can still use it."""
        self._finalizer()

    # -- search --------------------------------------------------------------------------

    def may_contain(self, tr: TableRange, key: bytes) -> bool:
        """Key-range and bloom check: False means ``key`` is certainly not in this table."""
        if key < tr.min_key or key > tr.max_key:
            return False
        bloom = self.bloom
        return bloom is None or bloom.may_contain_hash(bloom_hash(key, tr.seed))

    def first_block(self, tr: TableRange, key: bytes) -> int:
        """The first block of ``tr`` that can hold ``key`` or anything after it."""
        fk = self.first_keys
        b = bisect_right(fk, key, tr.b0, tr.b1) - 1
        if b < tr.b0:
            return tr.b0
        flags = self.block_flags
        while b > tr.b0 and flags[b] & BLOCK_CONTINUES and fk[b] == key:
            b -= 1
        return b

    def _key_block(self, tr: TableRange, key: bytes) -> tuple[int, BlockView] | None:
        """The block where ``key``'s run starts and its view, or None when the key is
        before the table's first key or (block not cached) the bloom filter rules it out.
        The bloom filter is consulted only when the block is not cached (a cached block
        answers as fast and exactly)."""
        fk = self.first_keys
        b = bisect_right(fk, key, tr.b0, tr.b1) - 1
        if b < tr.b0:
            return None
        if self.block_flags[b] & BLOCK_CONTINUES and fk[b] == key:
            b = self.first_block(tr, key)
        v = self._cache.get((self.file_no, b))
        if v is None:
            bloom = self.bloom
            if bloom is not None and not bloom.may_contain_hash(bloom_hash(key, tr.seed)):
                return None
            v = self._load(b)
        return b, v

    def lookup(self, tr: TableRange, key: bytes, version: int,
               dv: dict[int, int] | None) -> tuple[int, BlockView, int] | None:
        """Newest version <= ``version`` of ``key`` here, skipping dropped ones.

        ``dv`` maps dropped versions of this key to their ``upto_seq``. Returns
        (version, block view, index) or None. O(log blocks + log keys-per-block + log run
        length). The bloom filter is consulted only when the block is not cached (a cached
        block answers as fast and exactly); a miss adds one block read, check and
        decompression.
        """
        found = self._key_block(tr, key)
        if found is None:
            return None
        b, v = found
        flags = self.block_flags
        b1 = tr.b1
        seq = self.seq
        while True:
            j = v.find(key)
            if j < 0:
                return None
            ks = v.kstart
            i = ks[j]
            e = ks[j + 1]
            col = v.ver_col
            base = v.ver_base
            # Versions descend in a run: bisect the deltas (the point-read hot path, inlined).
            if version < base:
                i = e
            elif col is not None and col[i] > version - base:
                i = bisect_left(col, base - version, i + 1, e, key=neg)
            while i < e:
                ver = base if col is None else base + col[i]
                if dv is None or dv.get(ver, -1) < seq:
                    return ver, v, i
                i += 1
            if j != v.nk - 1 or b + 1 >= b1 or not flags[b + 1] & BLOCK_CONTINUES:
                return None
            b += 1
            v = self.view(b)

    def lookup_bounded(self, tr: TableRange, key: bytes,
                       version: int) -> tuple[int, BlockView, int, bool] | None:
        """:meth:`lookup` without drops, plus whether this segment proves the answer final.

        Returns (version, block view, index, bounded) or None. ``bounded`` is True when a
        newer version of the key than the one found is known to lie above ``version``: a
        newer entry of the key in this segment (the run is newest first, so any is), or, for
        the key's newest entry here, its stored successor (FLAG_NEXTS) when it is above
        ``version``. Only valid for keys with no pending drops (the caller checks).
        Complexity as :meth:`lookup`.
        """
        found = self._key_block(tr, key)
        if found is None:
            return None
        b, v = found
        flags = self.block_flags
        b1 = tr.b1
        while True:
            j = v.find(key)
            if j < 0:
                return None
            ks = v.kstart
            i = first = ks[j]
            e = ks[j + 1]
            col = v.ver_col
            base = v.ver_base
            if version < base:
                i = e
            elif col is not None and col[i] > version - base:
                i = bisect_left(col, base - version, i + 1, e, key=neg)
            if i < e:
                ver = base if col is None else base + col[i]
                if i > first or (j == 0 and flags[b] & BLOCK_CONTINUES):
                    return ver, v, i, True  # a newer entry of the key is in this segment
                d = v.next_delta(j)
                return ver, v, i, d != 0 and ver + d > version
            if j != v.nk - 1 or b + 1 >= b1 or not flags[b + 1] & BLOCK_CONTINUES:
                return None
            b += 1
            v = self.view(b)

    def versions_of(self, tr: TableRange, key: bytes,
                    dv: dict[int, int] | None) -> list[tuple[int, bytes | None]]:
        """Every non-dropped version of ``key`` here, newest first."""
        # Walks a key's run like lookup(), which stays separate: it is the point-read hot path.
        out: list[tuple[int, bytes | None]] = []
        b = self.first_block(tr, key)
        seq = self.seq
        flags = self.block_flags
        while b < tr.b1:
            v = self.view(b)
            j = v.find(key)
            if j < 0:
                break
            for i in range(v.kstart[j], v.kstart[j + 1]):
                ver = v.version(i)
                if dv is None or dv.get(ver, -1) < seq:
                    out.append((ver, v.value(i)))
            if j != v.nk - 1 or b + 1 >= tr.b1 or not flags[b + 1] & BLOCK_CONTINUES:
                break
            b += 1
        return out

    def block_span(self, tr: TableRange, lo: bytes | None, hi: bytes | None,
                    hi_inc: bool) -> tuple[int, int]:
        """Blocks ``bs..be`` (inclusive) that can hold keys in [lo, hi]."""
        bs = tr.b0 if lo is None else self.first_block(tr, lo)
        if hi is None:
            be = tr.b1 - 1
        elif hi_inc:
            be = bisect_right(self.first_keys, hi, tr.b0, tr.b1) - 1
        else:
            be = bisect_left(self.first_keys, hi, tr.b0, tr.b1) - 1
        return bs, be

    def visible_blocks(self, tr: TableRange, lo: bytes | None, lo_inc: bool, hi: bytes | None,
                       hi_inc: bool, version: int, tdrops: dict[bytes, dict[int, int]] | None,
                       reverse: bool) -> Iterator[BlockRows]:
        """See :func:`engine.tiers.cold.rowscan.visible_blocks`."""
        return rowscan.visible_blocks(self, tr, lo, lo_inc, hi, hi_inc, version, tdrops, reverse)

    def visible(self, tr: TableRange, lo: bytes | None, lo_inc: bool, hi: bytes | None,
                hi_inc: bool, version: int, tdrops: dict[bytes, dict[int, int]] | None,
                reverse: bool) -> Iterator[Candidate]:
        """See :func:`engine.tiers.cold.rowscan.visible`."""
        return rowscan.visible(self, tr, lo, lo_inc, hi, hi_inc, version, tdrops, reverse)

    def entries(self, tr: TableRange, start: bytes | None,
                tdrops: dict[bytes, dict[int, int]] | None) -> Iterator[tuple[bytes, int, bytes | None]]:
        """See :func:`engine.tiers.cold.rowscan.entries`."""
        return rowscan.entries(self, tr, start, tdrops)

    def entries_nexts(self, tr: TableRange, tdrops: dict[bytes, dict[int, int]] | None
                      ) -> Iterator[tuple[bytes, int, bytes | None, int]]:
        """See :func:`engine.tiers.cold.rowscan.entries_nexts`."""
        return rowscan.entries_nexts(self, tr, tdrops)
