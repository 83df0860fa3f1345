"""The dict reference: the correctness oracle every other target is checked against.

Notes: thread safety - one thread per target."""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .base import Removes, Sets

__all__ = ['DictReference']


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
