"""Byte layouts of every cold-tier file, as named ``struct`` constants, and the block codec.

Everything the cold tier persists is described here and in docs/FORMATS.md ("Cold tier
(segments)"). All integers are little-endian. Every persisted record carries a CRC-32
(``zlib.crc32``): it is in the standard library, runs at several GB/s, and detects every
error burst of up to 32 bits, so every single flipped byte is caught (the property the
corruption tests check exhaustively); random damage slips through with probability 2**-32.
A cryptographic hash would defend against forgery, which is not the threat model here.

A segment file::

    SEGMENT_HEADER | block 0 | block 1 | ... | meta | FOOTER

A block on disk is ``BLOCK_HEADER`` + a zstd frame. Decompressed, it is one table's
entries in (key ascending, version descending) order, stored column by column
(``RAW_BLOCK_HEADER``, run lengths, key lengths, versions, value lengths, tombstone bitmap,
successor column (format 2), key bytes, value bytes); integer columns use frame-of-reference
encoding (a base in the header, deltas of 0/1/2/4/8 bytes) because zstd alone compresses
8-byte ints poorly.

The successor column (``FLAG_NEXTS``, segment format 2) says, for each key whose run starts
in the block, how far above the key's newest version in this segment the version that
superseded it lies (0: not known). Demotion knows it (the superseding version stays in the
tier above); a point read at a version below it is then answered by this segment alone.

Thread safety: pure functions over immutable inputs; safe from any thread.
"""

from __future__ import annotations

import struct
import zlib
from typing import Final

import numpy as np

from ...errors import CorruptionError
from ...types import EntryKind

__all__ = [
    "BLOCK_HEADER",
    "COLD_REF",
    "COLD_REF_MAGIC",
    "CRC",
    "DROPS_HEADER",
    "DROPS_MAGIC",
    "DROP_GROUP",
    "DROP_ITEM",
    "FLAG_DICTIONARY",
    "FLAG_NEXTS",
    "FLAG_TOMBSTONES",
    "FOOTER",
    "FOOTER_MAGIC",
    "FORMAT_VERSION",
    "MANIFEST_DROP_COUNT",
    "MANIFEST_DROP_FILE",
    "MANIFEST_DROP_LIST",
    "MANIFEST_HEADER",
    "MANIFEST_MAGIC",
    "MANIFEST_SEGMENT",
    "MANIFEST_TABLE",
    "MAX_ENTRIES",
    "META_HEADER",
    "NEXTS_HEADER",
    "RAW_BLOCK_HEADER",
    "SEGMENT_FORMAT_VERSION",
    "SEGMENT_FORMAT_VERSIONS",
    "SEGMENT_HEADER",
    "SEGMENT_MAGIC",
    "TABLE_ENTRY",
    "BlockColumns",
    "crc32",
    "decode_columns",
    "encode_block",
    "nexts_end",
    "segment_header",
    "table_code",
    "table_from_code",
]

FORMAT_VERSION: Final = 1
"""The format version of manifests and drop files (the only one read and written)."""

SEGMENT_FORMAT_VERSION: Final = 2
"""The segment format version written: 2 added the successor column (``FLAG_NEXTS``)."""

SEGMENT_FORMAT_VERSIONS: Final = frozenset((1, 2))
"""Segment format versions this code reads (1: no successor column). Anything else:
FormatError."""

SEGMENT_MAGIC: Final = b"TDBCSEG\x00"
FOOTER_MAGIC: Final = b"TDBCFTR\x00"
MANIFEST_MAGIC: Final = b"TDBCMAN\x00"
DROPS_MAGIC: Final = b"TDBCDRP\x00"

# --- segment file -------------------------------------------------------------------------

SEGMENT_HEADER: Final = struct.Struct("<8sHHI")
"""magic, format_version (SEGMENT_FORMAT_VERSION), flags (0), crc32 of the preceding 12 bytes."""
assert SEGMENT_HEADER.size == 16

