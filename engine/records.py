"""Small checksummed records: ``RECORD_HEADER`` (8-byte magic, u32 format version, u32 body
length, u32 CRC-32 of the body), then the body - canonical JSON for every user.

The store marker (``TIERDB``), the pin file, the change feed's ``STATE``, the backup
manifest (``BACKUP``) and the cold tier's shared-object records (``BASE``, ``refs/``) are
all such records (docs/FORMATS.md); each has its own magic and format version.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from typing import Any

from .errors import CorruptionError, EngineError, FormatError

__all__ = ["RECORD_HEADER", "decode_json_record", "decode_record", "encode_json_record",
           "encode_record"]

RECORD_HEADER = struct.Struct("<8sIII")
assert RECORD_HEADER.size == 20


def encode_record(magic: bytes, fmt: int, body: bytes) -> bytes:
    """``body`` framed under ``magic`` and format ``fmt``. O(len(body))."""
    return RECORD_HEADER.pack(magic, fmt, len(body), zlib.crc32(body)) + body


def encode_json_record(magic: bytes, fmt: int, obj: Any) -> bytes:
    """``obj`` as canonical JSON (sorted keys, no whitespace), framed."""
    return encode_record(magic, fmt, json.dumps(obj, sort_keys=True, separators=(",", ":")).encode())


def decode_record(data: bytes, magic: bytes, max_format: int, *, what: str, path: object,
                  truncated: Callable[..., EngineError] = CorruptionError,
                  bad_magic: Callable[..., EngineError] = CorruptionError,
                  bad_magic_message: str | None = None) -> bytes:
    """The verified body of a record read from ``path`` (named in errors as ``what``).

    Raises:
        ``truncated`` (CorruptionError): shorter than its header.
        ``bad_magic`` (CorruptionError): another magic (``bad_magic_message`` if given).
        FormatError: a format newer than ``max_format``.
        CorruptionError: the body's length or checksum does not match.
    """
    if len(data) < RECORD_HEADER.size:
        raise truncated(f"{what} is truncated ({len(data)} bytes)", path=path, offset=0)
    m, fmt, length, crc = RECORD_HEADER.unpack_from(data, 0)
    if m != magic:
        raise bad_magic(bad_magic_message or f"{what} has a bad magic: not written by tierdb",
                        path=path, offset=0)
    if fmt > max_format:
        raise FormatError(f"{what} format {fmt} is newer than this tierdb reads ({max_format}); "
                          "upgrade tierdb", path=path, offset=0)
    body = data[RECORD_HEADER.size:]
    if len(body) != length or zlib.crc32(body) != crc:
        raise CorruptionError(f"{what} fails its checksum", path=path, offset=RECORD_HEADER.size)
    return body


def decode_json_record(data: bytes, magic: bytes, max_format: int, *, what: str, path: object,
                       **errors: Any) -> Any:
    """:func:`decode_record`, then the body parsed as JSON."""
    return json.loads(decode_record(data, magic, max_format, what=what, path=path, **errors))
