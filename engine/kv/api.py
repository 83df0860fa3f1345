"""The KV seams as ``typing.Protocol`` classes (slipstream's traits, synchronous).

A :class:`Connection` opens :class:`KvStore` buckets; a store hands out a :class:`KvReader`
and, where supported, a :class:`KvWriter`, :class:`KvWatcher`, :class:`KvPurge` and
:class:`KvTtl` (``None`` when unsupported). A watcher returns a :class:`KvWatch`, a blocking
stream of :class:`~engine.kv.types.KvUpdate` values.

Both backends (:class:`~engine.kv.local.LocalConnection`,
:class:`~engine.kv.nats.NatsConnection`) implement these and pass one conformance suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from .types import (
    Capabilities,
    KvEntry,
    KvUpdate,
    StoreConfig,
    VersionToken,
    WatchCursor,
    WatchScope,
)

__all__ = [
    "Connection",
    "KvPurge",
    "KvReader",
    "KvStore",
    "KvTtl",
    "KvWatch",
    "KvWatcher",
    "KvWriter",
]


@runtime_checkable
class KvWatch(Protocol):
    """A live stream of updates in revision order.

    Notes: thread safety
        One consumer thread at a time; ``close()`` may be called from any thread.
    """

    def next(self, timeout: float | None = None) -> KvUpdate | None:
        """The next update, or None when ``timeout`` seconds pass or the stream has ended.

        Raises:
            WatchError: the stream failed (e.g. the live floor guard tripped).
        """
        ...

    @property
    def ended(self) -> bool:
        """True once the stream is closed or exhausted (no further updates will come)."""
        ...

    def close(self) -> None:
        """Stop the stream and release its resources. Idempotent."""
        ...

    def __iter__(self) -> Iterator[KvUpdate]: ...

    def __enter__(self) -> KvWatch: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class KvReader(Protocol):
    def get(self, key: str) -> KvEntry | None:
        """The latest value; None for missing keys, DEL/PURGE markers and empty values."""
        ...

    def entry(self, key: str) -> KvEntry | None:
        """The raw latest Put, empty-value tombstones included; None for markers/missing."""
        ...

    def keys(self, prefix: str = "") -> list[str]:
        """Every live key under ``prefix`` (sorted); markers and empty values skipped."""
        ...

    def scan(self, prefix: str = "") -> list[KvEntry]:
        """Every live entry under ``prefix`` (sorted by key), versions equal to ``get``."""
        ...


@runtime_checkable
class KvWriter(Protocol):
    def put(self, key: str, value: bytes) -> VersionToken: ...

    def create(self, key: str, value: bytes) -> VersionToken:
        """Write only if the key is absent (or deleted/purged). Raises AlreadyExists."""
        ...

    def update(self, key: str, value: bytes, expected: VersionToken) -> VersionToken:
        """Compare-and-set. Raises RevisionMismatch (also for a missing key), OperationFailed."""
        ...

    def delete(self, key: str) -> bool:
        """Write a DEL marker; always True."""
        ...

    def delete_with_version(self, key: str, expected: VersionToken) -> VersionToken:
        """CAS-write an empty value (a tombstone that is a Put). Raises RevisionMismatch."""
        ...


@runtime_checkable
class KvWatcher(Protocol):
    def watch_all(self) -> KvWatch: ...

    def watch_prefix(self, prefix: str) -> KvWatch: ...

    def watch_prefixes(self, prefixes: list[str]) -> KvWatch: ...

    def watch_all_from(self, cursor: WatchCursor) -> KvWatch: ...

    def watch_prefix_from(self, prefix: str, cursor: WatchCursor) -> KvWatch: ...

    def watch_prefixes_from(self, prefixes: list[str], cursor: WatchCursor) -> KvWatch: ...

    def watch(self, scope: WatchScope, cursor: WatchCursor | None = None) -> KvWatch:
        """Watch ``scope``; with a non-empty ``cursor`` deliver only revisions above it.

        Raises:
            CursorExpired: the cursor lies below the retained history.
        """
        ...


@runtime_checkable
class KvPurge(Protocol):
    def purge(self, key: str) -> bool:
        """Remove the key and its history, leaving only a PURGE marker. Idempotent."""
        ...


@runtime_checkable
class KvTtl(Protocol):
    def put_with_ttl(self, key: str, value: bytes, ttl: float) -> VersionToken:
        """Put ``value`` that expires ``ttl`` seconds from now (the key's earlier revisions go).

        Once expired the key reads as absent (``get``, ``entry``, ``keys``, ``scan``) and
        watches deliver the expiry as a ``Purge``. Offered only where it works
        (``capabilities().ttl``; NATS 2.11+ rounds up to whole seconds).

        Raises:
            OperationFailed: invalid key, value or ``ttl``, or a server that ignores TTLs.
        """
        ...


@runtime_checkable
class KvStore(Protocol):
    @property
    def name(self) -> str: ...

    def reader(self) -> KvReader: ...

    def watcher(self) -> KvWatcher | None: ...

    def writer(self) -> KvWriter | None: ...

    def purge_writer(self) -> KvPurge | None: ...

    def ttl_writer(self) -> KvTtl | None: ...


@runtime_checkable
class Connection(Protocol):
    def connect(self) -> None:
        """Connect; idempotent. Raises ConnectionFailed."""
        ...

    def shutdown(self) -> None:
        """Disconnect; afterwards ``is_healthy()`` is False and calls raise NotConnected."""
        ...

    def is_healthy(self) -> bool:
        """The last connection event (no I/O)."""
        ...

    def store(self, name: str) -> KvStore: ...

    def store_with_config(self, config: StoreConfig) -> KvStore:
        """Open the bucket, creating it with ``config`` if absent (config ignored otherwise)."""
        ...

    def capabilities(self) -> Capabilities: ...
