"""Whole-tier walks of the warm tier: ``check`` (format invariants) and ``stats``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import rocksdict

from ...errors import CorruptionError, FormatError
from .db import WarmDB, verify_stop
from .format import (
    FORMAT_VERSION,
    META_FORMAT,
    META_FORMAT_KEY,
    TAG_TOMBSTONE_INT,
    TAG_VALUE_INT,
    decode_key,
    read_marker,
)


class Checks(WarmDB):
    """``check`` and ``stats``."""

    def check(self) -> None:
        """Verify the format marker, meta format key, and for every table: key encoding,
        value tags, and key-ascending / version-descending order. O(n).

        Raises:
            CorruptionError: naming the table and physical key.
        """
        cfs = dict(self._cfs.items())
        version = read_marker(self.path)
        if version != FORMAT_VERSION:
            raise FormatError(f"marker says format {version}, expected {FORMAT_VERSION}", path=self.path)
        raw = self.get_meta(META_FORMAT_KEY)
        if raw != META_FORMAT.pack(FORMAT_VERSION):
            raise CorruptionError(f"meta format_version is {raw!r}", path=self.path)
        for table, cf in cfs.items():
            prev_key: bytes | None = None
            prev_version = 0
            prev_phys = b""
            for k, v in cf.items(read_opt=rocksdict.ReadOptions()):
                where = f"table {table} physical key {k!r}"
                if k <= prev_phys and prev_key is not None:
                    raise CorruptionError(f"warm tier: keys out of order at {where}", path=self.path)
                try:
                    key, ver = decode_key(k)
                except ValueError as e:
                    raise CorruptionError(f"warm tier: {e} ({where})", path=self.path) from None
                if not v or v[0] not in (TAG_VALUE_INT, TAG_TOMBSTONE_INT) or (
                        v[0] == TAG_TOMBSTONE_INT and len(v) != 1):
                    raise CorruptionError(f"warm tier: bad value tag {v[:1]!r} at {where}", path=self.path)
                if prev_key is not None:
                    if key < prev_key:
                        raise CorruptionError(f"warm tier: user keys out of order at {where}", path=self.path)
                    if key == prev_key and ver >= prev_version:
                        raise CorruptionError(f"warm tier: versions not descending at {where}", path=self.path)
                prev_key, prev_version, prev_phys = key, ver, k
            verify_stop(cf, None, prev_phys if prev_key is not None else None, prev_key is not None,
                        self.path)

    def stats(self, *, exact: bool = True) -> dict[str, Any]:
        """Counts and bytes of this tier.

        ``exact=True`` (default) walks every table: O(n). ``keys``/``versions``/``bytes`` are
        then exact (``bytes`` = physical key + tagged value bytes of live entries, so it falls
        right after a drop). ``exact=False`` is O(tables): ``versions`` and ``bytes`` come from
        RocksDB estimates and ``keys`` is None. Always includes ``rocksdb`` properties.
        """
        cfs = dict(self._cfs.items())
        out: dict[str, Any] = {"tier": "warm", "path": str(self.path), "tables": len(cfs),
                               "exact": exact, "options": asdict(self.options)}
        props = {"estimate_num_keys": 0, "total_sst_files_size": 0, "cur_size_all_mem_tables": 0,
                 "estimate_live_data_size": 0}
        for cf in cfs.values():
            for name in props:
                try:
                    props[name] += int(cf.property_int_value("rocksdb." + name.replace("_", "-")) or 0)
                except Exception:  # noqa: BLE001, S110 - an unsupported property must not fail stats()
                    pass
        out["rocksdb"] = props
        if not exact:
            out.update(keys=None, versions=props["estimate_num_keys"],
                       bytes=props["total_sst_files_size"] + props["cur_size_all_mem_tables"])
            return out
        keys = versions = nbytes = tombstones = 0
        for cf in cfs.values():
            last = None
            for k, v in cf.items(read_opt=rocksdict.ReadOptions()):
                versions += 1
                nbytes += len(k) + len(v)
                if len(v) == 1 and v[0] == TAG_TOMBSTONE_INT:
                    tombstones += 1
                p = k[:-8]
                if p != last:
                    keys += 1
                    last = p
        out.update(keys=keys, versions=versions, bytes=nbytes, tombstones=tombstones)
        return out
