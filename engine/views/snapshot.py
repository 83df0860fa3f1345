"""Snapshot view: one pending record slot, flushed under ``key_of(rec)`` (spec section 4).

The last ``save`` wins the slot. A flush writes the encoded record under
``key_of(rec)`` (default: the tier name) in one store commit and remembers that key as
``last_saved_key``; ``load`` reads that key, or the tier name when nothing was saved in
this process (so after a restart a custom ``key_of`` is found again only if it equals
the tier name, as in GraphReFly's Rust implementation).

Notes: thread safety. See :mod:`engine.views.base`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Unpack

from .base import Ops, ViewBase, ViewOptions
from .keys import encode_view_key
from .protocols import StoreLike

__all__ = ["SnapshotStorage", "snapshot_storage"]


class SnapshotStorage(ViewBase):
    """A :class:`~engine.views.protocols.SnapshotStorageTier` over a store table."""

    kind = "snapshot"

    def __init__(
        self,
        store: StoreLike,
        name: str,
        *,
        filter: Callable[[Any], bool] | None = None,
        key_of: Callable[[Any], str] | None = None,
        **options: Unpack[ViewOptions],
    ) -> None:
        super().__init__(store, name, **options)
        self._filter = filter
        self._key_of = key_of
        self._pending: tuple[str, bytes] | None = None
        self._last_saved_key: str | None = None

    @property
    def last_saved_key(self) -> str | None:
        """The key of the last committed save in this process (``None`` before any)."""
        return self._last_saved_key

    def save(self, rec: Any) -> int | None:
        """Buffer ``rec`` in the slot (the last save wins) and apply the write trigger.

        A record rejected by ``filter`` is neither buffered nor counted. The record is
        encoded now, so later mutation of ``rec`` does not change what is written.

        Returns:
            The commit version if this save flushed, else ``None``.

        Raises:
            CodecError: ``rec`` cannot be encoded (nothing buffered).
            BackendError: the triggered flush failed (the record stays buffered).
        """
        return self.flush() if self._stage_save(rec) else None

    def _stage_save(self, rec: Any) -> bool:
        """Filter, encode and buffer ``rec``; True when the write trigger fired."""
        if self._filter is not None and not self._filter(rec):
            return False
        key = self._key_of(rec) if self._key_of is not None else self._name
        if not isinstance(key, str):
            raise TypeError(f"snapshot tier {self._name!r}: key_of must return a str, got {type(key).__name__}")
        data = self._codec.encode(rec)
        with self._lock:
            self._pending = (key, data)
            return self._accept(1)

    def load(self, *, version: int | None = None) -> Any | None:
        """Decode the committed record at ``version`` (default latest); ``None`` if none.

        Reads ``last_saved_key`` or the tier name; never the buffer.

        Raises:
            FutureVersionError, HistoryUnavailable: for an explicit ``version``.
            CodecError: the stored bytes do not decode.
        """
        key = self._last_saved_key if self._last_saved_key is not None else self._name
        return self._decode(self._get(encode_view_key(self._prefix, key), version))

    # ------------------------------------------------------------------ hooks

    def _take_locked(self) -> tuple[str, bytes] | None:
        taken, self._pending = self._pending, None
        return taken

    def _give_back_locked(self, taken: tuple[str, bytes]) -> None:
        if self._pending is None:  # a newer save wins the slot
            self._pending = taken

    def _build_ops(self, tx: Any, taken: tuple[str, bytes]) -> Ops:
        key, data = taken
        return {encode_view_key(self._prefix, key): data}

    def _after_commit(self, taken: tuple[str, bytes], version: int) -> None:
        self._last_saved_key = taken[0]

    def _clear_locked(self) -> None:
        self._pending = None

    def _check_buffer_locked(self) -> None:
        if self._pending is not None:
            key, data = self._pending
            assert isinstance(key, str) and isinstance(data, bytes), "snapshot slot holds unencoded data"

    def _pending_size_locked(self) -> int:
        return 0 if self._pending is None else 1


def snapshot_storage(
    store: StoreLike,
    name: str,
    *,
    filter: Callable[[Any], bool] | None = None,
    key_of: Callable[[Any], str] | None = None,
    **options: Unpack[ViewOptions],
) -> SnapshotStorage:
    """Make a snapshot view named ``name`` over ``store``.

    Args:
        table: the ``EntryKind`` table (default ``EntryKind.MULTI``).
        keyspace: the key prefix inside the table (default ``name``); views with the
            same keyspace share keys, views with different ones never collide.
        codec: value codec (default canonical JSON).
        debounce_ms: ``None``/``0`` write-through; ``> 0`` buffer until a trigger.
        compact_every: flush when the write count crosses a multiple of this (``0``
            raises ``ValueError``).
        filter: ``filter(rec)`` false -> the save is ignored.
        key_of: ``key_of(rec)`` -> the key to write (default: the tier name).
    """
    return SnapshotStorage(store, name, filter=filter, key_of=key_of, **options)
