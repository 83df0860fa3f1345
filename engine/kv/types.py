"""Value types of the KV layer: tokens, cursors, entries, updates, scopes, configs.

Everything here is immutable and does no I/O. Names follow slipstream (``slipstream-kv.md``
section 2): a :class:`VersionToken` is at most 10 opaque bytes (both tierdb backends use an
8-byte big-endian u64 revision), a :class:`WatchCursor` wraps one, and a watch delivers
:class:`KvUpdate` values (:class:`Put`, :class:`Delete`, :class:`Purge`).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import ClassVar, Final

from .names import validate_bucket, validate_prefix

__all__ = [
    "MAX_TOKEN_BYTES",
    "U64_MAX",
    "Capabilities",
    "Delete",
    "DiscardPolicy",
    "KvEntry",
    "KvUpdate",
    "Purge",
    "Put",
    "ScopeKind",
    "StorageType",
    "StoreConfig",
    "VersionToken",
    "WatchCursor",
    "WatchScope",
]

MAX_TOKEN_BYTES: Final = 10
U64_MAX: Final = (1 << 64) - 1
_U64 = struct.Struct(">Q")
assert _U64.size == 8


@dataclass(frozen=True, slots=True)
class VersionToken:
    """An opaque version of at most 10 bytes; empty means "unknown".

    Raises:
        ValueError: more than 10 bytes (never truncated), or not bytes.
    """

    raw: bytes = b""

    def __post_init__(self) -> None:
        if not isinstance(self.raw, bytes):
            raise ValueError(f"VersionToken takes bytes, got {type(self.raw).__name__}")
        if len(self.raw) > MAX_TOKEN_BYTES:
            raise ValueError(
                f"a VersionToken holds at most {MAX_TOKEN_BYTES} bytes, got {len(self.raw)}; "
                "it is never truncated")

    @classmethod
    def from_u64(cls, revision: int) -> VersionToken:
        """The 8-byte big-endian form of ``revision`` (0 <= revision < 2**64)."""
        if isinstance(revision, bool) or not isinstance(revision, int) or not 0 <= revision <= U64_MAX:
            raise ValueError(f"a revision must be an int in [0, 2**64), got {revision!r}")
        return cls(_U64.pack(revision))

    @classmethod
    def empty(cls) -> VersionToken:
        return _EMPTY

    @classmethod
    def from_hex(cls, text: str) -> VersionToken:
        """Parse :meth:`hex` output. Raises ValueError for bad hex or more than 10 bytes."""
        if not isinstance(text, str):
            raise ValueError(f"token hex must be str, got {type(text).__name__}")
        return cls(bytes.fromhex(text))

    def as_u64(self) -> int | None:
        """The u64 revision, or None when the token has no u64 form (empty, not 8 bytes)."""
        if len(self.raw) != 8:
            return None
        return int(_U64.unpack(self.raw)[0])

    @property
    def is_empty(self) -> bool:
        return not self.raw

    def hex(self) -> str:
        return self.raw.hex()

    def __repr__(self) -> str:
        n = self.as_u64()
        if n is not None:
            return f"VersionToken({n})"
        return f"VersionToken({self.raw!r})"


_EMPTY = VersionToken(b"")


@dataclass(frozen=True, slots=True)
class WatchCursor:
    """Where a watch resumes: every revision above ``token``. Empty = a full watch."""

    token: VersionToken = field(default_factory=VersionToken.empty)

    @classmethod
    def none(cls) -> WatchCursor:
        """The empty cursor: forces a full (re-listing) watch."""
        return cls(VersionToken.empty())

    @classmethod
    def from_u64(cls, revision: int) -> WatchCursor:
        return cls(VersionToken.from_u64(revision))

    def as_u64(self) -> int | None:
        return self.token.as_u64()

    @property
    def is_none(self) -> bool:
        return self.token.is_empty

    def __repr__(self) -> str:
        return f"WatchCursor({self.token!r})"


@dataclass(frozen=True, slots=True)
class KvEntry:
    """One key's value at one version."""

    key: str
    value: bytes
    version: VersionToken


class KvUpdate:
    """One change delivered by a watch: :class:`Put`, :class:`Delete` or :class:`Purge`.

    Every update has ``key`` and ``version``. ``KvUpdate.Put`` etc. name the variants too.
    """

    __slots__ = ()
    Put: ClassVar[type[Put]]
    Delete: ClassVar[type[Delete]]
    Purge: ClassVar[type[Purge]]

    key: str
    version: VersionToken


@dataclass(frozen=True, slots=True)
class Put(KvUpdate):
    """A value was written."""

    entry: KvEntry

    @property
    def key(self) -> str:  # type: ignore[override]
        return self.entry.key

    @property
    def version(self) -> VersionToken:  # type: ignore[override]
        return self.entry.version


@dataclass(frozen=True, slots=True)
class Delete(KvUpdate):
    """A DEL marker (or a synthetic delete with an unknown version during resync)."""

    key: str
    version: VersionToken


@dataclass(frozen=True, slots=True)
class Purge(KvUpdate):
    """A PURGE marker: the key and its history were removed."""

    key: str
    version: VersionToken


KvUpdate.Put = Put
KvUpdate.Delete = Delete
KvUpdate.Purge = Purge

