"""LMDB with the versioned key layout; ``putmulti`` per commit, no sync unless asked.

Notes: thread safety - one thread per target."""

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

__all__ = ['LmdbPeer']


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
        suffix = TERMINATOR + INV(MAX_VERSION - self.version)
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
        inv = version_suffix(version)
        out: list[bytes | None] = []
        append = out.append
        for k in keys:
            p = k.replace(b"\x00", b"\x00\xff") + TERMINATOR
            if set_range(p + inv) and ckey()[:-8] == p:
                v = cvalue()
                append(None if v[0] == TOMBSTONE_INT else v[1:])
            else:
                append(None)
        return out

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        if limit <= 0:
            return out
        cur = self._cursor()
        if not (cur.set_range(escape(start)) if start is not None else cur.first()):
            return out
        vis = version_suffix(version)
        last = None
        append = out.append
        for kk, val in cur.iternext():
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
        cur = self._cursor()
        if not cur.first():
            return 0
        vis = version_suffix(version)
        last = None
        n = 0
        for kk, val in cur.iternext():
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
        self._end_read()
        self.env.sync(True)

    def close(self) -> None:
        self._end_read()
        self.env.close()

    def reopen(self) -> None:
        self._open()

    def disk_bytes(self) -> int:
        return disk_bytes(self.path)
