"""Where a segment's bytes come from: a local file (:class:`FileSource`) or an object in an
object store read by byte range through the on-disk range cache (:class:`RangeSource`).

:class:`~engine.tiers.cold.reader.Segment` reads only through ``size()`` and
``pread(n, off)`` and verifies every byte it gets (header, footer, meta and block
checksums), whichever source served them.

Notes: thread safety
    Both sources may be read by any number of threads at once (``os.pread`` has no shared
    file position; the object-store client and the range cache are thread-safe).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from ...errors import CorruptionError, StorageIOError
from .objstore import ObjectStoreClient
from .rangecache import RangeCache

__all__ = ["READAHEAD_BYTES", "TAIL_BYTES", "FileSource", "RangeSource", "SegmentSource"]

TAIL_BYTES = 64 * 1024
"""A remote segment's first read of its footer fetches this many bytes from the end, so that
the meta section (block index, bloom filter) usually arrives in the same request."""

READAHEAD_BYTES = 256 * 1024
"""A remote read that starts where the previous fetch of the same segment ended (a scan
walking blocks in order) fetches this many bytes at once: one request per ~256 KiB of
blocks instead of one per block. Random point reads never trigger it."""


class SegmentSource(Protocol):
    """Random access to one immutable segment's bytes."""

    def size(self) -> int: ...

    def pread(self, n: int, off: int) -> bytes: ...

    def forget_cached(self) -> bool: ...

    def close(self) -> None: ...


class FileSource:
    """A local segment file, read with ``os.pread`` on one descriptor.

    Raises (constructor): CorruptionError if the file is missing (the manifest names it),
    StorageIOError on other OS failures.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise CorruptionError("cold segment named by the manifest is missing", path=path,
                                  offset=None) from None
        except OSError as exc:
            raise StorageIOError(f"cannot open cold segment {path}: {exc}") from exc

    def size(self) -> int:
        assert self._fd is not None
        try:
            return os.fstat(self._fd).st_size
        except OSError as exc:
            raise StorageIOError(f"cannot stat cold segment {self.path}: {exc}") from exc

    def pread(self, n: int, off: int) -> bytes:
        assert self._fd is not None
        try:
            return os.pread(self._fd, n, off)
        except OSError as exc:
            raise StorageIOError(f"cannot read cold segment {self.path} at {off}: {exc}") from exc

    def forget_cached(self) -> bool:
        return False  # nothing cached: a bad byte here is corruption

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


class RangeSource:
    """Segment object ``name`` in ``client``, read by byte range through ``cache``.

    ``size`` is the object's size as the manifest records it (no HEAD request needed).
    A read the cache cannot serve fetches exactly the bytes asked for, except a read in the
    last :data:`TAIL_BYTES`, which fetches that whole tail (footer + usually all of meta),
    and a read starting where the previous fetch ended, which reads ahead
    :data:`READAHEAD_BYTES` (sequential scans).
    """

    def __init__(self, client: ObjectStoreClient, name: str, file_no: int, size: int,
                 cache: RangeCache) -> None:
        self.client = client
        self.name = name
        self.file_no = file_no
        self._size = size
        self._cache = cache
        self._next_off = -1  # where the last fetch ended (a heuristic: races are harmless)

    def size(self) -> int:
        return self._size

    def pread(self, n: int, off: int) -> bytes:
        data = self._cache.get(self.file_no, off, n)
        if data is not None:
            return data
        size = self._size
        tail = max(0, size - TAIL_BYTES)
        if off >= tail and off + n <= size:
            chunk = self.client.get_range(self.name, tail, size)
            self._cache.put(self.file_no, tail, chunk)
            return chunk[off - tail:off - tail + n]
        end = off + n
        if off == self._next_off and self._cache.capacity >= 8 * READAHEAD_BYTES:
            end = min(max(end, off + READAHEAD_BYTES), tail if off < tail else size)
            end = max(end, off + n)
        data = self.client.get_range(self.name, off, end)
        self._next_off = off + len(data)
        if len(data) >= n:
            self._cache.put(self.file_no, off, data)
        return data[:n]

    def forget_cached(self) -> bool:
        """Drop this segment's cached ranges (after a checksum failure); True if there were
        any, so the read is worth retrying from the object store."""
        return self._cache.drop_file(self.file_no) > 0

    def close(self) -> None:
        pass  # no descriptor: the client is shared by the tier
