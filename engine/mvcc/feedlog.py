"""The change feed's files: segment and STATE formats, record scanning, gap rebuilding.

Formats in docs/FORMATS.md ("Change feed"); the feed itself is :mod:`engine.mvcc.changefeed`.
Records are framed exactly like the commit log's (length, CRC-32, the commit log's payload),
and every read verifies every checksum.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import CorruptionError, FormatError, StorageIOError
from ..records import RECORD_HEADER, decode_json_record, encode_json_record
from ..types import Bound, EntryKind
from .commitlog import REC_HEADER
from .pins import atomic_write

__all__ = ["FEED_DIR", "FEED_HEADER", "FILE_HEADER", "STATE_HEADER", "VERSION", "Writes", "check_header",
           "fsync_dir", "read_state", "records", "scan_commits", "scan_tail_segment", "segment_name",
           "truncate_file", "write_state"]

FEED_DIR = "changes"
FEED_MAGIC = b"TIERDBCF"
FEED_FORMAT_VERSION = 1
# magic, format version, crc32 of the first 12 bytes
FEED_HEADER = struct.Struct("<8sII")
assert FEED_HEADER.size == 16
FILE_HEADER = FEED_HEADER.pack(FEED_MAGIC, FEED_FORMAT_VERSION,
                                zlib.crc32(FEED_MAGIC + struct.pack("<I", FEED_FORMAT_VERSION)))
# Records: REC_HEADER (payload length, crc32 of payload) + an encode_batches payload, whose
# first 8 bytes are the little-endian u64 version (read without decoding the rest).
VERSION = struct.Struct("<Q")
STATE_NAME = "STATE"
STATE_MAGIC = b"TIERDBFS"
STATE_FORMAT_VERSION = 1
# an engine.records record (magic, format version, length, crc32) of canonical JSON
STATE_HEADER = RECORD_HEADER

Writes = dict[EntryKind, list[tuple[bytes, "bytes | None"]]]


def segment_name(first: int) -> str:
    return f"feed-{first:020d}.log"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_state(p: Path) -> dict[str, Any]:
    meta: dict[str, Any] = decode_json_record(p.read_bytes(), STATE_MAGIC, STATE_FORMAT_VERSION,
                                              what="change feed STATE file", path=p)
    return meta

def scan_tail_segment(p: Path) -> tuple[int, int, int]:
    """(newest version, end of the last whole record, file size) of the newest segment.

    A record cut short or failing its checksum as the very last thing in the file is a
    torn tail (returned as ``good < size``); one with a whole record after it is
    corruption.
    """
    data = p.read_bytes()
    size = len(data)
    if size < FEED_HEADER.size:
        return 0, 0, size  # header never completed: the whole file is a torn tail
    check_header(data, p)
    pos, last = FEED_HEADER.size, 0
    for version, _payload, end in records(data, p, FEED_HEADER.size, size, tolerate_tail=True):
        last, pos = version, end
    return last, pos, size

def check_header(data: bytes, p: Path) -> None:
    """Verify a segment's header (the first bytes of ``data``). Raises CorruptionError."""
    if len(data) < FEED_HEADER.size:
        raise CorruptionError("change feed segment shorter than its header", path=p, offset=0)
    magic, fmt, crc = FEED_HEADER.unpack_from(data, 0)
    if magic != FEED_MAGIC or zlib.crc32(data[:12]) != crc:
        raise CorruptionError("bad change feed segment header (not a tierdb feed?)", path=p, offset=0)
    if fmt > FEED_FORMAT_VERSION:
        raise FormatError(f"change feed format {fmt} is newer than this tierdb; upgrade tierdb",
                          path=p, offset=0)


def records(data: bytes, p: Path, pos: int, end_at: int, tolerate_tail: bool = False,
            base: int = 0) -> Iterator[tuple[int, bytes, int]]:
    """Yield ``(version, payload, end offset)`` of each record in ``data[pos:end_at]``,
    every checksum verified. ``base``: the file offset of ``data[0]`` (for error messages).
    Raises CorruptionError naming the file and offset."""
    hsize = REC_HEADER.size
    unpack = REC_HEADER.unpack_from
    crc32 = zlib.crc32
    while pos < end_at:
        if pos + hsize > end_at:
            if tolerate_tail:
                return
            raise CorruptionError("change feed record header cut short", path=p, offset=base + pos)
        length, crc = unpack(data, pos)
        end = pos + hsize + length
        payload = data[pos + hsize:end]
        if end > end_at or crc32(payload) != crc or length < VERSION.size:
            if tolerate_tail and (end >= end_at or not data[pos:end_at].strip(b"\0")):
                return
            raise CorruptionError("change feed record fails its checksum", path=p, offset=base + pos)
        yield VERSION.unpack_from(payload, 0)[0], payload, end
        pos = end


def truncate_file(p: Path, offset: int) -> None:
    if offset < FEED_HEADER.size:
        p.unlink()
        return
    with open(p, "r+b") as fh:
        fh.truncate(offset)
        fh.flush()
        os.fsync(fh.fileno())


def write_state(directory: Path, floor: int, consumers: dict[str, int]) -> None:
    """Replace ``STATE`` atomically (temp file, fsync, rename, fsync). Raises StorageIOError."""
    try:
        atomic_write(directory / STATE_NAME, encode_json_record(
            STATE_MAGIC, STATE_FORMAT_VERSION, {"floor": floor, "consumers": consumers}))
    except OSError as exc:
        if isinstance(exc, StorageIOError):
            raise
        raise StorageIOError(f"cannot write the change feed state {directory / STATE_NAME}: "
                             f"{exc.strerror or exc}") from exc


def scan_commits(router: Any, lo: int, hi: int) -> list[tuple[int, float | None, Writes]]:
    """Rebuild the writes of versions ``lo < v <= hi`` from the tiers (crash gap filling).

    Scans every table at ``hi`` (tombstones included) and reads the history of each key whose
    newest version is above ``lo``. Versions GC already removed cannot come back; rows come in
    key order. O(keys in the store) plus the history of the keys written in the gap.
    """
    out: dict[int, Writes] = {}
    for table in router.tables():
        for entry in router.scan(table, Bound.UNBOUNDED, Bound.UNBOUNDED, hi, False, 1024):
            if entry.version <= lo:
                continue
            for v, value in router.history(table, entry.key):
                if lo < v <= hi:
                    out.setdefault(v, {}).setdefault(table, []).append((entry.key, value))
    return [(v, None, out[v]) for v in sorted(out)]
