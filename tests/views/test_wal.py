"""WAL frames: keys, checksums and the conformance vectors (scenarios 21-23)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.views import (
    REPLAY_ORDER,
    WAL_FRAME_SEQ_PAD,
    WAL_KEY_SEGMENT,
    BaseChange,
    CodecError,
    WALFrame,
    WalTag,
    canonical_json,
    graph_wal_prefix,
    verify_wal_frame_checksum,
    wal_frame_checksum,
    wal_frame_key,
)
from engine.views.wal import parse_frame_seq, stamp_frame

VECTORS = Path("/work/shared/conformance/wal_vectors.json")
if not VECTORS.exists():  # the repo may be checked out without the shared folder
    VECTORS = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "wal_vectors.json"


def _vectors() -> list[dict]:
    if not VECTORS.exists():
        pytest.skip("shared/conformance/wal_vectors.json not found")
    return json.loads(VECTORS.read_text())["vectors"]


# The four vectors of spec 9.2, also inline so they run without the shared folder.
INLINE = {
    "data": "d00054d7886e1d73c07a0086e5cbccddf62de3c0cadae31e75d78215b3293ece",
    "spec": "7e857f0862bd429d7d144980a2580da732e0d4b420a03d73d63462368f896c3b",
    "ownership": "901d3d70d38d954864243bdee5a88cb6d204e5e9823598606d38c10e604c3af4",
}
INLINE_SEQ0 = "da42bdfa3eff9dbb7ffc60b04c7478cbe7cbb7015ba48963b4ea4661f678c387"


def _frame(lifecycle: str = "data", seq: int | None = None, payload: object = 0) -> WALFrame:
    return WALFrame(
        lifecycle=lifecycle,
        path="p",
        change=BaseChange(structure="s", version=0, t_ns=0, lifecycle=lifecycle, change=payload, seq=seq),
        frame_seq=0,
        frame_t_ns=0,
    )


def test_constants() -> None:
    assert WAL_KEY_SEGMENT == "wal"
    assert WAL_FRAME_SEQ_PAD == 20
    assert REPLAY_ORDER == ("spec", "data", "ownership")
    assert graph_wal_prefix("g") == "g/wal"
    assert WalTag.C == "c"


def test_s21_wal_frame_key() -> None:
    assert wal_frame_key("g/wal", 17) == "g/wal/00000000000000000017"
    assert wal_frame_key("g/wal", 0) == "g/wal/00000000000000000000"
    assert wal_frame_key("g/wal", 2**64 - 1) == "g/wal/18446744073709551615"
    seqs = [0, 1, 9, 10, 99, 100, 12345, 10**19, 2**64 - 1]
    keys = [wal_frame_key("g/wal", s) for s in seqs]
    assert sorted(keys) == keys
    assert [parse_frame_seq(k) for k in keys] == seqs


def test_s21_wal_frame_key_rejects() -> None:
    with pytest.raises(ValueError):
        wal_frame_key("g/wal", -1)
    with pytest.raises(ValueError):
        wal_frame_key("g/wal", 2**64)
    with pytest.raises(TypeError):
        wal_frame_key("g/wal", 2.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wal_frame_key("g/wal", "3")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        wal_frame_key("g/wal", True)  # type: ignore[arg-type]


def test_parse_frame_seq_unparseable_is_zero() -> None:
    assert parse_frame_seq("g/wal/abc") == 0
    assert parse_frame_seq("g/wal/") == 0
    assert parse_frame_seq("g/wal/99999999999999999999") == 0  # above u64


def test_s22_vectors_from_shared_file() -> None:
    for vec in _vectors():
        assert canonical_json(vec["frame"]) == vec["canonical"], vec["name"]
        assert wal_frame_checksum(vec["frame"]) == vec["checksum"], vec["name"]
        frame = WALFrame.from_json({**vec["frame"], "checksum": vec["checksum"]})
        assert wal_frame_checksum(frame) == vec["checksum"]
        assert verify_wal_frame_checksum(frame)


@pytest.mark.parametrize("lifecycle", ["data", "spec", "ownership"])
def test_s22_inline_vectors(lifecycle: str) -> None:
    assert wal_frame_checksum(_frame(lifecycle)) == INLINE[lifecycle]


def test_s22_inline_vector_with_change_seq() -> None:
    assert wal_frame_checksum(_frame("data", seq=0)) == INLINE_SEQ0
    assert "seq" not in _frame("data").change.to_json()  # absent, never null


def test_s22_checksum_stability_and_tampering() -> None:
    f = stamp_frame(_frame(payload={"kind": "node.set", "path": "x", "value": 1}))
    assert len(f.checksum) == 64 and f.checksum == f.checksum.lower()
    assert verify_wal_frame_checksum(f)
    assert wal_frame_checksum(f) == wal_frame_checksum(f)
    # payload, path, frame_seq are covered
    assert not verify_wal_frame_checksum(replace(f, change=replace(f.change, change={"kind": "node.set", "path": "x", "value": 2})))
    assert not verify_wal_frame_checksum(replace(f, path="q"))
    assert not verify_wal_frame_checksum(replace(f, frame_seq=1))
    assert not verify_wal_frame_checksum(replace(f, frame_t_ns=5))
    # checksum and format_version are not
    assert wal_frame_checksum(replace(f, checksum="00" * 32)) == f.checksum
    assert verify_wal_frame_checksum(replace(f, format_version=7))


def test_s22_uncomputable_checksum_is_codec_error() -> None:
    f = _frame(payload={"v": float("nan")})
    with pytest.raises(CodecError) as info:
        wal_frame_checksum(f)
    assert info.value.kind == "encode"


def test_s23_missing_format_version_decodes_as_1() -> None:
    f = stamp_frame(_frame())
    obj = f.to_json()
    del obj["format_version"]
    assert WALFrame.from_json(obj).format_version == 1
    assert WALFrame.from_json(f.to_json()) == f


@pytest.mark.parametrize("tag", ["x", "C", "", 1, None, ["c"]])
def test_s23_other_tag_rejected(tag: object) -> None:
    obj = stamp_frame(_frame()).to_json()
    obj["t"] = tag
    with pytest.raises(CodecError):
        WALFrame.from_json(obj)
    with pytest.raises((ValueError, TypeError)):
        WALFrame(lifecycle="data", path="p", change=_frame().change, frame_seq=0, frame_t_ns=0, t=tag)  # type: ignore[arg-type]


def test_decode_rejects_bad_shapes() -> None:
    good = stamp_frame(_frame()).to_json()
    for mutate in (
        lambda o: o.pop("path"),
        lambda o: o.update(lifecycle="other"),
        lambda o: o.update(frame_seq=-1),
        lambda o: o.update(change=5),
        lambda o: o["change"].pop("t_ns"),
        lambda o: o["change"].update(version=1.5),
    ):
        obj = json.loads(json.dumps(good))
        mutate(obj)
        with pytest.raises(CodecError):
            WALFrame.from_json(obj)
    with pytest.raises(CodecError):
        WALFrame.from_json([1])


def test_version_may_be_content_id() -> None:
    f = stamp_frame(WALFrame(lifecycle="spec", path="p", change=BaseChange("s", "sha:abc", 1, "spec", {}), frame_seq=3, frame_t_ns=4))
    assert WALFrame.from_json(json.loads(json.dumps(f.to_json()))) == f
    assert f.kind is None
