"""The local KV backend: buckets are key prefixes of three tables of a tierdb store.

Layout (``docs/KV.md``): with ``table_id = t`` the backend uses

- ``D = EntryKind.operator(t)``: the per-key records, key ``<bucket> 0x00 <key>``, value
  ``tag | u64 seq | payload``. The engine's version history of a D key *is* the key's KV
  history (trimmed to ``max_history`` by forced drops in the writing commit).
- ``F = EntryKind.operator(t + 1)``: the change feed, key ``<bucket> 0x00 <u64 seq>``, value
  ``tag | u16 key length | key | payload``. ``seq`` is a per-bucket counter incremented by
  every write; the engine version of an F row is the KV revision.
- ``M = EntryKind.operator(t + 2)``: per-bucket metadata (config, seq counter, horizon).

``tag`` tells a Put, a DEL marker, a PURGE marker and a Put with a TTL apart for every
revision (an engine tombstone could not). TTLs (:mod:`engine.kv.ttl`): an expired key reads
as absent at once; the connection's reaper turns the expiry into a PURGE marker. A KV write is one store commit and its revision is that commit
version, so revisions are global across buckets (``global_ordering``). Every write of a
bucket reads and bumps the seq counter, so writes of one bucket serialize (optimistic
conflicts retry) and feed order equals revision order.

Watches ride the feed: they poll ``store.version`` and page ``F`` past their position (no
store hook is needed). The *horizon* of a bucket is the highest revision whose removal lost
information (a marker removed by :meth:`LocalBucket.purge_deletes`); history trims and
purge rollups lose nothing (a newer record of the key survives) and do not move it. A resume
cursor below the horizon raises :class:`CursorExpired` (``first_seq = horizon + 1``).

Notes: thread safety
    A connection and its buckets may be shared by threads; writes of one bucket are
    serialized by a per-bucket lock (and by optimistic conflicts across connections). A
    :class:`LocalWatch` belongs to one consumer thread; ``close()`` is safe from any thread.
"""

from __future__ import annotations

import collections
import json
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

from ..errors import ConflictError, HistoryUnavailable
from ..types import Bound, EntryKind, RangeCursor, RawEntry
from .bucket import BucketFacets, WatchIteration, expected_u64, watch_resume_rev
from .errors import (
    AlreadyExists,
    CursorExpired,
    NotConnected,
    OperationFailed,
    RevisionMismatch,
    WatchError,
)
from .names import validate_bucket, validate_key, validate_prefix
from .protocol import resume_window_ok
from .ttl import EXPIRES, Reaper, check_ttl, expires_at_ns, index_key
from .types import (
    Capabilities,
    Delete,
    KvEntry,
    KvUpdate,
    Purge,
    Put,
    StoreConfig,
    VersionToken,
    WatchCursor,
    WatchScope,
)

if TYPE_CHECKING:
    from ..store import Store

__all__ = ["DEFAULT_TABLE_ID", "LocalBucket", "LocalConnection", "LocalWatch"]

DEFAULT_TABLE_ID: Final = 0x4B56_0000  # "KV"
TAG_PUT: Final = 0
TAG_DEL: Final = 1
TAG_PURGE: Final = 2
TAG_TTL: Final = 3      # a Put with an expiry: payload = u64 expires_at_ns | value
_TAGS: Final = (TAG_PUT, TAG_DEL, TAG_PURGE, TAG_TTL)
D_HEAD = struct.Struct(">BQ")      # tag, seq
F_HEAD = struct.Struct(">BH")      # tag, key length
U64 = struct.Struct(">Q")
assert D_HEAD.size == 9 and F_HEAD.size == 3 and U64.size == 8
MAX_RETRIES: Final = 1000
PAGE: Final = 512
POLL_MIN: Final = 0.001
POLL_MAX: Final = 0.02

