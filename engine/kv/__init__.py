"""Beyond/slipstream-style KV abstraction: local (tierdb store) and NATS JetStream backends."""

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
from .local import LocalConnection as LocalConnection
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
    "LocalConnection", "Capabilities", "Delete", "DiscardPolicy", "KvEntry", "KvUpdate", "Purge",
    "Put", "StorageType", "StoreConfig", "VersionToken", "WatchCursor", "WatchScope",
]