AnyUpdate = Put | Delete | Purge


class ScopeKind(enum.Enum):
    ALL = "all"
    PREFIX = "prefix"
    PREFIXES = "prefixes"


@dataclass(frozen=True, slots=True)
class WatchScope:
    """What a watch covers: ``WatchScope.All()``, ``.Prefix(p)`` or ``.Prefixes([p, ...])``.

    Prefixes are validated (empty, or ending on a ``.`` token boundary). Lower-case aliases
    ``all()``, ``prefix()`` and ``prefixes()`` exist too.
    """

    kind: ScopeKind
    prefix_list: tuple[str, ...] = ()

    ALL: ClassVar[WatchScope]

    @classmethod
    def All(cls) -> WatchScope:
        return cls(ScopeKind.ALL, ())

    @classmethod
    def Prefix(cls, prefix: str) -> WatchScope:
        return cls(ScopeKind.PREFIX, (validate_prefix(prefix),))

    @classmethod
    def Prefixes(cls, prefixes: list[str] | tuple[str, ...]) -> WatchScope:
        if isinstance(prefixes, str):
            raise TypeError("prefixes must be a list of str, not a single str")
        return cls(ScopeKind.PREFIXES, tuple(validate_prefix(p) for p in prefixes))

    all = All
    prefix = Prefix
    prefixes = Prefixes

    def list_prefixes(self) -> list[str]:
        """The prefixes to list for this scope (``[""]`` for ``All``)."""
        return [""] if self.kind is ScopeKind.ALL else list(self.prefix_list)

    def matches(self, key: str) -> bool:
        """Whether ``key`` lies in this scope (client-side filter; never leak keys)."""
        if self.kind is ScopeKind.ALL:
            return True
        return any(key.startswith(p) for p in self.prefix_list)

    @property
    def is_all(self) -> bool:
        return self.kind is ScopeKind.ALL or (self.kind is not ScopeKind.ALL and "" in self.prefix_list)

    @property
    def is_empty(self) -> bool:
        """An empty union: delivers nothing."""
        return self.kind is ScopeKind.PREFIXES and not self.prefix_list


WatchScope.ALL = WatchScope(ScopeKind.ALL, ())


class StorageType(enum.Enum):
    PERSISTENT = "persistent"
    MEMORY = "memory"


class DiscardPolicy(enum.Enum):
    NEW = "new"   # reject writes when full (config buckets)
    OLD = "old"   # evict the oldest (change-feed buckets whose consumers hold the fold)


MAX_HISTORY: Final = 64


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """A bucket's configuration; it applies only when the bucket is created.

    Raises:
        OperationFailed: bad bucket name (``^[a-zA-Z0-9_-]+$``).
        ValueError: ``max_history`` outside 1..64, negative limits.
    """

    name: str
    storage: StorageType = StorageType.PERSISTENT
    max_history: int = 1
    max_age: float | None = None          # seconds; None = forever
    max_bytes: int = 10 * 1024 * 1024
    num_replicas: int = 1
    discard: DiscardPolicy = DiscardPolicy.NEW

    def __post_init__(self) -> None:
        validate_bucket(self.name)
        if isinstance(self.max_history, bool) or not isinstance(self.max_history, int) \
                or not 1 <= self.max_history <= MAX_HISTORY:
            raise ValueError(f"max_history must be an int in 1..{MAX_HISTORY}, got {self.max_history!r}")
        if self.max_age is not None and not self.max_age > 0:
            raise ValueError(f"max_age must be > 0 seconds or None, got {self.max_age!r}")
        if isinstance(self.max_bytes, bool) or not isinstance(self.max_bytes, int) \
                or not (self.max_bytes == -1 or self.max_bytes > 0):
            raise ValueError(f"max_bytes must be > 0 (or -1 for unlimited), got {self.max_bytes!r}")
        if isinstance(self.num_replicas, bool) or not isinstance(self.num_replicas, int) \
                or not 1 <= self.num_replicas <= 5:
            raise ValueError(f"num_replicas must be an int in 1..5, got {self.num_replicas!r}")
        if not isinstance(self.storage, StorageType):
            raise ValueError(f"storage must be a StorageType, got {self.storage!r}")
        if not isinstance(self.discard, DiscardPolicy):
            raise ValueError(f"discard must be a DiscardPolicy, got {self.discard!r}")

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "storage": self.storage.value, "max_history": self.max_history,
                "max_age": self.max_age, "max_bytes": self.max_bytes,
                "num_replicas": self.num_replicas, "discard": self.discard.value}

    @classmethod
    def from_json(cls, obj: dict[str, object]) -> StoreConfig:
        return cls(name=str(obj["name"]), storage=StorageType(obj["storage"]),
                   max_history=int(obj["max_history"]),  # type: ignore[call-overload]
                   max_age=None if obj["max_age"] is None else float(obj["max_age"]),  # type: ignore[arg-type]
                   max_bytes=int(obj["max_bytes"]),  # type: ignore[call-overload]
                   num_replicas=int(obj["num_replicas"]),  # type: ignore[call-overload]
                   discard=DiscardPolicy(obj["discard"]))


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend implements."""

    streaming_watch: bool
    prefix_watch: bool
    purge: bool
    cas: bool
    ttl: bool
    transactions: bool
    global_ordering: bool
