"""Versioned RocksDB (the warm tier's key layout) and raw unversioned rocksdict (the ceiling).

Notes: thread safety - one thread per target, except synced commits from several threads
(RocksDB serializes writes)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .base import (
    INV,
    MAX_VERSION,
    TAG_TOMBSTONE,
    TAG_VALUE,
    TERMINATOR,
    TOMBSTONE_INT,
    Removes,
    Sets,
    disk_bytes,
    escape,
    unescape,
    version_suffix,
)

__all__ = ['RawRocksDB', 'VersionedRocksDB']


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
        suffix = TERMINATOR + INV(MAX_VERSION - self.version)
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
        inv = version_suffix(version)
        out: list[bytes | None] = []
        append = out.append
        for k in keys:
            p = k.replace(b"\x00", b"\x00\xff") + TERMINATOR
            seek(p + inv)
            if valid() and ikey()[:-8] == p:
                v = ivalue()
                append(None if v[0] == TOMBSTONE_INT else v[1:])
            else:
                append(None)
        return out

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return out
        vis = version_suffix(version)  # a stored version is visible when its inverted suffix >= this
        last = None
        append = out.append
        items = self.db.items(from_key=escape(start)) if start is not None else self.db.items()
        for kk, val in items:
            p = kk[:-8]
            if p == last or kk[-8:] < vis:
                continue
            last = p
            if val[0] == TOMBSTONE_INT:
                continue
            append((unescape(p), val[1:]))
            if len(out) >= limit:
                break
        return out

    def count(self, version: int | None = None) -> int:
        vis = version_suffix(version)
        last = None
        n = 0
        for kk, val in self.db.items():
            p = kk[:-8]
            if p == last or kk[-8:] < vis:
                continue
            last = p
            if val[0] != TOMBSTONE_INT:
                n += 1
        return n

    def iter_all(self, version: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        return iter(self.scan(None, 1 << 62, version))

    def age(self) -> None:
        """Flush the memtable and compact everything into one sorted run: the state an aged
        RocksDB reaches by background compaction (a seek then merges one level, not
        several L0 files)."""
        self._it = None
        self.db.flush()
        self.db.compact_range(None, None)

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
        self.db.compact_range(None, None)

    def close(self) -> None:
        self.db.close()

    def reopen(self) -> None:
        self._open()

    def disk_bytes(self) -> int:
        return disk_bytes(self.path)
