"""The one exception hierarchy of tierdb (DESIGN.md section 5).

Every error derives from :class:`EngineError`; where a built-in fits, the error also
inherits it, so ``except KeyError`` / ``except ValueError`` keep working.
"""

from __future__ import annotations

__all__ = [
    "EngineError",
    "ConflictError",
    "TransactionTooOld",
    "TransactionTooLarge",
    "TransactionClosed",
    "SavepointError",
    "FutureVersionError",
    "HistoryUnavailable",
    "CorruptionError",
    "StorageIOError",
    "ClosedError",
    "InvalidKeyError",
    "InvalidVersionError",
    "ReadOnlyError",
    "LockedError",
    "FormatError",
    "BackupError",
    "DestinationExistsError",
    "FencedError",
    "ManifestConflictError",
    "ChangesTrimmed",
    "ChangefeedDisabled",
    "ConsumerRemoved",
]


class EngineError(Exception):
    """Root of every error tierdb raises on purpose."""


class ConflictError(EngineError):
    """A concurrent commit invalidated this transaction's reads or writes. Retry it."""

    def __init__(self, message: str, *, table: object = None, key: bytes | None = None) -> None:
        super().__init__(message)
        self.table = table
        self.key = key


class TransactionTooOld(ConflictError):
    """The transaction's read version fell behind the tracked conflict window. Retry it."""


class TransactionTooLarge(EngineError, ValueError):
    """The transaction exceeds the entry-count or byte cap. Split it."""


class TransactionClosed(EngineError, RuntimeError):
    """The transaction was already committed or rolled back. Begin a new one."""


class SavepointError(EngineError, ValueError):
    """A savepoint of another transaction, or one already released or rolled past."""


class FutureVersionError(EngineError, ValueError):
    """A read asked for a version above ``Store.version``."""


class HistoryUnavailable(EngineError, LookupError):
    """A read asked for a version below the history floor that no pin or snapshot retains."""


class CorruptionError(EngineError):
    """A checksum or structural check failed on data tierdb wrote.

    Attributes ``path`` and ``offset`` say where.
    """

    def __init__(self, message: str, *, path: object = None, offset: int | None = None) -> None:
        where = ""
        if path is not None:
            where = f" [file {path}" + (f", offset {offset}" if offset is not None else "") + "]"
        super().__init__(message + where)
        self.path = path
        self.offset = offset


class StorageIOError(EngineError, OSError):
    """The operating system or storage library failed a read or write (disk full, EIO, ...)."""


class ClosedError(EngineError, RuntimeError):
    """The store (or tier) is closed. Open it again."""


class InvalidKeyError(EngineError, TypeError):
    """A key, value, table or version argument has the wrong type."""


class InvalidVersionError(EngineError, ValueError):
    """A version argument is negative or beyond 2**64 - 1."""


class ReadOnlyError(EngineError, PermissionError):
    """A write was attempted on a read-only view (a snapshot, a historical read)."""


class LockedError(StorageIOError):
    """Another process holds this store open."""


class FormatError(CorruptionError):
    """A file is not a tierdb file, or was written by a newer format version."""


class FencedError(EngineError):
    """This store is no longer the primary of its replication stream: another store was
    promoted (or wrote to the stream) after it. The commit was applied nowhere. Reopen the
    store as a replica (``engine.open_replica``) or discard it."""


class ManifestConflictError(EngineError):
    """Another writer replaced the cold tier's manifest in the object store since this store
    last read it (two stores writing to one ``cold_url``). The conditional put lost: nothing
    this call wrote was made live, and nothing the winner references was touched. Give each
    store its own ``cold_url`` prefix (or clone the store), then reopen this one."""


class ChangesTrimmed(EngineError, LookupError):
    """A change-feed read (or consumer ack) asked for changes below the feed's trimmed floor.

    Attribute ``floor``: the lowest ``after`` the feed can still serve (every change above
    it is kept). Durable consumers (``store.consumer(name)``) keep changes until they ack.
    """

    def __init__(self, message: str, *, floor: int) -> None:
        super().__init__(message)
        self.floor = floor


class ConsumerRemoved(EngineError, KeyError):
    """A change-feed consumer handle whose consumer was removed (``store.drop_consumer``).
    ``store.consumer(name)`` creates it again, at the feed's floor."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class ChangefeedDisabled(EngineError, RuntimeError):
    """The store was not opened with ``changefeed=True``, so it records no change feed.
    Reopen it with ``engine.open(path, changefeed=True)`` (changes from then on are fed)."""


class BackupError(EngineError, ValueError):
    """A backup, restore or clone cannot be made as asked (a memory-only store, a
    destination inside the source, an unsupported destination). Nothing was written."""


class DestinationExistsError(EngineError, FileExistsError):
    """The destination of a backup, restore or clone exists and is not an empty directory.
    Nothing was written: choose a new path or empty it first."""
