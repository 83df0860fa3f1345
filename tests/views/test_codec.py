"""Canonical JSON codec (spec section 8)."""

from __future__ import annotations

import math
import sys

import pytest

from engine.errors import EngineError
from engine.views import BytesCodec, CodecError, JsonCodec, StorageError, canonical_json


def test_sorted_keys_recursively_no_whitespace_utf8() -> None:
    obj = {"b": [3, {"z": 1, "a": None}], "a": "café 👋", "c": True}
    assert canonical_json(obj) == '{"a":"café 👋","b":[3,{"a":null,"z":1}],"c":true}'
    data = JsonCodec().encode(obj)
    assert data == canonical_json(obj).encode("utf-8")
    assert JsonCodec().decode(data) == obj


def test_big_ints_and_fractions() -> None:
    assert canonical_json([2**64 - 1, -5, 0.5, 1e-3]) == "[18446744073709551615,-5,0.5,0.001]"


@pytest.mark.parametrize(
    "bad",
    [
        math.nan,
        math.inf,
        -math.inf,
        {"x": [1, math.nan]},
        1.0,  # integral float: Python "1.0" vs JavaScript "1"
        -0.0,
        sys.float_info.min / 4,  # subnormal
        {1: "a"},  # non-string key
        {("t",): 1},
        {"é": 1},  # non-ASCII key
        {1, 2},  # not a JSON type
        b"bytes",
        object(),
    ],
)
def test_refuses_with_codec_error_encode(bad: object) -> None:
    with pytest.raises(CodecError) as info:
        JsonCodec().encode(bad)
    err = info.value
    assert err.kind == "encode"
    assert isinstance(err, StorageError) and isinstance(err, EngineError) and isinstance(err, ValueError)
    assert "$" in str(err)  # names where


def test_error_names_location() -> None:
    with pytest.raises(CodecError, match=r"\$\.x\[1\]"):
        canonical_json({"x": [1, math.nan]})
    with pytest.raises(CodecError, match="non|str"):
        canonical_json({3: 1})


@pytest.mark.parametrize("data", [b"\xff\xfe", b"{", b"NaN", b"[Infinity]", b"{'a':1}"])
def test_decode_errors(data: bytes) -> None:
    with pytest.raises(CodecError) as info:
        JsonCodec().decode(data)
    assert info.value.kind == "decode"


def test_bytes_codec() -> None:
    c = BytesCodec()
    assert c.decode(c.encode(bytearray(b"ab"))) == b"ab"
    with pytest.raises(CodecError):
        c.encode("text")


def test_codec_error_kind_validated() -> None:
    with pytest.raises(ValueError):
        CodecError("other", "x")
