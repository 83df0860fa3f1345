"""The cold tier's manifest: the one file that says which segments are live.

The manifest is small and rewritten whole on every change (new segment, compaction swap,
new table, drop-list consolidation) with :func:`write_atomic`: write ``MANIFEST.tmp``,
fsync it, rename it over ``MANIFEST``, fsync the directory. A crash leaves either the old
or the new manifest, never a mix; a stray ``MANIFEST.tmp`` is removed on open.

Layout (docs/FORMATS.md)::

    MANIFEST_HEADER | MANIFEST_SEGMENT * nsegments | MANIFEST_TABLE * ntables | CRC

Thread safety: pure encode/decode functions; :func:`write_atomic` touches only the files it
is given (callers serialise writers).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import CorruptionError, FormatError, StorageIOError
from ...types import EntryKind
from .format import (
    CRC,
    FORMAT_VERSION,
    MANIFEST_DROP_COUNT,
    MANIFEST_DROP_FILE,
    MANIFEST_DROP_LIST,
    MANIFEST_HEADER,
    MANIFEST_MAGIC,
    MANIFEST_SEGMENT,
    MANIFEST_TABLE,
    crc32,
    table_code,
    table_from_code,
)

__all__ = [
    "MANIFEST_NAME",
    "Manifest",
    "SegmentRef",
    "decode_manifest",
    "encode_manifest",
    "fsync_dir",
    "write_atomic",
]

MANIFEST_NAME = "MANIFEST"


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """A live segment as the manifest names it."""

    file_no: int
    seq: int
    file_size: int
    footer_crc: int


@dataclass(slots=True)
class Manifest:
    """Decoded manifest contents.

    ``segments`` are ordered newest first (seq descending). ``drop_floor``: drop files
    numbered <= it were folded into segments or into a newer drop file and are garbage.
    ``drop_files``: None for a local directory (live drop files are found by listing it);
    for an object-store tier the list of live drop-file numbers (MANIFEST_DROP_LIST).
    """

    generation: int = 0
    next_file_no: int = 1
    next_seq: int = 1
    drop_floor: int = 0
    segments: list[SegmentRef] = field(default_factory=list)
    tables: list[EntryKind] = field(default_factory=list)
    drop_files: list[int] | None = None


def encode_manifest(m: Manifest) -> bytes:
    """Serialise ``m``. O(segments + tables)."""
    flags = 0 if m.drop_files is None else MANIFEST_DROP_LIST
    parts = [MANIFEST_HEADER.pack(MANIFEST_MAGIC, FORMAT_VERSION, flags, len(m.segments), m.generation,
                                  m.next_file_no, m.next_seq, m.drop_floor, len(m.tables), 0)]
    for s in m.segments:
        parts.append(MANIFEST_SEGMENT.pack(s.file_no, s.seq, s.file_size, s.footer_crc, 0))
    for t in sorted(m.tables):
        tag, ident = table_code(t)
        parts.append(MANIFEST_TABLE.pack(tag, ident))
    if m.drop_files is not None:
        parts.append(MANIFEST_DROP_COUNT.pack(len(m.drop_files)))
        parts.extend(MANIFEST_DROP_FILE.pack(no) for no in sorted(m.drop_files))
    body = b"".join(parts)
    return body + CRC.pack(crc32(body))


def decode_manifest(data: bytes, path: object) -> Manifest:
    """Parse and verify a manifest.

    Raises:
        CorruptionError: checksum mismatch, truncation or inconsistent contents (names
            ``path`` and the offset of the bad part).
        FormatError: a valid manifest of an unknown format version or not a manifest.
    """
    if len(data) < MANIFEST_HEADER.size + CRC.size:
        raise CorruptionError(f"cold manifest truncated ({len(data)} bytes)", path=path, offset=0)
    body, (stored,) = data[:-CRC.size], CRC.unpack_from(data, len(data) - CRC.size)
    if crc32(body) != stored:
        raise CorruptionError(
            f"cold manifest checksum mismatch over bytes 0..{len(data)}: the file is damaged; "
            "restore it from a backup", path=path, offset=0)
    (magic, version, flags, nseg, generation, next_file_no, next_seq, drop_floor, ntables,
     _res) = MANIFEST_HEADER.unpack_from(body, 0)
    if magic != MANIFEST_MAGIC:
        raise FormatError("not a tierdb cold manifest (bad magic)", path=path, offset=0)
    if version != FORMAT_VERSION:
        raise FormatError(
            f"cold manifest format version {version} is not supported (this tierdb reads "
            f"version {FORMAT_VERSION}); upgrade tierdb", path=path, offset=0)
    if flags & ~MANIFEST_DROP_LIST:
        raise FormatError(f"cold manifest has unknown flags {flags:#x}; upgrade tierdb", path=path, offset=0)
    want = MANIFEST_HEADER.size + nseg * MANIFEST_SEGMENT.size + ntables * MANIFEST_TABLE.size
    ndrops = 0
    if flags & MANIFEST_DROP_LIST:
        if len(body) < want + MANIFEST_DROP_COUNT.size:
            raise CorruptionError("cold manifest drop list truncated", path=path, offset=want)
        (ndrops,) = MANIFEST_DROP_COUNT.unpack_from(body, want)
        want += MANIFEST_DROP_COUNT.size + ndrops * MANIFEST_DROP_FILE.size
    if want != len(body):
        raise CorruptionError(f"cold manifest length {len(body)} does not match its counts ({want})",
                              path=path, offset=0)
    m = Manifest(generation, next_file_no, next_seq, drop_floor)
    off = MANIFEST_HEADER.size
    seen: set[int] = set()
    last_seq = None
    for _ in range(nseg):
        file_no, seq, size, fcrc, _r = MANIFEST_SEGMENT.unpack_from(body, off)
        if file_no in seen or file_no >= next_file_no or seq >= next_seq or (
                last_seq is not None and seq >= last_seq):
            raise CorruptionError(f"cold manifest segment entry inconsistent (file {file_no}, seq {seq})",
                                  path=path, offset=off)
        seen.add(file_no)
        last_seq = seq
        m.segments.append(SegmentRef(file_no, seq, size, fcrc))
        off += MANIFEST_SEGMENT.size
    for _ in range(ntables):
        tag, ident = MANIFEST_TABLE.unpack_from(body, off)
        m.tables.append(table_from_code(tag, ident, path, off))
        off += MANIFEST_TABLE.size
    if flags & MANIFEST_DROP_LIST:
        off += MANIFEST_DROP_COUNT.size
        drops: list[int] = []
        for _ in range(ndrops):
            (no,) = MANIFEST_DROP_FILE.unpack_from(body, off)
            if no <= drop_floor or no >= next_file_no or (drops and no <= drops[-1]):
                raise CorruptionError(f"cold manifest drop-file entry {no} inconsistent",
                                      path=path, offset=off)
            drops.append(no)
            off += MANIFEST_DROP_FILE.size
        m.drop_files = drops
    return m


def fsync_dir(directory: Path) -> None:
    """fsync a directory so that renames and creations in it are durable.

    Raises:
        StorageIOError: the OS refused.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StorageIOError(f"cannot fsync directory {directory}: {exc}") from exc


class ReplacedNotDurable(StorageIOError):
    """:func:`write_atomic` renamed the new file into place, then the directory fsync
    failed: the new contents are what readers see (callers must treat the change as made),
    but a power loss may bring the old file back."""


def write_atomic(path: Path, data: bytes) -> None:
    """Durably replace ``path`` with ``data``: temp file, fsync, rename, fsync the directory.

    Raises:
        StorageIOError: any OS failure (the temp file is removed, ``path`` is untouched).
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass  # best effort: a stray temp file is removed on the next open anyway
        raise StorageIOError(f"cannot write {path}: {exc}; check free space and permissions") from exc
    try:
        fsync_dir(path.parent)
    except StorageIOError as exc:
        raise ReplacedNotDurable(f"{path} was replaced but {exc}; the new contents are in "
                                 "place and may not survive a power loss") from exc