BLOCK_HEADER: Final = struct.Struct("<III")
"""payload_len, raw_len, crc32(first 8 header bytes + payload). The zstd frame follows."""
assert BLOCK_HEADER.size == 12

RAW_BLOCK_HEADER: Final = struct.Struct("<IIQIIIBBBBB3x")
"""Decompressed block: nkeys, nentries, version_base, run_base, klen_base, vlen_base,
run_width, klen_width, version_width, vlen_width, flags (FLAG_TOMBSTONES), 3 pad bytes."""
assert RAW_BLOCK_HEADER.size == 36

FLAG_TOMBSTONES: Final = 1
"""RAW_BLOCK_HEADER flag: a tombstone bitmap of ceil(nentries / 8) bytes follows the columns."""

FLAG_NEXTS: Final = 2
"""RAW_BLOCK_HEADER flag (segment format 2 only): the successor column follows the tombstone
bitmap: NEXTS_HEADER, then nkeys frame-of-reference deltas. Entry j is 0 or ``s - v`` where v
is the version of key j's first entry in the block and s > v the version that superseded it
(only where key j's run starts in this block, i.e. not a continued run)."""

NEXTS_HEADER: Final = struct.Struct("<QB7x")
"""Successor column header: base, width (0/1/2/4/8), 7 pad bytes; nkeys * width bytes follow."""
assert NEXTS_HEADER.size == 16
META_HEADER: Final = struct.Struct("<IIIIQII")
"""ntables, nblocks, bloom_k, reserved (0), bloom_bits, dict_len, reserved (0)."""
assert META_HEADER.size == 32

TABLE_ENTRY: Final = struct.Struct("<B3xIQIIQQ")
"""Table directory row: tag, (pad), first_block, table_id, nblocks, max_key_len,
nentries, nkeys. The table's max key bytes follow in the max-key blob."""
assert TABLE_ENTRY.size == 40

FOOTER: Final = struct.Struct("<8sHHIQQQQQQQQII")
"""magic, format_version (SEGMENT_FORMAT_VERSION), flags (FLAG_DICTIONARY), nblocks, nentries, nkeys, raw_bytes,
min_version, max_version, seq, meta_offset, meta_len, meta_crc, footer_crc (crc32 of
the preceding 84 bytes)."""
assert FOOTER.size == 88

FLAG_DICTIONARY: Final = 1
"""FOOTER flag: blocks are compressed with the zstd dictionary stored at the end of meta."""

# --- manifest -------------------------------------------------------------------------------

MANIFEST_HEADER: Final = struct.Struct("<8sHHIQQQQII")
"""magic, format_version, flags (0 or MANIFEST_DROP_LIST), nsegments, generation,
next_file_no, next_seq, drop_floor, ntables, reserved (0)."""
assert MANIFEST_HEADER.size == 56

MANIFEST_DROP_LIST: Final = 1
"""MANIFEST flag: after the tables come MANIFEST_DROP_COUNT and one MANIFEST_DROP_FILE per
live drop file (object-store cold tiers: a drop file is live only when the manifest names
it, so a writer that loses the manifest race leaves nothing live behind)."""

MANIFEST_DROP_COUNT: Final = struct.Struct("<I4x")
"""Number of drop files listed, (pad)."""
assert MANIFEST_DROP_COUNT.size == 8

MANIFEST_DROP_FILE: Final = struct.Struct("<Q")
"""A live drop file's number."""
assert MANIFEST_DROP_FILE.size == 8

MANIFEST_SEGMENT: Final = struct.Struct("<QQQII")
"""file_no, seq, file_size, footer_crc (binds the manifest to the exact file), reserved."""
assert MANIFEST_SEGMENT.size == 32

MANIFEST_TABLE: Final = struct.Struct("<B7xQ")
"""A known table: tag, (pad), id."""
assert MANIFEST_TABLE.size == 16

