"""Benchmark targets behind one small protocol: the peers tierdb is compared with.

Every peer is implemented the way a careful user of that library would write a versioned
key-value store on it (issue 10 names the practices):

==================  =========================================================================
``rocksdb``         versioned RocksDB (rocksdict raw mode). Key = escaped user key (0x00 ->
                    0x00 0xFF, then a 0x00 0x00 terminator) + bitwise-inverted big-endian u64
                    version, so a key's versions sort newest first - the warm tier's layout.
                    Value = tag byte (0x01 value, 0x02 tombstone) + value. One WriteBatch per
                    commit; gets seek a reused iterator; scans iterate ``items(from_key)``
                    and keep the first visible version of each key. Aging flushes and
                    compacts (what background compaction reaches over time).
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

from .base import Removes as Removes
from .base import Sets as Sets
from .base import Target as Target
from .base import disk_bytes as disk_bytes
from .lmdb_peer import LmdbPeer as LmdbPeer
from .reference import DictReference as DictReference
from .registry import PEERS as PEERS
from .registry import SYNCABLE as SYNCABLE
from .registry import make_peer as make_peer
from .registry import unavailable as unavailable
from .rocks import RawRocksDB as RawRocksDB
from .rocks import VersionedRocksDB as VersionedRocksDB
from .slate import SlateDBPeer as SlateDBPeer
from .sqlite_peer import SqlitePeer as SqlitePeer

__all__ = [
    "PEERS", "SYNCABLE", "DictReference", "LmdbPeer", "RawRocksDB", "Removes", "Sets", "SlateDBPeer",
    "SqlitePeer", "Target", "VersionedRocksDB", "disk_bytes", "make_peer", "unavailable",
]
