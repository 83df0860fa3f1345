"""Shared machinery of every view: options, buffering cadence, flush = one commit.

A view buffers accepted writes in memory (already encoded, so a bad value is refused at
``save`` time and never poisons the buffer). A flush *takes* the buffer, turns it into
key writes inside one store transaction, and commits: one flush, one store version.
:func:`flush_together` does the same for several views in one transaction.

The write trigger (spec 3.2): an accepted write of ``n`` items adds ``n`` to a counter;
the view flushes at once when ``compact_every`` is set and the counter crossed a
multiple of it, or when the view is write-through (``debounce_ms`` is ``None`` or
``0``). There are no timers: ``debounce_ms > 0`` is a mode switch, not a delay.

Failed flush (spec 3.6, 5.4): nothing was written (one commit), so the taken data goes
back into the buffer ahead of anything buffered since, unless :meth:`rollback` ran in
the meantime (its epoch changed), in which case the taken data is dropped.

Notes: thread safety. A view guards its buffer with a re-entrant lock, so ``save`` /
``flush`` / ``rollback`` may be called from several threads; the store serializes
commits. The lock is never held while committing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, TypedDict

from ..errors import (
    CorruptionError,
    EngineError,
    FutureVersionError,
    HistoryUnavailable,
    TransactionClosed,
)
from ..types import EntryKind, check_version
from .codec import JSON_CODEC, Codec
from .errors import BackendError, BackendNoListSupport, StorageError
from .keys import decode_view_key, encode_view_key, keyspace_prefix
from .protocols import StoreLike

__all__ = [
    "DEFAULT_TABLE",
    "ViewBase",
    "ViewOptions",
    "abandon_transaction",
    "flush_together",
    "prefix_end",
]

DEFAULT_TABLE: EntryKind = EntryKind.MULTI
"""The table views live in unless told otherwise (keyspaces keep them apart)."""

Ops = dict[bytes, "bytes | None"]
"""Physical writes of one flush: key -> value, ``None`` = remove (tombstone)."""


class ViewOptions(TypedDict, total=False):
    """The keyword options every view takes (validated by :class:`ViewBase`).

    View classes and their factories accept these as ``**options: Unpack[ViewOptions]``
    and hand them on unchanged, so the option set is spelled out once, here and in
    :meth:`ViewBase.__init__`. See :func:`~engine.views.snapshot.snapshot_storage`.
    """

    table: EntryKind | None
    keyspace: str | None
    codec: Codec | None
    debounce_ms: float | None
    compact_every: int | None


def prefix_end(prefix: bytes) -> bytes | None:
    """Smallest key above every key starting with ``prefix`` (``None``: no upper bound)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _check_name(name: object, what: str = "name") -> str:
    if not isinstance(name, str):
        raise TypeError(f"view {what} must be a str, got {type(name).__name__}")
    if not name:
        raise ValueError(f"view {what} must not be empty")
    return name


def _check_debounce(debounce_ms: object) -> float | None:
    if debounce_ms is None:
        return None
    if isinstance(debounce_ms, bool) or not isinstance(debounce_ms, (int, float)):
        raise TypeError(f"debounce_ms must be None or a number, got {type(debounce_ms).__name__}")
    if not debounce_ms >= 0:  # also refuses NaN
        raise ValueError(f"debounce_ms must be None or >= 0, got {debounce_ms!r}")
    return debounce_ms


def _check_compact_every(compact_every: object) -> int | None:
    if compact_every is None:
        return None
    if isinstance(compact_every, bool) or not isinstance(compact_every, int):
        raise TypeError(f"compact_every must be None or an int, got {type(compact_every).__name__}")
    if compact_every <= 0:
        raise ValueError(
            f"compact_every must be None or a positive int, got {compact_every} "
            "(0 would flush on no write at all; use None to disable the cadence)"
        )
    return compact_every


def check_read_version(version: object) -> int | None:
    """Validate a ``version=`` argument (``None`` = latest)."""
    if version is None:
        return None
    return check_version(version)


