"""tierdb: an embeddable, versioned (MVCC) storage engine with hot, warm and cold tiers."""

from . import errors as errors
from .drop_worker.retention import Retention as Retention
from .backup import check_backup as check_backup
from .backup import clone as clone
from .backup import restore_backup as restore_backup
from .errors import (
    BackupError as BackupError,
    ClosedError as ClosedError,
    ChangefeedDisabled as ChangefeedDisabled,
    ChangesTrimmed as ChangesTrimmed,
    ConflictError as ConflictError,
    ConsumerRemoved as ConsumerRemoved,
    CorruptionError as CorruptionError,
    DestinationExistsError as DestinationExistsError,
    EngineError as EngineError,
    FencedError as FencedError,
    FormatError as FormatError,
    FutureVersionError as FutureVersionError,
    HistoryUnavailable as HistoryUnavailable,
    InvalidKeyError as InvalidKeyError,
    InvalidVersionError as InvalidVersionError,
    LockedError as LockedError,
    ManifestConflictError as ManifestConflictError,
    ReadOnlyError as ReadOnlyError,
    SavepointError as SavepointError,
    StorageIOError as StorageIOError,
    TransactionClosed as TransactionClosed,
    TransactionTooLarge as TransactionTooLarge,
    TransactionTooOld as TransactionTooOld,
)
from .mvcc.changefeed import Change as Change
from .mvcc.changefeed import Consumer as Consumer
from .router.layout import Layout as Layout
from .store import Store as Store
from .store import open as open
from .replication import open_replica as open_replica
from .types import Bound as Bound
from .types import EntryKind as EntryKind
from .types import RangeBatch as RangeBatch
from .types import RangeCursor as RangeCursor
from .types import RawEntry as RawEntry

__version__ = "0.1.0"

__all__ = [
    "Change", "Consumer", "ChangesTrimmed", "ChangefeedDisabled", "ConsumerRemoved",
    "open", "Store", "Layout", "Retention", "EntryKind", "Bound", "RawEntry", "RangeBatch",
    "RangeCursor", "errors", "EngineError", "ConflictError", "TransactionTooOld",
    "TransactionTooLarge", "TransactionClosed", "FutureVersionError", "HistoryUnavailable",
    "CorruptionError", "StorageIOError", "ClosedError", "InvalidKeyError", "InvalidVersionError",
    "ReadOnlyError", "LockedError", "FormatError", "SavepointError", "FencedError",
    "ManifestConflictError",
    "open_replica",
    "restore_backup", "clone", "check_backup", "BackupError", "DestinationExistsError",
]
