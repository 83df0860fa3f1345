"""The target protocol every benchmark target implements, and the versioned key layout
the RocksDB-style peers share (escaped key + terminator + inverted big-endian version)."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

__all__ = ["MAX_VERSION", "TAG_TOMBSTONE", "TAG_VALUE", "TERMINATOR", "Removes", "Sets", "Target", "disk_bytes"]

MAX_VERSION = (1 << 64) - 1
INV = struct.Struct(">Q").pack
TERMINATOR = b"\x00\x00"
TAG_VALUE = b"\x01"
TAG_TOMBSTONE = b"\x02"
TOMBSTONE_INT = TAG_TOMBSTONE[0]

Sets = Sequence[tuple[bytes, bytes]]
Removes = Sequence[bytes]


class Target(Protocol):
    """What a benchmark workload may call. Versions are the commit count (1, 2, ...).

    ``version=None`` means the latest version. ``versioned`` False means the target answers
    only latest reads (old-version figures are reported as n/a).
    """

    name: str
    versioned: bool

    def commit(self, sets: Sets, removes: Removes = ()) -> int:
        """Apply one atomic commit; return its version."""
        ...

    def get(self, key: bytes, version: int | None = None) -> bytes | None: ...

    def get_many(self, keys: Sequence[bytes], version: int | None = None) -> list[bytes | None]: ...

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` live ``(key, value)`` from ``start`` (inclusive) in key order."""
        ...

    def count(self, version: int | None = None) -> int:
        """Live keys at ``version`` by a full scan."""
        ...

    def iter_all(self, version: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Every live ``(key, value)`` at ``version`` (for verification; not timed)."""
        ...

    def age(self) -> None:
        """What an operator does to a store that has aged (flush memtables, checkpoint)."""
        ...

    def close(self) -> None: ...

    def reopen(self) -> None:
        """Open the same data again after :meth:`close`."""
        ...

    def disk_bytes(self) -> int: ...


def disk_bytes(path: Path) -> int:
    """Bytes a directory tree holds on disk: apparent sizes, sparse files at their allocation."""
    total = 0
    if path.is_file():
        st = path.stat()
        return min(st.st_size, st.st_blocks * 512)
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.stat(os.path.join(root, f))
            except FileNotFoundError:
                continue
            total += min(st.st_size, st.st_blocks * 512)
    return total


def escape(key: bytes) -> bytes:
    return key.replace(b"\x00", b"\x00\xff") + TERMINATOR


def unescape(prefix: bytes) -> bytes:
    """``escape(key) + terminator`` -> key."""
    k = prefix[:-2]
    return k.replace(b"\x00\xff", b"\x00") if 0 in k else k


def version_suffix(version: int | None) -> bytes:
    return INV(MAX_VERSION - (MAX_VERSION if version is None else version))


