"""Writes of the warm tier: ``set``, ``write_entries`` (flush), ``drop``, table creation and
clearing. Each call is one atomic RocksDB ``WriteBatch``."""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

import rocksdict

from ...types import MAX_VERSION, EntryKind, RawEntry, as_bytes, check_version
from ..base import DropBatches, SetBatches
from .db import WarmDB
from .format import (
    ESCAPED_NUL,
    NUL,
    TAG_TOMBSTONE,
    TAG_VALUE,
    TERMINATOR,
    encode_key,
    pack_inv,
)


class Writes(WarmDB):
    """``set``, ``write_entries``, ``drop``, ``ensure_table`` and ``clear_table``."""

    # -- writes ------------------------------------------------------------------------------

    def set(
        self,
        version: int,
        batches: SetBatches,
        *,
        sync: bool | None = None,
        meta: Mapping[bytes, bytes | None] | None = None,
    ) -> None:
        """Write every table's ``(key, value | None)`` at ``version`` in one atomic WriteBatch.

        ``meta`` entries (value None deletes) go to the meta CF in the same batch. ``sync``
        None uses ``options.sync_writes``. O(entries + bytes).

        Raises:
            InvalidKeyError / InvalidVersionError: bad table, key, value or version (nothing
                written).
            StorageIOError: RocksDB refused the write (nothing applied).
            ClosedError: the tier is closed.
        """
        if type(version) is not int:
            check_version(version)
        try:
            suffix = TERMINATOR + pack_inv(MAX_VERSION - version)
        except struct.error:
            check_version(version)
            raise
        with self._lock:
            if self._db is None:
                self._live_db()  # raises ClosedError
            handles = self._handles
            wb = rocksdict.WriteBatch(raw_mode=True)
            put = wb.put
            tag_value, tombstone, nul, escaped = TAG_VALUE, TAG_TOMBSTONE, NUL, ESCAPED_NUL
            for table, rows in batches.items():
                h = handles.get(table)
                if h is None:
                    h = self._handles_for((table,), lambda: self._validate_set(batches))[table]
                for key, value in rows:
                    if type(key) is not bytes:
                        key = as_bytes(key)
                    if value is None:
                        tagged = tombstone
                    elif type(value) is bytes:
                        tagged = tag_value + value
                    else:
                        tagged = tag_value + as_bytes(value, "value")
                    put((key.replace(nul, escaped) if 0 in key else key) + suffix, tagged, h)
            if meta:
                self._add_meta(wb, meta)
            do_sync = self.options.sync_writes if sync is None else sync
            if wb.len() or do_sync:  # an empty synced set still syncs the WAL
                self._commit(wb, do_sync, "set of version", version)

    @staticmethod
    def _validate_set(batches: SetBatches) -> None:
        for rows in batches.values():
            for key, value in rows:
                as_bytes(key)
                if value is not None:
                    as_bytes(value, "value")

    def write_entries(
        self,
        batches: Mapping[EntryKind, Sequence[RawEntry]],
        *,
        sync: bool = True,
        meta: Mapping[bytes, bytes | None] | None = None,
        logged: bool = True,
    ) -> None:
        """Write many ``RawEntry`` of any versions (tombstones included) in one atomic WriteBatch.

        Used by flush (hot -> warm); rewriting an existing ``(key, version)`` replaces it, so a
        re-run is idempotent. O(entries + bytes).

        ``logged=False`` (with ``sync=False``) skips RocksDB's write-ahead log: the entries are
        visible at once but durable only once a later synced write (``sync=True`` here or in
        :meth:`set`), ``flush_wal(sync=True)`` or :meth:`close` returns - each first flushes
        the tables' memtables to SST files. For writes whose source stays durable elsewhere
        until that synced write (a flush: the commit log keeps every version above the flushed
        watermark, written with ``sync=True`` last), it saves the WAL record per entry:
        1.35x entries per CPU second and 1.6x per wall second on flush-shaped batches, the
        memtable flush included (bench_warm --flush). Each persist makes an L0 file, so it
        pays for large batches; small periodic ones are better logged.

        Raises:
            InvalidKeyError / InvalidVersionError: bad input (nothing written).
            StorageIOError: RocksDB refused the write (nothing applied).
        """
        with self._lock:
            self._live_db()
            handles = self._handles_for(batches.keys(), lambda: self._validate_entries(batches))
            wb = rocksdict.WriteBatch(raw_mode=True)
            put = wb.put
            # Locals for the per-entry loop; RawEntry is a tuple, so unpacking beats three
            # attribute loads.
            maxv, pack, term, tag_value, tombstone = MAX_VERSION, pack_inv, TERMINATOR, TAG_VALUE, TAG_TOMBSTONE
            for table, rows in batches.items():
                h = handles[table]
                for key, version, value in rows:
                    if type(key) is not bytes:
                        key = as_bytes(key)
                    if type(version) is not int:
                        check_version(version)
                    try:
                        suffix = term + pack(maxv - version)
                    except struct.error:
                        check_version(version)
                        raise
                    if value is None:
                        tagged = tombstone
                    else:
                        tagged = tag_value + (value if type(value) is bytes else as_bytes(value, "value"))
                    put((key.replace(NUL, ESCAPED_NUL) if 0 in key else key) + suffix, tagged, h)
            if meta:
                self._add_meta(wb, meta)
            self._commit(wb, sync, "write_entries", logged=logged or bool(meta), tables=batches.keys())

    @staticmethod
    def _validate_entries(batches: Mapping[EntryKind, Sequence[RawEntry]]) -> None:
        for rows in batches.values():
            for e in rows:
                as_bytes(e.key)
                check_version(e.version)
                if e.value is not None:
                    as_bytes(e.value, "value")

    def drop(self, batches: DropBatches, *, sync: bool | None = None) -> None:
        """Delete exactly the listed ``(key, version)`` pairs in one WriteBatch. O(pairs).

        Missing tables, keys and versions are ignored.
        """
        with self._lock:
            self._live_db()
            wb = rocksdict.WriteBatch(raw_mode=True)
            handles = self._handles
            for table, rows in batches.items():
                h = handles.get(table)
                if h is None:
                    continue
                for key, version in rows:
                    wb.delete(encode_key(as_bytes(key), version), h)
            if wb.len():
                self._commit(wb, self.options.sync_writes if sync is None else sync, "drop")

    def ensure_table(self, table: EntryKind) -> None:
        """Create ``table`` (its column family) if missing. O(1)."""
        with self._lock:
            self._live_db()
            if table not in self._handles:
                self._create_table(table)

    def clear_table(self, table: EntryKind) -> None:
        """Delete every entry of ``table`` with one range deletion; the table stays listed.

        O(1) write; space comes back as compaction runs (or :meth:`compact`).
        """
        with self._lock:
            self._live_db()
            cf = self._cfs.get(table)
            if cf is None:
                return
            it = cf.iter(rocksdict.ReadOptions())
            it.seek_to_last()
            last = it.key()
            del it
            if last is None:
                return
            wb = rocksdict.WriteBatch(raw_mode=True)
            # Every physical key is >= b"" and <= last, so [b"", last + 00) covers the table.
            wb.delete_range(b"", last + NUL, self._handles[table])
            self._commit(wb, self.options.sync_writes, f"clear_table({table})")
