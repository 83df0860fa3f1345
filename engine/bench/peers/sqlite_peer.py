"""SQLite: ``(key, version)`` WITHOUT ROWID, WAL, ``synchronous=NORMAL`` (``FULL`` when synced).

Notes: thread safety - one thread per target."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path

from .base import Removes, Sets, disk_bytes

__all__ = ['SqlitePeer']


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
