"""The warm tier's RocksDB knobs (:class:`WarmOptions`)."""

from __future__ import annotations

from dataclasses import dataclass

import rocksdict

COMPRESSION = {
    "lz4": rocksdict.DBCompressionType.lz4,
    "zstd": rocksdict.DBCompressionType.zstd,
    "none": rocksdict.DBCompressionType.none,
}


@dataclass(frozen=True)
class WarmOptions:
    """RocksDB knobs of the warm tier; every field has a laptop-friendly default.

    Attributes:
        block_cache_bytes: one LRU block cache shared by every column family (64 MiB).
        bloom_bits_per_key: whole-key bloom filter bits for table CFs (0 = off). Warm reads are
            iterator seeks for "newest version <= v", which whole-key filters cannot answer,
            so the default spends no memory on them; the meta CF (point gets) always uses 10.
        compression: SST block compression, ``"lz4"`` (default), ``"zstd"`` or ``"none"``.
        write_buffer_size: memtable size per column family before a flush (64 MiB).
        sync_writes: fsync the WAL on every ``set`` by default (False: a returned write
            survives a process crash, not a power loss, unless ``set(sync=True)``).
    """

    block_cache_bytes: int = 64 << 20
    bloom_bits_per_key: int = 0
    compression: str = "lz4"
    write_buffer_size: int = 64 << 20
    sync_writes: bool = False

    def __post_init__(self) -> None:
        for name in ("block_cache_bytes", "write_buffer_size", "bloom_bits_per_key"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"WarmOptions.{name} must be an int, got {v!r}")
        for name in ("block_cache_bytes", "write_buffer_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"WarmOptions.{name} must be positive, got {getattr(self, name)!r}")
        if not 0 <= self.bloom_bits_per_key <= 64:
            raise ValueError(f"WarmOptions.bloom_bits_per_key must be in [0, 64], got {self.bloom_bits_per_key!r}")
        if self.compression not in COMPRESSION:
            raise ValueError(
                f"WarmOptions.compression must be one of {sorted(COMPRESSION)}, got {self.compression!r}"
            )
        if not isinstance(self.sync_writes, bool):
            raise TypeError(f"WarmOptions.sync_writes must be a bool, got {self.sync_writes!r}")

