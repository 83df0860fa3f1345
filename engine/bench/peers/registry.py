"""Which peers exist, whether each can run here, and how to build one."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from .lmdb_peer import LmdbPeer
from .reference import DictReference
from .rocks import RawRocksDB, VersionedRocksDB
from .slate import SlateDBPeer
from .sqlite_peer import SqlitePeer

__all__ = ["PEERS", "SYNCABLE", "make_peer", "unavailable"]

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
