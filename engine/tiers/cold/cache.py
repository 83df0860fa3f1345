"""An LRU cache of parsed blocks with a byte budget, shared by every segment of a tier.

Keys are ``(segment file_no, block index)``; file numbers are never reused, so an entry
can never answer for a different file. Each entry is charged its
:attr:`~engine.tiers.cold.block.BlockView.nbytes`: the decompressed bytes plus the small
offset arrays of its index (no per-entry Python objects), so the budget is close to
"decompressed bytes held". A block larger than the whole budget is returned to the caller
but not kept.

Thread safety: ``put``, ``discard_files``, ``clear`` and ``check`` take one internal lock
(held for O(1) dict work only, never during I/O or decompression). ``get`` takes no lock:
one ``OrderedDict`` lookup and one ``move_to_end`` are each atomic under the GIL, and a key
evicted between the two is simply a hit that is not refreshed. The hit/miss counters are
statistics and may miss an increment under contention. Two threads missing the same block
may both parse it; the second ``put`` replaces the first, which is harmless.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable

from .block import BlockView, DecodedBlock

__all__ = ["BlockCache"]


class BlockCache:
    """Least-recently-used parsed blocks, at most ``capacity`` bytes (0 disables caching).

    ``hits`` counts lookups answered from the cache, ``misses`` blocks read from disk (a
    lookup that the caller then answers without reading, e.g. by the bloom filter, is
    neither).

    Complexity: ``get``/``put`` O(1) amortised; ``discard_files`` O(entries).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"cache_bytes must be >= 0, got {capacity}")
        self.capacity = capacity
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._map: OrderedDict[tuple[int, int], BlockView] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, int]) -> BlockView | None:
        blk = self._map.get(key)
        if blk is None:
            return None  # counted as a miss by the put() of the block read instead
        try:
            self._map.move_to_end(key)
        except KeyError:
            pass  # evicted by a concurrent put after the lookup: still a valid answer
        self.hits += 1
        return blk

    def put(self, key: tuple[int, int], blk: BlockView, count_miss: bool = True) -> None:
        """Keep ``blk`` (just read from disk: counted as a miss unless ``count_miss`` is
        False, as for blocks cached while being written), evicting the least recently used
        blocks beyond the budget."""
        if count_miss:
            self.misses += 1
        cost = blk.nbytes
        if cost > self.capacity:
            return
        with self._lock:
            old = self._map.pop(key, None)
            if old is not None:
                self.size -= old.nbytes
            self._map[key] = blk
            self.size += cost
            m = self._map
            while self.size > self.capacity:
                _, ev = m.popitem(last=False)
                self.size -= ev.nbytes

    def attach_rows(self, key: tuple[int, int], blk: BlockView, rows: DecodedBlock) -> DecodedBlock:
        """Attach ``rows`` to ``blk`` (first caller wins) and charge their cost if ``blk``
        is cached under ``key``, evicting least recently used blocks beyond the budget.
        Returns the rows attached."""
        with self._lock:
            have = blk.rows
            if have is not None:
                return have  # another thread attached first
            blk.rows = rows
            if self._map.get(key) is blk:
                blk.nbytes += rows.nbytes
                self.size += rows.nbytes
                m = self._map
                while self.size > self.capacity and m:
                    _, ev = m.popitem(last=False)
                    self.size -= ev.nbytes
            return rows

    def discard_files(self, file_nos: Iterable[int]) -> None:
        """Forget every block of the given segments (after compaction retired them)."""
        gone = set(file_nos)
        with self._lock:
            for key in [k for k in self._map if k[0] in gone]:
                self.size -= self._map.pop(key).nbytes

    def clear(self) -> None:
        with self._lock:
            self._map.clear()
            self.size = 0

    def __len__(self) -> int:
        return len(self._map)

    def check(self) -> None:
        """Verify the byte accounting. Raises ValueError if it drifted."""
        with self._lock:
            real = sum(b.nbytes for b in self._map.values())
            if real != self.size or self.size > self.capacity:
                raise ValueError(f"block cache accounting drifted: {self.size} vs {real} "
                                 f"(capacity {self.capacity})")
