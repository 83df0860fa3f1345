"""The replication wire formats (no server): round trips and every damage is typed."""

from __future__ import annotations

import pytest

from engine import EntryKind
from engine.replication import CorruptMessage, ForeignStream
from engine.replication.format import (
    KIND_CLAIM,
    KIND_COMMIT,
    decode_message,
    decode_snapshot,
    encode_claim,
    encode_commit,
    encode_snapshot,
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


def test_snapshot_round_trip_and_damage() -> None:
    recs = [(1, 10.0, B), (3, 11.5, {EntryKind.operator(2): [(b"x", b"y")]})]
    data = encode_snapshot("s1", LIN, W, 5, 12.0, recs)
    s = decode_snapshot(data)
    assert (s.stream, s.lineage, s.writer, s.version, s.time) == ("s1", LIN, W, 5, 12.0)
    assert s.records == recs
    for pos in (10, 70, len(data) - 2):
        bad = bytearray(data)
        bad[pos] ^= 1
        with pytest.raises((CorruptMessage, ForeignStream)):
            decode_snapshot(bytes(bad))
    with pytest.raises(CorruptMessage):
        decode_snapshot(data + b"\0")
