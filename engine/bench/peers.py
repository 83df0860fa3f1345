"""Benchmark targets behind one small protocol: the peers tierdb is compared with.

Every peer is implemented the way a careful user of that library would write a versioned
key-value store on it (issue 10 names the practices):

==================  =========================================================================
``rocksdb``         versioned RocksDB (rocksdict raw mode). Key = escaped user key (0x00 ->
                    0x00 0xFF, then a 0x00 0x00 terminator) + bitwise-inverted big-endian u64
                    version, so a key's versions sort newest first - the warm tier's layout.
                    Value = tag byte (0x01 value, 0x02 tombstone) + value. One WriteBatch per
                    commit; gets seek a reused iterator; scans iterate ``items(from_key)``
                    and keep the first visible version of each key.
``lmdb``            the same key layout in LMDB; ``putmulti`` per commit, no sync; gets
                    and scans use a cursor of one reused read transaction.
``sqlite``          ``(key, version)`` WITHOUT ROWID table, WAL, ``synchronous=NORMAL``; a
                    tombstone is a NULL value; gets are one indexed ``LIMIT 1`` query.
``rocksdb-raw``     rocksdict raw mode, one value per key, no versions: the binding's ceiling
                    (latest reads only).
``dict``            a dict of version lists in memory: the reference and correctness oracle.
``slatedb``         SlateDB (an LSM on object storage; here a local ``file://`` store) with the
                    versioned key layout; its binding is async-only, so each call batch is one
                    coroutine run on a private event loop.
==================  =========================================================================

A missing library makes :func:`unavailable` return a one-line reason; nothing here imports a
peer library at module import time. ``make_peer(..., sync=True)`` (``--durability sync``)
makes every commit durable before it returns: RocksDB synced WAL writes, LMDB ``sync=True``,
SQLite ``synchronous=FULL``; SlateDB writes are always durable; the dict oracle ignores it.

Notes: thread safety - a target is used by one thread, except :meth:`commit` of the targets
that :func:`sync_committer` drives from several threads (their libraries serialize writes).
"""

from __future__ import annotations

import bisect
import importlib
import os
import sqlite3
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "PEERS",
    "DictReference",
    "LmdbPeer",
    "RawRocksDB",
    "SlateDBPeer",
    "SqlitePeer",
    "Target",
    "VersionedRocksDB",
    "disk_bytes",
    "make_peer",
    "unavailable",
]

MAX_VERSION = (1 << 64) - 1
_INV = struct.Struct(">Q").pack
TERMINATOR = b"\x00\x00"
TAG_VALUE = b"\x01"
TAG_TOMBSTONE = b"\x02"
_TOMBSTONE_INT = TAG_TOMBSTONE[0]

Sets = Sequence[tuple[bytes, bytes]]
Removes = Sequence[bytes]