LOCAL_CAPABILITIES: Final = Capabilities(
    streaming_watch=True, prefix_watch=True, purge=True, cas=True, ttl=True,
    transactions=False, global_ordering=True)


def _update_of(tag: int, key: str, payload: bytes, version: int) -> KvUpdate:
    token = VersionToken.from_u64(version)
    if tag == TAG_PUT:
        return Put(KvEntry(key, payload, token))
    if tag == TAG_TTL:   # a feed row: the value follows the expiry
        return Put(KvEntry(key, payload[EXPIRES.size:], token))
    if tag == TAG_DEL:
        return Delete(key, token)
    return Purge(key, token)


class _Record:
    """A decoded D row at one version.

    A TTL Put decodes as ``tag == TAG_PUT`` with ``expires`` set (0: no expiry) and the
    value alone in ``payload``.
    """

    __slots__ = ("expires", "payload", "seq", "tag", "version")

    def __init__(self, raw: bytes, version: int) -> None:
        self.tag, self.seq = D_HEAD.unpack_from(raw, 0)
        self.version = version
        if self.tag == TAG_TTL:
            self.tag = TAG_PUT
            (self.expires,) = EXPIRES.unpack_from(raw, D_HEAD.size)
            self.payload = raw[D_HEAD.size + EXPIRES.size:]
        else:
            self.expires = 0
            self.payload = raw[D_HEAD.size:]

    def expired(self, now_ns: int) -> bool:
        """Has this record's TTL passed at ``now_ns`` (wall clock, ns)?"""
        return self.expires != 0 and now_ns >= self.expires

    def live_put(self, now_ns: int) -> bool:
        """A Put that has not expired at ``now_ns`` (empty values included)."""
        return self.tag == TAG_PUT and not self.expired(now_ns)


