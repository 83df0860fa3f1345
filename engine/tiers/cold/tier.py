"""The cold tier: immutable zstd segment files behind a manifest, a drop list and a block cache.

Directory layout (names are generated numbers; no table name or key ever reaches a path)::

    LOCK                      flock'd while open (a second opener gets LockedError)
    MANIFEST                  live segments, counters, known tables (atomic replace)
    000000000007.seg          a segment (immutable once a manifest names it)
    000000000009.drop         a drop file (immutable; live while numbered above drop_floor)
    *.tmp                     an interrupted write: removed on open

Write path: ``set`` and ``write_entries`` each write one new segment (fsync, rename, fsync
dir) and then a new manifest naming it; the call returns only when both are durable. ``drop``
and ``clear_table`` write one drop file each. Compaction merges a contiguous run of segments
(see compaction.py), applies drop records, writes a carry-over drop file for records still
needed, swaps the manifest, and only then deletes the files the new manifest no longer names.

Read path: newest segment first; a segment is skipped when its table is cleared, when the key
is outside the table's key range, or when its version range cannot improve the answer; the
block index picks the block, a cached block answers directly, and on a cache miss the bloom
filter may rule the key out before the block is read. Parsed blocks (decompressed bytes plus
a compact index, block.py) live in a byte-budgeted LRU cache, filled as segments are
written (``cache_on_write``) and as blocks are read.

Modules: the behaviour is split by concern into mixins over ``TierCore`` (core.py: open,
state, manifest, close): points.py (point reads), ranges.py (range pages, columnar scans,
version iteration), writes.py (segments, drops, clears), compactor.py (compaction wiring;
the policy and merge are in compaction.py), health.py (check, stats). Below them:
reader.py (one segment), block.py (one block in memory), writer.py, format.py (bytes),
manifest.py, drops.py, bloom.py, cache.py, state.py.

Notes: thread safety
    Any number of concurrent readers plus one writer at a time. Writers (``set``,
    ``write_entries``, ``drop``, ``clear_table``, ``ensure_table``, compaction's swap) take
    ``_write_lock``; readers take no tier lock: they read ``self._state`` once (an immutable
    snapshot of the segment list) and keep using it, so a compaction swap never disturbs a
    read in flight. A compaction merges without the writer lock (only ``_compact_lock``, so
    at most one runs); writers proceed meanwhile. Files retired by compaction are unlinked
    after the new manifest is durable; readers still holding the old snapshot keep reading
    through their open descriptors, which close when the last reference goes.
    ``close`` waits for a running compaction; it must not race reads of the same tier.
"""

from __future__ import annotations

from .health import Health
from .options import ColdOptions
from .points import PointReads
from .ranges import RangeReads
from .writes import Writes

__all__ = ["ColdOptions", "ColdTier"]


class ColdTier(PointReads, RangeReads, Writes, Health):
    """Immutable-segment tier implementing :class:`~engine.tiers.base.TierStorage`.

    ``ColdTier(path, **options)``: options are the fields of :class:`ColdOptions`; an
    unknown option raises TypeError, a bad value ValueError. See the module docstring for
    layout, durability and thread safety.

    Complexity: point reads O(S * log B) for S live segments and B blocks, plus one block
    read, decompression and parse (no per-entry decode) on a cache miss; range pages O(S log S per row) plus block decodes; ``set``
    O(n log n) for n entries plus compression and two fsyncs.

    Raises (constructor): LockedError (another opener), CorruptionError/FormatError (damaged
    or foreign files), StorageIOError (OS failures).
    """

    name = "cold"
