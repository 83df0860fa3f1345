"""Streaming writer of one immutable segment file.

Callers feed tables in ascending order, each as an iterable of ``(key, version, value)``
sorted by key ascending, version descending, with no duplicate (key, version). The writer
cuts entries into blocks of about ``block_size`` decompressed bytes (a key's versions may
continue into the next block; the block index flags that), compresses each block with zstd
and checksums it, collects first keys and bloom hashes, and finally writes the meta section
(table directory, block index, bloom filter, optional dictionary) and the footer. The file
is written as ``NNNNNNNNNNNN.seg.tmp``, fsynced and renamed to ``.seg`` by :meth:`finish`;
it becomes live only when a manifest names it (the caller's job).

Dictionary: with ``dictionary=True`` and an input expected to span at least
``DICT_MIN_BLOCKS`` blocks, the first ~``DICT_SAMPLE_BYTES`` of raw blocks are buffered, a
``DICT_SIZE`` zstd dictionary is trained on them, and a few blocks are compressed both ways.
The dictionary is kept only if the projected saving over the whole segment exceeds 1.25x its
own stored size ("when it pays").

Thread safety: a writer is used by one thread; distinct writers are independent.
"""

from __future__ import annotations

import os
import struct
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import zstandard as zstd

from ...errors import StorageIOError
from ...types import EntryKind
from .bloom import BloomFilter, hash_many
from .format import (
    BLOCK_HEADER,
    FLAG_DICTIONARY,
    FOOTER,
    FOOTER_MAGIC,
    META_HEADER,
    SEGMENT_FORMAT_VERSION,
    SEGMENT_HEADER,
    TABLE_ENTRY,
    crc32,
    encode_block,
    segment_header,
    table_code,
)

__all__ = [
    "BLOCK_CONTINUES",
    "DICT_MIN_BLOCKS",
    "DICT_SAMPLE_BYTES",
    "DICT_SIZE",
    "ENTRY_OVERHEAD",
    "BlockHook",
    "SegmentWriter",
    "WrittenSegment",
    "segment_name",
    "table_seed",
]

BLOCK_CONTINUES: Final = 1
"""Block-index flag: the block's first key continues the previous block's last key run."""

DICT_SIZE: Final = 16 * 1024
DICT_MIN_BLOCKS: Final = 8
DICT_SAMPLE_BYTES: Final = 1 << 20
_DICT_TRIAL_BLOCKS: Final = 8
_DICT_SAMPLE_PIECE: Final = 16 * 1024

ENTRY_OVERHEAD: Final = 8
"""Raw-size accounting: an entry costs len(key) + len(value) + 8 (its version)."""

_TABLE_PREFIX: Final = struct.Struct("<BQ")

BlockHook = Callable[[int, int, bytes], None]
"""``on_block(block_index, file_offset, raw)``: called with every block's decompressed bytes
as it is written (the tier uses it to fill its block cache on write)."""


def segment_name(file_no: int) -> str:
    """File name of segment ``file_no`` (numbers only: no user data ever reaches a path)."""
    return f"{file_no:012d}.seg"


def table_seed(table: EntryKind) -> int:
    """Bloom hash seed of ``table``: the CRC of its on-disk (tag, id) prefix."""
    return crc32(_TABLE_PREFIX.pack(*table_code(table)))


@dataclass(frozen=True, slots=True)
class WrittenSegment:
    """What :meth:`SegmentWriter.finish` produced (the manifest needs these)."""

    file_no: int
    seq: int
    path: Path
    file_size: int
    footer_crc: int
    nentries: int
    raw_bytes: int
    dictionary: bool


class _TableDir:
    __slots__ = ("first_block", "max_key", "nblocks", "nentries", "nkeys", "table")

    def __init__(self, table: EntryKind, first_block: int) -> None:
        self.table = table
        self.first_block = first_block
        self.nblocks = 0
        self.max_key = b""
        self.nentries = 0
        self.nkeys = 0