class LocalConnection:
    """A :class:`~engine.kv.api.Connection` over a tierdb :class:`~engine.Store`.

    ``table_id`` chooses the three operator tables used (``table_id`` .. ``table_id + 2``).
    ``clock`` is the wall clock TTLs are measured on (nanoseconds since the epoch; tests
    inject a fake one). The connection does not own the store: ``shutdown()`` leaves it open.
    """

    def __init__(self, store: Store, *, table_id: int = DEFAULT_TABLE_ID,
                 poll_interval: float = POLL_MAX, clock: Callable[[], int] = time.time_ns) -> None:
        self._store = store
        self._clock = clock
        self.data_table = EntryKind.operator(table_id)
        self.feed_table = EntryKind.operator(table_id + 1)
        self.meta_table = EntryKind.operator(table_id + 2)
        self._poll_max = poll_interval
        self._connected = False
        self._lock = threading.Lock()
        self._bucket_locks: dict[str, threading.Lock] = {}
        self._watches: set[LocalWatch] = set()
        self._reaper = Reaper(store, self.meta_table, self._reap_one, clock)

    # -- Connection ----------------------------------------------------------------------

    def connect(self) -> None:
        """Idempotent. Raises NotConnected if the store is closed."""
        if self._store.closed:
            raise NotConnected("the tierdb store is closed; open it again and make a new LocalConnection")
        self._connected = True
        self._reaper.enable()   # starts at once if TTLs were written earlier (any run)

    def shutdown(self) -> None:
        """Close every open watch and stop the TTL reaper; afterwards ``is_healthy()`` is False."""
        self._connected = False
        self._reaper.stop()
        with self._lock:
            watches = list(self._watches)
        for w in watches:
            w.close()

    def is_healthy(self) -> bool:
        return self._connected and not self._store.closed

    def capabilities(self) -> Capabilities:
        return LOCAL_CAPABILITIES

    def store(self, name: str) -> LocalBucket:
        return self.store_with_config(StoreConfig(validate_bucket(name)))

    def store_with_config(self, config: StoreConfig) -> LocalBucket:
        """Open bucket ``config.name``; the config is written only if the bucket is new."""
        if not isinstance(config, StoreConfig):
            raise TypeError(f"config must be a StoreConfig, got {type(config).__name__}")
        self._check()
        ckey = b"cfg\x00" + config.name.encode()
        stored = self._store.get(self.meta_table, ckey)
        if stored is None:
            body = json.dumps(config.to_json(), sort_keys=True, separators=(",", ":")).encode()
            for _ in range(MAX_RETRIES):
                tx = self._store.begin()
                try:
                    current = tx.get(self.meta_table, ckey)
                    if current is not None:
                        tx.rollback()
                        stored = current
                        break
                    tx.set(self.meta_table, ckey, body)
                    tx.commit()
                    stored = body
                    break
                except ConflictError:
                    continue
            else:  # pragma: no cover - needs 1000 lost races
                raise OperationFailed(f"could not create bucket {config.name!r}: too many conflicts")
        assert stored is not None
        return LocalBucket(self, StoreConfig.from_json(json.loads(stored)))

    # -- internals -----------------------------------------------------------------------

    def _check(self) -> None:
        if not self._connected:
            raise NotConnected("LocalConnection is not connected: call connect() first "
                               "(or it was shut down)")
        if self._store.closed:
            raise NotConnected("the tierdb store behind this LocalConnection is closed")

    def _bucket_lock(self, bucket: str) -> threading.Lock:
        with self._lock:
            lock = self._bucket_locks.get(bucket)
            if lock is None:
                lock = self._bucket_locks[bucket] = threading.Lock()
            return lock

    def _reap_one(self, bucket: str, key: str, expires_ns: int, seq: int) -> str:
        """Act on one due expiry index row (the reaper's callback; see ``LocalBucket._expire``)."""
        return self.store(bucket)._expire(key, expires_ns, seq)   # NotConnected after shutdown

    def reap_expired(self) -> int:
        """Write the PURGE markers of every key whose TTL has passed now; returns how many.

        The reaper thread does this on its own; call it to be sure (e.g. before ``gc()``).
        """
        self._check()
        return self._reaper.reap_due()

    def _register(self, watch: LocalWatch) -> None:
        with self._lock:
            self._watches.add(watch)

    def _unregister(self, watch: LocalWatch) -> None:
        with self._lock:
            self._watches.discard(watch)

    def __repr__(self) -> str:
        return f"<LocalConnection {self._store!r} {'connected' if self._connected else 'idle'}>"