@contextmanager
def translate_errors(what: str, *, explicit_version: bool = False) -> Iterator[None]:
    """Re-raise engine errors as :class:`BackendError` (spec 2, "Engine errors").

    ``FutureVersionError`` / ``HistoryUnavailable`` propagate unchanged when the caller
    passed ``version=`` explicitly: they answer the caller's own question.
    """
    try:
        yield
    except StorageError:
        raise
    except (FutureVersionError, HistoryUnavailable):
        if explicit_version:
            raise
        raise_backend_error(what)
    except EngineError:
        raise_backend_error(what)


def raise_backend_error(what: str) -> None:
    """Wrap the exception being handled in a :class:`BackendError`. Call from ``except``."""
    import sys

    exc = sys.exc_info()[1]
    assert exc is not None
    raise BackendError(f"{what} failed: {exc}", exc) from exc


def abandon_transaction(tx: Any) -> None:
    """Roll back ``tx`` if it is still open."""
    try:
        tx.rollback()
    except TransactionClosed:
        # Commit already closed it (a failed commit closes the transaction).
        pass


class ViewBase:
    """Common state and flush protocol of snapshot, append-log and kv views.

    Subclasses implement the four buffer hooks: ``_take_locked``, ``_give_back_locked``,
    ``_build_ops`` and ``_clear_locked`` (and may override ``_after_commit``).
    """

    kind: ClassVar[str] = "view"

    def __init__(
        self,
        store: StoreLike,
        name: str,
        *,
        table: EntryKind | None = None,
        keyspace: str | None = None,
        codec: Codec | None = None,
        debounce_ms: float | None = None,
        compact_every: int | None = None,
    ) -> None:
        self._name = _check_name(name)
        self._keyspace = _check_name(keyspace if keyspace is not None else name, "keyspace")
        table = DEFAULT_TABLE if table is None else table
        if not isinstance(table, EntryKind):
            raise TypeError(f"table must be an EntryKind, got {type(table).__name__}")
        if codec is None:
            codec = JSON_CODEC
        if not (callable(getattr(codec, "encode", None)) and callable(getattr(codec, "decode", None))):
            raise TypeError(f"codec must implement encode() and decode(), got {codec!r}")
        self._store = store
        self._table = table
        self._codec = codec
        self._debounce_ms = _check_debounce(debounce_ms)
        self._compact_every = _check_compact_every(compact_every)
        self._prefix = keyspace_prefix(self._keyspace)
        self._lock = threading.RLock()
        self._count = 0
        self._epoch = 0

    # ------------------------------------------------------------------ properties

    @property
    def name(self) -> str:
        """The tier name (default key and default keyspace)."""
        return self._name

    @property
    def store(self) -> StoreLike:
        """The store this view is bound to."""
        return self._store

    @property
    def table(self) -> EntryKind:
        """The ``EntryKind`` table this view lives in."""
        return self._table

    @property
    def keyspace(self) -> str:
        """The keyspace (physical key prefix) inside the table; defaults to the name."""
        return self._keyspace

    @property
    def key_prefix(self) -> bytes:
        """The physical prefix of every key of this view."""
        return self._prefix

    @property
    def codec(self) -> Codec:
        """The value codec."""
        return self._codec

    @property
    def debounce_ms(self) -> float | None:
        """``None``/``0``: write-through; ``> 0``: buffer until a flush trigger."""
        return self._debounce_ms

    @property
    def compact_every(self) -> int | None:
        """Flush whenever the write counter crosses a multiple of this."""
        return self._compact_every

    @property
    def write_count(self) -> int:
        """Accepted writes so far (the counter of the write trigger)."""
        return self._count

    @property
    def write_through(self) -> bool:
        """True when every accepted write commits at once."""
        return not self._debounce_ms

    # ------------------------------------------------------------------ cadence

    def _accept(self, n: int) -> bool:
        """Count ``n`` accepted writes; True when the write trigger fires. Caller holds the lock."""
        prev = self._count
        self._count = new = prev + n
        every = self._compact_every
        if every is not None and prev // every != new // every:
            return True
        return not self._debounce_ms

    def flush(self) -> int | None:
        """Commit the whole buffer as one store version.

        Returns:
            The commit version, or ``None`` when there was nothing to write (or a
            concurrent :meth:`rollback` discarded it).

        Raises:
            BackendError: the commit failed; nothing was written and the data is back
                in the buffer for a retry.
        """
        return flush_together(self)

    def compact(self) -> int | None:
        """A flush that ignores cadence (flushes even under a debounce)."""
        return self.flush()

    def rollback(self) -> None:
        """Empty the buffer; committed data is untouched. Aborts an in-flight flush."""
        with self._lock:
            self._clear_locked()
            self._epoch += 1

    @property
    def has_pending(self) -> bool:
        """True when the buffer holds data not yet committed."""
        with self._lock:
            return self._pending_size_locked() > 0

    # ------------------------------------------------------------------ hooks

    def _take_locked(self) -> Any | None:
        """Remove and return the buffer (``None`` when empty)."""
        raise NotImplementedError

    def _give_back_locked(self, taken: Any) -> None:
        """Put taken data back, ahead of anything buffered since."""
        raise NotImplementedError

    def _build_ops(self, tx: Any, taken: Any) -> Ops:
        """Physical writes for ``taken`` (may read through ``tx``)."""
        raise NotImplementedError

    def _clear_locked(self) -> None:
        raise NotImplementedError

    def _pending_size_locked(self) -> int:
        raise NotImplementedError

    def _after_commit(self, taken: Any, version: int) -> None:
        """Called once the commit holding ``taken`` succeeded."""

    # ------------------------------------------------------------------ reads

    def _resolve_version(self, version: int | None) -> tuple[int, bool]:
        """Fix the read version: ``(version, explicit)``."""
        checked = check_read_version(version)
        if checked is None:
            with translate_errors(f"{self.kind} tier {self._name!r}: reading the store version"):
                return int(self._store.version), False
        return checked, True

    def _get(self, physical: bytes, version: int | None) -> bytes | None:
        """Read one physical key at ``version`` (``None`` = latest)."""
        checked = check_read_version(version)
        with translate_errors(
            f"{self.kind} tier {self._name!r}: reading", explicit_version=checked is not None
        ):
            return self._store.get(self._table, physical, version=checked)

    def _scan(
        self, prefix: bytes, version: int, *, explicit: bool, reverse: bool = False
    ) -> Iterator[tuple[bytes, bytes]]:
        """Yield ``(physical key, value)`` under ``prefix`` at ``version``, lazily.

        Raises:
            BackendNoListSupport: the store refuses range scans.
        """
        store = self._store
        rng = getattr(store, "range", None)
        if rng is None:
            raise BackendNoListSupport(self._name)
        with translate_errors(f"{self.kind} tier {self._name!r}: listing", explicit_version=explicit):
            try:
                yield from rng(self._table, version=version, prefix=prefix, reverse=reverse)
            except BackendNoListSupport:
                raise
            except NotImplementedError:
                raise BackendNoListSupport(self._name) from None

    def list_by_prefix_bytes(
        self, prefix: str, *, version: int | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """Yield ``(key, stored bytes)`` for keys literally starting with ``prefix``.

        Keys come in ascending order; values are read lazily as the caller iterates, all
        at the version fixed when this is called (``version`` or the store's current
        one), skipping empty values. ``"a/"`` does not match ``"ab/2"``.

        Raises (on the first iteration step):
            BackendNoListSupport: the store refuses to list; the next step yields nothing.
            FutureVersionError, HistoryUnavailable: for an explicit ``version``.
        """
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        at, explicit = self._resolve_version(version)
        return self._list_bytes(prefix, at, explicit)

    def _list_bytes(self, prefix: str, version: int, explicit: bool) -> Iterator[tuple[str, bytes]]:
        base = self._prefix
        for physical, value in self._scan(encode_view_key(base, prefix), version, explicit=explicit):
            if value:
                yield decode_view_key(base, physical), value

    def _list_keys(self, prefix: str, version: int | None) -> list[str]:
        at, explicit = self._resolve_version(version)
        base = self._prefix
        return [
            decode_view_key(base, physical)
            for physical, _ in self._scan(encode_view_key(base, prefix), at, explicit=explicit)
        ]

    def _decode(self, data: bytes | None) -> Any | None:
        if not data:
            return None
        return self._codec.decode(data)

    # ------------------------------------------------------------------ invariants

    def check(self, *, version: int | None = None) -> dict[str, int]:
        """Verify the buffer and the stored keyspace at ``version``; return counts.

        Checks that the write counter and epoch are sane, that every buffered value is
        encoded bytes, and that every stored key and value of the keyspace decodes
        (append logs also check that each partition's seqs run 0, 1, 2, ...).

        Complexity: O(keys in the keyspace).

        Raises:
            CorruptionError: stored data breaks the layout; names the key.
            AssertionError: an in-memory invariant is broken (a bug).
        """
        with self._lock:
            assert self._count >= 0 and self._epoch >= 0, "negative write counter or epoch"
            pending = self._pending_size_locked()
            self._check_buffer_locked()
        at, explicit = self._resolve_version(version)
        keys = self._check_scan(self._scan(self._prefix, at, explicit=explicit))
        return {"keys": keys, "pending": pending, "writes": self._count, "version": at}

    def _check_buffer_locked(self) -> None:
        """Subclass hook: assert the buffer holds encoded bytes."""

    def _check_stored(self, physical: bytes, value: bytes) -> None:
        """Subclass hook: verify one stored key/value (default: key is UTF-8, value decodes)."""
        try:
            decode_view_key(self._prefix, physical)
            if value:
                self._codec.decode(value)
        except (UnicodeDecodeError, StorageError) as exc:
            raise self._damaged(physical, exc) from exc

    def _check_scan(self, items: Iterator[tuple[bytes, bytes]]) -> int:
        """Verify every stored ``(key, value)`` of the keyspace; return how many."""
        n = 0
        for physical, value in items:
            self._check_stored(physical, value)
            n += 1
        return n

    def _damaged(self, physical: bytes, why: object) -> CorruptionError:
        return CorruptionError(f"{self.kind} tier {self._name!r}: stored key {physical!r} is damaged: {why}")

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self._name!r}, table={self._table}, "
            f"keyspace={self._keyspace!r}, debounce_ms={self._debounce_ms!r}, "
            f"compact_every={self._compact_every!r})"
        )


