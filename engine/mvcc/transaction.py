"""Optimistic transactions with read-your-writes and serializable (or snapshot) isolation.

A transaction reads at the store version current when it began, buffers its writes, and at
commit is validated against every transaction that committed since (see
:mod:`engine.mvcc.oracle`). Under ``"serializable"`` (the default) it records the keys it
read and the ranges it scanned; under ``"snapshot"`` only write-write conflicts count.

Notes: thread safety
    A transaction object belongs to one thread at a time. Many transactions may run
    concurrently against one store.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Mapping
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from ..errors import InvalidKeyError, SavepointError, TransactionClosed, TransactionTooLarge
from ..types import Bound, EntryKind, RawEntry, as_bound, as_bytes
from .oracle import ReadRange, TableKey

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["Transaction", "Savepoint", "ISOLATION_LEVELS", "MAX_READ_RANGES"]

ISOLATION_LEVELS = ("serializable", "snapshot")
_ABSENT: Any = object()  # "no pending write" (None is a pending tombstone)
_BYTES_ONLY = {bytes}
_MIXED: Any = object()  # Transaction._table when writes went to several tables
MAX_READ_RANGES = 64  # beyond this a transaction is treated as having read everything


def check_table(table: object) -> EntryKind:
    if table.__class__ is not EntryKind:
        raise InvalidKeyError(
            f"table must be an EntryKind (EntryKind.MULTI, EntryKind.source(id), "
            f"EntryKind.operator(id)), got {type(table).__name__}")
    return table  # type: ignore[return-value]


def prefix_end(prefix: bytes) -> Bound:
    """The exclusive end bound of all keys starting with ``prefix``."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return Bound.UNBOUNDED
    p[-1] += 1
    return Bound.excluded(bytes(p))


def _tighter_low(a: Bound, b: Bound) -> Bound:
    if a.key is None:
        return b
    if b.key is None:
        return a
    if a.key != b.key:
        return a if a.key > b.key else b
    return b if a.inclusive else a


def _tighter_high(a: Bound, b: Bound) -> Bound:
    if a.key is None:
        return b
    if b.key is None:
        return a
    if a.key != b.key:
        return a if a.key < b.key else b
    return b if a.inclusive else a


def range_bounds(start: object, end: object, prefix: object) -> tuple[Bound, Bound]:
    """Normalise user range arguments: ``start`` inclusive, ``end`` exclusive, optional prefix.

    Each of ``start``/``end`` may also be a :class:`Bound` to choose inclusivity.
    """
    lo = as_bound(start, inclusive=True)
    hi = as_bound(end, inclusive=False)
    if prefix is not None:
        p = as_bytes(prefix, "prefix")
        lo = _tighter_low(lo, Bound.included(p))
        hi = _tighter_high(hi, prefix_end(p))
    return lo, hi


class Savepoint:
    """A point in a transaction's writes to roll back to (:meth:`Transaction.savepoint`).

    Holds a copy of the pending writes: O(writes) to take and to roll back to.
    """

    __slots__ = ("_tx", "_writes", "_bytes", "_drops", "_table")

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self._writes = dict(tx._writes)
        self._bytes = tx._bytes
        self._drops = len(tx._drops)
        self._table = tx._table

    def __repr__(self) -> str:
        return f"<Savepoint writes={len(self._writes)}>"


