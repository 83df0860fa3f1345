"""The version oracle: allocates commit versions and detects conflicts (optimistic, backward).

A committing transaction is checked against every transaction that committed after its read
version. Each committed transaction leaves a record ``(version, write keys)`` in a bounded
window; a per-key "last written at" map answers point checks in O(1); range reads are
checked against the write keys of the records newer than the reader.

Conflict rules (serializable): a record newer than the reader conflicts when it wrote a key
the reader read, a key inside a range the reader scanned, or a key the reader writes.
Under ``isolation="snapshot"`` only the last (write-write) rule applies.

Notes: thread safety
    Not thread-safe by itself: the store calls :meth:`check` and :meth:`register` under its
    commit lock, so the check, the version allocation and the registration are one step
    (the lost-update lesson of the reference system).
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConflictError, TransactionTooOld
from ..types import Bound, EntryKind

__all__ = ["Oracle", "ReadRange", "TableKey"]

TableKey = tuple[EntryKind, bytes]


@dataclass(frozen=True, slots=True)
class ReadRange:
    """A range a transaction scanned (``None`` bounds are open)."""

    table: EntryKind
    start: Bound
    end: Bound

    def covers(self, table: EntryKind, key: bytes) -> bool:
        return table == self.table and self.start.admits_low(key) and self.end.admits_high(key)


class Oracle:
    """Version counter plus a bounded window of recently committed write sets.

    Args:
        next_version: the first version :meth:`allocate` returns.
        window_commits: how many committed write sets are kept for conflict checks; a
            transaction whose read version is older than the oldest kept record fails with
            :class:`TransactionTooOld`.
        window_keys: cap on the total keys held in the window (large commits evict sooner).

    Complexity: point checks O(|reads| + |writes|); range checks O(newer commits' writes).
    """

    def __init__(self, next_version: int = 1, *, window_commits: int = 10_000,
                 window_keys: int = 1_000_000) -> None:
        self._next = next_version
        self._records: deque[tuple[int, frozenset[TableKey]]] = deque()
        self._last_write: dict[TableKey, int] = {}
        self._window_commits = window_commits
        self._window_keys = window_keys
        self._held_keys = 0
        # Every commit with version <= _floor has been evicted (or predates this process).
        self._floor = next_version - 1

    @classmethod
    def overlay(cls, next_version: int) -> Oracle:
        """An empty, unbounded oracle numbering from ``next_version`` that can check readers
        of any version (no floor): it checks a group of commits against each other before
        any of them is registered in the store's oracle (grouped replication publishing)."""
        o = cls(next_version, window_commits=sys.maxsize, window_keys=sys.maxsize)
        o._floor = 0
        return o

    @property
    def next_version(self) -> int:
        return self._next

    @property
    def window_floor(self) -> int:
        """Readers at versions below this can no longer be checked: they are too old."""
        return self._floor

    def check(self, read_version: int, writes: Iterable[TableKey], reads: Iterable[TableKey],
              ranges: list[ReadRange], read_all: bool, serializable: bool) -> None:
        """Raise ConflictError if a commit newer than ``read_version`` invalidates the txn."""
        if read_version >= self._next - 1:
            return  # nothing committed since the reader started
        if read_version < self._floor:
            raise TransactionTooOld(
                f"transaction read version {read_version} is older than the conflict window "
                f"(which starts after version {self._floor}); retry the transaction"
            )
        last = self._last_write
        for tk in writes:
            if last.get(tk, 0) > read_version:
                raise ConflictError(
                    f"write-write conflict on {tk[0]} key {tk[1]!r}: a concurrent transaction "
                    f"committed it at version {last[tk]}; retry the transaction",
                    table=tk[0], key=tk[1])
        if not serializable:
            return
        for tk in reads:
            if last.get(tk, 0) > read_version:
                raise ConflictError(
                    f"read-write conflict on {tk[0]} key {tk[1]!r}: it changed at version "
                    f"{last[tk]} after this transaction read it; retry the transaction",
                    table=tk[0], key=tk[1])
        if not ranges and not read_all:
            return
        for version, keys in reversed(self._records):
            if version <= read_version:
                break
            if read_all and keys:
                raise ConflictError(
                    f"this transaction scanned everything and version {version} wrote since; "
                    "retry the transaction")
            for tk in keys:
                for r in ranges:
                    if r.covers(tk[0], tk[1]):
                        raise ConflictError(
                            f"phantom: version {version} wrote {tk[0]} key {tk[1]!r} inside a "
                            "range this transaction scanned; retry the transaction",
                            table=tk[0], key=tk[1])

    def allocate(self) -> int:
        """Return the next commit version (call only after :meth:`check` passed)."""
        v = self._next
        self._next = v + 1
        return v

    def register(self, version: int, writes: frozenset[TableKey],
                 oldest_active: int | None = None) -> None:
        """Record a committed write set and evict records no open transaction can need.

        ``oldest_active`` is the lowest read version among the *other* open transactions
        (None: there are none). A record at version r is needed only by transactions reading
        below r; a transaction that has not registered yet reads at >= ``version - 1``. So
        records <= min(oldest_active, version - 1) go at once, which bounds the window by
        concurrency rather than by history; the ``window_commits``/``window_keys`` caps
        still apply to long-running transactions (which then get TransactionTooOld).
        """
        horizon = version - 1 if oldest_active is None else min(oldest_active, version - 1)
        last = self._last_write
        records = self._records
        if records and records[-1][0] <= horizon:
            # Every record goes (the common case with few concurrent transactions): clear in
            # bulk instead of re-hashing each key; every entry of _last_write belongs to a record.
            records.clear()
            last.clear()
            self._held_keys = 0
        while records and records[0][0] <= horizon:
            old_version, old_keys = records.popleft()
            self._held_keys -= len(old_keys)
            for tk in old_keys:
                if last.get(tk) == old_version:
                    del last[tk]
        if writes:
            self._records.append((version, writes))
            # dict.fromkeys/update reuse the set's stored hashes (a key hash costs a Python
            # call for EntryKind); bench_store commit.
            last.update(dict.fromkeys(writes, version))
            self._held_keys += len(writes)
        while self._records and (len(self._records) > self._window_commits
                                 or self._held_keys > self._window_keys):
            # Capacity eviction: an open transaction may still need this record, so it
            # raises the floor below which transactions are too old to check.
            old_version, old_keys = self._records.popleft()
            self._held_keys -= len(old_keys)
            for tk in old_keys:
                if last.get(tk) == old_version:
                    del last[tk]
            self._floor = old_version

    def advance_to(self, next_version: int) -> None:
        """Skip versions (used on recovery so new commits land above recovered ones)."""
        if next_version > self._next:
            self._next = next_version
            self._floor = max(self._floor, next_version - 1)
