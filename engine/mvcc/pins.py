"""Durable named pins: versions kept readable regardless of the history floor.

A pin file holds canonical JSON framed by a header with a CRC; it is replaced atomically
(write temp, fsync, rename, fsync directory). A memory-only store keeps pins in memory.

Notes: thread safety
    Mutations take an internal lock; reads return copies.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..errors import InvalidKeyError
from ..records import decode_json_record, encode_json_record

__all__ = ["PinStore", "atomic_write"]

PINS_MAGIC = b"TIERDBPN"
PINS_FORMAT_VERSION = 1
# an engine.records record (magic, format version, length, crc32) of canonical JSON


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably: temp file, fsync, rename, fsync directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def check_pin_name(name: object) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidKeyError(f"pin name must be a non-empty str, got {name!r}")
    return name


class PinStore:
    """Named pins, persisted to ``path`` when given."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._pins: dict[str, int] = {}
        if path is not None:
            for tmp in path.parent.glob(path.name + ".tmp"):
                tmp.unlink()
            if path.exists():
                self._pins = self._load(path)

    @staticmethod
    def _load(path: Path) -> dict[str, int]:
        raw = decode_json_record(path.read_bytes(), PINS_MAGIC, PINS_FORMAT_VERSION, what="pin file",
                                 path=path, bad_magic_message="not a tierdb pin file")
        return {str(k): int(v) for k, v in raw.items()}

    def _save(self, pins: dict[str, int]) -> None:
        if self._path is None:
            return
        atomic_write(self._path, encode_json_record(PINS_MAGIC, PINS_FORMAT_VERSION, pins))

    def set(self, name: str, version: int) -> None:
        with self._lock:
            new = dict(self._pins)
            new[name] = version
            self._save(new)
            self._pins = new

    def remove(self, name: str) -> bool:
        with self._lock:
            if name not in self._pins:
                return False
            new = dict(self._pins)
            del new[name]
            self._save(new)
            self._pins = new
            return True

    def all(self) -> dict[str, int]:
        return dict(self._pins)

    def __len__(self) -> int:
        """Number of entries; O(1) (no copy, unlike :meth:`all`)."""
        return len(self._pins)

    def versions(self) -> frozenset[int]:
        return frozenset(self._pins.values())
