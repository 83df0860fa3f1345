"""Point reads of the cold tier: ``lookup``, ``get``, ``contains``, ``get_all_versions``.

Newest segment first; a segment is skipped when its table is cleared, when the key is
outside the table's key range, or when its version range cannot improve the answer. Inside a
segment the block index picks the block; a cached block answers directly, otherwise the
bloom filter may rule the key out before the block is read (reader.py).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

from ...errors import ClosedError
from ...types import EntryKind, RawEntry, as_bytes
from .core import TierCore
from .state import State


class PointReads(TierCore):
    """The point-read half of :class:`~engine.tiers.cold.tier.ColdTier` (thread safety: any
    number of concurrent readers; see tier.py)."""

    def _find(self, st: State, table: EntryKind, key: bytes,
              version: int) -> tuple[int, Any, int] | None:
        """(version, block view, index) of the newest live version <= ``version``, or None.

        The hot path of point reads: one table lookup, then per segment two key and two
        version comparisons before the segment's own lookup (block index, cache, bloom on
        a cache miss only).
        """
        tv = st.by_table.get(table)
        if tv is None:
            return None
        tdrops = tv.tdrops
        dv = tdrops.get(key) if tdrops else None
        best = None
        bestv = -1
        for lo_k, hi_k, vmin, vmax, seg, tr in tv.segs:
            if key < lo_k or key > hi_k or vmin > version or vmax <= bestv:
                continue
            r = seg.lookup(tr, key, version, dv)
            if r is not None and r[0] > bestv:
                best = r
                bestv = r[0]
        return best

    def lookup(self, table: EntryKind, key: bytes, version: int) -> RawEntry | None:
        """Newest stored version <= ``version`` (tombstones included); None = not found."""
        # _live() inlined here and in get(): the extra call cost ~10% of bloom-rejected misses.
        st = self._state
        if st is None:
            raise ClosedError(f"cold tier {self.path} is closed; open it again")
        if type(key) is not bytes:
            key = as_bytes(key)
        r = self._find(st, table, key, version)
        if r is None:
            return None
        v, blk, i = r
        return RawEntry(key, v, blk.value(i))

    def get(self, table: EntryKind, key: bytes, version: int) -> bytes | None:
        """Value of the newest version <= ``version``; None for a tombstone or nothing."""
        st = self._state  # _live() inlined: see lookup()
        if st is None:
            raise ClosedError(f"cold tier {self.path} is closed; open it again")
        if type(key) is not bytes:
            key = as_bytes(key)
        r = self._find(st, table, key, version)
        if r is None:
            return None
        return r[1].value(r[2])

    def get_many(self, table: EntryKind, keys: Sequence[bytes], version: int) -> list[bytes | None]:
        """``[get(table, k, version) for k in keys]`` in one call (the router's batch path).

        One state read for the batch; with a single segment and no pending drops (an aged
        store after compaction) each key costs only the segment's own lookup. O(len(keys) *
        a point read).
        """
        st = self._state
        if st is None:
            raise ClosedError(f"cold tier {self.path} is closed; open it again")
        keys = [k if type(k) is bytes else as_bytes(k) for k in keys]
        tv = st.by_table.get(table)
        if tv is None:
            return [None] * len(keys)
        out: list[bytes | None] = []
        append = out.append
        if len(tv.segs) == 1 and not tv.tdrops:
            lo_k, hi_k, vmin, _vmax, seg, tr = tv.segs[0]
            if vmin > version:
                return [None] * len(keys)
            lookup = seg.lookup
            for key in keys:
                r = lookup(tr, key, version, None) if lo_k <= key <= hi_k else None
                append(None if r is None else r[1].value(r[2]))
            return out
        find = self._find
        for key in keys:
            r = find(st, table, key, version)
            append(None if r is None else r[1].value(r[2]))
        return out

    def get_final(self, table: EntryKind, key: bytes, version: int, missing: Any) -> Any:
        """The value at ``version`` if cold alone proves it final, else ``missing``.

        Final: the newest version <= ``version`` that cold holds is followed, in the key's
        history, by a version above ``version`` that cold knows of (a newer entry in the same
        segment, or the successor demotion recorded for the key's newest entry there:
        FLAG_NEXTS). Then no tier can hold a version of the key in between (versions are
        committed in order, and demotion records the successor that existed when it moved the
        band), so the cascade would give the same answer. Returns the value, None for a
        tombstone, or ``missing`` (cold holds nothing <= ``version``, the key has pending
        drops, or the successor is unknown: old segments, "age" demotions, ``set``).
        Complexity as :meth:`lookup`.
        """
        st = self._state
        if st is None:
            raise ClosedError(f"cold tier {self.path} is closed; open it again")
        if type(key) is not bytes:
            key = as_bytes(key)
        tv = st.by_table.get(table)
        if tv is None:
            return missing
        tdrops = tv.tdrops
        if tdrops and key in tdrops:
            return missing
        best = None
        bestv = -1
        for lo_k, hi_k, vmin, vmax, seg, tr in tv.segs:
            if key < lo_k or key > hi_k or vmin > version or vmax <= bestv:
                continue
            r = seg.lookup_bounded(tr, key, version)
            if r is not None and r[0] > bestv:
                best = r
                bestv = r[0]
        if best is None or not best[3]:
            return missing
        return best[1].value(best[2])

    def get_final_many(self, table: EntryKind, keys: Sequence[bytes], version: int,
                       missing: Any) -> list[Any]:
        """``[get_final(table, k, version, missing) for k in keys]`` in one call (the router's
        batch path for old reads).

        One state read for the batch; a key that only one segment's key range covers (a
        demotion's segments cut the key space into ranges) costs that segment's lookup
        alone. O(len(keys) * a point read).
        """
        st = self._state
        if st is None:
            raise ClosedError(f"cold tier {self.path} is closed; open it again")
        tv = st.by_table.get(table)
        if tv is None:
            return [missing] * len(keys)
        tdrops = tv.tdrops
        segs = [row for row in tv.segs if row[2] <= version]  # vmin <= version
        get_final = self.get_final
        if len(segs) != 1 and not all(a[0] > b[1] for a, b in pairwise(segs)) \
                and not all(a[1] < b[0] for a, b in pairwise(segs)):
            return [get_final(table, k, version, missing) for k in keys]
        # Key ranges pairwise disjoint, in ascending or descending order of segments: each
        # key has at most one candidate segment.
        order = sorted(segs, key=lambda row: row[0])
        los = [row[0] for row in order]
        out: list[Any] = []
        append = out.append
        for key in keys:
            if type(key) is not bytes:
                key = as_bytes(key)
            if tdrops and key in tdrops:
                append(missing)
                continue
            n = bisect_right(los, key) - 1
            if n < 0:
                append(missing)
                continue
            _lo, hi_k, _vmin, _vmax, seg, tr = order[n]
            r = seg.lookup_bounded(tr, key, version) if key <= hi_k else None
            append(missing if r is None or not r[3] else r[1].value(r[2]))
        return out

    def contains(self, table: EntryKind, key: bytes, version: int) -> bool:
        return self.get(table, key, version) is not None

    def get_all_versions(self, table: EntryKind, key: bytes) -> list[tuple[int, bytes | None]]:
        """Every stored version of ``key``, newest first. O(S + versions)."""
        st = self._live()
        if type(key) is not bytes:
            key = as_bytes(key)
        tdrops = st.drops.keys.get(table)
        dv = tdrops.get(key) if tdrops else None
        cleared = st.drops.cleared.get(table, -1)
        found: dict[int, bytes | None] = {}
        for seg in st.segments:
            if seg.seq <= cleared:
                break
            tr = seg.tables.get(table)
            if tr is None or not seg.may_contain(tr, key):
                continue
            for v, val in seg.versions_of(tr, key, dv):
                if v not in found:  # newest segment first: the first copy wins
                    found[v] = val
        return sorted(found.items(), reverse=True)
