"""The commit log: an append-only, checksummed record of every commit, for durability.

Files ``log/commit-<first version, 20 digits>.log``; each starts with a header and holds
length + CRC framed records, one per commit (formats in docs/FORMATS.md).

Durability modes (DESIGN.md invariant 6):

* ``"sync"``: the record is written and ``fdatasync``-ed before the commit returns.
  Concurrent committers share one fsync (group commit): whoever syncs covers every byte
  written before the sync started.
* ``"normal"``: the record is handed to the OS with one ``write()``; it survives kill -9.
* ``"none"``: records are buffered in memory and written in chunks; a crash may lose them.

Recovery reads every file in order. A record cut short or failing its CRC at the very end of
the newest file is a torn tail: it is truncated and reported (:attr:`CommitLog.recovery`),
never applied. A bad record with data after it raises :class:`CorruptionError` naming the
file and offset.

Notes: thread safety
    :meth:`append` must be called under the store's commit lock; it also takes the log's
    write lock, which :meth:`flush` (called outside the commit lock) shares, so a drain never
    races an append. :meth:`sync_to` may be called by many threads at once (that is the group
    commit); rotation takes the sync lock so no fsync runs on a file being closed. :meth:`truncate_through` may
    run concurrently with appends.
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from ..errors import ClosedError, CorruptionError, FormatError, StorageIOError
from ..types import EntryKind

__all__ = ["CommitLog", "LogRecord", "RecoveryReport", "DURABILITY_MODES", "encode_batches",
           "decode_batches"]

log = logging.getLogger("tierdb.commitlog")

DURABILITY_MODES = ("sync", "normal", "none")

LOG_MAGIC = b"TIERDBCL"
LOG_FORMAT_VERSION = 1
# magic, format version, crc32 of the first 12 bytes
LOG_HEADER = struct.Struct("<8sII")
assert LOG_HEADER.size == 16
# payload length, crc32 of payload
REC_HEADER = struct.Struct("<II")
assert REC_HEADER.size == 8
# version, wall-clock timestamp (seconds), number of tables
REC_FIXED = struct.Struct("<QdI")
assert REC_FIXED.size == 20
# kind tag, kind id, number of rows
TABLE_HEADER = struct.Struct("<BQI")
assert TABLE_HEADER.size == 13
# key length, value length (-1 = tombstone)
ROW_HEADER = struct.Struct("<Ii")
assert ROW_HEADER.size == 8

_FILE_HEADER = LOG_HEADER.pack(LOG_MAGIC, LOG_FORMAT_VERSION,
                               zlib.crc32(LOG_MAGIC + struct.pack("<I", LOG_FORMAT_VERSION)))

_KIND_TAGS = {"multi": 0, "source": 1, "operator": 2}
MAX_RECORD = 1 << 31
ROTATE_BYTES = 64 << 20
_NONE_BUFFER = 1 << 20

Batches = Mapping[EntryKind, Sequence[tuple[bytes, "bytes | None"]]]


def encode_batches(version: int, timestamp: float, batches: Batches) -> bytes:
    """Serialise one commit's payload. O(total bytes).

    The row headers and the join run in C (``map`` over ``ROW_HEADER.pack`` and
    ``chain.from_iterable``); only tombstones need a Python-level pass. bench_peers "load".
    """
    parts: list[bytes] = [REC_FIXED.pack(version, timestamp, len(batches))]
    append = parts.append
    row_pack = ROW_HEADER.pack
    for table, rows in batches.items():
        append(TABLE_HEADER.pack(_KIND_TAGS[table.tag], table.id, len(rows)))
        if not rows:
            continue
        keys, values = zip(*rows)
        if None in values:
            vlens: Any = [-1 if v is None else len(v) for v in values]
            values = tuple(b"" if v is None else v for v in values)
        else:
            vlens = map(len, values)
        parts.extend(chain.from_iterable(zip(map(row_pack, map(len, keys), vlens), keys, values)))
    return b"".join(parts)


def decode_batches(payload: bytes) -> tuple[int, float, dict[EntryKind, list[tuple[bytes, bytes | None]]]]:
    """Inverse of :func:`encode_batches`. Raises ValueError on malformed input."""
    version, ts, ntables = REC_FIXED.unpack_from(payload, 0)
    pos = REC_FIXED.size
    out: dict[EntryKind, list[tuple[bytes, bytes | None]]] = {}
    mv = memoryview(payload)
    for _ in range(ntables):
        tag, ident, nrows = TABLE_HEADER.unpack_from(payload, pos)
        pos += TABLE_HEADER.size
        if tag == 0:
            table = EntryKind.MULTI
        elif tag == 1:
            table = EntryKind.source(ident)
        elif tag == 2:
            table = EntryKind.operator(ident)
        else:
            raise ValueError(f"unknown table tag {tag}")
        rows: list[tuple[bytes, bytes | None]] = []
        for _ in range(nrows):
            klen, vlen = ROW_HEADER.unpack_from(payload, pos)
            pos += ROW_HEADER.size
            key = bytes(mv[pos:pos + klen])
            pos += klen
            if vlen < 0:
                rows.append((key, None))
            else:
                rows.append((key, bytes(mv[pos:pos + vlen])))
                pos += vlen
        out[table] = rows
    if pos != len(payload):
        raise ValueError("trailing bytes in commit record")
    return version, ts, out


def _zero_tail(data: bytes, pos: int) -> bool:
    """True if everything from ``pos`` on is zero bytes (space allocated but never written)."""
    return not data[pos:].strip(b"\0")


def _whole_record_follows(data: bytes, pos: int) -> bool:
    """Is the record at ``pos`` whole, despite a length field that runs past the end?

    A torn write leaves a strict prefix of one record, so the payload's own structure
    (table and row headers) cannot complete inside the file. If it does complete, and either
    matches the stored checksum or is followed by an intact record, the length field was
    damaged: that is corruption, not a torn tail. O(bytes after ``pos``).
    """
    n = len(data)
    start = pos + REC_HEADER.size
    if start > n or _zero_tail(data, pos):
        return False
    try:
        ntables = REC_FIXED.unpack_from(data, start)[2]
        q = start + REC_FIXED.size
        for _ in range(ntables):
            nrows = TABLE_HEADER.unpack_from(data, q)[2]
            q += TABLE_HEADER.size
            for _ in range(nrows):
                klen, vlen = ROW_HEADER.unpack_from(data, q)
                q += ROW_HEADER.size + klen + max(vlen, 0)
                if q > n:
                    return False
    except struct.error:
        return False
    if zlib.crc32(data[start:q]) == REC_HEADER.unpack_from(data, pos)[1]:
        return True
    if q + REC_HEADER.size > n:
        return False
    length, crc = REC_HEADER.unpack_from(data, q)
    end = q + REC_HEADER.size + length
    return length >= REC_FIXED.size and end <= n and zlib.crc32(data[q + REC_HEADER.size:end]) == crc


@dataclass(slots=True)
class LogRecord:
    version: int
    timestamp: float
    batches: dict[EntryKind, list[tuple[bytes, bytes | None]]]


@dataclass
class RecoveryReport:
    """What recovery found: records replayed and any torn tail it truncated."""

    records: int = 0
    max_version: int = 0
    torn_tail: dict[str, int | str] | None = None  # {"file": ..., "offset": ..., "bytes": ...}
    files: list[str] = field(default_factory=list)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CommitLog:
    """Append-only, checksummed, segmented commit log (see module docstring)."""

    def __init__(self, directory: str | os.PathLike[str], durability: str = "normal") -> None:
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, got {durability!r}")
        self.dir = Path(directory)
        self.durability = durability
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = None
        self._file: Path | None = None
        self._file_size = 0
        self._disk_size = 0
        self._files: list[tuple[int, Path]] = []  # (first version, path), oldest first
        self._written = 0   # logical bytes handed to the OS (or the buffer, for "none")
        self._synced = 0
        self._buffer = bytearray()
        self._sync_lock = threading.Lock()
        self._write_lock = threading.Lock()  # appends, drains and rotation of the active file
        self._files_lock = threading.Lock()
        self._closed = False
        self._broken: str | None = None
        self._active_last = 0     # version of the newest record in the active file
        self._active_records = 0  # records appended to the active file since it was opened
        self.last_record: bytes | None = None  # the newest appended record, framed
        self.recovery = RecoveryReport()
        for tmp in self.dir.glob("*.tmp"):
            tmp.unlink()

    # -- recovery ----------------------------------------------------------------------

    def recover(self) -> Iterator[LogRecord]:
        """Yield every intact record, oldest first; truncate a torn tail of the newest file."""
        names = sorted(p for p in self.dir.glob("commit-*.log"))
        self._files = []
        for p in names:
            try:
                first = int(p.name[len("commit-"):-len(".log")])
            except ValueError:
                raise FormatError(f"unexpected file in commit log directory: {p.name}", path=p) from None
            self._files.append((first, p))
        report = self.recovery
        for i, (_first, p) in enumerate(self._files):
            last_file = i == len(self._files) - 1
            report.files.append(p.name)
            yield from self._read_file(p, last_file, report)

    def _read_file(self, p: Path, last_file: bool, report: RecoveryReport) -> Iterator[LogRecord]:
        data = p.read_bytes()
        if len(data) < LOG_HEADER.size:
            if last_file:
                self._truncate_torn(p, 0, len(data), report)
                return
            raise CorruptionError("commit log file shorter than its header", path=p, offset=0)
        magic, fmt, crc = LOG_HEADER.unpack_from(data, 0)
        if magic != LOG_MAGIC or zlib.crc32(data[:12]) != crc:
            raise CorruptionError("bad commit log file header (not a tierdb commit log?)", path=p, offset=0)
        if fmt > LOG_FORMAT_VERSION:
            raise FormatError(
                f"commit log format {fmt} is newer than this tierdb ({LOG_FORMAT_VERSION}); upgrade tierdb",
                path=p, offset=0)
        pos = LOG_HEADER.size
        n = len(data)
        while pos < n:
            if pos + REC_HEADER.size > n:
                if last_file:
                    self._truncate_torn(p, pos, n - pos, report)
                    return
                raise CorruptionError("commit log record header cut short", path=p, offset=pos)
            length, crc = REC_HEADER.unpack_from(data, pos)
            end = pos + REC_HEADER.size + length
            if end > n:
                if last_file and not _whole_record_follows(data, pos):
                    self._truncate_torn(p, pos, n - pos, report)
                    return
                raise CorruptionError(
                    "commit log record length field is damaged (it runs past the end of the file "
                    "but a whole record is there); restore from a backup or truncate the log at "
                    "this offset by hand", path=p, offset=pos)
            payload = data[pos + REC_HEADER.size:end]
            if zlib.crc32(payload) != crc:
                if last_file and (end == n or _zero_tail(data, pos)):
                    self._truncate_torn(p, pos, n - pos, report)
                    return
                raise CorruptionError(
                    "commit log record fails its checksum with intact records after it; "
                    "restore from a backup or truncate the log at this offset by hand",
                    path=p, offset=pos)
            try:
                version, ts, batches = decode_batches(payload)
            except (ValueError, struct.error) as exc:
                if last_file and _zero_tail(data, pos):  # zero-filled space a crash left behind
                    self._truncate_torn(p, pos, n - pos, report)
                    return
                raise CorruptionError(f"malformed commit log record ({exc})", path=p, offset=pos) from None
            report.records += 1
            report.max_version = max(report.max_version, version)
            yield LogRecord(version, ts, batches)
            pos = end

    def _truncate_torn(self, p: Path, offset: int, nbytes: int, report: RecoveryReport) -> None:
        log.warning("commit log %s: torn tail of %d bytes at offset %d truncated", p, nbytes, offset)
        report.torn_tail = {"file": str(p), "offset": offset, "bytes": nbytes}
        if offset < LOG_HEADER.size:
            p.unlink()
            self._files = [(f, q) for f, q in self._files if q != p]
            return
        with open(p, "r+b") as fh:
            fh.truncate(offset)
            fh.flush()
            os.fsync(fh.fileno())

    # -- appending ---------------------------------------------------------------------

    def _open_file(self, first_version: int) -> None:
        p = self.dir / f"commit-{first_version:020d}.log"
        hdr = _FILE_HEADER
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        size = -1
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                view = memoryview(hdr)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
                _fsync_dir(self.dir)
                size = len(hdr)
        except OSError:
            os.close(fd)
            if size == 0:  # we created it: a half-written header must not stay behind
                try:
                    p.unlink()
                except OSError:
                    pass
            raise
        self._fd, self._file, self._file_size, self._disk_size = fd, p, size, size
        self._active_records = 0
        with self._files_lock:
            if not self._files or self._files[-1][1] != p:
                self._files.append((first_version, p))

    def append(self, version: int, timestamp: float, batches: Batches) -> int:
        """Append one commit record; return the logical end offset to pass to :meth:`sync_to`.

        Raises:
            StorageIOError: the write failed; the file is rolled back to its previous size.
        """
        if self._closed:
            raise ClosedError("commit log is closed")
        if self._broken:
            raise StorageIOError(f"commit log unusable after an earlier failure: {self._broken}; reopen the store")
        payload = encode_batches(version, timestamp, batches)
        if len(payload) >= MAX_RECORD:
            raise ValueError("commit too large for one log record (2 GiB); split it")
        rec = REC_HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        with self._write_lock:
            try:
                if self._fd is None or self._file_size >= ROTATE_BYTES:
                    self._rotate(version)
                if self.durability == "none":
                    self._buffer += rec
                    if len(self._buffer) >= _NONE_BUFFER:
                        try:
                            self._drain_buffer()
                        except OSError:
                            del self._buffer[-len(rec):]  # this commit fails; earlier ones stay queued
                            raise
                else:
                    self._write_disk(rec)
            except OSError as exc:
                raise StorageIOError(f"commit log write failed ({exc.strerror or exc}); the commit was not applied") from exc
            self._file_size += len(rec)
            self._written += len(rec)
            self._active_last = version
            self._active_records += 1
        self.last_record = rec  # the change feed writes these very bytes (same framing)
        return self._written

    def _write_disk(self, data: bytes | bytearray) -> None:
        """Write ``data`` fully at the end of the active file; roll back a partial write."""
        assert self._fd is not None
        start = self._disk_size
        view = memoryview(data)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError:
            try:
                os.ftruncate(self._fd, start)
            except OSError as exc2:
                self._broken = f"could not roll back a failed write ({exc2})"
            raise
        self._disk_size += len(data)

    def _drain_buffer(self) -> None:
        if self._buffer:
            # Clear only after the write: a failed write is rolled back, and the records of
            # earlier (acknowledged) commits must not be dropped with it.
            self._write_disk(bytes(self._buffer))
            self._buffer.clear()

    def _rotate(self, first_version: int) -> None:
        if self._fd is not None:
            self._drain_buffer()
            with self._sync_lock:  # no group-commit fsync may run on the fd being closed
                os.fsync(self._fd)
                os.close(self._fd)
                self._fd = None
                self._synced = self._written
        self._open_file(first_version)

    def sync_to(self, offset: int) -> None:
        """Make every byte up to logical ``offset`` durable (group commit)."""
        if self._synced >= offset:
            return
        if self._buffer:  # a "sync" commit on a "none" log: its record may still be buffered
            with self._write_lock:
                try:
                    self._drain_buffer()
                except OSError as exc:
                    raise StorageIOError(f"commit log write failed ({exc.strerror or exc})") from exc
        with self._sync_lock:
            if self._synced >= offset:
                return
            target = self._written
            fd = self._fd
            if fd is None:
                return
            try:
                os.fdatasync(fd)
            except OSError as exc:
                # After a failed fsync the kernel may have dropped the dirty pages, and a later
                # fsync can succeed without writing them: refuse every further commit.
                self._broken = f"fsync failed ({exc.strerror or exc})"
                raise StorageIOError(
                    f"commit log fsync failed ({exc.strerror or exc}): the commit is applied but "
                    "may not be durable; the store refuses further commits, reopen it") from exc
            if target > self._synced:
                self._synced = target

    def flush(self, sync: bool = True) -> None:
        """Write buffered records (``"none"`` mode) and optionally fsync."""
        if self._closed or self._fd is None:
            return
        with self._write_lock:  # flush runs outside the store's commit lock
            self._drain_buffer()
        if sync:
            self.sync_to(self._written)

    # -- truncation --------------------------------------------------------------------

    def truncate_through(self, version: int) -> int:
        """Delete log files holding only versions <= ``version``; return how many.

        Call only after every version <= ``version`` is durable in another tier. When every
        record of the active file is <= ``version`` (a flush caught up with the commits), the
        file is retired first, so the log keeps only what is not flushed yet plus one small
        active file: bytes the store no longer needs do not linger (and erased or collected
        values leave the disk) until the 64 MiB rotation.
        """
        removed = 0
        with self._write_lock:
            if not self._closed and self._broken is None and self._active_last <= version:
                try:
                    self._retire_active()
                except OSError as exc:
                    # The old file stays (its records are all flushed); appends reopen one.
                    log.warning("commit log: could not retire the active file (%s)", exc)
        with self._files_lock:
            files = list(self._files)
        doomed: list[Path] = []
        for i, (_first, p) in enumerate(files):
            if i + 1 < len(files):
                next_first = files[i + 1][0]
                if next_first - 1 <= version:
                    doomed.append(p)
        for p in doomed:
            if p == self._file:
                continue
            try:
                p.unlink()
            except FileNotFoundError:
                pass
            removed += 1
        if doomed:
            with self._files_lock:
                self._files = [(f, q) for f, q in self._files if q not in doomed or q == self._file]
            _fsync_dir(self.dir)
        return removed

    def rotate(self) -> None:
        """Start a new active file now (call under the store's commit lock, so the file
        boundary is a version boundary). No-op when the active file holds no record."""
        with self._write_lock:
            if self._closed:
                raise ClosedError("commit log is closed")
            try:
                self._retire_active()
            except OSError as exc:
                raise StorageIOError(f"commit log rotation failed ({exc.strerror or exc})") from exc

    def _retire_active(self) -> None:
        """Close the active file and open the next (named after the next version), when the
        active file holds records. Call under the write lock. Raises OSError."""
        if self._fd is not None and self._active_records:
            self._rotate(self._active_last + 1)

    def rewrite_without(self, doomed: Mapping[tuple[EntryKind, bytes], "set[int] | None"]) -> int:
        """Rewrite every closed log file without the rows ``doomed`` names: ``(table, key)``
        -> the versions to remove, or None for every version (erase, and forced drops in a
        store whose only durable copy of hot data is this log). Call under the store's
        commit lock, after :meth:`rotate`. Each file is rewritten to a temporary file,
        fsynced and renamed over the old one, so a crash leaves the old or the new file,
        never a mix. Returns the number of rows removed. O(log bytes).

        Raises: StorageIOError.
        """
        removed = 0
        with self._files_lock:
            files = [p for _f, p in self._files if p != self._file]
        hdr = _FILE_HEADER
        tables = {t for t, _k in doomed}
        for p in files:
            out = [hdr]
            hit = 0
            for rec in self._read_file(p, False, RecoveryReport()):
                batches = rec.batches
                if not tables.isdisjoint(batches):
                    batches = dict(batches)
                    for table in tables.intersection(batches):
                        rows = batches[table]
                        kept = []
                        for k, v in rows:
                            vs = doomed.get((table, k), ())
                            if vs is None or rec.version in vs:  # type: ignore[operator]
                                continue
                            kept.append((k, v))
                        hit += len(rows) - len(kept)
                        batches[table] = kept
                payload = encode_batches(rec.version, rec.timestamp, batches)
                out.append(REC_HEADER.pack(len(payload), zlib.crc32(payload)) + payload)
            if not hit:
                continue
            tmp = p.with_name(p.name + ".tmp")
            try:
                with open(tmp, "wb") as fh:
                    fh.write(b"".join(out))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, p)
                _fsync_dir(self.dir)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                raise StorageIOError(f"commit log rewrite of {p.name} failed ({exc.strerror or exc})") from exc
            removed += hit
        return removed

    def size_bytes(self) -> int:
        with self._files_lock:
            files = list(self._files)
        total = 0
        for _f, p in files:
            try:
                total += p.stat().st_size
            except FileNotFoundError:
                pass
        return total + len(self._buffer)

    def close(self) -> None:
        if self._closed:
            return
        with self._write_lock, self._sync_lock:
            try:
                if self._fd is not None:
                    self._drain_buffer()
                    os.fsync(self._fd)  # a clean close persists every mode, "none" included
                    os.close(self._fd)
            finally:
                self._fd = None
                self._closed = True
