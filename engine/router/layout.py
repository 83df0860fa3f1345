"""Layouts: which tiers a store has and how data moves between them (DESIGN.md section 8)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["Layout", "LAYOUT_PRESETS", "DEMOTION_POLICIES"]

LAYOUT_PRESETS: dict[str, tuple[str, ...]] = {
    "memory": ("hot",),
    "warm": ("warm",),
    "hot+warm": ("hot", "warm"),
    "hot+warm+cold": ("hot", "warm", "cold"),
    "warm+cold": ("warm", "cold"),
}
DEMOTION_POLICIES = ("history", "age")

_SIZE_SUFFIXES = {"k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}


def parse_size(value: Any) -> int:
    """``64MiB``, ``512k``, ``1048576`` -> bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        s = value.strip().lower().replace("_", "")
        for suffix in sorted(_SIZE_SUFFIXES, key=len, reverse=True):
            if s.endswith(suffix) and s[: -len(suffix)].strip().isdigit():
                return int(s[: -len(suffix)]) * _SIZE_SUFFIXES[suffix]
        if s.isdigit():
            return int(s)
    raise ValueError(f"not a byte size: {value!r} (use e.g. 67108864, '64MiB', '512k')")


@dataclass(frozen=True)
class Layout:
    """Which tiers exist and the knobs of movement and storage.

    Defaults suit a laptop. Build one with ``Layout.parse("hot+warm+cold", hot_bytes="32MiB")``
    or ``Layout(tiers=("hot", "warm"))``.

    Attributes:
        tiers: ordered hot -> cold; one of :data:`LAYOUT_PRESETS`' values.
        hot_bytes: hot-tier byte budget: the mover flushes from half of it, and committers
            wait for the flush when hot reaches it.
        flush_interval: seconds between background flushes (0 disables the timer trigger).
        flush_lag_versions: a timer flush leaves the newest this-many versions in hot.
        demotion_policy: ``"history"`` (move superseded versions) or ``"age"`` (move every
            version <= the demotion cutoff).
        demotion_age_versions: the demotion cutoff C is ``store.version - demotion_age_versions``.
        demote_interval: seconds between background demotions (0 disables it).
        zstd_level, block_size, cold_cache_bytes, bloom_bits_per_key: cold-tier knobs.
        warm_cache_bytes, warm_write_buffer_bytes: warm-tier (RocksDB) knobs.
        hot_cache_bytes: bytes of flushed keys' newest versions the hot tier keeps for
            point reads (a cache of latest values beside warm; 0 disables it). Layouts with
            hot and warm only.
        background: run the background mover thread.
        cold_url: None keeps the cold tier in ``<store>/cold/``. An object-store URL
            (``s3://bucket/prefix``, ``gs://...``, ``az://...``, ``file:///dir``,
            ``memory://name``) keeps cold segments and the cold manifest there; the store
            directory then holds only a range cache in ``<store>/cold-cache/``. Remembered
            by the store (credentials never are: pass ``storage_options`` to
            ``engine.open``).
        cold_disk_cache_bytes: byte budget of ``cold-cache/`` (512 MiB), LRU-evicted.
    """

    tiers: tuple[str, ...] = ("hot", "warm", "cold")
    hot_bytes: int = 64 << 20
    flush_interval: float = 5.0
    flush_lag_versions: int = 0
    demotion_policy: str = "history"
    demotion_age_versions: int = 10_000
    demote_interval: float = 30.0
    zstd_level: int = 3
    block_size: int = 16 << 10  # cold blocks: a cache miss decompresses 16 KiB, not 64 (docs/FORMATS.md)
    cold_cache_bytes: int = 64 << 20
    bloom_bits_per_key: int = 10
    warm_cache_bytes: int = 64 << 20
    warm_write_buffer_bytes: int = 16 << 20
    hot_cache_bytes: int = 32 << 20
    background: bool = True
    cold_url: str | None = None
    cold_disk_cache_bytes: int = 512 << 20

    def __post_init__(self) -> None:
        tiers = tuple(self.tiers)
        object.__setattr__(self, "tiers", tiers)
        if tiers not in LAYOUT_PRESETS.values():
            raise ValueError(
                f"unsupported tier combination {'+'.join(tiers)!r}; choose one of "
                f"{', '.join(LAYOUT_PRESETS)}")
        if self.demotion_policy not in DEMOTION_POLICIES:
            raise ValueError(f"demotion_policy must be one of {DEMOTION_POLICIES}, got {self.demotion_policy!r}")
        for name in ("hot_bytes", "block_size", "cold_cache_bytes", "warm_cache_bytes", "warm_write_buffer_bytes"):
            object.__setattr__(self, name, parse_size(getattr(self, name)))
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        object.__setattr__(self, "hot_cache_bytes", parse_size(self.hot_cache_bytes))
        if self.hot_cache_bytes < 0:
            raise ValueError("hot_cache_bytes must be >= 0")
        if not 1 <= self.zstd_level <= 22:
            raise ValueError(f"zstd_level must be in 1..22, got {self.zstd_level}")
        if self.demotion_age_versions < 0 or self.flush_lag_versions < 0:
            raise ValueError("demotion_age_versions and flush_lag_versions must be >= 0")
        object.__setattr__(self, "cold_disk_cache_bytes", parse_size(self.cold_disk_cache_bytes))
        if self.cold_disk_cache_bytes < 0:
            raise ValueError("cold_disk_cache_bytes must be >= 0")
        if self.cold_url is not None:
            if "cold" not in tiers:
                raise ValueError(f"cold_url needs a layout with a cold tier, not {'+'.join(tiers)!r}")
            from ..tiers.cold.objstore import check_url
            object.__setattr__(self, "cold_url", check_url(self.cold_url))

    @classmethod
    def parse(cls, text: str, **knobs: Any) -> Layout:
        """A preset name (``"memory"``, ``"warm"``, ``"hot+warm"``, ``"hot+warm+cold"``,
        ``"warm+cold"``), optionally followed by ``:knob=value,knob=value``.

        Raises ValueError for an unknown preset or knob.
        """
        if not isinstance(text, str):
            raise ValueError(f"layout must be a str, got {type(text).__name__}")
        name, _, rest = text.strip().partition(":")
        name = name.strip().lower()
        if name not in LAYOUT_PRESETS:
            raise ValueError(f"unknown layout {name!r}; choose one of {', '.join(LAYOUT_PRESETS)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        parsed: dict[str, Any] = {}
        for item in filter(None, (x.strip() for x in rest.split(","))):
            k, sep, v = item.partition("=")
            k = k.strip()
            if not sep or k not in fields or k == "tiers":
                raise ValueError(f"unknown layout knob {item!r}; knobs: {', '.join(n for n in fields if n != 'tiers')}")
            default = fields[k].default
            if isinstance(default, bool):
                parsed[k] = v.strip().lower() in ("1", "true", "yes", "on")
            elif isinstance(default, float):
                parsed[k] = float(v)
            elif isinstance(default, int):
                parsed[k] = parse_size(v.strip()) if k.endswith(("bytes", "size")) else int(v)
            else:
                parsed[k] = v.strip()
        parsed.update(knobs)
        return cls(tiers=LAYOUT_PRESETS[name], **parsed)

    @property
    def name(self) -> str:
        for n, t in LAYOUT_PRESETS.items():
            if t == self.tiers:
                return n
        raise AssertionError("unreachable: tiers validated in __post_init__")

    @property
    def has_hot(self) -> bool:
        return self.tiers[0] == "hot"

    def __str__(self) -> str:
        return self.name
