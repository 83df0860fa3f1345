"""Warm tier on-disk format: versioned key encoding, value tags and the marker file.

Layout and byte-level details: ``docs/FORMATS.md``, "Warm tier (RocksDB)".
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import Final

__all__ = [
    "ESCAPED_NUL", "FORMAT_VERSION", "ITER_CHUNK", "MARKER", "MARKER_MAGIC", "MARKER_NAME",
    "META_CF", "META_FORMAT", "META_FORMAT_KEY", "NUL", "PAST_VERSIONS", "POINT_SKIP_LIMIT",
    "SCAN_SKIP_LIMIT", "SUFFIX_LEN", "TAG_TOMBSTONE", "TAG_TOMBSTONE_INT", "TAG_VALUE",
    "TAG_VALUE_INT", "TERMINATOR", "VERSION_SUFFIX", "decode_key", "decode_value", "encode_key",
    "key_prefix", "marker_bytes", "pack_inv", "read_marker", "write_marker",
]

from ...errors import CorruptionError, FormatError, StorageIOError
from ...types import MAX_VERSION, check_version

# --- on-disk format ---------------------------------------------------------------------------

FORMAT_VERSION: Final = 1
"""Warm format written by this build; directories stamped with a newer one are refused."""

MARKER_NAME: Final = "TIERDB_WARM"
MARKER_MAGIC: Final = b"TDBWARM\x00"
MARKER: Final = struct.Struct(">8sII")  # magic, format version, CRC32 of the first 12 bytes
assert MARKER.size == 16

META_CF: Final = "tierdb.meta"  # EntryKind.parse refuses it, so it can never shadow a table
META_FORMAT_KEY: Final = b"\x00tierdb:format_version"  # 0x00-prefixed meta keys are reserved
META_FORMAT: Final = struct.Struct(">I")
assert META_FORMAT.size == 4

VERSION_SUFFIX: Final = struct.Struct(">Q")  # ~version, big-endian: newest sorts first
assert VERSION_SUFFIX.size == 8
NUL: Final = b"\x00"  # test membership with `0 in key`: `NUL in key` is ~6x slower (buffer path)
ESCAPED_NUL: Final = b"\x00\xff"
TERMINATOR: Final = b"\x00\x00"
PAST_VERSIONS: Final = b"\x00\x01"  # escape(key) + this sorts after every version of key
SUFFIX_LEN: Final = len(TERMINATOR) + VERSION_SUFFIX.size
assert SUFFIX_LEN == 10

TAG_VALUE: Final = b"\x01"
TAG_TOMBSTONE: Final = b"\x02"
TAG_VALUE_INT: Final = TAG_VALUE[0]
TAG_TOMBSTONE_INT: Final = TAG_TOMBSTONE[0]

# A range scan steps over at most this many unwanted versions of one key with next() before it
# re-seeks past them (RocksDB's max_sequential_skip_in_iterations uses the same idea).
SCAN_SKIP_LIMIT: Final = 8
# A cached point iterator gives up (status Incomplete) after stepping over this many deleted
# entries; the read then retries on an iterator bounded to the key's own versions.
POINT_SKIP_LIMIT: Final = 256
ITER_CHUNK: Final = 256

pack_inv = VERSION_SUFFIX.pack
_from_bytes = int.from_bytes



def key_prefix(key: bytes) -> bytes:
    """``escape(key) + 00 00``: the common prefix of every stored version of ``key``. O(len)."""
    return key.replace(NUL, ESCAPED_NUL) + TERMINATOR


def encode_key(key: bytes, version: int) -> bytes:
    """The physical RocksDB key of ``(key, version)``. O(len(key)).

    Raises:
        InvalidKeyError / InvalidVersionError: bad ``version``.
    """
    if type(version) is not int:
        check_version(version)
    try:
        return key.replace(NUL, ESCAPED_NUL) + TERMINATOR + pack_inv(MAX_VERSION - version)
    except struct.error:
        check_version(version)
        raise


def decode_key(physical: bytes) -> tuple[bytes, int]:
    """Invert :func:`encode_key`. O(len).

    Raises:
        ValueError: ``physical`` is not a valid encoding (no terminator, bad escape).
    """
    if len(physical) < SUFFIX_LEN or physical[-SUFFIX_LEN:-8] != TERMINATOR:
        raise ValueError(f"not a warm versioned key (no 00 00 terminator): {physical!r}")
    escaped = physical[:-SUFFIX_LEN]
    if 0 in escaped.replace(ESCAPED_NUL, b""):
        raise ValueError(f"bad escape in warm versioned key (00 not followed by ff): {physical!r}")
    return escaped.replace(ESCAPED_NUL, NUL), MAX_VERSION - _from_bytes(physical[-8:], "big")


def decode_value(tagged: bytes, where: object) -> bytes | None:
    t = tagged[0] if tagged else -1
    if t == TAG_VALUE_INT:
        return tagged[1:]
    if t == TAG_TOMBSTONE_INT and len(tagged) == 1:
        return None
    raise CorruptionError(f"warm tier: bad value tag {tagged[:1]!r} at {where}; run check()")


# --- marker file ---

def marker_bytes(version: int) -> bytes:
    head = MARKER_MAGIC + version.to_bytes(4, "big")
    return MARKER.pack(MARKER_MAGIC, version, zlib.crc32(head))


def read_marker(path: Path) -> int:
    """Format version stamped in ``path``'s marker file. Raises FormatError if damaged."""
    marker = path / MARKER_NAME
    try:
        data = marker.read_bytes()
    except OSError as e:
        raise StorageIOError(f"cannot read warm tier marker {marker}: {e}; check permissions") from e
    if len(data) != MARKER.size:
        raise FormatError(f"warm tier marker has {len(data)} bytes, expected {MARKER.size}", path=marker)
    magic, version, crc = MARKER.unpack(data)
    if magic != MARKER_MAGIC or zlib.crc32(data[:12]) != crc:
        raise FormatError("warm tier marker is damaged (bad magic or checksum)", path=marker, offset=0)
    return int(version)


def write_marker(path: Path) -> None:
    """Write the marker atomically: temp file, fsync, rename, fsync the directory."""
    tmp = path / (MARKER_NAME + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(marker_bytes(FORMAT_VERSION))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path / MARKER_NAME)
        dfd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as e:
        raise StorageIOError(f"cannot create warm tier in {path}: {e}; check space and permissions") from e