class SegmentWriter:
    """Writes one segment file (see module docstring).

    Complexity: O(entries) Python work plus zstd; memory O(blocks + dictionary sample).

    Raises (from every method): StorageIOError on OS failures; ValueError if the input is not
    sorted or has duplicates (a caller bug; nothing becomes live).
    """

    def __init__(self, directory: Path, file_no: int, seq: int, *, block_size: int,
                 zstd_level: int, bloom_bits_per_key: float, dictionary: bool,
                 size_hint: int = 0, on_block: BlockHook | None = None) -> None:
        self.directory = directory
        self._on_block = on_block
        self.file_no = file_no
        self.seq = seq
        self.block_size = block_size
        self.level = zstd_level
        self.bloom_bits = bloom_bits_per_key
        self.final_path = directory / segment_name(file_no)
        self.tmp_path = directory / (segment_name(file_no) + ".tmp")
        self._want_dict = dictionary and size_hint >= DICT_MIN_BLOCKS * block_size
        self._decided = not self._want_dict
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._dict: zstd.ZstdCompressionDict | None = None
        self._cctx = zstd.ZstdCompressor(level=zstd_level, write_checksum=False,
                                         write_content_size=True, write_dict_id=False)
        self._size_hint = size_hint
        self._tables: list[_TableDir] = []
        self._first_keys: list[bytes] = []
        self._block_entries: list[int] = []
        self._block_flags = bytearray()
        self._offsets = array("Q")
        self._hashes: list[np.ndarray] = []
        self._nentries = 0
        self._nkeys = 0
        self._raw_bytes = 0
        self._min_version: int | None = None
        self._max_version = 0
        self._closed = False
        try:
            self._f = open(self.tmp_path, "wb")  # noqa: SIM115 - closed in finish/abort
            self._f.write(segment_header())
        except OSError as exc:
            raise StorageIOError(f"cannot create cold segment {self.tmp_path}: {exc}") from exc
        self._pos = SEGMENT_HEADER.size

    # -- input ---------------------------------------------------------------------------

    def add(self, table: EntryKind, entries: Iterable[tuple[bytes, int, bytes | None]]) -> None:
        """Append ``table``'s entries (sorted key asc, version desc, no duplicates)."""
        self.add_with_nexts(table, ((k, v, val, 0) for k, v, val in entries))

    def add_with_nexts(self, table: EntryKind,
                       entries: Iterable[tuple[bytes, int, bytes | None, int]]) -> None:
        """Append ``table``'s ``(key, version, value, next)`` entries (sorted key asc, version
        desc, no duplicates). ``next`` counts on a key's first (newest) entry only: 0, or the
        version that superseded that entry (stored in the block's successor column)."""
        if self._tables and not self._tables[-1].table < table:
            raise ValueError(f"tables must be added in ascending order ({table} after "
                             f"{self._tables[-1].table})")
        seed = table_seed(table)
        td = _TableDir(table, len(self._block_entries))
        bs = self.block_size
        keys: list[bytes] = []
        runs: list[int] = []
        versions: list[int] = []
        values: list[bytes | None] = []
        nexts: list[int] = []
        est = 0
        cont = False
        last_key: bytes | None = None
        last_ver = 0
        nkeys = 0
        for key, ver, val, nxt in entries:
            if key == last_key:
                if ver >= last_ver:
                    raise ValueError(f"versions of {key!r} not strictly descending ({ver} after {last_ver})")
                if est >= bs:
                    self._emit(td, seed, keys, runs, versions, values, cont, nexts)
                    keys, runs, versions, values, est, cont = [key], [1], [], [], len(key), True
                    nexts = [0]  # a continued run: its successor is in the block before
                else:
                    runs[-1] += 1
            else:
                if last_key is not None and key < last_key:
                    raise ValueError(f"keys not ascending ({key!r} after {last_key!r})")
                if est >= bs:
                    self._emit(td, seed, keys, runs, versions, values, cont, nexts)
                    keys, runs, versions, values, est, cont = [], [], [], [], 0, False
                    nexts = []
                keys.append(key)
                runs.append(1)
                if nxt:
                    if nxt <= ver:
                        raise ValueError(f"successor {nxt} of {key!r} is not above its version {ver}")
                    nexts.append(nxt - ver)
                else:
                    nexts.append(0)
                est += len(key) + 4
                nkeys += 1
                last_key = key
            last_ver = ver
            versions.append(ver)
            values.append(val)
            est += (len(val) if val is not None else 0) + 6
        if versions:
            self._emit(td, seed, keys, runs, versions, values, cont, nexts)
        if td.nblocks:
            td.max_key = last_key  # type: ignore[assignment]
            td.nkeys = nkeys
            self._nkeys += nkeys
            self._tables.append(td)

    def _emit(self, td: _TableDir, seed: int, keys: list[bytes], runs: list[int],
              versions: list[int], values: list[bytes | None], cont: bool,
              nexts: list[int] | None = None) -> None:
        n = len(versions)
        raw = encode_block(keys, runs, versions, values, nexts)
        td.nblocks += 1
        td.nentries += n
        self._nentries += n
        self._raw_bytes += (sum(len(k) * r for k, r in zip(keys, runs))
                            + sum(len(v) for v in values if v is not None) + ENTRY_OVERHEAD * n)
        lo, hi = min(versions), max(versions)
        if self._min_version is None or lo < self._min_version:
            self._min_version = lo
        self._max_version = max(self._max_version, hi)
        self._first_keys.append(keys[0])
        self._block_entries.append(n)
        self._block_flags.append(BLOCK_CONTINUES if cont else 0)
        if self.bloom_bits > 0:
            self._hashes.append(hash_many(keys, seed))
        if self._decided:
            self._write_block(raw)
        else:
            self._pending.append(raw)
            self._pending_bytes += len(raw)
            if self._pending_bytes >= DICT_SAMPLE_BYTES:
                self._decide()

    # -- compression ---------------------------------------------------------------------

    def _decide(self) -> None:
        """Train a dictionary on the buffered blocks; keep it if it pays; flush the buffer."""
        self._decided = True
        blocks = self._pending
        self._pending = []
        expected = max(len(blocks), self._size_hint // max(1, self.block_size))
        if len(blocks) >= 2 and expected >= DICT_MIN_BLOCKS:
            samples: list[bytes | bytearray | memoryview] = [
                b[i:i + _DICT_SAMPLE_PIECE] for b in blocks for i in range(0, len(b), _DICT_SAMPLE_PIECE)]
            try:
                d = zstd.train_dictionary(DICT_SIZE, samples, level=self.level)
            except zstd.ZstdError:
                d = None  # too little or too uniform input to train on: go without
            if d is not None:
                dbytes = d.as_bytes()
                with_dict = zstd.ZstdCompressor(level=self.level, dict_data=d, write_checksum=False,
                                                write_content_size=True, write_dict_id=False)
                step = max(1, len(blocks) // _DICT_TRIAL_BLOCKS)
                trial = blocks[::step][:_DICT_TRIAL_BLOCKS]
                plain = sum(len(self._cctx.compress(b)) for b in trial)
                dicted = sum(len(with_dict.compress(b)) for b in trial)
                gain = (plain - dicted) / len(trial) * expected
                if gain > 1.25 * len(dbytes):
                    self._dict = d
                    self._cctx = with_dict
        for raw in blocks:
            self._write_block(raw)

    def _write_block(self, raw: bytes) -> None:
        if self._on_block is not None:
            self._on_block(len(self._offsets), self._pos, raw)
        payload = self._cctx.compress(raw)
        head = BLOCK_HEADER.pack(len(payload), len(raw), 0)[:8]
        crc = crc32(payload, crc32(head))
        self._offsets.append(self._pos)
        try:
            self._f.write(BLOCK_HEADER.pack(len(payload), len(raw), crc))
            self._f.write(payload)
        except OSError as exc:
            self.abort()
            raise StorageIOError(f"cannot write cold segment {self.tmp_path}: {exc}") from exc
        self._pos += BLOCK_HEADER.size + len(payload)

    # -- completion ----------------------------------------------------------------------

    def _meta(self) -> bytes:
        nblocks = len(self._block_entries)
        dict_bytes = self._dict.as_bytes() if self._dict is not None else b""
        if self.bloom_bits > 0 and self._hashes:
            bloom: BloomFilter | None = BloomFilter.build(np.concatenate(self._hashes), self.bloom_bits)
        else:
            bloom = None
        parts = [META_HEADER.pack(len(self._tables), nblocks, bloom.k if bloom else 0, 0,
                                  bloom.m if bloom else 0, len(dict_bytes), 0)]
        for td in self._tables:
            tag, ident = table_code(td.table)
            parts.append(TABLE_ENTRY.pack(tag, td.first_block, ident, td.nblocks, len(td.max_key),
                                          td.nentries, td.nkeys))
        parts.extend(td.max_key for td in self._tables)
        offsets = array("Q", self._offsets)
        offsets.append(self._pos)
        parts.append(offsets.tobytes())
        parts.append(array("I", self._block_entries).tobytes())
        parts.append(array("I", map(len, self._first_keys)).tobytes())
        parts.append(bytes(self._block_flags))
        parts.append(b"".join(self._first_keys))
        if bloom is not None:
            parts.append(bloom.bits)
        parts.append(dict_bytes)
        return b"".join(parts)

    def finish(self) -> WrittenSegment | None:
        """Write meta and footer, fsync, rename to the final name. None if no entries.

        The caller must fsync the directory (done by the manifest write that follows).
        """
        if self._closed:
            raise ValueError("segment writer already finished")
        if not self._decided:
            self._decide()
        if self._nentries == 0:
            self.abort()
            return None
        meta = self._meta()
        meta_off = self._pos
        flags = FLAG_DICTIONARY if self._dict is not None else 0
        head = FOOTER.pack(FOOTER_MAGIC, SEGMENT_FORMAT_VERSION, flags, len(self._block_entries),
                           self._nentries, self._nkeys, self._raw_bytes, self._min_version or 0,
                           self._max_version, self.seq, meta_off, len(meta), crc32(meta), 0)
        fcrc = crc32(head[:FOOTER.size - 4])
        footer = head[:FOOTER.size - 4] + struct.pack("<I", fcrc)
        try:
            self._f.write(meta)
            self._f.write(footer)
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            self._closed = True
            os.replace(self.tmp_path, self.final_path)
        except OSError as exc:
            self.abort()
            raise StorageIOError(f"cannot finish cold segment {self.final_path}: {exc}; "
                                 "check free space") from exc
        return WrittenSegment(self.file_no, self.seq, self.final_path,
                              meta_off + len(meta) + FOOTER.size, fcrc, self._nentries,
                              self._raw_bytes, self._dict is not None)

    def abort(self) -> None:
        """Close and remove the temp file (idempotent)."""
        if not self._closed:
            self._closed = True
            try:
                self._f.close()
            except OSError:
                pass  # the file is being thrown away
        try:
            os.unlink(self.tmp_path)
        except OSError:
            pass  # already gone, or removed as a stray temp file on the next open
