"""``ExportLease``: at most one exporter per round, held as a KV key (``slipstream-kv.md`` s. 10).

The lease value is canonical JSON ``{holder_id, acquired_at_unix, expires_at_unix,
completed_cursor_hex?, completed_at_unix?}``. Acquire: ``create``; on ``AlreadyExists`` read
``entry`` (tombstones count) and decide with
:func:`~engine.kv.protocol.lease_after_create_failed`; steal with a CAS ``update`` against the
observed version. The lease only saves work: correctness never depends on it.

Notes: thread safety
    An ``ExportLease`` object belongs to one thread. Any number of processes may race for
    the same key; the KV service's compare-and-set picks one winner.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .api import KvWriter
from .errors import AlreadyExists, KeyNotFound, RevisionMismatch, SerializationError
from .protocol import LeaseDecision, lease_after_create_failed
from .types import KvEntry, VersionToken, WatchCursor

__all__ = ["ExportLease", "LeaseValue", "wall_clock"]

log = logging.getLogger("tierdb.kv.lease")
_LOST = (RevisionMismatch, AlreadyExists, KeyNotFound)


def wall_clock() -> float:
    """Seconds since the epoch; a clock before the epoch counts as 0."""
    return max(0.0, time.time())


@dataclass(frozen=True)
class LeaseValue:
    holder_id: str
    acquired_at_unix: float
    expires_at_unix: float
    completed_cursor_hex: str | None = None
    completed_at_unix: float | None = None

    def encode(self) -> bytes:
        obj: dict[str, Any] = {"holder_id": self.holder_id, "acquired_at_unix": self.acquired_at_unix,
                               "expires_at_unix": self.expires_at_unix}
        if self.completed_cursor_hex is not None:
            obj["completed_cursor_hex"] = self.completed_cursor_hex
        if self.completed_at_unix is not None:
            obj["completed_at_unix"] = self.completed_at_unix
        return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> LeaseValue:
        """Raises SerializationError when ``raw`` is not a lease value."""
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict) or not isinstance(obj.get("holder_id"), str):
                raise ValueError("not a lease object")
            known = {"holder_id", "acquired_at_unix", "expires_at_unix", "completed_cursor_hex",
                     "completed_at_unix"}
            if set(obj) - known:
                raise ValueError(f"unknown fields {sorted(set(obj) - known)}")
            return cls(holder_id=obj["holder_id"], acquired_at_unix=float(obj["acquired_at_unix"]),
                       expires_at_unix=float(obj["expires_at_unix"]),
                       completed_cursor_hex=obj.get("completed_cursor_hex"),
                       completed_at_unix=None if obj.get("completed_at_unix") is None
                       else float(obj["completed_at_unix"]))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            raise SerializationError(f"lease value does not parse ({exc}): {raw[:80]!r}") from None


class ExportLease:
    """A won lease. Resolve it with :meth:`complete` or :meth:`abandon`."""

    def __init__(self, bucket: Any, key: str, value: LeaseValue, version: VersionToken,
                 clock: Callable[[], float]) -> None:
        self._bucket = bucket
        self.key = key
        self.value = value
        self.version = version
        self._clock = clock
        self._resolved = False

    @staticmethod
    def _writer(bucket: Any) -> KvWriter:
        w = bucket.writer()
        if w is None:
            raise TypeError(f"bucket {bucket!r} has no writer; a lease needs compare-and-set")
        return w  # type: ignore[no-any-return]

    @classmethod
    def try_acquire(cls, bucket: Any, key: str, holder_id: str, ttl: float, *,
                    clock: Callable[[], float] = wall_clock) -> ExportLease | None:
        """Try to win the round; None if someone else holds a live lease or won the race."""
        if not ttl > 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
        writer = cls._writer(bucket)
        now = clock()
        value = LeaseValue(holder_id, now, now + ttl)
        try:
            v = writer.create(key, value.encode())
            return cls(bucket, key, value, v, clock)
        except AlreadyExists:
            pass
        observed: KvEntry | None = bucket.reader().entry(key)
        parsed: float | None = None
        if observed is not None and observed.value:
            try:
                parsed = LeaseValue.decode(observed.value).expires_at_unix
            except SerializationError:
                parsed = None   # garbage is stolen
        decision = lease_after_create_failed(observed_exists=observed is not None,
                                             parsed_expires_at=parsed, now_unix=now)
        if decision is LeaseDecision.LOST:
            return None
        assert observed is not None
        try:
            v = writer.update(key, value.encode(), observed.version)
        except _LOST:
            return None
        return cls(bucket, key, value, v, clock)

    @staticmethod
    def current(bucket: Any, key: str) -> LeaseValue | None:
        """The lease value, None when absent or a tombstone. Raises SerializationError."""
        e = bucket.reader().entry(key)
        if e is None or not e.value:
            return None
        return LeaseValue.decode(e.value)

    def complete(self, cursor: WatchCursor) -> None:
        """Record the completed cursor, keeping the expiry. A lost lease is only logged."""
        self._resolved = True
        done = LeaseValue(self.value.holder_id, self.value.acquired_at_unix, self.value.expires_at_unix,
                          cursor.token.hex(), self._clock())
        try:
            self.version = self._writer(self._bucket).update(self.key, done.encode(), self.version)
            self.value = done
        except _LOST:
            log.warning("lease %r was taken over before complete(); leaving it unchanged", self.key)

    def abandon(self) -> None:
        """Give the lease up at once (an empty-value CAS tombstone), so the next acquirer wins."""
        self._resolved = True
        try:
            self._writer(self._bucket).delete_with_version(self.key, self.version)
        except _LOST:
            log.warning("lease %r was taken over before abandon(); leaving it unchanged", self.key)

    def __del__(self) -> None:
        if not getattr(self, "_resolved", True):
            log.warning("export lease %r dropped without complete() or abandon(); others wait out "
                        "its ttl", getattr(self, "key", "?"))

    def __repr__(self) -> str:
        return f"<ExportLease {self.key!r} holder={self.value.holder_id!r} until={self.value.expires_at_unix}>"