class Target(Protocol):
    """What a benchmark workload may call. Versions are the commit count (1, 2, ...).

    ``version=None`` means the latest version. ``versioned`` False means the target answers
    only latest reads (old-version figures are reported as n/a).
    """

    name: str
    versioned: bool

    def commit(self, sets: Sets, removes: Removes = ()) -> int:
        """Apply one atomic commit; return its version."""
        ...

    def get(self, key: bytes, version: int | None = None) -> bytes | None: ...

    def get_many(self, keys: Sequence[bytes], version: int | None = None) -> list[bytes | None]: ...

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> list[tuple[bytes, bytes]]:
        """Up to ``limit`` live ``(key, value)`` from ``start`` (inclusive) in key order."""
        ...

    def count(self, version: int | None = None) -> int:
        """Live keys at ``version`` by a full scan."""
        ...

    def iter_all(self, version: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Every live ``(key, value)`` at ``version`` (for verification; not timed)."""
        ...

    def age(self) -> None:
        """What an operator does to a store that has aged (flush memtables, checkpoint)."""
        ...

    def close(self) -> None: ...

    def reopen(self) -> None:
        """Open the same data again after :meth:`close`."""
        ...

    def disk_bytes(self) -> int: ...


def disk_bytes(path: Path) -> int:
    """Bytes a directory tree holds on disk: apparent sizes, sparse files at their allocation."""
    total = 0
    if path.is_file():
        st = path.stat()
        return min(st.st_size, st.st_blocks * 512)
    for root, _dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.stat(os.path.join(root, f))
            except FileNotFoundError:
                continue
            total += min(st.st_size, st.st_blocks * 512)
    return total


def _escape(key: bytes) -> bytes:
    return key.replace(b"\x00", b"\x00\xff") + TERMINATOR


def _unescape(prefix: bytes) -> bytes:
    """``escape(key) + terminator`` -> key."""
    k = prefix[:-2]
    return k.replace(b"\x00\xff", b"\x00") if 0 in k else k


def _inv(version: int | None) -> bytes:
    return _INV(MAX_VERSION - (MAX_VERSION if version is None else version))


# -- versioned RocksDB ---------------------------------------------------------------------


class VersionedRocksDB:
    """Versioned keys in RocksDB (rocksdict raw mode), the warm tier's layout."""

    versioned = True

    def __init__(self, path: Path, *, cache_bytes: int = 64 << 20, sync: bool = False) -> None:
        self.name = "peer:rocksdb"
        self.path = Path(path)
        self.cache_bytes = cache_bytes
        self.sync = sync
        self.version = 0
        self._open()

    def _options(self) -> Any:
        import rocksdict

        o = rocksdict.Options(raw_mode=True)
        o.create_if_missing(True)
        bbo = rocksdict.BlockBasedOptions()
        bbo.set_block_cache(rocksdict.Cache(self.cache_bytes))
        o.set_block_based_table_factory(bbo)
        o.set_compression_type(rocksdict.DBCompressionType.lz4())
        return o

    def _open(self) -> None:
        import rocksdict

        self._rd = rocksdict
        self.db: Any = rocksdict.Rdict(str(self.path), self._options())
        self._wo = None
        if self.sync:
            self._wo = rocksdict.WriteOptions()
            self._wo.sync = True
        self._it: Any = None

    def commit(self, sets: Sets, removes: Removes = ()) -> int:
        self.version += 1
        suffix = TERMINATOR + _INV(MAX_VERSION - self.version)
        wb = self._rd.WriteBatch(raw_mode=True)
        put = wb.put
        for k, v in sets:
            put(k.replace(b"\x00", b"\x00\xff") + suffix, TAG_VALUE + v)
        for k in removes:
            put(k.replace(b"\x00", b"\x00\xff") + suffix, TAG_TOMBSTONE)
        if self._wo is None:
            self.db.write(wb)
        else:
            self.db.write(wb, self._wo)
        self._it = None  # an iterator is a snapshot: the next read takes a new one
        return self.version

    def _iter(self) -> Any:
        it = self._it
        if it is None:
            it = self._it = self.db.iter()
        return it

    def get(self, key: bytes, version: int | None = None) -> bytes | None:
        return self.get_many((key,), version)[0]

    def get_many(self, keys: Sequence[bytes], version: int | None = None) -> list[bytes | None]:
        it = self._iter()
        seek, valid, ikey, ivalue = it.seek, it.valid, it.key, it.value
        inv = _inv(version)
        out: list[bytes | None] = []
        append = out.append
        for k in keys:
            p = k.replace(b"\x00", b"\x00\xff") + TERMINATOR
            seek(p + inv)
            if valid() and ikey()[:-8] == p:
                v = ivalue()
                append(None if v[0] == _TOMBSTONE_INT else v[1:])
            else:
                append(None)
        return out

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return out
        vis = _inv(version)  # a stored version is visible when its inverted suffix >= this
        last = None
        append = out.append
        items = self.db.items(from_key=_escape(start)) if start is not None else self.db.items()
        for kk, val in items:
            p = kk[:-8]
            if p == last or kk[-8:] < vis:
                continue
            last = p
            if val[0] == _TOMBSTONE_INT:
                continue
            append((_unescape(p), val[1:]))
            if len(out) >= limit:
                break
        return out

    def count(self, version: int | None = None) -> int:
        vis = _inv(version)
        last = None
        n = 0
        for kk, val in self.db.items():
            p = kk[:-8]
            if p == last or kk[-8:] < vis:
                continue
            last = p
            if val[0] != _TOMBSTONE_INT:
                n += 1
        return n

    def iter_all(self, version: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.scan(None, 1 << 62, version))

    def age(self) -> None:
        self._it = None
        self.db.flush()

    def close(self) -> None:
        self._it = None
        self.db.close()

    def reopen(self) -> None:
        self._open()

    def disk_bytes(self) -> int:
        return disk_bytes(self.path)


class RawRocksDB:
    """rocksdict raw mode, one value per key: the binding's ceiling (latest reads only)."""

    versioned = False

    def __init__(self, path: Path, *, cache_bytes: int = 64 << 20, sync: bool = False) -> None:
        self.name = "peer:rocksdb-raw"
        self.path = Path(path)
        self.cache_bytes = cache_bytes
        self.sync = sync
        self.version = 0
        self._open()

    def _open(self) -> None:
        import rocksdict

        self._rd = rocksdict
        o = rocksdict.Options(raw_mode=True)
        o.create_if_missing(True)
        bbo = rocksdict.BlockBasedOptions()
        bbo.set_block_cache(rocksdict.Cache(self.cache_bytes))
        bbo.set_bloom_filter(10, False)  # exact-key gets: a whole-key bloom filter is best practice
        o.set_block_based_table_factory(bbo)
        o.set_compression_type(rocksdict.DBCompressionType.lz4())
        self.db: Any = rocksdict.Rdict(str(self.path), o)
        self._wo: Any = None
        if self.sync:
            self._wo = rocksdict.WriteOptions()
            self._wo.sync = True

    def commit(self, sets: Sets, removes: Removes = ()) -> int:
        self.version += 1
        wb = self._rd.WriteBatch(raw_mode=True)
        put, delete = wb.put, wb.delete
        for k, v in sets:
            put(k, v)
        for k in removes:
            delete(k)
        if self._wo is None:
            self.db.write(wb)
        else:
            self.db.write(wb, self._wo)
        return self.version

    def _latest(self, version: int | None) -> None:
        if version is not None and version != self.version:
            raise NotImplementedError("rocksdb-raw keeps no versions; it answers latest reads only")

    def get(self, key: bytes, version: int | None = None) -> bytes | None:
        self._latest(version)
        return self.db.get(key)  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[bytes], version: int | None = None) -> list[bytes | None]:
        self._latest(version)
        return self.db.get(list(keys))  # type: ignore[no-any-return]  # one multi_get

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> list[tuple[bytes, bytes]]:
        self._latest(version)
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return out
        append = out.append
        for kv in (self.db.items(from_key=start) if start is not None else self.db.items()):
            append(kv)
            if len(out) >= limit:
                break
        return out

    def count(self, version: int | None = None) -> int:
        self._latest(version)
        n = 0
        for _ in self.db.keys():  # noqa: SIM118 - rocksdict iterates keys, it is not a dict
            n += 1
        return n

    def iter_all(self, version: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        self._latest(version)
        return iter(self.db.items())

    def age(self) -> None:
        self.db.flush()

    def close(self) -> None:
        self.db.close()

    def reopen(self) -> None:
        self._open()

    def disk_bytes(self) -> int:
        return disk_bytes(self.path)


# -- LMDB ----------------------------------------------------------------------------------


class LmdbPeer:
    """Versioned keys (the RocksDB layout) in LMDB; ``putmulti`` per commit, no sync."""

    versioned = True

    def __init__(self, path: Path, *, map_size: int = 64 << 30, sync: bool = False) -> None:
        self.name = "peer:lmdb"
        self.path = Path(path)
        self.map_size = map_size
        self.sync = sync
        self.version = 0
        self._open()

    def _open(self) -> None:
        import lmdb

        self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(str(self.path), map_size=self.map_size, sync=self.sync, metasync=self.sync,
                             readahead=False, max_dbs=0)
        self._rtxn: Any = None
        self._cur: Any = None

    def commit(self, sets: Sets, removes: Removes = ()) -> int:
        self.version += 1
        suffix = TERMINATOR + _INV(MAX_VERSION - self.version)
        rows = [(k.replace(b"\x00", b"\x00\xff") + suffix, TAG_VALUE + v) for k, v in sets]
        if removes:
            rows += [(k.replace(b"\x00", b"\x00\xff") + suffix, TAG_TOMBSTONE) for k in removes]
        with self.env.begin(write=True) as txn:
            txn.cursor().putmulti(rows, dupdata=False, overwrite=True, append=False)
        self._end_read()
        return self.version

    def _end_read(self) -> None:
        if self._rtxn is not None:
            self._rtxn.abort()
            self._rtxn = self._cur = None

    def _cursor(self) -> Any:
        if self._cur is None:
            self._rtxn = self.env.begin(buffers=False)
            self._cur = self._rtxn.cursor()
        return self._cur

    def get(self, key: bytes, version: int | None = None) -> bytes | None:
        return self.get_many((key,), version)[0]

    def get_many(self, keys: Sequence[bytes], version: int | None = None) -> list[bytes | None]:
        cur = self._cursor()
        set_range, ckey, cvalue = cur.set_range, cur.key, cur.value
        inv = _inv(version)
        out: list[bytes | None] = []
        append = out.append
        for k in keys:
            p = k.replace(b"\x00", b"\x00\xff") + TERMINATOR
            if set_range(p + inv) and ckey()[:-8] == p:
                v = cvalue()
                append(None if v[0] == _TOMBSTONE_INT else v[1:])
            else:
                append(None)
        return out

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return out
        cur = self._cursor()
        if not (cur.set_range(_escape(start)) if start is not None else cur.first()):
            return out
        vis = _inv(version)
        last = None
        append = out.append
        for kk, val in cur.iternext():
            p = kk[:-8]
            if p == last or kk[-8:] < vis:
                continue
            last = p
            if val[0] == _TOMBSTONE_INT:
                continue
            append((_unescape(p), val[1:]))
            if len(out) >= limit:
                break
        return out

    def count(self, version: int | None = None) -> int:
        cur = self._cursor()
        if not cur.first():
            return 0
        vis = _inv(version)
        last = None
        n = 0
        for kk, val in cur.iternext():
            p = kk[:-8]
            if p == last or kk[-8:] < vis:
                continue
            last = p
            if val[0] != _TOMBSTONE_INT:
                n += 1
        return n

    def iter_all(self, version: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.scan(None, 1 << 62, version))

    def age(self) -> None:
        self._end_read()
        self.env.sync(True)

    def close(self) -> None:
        self._end_read()
        self.env.close()

    def reopen(self) -> None:
        self._open()

    def disk_bytes(self) -> int:
        return disk_bytes(self.path)


# -- SQLite --------------------------------------------------------------------------------


class SqlitePeer:
    """``(key, version)`` WITHOUT ROWID, WAL, ``synchronous=NORMAL``; NULL value = tombstone."""

    versioned = True
    _GET = "SELECT value FROM kv WHERE key = ? AND version <= ? ORDER BY version DESC LIMIT 1"
    # SQLite takes the bare column `value` from the row holding max(version) (documented).
    _SCAN = ("SELECT key, value FROM (SELECT key, value, max(version) FROM kv "
             "WHERE key >= ? AND version <= ? GROUP BY key) WHERE value IS NOT NULL LIMIT ?")
    _ALL = ("SELECT key, value FROM (SELECT key, value, max(version) FROM kv "
            "WHERE version <= ? GROUP BY key) WHERE value IS NOT NULL")

    def __init__(self, path: Path, *, sync: bool = False) -> None:
        self.name = "peer:sqlite"
        self.path = Path(path)
        self.sync = sync
        self.version = 0
        self._open()

    def _open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(self.path / "kv.db"), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={'FULL' if self.sync else 'NORMAL'}")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (key BLOB NOT NULL, version INTEGER NOT NULL, "
                        "value BLOB, PRIMARY KEY (key, version)) WITHOUT ROWID")
        row = self.db.execute("SELECT max(version) FROM kv").fetchone()
        self.version = max(self.version, row[0] or 0)

    def commit(self, sets: Sets, removes: Removes = ()) -> int:
        self.version += 1
        v = self.version
        db = self.db
        db.execute("BEGIN")
        db.executemany("INSERT INTO kv VALUES (?, ?, ?)", [(k, v, val) for k, val in sets])
        if removes:
            db.executemany("INSERT INTO kv VALUES (?, ?, NULL)", [(k, v) for k in removes])
        db.execute("COMMIT")
        return v

    def get(self, key: bytes, version: int | None = None) -> bytes | None:
        return self.get_many((key,), version)[0]

    def get_many(self, keys: Sequence[bytes], version: int | None = None) -> list[bytes | None]:
        v = self.version if version is None else version
        ex = self.db.execute
        q = self._GET
        out: list[bytes | None] = []
        append = out.append
        for k in keys:
            row = ex(q, (k, v)).fetchone()
            append(None if row is None else row[0])
        return out

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> list[tuple[bytes, bytes]]:
        if limit <= 0:
            return []
        v = self.version if version is None else version
        return self.db.execute(self._SCAN, (b"" if start is None else start, v, limit)).fetchall()

    def count(self, version: int | None = None) -> int:
        n = 0
        for _ in self.db.execute(self._ALL, (self.version if version is None else version,)):
            n += 1
        return n

    def iter_all(self, version: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.db.execute(self._ALL, (self.version if version is None else version,)).fetchall())

    def age(self) -> None:
        self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self.db.close()

    def reopen(self) -> None:
        self._open()

    def disk_bytes(self) -> int:
        return disk_bytes(self.path)


