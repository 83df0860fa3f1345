"""Errors of the replication package (all under :class:`engine.EngineError`).

:class:`engine.FencedError` (a deposed primary) lives in ``engine.errors`` because the store's
commit path raises it; everything else a replication link can report is here.
"""

from __future__ import annotations

from ..errors import CorruptionError, EngineError

__all__ = [
    "CommitTooLarge",
    "CorruptMessage",
    "ForeignStream",
    "ReplicaDiverged",
    "ReplicationError",
    "ReplicationUnavailable",
    "StreamNotFound",
    "VersionGap",
]


class ReplicationError(EngineError):
    """Root of the replication errors: the link to the stream cannot do what was asked."""


class StreamNotFound(ReplicationError, LookupError):
    """The named JetStream stream does not exist (wrong ``stream=`` name or server)."""


class ForeignStream(ReplicationError):
    """The stream (or one of its messages) was not written by this store's primary: other
    subjects, another store's lineage, another stream's name, or not a tierdb message."""


class CorruptMessage(ReplicationError, CorruptionError):
    """A replication message or snapshot fails its checksum or does not decode."""


class VersionGap(ReplicationError):
    """A commit message does not continue the applied versions (a gap, a repeat, or a
    commit by a writer that is not the stream's current primary)."""


class ReplicaDiverged(ReplicationError):
    """The local store and the stream disagree in a way that cannot be repaired here (the
    store has commits the stream never received, or the stream was trimmed past it)."""


class ReplicationUnavailable(ReplicationError, OSError):
    """JetStream did not acknowledge in time (no quorum, no server). The commit was not
    applied locally; it may still reach the stream, which the next commit finds out."""


class CommitTooLarge(ReplicationError, ValueError):
    """One commit encodes to more bytes than the server accepts in one message. Split the
    transaction, or raise the server's ``max_payload``."""
