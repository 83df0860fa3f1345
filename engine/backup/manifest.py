"""The backup manifest: the file that makes a directory (or object prefix) a backup.

A backup is a store image (see capture.py) under ``data/`` plus ``BACKUP``, written last::

    BACKUP_HEADER | body (canonical JSON: sorted keys, no whitespace, UTF-8)

    BACKUP_HEADER = magic "TIERDBBK", u32 format version, u32 body length, u32 crc32(body)

The body names the version the backup is as of and every file with its size and SHA-256
(docs/FORMATS.md, "Backups"). Without ``BACKUP`` there is no backup: an interrupted one
cannot be mistaken for a complete one.

Thread safety: pure functions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..errors import CorruptionError, FormatError
from ..records import RECORD_HEADER, decode_record, encode_record

__all__ = ["BACKUP_FORMAT_VERSION", "BACKUP_HEADER", "BACKUP_MAGIC", "BACKUP_NAME", "DATA_DIR",
           "BackupFile", "BackupManifest", "decode_manifest", "encode_manifest"]

BACKUP_NAME = "BACKUP"
DATA_DIR = "data"
BACKUP_MAGIC = b"TIERDBBK"
BACKUP_FORMAT_VERSION = 1
# magic, format version, body length, crc32 of body
BACKUP_HEADER = RECORD_HEADER  # engine.records framing


@dataclass(frozen=True, slots=True)
class BackupFile:
    """One file of the backup: ``path`` relative to the backup root (posix, under data/)."""

    path: str
    size: int
    sha256: str


@dataclass(slots=True)
class BackupManifest:
    """Decoded ``BACKUP``: the version the backup is as of, where it came from, its files."""

    version: int
    layout: str
    created: float
    source: str
    files: list[BackupFile]
    source_version: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def encode_manifest(m: BackupManifest) -> bytes:
    """Serialise ``m``. O(files)."""
    body = json.dumps({
        "format": BACKUP_FORMAT_VERSION,
        "kind": "tierdb-backup",
        "version": m.version,
        "source_version": m.source_version,
        "layout": m.layout,
        "created": m.created,
        "source": m.source,
        "bytes": m.total_bytes,
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in m.files],
    }, sort_keys=True, separators=(",", ":")).encode()
    return encode_record(BACKUP_MAGIC, BACKUP_FORMAT_VERSION, body)


def decode_manifest(data: bytes, where: object) -> BackupManifest:
    """Parse and verify a ``BACKUP`` file read from ``where`` (named in errors).

    Raises:
        CorruptionError: truncated, checksum mismatch, or contents that do not make sense.
        FormatError: not a backup manifest, or a newer format than this tierdb reads.
    """
    body = decode_record(data, BACKUP_MAGIC, BACKUP_FORMAT_VERSION, what="backup manifest (BACKUP)",
                         path=where, bad_magic=FormatError,
                         bad_magic_message="not a tierdb backup manifest (bad magic)")
    try:
        raw: dict[str, Any] = json.loads(body)
        files = [BackupFile(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in raw["files"]]
        m = BackupManifest(int(raw["version"]), str(raw["layout"]), float(raw["created"]),
                           str(raw["source"]), files, int(raw.get("source_version", raw["version"])))
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptionError(f"backup manifest contents are malformed ({exc})", path=where,
                              offset=BACKUP_HEADER.size) from None
    for f in files:
        parts = f.path.split("/")
        if parts[0] != DATA_DIR or len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
            raise CorruptionError(f"backup manifest names a file outside {DATA_DIR}/: {f.path!r}",
                                  path=where, offset=BACKUP_HEADER.size)
    return m
