"""Point reads of the warm tier: one seek on this thread's cached iterator per read."""

from __future__ import annotations

import struct
from typing import Any

import rocksdict

from ...errors import ClosedError, StorageIOError
from ...types import MAX_VERSION, EntryKind, RawEntry, as_bytes, check_version
from .db import WarmDB, upper_bound_ro
from .format import (
    ESCAPED_NUL,
    NUL,
    TAG_TOMBSTONE_INT,
    TAG_VALUE_INT,
    TERMINATOR,
    decode_value,
    key_prefix,
    pack_inv,
)

_from_bytes = int.from_bytes
_raw_entry = RawEntry


class PointReads(WarmDB):
    """``get``, ``lookup``, ``contains`` and ``get_all_versions``."""

    def _seek_bounded(self, table: EntryKind, prefix: bytes, target: bytes) -> tuple[bytes, bytes] | None:
        """Slow path: seek on a fresh iterator bounded to ``prefix``'s versions."""
        self._thread_iters().release()  # an iterator that gave up (Incomplete) is not reused
        cf = self._cfs.get(table)
        if cf is None:
            return None
        ro = upper_bound_ro(prefix[:-1] + b"\x01")
        try:
            for kv in cf.items(from_key=target, read_opt=ro):
                return kv  # type: ignore[no-any-return]
        except rocksdict.DbClosedError as e:
            raise ClosedError(f"warm tier {self.path} is closed") from e
        except Exception as e:  # rocksdict raises bare Exception for every RocksDB status
            raise StorageIOError(f"warm tier {self.path}: read failed: {e}") from e
        return None

    def _resolve_miss(self, it: Any, table: EntryKind, prefix: bytes, target: bytes) -> tuple[bytes, bytes] | None:
        """The cached iterator came back invalid: end of table, or it gave up (Incomplete)."""
        try:
            it.status()
            return None  # end of table
        except Exception:  # noqa: BLE001 - Incomplete (too many deleted entries); rocksdict raises bare Exception
            kv = self._seek_bounded(table, prefix, target)
        if kv is None or kv[0][:-8] != prefix:
            return None
        return kv

    def _seek(self, table: EntryKind, key: bytes, version: int) -> tuple[bytes, bytes] | None:
        """(physical key, tagged value) of the newest version <= ``version``, or None."""
        it = self._point_iter(table)
        if it is None:
            check_version(version)  # bad input raises even for a missing table
            return None
        prefix = (key.replace(NUL, ESCAPED_NUL) if 0 in key else key) + TERMINATOR
        try:
            target = prefix + pack_inv(MAX_VERSION - version)
        except (struct.error, TypeError):
            check_version(version)
            raise
        it.seek(target)
        k = it.key()
        if k is None:
            return self._resolve_miss(it, table, prefix, target)
        if k[:-8] != prefix:
            return None
        return k, it.value()

    def get(self, table: EntryKind, key: bytes, version: int) -> bytes | None:
        """Value of the newest version <= ``version``; None for a tombstone or no version.

        One seek on this thread's cached iterator. O(log n).
        """
        if type(key) is not bytes:
            key = as_bytes(key)
        # Inlined _point_iter fast path (the call alone cost ~10% of a get; bench: get latest).
        try:
            its = self._local.its
            it = its.it if its.table is table and its.gen == self._gen else None
        except AttributeError:
            it = None
        if it is None:
            it = self._point_iter(table)
            if it is None:
                check_version(version)  # bad input raises even for a missing table
                return None
        prefix = (key.replace(NUL, ESCAPED_NUL) if 0 in key else key) + TERMINATOR
        try:
            target = prefix + pack_inv(MAX_VERSION - version)
        except (struct.error, TypeError):
            check_version(version)
            raise
        it.seek(target)
        k = it.key()
        if k is None:
            kv = self._resolve_miss(it, table, prefix, target)
            if kv is None:
                return None
            v = kv[1]
        elif k[:-8] != prefix:
            return None
        else:
            v = it.value()
        t = v[0] if v else -1
        if t == TAG_VALUE_INT:
            return v[1:]  # type: ignore[no-any-return]
        if t == TAG_TOMBSTONE_INT and len(v) == 1:
            return None
        return decode_value(v, f"table {table} key {key!r}")

    def lookup(self, table: EntryKind, key: bytes, version: int) -> RawEntry | None:
        """The newest stored version <= ``version`` (tombstones included); None = not found.

        O(log n).
        """
        if type(key) is not bytes:
            key = as_bytes(key)
        found = self._seek(table, key, version)
        if found is None:
            return None
        k, v = found
        return _raw_entry(key, MAX_VERSION - _from_bytes(k[-8:], "big"),
                          decode_value(v, f"table {table} key {key!r}"))

    def contains(self, table: EntryKind, key: bytes, version: int) -> bool:
        """``get(...) is not None``. O(log n)."""
        return self.get(table, key, version) is not None

    def get_all_versions(self, table: EntryKind, key: bytes) -> list[tuple[int, bytes | None]]:
        """Every stored version of ``key``, newest first. One bounded iterator; O(log n + versions)."""
        key = as_bytes(key)
        cf = self._cfs.get(table)
        if cf is None:
            return []
        prefix = key_prefix(key)
        ro = upper_bound_ro(prefix[:-1] + b"\x01")
        where = f"table {table} key {key!r}"
        return [
            (MAX_VERSION - _from_bytes(k[-8:], "big"), decode_value(v, where))
            for k, v in cf.items(from_key=prefix, read_opt=ro)
        ]
