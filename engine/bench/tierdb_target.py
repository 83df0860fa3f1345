"""tierdb behind the benchmark :class:`~engine.bench.peers.Target` protocol (public API only).

The batch fast paths ``store.get_many`` and ``tx.set_many`` are used when the store has them
(``hasattr``), so the benchmark measures them as soon as they exist; otherwise the single calls.

Notes: thread safety - like the store: commits and reads may come from any thread.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from ..drop_worker.retention import Retention
from ..router.layout import Layout
from ..store import open as engine_open
from ..types import EntryKind
from .peers import Removes, Sets, disk_bytes

__all__ = ["TABLE", "TierdbTarget", "parse_layout"]

TABLE = EntryKind.source(1)


def parse_layout(text: str, knobs: dict[str, str] | None = None) -> Layout:
    """``"hot+warm+cold"`` or ``"hot+warm:hot_bytes=32MiB"`` plus ``--set`` knobs -> Layout.

    Raises ValueError for an unknown layout or knob (the message names it).
    """
    extra = ",".join(f"{k}={v}" for k, v in (knobs or {}).items())
    if extra:
        text = f"{text},{extra}" if ":" in text else f"{text}:{extra}"
    return Layout.parse(text)


class TierdbTarget:
    """One tierdb store (``layout`` text as in ``Layout.parse``) on the benchmark protocol."""

    versioned = True

    def __init__(self, path: Path, layout: str = "hot+warm+cold", *, knobs: dict[str, str] | None = None,
                 durability: str = "normal", history_versions: int | None = None) -> None:
        self.name = f"tierdb:{layout}"
        self.path = Path(path)
        self.layout = parse_layout(layout, knobs)
        self.durability = durability
        self.retention = Retention(history_versions=history_versions) if history_versions else None
        self.store: Any = None
        self._open()

    def _open(self) -> None:
        path = None if self.layout.tiers == ("hot",) and self.durability == "none" else self.path
        self.store = engine_open(path, layout=self.layout, durability=self.durability, retention=self.retention)

    @property
    def version(self) -> int:
        return int(self.store.version)

    def commit(self, sets: Sets, removes: Removes = ()) -> int:
        t = TABLE
        with self.store.begin() as tx:
            set_many = getattr(tx, "set_many", None)
            if set_many is not None:
                set_many(t, sets)
            else:
                s = tx.set
                for k, v in sets:
                    s(t, k, v)
            if removes:
                r = tx.remove
                for k in removes:
                    r(t, k)
        return int(tx.version)

    def get(self, key: bytes, version: int | None = None) -> bytes | None:
        return self.store.get(TABLE, key, version)  # type: ignore[no-any-return]

    def get_many(self, keys: Sequence[bytes], version: int | None = None) -> list[bytes | None]:
        store = self.store
        many = getattr(store, "get_many", None)
        if many is not None:
            return list(many(TABLE, keys, version))
        g = store.get
        t = TABLE
        return [g(t, k, version) for k in keys]

    def scan(self, start: bytes | None, limit: int, version: int | None = None) -> list[tuple[bytes, bytes]]:
        if limit <= 0:
            return []
        it = self.store.range(TABLE, start, version=version, batch_size=min(limit, 1024))
        try:
            return list(islice(it, limit))
        finally:
            it.close()

    def count(self, version: int | None = None) -> int:
        n = 0
        for _ in self.store.range(TABLE, version=version):
            n += 1
        return n

    def iter_all(self, version: int | None = None) -> Iterator[tuple[bytes, bytes]]:
        return self.store.range(TABLE, version=version)  # type: ignore[no-any-return]

    def age(self) -> None:
        """flush hot -> warm, then demote every superseded version (cutoff = latest) to cold."""
        self.store.flush()
        if "cold" in self.layout.tiers:
            self.store.demote(self.store.version)

    def close(self) -> None:
        self.store.close()

    def reopen(self) -> None:
        self._open()

    def disk_bytes(self) -> int:
        return disk_bytes(self.path) if self.path.exists() else 0
