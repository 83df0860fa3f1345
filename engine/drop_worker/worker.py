"""The drop worker: finds droppable versions and removes them, on demand or in the background.

Candidates are tracked as commits supersede versions (every written key becomes a
candidate), so a pass looks only at keys that changed since the last pass; the first pass
after opening a store scans every key once, because candidates are not persisted.
Removal goes through :meth:`TierStorage.drop` in every tier that holds the version (hot and
warm delete at once; cold records a durable drop and applies it physically at compaction),
in bounded batches, under the mover's lock so a version never moves while it is being
dropped. The commit lock is never taken.

Notes: thread safety
    :meth:`note_commit` may be called from any committing thread; passes are serialised.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from ..background import Background
from ..tiers.base import TierStorage
from ..types import EntryKind
from .planner import ReadPointSet, explicit_drop_candidates, removable_versions

__all__ = ["DropWorker"]


PASS_BATCH_KEYS = 1024
MAX_DUTY = 0.08  # the background worker spends at most this share of wall time in passes
MAX_TRACKED_CANDIDATES = 2_000_000


class DropWorker:
    """Garbage collection of old versions for one store (see module docstring)."""

    def __init__(self, tiers: list[TierStorage], move_lock: threading.Lock,
                 read_points: Callable[[], ReadPointSet], interval: float = 10.0) -> None:
        self.tiers = tiers
        self._move_lock = move_lock
        self._read_points = read_points
        self._lock = threading.Lock()
        self._pass_lock = threading.Lock()
        self._candidates: set[tuple[EntryKind, bytes]] = set()
        # Keys that kept superseded versions only because the floor had not passed them yet
        # (a heap of (floor at which to look again, table, key)) or because a pin or open
        # snapshot needed them (looked at again whenever those read points change).
        self._parked_floor: list[tuple[int, EntryKind, bytes]] = []
        self._parked_extra: set[tuple[EntryKind, bytes]] = set()
        self._last_extra: tuple[int, ...] = ()
        self._full_scan = True
        self._interval = interval
        self.counters: dict[str, Any] = {"passes": 0, "removed_versions": 0, "removed_bytes": 0,
                                         "background_errors": 0, "last_error": None}
        self._next_pause = interval
        self._loop = Background("tierdb-gc", self._tick, interval or 1.0, self.counters)

    # -- candidates --------------------------------------------------------------------

    def note_commit(self, keys: Iterable[tuple[EntryKind, bytes]]) -> None:
        """Remember the ``(table, key)`` pairs a commit wrote: older versions may now go.

        O(writes), one C-level set update (it runs on every commit).
        """
        with self._lock:
            if self._full_scan:
                return
            cands = self._candidates
            cands.update(keys)
            if len(cands) > MAX_TRACKED_CANDIDATES:
                cands.clear()
                self._full_scan = True  # cheaper to rescan than to track without bound

    def pending(self) -> int:
        with self._lock:
            return len(self._candidates)

    def _take_candidates(self, points: ReadPointSet) -> tuple[bool, set[tuple[EntryKind, bytes]]]:
        with self._lock:
            full, cands = self._full_scan, self._candidates
            self._full_scan, self._candidates = False, set()
        if full:
            self._parked_floor, self._parked_extra = [], set()
            return full, cands
        heap = self._parked_floor
        while heap and heap[0][0] <= points.floor:
            _, table, key = heapq.heappop(heap)
            cands.add((table, key))
        if points.extra != self._last_extra:
            cands.update(self._parked_extra)
            self._parked_extra = set()
        return full, cands

    def _all_keys(self) -> Iterator[tuple[EntryKind, bytes]]:
        tables: set[EntryKind] = set()
        for t in self.tiers:
            tables.update(t.tables())
        for table in sorted(tables):
            seen: set[bytes] = set()
            for t in self.tiers:
                last = None
                for e in t.iter_versions(table):
                    if e.key != last and e.key not in seen:
                        seen.add(e.key)
                        yield table, e.key
                    last = e.key

    # -- one pass ----------------------------------------------------------------------

    def run_pass(self, progress: Callable[[int, int | None], None] | None = None) -> dict[str, Any]:
        """Remove every version no retained read point needs among the candidate keys.

        Returns ``{"removed_versions", "removed_bytes": {tier: bytes}, "keys_examined"}``.
        """
        with self._pass_lock:
            points = self._read_points()
            if points.floor == 0:
                # Every version >= 0 is a retained read point (keep-everything retention, or a
                # finite one that has not started to trim): nothing is removable, so do not
                # read every key to find that out. Candidates stay for a later pass.
                return {"removed_versions": 0, "removed_bytes": {t.name: 0 for t in self.tiers},
                        "keys_examined": 0, "floor": 0}
            full, cands = self._take_candidates(points)
            self._last_extra = points.extra
            if full:
                keys: Iterable[tuple[EntryKind, bytes]] = self._all_keys()
                total = None
            else:
                keys = sorted(cands)
                total = len(keys)
            removed = 0
            by_tier: dict[str, int] = {t.name: 0 for t in self.tiers}
            examined = 0
            try:
                batch: list[tuple[EntryKind, bytes]] = []
                for tk in keys:
                    batch.append(tk)
                    if len(batch) >= PASS_BATCH_KEYS:
                        removed += self._drop_keys(batch, points, None, by_tier)
                        examined += len(batch)
                        batch = []
                        if progress:
                            progress(examined, total)
                if batch:
                    removed += self._drop_keys(batch, points, None, by_tier)
                    examined += len(batch)
                    if progress:
                        progress(examined, total)
            except BaseException:
                with self._lock:
                    self._full_scan = True  # unfinished: look at everything next time
                raise
            self.counters["passes"] += 1
            self.counters["removed_versions"] += removed
            self.counters["removed_bytes"] += sum(by_tier.values())
            return {"removed_versions": removed, "removed_bytes": by_tier, "keys_examined": examined,
                    "floor": points.floor}

    def drop_explicit(self, requests: Sequence[tuple[EntryKind, bytes, int | None, int | None, bool]],
                      points: ReadPointSet | None = None) -> int:
        """Apply ``tx.drop`` requests: (table, key, up_to_version, keep_last_versions, force)."""
        if not requests:
            return 0
        if points is None:
            points = self._read_points()
        by_tier: dict[str, int] = {t.name: 0 for t in self.tiers}
        removed = 0
        with self._pass_lock:
            for table, key, up_to, keep, force in requests:
                rule = (up_to, keep, force)
                removed += self._drop_keys([(table, key)], points, rule, by_tier)
        self.counters["removed_versions"] += removed
        self.counters["removed_bytes"] += sum(by_tier.values())
        return removed

    def _drop_keys(self, keys: list[tuple[EntryKind, bytes]], points: ReadPointSet,
                   rule: tuple[int | None, int | None, bool] | None, by_tier: dict[str, int]) -> int:
        removed = 0
        with self._move_lock:
            per_tier: list[dict[EntryKind, list[tuple[bytes, int]]]] = [{} for _ in self.tiers]
            for table, key in keys:
                held = [t.get_all_versions(table, key) for t in self.tiers]
                merged: dict[int, bool] = {}
                for rows in held:
                    for v, val in rows:
                        merged.setdefault(v, val is None)
                if not merged:
                    continue
                versions = sorted(merged.items(), reverse=True)
                if rule is None:
                    if len(versions) == 1 and not versions[0][1]:
                        continue  # a single live version is always needed
                    gone = removable_versions(versions, points)
                    self._park(table, key, [vt for vt in versions if vt[0] not in gone], points)
                else:
                    up_to, keep, force = rule
                    cands = explicit_drop_candidates([v for v, _ in versions], up_to, keep)
                    if force:
                        gone = cands
                    else:
                        gone = removable_versions(versions, points, cands)
                if not gone:
                    continue
                removed += len(gone)
                for i, rows in enumerate(held):
                    mine = [(key, v) for v, val in rows if v in gone]
                    if mine:
                        per_tier[i].setdefault(table, []).extend(mine)
                        by_tier[self.tiers[i].name] += sum(
                            len(key) + (len(val) if val is not None else 0) for v, val in rows if v in gone)
            for tier, drops in zip(self.tiers, per_tier):
                if drops:
                    tier.drop(drops)
        return removed

    def _park(self, table: EntryKind, key: bytes, kept: list[tuple[int, bool]],
              points: ReadPointSet) -> None:
        """Remember when a key with kept versions that may go later is worth another look.

        ``kept``: the ``(version, is_tombstone)`` pairs the pass kept, newest first.
        """
        # A superseded version x goes once no read point lies in [x, y): look again when the
        # floor reaches the smallest "next newer" y. A bottom tombstone t goes once the floor
        # passes it (t + 1).
        ys = [kept[i - 1][0] for i in range(1, len(kept))]
        if kept and kept[-1][1]:
            ys.append(kept[-1][0] + 1)
        if not ys:
            return
        threshold = min(ys)
        if threshold <= points.floor:
            self._parked_extra.add((table, key))  # only a pin or snapshot keeps it
        else:
            heapq.heappush(self._parked_floor, (threshold, table, key))

    # -- background --------------------------------------------------------------------

    def start(self) -> None:
        if self._interval > 0:
            self._loop.start()

    def kick(self) -> None:
        self._loop.kick()

    def _tick(self) -> float:
        started = time.monotonic()
        try:
            self.run_pass()
        finally:
            # GC is Python work that shares the interpreter lock with committers: cap it at
            # MAX_DUTY of wall time so it cannot starve them (benches/bench_gc.py).
            spent = time.monotonic() - started
            self._next_pause = max(self._interval, spent * (1 - MAX_DUTY) / MAX_DUTY)
        return self._next_pause

    def stop(self) -> None:
        self._loop.stop()
