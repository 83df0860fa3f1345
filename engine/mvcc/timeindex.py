"""Time -> version index: which version was current at a wall-clock time.

Samples ``(version, timestamp)`` at most once per millisecond into two compact arrays (a
sample's version is the newest committed in its millisecond, its time the millisecond's first);
persisted as an append-only file of CRC-framed records (the commit log also carries each
commit's timestamp, so samples lost in a crash are rebuilt during recovery).

Notes: thread safety
    :meth:`record` is called under the store's commit lock; lookups may run concurrently
    (arrays only grow at the end, and readers bound their search by a length read first).
    The file buffer has its own lock, since :meth:`flush` runs outside the commit lock.
"""

from __future__ import annotations

import os
import struct
import threading
import zlib
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

from ..errors import CorruptionError

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
        self._dirty = False  # the newest sample changed since it was last queued for the file
        self._io_lock = threading.Lock()
        self._fh = None
        if path is not None:
            if path.exists():
                self._load(path)
            self._fh = open(path, "ab")

    def _load(self, path: Path) -> None:
        data = path.read_bytes()
        good = 0
        size = TIME_RECORD.size
        for off in range(0, len(data) - size + 1, size):
            v, ts, crc = TIME_RECORD.unpack_from(data, off)
            if zlib.crc32(data[off:off + 16]) != crc:
                # A torn tail (the last record cut or garbled by a crash) is truncated; the
                # commit log rebuilds what follows. A bad record with an intact one after it
                # is damage, not a crash: say so instead of silently dropping samples.
                for later in range(off + size, len(data) - size + 1, size):
                    if zlib.crc32(data[later:later + 16]) == TIME_RECORD.unpack_from(data, later)[2]:
                        raise CorruptionError(
                            "time index record fails its checksum with intact records after "
                            "it; restore the store from a backup, or delete the TIME file to "
                            "lose only the version <-> time mapping (version_at, --at)",
                            path=path, offset=off)
                break
            self._add(v, ts)
            good = off + size
        self._dirty = False
        if good != len(data):
            with open(path, "r+b") as fh:
                fh.truncate(good)

    def _add(self, version: int, ts: float) -> bool:
        """Add a sample; True if it started a new millisecond bucket.

        A commit within the resolution of the newest sample moves that sample's version
        forward (its time stays the bucket's start): otherwise the last commits of a burst
        would never be recorded and every later time would map to the burst's first commit.
        """
        vs, tss = self._versions, self._times
        if vs and version <= vs[-1]:
            return False
        if tss:
            if ts < tss[-1]:
                ts = tss[-1]  # keep times monotonic even if the clock steps back
            if ts - tss[-1] < _RESOLUTION:
                vs[-1] = version
                self._dirty = True
                return False
        tss.append(ts)
        vs.append(version)
        self._dirty = True
        return True

    def _write_last(self) -> None:
        """Queue the newest sample for the file (a rewrite of a bucket replaces it on load)."""
        body = struct.pack("<Qd", self._versions[-1], self._times[-1])
        self._pending += body + struct.pack("<I", zlib.crc32(body))
        self._dirty = False

    def record(self, version: int, ts: float) -> None:
        """Note that ``version`` committed at ``ts``. O(1) amortised."""
        with self._io_lock:  # store.flush() may flush from another thread
            n = len(self._versions)
            dirty = self._dirty
            if self._add(version, ts) and self._fh is not None:
                if n and dirty:  # the bucket just closed: persist its final version
                    body = struct.pack("<Qd", self._versions[n - 1], self._times[n - 1])
                    self._pending += body + struct.pack("<I", zlib.crc32(body))
                if len(self._pending) >= _FLUSH_EVERY * TIME_RECORD.size:
                    self._flush()

    def flush(self) -> None:
        with self._io_lock:
            self._flush()

    def _flush(self) -> None:
        if self._fh is not None and self._dirty and self._versions:
            self._write_last()
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
        """Commit time of ``version`` (to the index's millisecond resolution), or None.

        A sample holds the newest version of its millisecond bucket, so ``version`` belongs
        to the first sample at or above it; the answer is that bucket's start (<= the true
        commit time, by less than the resolution).
        """
        n = len(self._versions)
        if version < 1:
            return None
        i = bisect_left(self._versions, version, 0, n)
        return self._times[i] if i < n else None

    def close(self) -> None:
        with self._io_lock:
            self._close()

    def _close(self) -> None:
        if self._fh is not None:
            self._flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            self._fh = None
