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
