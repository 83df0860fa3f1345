"""Core value types shared by every layer: versions, table kinds, bounds, entries, cursors.

Nothing here does I/O. Every type is immutable except :class:`RangeCursor`, which a
range scan advances in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Final, NamedTuple, NewType, Union

from .errors import InvalidKeyError, InvalidVersionError

__all__ = [
    "CommitVersion",
    "EntryKind",
    "Bound",
    "RawEntry",
    "RangeBatch",
    "RangeCursor",
    "BytesLike",
    "as_bytes",
    "check_version",
]

CommitVersion = NewType("CommitVersion", int)
"""A commit version. Versions start at 1; 0 means "before any commit"."""

BytesLike = Union[bytes, bytearray, memoryview]

MAX_VERSION: Final = (1 << 64) - 1


def as_bytes(value: object, what: str = "key") -> bytes:
    """Return ``value`` as immutable ``bytes``.

    Raises:
        InvalidKeyError: ``value`` is not bytes-like (``str`` included: encode it first).
    """
    if type(value) is bytes:
        return value  # type: ignore[return-value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise InvalidKeyError(
        f"{what} must be bytes-like (bytes, bytearray or memoryview), got {type(value).__name__}"
        + (": encode text first, e.g. s.encode()" if isinstance(value, str) else "")
    )


def check_version(version: object, what: str = "version") -> int:
    """Validate a version argument: an int in [0, 2**64).

    Raises:
        InvalidKeyError: not an int (bool refused).
        InvalidVersionError: negative or too large (a ``ValueError``).
    """
    if isinstance(version, bool) or not isinstance(version, int):
        raise InvalidKeyError(f"{what} must be an int, got {type(version).__name__}")
    if version < 0 or version > MAX_VERSION:
        raise InvalidVersionError(f"{what} must be in [0, 2**64), got {version}")
    return version


_KIND_MULTI, _KIND_SOURCE, _KIND_OPERATOR = 0, 1, 2
_KIND_NAMES: Final = ("multi", "source", "operator")


class EntryKind(tuple):  # type: ignore[type-arg]
    """A logical table: ``EntryKind.MULTI``, ``EntryKind.source(id)``, ``EntryKind.operator(id)``.

    Hashable and totally ordered (multi < source < operator, then by id). ``str()`` gives
    ``"multi"``, ``"source:42"``, ``"operator:7"``; :meth:`parse` inverts it.

    A ``(tag, id)`` tuple underneath: hashing and equality run in C, which matters because
    every write and every conflict check hashes its table (benches/bench_store.py, commit).
    """

    __slots__ = ()
    MULTI: EntryKind  # set below

    def __new__(cls, tag: int, ident: int = 0) -> EntryKind:
        if tag not in (_KIND_MULTI, _KIND_SOURCE, _KIND_OPERATOR):
            raise ValueError(f"unknown EntryKind tag {tag!r}")
        if isinstance(ident, bool) or not isinstance(ident, int) or ident < 0 or ident > MAX_VERSION:
            raise ValueError(f"EntryKind id must be an int in [0, 2**64), got {ident!r}")
        if tag == _KIND_MULTI and ident != 0:
            raise ValueError("EntryKind.MULTI has no id")
        return tuple.__new__(cls, (tag, ident))

    @classmethod
    def source(cls, shape_id: int) -> EntryKind:
        """The table of source (row) data for ``shape_id``."""
        return cls(_KIND_SOURCE, shape_id)

    @classmethod
    def operator(cls, node_id: int) -> EntryKind:
        """The table of operator state for ``node_id``."""
        return cls(_KIND_OPERATOR, node_id)

    @classmethod
    def parse(cls, text: str) -> EntryKind:
        """Invert ``str()``. Raises ``ValueError`` for anything else."""
        if not isinstance(text, str):
            raise ValueError(f"EntryKind.parse expects str, got {type(text).__name__}")
        if text == "multi":
            return cls.MULTI
        name, sep, num = text.partition(":")
        if sep and num.isascii() and num.isdigit() and (num == "0" or not num.startswith("0")):
            if name == "source":
                return cls.source(int(num))
            if name == "operator":
                return cls.operator(int(num))
        raise ValueError(
            f"not an EntryKind: {text!r} (expected 'multi', 'source:<id>' or 'operator:<id>')"
        )

    @property
    def tag(self) -> str:
        return _KIND_NAMES[self[0]]

    @property
    def id(self) -> int:
        return int(self[1])

    def __str__(self) -> str:
        if self[0] == _KIND_MULTI:
            return "multi"
        return f"{_KIND_NAMES[self[0]]}:{self[1]}"

    def __repr__(self) -> str:
        if self[0] == _KIND_MULTI:
            return "EntryKind.MULTI"
        return f"EntryKind.{_KIND_NAMES[self[0]]}({self[1]})"

    def __getnewargs__(self) -> tuple[int, int]:  # type: ignore[override]
        return (self[0], self[1])


EntryKind.MULTI = EntryKind(_KIND_MULTI)


class _Unbounded:
    __slots__ = ()

    def __repr__(self) -> str:
        return "Bound.UNBOUNDED"


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a key range: ``Bound.included(k)``, ``Bound.excluded(k)`` or ``Bound.UNBOUNDED``."""

    key: bytes | None
    inclusive: bool

    UNBOUNDED: ClassVar[Bound]  # the singleton, set below

    @classmethod
    def included(cls, key: BytesLike) -> Bound:
        return cls(as_bytes(key), True)

    @classmethod
    def excluded(cls, key: BytesLike) -> Bound:
        return cls(as_bytes(key), False)

    @property
    def is_unbounded(self) -> bool:
        return self.key is None

    def admits_low(self, key: bytes) -> bool:
        """True if ``key`` is at or above this bound used as a start bound."""
        if self.key is None:
            return True
        return key >= self.key if self.inclusive else key > self.key

    def admits_high(self, key: bytes) -> bool:
        """True if ``key`` is at or below this bound used as an end bound."""
        if self.key is None:
            return True
        return key <= self.key if self.inclusive else key < self.key

    def __repr__(self) -> str:
        if self.key is None:
            return "Bound.UNBOUNDED"
        return f"Bound.{'included' if self.inclusive else 'excluded'}({self.key!r})"


Bound.UNBOUNDED = Bound(None, False)


def as_bound(value: object, *, inclusive: bool) -> Bound:
    """Accept a ``Bound``, ``None`` (unbounded) or a bytes-like key with default inclusivity."""
    if isinstance(value, Bound):
        return value
    if value is None:
        return Bound.UNBOUNDED
    return Bound(as_bytes(value, "range bound"), inclusive)


class RawEntry(NamedTuple):
    """One stored version of a key. ``value is None`` is a tombstone.

    A ``NamedTuple`` rather than a frozen dataclass: scans build one per row, and tuple
    construction costs a third as much (benches/bench_warm.py, scan).
    """

    key: bytes
    version: int
    value: bytes | None

    @property
    def is_tombstone(self) -> bool:
        return self.value is None


@dataclass(slots=True)
class RangeBatch:
    """A page of a range scan."""

    entries: list[RawEntry] = field(default_factory=list)
    has_more: bool = False

    @classmethod
    def empty(cls) -> RangeBatch:
        return cls([], False)


@dataclass(slots=True)
class RangeCursor:
    """Position of a paged range scan; advanced in place by ``range_next``/``range_rev_next``."""

    last_key: bytes | None = None
    exhausted: bool = False
