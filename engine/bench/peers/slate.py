"""SlateDB (an LSM on object storage; here a local ``file://`` store), versioned key layout.

Notes: thread safety - one thread per target (a private event loop)."""

from __future__ import annotations

import importlib
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

__all__ = ['SlateDBPeer']


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
        suffix = TERMINATOR + INV(MAX_VERSION - self.version)
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
        inv = version_suffix(version)
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
                out.append(None if v[0] == TOMBSTONE_INT else v[1:])
        return out

    def get(self, key: bytes, version: int | None = None) -> bytes | None:
        return self.get_many((key,), version)[0]

    def get_many(self, keys: Sequence[bytes], version: int | None = None) -> list[bytes | None]:
        return self._run(self._get_many(keys, version))  # type: ignore[no-any-return]

    async def _scan(self, start: bytes | None, limit: int, version: int | None) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        it = await self.db.scan(self._range(b"" if start is None else escape(start)))
        vis = version_suffix(version)
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
                if val[0] == TOMBSTONE_INT:
                    continue
                out.append((unescape(p), val[1:]))
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