# -- the dict reference --------------------------------------------------------------------


class DictReference:
    """Versions in plain dicts: the correctness oracle every other target is checked against.

    Complexity: commit O(writes, log n per new key); get O(log versions of the key); scans
    O(log n + rows) over a ``SortedList`` of the keys.
    """

    versioned = True

    def __init__(self, path: Path | None = None, *, sync: bool = False) -> None:
        # ``sync`` is accepted and ignored: the oracle runs in every mode and keeps nothing on disk.
        self.name = "peer:dict"
        self.version = 0
        self.versions: dict[bytes, list[int]] = {}
        self.values: dict[bytes, list[bytes | None]] = {}
        from sortedcontainers import SortedList

        self._sorted: Any = SortedList()

    def commit(self, sets: Sets, removes: Removes = ()) -> int:
        self.version += 1
        v = self.version
        for k, val in sets:
            self._put(k, v, val)
        for k in removes:
            self._put(k, v, None)
        return v

    def _put(self, k: bytes, v: int, val: bytes | None) -> None:
        vs = self.versions.get(k)
        if vs is None:
            self.versions[k] = [v]
            self.values[k] = [val]
            self._sorted.add(k)
        else:
            vs.append(v)
            self.values[k].append(val)

    def _at(self, k: bytes, version: int | None) -> bytes | None:
        vs = self.versions.get(k)
        if vs is None:
            return None
        if version is None:
            return self.values[k][-1]
        i = bisect.bisect_right(vs, version)
        return self.values[k][i - 1] if i else None

    def get(self, key: bytes, version: int | None = None) -> bytes | None:
        return self._at(key, version)

    def get_many(self, keys: Sequence[bytes], version: int | None = None) -> list[bytes | None]:
        at = self._at
        return [at(k, version) for k in keys]

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return out
        at = self._at
        for k in self._sorted.irange(minimum=start):
            val = at(k, version)
            if val is not None:
                out.append((k, val))
                if len(out) >= limit:
                    break
        return out

    def count(self, version: int | None = None) -> int:
        at = self._at
        return sum(1 for k in self._sorted if at(k, version) is not None)

    def iter_all(self, version: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.scan(None, 1 << 62, version))

    def age(self) -> None:
        pass

    def close(self) -> None:
        pass

    def reopen(self) -> None:
        pass

    def disk_bytes(self) -> int:
        return 0


