"""Value codecs for views: the ``Codec`` protocol, canonical JSON, and a raw-bytes codec.

Canonical JSON (spec section 8) is the default codec and the input of WAL checksums:
object keys sorted recursively, arrays in order, no whitespace, integers as plain
digits, UTF-8. To stay byte-identical with GraphReFly's Rust and TypeScript encoders it
refuses what those would write differently or not at all: NaN and +-Infinity,
subnormal floats, floats with an integral value (Python writes ``1.0`` where JavaScript
writes ``1``), non-string and non-ASCII object keys, and any non-JSON type. There is no
pickle anywhere in tierdb.

Notes: thread safety. Codecs are stateless and safe to share between threads.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any, Final, Protocol, runtime_checkable

from .errors import CodecError

__all__ = ["JSON_CODEC", "BytesCodec", "Codec", "JsonCodec", "canonical_json", "canonical_json_bytes"]

_FLOAT_MIN_NORMAL: Final = sys.float_info.min


@runtime_checkable
class Codec(Protocol):
    """Turns values into bytes and back. ``name`` identifies the encoding."""

    name: str

    def encode(self, obj: Any) -> bytes:
        """Encode ``obj``. Raises :class:`CodecError` (kind ``encode``) if it cannot."""
        ...

    def decode(self, data: bytes) -> Any:
        """Decode ``data``. Raises :class:`CodecError` (kind ``decode``) if it cannot."""
        ...


def _check(obj: Any, where: str) -> None:
    """Refuse anything canonical JSON cannot represent byte-identically. O(size of obj)."""
    if obj is None or obj is True or obj is False or isinstance(obj, str):
        return
    if isinstance(obj, int):
        return
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            raise CodecError("encode", f"{where}: {obj!r} is not representable in JSON")
        if obj.is_integer():
            raise CodecError(
                "encode",
                f"{where}: float {obj!r} has an integral value, which Python and JavaScript "
                f"encode differently; use the int {int(obj)} instead",
            )
        if abs(obj) < _FLOAT_MIN_NORMAL:
            raise CodecError("encode", f"{where}: subnormal float {obj!r} is not canonical")
        return
    if isinstance(obj, dict):
        for key, value in obj.items():
            if not isinstance(key, str):
                raise CodecError(
                    "encode",
                    f"{where}: object key {key!r} is a {type(key).__name__}; JSON object keys "
                    "must be str",
                )
            if not key.isascii():
                raise CodecError(
                    "encode",
                    f"{where}: object key {key!r} is not ASCII; canonical JSON sorts keys by "
                    "code unit, which differs between implementations for non-ASCII keys",
                )
            _check(value, f"{where}.{key}")
        return
    if isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            _check(value, f"{where}[{i}]")
        return
    raise CodecError(
        "encode",
        f"{where}: {type(obj).__name__} is not a JSON type (use dict, list, str, int, "
        "float, bool or None)",
    )


def canonical_json(obj: Any) -> str:
    """Encode ``obj`` as canonical JSON text.

    Complexity: O(size of ``obj``).

    Raises:
        CodecError: kind ``encode``, naming the offending location (``$.a[2]``).
    """
    _check(obj, "$")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def canonical_json_bytes(obj: Any) -> bytes:
    """:func:`canonical_json` encoded as UTF-8."""
    return canonical_json(obj).encode("utf-8")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class JsonCodec:
    """Canonical JSON codec (the default for every view). See the module docstring."""

    name: str = "json"

    def encode(self, obj: Any) -> bytes:
        """Encode ``obj`` as canonical JSON UTF-8 bytes. Raises :class:`CodecError`."""
        return canonical_json_bytes(obj)

    def decode(self, data: bytes) -> Any:
        """Decode JSON bytes. Raises :class:`CodecError` (kind ``decode``) on bad input."""
        try:
            text = bytes(data).decode("utf-8")
            return json.loads(text, parse_constant=_refuse_constant)
        except (UnicodeDecodeError, ValueError) as exc:
            raise CodecError("decode", f"not canonical JSON ({exc}); was it written by another codec?") from exc

    def __repr__(self) -> str:
        return "JsonCodec()"


class BytesCodec:
    """Identity codec for views that store raw bytes."""

    name: str = "bytes"

    def encode(self, obj: Any) -> bytes:
        """Return ``obj`` as bytes. Raises :class:`CodecError` unless it is bytes-like."""
        if isinstance(obj, (bytes, bytearray, memoryview)):
            return bytes(obj)
        raise CodecError("encode", f"BytesCodec stores bytes, got {type(obj).__name__}")

    def decode(self, data: bytes) -> Any:
        """Return ``data`` unchanged."""
        return bytes(data)

    def __repr__(self) -> str:
        return "BytesCodec()"


JSON_CODEC: Final = JsonCodec()
"""The shared default codec instance."""
