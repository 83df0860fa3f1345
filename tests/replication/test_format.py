"""The replication wire formats (no server): round trips and every damage is typed."""

from __future__ import annotations

import io

import pytest

from engine import EntryKind
from engine.replication import CorruptMessage, ForeignStream
from engine.replication.format import (
    KIND_CLAIM,
    KIND_COMMIT,
    KIND_PART,
    SnapshotHead,
    decode_message,
    encode_claim,
    encode_commit,
    encode_commit_parts,
    iter_snapshot,
    read_snapshot_head,
    write_snapshot,
)

LIN, W = bytes(range(16)), b"\x01" * 8
B = {EntryKind.source(3): [(b"a", b"1"), (b"", b"")], EntryKind.MULTI: [(b"gone", None)]}


def test_commit_and_claim_round_trip() -> None:
    m = decode_message(encode_commit("s1", LIN, W, 42, 1700000000.25, B), 7)
    assert (m.kind, m.stream, m.lineage, m.writer, m.version, m.time) == \
        (KIND_COMMIT, "s1", LIN, W, 42, 1700000000.25)
    assert m.batches == B
    c = decode_message(encode_claim("s1", LIN, W, 42, 1.0, {"reason": "promote"}))
    assert c.kind == KIND_CLAIM and c.claim == {"reason": "promote"} and c.version == 42


@pytest.mark.parametrize("pos", [4, 5, 20, 40, 52, 60, -3])
def test_any_flipped_byte_is_corrupt_or_foreign(pos: int) -> None:
    data = bytearray(encode_commit("s1", LIN, W, 42, 1.0, B))
    data[pos] ^= 0x10
    with pytest.raises((CorruptMessage, ForeignStream)):
        decode_message(bytes(data))


def test_foreign_and_truncated_messages() -> None:
    with pytest.raises(ForeignStream):
        decode_message(b'{"json": "from someone else"}' * 3)
    with pytest.raises(ForeignStream):
        decode_message(b"")
    data = encode_commit("s1", LIN, W, 42, 1.0, B)
    with pytest.raises(CorruptMessage):
        decode_message(data[:-1])


def _read_snapshot(data: bytes) -> tuple[object, list[object]]:
    fh = io.BytesIO(data)
    head = read_snapshot_head(fh)
    return head, list(iter_snapshot(fh, head))


def test_snapshot_round_trip_and_damage() -> None:
    recs = [(1, 10.0, B), (3, 11.5, {EntryKind.operator(2): [(b"x", b"y")]})]
    out = io.BytesIO()
    write_snapshot(out, "s1", LIN, W, 5, 12.0, len(recs), iter(recs))
    data = out.getvalue()
    head, got = _read_snapshot(data)
    assert head == SnapshotHead("s1", LIN, W, 5, 12.0, 2)
    assert got == recs
    for pos in (10, 70, len(data) - 2):
        bad = bytearray(data)
        bad[pos] ^= 1
        with pytest.raises((CorruptMessage, ForeignStream)):
            _read_snapshot(bytes(bad))
    for damaged in (data + b"\0", data[:-1]):           # trailing bytes, truncation
        with pytest.raises(CorruptMessage):
            _read_snapshot(damaged)
    # a verifying pass reads no record it has not checked, and finds the same damage
    fh = io.BytesIO(data[:-1])
    with pytest.raises(CorruptMessage):
        list(iter_snapshot(fh, read_snapshot_head(fh), decode=False))
    with pytest.raises(ValueError):                       # the count must be right
        write_snapshot(io.BytesIO(), "s1", LIN, W, 5, 12.0, 3, iter(recs))


BIG = {EntryKind.source(3): [(b"k%04d" % i, bytes([i % 251]) * 300) for i in range(400)]}


def _applier_at_claim(tmp_path: object) -> tuple[object, object]:
    """A local store and an Applier that has seen the stream's genesis claim."""
    import engine
    from engine.replication.apply import Applier
    store = engine.open(tmp_path)  # type: ignore[arg-type]
    a = Applier(store, "s1", None, None, 0)
    a.handle(1, encode_claim("s1", LIN, W, 0, 1.0, {"reason": "genesis"}))
    return store, a


def test_a_large_commit_splits_into_parts_that_apply_whole(tmp_path: object) -> None:
    parts = encode_commit_parts("s1", LIN, W, 1, 5.0, BIG, 20_000)
    assert len(parts) >= 6 and all(len(p) <= 20_000 for p in parts)
    assert encode_commit_parts("s1", LIN, W, 1, 5.0, B, 20_000) == [encode_commit("s1", LIN, W, 1, 5.0, B)]
    ms = [decode_message(p) for p in parts]
    assert [m.kind for m in ms] == [KIND_PART] * len(parts)
    assert [m.part[:2] for m in ms] == [(i, len(parts)) for i in range(len(parts))]
    store, a = _applier_at_claim(tmp_path)
    try:
        for i, p in enumerate(parts[:-1]):
            a.handle(2 + i, p)                       # type: ignore[attr-defined]
            assert store.version == 0                # type: ignore[attr-defined]
        a.handle(1 + len(parts), parts[-1])          # type: ignore[attr-defined]
        assert store.version == 1 and store.commit_time(1) == 5.0   # type: ignore[attr-defined]
        t = EntryKind.source(3)
        assert [store.get(t, k) for k, _ in BIG[t]] == [v for _, v in BIG[t]]   # type: ignore[attr-defined]
    finally:
        store.close()                                # type: ignore[attr-defined]


@pytest.mark.parametrize("damage", ["skip", "swap", "commit-between", "flip"])
def test_parts_out_of_order_missing_or_damaged_apply_nothing(tmp_path: object, damage: str) -> None:
    from engine.replication import VersionGap
    parts = encode_commit_parts("s1", LIN, W, 1, 5.0, BIG, 20_000)
    if damage == "skip":
        feed = parts[:2] + parts[3:]
    elif damage == "swap":
        feed = [parts[1], parts[0]] + parts[2:]
    elif damage == "commit-between":
        feed = parts[:2] + [encode_commit("s1", LIN, W, 1, 5.0, B)] + parts[2:]
    else:  # a flipped byte inside a part's slice, with the part's own checksum redone
        body = bytearray(parts[2])
        body[200] ^= 0xFF
        import struct
        import zlib
        body[-4:] = struct.pack("<I", zlib.crc32(bytes(body[:-4])))
        feed = parts[:2] + [bytes(body)] + parts[3:]
    store, a = _applier_at_claim(tmp_path)
    try:
        with pytest.raises((VersionGap, CorruptMessage)):
            for i, p in enumerate(feed):
                a.handle(2 + i, p)                   # type: ignore[attr-defined]
        assert store.version == 0                    # type: ignore[attr-defined]
        assert store.get(EntryKind.source(3), b"k0000") is None   # type: ignore[attr-defined]
    finally:
        store.close()                                # type: ignore[attr-defined]