# -- SlateDB -------------------------------------------------------------------------------


class SlateDBPeer:
    """Versioned keys (the RocksDB layout) in SlateDB on a local ``file://`` object store.

    The binding is async-only: every call batch (a commit, a get_many, a scan) is one
    coroutine on a private event loop, the cheapest way to drive it from synchronous code.
    """

    versioned = True

    def __init__(self, path: Path, *, sync: bool = False) -> None:
        import asyncio

        # ``sync`` is accepted and ignored: a SlateDB write returns once it is durable in the
        # object store (the binding offers no weaker mode), so every mode is "sync" here.
        self.name = "peer:slatedb"
        self.path = Path(path).resolve()
        self.version = 0
        self._loop = asyncio.new_event_loop()
        self._open()

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    def _open(self) -> None:
        sd = importlib.import_module("slatedb.uniffi")
        self._sd = sd
        self.path.mkdir(parents=True, exist_ok=True)
        store = sd.ObjectStore.resolve("file:///")
        self.db = self._run(sd.DbBuilder(str(self.path / "db").lstrip("/"), store).build())

    def commit(self, sets: Sets, removes: Removes = ()) -> int:
        self.version += 1
        suffix = TERMINATOR + _INV(MAX_VERSION - self.version)
        wb = self._sd.WriteBatch()
        put = wb.put
        for k, v in sets:
            put(k.replace(b"\x00", b"\x00\xff") + suffix, TAG_VALUE + v)
        for k in removes:
            put(k.replace(b"\x00", b"\x00\xff") + suffix, TAG_TOMBSTONE)
        self._run(self.db.write(wb))
        return self.version

    def _range(self, start: bytes) -> Any:
        return self._sd.KeyRange(start=start, start_inclusive=True, end=None, end_inclusive=False)

    async def _get_many(self, keys: Sequence[bytes], version: int | None) -> list[bytes | None]:
        inv = _inv(version)
        out: list[bytes | None] = []
        db = self.db
        for k in keys:
            p = k.replace(b"\x00", b"\x00\xff") + TERMINATOR
            it = await db.scan(self._sd.KeyRange(start=p + inv, start_inclusive=True,
                                                 end=p[:-1] + b"\x01", end_inclusive=False))
            kv = await it.next()
            if kv is None:
                out.append(None)
            else:
                v = kv.value
                out.append(None if v[0] == _TOMBSTONE_INT else v[1:])
        return out

    def get(self, key: bytes, version: int | None = None) -> bytes | None:
        return self.get_many((key,), version)[0]

    def get_many(self, keys: Sequence[bytes], version: int | None = None) -> list[bytes | None]:
        return self._run(self._get_many(keys, version))  # type: ignore[no-any-return]

    async def _scan(self, start: bytes | None, limit: int, version: int | None) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        it = await self.db.scan(self._range(b"" if start is None else _escape(start)))
        vis = _inv(version)
        last = None
        while len(out) < limit:
            batch = await it.next_batch(1024)
            if not batch:
                break
            for kv in batch:
                kk = kv.key
                p = kk[:-8]
                if p == last or kk[-8:] < vis:
                    continue
                last = p
                val = kv.value
                if val[0] == _TOMBSTONE_INT:
                    continue
                out.append((_unescape(p), val[1:]))
                if len(out) >= limit:
                    break
        return out

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> list[tuple[bytes, bytes]]:
        if limit <= 0:
            return []
        return self._run(self._scan(start, limit, version))  # type: ignore[no-any-return]

    def count(self, version: int | None = None) -> int:
        return len(self.scan(None, 1 << 62, version))

    def iter_all(self, version: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.scan(None, 1 << 62, version))

    def age(self) -> None:
        self._run(self.db.flush())

    def close(self) -> None:
        self._run(self.db.shutdown())

    def reopen(self) -> None:
        self._open()

    def disk_bytes(self) -> int:
        return disk_bytes(self.path)


