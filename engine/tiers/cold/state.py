"""Reader-visible state of the cold tier, and rebuilding it from the directory on open.

:class:`State` is what every read works from: the live segments (newest first), the known
tables, the drop records, and per table a flat view of its segments for the point-read
loop. :func:`recover` opens a directory: removes stray temp files, reads and verifies the
manifest (or creates the first one), opens every segment it names, loads the live drop
files, and deletes files no manifest names (interrupted writes, files retired by a
compaction whose deletions did not finish).

Thread safety: a State is immutable except for ``drops``/``drop_files`` (see drops.py);
:func:`recover` runs before the tier is shared.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ...errors import CorruptionError, StorageIOError
from ...types import EntryKind
from .cache import BlockCache
from .drops import DropIndex, decode_drops
from .manifest import (
    MANIFEST_NAME,
    Manifest,
    decode_manifest,
    encode_manifest,
    write_atomic,
)
from .reader import Segment
from .writer import segment_name, table_seed

__all__ = ["Recovered", "State", "TableView", "drop_name", "recover", "unlink"]

SEG_RE = re.compile(r"^(\d{12})\.seg$")
DROP_RE = re.compile(r"^(\d{12})\.drop$")
NUM_RE = re.compile(r"^(\d{12})\.")


def drop_name(file_no: int) -> str:
    """File name of drop file ``file_no`` (numbers only, like segments)."""
    return f"{file_no:012d}.drop"


def unlink(p: Path) -> None:
    """Remove ``p``; a missing file is fine. Raises StorageIOError otherwise."""
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise StorageIOError(f"cannot remove {p}: {exc}") from exc


class TableView:
    """One table's slice of a state: its segments (newest first, cleared ones left out) as
    flat tuples for the point-read loop, and the table's live drop records."""

    __slots__ = ("seed", "segs", "tdrops")

    def __init__(self, table: EntryKind, segments: tuple[Segment, ...], drops: DropIndex) -> None:
        cleared = drops.cleared.get(table, -1)
        rows = []
        for seg in segments:
            tr = seg.tables.get(table)
            if tr is None or seg.seq <= cleared:
                continue
            rows.append((tr.min_key, tr.max_key, seg.min_version, seg.max_version, seg, tr))
        self.segs = tuple(rows)
        self.tdrops = drops.table(table)
        self.seed = table_seed(table)


class State:
    """What readers see: the live segments (newest first), known tables, drop records.

    ``segments``, ``tables`` and ``by_table`` never change after construction (a new state
    replaces the old, also after a clear). ``drops`` and ``drop_files`` grow in place under
    the writer lock (see drops.py); ``by_table`` shares the per-table drop dicts.
    """

    __slots__ = ("by_table", "drop_files", "drops", "segments", "tables")

    def __init__(self, segments: tuple[Segment, ...], tables: frozenset[EntryKind],
                 drops: DropIndex, drop_files: list[int]) -> None:
        self.segments = segments
        self.tables = tables
        self.drops = drops
        self.drop_files = drop_files
        self.by_table = {t: TableView(t, segments, drops) for t in tables}


@dataclass(slots=True)
class Recovered:
    """What :func:`recover` found."""

    manifest: Manifest
    state: State
    next_file_no: int
    next_seq: int
    removed_temp_files: int


def recover(path: Path, cache: BlockCache) -> Recovered:
    """Open the cold directory ``path`` (see module docstring). O(files + segment metadata).

    Raises:
        CorruptionError: damaged manifest, segment metadata or drop file, a segment the
            manifest names is missing, or segment files without any manifest.
        FormatError: files of an unknown format version.
        StorageIOError: OS failures.
    """
    removed = 0
    names = os.listdir(path)
    for name in names:
        if name.endswith(".tmp"):
            try:
                os.unlink(path / name)
            except OSError as exc:
                raise StorageIOError(f"cannot remove stray temp file {name}: {exc}") from exc
            removed += 1
    names = [n for n in names if not n.endswith(".tmp")]
    mpath = path / MANIFEST_NAME
    if not mpath.exists():
        if any(SEG_RE.match(n) or DROP_RE.match(n) for n in names):
            raise CorruptionError("cold tier has segment or drop files but no MANIFEST; "
                                  "restore the MANIFEST from a backup", path=mpath, offset=None)
        m = Manifest(generation=1)
        write_atomic(mpath, encode_manifest(m))
    else:
        try:
            data = mpath.read_bytes()
        except OSError as exc:
            raise StorageIOError(f"cannot read {mpath}: {exc}") from exc
        m = decode_manifest(data, mpath)
    max_no = max((int(x.group(1)) for x in map(NUM_RE.match, names) if x), default=0)
    segments: list[Segment] = []
    try:
        for ref in m.segments:
            segments.append(Segment(path / segment_name(ref.file_no), ref.file_no, cache,
                                    expect_size=ref.file_size, expect_footer_crc=ref.footer_crc,
                                    expect_seq=ref.seq))
        drops = DropIndex()
        live_drops: list[int] = []
        for name in sorted(names):
            dm = DROP_RE.match(name)
            if not dm:
                continue
            no = int(dm.group(1))
            if no <= m.drop_floor:
                unlink(path / name)  # folded into segments or a newer drop file
                continue
            p = path / name
            try:
                data = p.read_bytes()
            except OSError as exc:
                raise StorageIOError(f"cannot read {p}: {exc}") from exc
            for g in decode_drops(data, p, no):
                drops.add_group(g)
            live_drops.append(no)
    except BaseException:  # close what was opened, then re-raise
        for seg in segments:
            seg.close()
        raise
    live = {ref.file_no for ref in m.segments}
    for name in names:
        sm = SEG_RE.match(name)
        if sm and int(sm.group(1)) not in live:
            unlink(path / name)  # written but never named: an interrupted write or old input
    state = State(tuple(segments), frozenset(m.tables), drops, live_drops)
    return Recovered(m, state, max(m.next_file_no, max_no + 1), m.next_seq, removed)
