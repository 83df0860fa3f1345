"""Beyond/slipstream-style KV abstraction: local (tierdb store) and NATS JetStream backends.

See docs/KV.md. ``NatsConnection`` imports nats-py lazily (on connect), so this package
imports without it.
"""

from .errors import (
    AlreadyExists as AlreadyExists,
    ArtifactInvalid as ArtifactInvalid,
    ConnectionFailed as ConnectionFailed,
    CursorExpired as CursorExpired,
    DeserializationError as DeserializationError,
    KeyNotFound as KeyNotFound,
    KvError as KvError,
    NotConnected as NotConnected,
    OperationFailed as OperationFailed,
    RevisionMismatch as RevisionMismatch,
    SerializationError as SerializationError,
    SupersededByNewer as SupersededByNewer,
    Timeout as Timeout,
    WatchError as WatchError,
)
from .api import (
    Connection as Connection,
    KvPurge as KvPurge,
    KvReader as KvReader,
    KvStore as KvStore,
    KvTtl as KvTtl,
    KvWatch as KvWatch,
    KvWatcher as KvWatcher,
    KvWriter as KvWriter,
)
from .apply import BatchConfig as BatchConfig
from .apply import ExportRequest as ExportRequest
from .apply import watch_applied as watch_applied
from .artifact import export_fold as export_fold
from .artifact import import_artifact as import_artifact
from .fold import SnapshotStore as SnapshotStore
from .fold import StoreFold as StoreFold
from .lease import ExportLease as ExportLease
from .lease import LeaseValue as LeaseValue
from .local import LocalConnection as LocalConnection
from .nats import NatsConnection as NatsConnection
from .nats import NatsConnectionConfig as NatsConnectionConfig
from .types import (
    Capabilities as Capabilities,
    Delete as Delete,
    DiscardPolicy as DiscardPolicy,
    KvEntry as KvEntry,
    KvUpdate as KvUpdate,
    Purge as Purge,
    Put as Put,
    StorageType as StorageType,
    StoreConfig as StoreConfig,
    VersionToken as VersionToken,
    WatchCursor as WatchCursor,
    WatchScope as WatchScope,
)

__all__ = [
    "AlreadyExists", "ArtifactInvalid", "ConnectionFailed", "CursorExpired",
    "DeserializationError", "KeyNotFound", "KvError", "NotConnected", "OperationFailed",
    "RevisionMismatch", "SerializationError", "SupersededByNewer", "Timeout", "WatchError",
    "Connection", "KvPurge", "KvReader", "KvStore", "KvTtl", "KvWatch", "KvWatcher", "KvWriter",
    "BatchConfig", "ExportRequest", "watch_applied", "export_fold", "import_artifact",
    "SnapshotStore", "StoreFold", "ExportLease", "LeaseValue", "NatsConnection",
    "NatsConnectionConfig", "LocalConnection", "Capabilities", "Delete", "DiscardPolicy", "KvEntry", "KvUpdate", "Purge",
    "Put", "StorageType", "StoreConfig", "VersionToken", "WatchCursor", "WatchScope",
]