COLD_REF: Final = struct.Struct("<8sQI")
"""``<store>/COLD-REF`` of an object-store cold tier: magic, the generation of the cold
manifest this store last wrote, crc32 of the first 16 bytes. On open, an object store
holding no manifest or an older one than this is refused (wrong bucket, rolled back)."""
assert COLD_REF.size == 20
COLD_REF_MAGIC: Final = b"TDBCREF\x00"

CRC: Final = struct.Struct("<I")
"""A trailing crc32 of everything before it (manifest, drop files)."""
assert CRC.size == 4

# --- drop files -----------------------------------------------------------------------------

DROPS_HEADER: Final = struct.Struct("<8sHHIQQ")
"""magic, format_version, flags (0), ngroups, file_no, reserved (0). Groups follow, then CRC."""
assert DROPS_HEADER.size == 32

DROP_GROUP: Final = struct.Struct("<B3xIQQ")
"""tag, (pad), nitems, table_id, upto_seq. nitems == 0xFFFFFFFF marks a clear of the
whole table; otherwise nitems DROP_ITEMs (each followed by its key bytes) follow."""
assert DROP_GROUP.size == 24

DROP_ITEM: Final = struct.Struct("<QI")
"""version, key_len; key bytes follow."""
assert DROP_ITEM.size == 12

CLEAR_MARK: Final = 0xFFFFFFFF

_WIDTH_DTYPES: Final = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}
MAX_ENTRIES: Final = 1 << 31


def segment_header() -> bytes:
    """The 16-byte SEGMENT_HEADER every segment file starts with."""
    head = SEGMENT_HEADER.pack(SEGMENT_MAGIC, SEGMENT_FORMAT_VERSION, 0, 0)[:12]
    return head + CRC.pack(crc32(head))


