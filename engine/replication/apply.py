"""Applying a replication stream to a local store: validation, catch-up, snapshots.

Shared by the replica's follower, ``promote()`` and a restarting primary (which applies the
commits whose acknowledgement it never saw). Every message is verified (checksum, stream
name, lineage, writer, version continuity) before anything is applied; a bad one raises and
leaves the store at the last good commit.

Positions: messages are ordered by *key* = 2 * version for a commit and 2 * version + 1 for a
claim (a claim follows the commit of its version). A store at version ``v`` resumes at the
first message whose key exceeds ``2 v``, found by bisection over the stream (O(log n) reads),
so the position needs no storage of its own: it is the store's version.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import Any, BinaryIO

from ..types import Bound, EntryKind
from .errors import ForeignStream, VersionGap
from .format import (
    KIND_CLAIM,
    KIND_PART,
    Message,
    decode_message,
    iter_snapshot,
    join_parts,
    read_snapshot_head,
    write_snapshot,
)
from .link import Link

__all__ = ["Applier", "load_claims", "resume_seq", "scratch_dir", "stream_commit",
           "write_store_snapshot"]

log = logging.getLogger("tierdb.replication")


def msg_key(m: Message) -> int:
    return 2 * m.version + (1 if m.kind == KIND_CLAIM else 0)


def resume_seq(link: Link, version: int, first: int, last: int) -> int:
    """The sequence of the first message after the commit of ``version`` (last + 1 if none).

    Bisection on "the first message at or after s has key > 2 * version", which is monotonic
    in s because keys never decrease along the stream. O(log(last - first)) reads.
    """
    target = 2 * version
    lo, hi = max(1, first), last + 1
    found: dict[int, int] = {}

    def probe(s: int) -> bool:
        r = link.get(s)
        if r is None or r[0] > last:
            return True
        found[s] = r[0]
        return msg_key(decode_message(r[1], r[0])) > target
    while lo < hi:
        mid = (lo + hi) // 2
        if probe(mid):
            hi = mid
        else:
            lo = mid + 1
    if lo > last:
        return last + 1
    return found.get(lo, lo)


def stream_commit(link: Link, version: int, first: int, last: int) -> tuple[float, Any] | None:
    """``(time, batches)`` of the commit of ``version`` as the stream holds it, or None when
    it holds no such commit (trimmed below a snapshot, or not written yet). O(log n) reads
    plus the commit's messages."""
    seq = resume_seq(link, version - 1, first, last) if version > 1 else max(1, first)
    chunks: list[bytes] = []
    while seq <= last:
        r = link.get(seq)
        if r is None or r[0] > last:
            return None
        m = decode_message(r[1], r[0])
        seq = r[0] + 1
        if m.kind == KIND_CLAIM:
            continue
        if m.version != version:
            return None
        if m.kind != KIND_PART:
            return m.time, m.batches
        chunks.append(m.chunk)
        if len(chunks) == m.part[1]:
            return m.time, join_parts(version, m.time, chunks, m.part[2], f"stream message {r[0]}")
    return None


def load_claims(link: Link) -> list[tuple[int, bytes, int]]:
    """Every retained claim as ``(seq, writer, version)``, in stream order (claims are few:
    one per primary start or promotion, and trimming keeps them)."""
    out: list[tuple[int, bytes, int]] = []
    seq = 1
    while True:
        r = link.first_after(link.claim_subject, seq)
        if r is None:
            return out
        m = decode_message(r[1], r[0])
        out.append((r[0], m.writer, m.version))
        seq = r[0] + 1


