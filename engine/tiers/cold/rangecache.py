"""A bounded on-disk cache of byte ranges of remote segment objects (``cold-cache/``).

An object-store cold tier reads segments by byte range (header, then the tail holding the
meta section and footer, then single blocks). Every range fetched is kept here as one file
``<file_no:012d>.<offset>.<length>.rng`` so that a later read (or a later process on this
machine) need not ask the object store again. The cache has a byte budget and evicts the
least recently used ranges; a read served from it is verified by the caller exactly like
one from the object store (header, footer, meta and block checksums), and a range that
fails verification is dropped and fetched again (see :class:`RangeSource`).

The directory may be deleted whenever the store is closed: the cache then starts empty
(a cold start) and fills again. Files are written to a temp name and renamed; they are not
fsynced (a torn range after a power loss fails its checksum and is refetched).

Notes: thread safety
    Any number of threads; the index is guarded by one lock, file I/O happens outside it
    (a concurrent eviction makes a read miss, never return wrong bytes: the length is part
    of the name and the caller verifies checksums).
"""

from __future__ import annotations

import os
import re
import threading
from bisect import bisect_right, insort
from collections import OrderedDict
from pathlib import Path

from ...errors import StorageIOError

__all__ = ["RangeCache"]

_NAME = re.compile(r"^(\d{12})\.(\d+)\.(\d+)\.rng$")


class RangeCache:
    """Byte ranges of segment objects on local disk, LRU-evicted to ``capacity`` bytes.

    ``capacity == 0`` disables the cache (nothing is written). Complexity: ``get`` and
    ``put`` O(log r) for r cached ranges of the object, plus the file I/O.
    """

    def __init__(self, directory: Path, capacity: int) -> None:
        self.directory = directory
        self.capacity = capacity
        self._lock = threading.Lock()
        self._lru: OrderedDict[tuple[int, int, int], None] = OrderedDict()
        self._starts: dict[int, list[tuple[int, int]]] = {}
        self.size = 0
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self._load()

    def _path(self, key: tuple[int, int, int]) -> Path:
        return self.directory / f"{key[0]:012d}.{key[1]}.{key[2]}.rng"

    def _load(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            found = []
            for de in os.scandir(self.directory):
                if de.name.endswith(".rng.tmp"):
                    os.unlink(de.path)
                    continue
                m = _NAME.match(de.name)
                if m is None:
                    continue
                st = de.stat()
                key = (int(m.group(1)), int(m.group(2)), int(m.group(3)))
                if st.st_size != key[2]:
                    os.unlink(de.path)  # torn: the name says how long it must be
                    continue
                found.append((st.st_mtime_ns, key))
        except OSError as exc:
            raise StorageIOError(f"cannot open the cold cache directory {self.directory}: {exc}") from exc
        for _t, key in sorted(found):
            self._index(key)
        self._evict()

    def _index(self, key: tuple[int, int, int]) -> None:
        self._lru[key] = None
        insort(self._starts.setdefault(key[0], []), (key[1], key[2]))
        self.size += key[2]

    def _unindex(self, key: tuple[int, int, int]) -> None:
        del self._lru[key]
        lst = self._starts[key[0]]
        lst.remove((key[1], key[2]))
        if not lst:
            del self._starts[key[0]]
        self.size -= key[2]

    def _find(self, file_no: int, off: int, n: int) -> tuple[int, int, int] | None:
        lst = self._starts.get(file_no)
        if not lst:
            return None
        i = bisect_right(lst, (off, 1 << 62)) - 1
        # Ranges of one object rarely nest (blocks are disjoint; only the tail range holds
        # several blocks), so a short look back finds any range that holds this one.
        for j in range(i, max(-1, i - 16), -1):
            s, ln = lst[j]
            if s + ln >= off + n:
                return (file_no, s, ln)
        return None

    def get(self, file_no: int, off: int, n: int) -> bytes | None:
        """Bytes ``[off, off + n)`` of segment ``file_no`` if a cached range holds them."""
        with self._lock:
            key = self._find(file_no, off, n)
            if key is None:
                self.misses += 1
                return None
            self._lru.move_to_end(key)
        try:
            with open(self._path(key), "rb") as f:
                f.seek(off - key[1])
                data = f.read(n)
        except OSError:
            data = b""
        if len(data) != n:  # evicted meanwhile or damaged: a miss
            self.drop_range(key)
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
        return data

    def put(self, file_no: int, off: int, data: bytes) -> None:
        """Keep ``data`` as bytes ``[off, off + len(data))`` of segment ``file_no``."""
        n = len(data)
        if self.capacity == 0 or n == 0 or n > self.capacity:
            return
        key = (file_no, off, n)
        with self._lock:
            if key in self._lru:
                self._lru.move_to_end(key)
                return
        p = self._path(key)
        tmp = p.with_name(p.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, p)
        except OSError:
            try:
                os.unlink(tmp)
            except OSError:
                pass  # a cache that cannot write just caches less
            return
        with self._lock:
            if key not in self._lru:
                self._index(key)
            self._evict()

    def _evict(self) -> None:
        """Drop least recently used ranges until within budget (lock held or at open)."""
        while self.size > self.capacity and self._lru:
            key = next(iter(self._lru))
            self._unindex(key)
            self.evictions += 1
            try:
                os.unlink(self._path(key))
            except OSError:
                pass  # already gone

    def drop_range(self, key: tuple[int, int, int]) -> None:
        with self._lock:
            if key in self._lru:
                self._unindex(key)
        try:
            os.unlink(self._path(key))
        except OSError:
            pass  # already gone

    def drop_file(self, file_no: int) -> int:
        """Forget every cached range of segment ``file_no``; returns how many there were."""
        with self._lock:
            keys = [(file_no, s, ln) for s, ln in self._starts.get(file_no, [])]
        for key in keys:
            self.drop_range(key)
        return len(keys)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"disk_cache_hits": self.hits, "disk_cache_misses": self.misses,
                    "disk_cache_bytes": self.size, "disk_cache_capacity": self.capacity,
                    "disk_cache_ranges": len(self._lru), "disk_cache_evictions": self.evictions}

    def check(self) -> None:
        """Verify the accounting. Raises ValueError."""
        with self._lock:
            if self.size != sum(k[2] for k in self._lru) or self.size > max(self.capacity, 0):
                raise ValueError(f"disk cache accounting off: size {self.size}")
