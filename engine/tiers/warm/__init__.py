"""The warm tier: every version of every key in one RocksDB database (through ``rocksdict``).

The package, by concern: :mod:`.format` (key encoding, value tags, marker file),
:mod:`.options` (:class:`WarmOptions`), :mod:`.db` (the RocksDB handle, tables, metadata,
commits, per-thread iterators), :mod:`.point` (point reads), :mod:`.scan` (range scans),
:mod:`.writes` (set, flush writes, drops) and :mod:`.check` (check, stats); :mod:`.tier`
puts them together as :class:`WarmTier`.

Layout (byte-level details in ``docs/FORMATS.md``, "Warm tier (RocksDB)"):

- one column family (CF) per :class:`~engine.types.EntryKind`, named ``str(kind)``
  (``"multi"``, ``"source:42"``...), so the table list is the CF list and survives reopen;
- a reserved CF :data:`META_CF` for tierdb's own metadata and the store's (``set(meta=...)``);
- versioned keys ``escape(key) + 00 00 + ~version (u64 BE)``: user-key order is kept for
  variable-length keys and a key's newest version sorts first (:func:`encode_key`);
- values carry a one-byte tag (:data:`TAG_VALUE` + bytes, or :data:`TAG_TOMBSTONE` alone);
- a marker file :data:`MARKER_NAME` (magic, format version, CRC32) stamped before RocksDB
  creates anything, so a directory that is not a warm store - or one from a newer format - is
  refused before a single byte in it changes.

Reads are iterator seeks: the newest version <= v of ``key`` is the first entry at or after
``encode_key(key, v)``. Point reads reuse one iterator per (thread, table) until the next write
(see "Latest-version reads" in docs/FORMATS.md for the measured alternatives, including a
"current value" CF, and why this one was kept).

Notes: thread safety
    Any number of reader threads alongside writers: ``set``, ``write_entries``, ``drop``,
    ``clear_table``, ``ensure_table`` and ``close`` serialise on ``self._lock``; reads take no
    lock. Every write bumps a generation counter *after* RocksDB applied it; a reader's cached
    iterator is used only while its generation is current, so a read that starts after a write
    returned always sees it, and an iterator (an implicit RocksDB snapshot) never outlives the
    next write by more than the read in flight. RocksDB applies each ``WriteBatch`` atomically,
    so readers never see part of a ``set``. ``close`` while reads are in flight is the caller's
    race: those reads may finish on the old snapshot or raise :class:`ClosedError`.

    RocksDB frees the directory's ``LOCK`` only when its last handle dies. ``close`` drops the
    tier's own handles and every thread's cached iterators; a traceback kept from an exception
    raised inside the tier references frames holding handles, so keep such exceptions only as
    long as needed before reopening the same directory in this process.
"""


from .format import FORMAT_VERSION as FORMAT_VERSION
from .format import MARKER as MARKER
from .format import MARKER_MAGIC as MARKER_MAGIC
from .format import MARKER_NAME as MARKER_NAME
from .format import META_CF as META_CF
from .format import META_FORMAT_KEY as META_FORMAT_KEY
from .format import POINT_SKIP_LIMIT as POINT_SKIP_LIMIT
from .format import SCAN_SKIP_LIMIT as SCAN_SKIP_LIMIT
from .format import TAG_TOMBSTONE as TAG_TOMBSTONE
from .format import TAG_VALUE as TAG_VALUE
from .format import decode_key as decode_key
from .format import encode_key as encode_key
from .format import key_prefix as key_prefix
from .options import WarmOptions as WarmOptions
from .tier import WarmTier as WarmTier

__all__ = [
    "FORMAT_VERSION",
    "MARKER",
    "MARKER_MAGIC",
    "MARKER_NAME",
    "META_CF",
    "META_FORMAT_KEY",
    "POINT_SKIP_LIMIT",
    "SCAN_SKIP_LIMIT",
    "TAG_TOMBSTONE",
    "TAG_VALUE",
    "WarmOptions",
    "WarmTier",
    "decode_key",
    "encode_key",
    "key_prefix",
]
