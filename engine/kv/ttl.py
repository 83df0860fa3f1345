"""Per-key TTLs of the local backend: the expiry index and the reaper that acts on it.

``put_with_ttl(key, value, ttl)`` stores a Put whose D record (and F row) carries its
expiry time, ``tag 3 | u64 seq | u64 expires_at_ns | value``, and, in the same commit, an
expiry index row in the metadata table::

    M key  b"ttl" 0x00 | u64 expires_at_ns | <bucket> 0x00 <key>     value  u64 seq

Readers compare the expiry with the wall clock themselves, so an expired key reads as
absent at once (``get``, ``entry``, ``keys``, ``scan``, ``create``/``update`` checks),
whatever the reaper is doing. The :class:`Reaper` (one daemon thread per connection, started
by the first TTL write or by ``connect()`` when the index is not empty) makes the expiry a
revision: when an index row is due it writes a PURGE marker for the key (one commit, like
``purge``: the expired revision and its feed row are force-dropped, so their bytes go) and
removes the index row. Watches deliver that marker as a :class:`~engine.kv.types.Purge`, and
folds and resume cursors see an ordinary purge. When a later write replaced the TTL'd
revision before it expired, reads already show the new value; at the expiry the reaper
still force-drops the old revision and its feed row (as NATS removes the message), which
loses nothing a fold needs (a newer record of the key survives). A write that evicts a
TTL'd revision (a rollup, ``max_history``) removes its index row; rows whose revision is
gone otherwise are dropped when they come due.

Notes: thread safety
    :class:`Reaper` methods may be called from any thread; reaping commits go through the
    bucket's write path (its lock and optimistic retries), so they race safely with writers
    and with the reapers of other connections on the same store.
"""

from __future__ import annotations

import logging
import math
import struct
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ..background import Background
from ..errors import ConflictError
from ..types import Bound, EntryKind, RangeCursor
from .errors import OperationFailed

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["REAP_RESULTS", "TTL_PREFIX", "Reaper", "check_ttl", "index_key", "parse_index_key"]

log = logging.getLogger("tierdb.kv.ttl")

TTL_PREFIX: Final = b"ttl\x00"
EXPIRES = struct.Struct(">Q")   # expires_at_ns (wall clock, nanoseconds since the epoch)
assert EXPIRES.size == 8
MAX_TTL_SECONDS: Final = float(1 << 32)   # ~136 years: keeps expires_at_ns inside a u64
IDLE_PAUSE: Final = 1.0        # look again this often with nothing due (other connections' rows)
REAP_PAGE: Final = 256
U64 = struct.Struct(">Q")
# What acting on one due index row did: wrote the key's PURGE marker; dropped a revision a
# later write had replaced; found no such revision (the row is dropped); or found the
# record not expired yet (the wall clock stepped back; the row stays).
REAP_RESULTS: Final = ("marker", "superseded", "stale", "early")


def check_ttl(ttl: object) -> float:
    """``ttl`` in seconds as a float, if it is a finite number in (0, 2**32].

    Raises:
        OperationFailed: anything else (before any I/O).
    """
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) \
            or not 0 < ttl <= MAX_TTL_SECONDS:
        raise OperationFailed(f"invalid ttl {ttl!r}: a TTL is a finite number of seconds > 0 "
                              f"and <= {MAX_TTL_SECONDS:.0f}")
    return float(ttl)


def expires_at_ns(ttl: float, now_ns: int) -> int:
    """The wall-clock expiry, in nanoseconds, of a write made at ``now_ns`` with ``ttl`` seconds."""
    return now_ns + math.ceil(ttl * 1e9)


def index_key(expires_ns: int, bucket: str, key: str) -> bytes:
    """The expiry index row of ``bucket``/``key`` expiring at ``expires_ns``."""
    return TTL_PREFIX + EXPIRES.pack(expires_ns) + bucket.encode() + b"\x00" + key.encode()


def parse_index_key(raw: bytes) -> tuple[int, str, str]:
    """``(expires_ns, bucket, key)`` of an index row key (inverse of :func:`index_key`)."""
    (expires,) = EXPIRES.unpack_from(raw, len(TTL_PREFIX))
    bucket, _, key = raw[len(TTL_PREFIX) + EXPIRES.size:].partition(b"\x00")
    return int(expires), bucket.decode(), key.decode()


class Reaper:
    """Turns due expiry index rows into PURGE markers (see module docstring).

    ``reap_one(bucket, key, expires_ns, seq)`` is the connection's: it acts on one due row
    and returns one of :data:`REAP_RESULTS`.
    """

    def __init__(self, store: Store, meta_table: EntryKind,
                 reap_one: Callable[[str, str, int, int], str],
                 clock: Callable[[], int] = time.time_ns) -> None:
        self._store = store
        self._clock = clock
        self._meta = meta_table
        self._reap_one = reap_one
        self.counters: dict[str, Any] = {r: 0 for r in REAP_RESULTS}
        self._loop = Background("tierdb-kv-ttl", self._tick, IDLE_PAUSE, self.counters)
        self._lock = threading.Lock()
        self._enabled = False

    def pending(self) -> bool:
        """Is any expiry index row stored (due or not)?"""
        return self._next_row() is not None

    def enable(self) -> None:
        """Allow the thread to run (the connection connected); start it if rows are stored."""
        with self._lock:
            self._enabled = True
        if self.pending():
            self.start()

    def start(self) -> None:
        """Start the thread if enabled (idempotent) and look at the index at once."""
        with self._lock:
            if not self._enabled:
                return
            self._loop.start()
        self._loop.kick()

    def stop(self) -> None:
        """Stop and join the thread; it stays stopped until :meth:`enable`."""
        with self._lock:
            self._enabled = False
            self._loop.stop()

    def _next_row(self) -> bytes | None:
        page = self._store.range_next(self._meta, RangeCursor(), Bound.included(TTL_PREFIX),
                                      Bound.excluded(b"ttl\x01"), None, 1)
        return page.entries[0].key if page.entries else None

    def reap_due(self, now_ns: int | None = None) -> int:
        """Reap every index row due at ``now_ns`` (default: now); returns markers written."""
        now = self._clock() if now_ns is None else now_ns
        written = 0
        cursor = RangeCursor()   # one cursor: each row is looked at once per call
        end = Bound.excluded(TTL_PREFIX + EXPIRES.pack(now + 1))
        while not cursor.exhausted:
            page = self._store.range_next(self._meta, cursor, Bound.included(TTL_PREFIX), end,
                                          None, REAP_PAGE)
            for e in page.entries:
                expires, bucket, key = parse_index_key(e.key)
                assert e.value is not None
                (seq,) = U64.unpack(e.value)
                result = self._reap_one(bucket, key, expires, int(seq))
                self.counters[result] += 1
                if result == "marker":
                    written += 1
                elif result == "stale":
                    self._drop_row(e.key)
        return written

    def _drop_row(self, row: bytes) -> None:
        """Remove a stale index row (every version: nothing needs its history)."""
        for _ in range(100):
            try:
                with self._store.begin() as tx:
                    tx.drop(self._meta, row, force=True)
                return
            except ConflictError:  # pragma: no cover - a drop-only commit rarely conflicts
                continue

    def _tick(self) -> float:
        if self._store.closed:
            return 3600.0   # the connection's shutdown stops the thread
        self.reap_due()
        row = self._next_row()
        if row is None:
            return IDLE_PAUSE
        expires, _, _ = parse_index_key(row)
        return min(IDLE_PAUSE, max(0.0, (expires - self._clock()) / 1e9))
