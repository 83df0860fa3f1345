"""Read-only snapshots: a pinned read view at one version.

A snapshot registers its version as a retained read point, so garbage collection keeps
every version it can see until it is closed. It has no write methods: historical views are
read-only by construction.

Notes: thread safety
    A snapshot may be shared by threads; its reads are as thread-safe as the store's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ClosedError, ReadOnlyError
from ..types import EntryKind, RangeBatch, RangeCursor

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["Snapshot"]


class Snapshot:
    """A read view of a store at :attr:`version`. Close it (or use ``with``) to release it."""

    __slots__ = ("_store", "version", "_token", "__weakref__")

    def __init__(self, store: Store, version: int, token: int) -> None:
        self._store = store
        self.version = version
        self._token = token

    def _check(self) -> None:
        if not self._token:
            raise ClosedError("snapshot is closed; take a new one with store.snapshot()")

    def get(self, table: EntryKind, key: bytes) -> bytes | None:
        self._check()
        return self._store.get(table, key, version=self.version)

    def contains(self, table: EntryKind, key: bytes) -> bool:
        return self.get(table, key) is not None

    def range(self, table: EntryKind, start: Any = None, end: Any = None, *, reverse: bool = False,
              prefix: Any = None, batch_size: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        self._check()
        kw: dict[str, Any] = {} if batch_size is None else {"batch_size": batch_size}
        return self._store.range(table, start, end, version=self.version, reverse=reverse,
                                 prefix=prefix, **kw)

    def range_next(self, table: EntryKind, cursor: RangeCursor, start: Any = None, end: Any = None,
                   batch_size: int = 1024, *, reverse: bool = False) -> RangeBatch:
        self._check()
        return self._store.range_next(table, cursor, start, end, self.version, batch_size, reverse=reverse)

    def history(self, table: EntryKind, key: bytes) -> list[tuple[int, bytes | None]]:
        """Versions of ``key`` visible to this snapshot (<= its version), newest first."""
        self._check()
        return [(v, val) for v, val in self._store.history(table, key) if v <= self.version]

    def set(self, *args: object, **kwargs: object) -> None:
        raise ReadOnlyError("a snapshot is read-only; write through store.begin()")

    remove = set

    @property
    def closed(self) -> bool:
        return not self._token

    def close(self) -> None:
        if self._token:
            self._store._readpoints.release(self._token)
            self._token = 0

    def __enter__(self) -> Snapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except (AttributeError, TypeError):  # interpreter shutdown
            pass

    def __repr__(self) -> str:
        return f"<Snapshot version={self.version}{' closed' if self.closed else ''}>"