# -- registry ------------------------------------------------------------------------------

PEERS: dict[str, tuple[str | None, type]] = {
    # name: (the module it needs, class)
    "rocksdb": ("rocksdict", VersionedRocksDB),
    "lmdb": ("lmdb", LmdbPeer),
    "sqlite": (None, SqlitePeer),
    "rocksdb-raw": ("rocksdict", RawRocksDB),
    "dict": (None, DictReference),
    "slatedb": ("slatedb.uniffi", SlateDBPeer),
}


def unavailable(name: str) -> str | None:
    """None if peer ``name`` can run here, else a one-line reason."""
    if name not in PEERS:
        return f"unknown peer {name!r}; peers: {', '.join(PEERS)}"
    module = PEERS[name][0]
    if module is None:
        return None
    try:
        importlib.import_module(module)
    except ImportError as e:
        pip = {"slatedb.uniffi": "slatedb"}.get(module, module.split(".")[0])
        return f"peer:{name} skipped: {module} is not installed ({e.__class__.__name__}); pip install 'tierdb[bench]' or {pip}"
    return None


SYNCABLE = ("rocksdb", "rocksdb-raw", "lmdb", "sqlite", "slatedb", "dict")  # accept sync=True


def make_peer(name: str, path: Path, *, sync: bool = False) -> Any:
    """A fresh peer target storing under ``path`` (which must not hold other data).

    ``sync``: every commit durable before it returns (RocksDB synced WAL writes, LMDB
    ``sync=True``, SQLite ``synchronous=FULL``); ValueError for a peer without such a mode.
    """
    reason = unavailable(name)
    if reason is not None:
        raise ImportError(reason)
    if sync:
        if name not in SYNCABLE:
            raise ValueError(f"peer:{name} has no synced-commit mode in this benchmark")
        return PEERS[name][1](path, sync=True)
    return PEERS[name][1](path)
