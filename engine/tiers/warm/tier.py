"""The warm tier put together: :class:`WarmTier` = handle + point reads + scans + writes + checks.

See the package docstring (:mod:`engine.tiers.warm`) for the layout and thread safety.
"""

from __future__ import annotations

from .check import Checks
from .point import PointReads
from .scan import RangeScans
from .writes import Writes

__all__ = ["WarmTier"]


class WarmTier(PointReads, RangeScans, Writes, Checks):
    """Multi-version tier on RocksDB; see :mod:`engine.tiers.warm` for layout and thread safety.

    Complexity: point reads are one seek (O(log n) in RocksDB) on a per-thread cached iterator;
    ``set`` is O(entries) into one ``WriteBatch``; range pages are one bounded seek plus
    O(batch + skipped versions); ``stats`` and ``check`` are O(n).

    Raises (constructor):
        FormatError: ``path`` is not a warm store (non-empty without marker, or not a directory),
            or was written by a newer format version. Nothing in ``path`` is modified.
        LockedError: another process (or another open WarmTier) holds the store.
        StorageIOError: RocksDB failed to open the directory.
    """
