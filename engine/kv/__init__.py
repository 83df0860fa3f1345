"""Beyond/slipstream-style KV abstraction: local (tierdb store) and NATS JetStream backends.

See docs/KV.md. ``NatsConnection`` imports nats-py lazily (on connect), so this package
imports without it.
"""

from .api import (
    Connection as Connection,
)
from .api import (
    KvPurge as KvPurge,
)
from .api import (
    KvReader as KvReader,
)
from .api import (
    KvStore as KvStore,
)
from .api import (
    KvTtl as KvTtl,
)
from .api import (
    KvWatch as KvWatch,
)
from .api import (
    KvWatcher as KvWatcher,
)
from .api import (
    KvWriter as KvWriter,
)
from .apply import BatchConfig as BatchConfig
from .apply import ExportRequest as ExportRequest
from .apply import watch_applied as watch_applied
from .artifact import export_fold as export_fold
from .artifact import import_artifact as import_artifact
from .errors import (
    AlreadyExists as AlreadyExists,
)
from .errors import (
    ArtifactInvalid as ArtifactInvalid,
)
from .errors import (
    ConnectionFailed as ConnectionFailed,
)
from .errors import (
    CursorExpired as CursorExpired,
)
from .errors import (
    DeserializationError as DeserializationError,
)
from .errors import (
    KeyNotFound as KeyNotFound,
)
from .errors import (
    KvError as KvError,
)
from .errors import (
    NotConnected as NotConnected,
)
from .errors import (
    OperationFailed as OperationFailed,
)
from .errors import (
    RevisionMismatch as RevisionMismatch,
)
from .errors import (
    SerializationError as SerializationError,
)
from .errors import (
    SupersededByNewer as SupersededByNewer,
)
from .errors import (
    Timeout as Timeout,
)
from .errors import (
    WatchError as WatchError,
)
from .fold import SnapshotStore as SnapshotStore
from .fold import StoreFold as StoreFold
from .lease import ExportLease as ExportLease
from .lease import LeaseValue as LeaseValue
from .local import LocalConnection as LocalConnection
from .nats import NatsConnection as NatsConnection
from .nats import NatsConnectionConfig as NatsConnectionConfig
from .types import (
    Capabilities as Capabilities,
)
from .types import (
    Delete as Delete,
)
from .types import (
    DiscardPolicy as DiscardPolicy,
)
from .types import (
    KvEntry as KvEntry,
)
from .types import (
    KvUpdate as KvUpdate,
)
from .types import (
    Purge as Purge,
)
from .types import (
    Put as Put,
)
from .types import (
    StorageType as StorageType,
)
from .types import (
    StoreConfig as StoreConfig,
)
from .types import (
    VersionToken as VersionToken,
)
from .types import (
    WatchCursor as WatchCursor,
)
from .types import (
    WatchScope as WatchScope,
)

__all__ = [
    "AlreadyExists",
    "ArtifactInvalid",
    "BatchConfig",
    "Capabilities",
    "Connection",
    "ConnectionFailed",
    "CursorExpired",
    "Delete",
    "DeserializationError",
    "DiscardPolicy",
    "ExportLease",
    "ExportRequest",
    "KeyNotFound",
    "KvEntry",
    "KvError",
    "KvPurge",
    "KvReader",
    "KvStore",
    "KvTtl",
    "KvUpdate",
    "KvWatch",
    "KvWatcher",
    "KvWriter",
    "LeaseValue",
    "LocalConnection",
    "NatsConnection",
    "NatsConnectionConfig",
    "NotConnected",
    "OperationFailed",
    "Purge",
    "Put",
    "RevisionMismatch",
    "SerializationError",
    "SnapshotStore",
    "StorageType",
    "StoreConfig",
    "StoreFold",
    "SupersededByNewer",
    "Timeout",
    "VersionToken",
    "WatchCursor",
    "WatchError",
    "WatchScope",
    "export_fold",
    "import_artifact",
    "watch_applied",
]
