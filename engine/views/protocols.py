"""The seams of the views layer, as ``typing.Protocol`` classes.

* ``StoreLike`` / ``TransactionLike``: the slice of :class:`engine.Store` (DESIGN.md
  section 6) that views use. Any object with this shape works, which is how tests
  inject faults (a wrapper whose commit fails, or whose ``range`` refuses to list).
* ``BaseStorageTier``, ``SnapshotStorageTier``, ``AppendLogStorageTier``,
  ``KvStorageTier``: GraphReFly's storage tiers (spec sections 3 to 6). The concrete
  views made by :func:`snapshot_storage`, :func:`append_log_storage` and
  :func:`kv_storage` implement them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ..types import EntryKind
    from .append_log import AppendLoadResult, AppendLogMode, LoadEntriesOpts

__all__ = [
    "AppendLogStorageTier",
    "BaseStorageTier",
    "KvStorageTier",
    "SnapshotStorageTier",
    "StoreLike",
    "TransactionLike",
]


class TransactionLike(Protocol):
    """The transaction operations views use."""

    def set(self, table: EntryKind, key: bytes, value: bytes) -> None: ...

    def remove(self, table: EntryKind, key: bytes) -> None: ...

    def get(self, table: EntryKind, key: bytes) -> bytes | None: ...

    def range(
        self,
        table: EntryKind,
        start: bytes | None = None,
        end: bytes | None = None,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]: ...

    def commit(self) -> int: ...

    def rollback(self) -> None: ...


class StoreLike(Protocol):
    """The store operations views use (a subset of :class:`engine.Store`)."""

    @property
    def version(self) -> int: ...

    def begin(self) -> Any: ...

    def get(self, table: EntryKind, key: bytes, version: int | None = None) -> bytes | None: ...

    def range(
        self,
        table: EntryKind,
        start: bytes | None = None,
        end: bytes | None = None,
        *,
        version: int | None = None,
        reverse: bool = False,
        prefix: bytes | None = None,
        batch_size: int = 1024,
    ) -> Iterator[tuple[bytes, bytes]]: ...

    def history(self, table: EntryKind, key: bytes) -> list[tuple[int, bytes | None]]: ...

    def pin(self, version: int, name: str) -> Any: ...


@runtime_checkable
class BaseStorageTier(Protocol):
    """What every storage tier offers (spec section 3)."""

    @property
    def name(self) -> str: ...

    @property
    def debounce_ms(self) -> float | None: ...

    @property
    def compact_every(self) -> int | None: ...

    def flush(self) -> int | None:
        """Commit the buffer as one store version; return it, or None if nothing to write."""
        ...

    def rollback(self) -> None:
        """Discard the buffer; committed data is untouched."""
        ...

    def compact(self) -> int | None:
        """A flush that ignores cadence."""
        ...

    def list_by_prefix_bytes(
        self, prefix: str, *, version: int | None = None
    ) -> Iterator[tuple[str, bytes]]:
        """Lazily yield ``(key, stored bytes)`` for keys literally starting with ``prefix``."""
        ...


@runtime_checkable
class SnapshotStorageTier(BaseStorageTier, Protocol):
    """One record slot (spec section 4)."""

    def save(self, rec: Any) -> int | None: ...

    def load(self, *, version: int | None = None) -> Any | None: ...


@runtime_checkable
class AppendLogStorageTier(BaseStorageTier, Protocol):
    """Partitioned append-only logs (spec section 5)."""

    def append_entries(self, entries: Sequence[Any]) -> int | None: ...

    def load_entries(
        self, opts: LoadEntriesOpts | None = None, *, version: int | None = None
    ) -> AppendLoadResult: ...

    def mode(self) -> AppendLogMode: ...


@runtime_checkable
class KvStorageTier(BaseStorageTier, Protocol):
    """A key-value map (spec section 6)."""

    def save(self, key: str, value: Any) -> int | None: ...

    def load(self, key: str, *, version: int | None = None) -> Any | None: ...

    def delete(self, key: str) -> int: ...

    def list(self, prefix: str = "", *, version: int | None = None) -> list[str]: ...
