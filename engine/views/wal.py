"""WAL frames: the checksummed records of graph deltas (spec section 9).

A frame is ``{t: "c", lifecycle, path, change, frame_seq, frame_t_ns, checksum,
format_version}``; ``change`` is a :class:`BaseChange` envelope whose ``change`` field
holds the payload (``{"kind": "node.set", "path": ..., "value": ...}`` and friends).
The checksum is SHA-256 over the canonical JSON of the six body fields (``checksum``
and ``format_version`` excluded), byte-identical with GraphReFly's Rust and TypeScript
implementations; ``shared/conformance/wal_vectors.json`` holds the test vectors.

Frames live in a kv tier under ``wal_frame_key(graph_wal_prefix(graph), frame_seq)``:
``<graph>/wal/<frame_seq as 20 zero-padded digits>``, so string order equals numeric
order for every u64.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final

from .codec import canonical_json_bytes
from .errors import CodecError

__all__ = [
    "MAX_FRAME_SEQ",
    "REPLAY_ORDER",
    "WAL_FRAME_SEQ_PAD",
    "WAL_KEY_SEGMENT",
    "BaseChange",
    "Lifecycle",
    "WALFrame",
    "WalTag",
    "graph_wal_prefix",
    "parse_frame_seq",
    "stamp_frame",
    "verify_wal_frame_checksum",
    "wal_frame_checksum",
    "wal_frame_key",
]

WAL_KEY_SEGMENT: Final = "wal"
WAL_FRAME_SEQ_PAD: Final = 20
MAX_FRAME_SEQ: Final = (1 << 64) - 1
assert len(str(MAX_FRAME_SEQ)) == WAL_FRAME_SEQ_PAD


class WalTag(enum.StrEnum):
    """The frame tag. It has one value, ``"c"`` (a change); decoding rejects others."""

    C = "c"


class Lifecycle(enum.StrEnum):
    """Replay scope of a frame; frames replay in :data:`REPLAY_ORDER`."""

    SPEC = "spec"
    DATA = "data"
    OWNERSHIP = "ownership"


REPLAY_ORDER: Final = ("spec", "data", "ownership")
"""Cross-scope replay order: spec (structure), then data (values), then ownership."""


def _u64(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if value < 0 or value > MAX_FRAME_SEQ:
        raise ValueError(f"{what} must be in [0, 2**64 - 1], got {value}")
    return value


def _lifecycle(value: object, what: str) -> str:
    text = value.value if isinstance(value, Lifecycle) else value
    if text not in REPLAY_ORDER:
        raise ValueError(f"{what} must be one of {REPLAY_ORDER}, got {value!r}")
    return str(text)


@dataclass(frozen=True, slots=True)
class BaseChange:
    """The change envelope of a frame.

    ``version`` is an int counter or a str content id; ``seq`` is optional (omitted from
    JSON when ``None``, never written as ``null``); ``change`` is the payload.
    """

    structure: str
    version: int | str
    t_ns: int
    lifecycle: str
    change: Any
    seq: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.structure, str):
            raise TypeError("BaseChange.structure must be a str")
        if isinstance(self.version, bool) or not isinstance(self.version, (int, str)):
            raise TypeError("BaseChange.version must be an int or a str")
        _u64(self.t_ns, "BaseChange.t_ns")
        object.__setattr__(self, "lifecycle", _lifecycle(self.lifecycle, "BaseChange.lifecycle"))
        if self.seq is not None:
            _u64(self.seq, "BaseChange.seq")

    def to_json(self) -> dict[str, Any]:
        """The JSON object (absent ``seq`` omitted)."""
        out: dict[str, Any] = {
            "structure": self.structure,
            "version": self.version,
            "t_ns": self.t_ns,
            "lifecycle": self.lifecycle,
            "change": self.change,
        }
        if self.seq is not None:
            out["seq"] = self.seq
        return out

    @classmethod
    def from_json(cls, obj: Any) -> BaseChange:
        """Parse a JSON object. Raises :class:`CodecError` (decode) on a bad shape."""
        if not isinstance(obj, Mapping):
            raise CodecError("decode", f"BaseChange must be an object, got {type(obj).__name__}")
        try:
            return cls(
                structure=obj["structure"],
                version=obj["version"],
                t_ns=obj["t_ns"],
                lifecycle=obj["lifecycle"],
                change=obj["change"],
                seq=obj.get("seq"),
            )
        except KeyError as exc:
            raise CodecError("decode", f"BaseChange is missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise CodecError("decode", f"bad BaseChange: {exc}") from None


@dataclass(frozen=True, slots=True)
class WALFrame:
    """One WAL frame. Build with :func:`stamp_frame` to fill in the checksum."""

    lifecycle: str
    path: str
    change: BaseChange
    frame_seq: int
    frame_t_ns: int
    checksum: str = ""
    format_version: int = 1
    t: str = WalTag.C.value

    def __post_init__(self) -> None:
        tag = self.t.value if isinstance(self.t, WalTag) else self.t
        if tag != WalTag.C.value:
            raise ValueError(f'WALFrame.t must be "c", got {self.t!r}')
        object.__setattr__(self, "t", tag)
        object.__setattr__(self, "lifecycle", _lifecycle(self.lifecycle, "WALFrame.lifecycle"))
        if not isinstance(self.path, str):
            raise TypeError("WALFrame.path must be a str")
        if not isinstance(self.change, BaseChange):
            raise TypeError("WALFrame.change must be a BaseChange")
        _u64(self.frame_seq, "WALFrame.frame_seq")
        _u64(self.frame_t_ns, "WALFrame.frame_t_ns")
        if not isinstance(self.checksum, str):
            raise TypeError("WALFrame.checksum must be a str")
        if isinstance(self.format_version, bool) or not isinstance(self.format_version, int):
            raise TypeError("WALFrame.format_version must be an int")
        if not 0 <= self.format_version <= 0xFFFFFFFF:
            raise ValueError("WALFrame.format_version must be a u32")

    def body(self) -> dict[str, Any]:
        """The checksummed fields: ``{t, lifecycle, path, change, frame_seq, frame_t_ns}``."""
        return {
            "t": self.t,
            "lifecycle": self.lifecycle,
            "path": self.path,
            "change": self.change.to_json(),
            "frame_seq": self.frame_seq,
            "frame_t_ns": self.frame_t_ns,
        }

    def to_json(self) -> dict[str, Any]:
        """The full JSON object (what a WAL kv tier stores)."""
        out = self.body()
        out["checksum"] = self.checksum
        out["format_version"] = self.format_version
        return out

    @property
    def kind(self) -> str | None:
        """The payload kind (``"node.set"`` ...), or ``None`` if the payload has none."""
        payload = self.change.change
        if isinstance(payload, Mapping):
            kind = payload.get("kind")
            return kind if isinstance(kind, str) else None
        return None

    @classmethod
    def from_json(cls, obj: Any) -> WALFrame:
        """Parse a stored frame; a missing ``format_version`` decodes as 1.

        Raises:
            CodecError: kind ``decode``: wrong shape, or a tag other than ``"c"``.
        """
        if not isinstance(obj, Mapping):
            raise CodecError("decode", f"WAL frame must be an object, got {type(obj).__name__}")
        tag = obj.get("t")
        if not isinstance(tag, str) or tag != WalTag.C.value:
            raise CodecError("decode", f'WAL frame tag must be "c", got {tag!r}')
        try:
            return cls(
                lifecycle=obj["lifecycle"],
                path=obj["path"],
                change=BaseChange.from_json(obj["change"]),
                frame_seq=obj["frame_seq"],
                frame_t_ns=obj["frame_t_ns"],
                checksum=obj["checksum"],
                format_version=obj.get("format_version", 1),
            )
        except KeyError as exc:
            raise CodecError("decode", f"WAL frame is missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, CodecError):
                raise
            raise CodecError("decode", f"bad WAL frame: {exc}") from None


def _body_of(frame: WALFrame | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(frame, WALFrame):
        return frame.body()
    if isinstance(frame, Mapping):
        try:
            return {k: frame[k] for k in ("t", "lifecycle", "path", "change", "frame_seq", "frame_t_ns")}
        except KeyError as exc:
            raise CodecError("encode", f"frame has no field {exc.args[0]!r}") from None
    raise TypeError(f"expected a WALFrame or a frame mapping, got {type(frame).__name__}")


def wal_frame_checksum(frame: WALFrame | Mapping[str, Any]) -> str:
    """SHA-256 (64 lowercase hex chars) of the canonical JSON of the frame body.

    Accepts a :class:`WALFrame` or a plain mapping with the six body fields.

    Raises:
        CodecError: kind ``encode``: the body is not canonical-JSON encodable.
    """
    return hashlib.sha256(canonical_json_bytes(_body_of(frame))).hexdigest()


def verify_wal_frame_checksum(frame: WALFrame | Mapping[str, Any]) -> bool:
    """True when the stored ``checksum`` matches the body.

    Raises:
        CodecError: kind ``encode``: the checksum cannot be computed (replay treats
            that as a mismatch).
    """
    stored = frame.checksum if isinstance(frame, WALFrame) else frame.get("checksum")
    return stored == wal_frame_checksum(frame)


def stamp_frame(frame: WALFrame) -> WALFrame:
    """Return ``frame`` with its checksum computed."""
    return replace(frame, checksum=wal_frame_checksum(frame))


def graph_wal_prefix(name: str) -> str:
    """``name + "/wal"``: the WAL key prefix of a graph."""
    if not isinstance(name, str):
        raise TypeError(f"graph name must be a str, got {type(name).__name__}")
    return f"{name}/{WAL_KEY_SEGMENT}"


def wal_frame_key(prefix: str, seq: int) -> str:
    """``prefix + "/" + seq`` zero-padded to 20 digits.

    Raises:
        TypeError: ``seq`` is not an int.
        ValueError: ``seq`` is negative or above 2**64 - 1.
    """
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
    _u64(seq, "frame_seq")
    return f"{prefix}/{seq:0{WAL_FRAME_SEQ_PAD}d}"


def parse_frame_seq(key: str) -> int:
    """The seq of a WAL key: its last ``/`` segment; an unparseable segment counts as 0."""
    segment = key.rsplit("/", 1)[-1]
    if segment.isascii() and segment.isdigit():
        value = int(segment)
        if value <= MAX_FRAME_SEQ:
            return value
    return 0
