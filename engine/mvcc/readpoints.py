"""Registry of the read points that open snapshots, transactions and scans hold.

The drop worker asks it which versions are still being read, so garbage collection never
removes a version a live reader needs (DESIGN.md invariant 4).

Notes: thread safety
    Every method takes one short internal lock; safe from any thread.
"""

from __future__ import annotations

import itertools
import threading

__all__ = ["ReadPoints"]


class ReadPoints:
    """A multiset of versions held by live readers. O(1) acquire/release."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}
        # A plain dict, not a Counter: Counter.__delitem__ is Python code, and acquire and
        # release run twice per transaction (bench_store commit).
        self._counts: dict[int, int] = {}
        self._ids = itertools.count(1)

    def acquire(self, version: int) -> int:
        """Hold ``version``; return a token for :meth:`release`."""
        token = next(self._ids)
        with self._lock:
            self._held[token] = version
            counts = self._counts
            counts[version] = counts.get(version, 0) + 1
        return token

    def release(self, token: int) -> None:
        """Drop a hold (idempotent)."""
        with self._lock:
            v = self._held.pop(token, None)
            if v is None:
                return
            c = self._counts[v] - 1
            if c:
                self._counts[v] = c
            else:
                del self._counts[v]

    def versions(self) -> list[int]:
        """Distinct held versions, ascending."""
        with self._lock:
            return sorted(self._counts)

    def count(self, version: int) -> int:
        """How many holds ``version`` has."""
        with self._lock:
            return self._counts.get(version, 0)

    def oldest(self) -> int | None:
        with self._lock:
            return min(self._counts) if self._counts else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._held)