def flush_together(*tiers: ViewBase) -> int | None:
    """Commit the buffers of several views in **one** store transaction (one version).

    Atomic across tiers: after a crash or a failed commit, either every tier's data is
    visible at the returned version or none of it is. A tier whose :meth:`rollback`
    ran after its buffer was taken contributes nothing.

    Returns:
        The commit version, or ``None`` when no tier had anything to write.

    Raises:
        ValueError: the tiers are bound to different stores (nothing is written).
        BackendError: the commit failed; every tier gets its data back for a retry.
    """
    if not tiers:
        return None
    for tier in tiers:
        if not isinstance(tier, ViewBase):
            raise TypeError(f"flush_together takes views, got {type(tier).__name__}")
    store = tiers[0].store
    unique: list[ViewBase] = []
    for tier in tiers:
        if tier.store is not store:
            raise ValueError(
                f"flush_together: tier {tier.name!r} is bound to another store than "
                f"{tiers[0].name!r}; tiers of different stores cannot commit in one version"
            )
        if not any(t is tier for t in unique):
            unique.append(tier)

    taken: list[tuple[ViewBase, Any, int]] = []
    for tier in unique:
        with tier._lock:
            payload = tier._take_locked()
            if payload is not None:
                taken.append((tier, payload, tier._epoch))
    if not taken:
        return None

    names = ", ".join(repr(t.name) for t, _, _ in taken)
    tx: Any = None
    try:
        with translate_errors(f"flushing tier(s) {names}"):
            tx = store.begin()
            ops_by_tier = [(tier, payload, epoch, tier._build_ops(tx, payload)) for tier, payload, epoch in taken]
            # Epoch check immediately before commit (spec 5.5): a rollback since the
            # take means "drop what was taken".
            live = [(tier, payload, ops) for tier, payload, epoch, ops in ops_by_tier if tier._epoch == epoch]
            if not any(ops for _, _, ops in live):
                abandon_transaction(tx)
                return None
            table_ops = [(tier.table, ops) for tier, _, ops in live]
            for table, ops in table_ops:
                for key, value in ops.items():
                    if value is None:
                        tx.remove(table, key)
                    else:
                        tx.set(table, key, value)
            version = int(tx.commit())
    except BaseException:
        if tx is not None:
            abandon_transaction(tx)
        for tier, payload, epoch in taken:
            with tier._lock:
                if tier._epoch == epoch:
                    tier._give_back_locked(payload)
        raise
    for tier, payload, _ops in live:
        tier._after_commit(payload, version)
    return version