class Transaction:
    """A read-write transaction. Use as a context manager, or call commit()/rollback().

    Raises on misuse:
        TransactionClosed: any call after commit or rollback.
        InvalidKeyError: a table that is not an EntryKind, or a non-bytes key/value.
        TransactionTooLarge: over the store's entry or byte cap.
    """

    __slots__ = ("_store", "read_version", "isolation", "durability", "_writes", "_sorted",
                 "_reads", "_ranges", "_read_all", "_state", "_version", "_token", "_bytes", "_drops",
                 "_active", "_table", "_savepoints")

    def __init__(self, store: Store, read_version: int, isolation: str, durability: str | None,
                 token: int) -> None:
        self._store = store
        self.read_version = read_version
        self.isolation = isolation
        self.durability = durability
        self._writes: dict[TableKey, bytes | None] = {}
        self._sorted: dict[EntryKind, list[bytes]] | None = None
        self._reads: set[TableKey] = set()
        self._ranges: list[ReadRange] = []
        self._read_all = False
        self._state = "open"
        self._version: int | None = None
        self._token = token
        self._bytes = 0
        self._drops: list[tuple[EntryKind, bytes, int | None, int | None, bool]] = []
        self._active = 0
        # The one table every write so far went to (None: no write yet; _MIXED: several), so
        # a single-table commit builds its batch in C (store._commit).
        self._table: Any = None
        self._savepoints: list[Savepoint] = []  # active ones, oldest first

    # -- state -------------------------------------------------------------------------

    @property
    def version(self) -> int | None:
        """The commit version once committed (the read version for a read-only commit)."""
        return self._version

    @property
    def closed(self) -> bool:
        return self._state != "open"

    def _check_open(self) -> None:
        if self._state != "open":
            raise TransactionClosed(
                f"transaction already {self._state}; begin a new one with store.begin()")

    # -- writes ------------------------------------------------------------------------

    def _put(self, table: EntryKind, key: bytes, value: bytes | None) -> None:
        # The hot path of every write (inlined by design: each call and hash here is paid
        # per key). Validation happens before anything is stored (DESIGN.md section 5).
        if self._state != "open":
            self._check_open()
        if table.__class__ is not EntryKind:
            check_table(table)
        if type(key) is not bytes:
            key = as_bytes(key)
        tk = (table, key)
        writes = self._writes
        old = writes.get(tk, _ABSENT)
        size = len(key) + (len(value) if value is not None else 0)
        if old is _ABSENT:
            if len(writes) >= self._store.max_txn_entries:
                raise TransactionTooLarge(
                    f"transaction holds {len(writes)} writes, the cap is {self._store.max_txn_entries}; "
                    "split it into smaller transactions")
            if self._sorted is not None:
                self._sorted = None
        else:  # an overwrite replaces the old pending entry's bytes
            size -= len(key) + (len(old) if old is not None else 0)  # type: ignore[arg-type]
        total = self._bytes + size
        if total > self._store.max_txn_bytes:
            raise TransactionTooLarge(
                f"transaction would hold {total} bytes, the cap is "
                f"{self._store.max_txn_bytes}; split it into smaller transactions")
        writes[tk] = value
        self._bytes = total
        if table is not self._table:
            self._table = table if self._table is None else _MIXED

    def set(self, table: EntryKind, key: bytes, value: bytes) -> None:
        """Write ``value`` under ``key`` (visible to this transaction at once)."""
        # _put inlined for plain bytes (saves a call per write; bench_store commit)
        if type(value) is not bytes or type(key) is not bytes or self._state != "open" \
                or table.__class__ is not EntryKind:
            self._put(table, key, value if type(value) is bytes else as_bytes(value, "value"))
            return
        if table is not self._table:
            self._table = table if self._table is None else _MIXED
        tk = (table, key)
        writes = self._writes
        old = writes.get(tk, _ABSENT)
        if old is _ABSENT:
            if len(writes) >= self._store.max_txn_entries or self._sorted is not None:
                self._put(table, key, value)
                return
            total = self._bytes + len(key) + len(value)
        else:
            total = self._bytes + len(value) - (len(old) if old is not None else 0)
        if total > self._store.max_txn_bytes:
            self._put(table, key, value)  # raises TransactionTooLarge
            return
        writes[tk] = value
        self._bytes = total

    def set_many(self, table: EntryKind, items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]]) -> None:
        """Write many ``(key, value)`` pairs to ``table``: the same as calling :meth:`set` for
        each in order (a later pair for the same key wins), validated all before any is
        stored. ``items`` is a mapping or an iterable of pairs.

        Complexity: O(len(items)), with the per-pair work in C for ``bytes`` pairs (the
        batch fast path, like RocksDB's WriteBatch or LMDB's putmulti).

        Raises: InvalidKeyError (a bad table, key, value or pair), TransactionTooLarge,
            TransactionClosed. On any error no pair is stored.
        """
        if self._state != "open":
            self._check_open()
        t = check_table(table)
        try:
            pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
            if not pairs:
                return
            if set(map(len, pairs)) != {2}:
                raise ValueError("every item must be a (key, value) pair")
            keys, values = zip(*pairs)
            # Type checks in C: the set of the keys' (values') types must be {bytes}.
            if set(map(type, keys)) != _BYTES_ONLY or set(map(type, values)) != _BYTES_ONLY:
                keys = tuple(map(as_bytes, keys))
                values = tuple(as_bytes(v, "value") for v in values)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidKeyError):
                raise
            raise InvalidKeyError(
                f"set_many takes a mapping or an iterable of (key, value) pairs: {exc}") from None
        new = dict(zip(zip(repeat(t), keys), values))
        writes = self._writes
        size = sum(map(len, map(itemgetter(1), new))) + sum(map(len, new.values()))
        added = len(new)
        if writes:
            for tk in writes.keys() & new.keys():  # overwrites replace the old pending bytes
                old = writes[tk]
                size -= len(tk[1]) + (len(old) if old is not None else 0)
                added -= 1
        if len(writes) + added > self._store.max_txn_entries:
            raise TransactionTooLarge(
                f"transaction would hold {len(writes) + added} writes, the cap is "
                f"{self._store.max_txn_entries}; split it into smaller transactions")
        total = self._bytes + size
        if total > self._store.max_txn_bytes:
            raise TransactionTooLarge(
                f"transaction would hold {total} bytes, the cap is "
                f"{self._store.max_txn_bytes}; split it into smaller transactions")
        writes.update(new)
        self._bytes = total
        if added:
            self._sorted = None
        if t is not self._table:
            self._table = t if self._table is None else _MIXED

    def remove(self, table: EntryKind, key: bytes) -> None:
        """Delete ``key`` (a tombstone at commit)."""
        self._put(table, key, None)

    def drop(self, table: EntryKind, key: bytes, up_to_version: int | None = None,
             keep_last_versions: int | None = None, *, force: bool = False) -> None:
        """Physically remove old versions of ``key`` when this transaction commits.

        A version is removed when **both** hold: ``version < up_to_version`` and its
        newest-first position is ``>= keep_last_versions`` (an unset condition holds). Versions
        a retained read point needs (history floor, pins, open snapshots) are kept unless
        ``force=True``. Drops write no tombstone and produce no change record.
        """
        self._check_open()
        t = check_table(table)
        k = key if type(key) is bytes else as_bytes(key)
        for name, val in (("up_to_version", up_to_version), ("keep_last_versions", keep_last_versions)):
            if val is not None and (isinstance(val, bool) or not isinstance(val, int) or val < 0):
                raise ValueError(f"{name} must be an int >= 0 or None, got {val!r}")
        self._drops.append((t, k, up_to_version, keep_last_versions, bool(force)))

    # -- savepoints -------------------------------------------------------------------

    def savepoint(self) -> Savepoint:
        """Mark the current writes; :meth:`rollback_to` returns to them. Savepoints nest.

        Complexity: O(pending writes) (the mark is a copy). Raises: TransactionClosed.
        """
        self._check_open()
        sp = Savepoint(self)
        self._savepoints.append(sp)
        return sp

    def _index(self, sp: object) -> int:
        self._check_open()
        if not isinstance(sp, Savepoint) or sp._tx is not self:
            raise SavepointError("not a savepoint of this transaction; use one returned by "
                                 "this transaction's savepoint()")
        for i in range(len(self._savepoints) - 1, -1, -1):
            if self._savepoints[i] is sp:
                return i
        raise SavepointError("savepoint already released (or rolled back past); take a new "
                             "one with tx.savepoint()")

    def rollback_to(self, sp: Savepoint) -> None:
        """Discard every write and drop made since ``sp`` (reads, ranges and the write set
        follow); ``sp`` stays usable, savepoints taken after it are released.

        Reads made since ``sp`` still count for conflict detection (serializable): they
        were made, and forgetting them could only hide a conflict.

        Raises: SavepointError (another transaction's, or a released one), TransactionClosed.
        """
        i = self._index(sp)
        del self._savepoints[i + 1:]
        self._writes = dict(sp._writes)
        self._bytes = sp._bytes
        del self._drops[sp._drops:]
        self._table = sp._table
        self._sorted = None

    def release(self, sp: Savepoint) -> None:
        """Forget ``sp`` and every savepoint taken after it; the writes stay.

        Raises: SavepointError (another transaction's, or a released one), TransactionClosed.
        """
        i = self._index(sp)
        del self._savepoints[i:]

    # -- reads -------------------------------------------------------------------------

    def get(self, table: EntryKind, key: bytes) -> bytes | None:
        """Read ``key``: this transaction's own write if any, else as of the read version."""
        self._check_open()
        t = check_table(table)
        k = key if type(key) is bytes else as_bytes(key)
        tk = (t, k)
        if tk in self._writes:
            return self._writes[tk]
        if self.isolation == "serializable":
            self._reads.add(tk)
        entry = self._store._lookup(t, k, self.read_version)
        return None if entry is None else entry.value

    def contains(self, table: EntryKind, key: bytes) -> bool:
        return self.get(table, key) is not None

    def range(self, table: EntryKind, start: Any = None, end: Any = None,
              reverse: bool = False, *, prefix: Any = None) -> Iterator[tuple[bytes, bytes]]:
        """Iterate ``(key, value)`` in ``[start, end)`` merged with this transaction's writes.

        ``start``/``end`` are keys (start inclusive, end exclusive) or :class:`Bound`.
        The whole range counts as read for conflict detection.
        """
        self._check_open()
        t = check_table(table)
        lo, hi = range_bounds(start, end, prefix)
        if self.isolation == "serializable":
            if len(self._ranges) >= MAX_READ_RANGES:
                self._read_all = True
            else:
                self._ranges.append(ReadRange(t, lo, hi))
        return self._merge_range(t, lo, hi, reverse)

    def _pending_keys(self, table: EntryKind, lo: Bound, hi: Bound, reverse: bool) -> list[bytes]:
        if self._sorted is None:
            by: dict[EntryKind, list[bytes]] = {}
            for (tb, k) in self._writes:
                by.setdefault(tb, []).append(k)
            for ks in by.values():
                ks.sort()
            self._sorted = by
        ks = self._sorted.get(table, [])
        i = 0 if lo.key is None else (bisect_left(ks, lo.key) if lo.inclusive else bisect_right(ks, lo.key))
        j = len(ks) if hi.key is None else (bisect_right(ks, hi.key) if hi.inclusive else bisect_left(ks, hi.key))
        out = ks[i:j] if i < j else []
        return out[::-1] if reverse else out

    def _merge_range(self, table: EntryKind, lo: Bound, hi: Bound,
                     reverse: bool) -> Iterator[tuple[bytes, bytes]]:
        pend = self._pending_keys(table, lo, hi, reverse)
        writes = dict(self._writes)  # a snapshot: later writes do not disturb this iterator
        stored: Iterator[RawEntry] = self._store._scan(table, lo, hi, self.read_version, reverse)
        i = 0
        n = len(pend)
        for e in stored:
            k = e.key
            while i < n and (pend[i] > k if reverse else pend[i] < k):
                v = writes[(table, pend[i])]
                if v is not None:
                    yield pend[i], v
                i += 1
            if i < n and pend[i] == k:
                v = writes[(table, k)]
                i += 1
                if v is not None:
                    yield k, v
                continue
            if e.value is not None:
                yield k, e.value
        while i < n:
            v = writes[(table, pend[i])]
            if v is not None:
                yield pend[i], v
            i += 1

    # -- finish ------------------------------------------------------------------------

    def commit(self) -> int:
        """Validate and commit; return the commit version.

        Raises:
            ConflictError / TransactionTooOld: a concurrent commit invalidated this one.
            StorageIOError: the commit-log write failed; the commit is not applied. (When only
                the fsync of a ``"sync"`` commit fails, the commit is applied but may not be
                durable, and the store refuses further commits until reopened.)
        """
        self._check_open()
        try:
            self._version = self._store._commit(self)
            self._state = "committed"
        except BaseException:
            self._state = "rolled back"
            raise
        finally:
            self._release()
        return self._version

    def rollback(self) -> None:
        """Discard every pending write (idempotent after the first call is not allowed)."""
        self._check_open()
        self._state = "rolled back"
        self._writes.clear()
        self._release()

    def _release(self) -> None:
        if self._token:
            self._store._readpoints.release(self._token)
            self._token = 0
        if self._active:
            self._store._active_txns.release(self._active)
            self._active = 0

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._state != "open":
            return
        if exc_type is None:
            self.commit()
        else:
            self.rollback()

    def __del__(self) -> None:
        try:
            self._release()
        except (AttributeError, TypeError):  # interpreter shutdown: the registry may be gone
            pass

    def __repr__(self) -> str:
        return (f"<Transaction {self._state} read_version={self.read_version} "
                f"writes={len(self._writes)} isolation={self.isolation}>")
