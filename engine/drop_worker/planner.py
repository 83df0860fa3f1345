"""Deciding which stored versions may be removed (DESIGN.md invariant 4).

A version ``x`` of a key whose next newer version is ``y`` (or none) is needed by a read
point ``r`` exactly when ``x <= r < y``. Retained read points are every version >= the
history floor, every pinned version and every open snapshot or transaction. ``x`` may be
removed only when no retained read point lies in ``[x, y)``. The newest version is always
needed (the latest read point lies above it).

A tombstone with nothing older beneath it in any tier reads exactly like "absent", but it is
also the record that the key was deleted at that version, and ``store.history()`` is an
audit trail of the retained window. So GC removes such a bottom tombstone only once it lies
below the history floor: never under keep-everything retention (floor 0), and under a finite
retention as soon as the floor passes it. An explicit ``tx.drop`` that makes it a candidate
removes it at once: the caller asked to edit the history.

Everything here is pure: callers pass the versions of one key, newest first.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = ["ReadPointSet", "removable_versions", "explicit_drop_candidates"]


@dataclass(frozen=True)
class ReadPointSet:
    """The retained read points at one moment: ``floor`` and above, plus ``extra`` (sorted)."""

    floor: int
    extra: tuple[int, ...] = ()

    @classmethod
    def of(cls, floor: int, extra: Iterable[int]) -> ReadPointSet:
        return cls(floor, tuple(sorted(v for v in set(extra) if v < floor)))

    def any_in(self, lo: int, hi: int | None) -> bool:
        """Is some retained read point r with ``lo <= r < hi`` (``hi=None``: unbounded)?"""
        if hi is None:
            return True  # the latest version is always a read point
        if hi > self.floor and max(lo, self.floor) < hi:
            return True
        i = bisect_left(self.extra, lo)
        return i < len(self.extra) and self.extra[i] < hi


def removable_versions(versions: Sequence[tuple[int, bool]], points: ReadPointSet,
                       candidates: set[int] | None = None) -> set[int]:
    """Versions of one key that may be removed.

    Args:
        versions: ``(version, is_tombstone)`` of every stored version, newest first.
        points: the retained read points.
        candidates: if given, only these versions may be removed (the explicit-drop AND rule);
            otherwise every version is a candidate.

    Complexity: O(n log p) for n versions and p extra read points.
    """
    remove: set[int] = set()
    kept: list[tuple[int, bool]] = []
    newer: int | None = None
    for v, tomb in versions:
        if (candidates is None or v in candidates) and not points.any_in(v, newer):
            remove.add(v)
        else:
            kept.append((v, tomb))
        newer = v
    # A tombstone with nothing beneath it answers reads exactly like "absent". GC removes it
    # once it is below the floor (no longer part of the retained history); an explicit drop
    # that names it removes it at once (the caller asked to edit the history).
    while kept and kept[-1][1] and (kept[-1][0] in candidates if candidates is not None
                                    else kept[-1][0] < points.floor):
        remove.add(kept.pop()[0])
    return remove


def explicit_drop_candidates(versions: Sequence[int], up_to_version: int | None,
                             keep_last_versions: int | None) -> set[int]:
    """The reference system's drop rule: a version is a candidate when **both** hold:
    ``version < up_to_version`` and its newest-first position is ``>= keep_last_versions``.
    An unset condition always holds. ``versions`` is newest first."""
    out: set[int] = set()
    for pos, v in enumerate(versions):
        if up_to_version is not None and not v < up_to_version:
            continue
        if keep_last_versions is not None and pos < keep_last_versions:
            continue
        out.add(v)
    return out
