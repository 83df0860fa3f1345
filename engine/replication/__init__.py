"""Replication of a store over NATS JetStream: a primary ships every commit to a stream,
replicas follow it read-only at the primary's exact versions, and a replica can be promoted
(fencing the old primary). The stream is the replicated commit log; see docs/SCALING.md.

``nats-py`` is imported lazily (on connect), so this package imports without it.
"""

from .errors import CommitTooLarge as CommitTooLarge
from .errors import CorruptMessage as CorruptMessage
from .errors import ForeignStream as ForeignStream
from .errors import ReplicaDiverged as ReplicaDiverged
from .errors import ReplicationError as ReplicationError
from .errors import ReplicationUnavailable as ReplicationUnavailable
from .errors import StreamNotFound as StreamNotFound
from .errors import VersionGap as VersionGap
from .primary import Primary as Primary
from .replica import ReplicaStore as ReplicaStore
from .replica import open_replica as open_replica

__all__ = [
    "CommitTooLarge", "CorruptMessage", "ForeignStream", "Primary", "ReplicaDiverged",
    "ReplicaStore", "ReplicationError", "ReplicationUnavailable", "StreamNotFound", "VersionGap",
    "open_replica",
]