class LocalBucket(BucketFacets["LocalWatch"]):
    """One bucket: a :class:`KvStore` that is also its own reader, writer, watcher and purger.

    Extensions beyond slipstream (both backends have them): :meth:`history`,
    :meth:`stats`, :meth:`purge_deletes`, :meth:`first_seq`.
    """

    def __init__(self, conn: LocalConnection, config: StoreConfig) -> None:
        self._conn = conn
        self._s = conn._store
        self.config = config
        self._name = config.name
        self._prefix = config.name.encode() + b"\x00"
        self._D = conn.data_table
        self._F = conn.feed_table
        self._M = conn.meta_table
        self._seq_key = b"seq\x00" + config.name.encode()
        self._hz_key = b"hz\x00" + config.name.encode()

    # -- KvStore ---------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    def ttl_writer(self) -> LocalBucket:
        return self

    # -- low-level reads -------------------------------------------------------------------

    def _dkey(self, key: str) -> bytes:
        return self._prefix + key.encode()

    def _fkey(self, seq: int) -> bytes:
        return self._prefix + U64.pack(seq)

    def _lookup(self, dkey: bytes, version: int | None = None) -> _Record | None:
        """The D record of ``dkey`` at ``version`` (None = latest), with its version."""
        b = self._s.range_next(self._D, RangeCursor(), Bound.included(dkey), Bound.included(dkey),
                               version, 1)
        if not b.entries:
            return None
        e = b.entries[0]
        assert e.value is not None
        return _Record(e.value, e.version)

    def _meta_u64(self, key: bytes, version: int | None = None) -> int:
        raw = self._s.get(self._M, key, version)
        return 0 if raw is None else int(U64.unpack(raw)[0])

    def _scan_d(self, prefix: str, version: int | None = None) -> Iterator[tuple[str, _Record]]:
        start = self._prefix + prefix.encode()
        end = _prefix_end(start)
        cursor = RangeCursor()
        n = len(self._prefix)
        while not cursor.exhausted:
            page = self._s.range_next(self._D, cursor, Bound.included(start), end, version, PAGE)
            for e in page.entries:
                assert e.value is not None
                yield e.key[n:].decode(), _Record(e.value, e.version)

    def _feed_page(self, from_seq: int, version: int | None, limit: int) -> list[RawEntry]:
        end = _prefix_end(self._prefix)
        page = self._s.range_next(self._F, RangeCursor(), Bound.included(self._fkey(from_seq)),
                                  end, version, limit)
        return page.entries

    # -- KvReader --------------------------------------------------------------------------

    def get(self, key: str) -> KvEntry | None:
        """The latest value; None for missing keys, markers and empty values. O(log n)."""
        self._conn._check()
        rec = self._lookup(self._dkey(validate_key(key)))
        if rec is None or not rec.payload or not rec.live_put(self._conn._clock()):
            return None
        return KvEntry(key, rec.payload, VersionToken.from_u64(rec.version))

    def entry(self, key: str) -> KvEntry | None:
        """The raw latest Put (empty values included); None for markers and missing keys."""
        self._conn._check()
        rec = self._lookup(self._dkey(validate_key(key)))
        if rec is None or not rec.live_put(self._conn._clock()):
            return None
        return KvEntry(key, rec.payload, VersionToken.from_u64(rec.version))

    def keys(self, prefix: str = "") -> list[str]:
        return [e.key for e in self.scan(prefix)]

    def scan(self, prefix: str = "") -> list[KvEntry]:
        """Every live entry under ``prefix``, sorted by key; no cut-off. O(keys under prefix)."""
        self._conn._check()
        validate_prefix(prefix)
        out: list[KvEntry] = []
        now = self._conn._clock()
        for key, rec in self._scan_d(prefix):
            if rec.tag == TAG_PUT and rec.payload and not rec.expired(now):
                out.append(KvEntry(key, rec.payload, VersionToken.from_u64(rec.version)))
        return out

    def history(self, key: str) -> list[KvUpdate]:
        """Every retained revision of ``key``, oldest first (markers included)."""
        self._conn._check()
        out: list[KvUpdate] = []
        for version, raw in reversed(self._s.history(self._D, self._dkey(validate_key(key)))):
            if raw is None:
                continue
            rec = _Record(raw, version)
            out.append(_update_of(rec.tag, key, rec.payload, version))
        return out

    def stats(self) -> dict[str, int]:
        """``{"records", "bytes", "first_seq", "last_revision"}`` of this bucket."""
        self._conn._check()
        records = 0
        nbytes = 0
        seq = 1
        last = 0
        while True:
            page = self._feed_page(seq, None, PAGE)
            for e in page:
                assert e.value is not None
                records += 1
                nbytes += len(e.value) + len(e.key)
                last = max(last, e.version)
            if len(page) < PAGE:
                break
            seq = int(U64.unpack_from(page[-1].key, len(self._prefix))[0]) + 1
        for _key, rec in self._scan_d(""):
            for _v, raw in self._s.history(self._D, self._dkey(_key)):
                if raw is not None:
                    nbytes += len(raw) + len(self._dkey(_key))
        return {"records": records, "bytes": nbytes, "first_seq": self.first_seq(),
                "last_revision": last}

    def first_seq(self) -> int:
        """The lowest revision a resume may need: every cursor >= ``first_seq - 1`` is valid."""
        return self._meta_u64(self._hz_key) + 1

    # -- KvWriter --------------------------------------------------------------------------

    def _write(self, key: str, tag: int, payload: bytes,
               check: Callable[[_Record | None], None] | None = None,
               expires_ns: int = 0) -> VersionToken:
        """One KV write = one store commit; returns its revision.

        The commit bumps the bucket's seq counter, writes the D record and the F row, and
        force-drops the revisions that ``max_history`` (or a purge or TTL rollup) evicts.
        With ``expires_ns`` (``tag`` is then ``TAG_TTL``) it also writes the expiry index
        row; a write over a TTL record removes that record's index row.
        """
        self._conn._check()
        validate_key(key)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise OperationFailed(f"value for key {key!r} must be bytes, got {type(payload).__name__}")
        payload = bytes(payload)
        if tag == TAG_TTL:
            payload = EXPIRES.pack(expires_ns) + payload
        kb = key.encode()
        dk = self._prefix + kb
        keep = 1 if tag in (TAG_PURGE, TAG_TTL) else self.config.max_history
        s = self._s
        with self._conn._bucket_lock(self._name):
            for _ in range(MAX_RETRIES):
                tx = s.begin()
                try:
                    raw_seq = tx.get(self._M, self._seq_key)
                    rv = tx.read_version
                    cur = self._lookup(dk, rv)
                    if check is not None:
                        check(cur)
                    seq = (0 if raw_seq is None else int(U64.unpack(raw_seq)[0])) + 1
                    tx.set(self._M, self._seq_key, U64.pack(seq))
                    tx.drop(self._M, self._seq_key, keep_last_versions=1, force=True)
                    tx.set(self._D, dk, D_HEAD.pack(tag, seq) + payload)
                    tx.set(self._F, self._fkey(seq), F_HEAD.pack(tag, len(kb)) + kb + payload)
                    if tag == TAG_TTL:
                        tx.set(self._M, index_key(expires_ns, self._name, key), U64.pack(seq))
                    if cur is not None:
                        hist = [(v, r) for v, r in s.history(self._D, dk) if v <= rv and r is not None]
                        evicted = hist[keep - 1:]
                        if evicted:
                            for v, r in evicted:
                                assert r is not None
                                old = _Record(r, v)
                                tx.drop(self._F, self._fkey(old.seq), force=True)
                                if old.expires and old.expires != expires_ns:
                                    # the TTL'd revision goes now: so does its index row
                                    tx.drop(self._M, index_key(old.expires, self._name, key), force=True)
                            tx.drop(self._D, dk, keep_last_versions=keep, force=True)
                    version = tx.commit()
                    return VersionToken.from_u64(version)
                except ConflictError:
                    continue
                finally:
                    if not tx.closed:
                        tx.rollback()
        raise OperationFailed(  # pragma: no cover - needs 1000 lost races in a row
            f"write of key {key!r} in bucket {self._name!r} lost {MAX_RETRIES} optimistic races; retry later")

    def put(self, key: str, value: bytes) -> VersionToken:
        return self._write(key, TAG_PUT, value)

    def create(self, key: str, value: bytes) -> VersionToken:
        def check(cur: _Record | None) -> None:
            if cur is not None and cur.live_put(self._conn._clock()):
                raise AlreadyExists(f"key {key!r} already exists in bucket {self._name!r} "
                                    f"(revision {cur.version}); use update() with its version")
        return self._write(key, TAG_PUT, value, check)

    def _cas(self, key: str, value: bytes, expected: VersionToken) -> VersionToken:
        want = expected_u64(key, expected, "tokens of this backend are 8-byte revisions")
        validate_key(key)

        def check(cur: _Record | None) -> None:
            gone = cur is not None and cur.expired(self._conn._clock())
            if want == 0 or cur is None or cur.version != want or gone:
                have = "no revision" if cur is None else \
                    f"revision {cur.version}{' (expired)' if gone else ''}"
                raise RevisionMismatch(f"key {key!r} in bucket {self._name!r} is at {have}, "
                                       f"not the expected revision {want}; re-read and retry")
        return self._write(key, TAG_PUT, value, check)

    def update(self, key: str, value: bytes, expected: VersionToken) -> VersionToken:
        return self._cas(key, value, expected)

    def delete(self, key: str) -> bool:
        self._write(key, TAG_DEL, b"")
        return True

    def delete_with_version(self, key: str, expected: VersionToken) -> VersionToken:
        return self._cas(key, b"", expected)

    # -- KvTtl -----------------------------------------------------------------------------

    def put_with_ttl(self, key: str, value: bytes, ttl: float) -> VersionToken:
        """Put ``value`` that expires ``ttl`` seconds (wall clock) from now.

        Like a purge followed by a put in one write, the key's earlier revisions go (so the
        expiry leaves nothing behind, as on NATS). Once expired the key reads as absent at
        once; the connection's reaper then writes a PURGE marker (watches deliver it) and
        the expired revision's bytes are dropped. A later write of the key cancels the TTL
        for reads; the TTL'd revision still leaves the key's history at its expiry (as the
        message does on NATS).

        Raises:
            OperationFailed: an invalid key, value or ``ttl`` (before any I/O).
        """
        validate_key(key)
        seconds = check_ttl(ttl)
        version = self._write(key, TAG_TTL, value, None, expires_at_ns(seconds, self._conn._clock()))
        self._conn._reaper.start()
        return version

    def _expire(self, key: str, expires_ns: int, seq: int) -> str:
        """Act on the expiry index row (``key``, ``expires_ns``, record ``seq``); returns
        what it did (:data:`engine.kv.ttl.REAP_RESULTS`).

        ``"early"``: the record has not expired (the wall clock stepped back): keep the row.
        ``"marker"``: the key's current record is it: write a PURGE marker (one commit that
        force-drops the revision and its feed row and removes the index row).
        ``"superseded"``: a later write replaced it: force-drop that revision (and any older
        one) with its feed row and the index row; reads are unchanged.
        ``"stale"``: no revision of the key is that record any more: the caller drops the row.
        """
        if self._conn._clock() < expires_ns:
            return "early"

        def check(cur: _Record | None) -> None:
            if cur is None or cur.seq != seq or cur.expires != expires_ns:
                raise _NotCurrent

        try:
            self._write(key, TAG_PURGE, b"", check)
            return "marker"
        except _NotCurrent:
            pass
        dk = self._dkey(key)
        s = self._s
        with self._conn._bucket_lock(self._name):
            for _ in range(MAX_RETRIES):
                tx = s.begin()
                try:
                    tx.get(self._M, self._seq_key)   # conflicts with any write of the bucket
                    rv = tx.read_version
                    found = None
                    for v, r in s.history(self._D, dk):
                        if v <= rv and r is not None:
                            rec = _Record(r, v)
                            if rec.seq == seq and rec.expires == expires_ns:
                                found = rec
                                break
                    if found is None:
                        tx.rollback()
                        return "stale"
                    tx.drop(self._D, dk, up_to_version=found.version + 1, force=True)
                    tx.drop(self._F, self._fkey(seq), force=True)
                    tx.drop(self._M, index_key(expires_ns, self._name, key), force=True)
                    tx.commit()
                    return "superseded"
                except ConflictError:
                    continue
                finally:
                    if not tx.closed:
                        tx.rollback()
        raise OperationFailed(  # pragma: no cover - needs 1000 lost races in a row
            f"expiry of key {key!r} in bucket {self._name!r} lost {MAX_RETRIES} races; retried later")

    # -- KvPurge ---------------------------------------------------------------------------

    def purge(self, key: str) -> bool:
        """Write a PURGE marker and drop every earlier revision of ``key``. Idempotent."""
        self._write(key, TAG_PURGE, b"")
        return True

    def purge_deletes(self, older_than: float = 1800.0) -> int:
        """Remove DEL/PURGE markers older than ``older_than`` seconds entirely (younger
        ones are kept as the key's only record). Returns how many keys were cleared.

        Removing a marker loses information a lagging watch needs, so it moves the bucket's
        horizon: resume cursors below it raise CursorExpired.
        """
        self._conn._check()
        now = time.time()
        cleared = 0
        for key, rec in list(self._scan_d("")):
            if rec.tag == TAG_PUT:
                continue
            t = self._s.commit_time(rec.version)
            young = older_than > 0 and t is not None and now - t < older_than
            dk = self._dkey(key)
            with self._conn._bucket_lock(self._name):
                for _ in range(MAX_RETRIES):
                    tx = self._s.begin()
                    try:
                        tx.get(self._M, self._seq_key)
                        cur = self._lookup(dk, tx.read_version)
                        if cur is None or cur.version != rec.version:
                            tx.rollback()
                            break  # rewritten meanwhile: not a stale marker any more
                        hist = [(v, r) for v, r in self._s.history(self._D, dk)
                                if v <= tx.read_version and r is not None]
                        gone = hist[1:] if young else hist
                        for _v, r in gone:
                            assert r is not None
                            tx.drop(self._F, self._fkey(D_HEAD.unpack_from(r, 0)[1]), force=True)
                        if young:
                            tx.drop(self._D, dk, keep_last_versions=1, force=True)
                        else:
                            hz = max(self._meta_u64(self._hz_key, tx.read_version), rec.version)
                            tx.set(self._M, self._hz_key, U64.pack(hz))
                            tx.drop(self._M, self._hz_key, keep_last_versions=1, force=True)
                            tx.drop(self._D, dk, force=True)
                            cleared += 1
                        if gone or not young:
                            # bump the seq counter so concurrent writers of the bucket conflict
                            tx.set(self._M, self._seq_key, tx.get(self._M, self._seq_key) or U64.pack(0))
                            tx.drop(self._M, self._seq_key, keep_last_versions=1, force=True)
                            tx.commit()
                        else:
                            tx.rollback()
                        break
                    except ConflictError:
                        continue
                    finally:
                        if not tx.closed:
                            tx.rollback()
        return cleared

    # -- KvWatcher -------------------------------------------------------------------------

    def watch(self, scope: WatchScope, cursor: WatchCursor | None = None) -> LocalWatch:
        """State-sync watch of ``scope``, or a resume above ``cursor`` (see the class doc)."""
        self._conn._check()
        resume_rev = watch_resume_rev(scope, cursor, "this backend's cursors are 8-byte revisions")
        return LocalWatch(self, scope, resume_rev)

    def _seek(self, after_version: int, at_version: int) -> int:
        """The smallest feed seq whose revision is above ``after_version``. O(log n) pages."""
        last = self._meta_u64(self._seq_key, at_version)
        lo, hi = 1, last + 1
        while lo < hi:
            mid = (lo + hi) // 2
            page = self._feed_page(mid, at_version, 1)
            if page and page[0].version > after_version:
                hi = mid
            elif page:
                lo = int(U64.unpack_from(page[0].key, len(self._prefix))[0]) + 1
            else:
                hi = mid
        return lo

    def __repr__(self) -> str:
        return f"<LocalBucket {self._name!r}>"


