"""The durable drop list: versions (and whole tables) removed before compaction rewrites them.

Segments are immutable, so ``drop`` and ``clear_table`` record what to hide instead of
editing files. A record carries ``upto_seq``, the newest segment sequence number at the time
of the call: it hides its (table, key, version) only in segments with ``seq <= upto_seq``.
So a version written again after it was dropped is visible again, exactly as in a mutable
tier. A clear hides a whole table in those segments. Compaction applies records physically
and carries forward only those still needed by segments it did not rewrite.

Every ``drop``/``clear_table`` call writes one immutable drop file atomically (temp, fsync,
rename, fsync dir), so there is no torn tail to guess about: a drop file under its final name
is complete, and any checksum mismatch is corruption. Live drop files are those numbered above
the manifest's ``drop_floor``.

Layout (docs/FORMATS.md)::

    DROPS_HEADER | (DROP_GROUP | (DROP_ITEM | key) * nitems) * ngroups | CRC

Thread safety: :class:`DropIndex` is mutated only under the tier's writer lock; readers
call only ``dict.get`` on it, which is atomic under the GIL, so a drop is visible to reads
the moment it is added. Iteration (compaction, stats) works on a :meth:`DropIndex.copy`
taken under the writer lock.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ...errors import CorruptionError, FormatError
from ...types import EntryKind
from .format import (
    CLEAR_MARK,
    CRC,
    DROP_GROUP,
    DROP_ITEM,
    DROPS_HEADER,
    DROPS_MAGIC,
    FORMAT_VERSION,
    crc32,
    table_code,
    table_from_code,
)

__all__ = ["DropGroup", "DropIndex", "decode_drops", "encode_drops"]


@dataclass(frozen=True, slots=True)
class DropGroup:
    """One table's records in a drop file. ``items is None`` means "clear the table"."""

    table: EntryKind
    upto_seq: int
    items: tuple[tuple[bytes, int], ...] | None


class DropIndex:
    """In-memory index of every live drop record.

    ``keys[table][key][version] = upto_seq`` and ``cleared[table] = upto_seq``. Several
    records for the same target collapse to the largest ``upto_seq`` (it hides a superset).

    Complexity: ``add``/``is_dropped`` O(1); memory O(records).
    """

    __slots__ = ("cleared", "count", "keys")

    def __init__(self) -> None:
        self.keys: dict[EntryKind, dict[bytes, dict[int, int]]] = {}
        self.cleared: dict[EntryKind, int] = {}
        self.count = 0

    def table(self, table: EntryKind) -> dict[bytes, dict[int, int]]:
        """The (possibly empty) per-key records of ``table``, created on first use so that
        readers can hold a reference that later drops fill in (writer lock held)."""
        tk = self.keys.get(table)
        if tk is None:
            tk = self.keys[table] = {}
        return tk

    def nonempty(self) -> dict[EntryKind, dict[bytes, dict[int, int]]]:
        """``keys`` without the empty per-table dicts (for comparisons)."""
        return {t: tk for t, tk in self.keys.items() if tk}

    def add_group(self, g: DropGroup) -> None:
        """Apply one record group (writer lock held)."""
        if g.items is None:
            if g.upto_seq > self.cleared.get(g.table, -1):
                self.cleared[g.table] = g.upto_seq
            return
        tk = self.table(g.table)
        upto = g.upto_seq
        for key, version in g.items:
            dv = tk.get(key)
            if dv is None:
                tk[key] = {version: upto}
                self.count += 1
            else:
                old = dv.get(version)
                if old is None:
                    self.count += 1
                if old is None or old < upto:
                    dv[version] = upto

    def copy(self) -> DropIndex:
        """A deep copy, safe to iterate while the original keeps changing. O(records)."""
        c = DropIndex()
        c.keys = {t: {k: dict(dv) for k, dv in tk.items()} for t, tk in self.keys.items()}
        c.cleared = dict(self.cleared)
        c.count = self.count
        return c

    def is_empty(self) -> bool:
        return not self.count and not self.cleared

    def groups(self) -> Iterator[DropGroup]:
        """Every record, grouped by (table, upto_seq), for writing a consolidated drop file."""
        for t in sorted(self.cleared):
            yield DropGroup(t, self.cleared[t], None)
        for t in sorted(self.keys):
            if not self.keys[t]:
                continue
            by_upto: dict[int, list[tuple[bytes, int]]] = {}
            for k, dv in self.keys[t].items():
                for v, u in dv.items():
                    by_upto.setdefault(u, []).append((k, v))
            for u in sorted(by_upto):
                yield DropGroup(t, u, tuple(sorted(by_upto[u])))


