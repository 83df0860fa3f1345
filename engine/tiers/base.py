"""The tier contract: a minimal multi-version bytes store that takes the version as an argument.

Every tier (hot, warm, cold) implements :class:`TierStorage`. A tier knows nothing of MVCC,
routing or other tiers: it stores ``(table, key, version) -> value | tombstone`` and answers
"the newest version <= v". The store layer owns visibility, conflicts and movement.

Beyond DESIGN.md section 3, the protocol has three maintenance methods that movement,
garbage collection and ``check()`` need: :meth:`TierStorage.tables`,
:meth:`TierStorage.iter_versions` and :meth:`TierStorage.check`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..types import Bound, EntryKind, RangeBatch, RangeCursor, RawEntry

__all__ = ["TierStorage", "SetBatches", "DropBatches", "DEFAULT_BATCH_SIZE", "BOTTOM_ONLY",
           "finish_page"]

SetBatches = Mapping[EntryKind, Sequence[tuple[bytes, "bytes | None"]]]
DropBatches = Mapping[EntryKind, Sequence[tuple[bytes, int]]]

DEFAULT_BATCH_SIZE = 1024

# A three-way point read's answer (``get_or``) meaning "no version <= the read version here,
# and none in any tier between this one and the bottom one either": the read cascade goes
# straight to the bottom tier. Only the hot tier gives it (see HotTier.settled_through).
BOTTOM_ONLY: Any = type("BottomOnly", (), {"__repr__": lambda self: "BOTTOM_ONLY"})()


def finish_page(cursor: RangeCursor, rows: list[RawEntry], has_more: bool) -> RangeBatch:
    """The paging contract every tier shares: advance ``cursor`` past ``rows`` and mark it
    exhausted when nothing is left. O(1)."""
    if rows:
        cursor.last_key = rows[-1][0]  # a RawEntry or a (key, value) pair: the key comes first
    if not has_more:
        cursor.exhausted = True
    return RangeBatch(rows, has_more)


@runtime_checkable
class TierStorage(Protocol):
    """A multi-version key-value tier.

    Versions are ints >= 0. ``set`` calls may arrive out of version order. A tier answers
    any read version, including ones above everything it holds.

    Notes: thread safety
        Implementations allow concurrent readers alongside one writer at a time
        (the store serialises ``set``/``drop``/``clear_table`` per tier).
    """

    name: str

    def get(self, table: EntryKind, key: bytes, version: int) -> bytes | None:
        """Value of the newest version <= ``version``; None for a tombstone or no version."""
        ...

    def lookup(self, table: EntryKind, key: bytes, version: int) -> RawEntry | None:
        """The newest stored version <= ``version`` (tombstones included); None = not found."""
        ...

    def contains(self, table: EntryKind, key: bytes, version: int) -> bool:
        """``get(...) is not None``."""
        ...

    def set(self, version: int, batches: SetBatches) -> None:
        """Write every table's ``(key, value | None)`` pairs at ``version``, atomically."""
        ...

    def range_next(
        self,
        table: EntryKind,
        cursor: RangeCursor,
        start: Bound,
        end: Bound,
        version: int,
        batch_size: int,
    ) -> RangeBatch:
        """Next <= ``batch_size`` keys ascending, each at its newest version <= ``version``.

        Tombstones are included (``value=None``). Advances ``cursor.last_key``; sets
        ``cursor.exhausted`` when nothing is left.
        """
        ...

    def range_rev_next(
        self,
        table: EntryKind,
        cursor: RangeCursor,
        start: Bound,
        end: Bound,
        version: int,
        batch_size: int,
    ) -> RangeBatch:
        """As :meth:`range_next`, in descending key order."""
        ...

    def ensure_table(self, table: EntryKind) -> None:
        """Create ``table`` if missing."""
        ...

    def clear_table(self, table: EntryKind) -> None:
        """Delete every entry of ``table``."""
        ...

    def drop(self, batches: DropBatches) -> None:
        """Physically remove exactly the listed ``(key, version)`` pairs (no tombstones)."""
        ...

    def get_all_versions(self, table: EntryKind, key: bytes) -> list[tuple[int, bytes | None]]:
        """Every stored version of ``key``, newest first."""
        ...

    def tables(self) -> list[EntryKind]:
        """Every table this tier holds, sorted."""
        ...

    def iter_versions(
        self, table: EntryKind, start: bytes | None = None
    ) -> Iterator[RawEntry]:
        """Every stored version of ``table`` in (key ascending, version descending) order.

        Starts at the first key >= ``start``. Used by movement, GC and checks; it need not
        be a consistent snapshot against concurrent writes.
        """
        ...

    def check(self) -> None:
        """Verify internal invariants (and checksums where the tier persists data).

        Raises CorruptionError on a violation.
        """
        ...

    def stats(self) -> dict[str, Any]:
        """Counts and bytes: at least ``keys``, ``versions``, ``bytes``, ``tables``."""
        ...

    def close(self) -> None:
        """Release resources. Further calls raise ClosedError."""
        ...
