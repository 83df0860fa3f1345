"""KV view: a buffered key-value map over a store table (spec section 6).

``save`` buffers per key (a later save to the same key replaces the earlier one); a
flush writes every buffered key in one commit. ``delete`` is immediate: it commits a
tombstone (history stays readable with ``version=``) and only then drops any pending
write of that key, so a failed delete keeps the pending write (Rust order).

Notes: thread safety. See :mod:`engine.views.base`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Unpack

from .base import Ops, ViewBase, ViewOptions, abandon_transaction, translate_errors
from .keys import encode_view_key
from .protocols import StoreLike

__all__ = ["KvStorage", "kv_storage"]


def _check_key(tier: str, key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"kv tier {tier!r}: keys are str, got {type(key).__name__}")
    return key


class KvStorage(ViewBase):
    """A :class:`~engine.views.protocols.KvStorageTier` over a store table."""

    kind = "kv"

    def __init__(
        self,
        store: StoreLike,
        name: str,
        *,
        filter: Callable[[str, Any], bool] | None = None,
        **options: Unpack[ViewOptions],
    ) -> None:
        super().__init__(store, name, **options)
        self._filter = filter
        self._pending: dict[str, bytes] = {}

    def save(self, key: str, value: Any) -> int | None:
        """Buffer ``value`` under ``key`` and apply the write trigger.

        Returns:
            The commit version if this save flushed, else ``None``.

        Raises:
            TypeError: ``key`` is not a str.
            CodecError: ``value`` cannot be encoded (nothing buffered).
            BackendError: the triggered flush failed (the data stays buffered).
        """
        _check_key(self._name, key)
        return self.flush() if self._stage_many({key: value}) else None

    def save_many(self, items: dict[str, Any]) -> int | None:
        """Buffer several keys as one write of ``len(items)`` (one trigger check)."""
        return self.flush() if self._stage_many(items) else None

    def _stage_many(self, items: Mapping[str, Any]) -> bool:
        """Filter, encode and buffer ``items``; True when the write trigger fired."""
        encoded: dict[str, bytes] = {}
        for key, value in items.items():
            _check_key(self._name, key)
            if self._filter is not None and not self._filter(key, value):
                continue
            encoded[key] = self._codec.encode(value)
        if not encoded:
            return False
        with self._lock:
            pending = self._pending
            for key, data in encoded.items():
                pending.pop(key, None)  # re-insert: newest save last in flush order
                pending[key] = data
            return self._accept(len(encoded))

    def load(self, key: str, *, version: int | None = None) -> Any | None:
        """Decode the committed value of ``key`` at ``version``; ``None`` if missing.

        Raises:
            FutureVersionError, HistoryUnavailable: for an explicit ``version``.
        """
        _check_key(self._name, key)
        return self._decode(self._get(encode_view_key(self._prefix, key), version))

    def load_bytes(self, key: str, *, version: int | None = None) -> bytes | None:
        """The stored (encoded) bytes of ``key`` at ``version``; ``None`` if missing."""
        _check_key(self._name, key)
        return self._get(encode_view_key(self._prefix, key), version)

    def delete(self, key: str) -> int:
        """Commit a removal of ``key`` now (ignoring the debounce), then drop its pending write.

        Returns:
            The commit version of the removal.

        Raises:
            BackendError: the commit failed; the pending write of ``key`` survives.
        """
        _check_key(self._name, key)
        physical = encode_view_key(self._prefix, key)
        with translate_errors(f"kv tier {self._name!r}: deleting {key!r}"):
            tx = self._store.begin()
            try:
                tx.remove(self._table, physical)
                version = int(tx.commit())
            except BaseException:
                abandon_transaction(tx)
                raise
        with self._lock:
            self._pending.pop(key, None)
        return version

    def list(self, prefix: str = "", *, version: int | None = None) -> list[str]:
        """Sorted committed keys starting with ``prefix`` (``""`` = all) at ``version``.

        Raises:
            BackendNoListSupport: the store refuses to list.
        """
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        return self._list_keys(prefix, version)

    # ------------------------------------------------------------------ hooks

    def _take_locked(self) -> dict[str, bytes] | None:
        if not self._pending:
            return None
        taken, self._pending = self._pending, {}
        return taken

    def _give_back_locked(self, taken: dict[str, bytes]) -> None:
        merged = dict(taken)
        for key, data in self._pending.items():  # newer saves win
            merged.pop(key, None)
            merged[key] = data
        self._pending = merged

    def _build_ops(self, tx: Any, taken: dict[str, bytes]) -> Ops:
        prefix = self._prefix
        return {encode_view_key(prefix, key): data for key, data in taken.items()}

    def _clear_locked(self) -> None:
        self._pending = {}

    def _check_buffer_locked(self) -> None:
        for key, data in self._pending.items():
            assert isinstance(key, str) and isinstance(data, bytes), f"kv buffer holds unencoded {key!r}"

    def _pending_size_locked(self) -> int:
        return len(self._pending)


def kv_storage(
    store: StoreLike,
    name: str,
    *,
    filter: Callable[[str, Any], bool] | None = None,
    **options: Unpack[ViewOptions],
) -> KvStorage:
    """Make a kv view named ``name`` over ``store``.

    Options as :func:`~engine.views.snapshot.snapshot_storage`; ``filter(key, value)``
    false -> the save is ignored.
    """
    return KvStorage(store, name, filter=filter, **options)
