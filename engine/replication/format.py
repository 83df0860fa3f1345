"""The replication wire formats: one message per commit (or claim), and snapshots.

Message (subject ``tierdb.<stream>.commit`` or ``.claim``), little-endian::

    MSG_HEAD  magic "TDBR", format u8, kind u8, stream-name length u16, lineage 16 bytes,
              writer 8 bytes, version u64, commit time f64, body length u32       (52 bytes)
    stream name (UTF-8), body, crc32 u32 of everything before it

A commit body is the commit log's row encoding (``mvcc.commitlog.encode_batches``: version,
time, then per table a kind tag, id and rows of key/value lengths and bytes; -1 marks a
tombstone). A commit too large for one message is sent as *parts* (kind 3), consecutive
messages of one atomic batch: each body is ``PART`` (index u32, count u32, crc32 u32 of the
whole commit body) and the next slice of the commit body; the replica joins the slices,
checks the whole body's crc and decodes it. A claim body
is canonical JSON naming who claimed the stream and why. The
*lineage* names the replicated store (fixed when its stream is created); the *writer* is the
node id of the primary that wrote the message.

Snapshot (object ``snapshot`` of bucket ``tierdb_snap_<stream>``)::

    SNAP_HEAD magic "TDBSNAP1", format u8, lineage 16, writer 8, version u64, time f64,
              records u32, stream-name length u16                                  (55 bytes)
    stream name, then per record: REC length u32, crc32 u32, commit body; then crc32 u32 of
    the header and name

See docs/FORMATS.md.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

from ..mvcc.commitlog import decode_batches, encode_batches
from ..types import EntryKind
from .errors import CorruptMessage, ForeignStream

__all__ = [
    "KIND_CLAIM",
    "KIND_COMMIT",
    "KIND_PART",
    "Message",
    "SnapshotHead",
    "decode_message",
    "encode_claim",
    "encode_commit",
    "encode_commit_parts",
    "iter_snapshot",
    "read_snapshot_head",
    "write_snapshot",
]

MAGIC: Final = b"TDBR"
FORMAT: Final = 1
KIND_COMMIT: Final = 1
KIND_CLAIM: Final = 2
KIND_PART: Final = 3
PART: Final = struct.Struct("<III")   # index, count, crc32 of the whole commit body
MSG_HEAD: Final = struct.Struct("<4sBBH16s8sQdI")
assert MSG_HEAD.size == 52
CRC: Final = struct.Struct("<I")
assert CRC.size == 4
SNAP_MAGIC: Final = b"TDBSNAP1"
SNAP_HEAD: Final = struct.Struct("<8sB16s8sQdIH")
assert SNAP_HEAD.size == 55
REC: Final = struct.Struct("<II")
assert REC.size == 8

Batches = dict[EntryKind, list[tuple[bytes, "bytes | None"]]]


@dataclass(frozen=True)
class Message:
    """One decoded stream message."""

    kind: int
    stream: str
    lineage: bytes
    writer: bytes
    version: int
    time: float
    batches: Batches
    claim: dict[str, Any]
    part: tuple[int, int, int] = (0, 1, 0)   # a KIND_PART message: (index, count, body crc)
    chunk: bytes = b""               # a KIND_PART message: its slice of the commit body


def _frame(kind: int, stream: str, lineage: bytes, writer: bytes, version: int, ts: float,
           body: bytes) -> bytes:
    name = stream.encode()
    head = MSG_HEAD.pack(MAGIC, FORMAT, kind, len(name), lineage, writer, version, ts, len(body))
    data = b"".join((head, name, body))
    return data + CRC.pack(zlib.crc32(data))


def encode_commit(stream: str, lineage: bytes, writer: bytes, version: int, ts: float,
                  batches: Any) -> bytes:
    """One commit as a message. O(total bytes)."""
    return _frame(KIND_COMMIT, stream, lineage, writer, version, ts,
                  encode_batches(version, ts, batches))


def encode_commit_parts(stream: str, lineage: bytes, writer: bytes, version: int, ts: float,
                        batches: Any, max_message: int) -> list[bytes]:
    """One commit as messages of at most ``max_message`` bytes: one commit message when it
    fits, else consecutive parts (publish them as one atomic batch). O(total bytes)."""
    body = encode_batches(version, ts, batches)
    one = _frame(KIND_COMMIT, stream, lineage, writer, version, ts, body)
    if len(one) <= max_message:
        return [one]
    room = max_message - (MSG_HEAD.size + len(stream.encode()) + PART.size + CRC.size)
    count = -(-len(body) // room)
    crc = zlib.crc32(body)
    return [_frame(KIND_PART, stream, lineage, writer, version, ts,
                   PART.pack(i, count, crc) + body[i * room:(i + 1) * room]) for i in range(count)]


def join_parts(version: int, ts: float, chunks: list[bytes], crc: int, where: str) -> Batches:
    """The batches of a commit sent as parts (``crc``: the whole body's). Raises CorruptMessage."""
    body = b"".join(chunks)
    if zlib.crc32(body) != crc:
        raise CorruptMessage(f"{where}: the parts of commit {version} fail the commit's checksum")
    try:
        v2, t2, batches = decode_batches(body)
    except (ValueError, struct.error) as exc:
        raise CorruptMessage(f"{where}: the parts of commit {version} do not decode: {exc}") from None
    if v2 != version or t2 != ts:
        raise CorruptMessage(f"{where}: the parts of commit {version} disagree with their headers")
    return batches


def encode_claim(stream: str, lineage: bytes, writer: bytes, version: int, ts: float,
                 info: dict[str, Any]) -> bytes:
    """A claim: ``writer`` is the stream's primary from here on (its store is at ``version``)."""
    body = json.dumps(info, sort_keys=True, separators=(",", ":")).encode()
    return _frame(KIND_CLAIM, stream, lineage, writer, version, ts, body)


def decode_message(data: bytes, seq: int = 0) -> Message:
    """Verify and decode a message. Raises ForeignStream (not a tierdb replication message),
    CorruptMessage (checksum or structure)."""
    where = f"stream message {seq}" if seq else "stream message"
    if len(data) < MSG_HEAD.size + CRC.size or data[:4] != MAGIC:
        raise ForeignStream(f"{where} is not a tierdb replication message (bad magic); the "
                            "stream is written by something else: use a stream of its own")
    (crc,) = CRC.unpack_from(data, len(data) - CRC.size)
    if zlib.crc32(memoryview(data)[:len(data) - CRC.size]) != crc:
        raise CorruptMessage(f"{where} fails its checksum; the replica stopped before applying it")
    _, fmt, kind, nlen, lineage, writer, version, ts, blen = MSG_HEAD.unpack_from(data, 0)
    if fmt != FORMAT:
        raise ForeignStream(f"{where} has format {fmt}; this tierdb reads format {FORMAT}: upgrade it")
    start = MSG_HEAD.size + nlen
    if start + blen + CRC.size != len(data) or kind not in (KIND_COMMIT, KIND_CLAIM, KIND_PART):
        raise CorruptMessage(f"{where} has inconsistent lengths or an unknown kind {kind}")
    try:
        stream = data[MSG_HEAD.size:start].decode()
        body = data[start:start + blen]
        batches: Batches = {}
        claim: dict[str, Any] = {}
        part, chunk = (0, 1, 0), b""
        if kind == KIND_COMMIT:
            v2, t2, batches = decode_batches(body)
            if v2 != version or t2 != ts:
                raise ValueError("header and body disagree")
        elif kind == KIND_PART:
            part, chunk = PART.unpack_from(body, 0), body[PART.size:]
            if not part[0] < part[1]:
                raise ValueError(f"part {part[0]} of {part[1]}")
        else:
            claim = json.loads(body)
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise CorruptMessage(f"{where} does not decode: {exc}") from None
    return Message(kind, stream, lineage, writer, version, ts, batches, claim, part, chunk)


@dataclass(frozen=True)
class SnapshotHead:
    """A snapshot's verified header: ``count`` records follow, every retained version <=
    ``version`` as (version, time, batches), in version order."""

    stream: str
    lineage: bytes
    writer: bytes
    version: int
    time: float
    count: int


def write_snapshot(fh: BinaryIO, stream: str, lineage: bytes, writer: bytes, version: int,
                   ts: float, count: int, records: Iterable[tuple[int, float, Any]]) -> None:
    """Write a snapshot to the binary file ``fh``, record by record as ``records`` yields
    them (memory: one record). ``count`` must be how many it yields."""
    name = stream.encode()
    head = SNAP_HEAD.pack(SNAP_MAGIC, FORMAT, lineage, writer, version, ts, count, len(name))
    fh.write(head + name + CRC.pack(zlib.crc32(head + name)))
    n = 0
    for v, t, batches in records:
        body = encode_batches(v, t, batches)
        fh.write(REC.pack(len(body), zlib.crc32(body)))
        fh.write(body)
        n += 1
    if n != count:
        raise ValueError(f"snapshot header says {count} records, {n} were written")


def read_snapshot_head(fh: BinaryIO) -> SnapshotHead:
    """Verify the header at ``fh``'s position and leave ``fh`` at the first record.
    Raises ForeignStream, CorruptMessage."""
    fixed = fh.read(SNAP_HEAD.size)
    if len(fixed) < SNAP_HEAD.size or fixed[:8] != SNAP_MAGIC:
        raise ForeignStream("the replication snapshot object is not a tierdb snapshot (bad magic)")
    _, fmt, lineage, writer, version, ts, n, nlen = SNAP_HEAD.unpack(fixed)
    rest = fh.read(nlen + CRC.size)
    if fmt != FORMAT or len(rest) < nlen + CRC.size:
        raise CorruptMessage(f"replication snapshot header is damaged (format {fmt})")
    (crc,) = CRC.unpack_from(rest, nlen)
    if zlib.crc32(fixed + rest[:nlen]) != crc:
        raise CorruptMessage("replication snapshot header fails its checksum")
    return SnapshotHead(rest[:nlen].decode(errors="replace"), lineage, writer, version, ts, n)


def iter_snapshot(fh: BinaryIO, head: SnapshotHead, *,
                  decode: bool = True) -> Iterator[tuple[int, float, Batches] | None]:
    """The records after the header, each verified against its checksum before it is
    yielded (decoded, or None with ``decode=False``: a verifying pass); then the file must
    end. Raises CorruptMessage (checksum, truncation, trailing bytes, undecodable)."""
    for i in range(head.count):
        fixed = fh.read(REC.size)
        if len(fixed) < REC.size:
            raise CorruptMessage(f"replication snapshot is truncated at record {i}")
        blen, bcrc = REC.unpack(fixed)
        body = fh.read(blen)
        if len(body) != blen or zlib.crc32(body) != bcrc:
            raise CorruptMessage(f"replication snapshot record {i} fails its checksum")
        if not decode:
            yield None
            continue
        try:
            yield decode_batches(body)
        except (ValueError, struct.error) as exc:
            raise CorruptMessage(f"replication snapshot record {i} does not decode: {exc}") from None
    if fh.read(1):
        raise CorruptMessage("replication snapshot has trailing bytes")
