"""The KV error family (slipstream's ``KvError`` variants) under :class:`engine.errors.EngineError`.

slipstream's ``KvError`` is ``Clone``: one error value may be handed to several waiters. The
tierdb variants therefore carry only plain data (messages, keys, paths), never open
resources. Where a built-in fits, a variant also inherits it (``KeyNotFound`` is a
``LookupError``, ``Timeout`` a ``TimeoutError``), and :class:`ArtifactInvalid` is also a
:class:`engine.errors.CorruptionError`, so a damaged artifact is caught by either name.
"""

from __future__ import annotations

from ..errors import CorruptionError, EngineError

__all__ = [
    "AlreadyExists",
    "ArtifactInvalid",
    "ConnectionFailed",
    "CursorExpired",
    "DeserializationError",
    "KeyNotFound",
    "KvError",
    "NotConnected",
    "OperationFailed",
    "RevisionMismatch",
    "SerializationError",
    "SupersededByNewer",
    "Timeout",
    "WatchError",
]


class KvError(EngineError):
    """Root of every error the KV layer raises."""


class NotConnected(KvError, RuntimeError):
    """The connection was not connected (or was shut down). Call ``connect()`` first."""


class ConnectionFailed(KvError, ConnectionError):
    """Connecting to the KV service failed. Check the server addresses and that it runs."""


class KeyNotFound(KvError, LookupError):
    """A key that had to exist does not."""


class AlreadyExists(KvError):
    """``create`` found a live value (or a ``delete_with_version`` tombstone) for the key."""


class RevisionMismatch(KvError):
    """A compare-and-set saw a different current version than expected. Re-read and retry."""


class SerializationError(KvError, ValueError):
    """A value could not be encoded, or a stored value (e.g. a lease) does not parse."""


class DeserializationError(KvError, ValueError):
    """A stored value could not be decoded."""


class WatchError(KvError):
    """A watch failed (stream ended, live floor guard tripped, store failed 16 times in a row)."""


class OperationFailed(KvError):
    """The service refused an operation (invalid key, bucket full, value too large, no quorum)."""


class Timeout(KvError, TimeoutError):
    """A call did not finish within its bound (30 s by default on NATS)."""


class CursorExpired(KvError):
    """A resume cursor lies below the retained history; resync (full watch) instead."""


class ArtifactInvalid(KvError, CorruptionError):
    """An export artifact failed verification. ``path`` names the offending file when known.

    Nothing was written at the import destination.
    """


class SupersededByNewer(KvError):
    """A publish was refused because the current pointer already names a newer cursor."""