class Applier:
    """Validates messages in stream order and applies commits to ``store``.

    ``seq`` is the last sequence handled (applied or a claim noted).
    """

    def __init__(self, store: Any, stream: str, lineage: bytes | None, writer: bytes | None,
                 seq: int) -> None:
        self.store = store
        self.stream = stream
        self.lineage = lineage
        self.writer = writer
        self.seq = seq
        self.on_lineage: Any = None   # called once when the lineage becomes known
        self._chunks: list[bytes] = []   # the parts received so far of a commit sent in parts
        self._whole = (0, 0)             # that commit's (part count, body crc)

    def check(self, seq: int, data: bytes) -> Message:
        """Verify one message against the stream's state; raises, applies nothing."""
        m = decode_message(data, seq)
        if m.stream != self.stream:
            raise ForeignStream(f"stream message {seq} belongs to stream {m.stream!r}, not "
                                f"{self.stream!r}: it was copied from another stream")
        if self.lineage is None:
            if m.kind != KIND_CLAIM:
                raise ForeignStream(f"stream message {seq} is a commit before any claim: the stream "
                                    "was not started by store.replicate()")
        elif m.lineage != self.lineage:
            raise ForeignStream(f"stream message {seq} belongs to another store (lineage "
                                f"{m.lineage.hex()}, expected {self.lineage.hex()})")
        v = self.store.version
        if self._chunks and (m.kind != KIND_PART or m.part != (len(self._chunks), *self._whole)):
            raise VersionGap(f"stream message {seq} follows part {len(self._chunks)} of commit "
                             f"{v + 1}, which is not its next part; stopped there")
        if m.kind == KIND_PART and not self._chunks and m.part[0] != 0:
            raise VersionGap(f"stream message {seq} is part {m.part[0] + 1} of commit {m.version} "
                             "without the parts before it; stopped there")
        if m.kind == KIND_CLAIM:
            if m.version != v:
                raise VersionGap(f"stream message {seq} claims the stream at version {m.version}, "
                                 f"but the commits before it end at {v}")
        else:
            if m.version != v + 1:
                raise VersionGap(f"stream message {seq} carries version {m.version}, but the next "
                                 f"version after {v} is {v + 1} (a gap or a repeat); stopped there")
            if m.writer != self.writer:
                raise VersionGap(f"stream message {seq} (version {m.version}) was written by "
                                 f"{m.writer.hex()}, not by the stream's primary "
                                 f"{(self.writer or b'').hex()}")
        return m

    def handle(self, seq: int, data: bytes, *, locked: bool = False) -> Message | None:
        """Apply (or note) one message; messages at or below ``seq`` are skipped (redelivery)."""
        if seq <= self.seq:
            return None
        m = self.check(seq, data)
        if m.kind == KIND_CLAIM:
            if self.lineage is None:
                self.lineage = m.lineage
                if self.on_lineage is not None:
                    self.on_lineage(m.lineage)
            self.writer = m.writer
        elif m.kind == KIND_PART:
            self._chunks.append(m.chunk)   # applied with its last part (one local commit)
            self._whole = m.part[1:]
            if len(self._chunks) == m.part[1]:
                chunks, self._chunks = self._chunks, []
                batches = join_parts(m.version, m.time, chunks, m.part[2], f"stream message {seq}")
                self.store._apply_replicated(m.version, m.time, batches, locked=locked)
        else:
            self.store._apply_replicated(m.version, m.time, m.batches, locked=locked)
        self.seq = seq
        return m

    def catch_up(self, link: Link, last: int) -> int:
        """Apply every message after :attr:`seq` up to ``last``; return how many."""
        n = 0
        while self.seq < last:
            r = link.get(self.seq + 1)
            if r is None or r[0] > last:
                break
            self.handle(r[0], r[1])
            n += 1
        return n

    def load_snapshot(self, link: Link) -> int:
        """Apply the stream's snapshot records above the store's version; return its version.

        The snapshot streams into a scratch file (memory: one record); every record's
        checksum is verified before the first is applied. Records are in version order and
        each is one local commit, so an interrupted load resumes where it stopped. Raises
        ForeignStream, CorruptMessage.
        """
        store = self.store
        with scratch_dir(store) as d, open(d / "snapshot", "w+b") as fh:
            if not link.get_snapshot(fh):
                return 0
            fh.seek(0)
            head = read_snapshot_head(fh)
            if head.stream != self.stream or (self.lineage is not None and head.lineage != self.lineage):
                raise ForeignStream(f"the snapshot in bucket {link.bucket!r} belongs to another stream or store")
            for _ in iter_snapshot(fh, head, decode=False):
                pass
            fh.seek(0)
            read_snapshot_head(fh)
            if self.lineage is None:
                self.lineage = head.lineage
                if self.on_lineage is not None:
                    self.on_lineage(head.lineage)
            for rec in iter_snapshot(fh, head):
                v, t, batches = rec  # type: ignore[misc]
                if v > store.version:
                    store._apply_replicated(v, t, batches, jump=True)
        if store.version < head.version:
            store._apply_replicated(head.version, head.time, {}, jump=True)
        self.writer = head.writer
        return head.version


@contextlib.contextmanager
def scratch_dir(store: Any) -> Iterator[Path]:
    """A private scratch directory beside the store (its file system has the room; the
    ``.tmp`` suffix keeps backups from copying it), removed afterwards."""
    base = None if store.path is None else Path(store.path)
    d = Path(tempfile.mkdtemp(prefix=".replication-", suffix=".tmp", dir=base))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def write_store_snapshot(store: Any, version: int, fh: BinaryIO, stream: str, lineage: bytes,
                         writer: bytes) -> int:
    """Write every retained version <= ``version`` of every key to ``fh`` as a snapshot,
    grouped by version with each version's commit time; return the record count.

    Memory stays bounded: rows go through an on-disk SQLite table that sorts them by
    version (the store yields them by key). O(keys x tiers) reads, O(rows log rows) sort.
    """
    tables = list(store.tables())
    router = store._router
    with scratch_dir(store) as d:
        db = sqlite3.connect(str(d / "rows.db"))
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("CREATE TABLE r (v INTEGER, t INTEGER, k BLOB, x BLOB)")
            rows: list[tuple[int, int, bytes, bytes | None]] = []
            for ti, table in enumerate(tables):
                for e in router.scan(table, Bound.UNBOUNDED, Bound.UNBOUNDED, version, False, 1024):
                    rows.extend((v, ti, e.key, val) for v, val in router.history(table, e.key)
                                if v <= version)
                    if len(rows) >= 20_000:
                        db.executemany("INSERT INTO r VALUES (?, ?, ?, ?)", rows)
                        rows.clear()
            db.executemany("INSERT INTO r VALUES (?, ?, ?, ?)", rows)
            count = int(db.execute("SELECT COUNT(DISTINCT v) FROM r").fetchone()[0])
            time_of = store._time.time_of

            def records() -> Iterator[tuple[int, float, dict[EntryKind, list[tuple[bytes, bytes | None]]]]]:
                cur = db.execute("SELECT v, t, k, x FROM r ORDER BY v, t, rowid")
                for v, group in itertools.groupby(cur, key=itemgetter(0)):
                    batches: dict[EntryKind, list[tuple[bytes, bytes | None]]] = {}
                    for _, ti, k, x in group:
                        batches.setdefault(tables[ti], []).append((k, x))
                    yield v, float(time_of(v) or 0.0), batches
            ts = float(time_of(version) or time.time()) if version else 0.0
            write_snapshot(fh, stream, lineage, writer, version, ts, count, records())
        finally:
            db.close()
    return count