def encode_drops(file_no: int, groups: Iterable[DropGroup]) -> bytes:
    """Serialise a drop file. O(total key bytes)."""
    parts: list[bytes] = []
    n = 0
    for g in groups:
        tag, ident = table_code(g.table)
        n += 1
        if g.items is None:
            parts.append(DROP_GROUP.pack(tag, CLEAR_MARK, ident, g.upto_seq))
            continue
        if len(g.items) >= CLEAR_MARK:
            raise ValueError("too many drop items in one group")
        parts.append(DROP_GROUP.pack(tag, len(g.items), ident, g.upto_seq))
        for key, version in g.items:
            parts.append(DROP_ITEM.pack(version, len(key)))
            parts.append(key)
    body = DROPS_HEADER.pack(DROPS_MAGIC, FORMAT_VERSION, 0, n, file_no, 0) + b"".join(parts)
    return body + CRC.pack(crc32(body))


def decode_drops(data: bytes, path: object, expect_file_no: int) -> list[DropGroup]:
    """Parse and verify a drop file.

    Raises:
        CorruptionError: checksum mismatch, truncation, or a file number that does not
            match its name (a misplaced file).
        FormatError: unknown format version or magic on an otherwise intact file.
    """
    if len(data) < DROPS_HEADER.size + CRC.size:
        raise CorruptionError(f"cold drop file truncated ({len(data)} bytes)", path=path, offset=0)
    body, (stored,) = data[:-CRC.size], CRC.unpack_from(data, len(data) - CRC.size)
    if crc32(body) != stored:
        raise CorruptionError(f"cold drop file checksum mismatch over bytes 0..{len(data)}",
                              path=path, offset=0)
    magic, version, _flags, ngroups, file_no, _res = DROPS_HEADER.unpack_from(body, 0)
    if magic != DROPS_MAGIC:
        raise FormatError("not a tierdb cold drop file (bad magic)", path=path, offset=0)
    if version != FORMAT_VERSION:
        raise FormatError(f"cold drop file format version {version} is not supported (this "
                          f"tierdb reads version {FORMAT_VERSION}); upgrade tierdb", path=path, offset=0)
    if file_no != expect_file_no:
        raise CorruptionError(f"cold drop file says it is number {file_no}, its name says "
                              f"{expect_file_no}", path=path, offset=0)
    out: list[DropGroup] = []
    off = DROPS_HEADER.size
    end = len(body)
    try:
        for _ in range(ngroups):
            tag, nitems, ident, upto = DROP_GROUP.unpack_from(body, off)
            table = table_from_code(tag, ident, path, off)
            off += DROP_GROUP.size
            if nitems == CLEAR_MARK:
                out.append(DropGroup(table, upto, None))
                continue
            items = []
            for _ in range(nitems):
                version, klen = DROP_ITEM.unpack_from(body, off)
                off += DROP_ITEM.size
                if off + klen > end:
                    raise CorruptionError("cold drop file: key runs past the end", path=path, offset=off)
                items.append((body[off:off + klen], version))
                off += klen
            out.append(DropGroup(table, upto, tuple(items)))
    except struct.error as exc:  # a count that runs past the end of the body
        raise CorruptionError(f"cold drop file structure invalid: {exc}", path=path, offset=off) from None
    if off != end:
        raise CorruptionError("cold drop file has trailing bytes after its groups", path=path, offset=off)
    return out
