"""A ``SnapshotStore`` backed by a tierdb store: the local fold of a watch.

``StoreFold.apply(batch, cursor)`` writes the folded updates **and** the cursor in one store
commit, so cursor-after-apply holds trivially: a crash leaves either both or neither. Puts
are stored as values (an empty value is kept as a value); DEL and PURGE are both folded as a
delete (an engine tombstone). An empty batch still advances the cursor.

Layout: one table (default ``EntryKind.operator(0x4B56_0010)``); data keys are
``b"d" + name + 0x00 + key``, the cursor is ``b"c" + name``. Several folds may share a
store under different names.

Notes: thread safety
    ``apply`` may race with readers from other threads (they see whole commits). Only one
    ``watch_applied`` should fold into one fold name at a time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

from ..types import EntryKind
from .names import validate_bucket
from .types import KvUpdate, Put, VersionToken, WatchCursor

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["DEFAULT_FOLD_TABLE", "FOLD_BACKEND", "FOLD_BACKEND_VERSION", "SnapshotStore", "StoreFold"]

FOLD_BACKEND: Final = "tierdb-fold"
FOLD_BACKEND_VERSION: Final = "1"
DEFAULT_FOLD_TABLE: Final = EntryKind.operator(0x4B56_0010)


@runtime_checkable
class SnapshotStore(Protocol):
    """slipstream's SnapshotStore: a local fold with an atomic ``apply(batch, cursor)``."""

    backend: str
    backend_version: str

    def apply(self, batch: list[KvUpdate], cursor: WatchCursor) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def range(self, prefix: str = "") -> list[tuple[str, bytes]]: ...

    def for_each_in_range(self, prefix: str, fn: Callable[[str, bytes], None]) -> None: ...

    def cursor(self) -> WatchCursor: ...

    def export_to(self, dest: str | os.PathLike[str]) -> Any: ...


class StoreFold:
    """A fold named ``name`` inside a tierdb :class:`~engine.Store`.

    Use :meth:`open` to own the store (``close()`` then closes it), or pass a store you keep.
    """

    backend: str = FOLD_BACKEND
    backend_version: str = FOLD_BACKEND_VERSION

    def __init__(self, store: Store, name: str = "fold", *,
                 table: EntryKind = DEFAULT_FOLD_TABLE) -> None:
        validate_bucket(name)
        self.store = store
        self.name = name
        self.table = table
        self._data_prefix = b"d" + name.encode() + b"\x00"
        self._cursor_key = b"c" + name.encode()
        self._owns_store = False

    @classmethod
    def open(cls, path: str | os.PathLike[str], name: str = "fold", *, layout: str | None = None,
             durability: str = "normal") -> StoreFold:
        """Open (or create) a tierdb store at ``path`` holding the fold ``name``."""
        import engine
        store = engine.open(path, layout=layout, durability=durability)
        fold = cls(store, name)
        fold._owns_store = True
        return fold

    @classmethod
    def load(cls, path: str | os.PathLike[str], name: str = "fold") -> tuple[WatchCursor, StoreFold]:
        """slipstream's ``load(path) -> (cursor, store)``."""
        fold = cls.open(path, name)
        return fold.cursor(), fold

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> StoreFold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ----------------------------------------------------------------------------

    def apply(self, batch: list[KvUpdate], cursor: WatchCursor) -> None:
        """Fold ``batch`` and set ``cursor`` in one commit (atomic; empty batches advance too)."""
        if not isinstance(cursor, WatchCursor):
            raise TypeError(f"cursor must be a WatchCursor, got {type(cursor).__name__}")
        with self.store.begin(isolation="snapshot") as tx:
            for u in batch:
                k = self._data_prefix + u.key.encode()
                if isinstance(u, Put):
                    tx.set(self.table, k, u.entry.value)
                else:
                    tx.remove(self.table, k)
            tx.set(self.table, self._cursor_key, cursor.token.raw)

    def apply_entries(self, entries: list[tuple[str, bytes]], cursor: WatchCursor) -> None:
        """Load plain ``(key, value)`` pairs plus ``cursor`` in one commit (artifact import)."""
        with self.store.begin(isolation="snapshot") as tx:
            for key, value in entries:
                tx.set(self.table, self._data_prefix + key.encode(), value)
            tx.set(self.table, self._cursor_key, cursor.token.raw)

    # -- reads -----------------------------------------------------------------------------

    def cursor(self, version: int | None = None) -> WatchCursor:
        raw = self.store.get(self.table, self._cursor_key, version)
        return WatchCursor.none() if raw is None else WatchCursor(VersionToken(raw))

    def get(self, key: str, version: int | None = None) -> bytes | None:
        return self.store.get(self.table, self._data_prefix + key.encode(), version)

    def iter_range(self, prefix: str = "", version: int | None = None) -> Iterator[tuple[str, bytes]]:
        """Stream ``(key, value)`` under ``prefix`` in key order at ``version``."""
        n = len(self._data_prefix)
        for k, v in self.store.range(self.table, prefix=self._data_prefix + prefix.encode(),
                                     version=version):
            yield k[n:].decode(), v

    def range(self, prefix: str = "", version: int | None = None) -> list[tuple[str, bytes]]:
        return list(self.iter_range(prefix, version))

    def for_each_in_range(self, prefix: str, fn: Callable[[str, bytes], None]) -> None:
        for k, v in self.iter_range(prefix):
            fn(k, v)

    def keys(self, prefix: str = "") -> list[str]:
        return [k for k, _ in self.iter_range(prefix)]

    def count(self, version: int | None = None) -> int:
        return sum(1 for _ in self.iter_range("", version))

    def state(self) -> dict[str, bytes]:
        return dict(self.iter_range(""))

    def export_to(self, dest: str | os.PathLike[str]) -> Path:
        """Export the fold as a verified artifact directory (see :mod:`engine.kv.artifact`)."""
        from .artifact import export_fold
        return export_fold(self, dest)

    def __repr__(self) -> str:
        return f"<StoreFold {self.name!r} in {self.store!r}>"
