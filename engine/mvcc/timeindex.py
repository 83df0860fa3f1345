"""Time -> version index: which version was current at a wall-clock time.

Samples ``(version, timestamp)`` at most once per millisecond into two compact arrays;
persisted as an append-only file of CRC-framed records (the commit log also carries each
commit's timestamp, so samples lost in a crash are rebuilt during recovery).

Notes: thread safety
    :meth:`record` is called under the store's commit lock; lookups may run concurrently
    (arrays only grow at the end, and readers bound their search by a length read first).
"""

from __future__ import annotations

import os
import struct
import zlib
from array import array
from bisect import bisect_right
from pathlib import Path

__all__ = ["TimeIndex"]

# version, timestamp, crc32 of the first 16 bytes
TIME_RECORD = struct.Struct("<QdI")
assert TIME_RECORD.size == 20
_RESOLUTION = 0.001
_FLUSH_EVERY = 256


class TimeIndex:
    """Sampled mapping between commit versions and wall-clock seconds."""

    def __init__(self, path: Path | None) -> None:
        self._versions = array("Q")
        self._times = array("d")
        self._path = path
        self._pending = bytearray()
        self._fh = None
        if path is not None:
            if path.exists():
                self._load(path)
            self._fh = open(path, "ab")

    def _load(self, path: Path) -> None:
        data = path.read_bytes()
        good = 0
        for off in range(0, len(data) - TIME_RECORD.size + 1, TIME_RECORD.size):
            v, ts, crc = TIME_RECORD.unpack_from(data, off)
            if zlib.crc32(data[off:off + 16]) != crc:
                break  # a torn or damaged tail: the commit log rebuilds what follows
            self._add(v, ts)
            good = off + TIME_RECORD.size
        if good != len(data):
            with open(path, "r+b") as fh:
                fh.truncate(good)

    def _add(self, version: int, ts: float) -> bool:
        vs, tss = self._versions, self._times
        if vs and version <= vs[-1]:
            return False
        if tss:
            if ts < tss[-1]:
                ts = tss[-1]  # keep times monotonic even if the clock steps back
            if ts - tss[-1] < _RESOLUTION:
                return False
        tss.append(ts)
        vs.append(version)
        return True

    def record(self, version: int, ts: float) -> None:
        """Note that ``version`` committed at ``ts``. O(1) amortised."""
        if self._add(version, ts) and self._fh is not None:
            body = struct.pack("<Qd", version, self._times[-1])
            self._pending += body + struct.pack("<I", zlib.crc32(body))
            if len(self._pending) >= _FLUSH_EVERY * TIME_RECORD.size:
                self.flush()

    def flush(self) -> None:
        if self._fh is not None and self._pending:
            self._fh.write(self._pending)
            self._fh.flush()
            self._pending.clear()

    def version_at(self, ts: float) -> int:
        """The newest version committed at or before ``ts`` (0 if none). O(log n)."""
        n = len(self._versions)
        i = bisect_right(self._times, ts, 0, n)
        return self._versions[i - 1] if i else 0

    def time_of(self, version: int) -> float | None:
        """Commit time of ``version`` (to the index's millisecond resolution), or None."""
        n = len(self._versions)
        i = bisect_right(self._versions, version, 0, n)
        return self._times[i - 1] if i else None

    def first(self) -> tuple[int, float] | None:
        return (self._versions[0], self._times[0]) if self._versions else None

    def close(self) -> None:
        if self._fh is not None:
            self.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