class LocalWatch(WatchIteration):
    """A watch over a local bucket: the initial state (unless resuming), then the feed.

    Complexity: the initial state costs one scan of the scope; each poll that finds the
    store version moved costs one page read of the feed.
    """

    def __init__(self, bucket: LocalBucket, scope: WatchScope, resume_rev: int | None) -> None:
        self._b = bucket
        self._scope = scope
        self._pending: collections.deque[KvUpdate] = collections.deque()
        self._ended = scope.is_empty
        self._guard = scope.is_all
        s = bucket._s
        if self._ended:
            return
        version = s.version
        if resume_rev is None:
            initial: list[tuple[int, KvUpdate]] = []
            now = bucket._conn._clock()
            for prefix in scope.list_prefixes():
                for key, rec in bucket._scan_d(prefix, version):
                    # an expired TTL value not reaped yet is already gone: say so
                    tag = TAG_PURGE if rec.expired(now) else rec.tag
                    initial.append((rec.version, _update_of(tag, key, rec.payload, rec.version)))
            initial.sort(key=lambda t: t[0])
            self._pending.extend(u for _, u in initial)
            after = version
        else:
            if not resume_window_ok(bucket.first_seq(), resume_rev):
                raise CursorExpired(
                    f"cursor {resume_rev} of bucket {bucket.name!r} is below the retained history "
                    f"(first_seq {bucket.first_seq()}); resync with a full watch")
            after = resume_rev
        self._next_seq = bucket._seek(after, version)
        if resume_rev is not None and not resume_window_ok(bucket.first_seq(), resume_rev):
            raise CursorExpired(f"cursor {resume_rev} of bucket {bucket.name!r} expired while the "
                                "watch was being set up; resync with a full watch")
        self._frontier = after              # every revision <= frontier has been read
        self._seen_version = version if resume_rev is None else -1
        self._closed_evt = threading.Event()
        bucket._conn._register(self)

    @property
    def ended(self) -> bool:
        return self._ended

    def _poll(self) -> bool:
        """Read new feed rows into the pending queue; True if anything was queued."""
        b = self._b
        s = b._s
        version = s.version
        if version == self._seen_version:
            return False
        queued = False
        while True:
            try:
                rows = b._feed_page(self._next_seq, version, PAGE)
            except HistoryUnavailable as exc:  # pragma: no cover - needs an aggressive Retention
                raise WatchError(f"watch of bucket {b.name!r} fell behind the store's history: {exc}") from exc
            n = len(b._prefix)
            for e in rows:
                assert e.value is not None
                self._next_seq = int(U64.unpack_from(e.key, n)[0]) + 1
                tag, klen = F_HEAD.unpack_from(e.value, 0)
                key = e.value[F_HEAD.size:F_HEAD.size + klen].decode()
                if self._scope.matches(key):
                    self._pending.append(_update_of(tag, key, e.value[F_HEAD.size + klen:], e.version))
                    queued = True
            if len(rows) < PAGE:
                break
        if self._guard:
            hz = b._meta_u64(b._hz_key, version)
            # Removed information above what this watch has read: a lagging watch lost it.
            if hz > self._frontier:
                raise WatchError(
                    f"live watch of bucket {b.name!r} was overrun: revision {hz} was removed before "
                    f"it was delivered (read up to {self._frontier}); restart from the persisted "
                    "cursor to resync")
        self._frontier = version
        self._seen_version = version
        return queued

    def next(self, timeout: float | None = None) -> KvUpdate | None:
        """The next update, or None after ``timeout`` seconds (or when the watch ended)."""
        if self._pending:
            return self._pending.popleft()
        if self._ended:
            return None
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_MIN
        while True:
            if self._b._s.closed or not self._b._conn._connected:
                self.close()
                return None
            self._poll()
            if self._pending:
                return self._pending.popleft()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return None
            wait = delay if deadline is None else min(delay, deadline - now)
            if self._closed_evt.wait(wait):
                return None
            delay = min(delay * 2, self._b._conn._poll_max)

    def close(self) -> None:
        if self._ended:
            return
        self._ended = True
        self._pending.clear()
        self._closed_evt.set()
        self._b._conn._unregister(self)


class _NotCurrent(Exception):
    """The key's current record is not the TTL record being expired."""


def _prefix_end(prefix: bytes) -> Bound:
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return Bound(None, False)   # unbounded
    p[-1] += 1
    return Bound.excluded(bytes(p))
