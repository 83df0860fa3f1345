"""Options of the cold tier (``ColdTier(path, **options)``), validated at construction."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ColdOptions"]


@dataclass(frozen=True, slots=True)
class ColdOptions:
    """Cold tier knobs; every one has a laptop-friendly default.

    Attributes:
        block_size: target decompressed bytes per block (16 KiB). Smaller: cheaper block-cache
            misses on point reads (each reads, decompresses and parses one block), worse
            compression; larger: the reverse. Measured (benches/bench_cold.py, JSON values,
            dictionary on): 4 / 16 / 64 KiB compress 4.2x / 4.5x / 4.7x, and point gets that
            miss the cache run at 6.5x / 3.2x / 1x the 64 KiB rate; cached gets are alike.
        zstd_level: zstd level for blocks (3; zstd's own default).
        bloom_bits_per_key: bloom filter bits per distinct key (10: ~0.8 % false positives;
            0 disables the filter).
        cache_bytes: byte budget of the block LRU cache (64 MiB; 0 disables it). A cached
            block costs its decompressed bytes plus a small index (8 bytes per entry where
            lengths vary); a block a scan visited also keeps its row form (~100 bytes per
            entry more). See block.py.
        dictionary: train a zstd dictionary per segment and keep it when it pays (True).
        cache_on_write: put the blocks of every segment written (demotion, compaction) into
            the block cache as they are written (True), like RocksDB's
            ``prepopulate_block_cache``: the newest archive is what time-travel reads ask
            for next, and parsing a block being written costs far less than reading it back.
            The cache's LRU budget still bounds it.
        compact_trigger: run compaction inline after a write once this many segments are
            live (8); None = only on demand (``compact()``). The merge runs without blocking
            readers or other writers; see the module notes.
        compact_min_merge: fewest segments a size-tiered merge takes (4).
        compact_max_merge: most segments one merge takes (32).
        compact_size_ratio: an older segment joins a run when it is at most this many times
            the run's total size (1.0).
        url: None (default) keeps segments, drop files and the manifest in the tier's
            directory. An object-store URL (``s3://bucket/prefix``, ``gs://``, ``az://``,
            ``file:///dir``, ``memory://name``) keeps them there instead, and the tier's
            directory holds only its LOCK and the on-disk range cache (remote.py).
        storage_options: passed to ``obstore`` for ``url`` (endpoint, region, credentials,
            ``allow_http``); never written anywhere by tierdb.
        disk_cache_bytes: byte budget of the on-disk range cache of an object-store tier
            (512 MiB; 0 disables it: every block cache miss is a ranged GET).
        ref_path: a local file recording the generation of the manifest this tier last
            wrote (a store passes ``<store>/COLD-REF``); on open, an object store with no
            manifest or an older one is refused with CorruptionError instead of being
            taken as an empty (or rolled-back) archive. None: no such check.
    """

    block_size: int = 16 * 1024
    zstd_level: int = 3
    bloom_bits_per_key: float = 10.0
    cache_bytes: int = 64 * 1024 * 1024
    dictionary: bool = True
    cache_on_write: bool = True
    compact_trigger: int | None = 8
    compact_min_merge: int = 4
    compact_max_merge: int = 32
    compact_size_ratio: float = 1.0
    url: str | None = None
    storage_options: Mapping[str, Any] | None = None
    disk_cache_bytes: int = 512 * 1024 * 1024
    ref_path: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        def bad(what: str) -> ValueError:
            return ValueError(f"ColdTier option {what}")

        if isinstance(self.block_size, bool) or not isinstance(self.block_size, int) or not (
                256 <= self.block_size <= 64 << 20):
            raise bad(f"block_size must be an int in [256, 64 MiB], got {self.block_size!r}")
        if isinstance(self.zstd_level, bool) or not isinstance(self.zstd_level, int) or not (
                -7 <= self.zstd_level <= 22):
            raise bad(f"zstd_level must be an int in [-7, 22], got {self.zstd_level!r}")
        if not isinstance(self.bloom_bits_per_key, (int, float)) or not (
                0 <= self.bloom_bits_per_key <= 64):
            raise bad(f"bloom_bits_per_key must be in [0, 64], got {self.bloom_bits_per_key!r}")
        if isinstance(self.cache_bytes, bool) or not isinstance(self.cache_bytes, int) or self.cache_bytes < 0:
            raise bad(f"cache_bytes must be an int >= 0, got {self.cache_bytes!r}")
        if self.compact_trigger is not None and (
                not isinstance(self.compact_trigger, int) or self.compact_trigger < 2):
            raise bad(f"compact_trigger must be None or an int >= 2, got {self.compact_trigger!r}")
        if not isinstance(self.compact_min_merge, int) or self.compact_min_merge < 2:
            raise bad(f"compact_min_merge must be an int >= 2, got {self.compact_min_merge!r}")
        if not isinstance(self.compact_max_merge, int) or self.compact_max_merge < self.compact_min_merge:
            raise bad("compact_max_merge must be an int >= compact_min_merge")
        if not isinstance(self.compact_size_ratio, (int, float)) or self.compact_size_ratio <= 0:
            raise bad(f"compact_size_ratio must be > 0, got {self.compact_size_ratio!r}")
        if self.url is not None:
            from .objstore import check_url
            try:
                object.__setattr__(self, "url", check_url(self.url))
            except ValueError as exc:
                raise bad(f"url: {exc}") from None
        if self.storage_options is not None and not isinstance(self.storage_options, Mapping):
            raise bad(f"storage_options must be a mapping, got {type(self.storage_options).__name__}")
        if isinstance(self.disk_cache_bytes, bool) or not isinstance(self.disk_cache_bytes, int) or \
                self.disk_cache_bytes < 0:
            raise bad(f"disk_cache_bytes must be an int >= 0, got {self.disk_cache_bytes!r}")