def crc32(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    """CRC-32 (zlib polynomial) of ``data`` continuing from ``start``. O(len)."""
    return zlib.crc32(data, start) & 0xFFFFFFFF


_TAGS: Final = {"multi": 0, "source": 1, "operator": 2}


def table_code(table: EntryKind) -> tuple[int, int]:
    """The (tag, id) pair that identifies ``table`` on disk."""
    return _TAGS[table.tag], table.id


def table_from_code(tag: int, ident: int, path: object = None, offset: int | None = None) -> EntryKind:
    """Invert :func:`table_code`. Raises CorruptionError for an unknown tag."""
    try:
        return EntryKind(tag, ident)
    except ValueError as exc:
        raise CorruptionError(f"bad table code ({tag}, {ident}): {exc}", path=path, offset=offset) from None


# --- block codec ----------------------------------------------------------------------------


def _for_encode(values: np.ndarray) -> tuple[int, int, bytes]:
    """Frame-of-reference: (base, width, delta bytes). width 0 means every value == base."""
    if len(values) == 0:
        return 0, 0, b""
    base = int(values.min())
    deltas = values - np.uint64(base) if values.dtype == np.uint64 else values - base
    top = int(deltas.max())
    if top == 0:
        return base, 0, b""
    width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    return base, width, deltas.astype(_WIDTH_DTYPES[width]).tobytes()


def encode_block(
    keys: list[bytes],
    runs: list[int],
    versions: list[int],
    values: list[bytes | None],
    nexts: list[int] | None = None,
) -> bytes:
    """Encode one block (one table, entries sorted by key asc / version desc) to raw bytes.

    ``keys`` are the distinct keys, ``runs[i]`` the number of versions of ``keys[i]``;
    ``versions`` and ``values`` have one element per entry; ``nexts`` (optional, one per
    key) the successor deltas of FLAG_NEXTS (written only when one is non-zero).
    Complexity O(entries), vectorized.
    """
    n = len(versions)
    nk = len(keys)
    assert n == len(values) and nk == len(runs) and sum(runs) == n and 0 < n < MAX_ENTRIES
    run_base, run_w, run_b = _for_encode(np.fromiter(runs, np.int64, nk))
    klens = np.fromiter(map(len, keys), np.int64, nk)
    klen_base, klen_w, klen_b = _for_encode(klens)
    ver_base, ver_w, ver_b = _for_encode(np.array(versions, dtype=np.uint64))
    tomb = [v is None for v in values]
    flags = 0
    tomb_b = b""
    if any(tomb):
        flags |= FLAG_TOMBSTONES
        tomb_b = np.packbits(np.array(tomb, dtype=bool), bitorder="little").tobytes()
        vals = [b"" if v is None else v for v in values]
    else:
        vals = values  # type: ignore[assignment]
    vlens = np.fromiter(map(len, vals), np.int64, n)  # type: ignore[arg-type]
    vlen_base, vlen_w, vlen_b = _for_encode(vlens)
    nexts_b = b""
    if nexts is not None and any(nexts):
        assert len(nexts) == nk
        flags |= FLAG_NEXTS
        nx_base, nx_w, nx_d = _for_encode(np.array(nexts, dtype=np.uint64))
        nexts_b = NEXTS_HEADER.pack(nx_base, nx_w) + nx_d
    head = RAW_BLOCK_HEADER.pack(nk, n, ver_base, run_base, klen_base, vlen_base,
                                 run_w, klen_w, ver_w, vlen_w, flags)
    return b"".join((head, run_b, klen_b, ver_b, vlen_b, tomb_b, nexts_b, b"".join(keys),  # type: ignore[arg-type]
                     b"".join(vals)))  # type: ignore[arg-type]


class BlockColumns:
    """A decompressed block decoded into numpy columns only (no per-entry Python objects).

    ``kstart`` (nkeys + 1, int64) run starts; ``koff`` (nkeys + 1, int64) key boundaries in
    ``raw``; ``ver`` (uint64) versions; ``voff`` (nentries + 1, int64) value boundaries in
    ``raw``; ``tomb`` (bool) or None when the block holds no tombstone; ``kid`` (int64, built
    on first use) the key index of every entry. Used by columnar scans and ``check``.
    """

    __slots__ = ("_kid", "koff", "kstart", "n", "nk", "raw", "tomb", "ver", "voff")

    def __init__(self, nk: int, n: int, kstart: np.ndarray, koff: np.ndarray,
                 ver: np.ndarray, voff: np.ndarray, tomb: np.ndarray | None, raw: bytes) -> None:
        self.nk = nk
        self.n = n
        self.kstart = kstart
        self._kid: np.ndarray | None = None
        self.koff = koff
        self.ver = ver
        self.voff = voff
        self.tomb = tomb
        self.raw = raw

    @property
    def kid(self) -> np.ndarray:
        kid = self._kid
        if kid is None:
            nk = self.nk
            ar = np.arange(nk, dtype=np.int64)
            kid = self._kid = ar if nk == self.n else np.repeat(ar, np.diff(self.kstart))
        return kid


def _offsets(raw: bytes, off: int, count: int, width: int, base: int, start: int,
             what: str, path: object, block_offset: int) -> tuple[np.ndarray, int]:
    """Boundaries (count + 1, int64) ``start, start + l0, ...`` of a length column."""
    if width == 0:
        return np.arange(start, start + (count + 1) * base, base, dtype=np.int64) if base else \
            np.full(count + 1, start, dtype=np.int64), off
    dt = _WIDTH_DTYPES.get(width)
    end = off + count * width
    if dt is None or end > len(raw):
        raise CorruptionError(f"cold block: bad {what} column (width {width})",
                              path=path, offset=block_offset)
    lens = np.frombuffer(raw, dtype=dt, count=count, offset=off)
    if base:
        lens = np.add(lens, base, dtype=np.int64)
    out = np.empty(count + 1, dtype=np.int64)
    out[0] = start
    np.cumsum(lens, out=out[1:])
    if start:
        out[1:] += start
    return out, end


def nexts_end(raw: bytes, off: int, nk: int, path: object, block_offset: int) -> int:
    """Where the successor column (FLAG_NEXTS) starting at ``off`` ends. Raises
    CorruptionError when its header is bad or it runs past the block."""
    if off + NEXTS_HEADER.size > len(raw):
        raise CorruptionError("cold block: successor column runs past the block end",
                              path=path, offset=block_offset)
    _base, width = NEXTS_HEADER.unpack_from(raw, off)
    end = off + NEXTS_HEADER.size + nk * width
    if width not in (0, 1, 2, 4, 8) or end > len(raw):
        raise CorruptionError(f"cold block: bad successor column (width {width})",
                              path=path, offset=block_offset)
    return end


def decode_columns(raw: bytes, path: object, block_offset: int) -> BlockColumns:
    """Decode a decompressed block into numpy columns, validating its structure.

    Complexity O(entries), about a dozen numpy calls per block.

    Raises:
        CorruptionError: the layout is inconsistent (lengths, counts, widths). Payload
            damage is caught earlier by the block checksum; this guards against bugs.
    """
    hs = RAW_BLOCK_HEADER.size
    if len(raw) < hs:
        raise CorruptionError("cold block shorter than its header", path=path, offset=block_offset)
    (nk, n, ver_base, run_base, klen_base, vlen_base,
     run_w, klen_w, ver_w, vlen_w, flags) = RAW_BLOCK_HEADER.unpack_from(raw, 0)
    # Runs are frame-of-reference coded, so every run >= run_base >= 1 keeps kstart strictly
    # increasing without checking the array.
    if not (0 < nk <= n < MAX_ENTRIES) or flags & ~(FLAG_TOMBSTONES | FLAG_NEXTS) or run_base < 1:
        raise CorruptionError(f"cold block header invalid (nkeys={nk}, nentries={n}, flags={flags})",
                              path=path, offset=block_offset)
    kstart, off = _offsets(raw, hs, nk, run_w, run_base, 0, "run", path, block_offset)
    klen_off = off
    off += nk * klen_w
    if ver_w == 0:
        ver = np.full(n, ver_base, dtype=np.uint64)
    else:
        dt = _WIDTH_DTYPES.get(ver_w)
        if dt is None or off + n * ver_w > len(raw):
            raise CorruptionError(f"cold block: bad version column (width {ver_w})",
                                  path=path, offset=block_offset)
        ver = np.add(np.frombuffer(raw, dtype=dt, count=n, offset=off), np.uint64(ver_base),
                     dtype=np.uint64)
        off += n * ver_w
    vlen_off = off
    off += n * vlen_w
    tomb: np.ndarray | None = None
    if flags & FLAG_TOMBSTONES:
        tb = (n + 7) >> 3
        if off + tb > len(raw):
            raise CorruptionError("cold block: tombstone bitmap runs past the block end",
                                  path=path, offset=block_offset)
        tomb = np.unpackbits(np.frombuffer(raw, dtype=np.uint8, count=tb, offset=off),
                             count=n, bitorder="little").view(bool)
        off += tb
    if flags & FLAG_NEXTS:  # scans do not need the successor column: skip it
        off = nexts_end(raw, off, nk, path, block_offset)
    koff, _ = _offsets(raw, klen_off, nk, klen_w, klen_base, off, "key length", path, block_offset)
    kend = int(koff[nk])
    voff, _ = _offsets(raw, vlen_off, n, vlen_w, vlen_base, kend, "value length", path, block_offset)
    if int(kstart[nk]) != n or int(voff[n]) != len(raw):
        raise CorruptionError(
            f"cold block: columns describe {int(voff[n])} bytes and {int(kstart[nk])} entries, "
            f"block has {len(raw)} bytes and {n} entries", path=path, offset=block_offset)
    if tomb is not None and bool((voff[1:][tomb] != voff[:-1][tomb]).any()):
        raise CorruptionError("cold block: a tombstone has value bytes", path=path, offset=block_offset)
    return BlockColumns(nk, n, kstart, koff, ver, voff, tomb, raw)
