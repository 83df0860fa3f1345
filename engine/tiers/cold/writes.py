"""Writes of the cold tier: ``set`` and ``write_entries`` (one new segment each),
``ensure_table``, and the drop records (``drop``, ``clear_table``).

A segment is written as a temp file, fsynced and renamed, then named by a new manifest;
the call returns when both are durable. Drops and clears are drop files, hidden from reads
at once and applied physically by the next compaction that rewrites the segments holding
them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from ...errors import InvalidKeyError
from ...types import EntryKind, RawEntry, as_bytes, check_version
from ..base import DropBatches, SetBatches
from .compactor import Compactor
from .drops import DropGroup, encode_drops
from .manifest import ReplacedNotDurable
from .state import State
from .writer import ENTRY_OVERHEAD, SegmentWriter


class Writes(Compactor):
    """The write half of :class:`~engine.tiers.cold.tier.ColdTier` (thread safety: one writer
    at a time under the writer lock; readers are never blocked)."""

    def set(self, version: int, batches: SetBatches) -> None:
        """Write every table's ``(key, value | None)`` pairs at ``version`` as one new segment.

        Durable when it returns. Within one call a repeated key keeps its last value; a
        (key, version) already stored is superseded (later write wins). Callers should batch:
        each call costs a segment file and two fsyncs.

        Raises: InvalidKeyError/InvalidVersionError before anything is written;
        ClosedError; StorageIOError.
        """
        version = check_version(version)
        tables: dict[EntryKind, list[tuple[bytes, int, bytes | None]]] = {}
        for table, rows in batches.items():
            if not isinstance(table, EntryKind):
                raise InvalidKeyError(f"table must be an EntryKind, got {type(table).__name__}")
            last: dict[bytes, bytes | None] = {}
            for key, value in rows:
                if type(key) is not bytes:
                    key = as_bytes(key)
                if value is not None and type(value) is not bytes:
                    value = as_bytes(value, "value")
                last[key] = value
            tables[table] = [(k, version, last[k]) for k in sorted(last)]
        self._write_segment(tables)

    def write_entries(self, batches: Mapping[EntryKind, Sequence[RawEntry]],
                      nexts: Mapping[EntryKind, Mapping[bytes, int]] | None = None) -> None:
        """Write many entries of any versions atomically as ONE new segment; durable on return.

        Used by demotion (warm -> cold). Entries may come in any order; a repeated
        (key, version) keeps its last occurrence and supersedes any stored copy.

        ``nexts[table][key]``, when given, is the version that superseded the newest of the
        key's entries written here (it stays in the tier above): a promise that no version of
        the key lies strictly between the two, ever. :meth:`get_final` relies on it. Only a
        caller that knows the key's whole history (demotion) may pass it.

        Raises: as :meth:`set`; ValueError if a successor is not above the key's newest
        entry here (nothing is written).
        """
        tables: dict[EntryKind, list[tuple[bytes, int, bytes | None]]] = {}
        for table, rows in batches.items():
            if not isinstance(table, EntryKind):
                raise InvalidKeyError(f"table must be an EntryKind, got {type(table).__name__}")
            last: dict[tuple[bytes, int], bytes | None] = {}
            for e in rows:
                key = e.key if type(e.key) is bytes else as_bytes(e.key)
                value = e.value
                if value is not None and type(value) is not bytes:
                    value = as_bytes(value, "value")
                last[(key, check_version(e.version))] = value
            order = sorted(last, key=lambda kv: (kv[0], -kv[1]))
            tables[table] = [(k, v, last[(k, v)]) for k, v in order]
        self._write_segment(tables, nexts)

    def _write_segment(self, tables: dict[EntryKind, list[tuple[bytes, int, bytes | None]]],
                       nexts: Mapping[EntryKind, Mapping[bytes, int]] | None = None) -> None:
        opts = self.options
        with self._write_lock:
            st = self._live()
            new_tables = st.tables | frozenset(tables)
            if not any(tables.values()):
                if new_tables != st.tables:
                    self._write_manifest(st.segments, new_tables)
                    self._state = State(st.segments, new_tables, st.drops, st.drop_files)
                return
            file_no = self._alloc_file_no()
            seq = self._next_seq
            raw_hint = sum(len(k) + (len(v) if v is not None else 0) + ENTRY_OVERHEAD
                           for rows in tables.values() for k, _, v in rows)
            w = SegmentWriter(self.path, file_no, seq, block_size=opts.block_size,
                              zstd_level=opts.zstd_level, bloom_bits_per_key=opts.bloom_bits_per_key,
                              dictionary=opts.dictionary, size_hint=raw_hint,
                              on_block=self._cache_filler(file_no))
            try:
                for table in sorted(tables):
                    tnexts = nexts.get(table) if nexts else None
                    if tnexts:
                        w.add_with_nexts(table, _with_nexts(tables[table], tnexts))
                    else:
                        w.add(table, tables[table])
                ws = w.finish()
            except BaseException:  # remove the partial file (and its cached blocks), then re-raise
                w.abort()
                self._cache.discard_files([file_no])
                raise
            assert ws is not None
            try:
                seg = self._publish_segment(ws)
                self._next_seq = seq + 1
                segments = (seg, *st.segments)
                self._write_manifest(segments, new_tables)
            except ReplacedNotDurable:
                # The manifest naming the segment is in place: the segment is live. Adopt
                # the new state (never delete a file the manifest names), then report.
                self._state = State(segments, new_tables, st.drops, st.drop_files)
                self._changed()
                raise
            except BaseException as exc:  # the segment is not live: remove it, then re-raise
                self._next_seq = seq
                self._abandon_segment(ws, exc)
                raise
            self._settled([seg])
            self._state = State(segments, new_tables, st.drops, st.drop_files)
            self._counters["segments_written"] += 1
            self._counters["bytes_written"] += ws.file_size
            self._changed()
        self._maybe_compact()

    def ensure_table(self, table: EntryKind) -> None:
        """Register ``table`` (durably) if it is new. O(1) when known."""
        st = self._live()
        if table in st.tables:
            return
        with self._write_lock:
            st = self._live()
            if table not in st.tables:
                tables = st.tables | {table}
                self._write_manifest(st.segments, tables)
                self._state = State(st.segments, tables, st.drops, st.drop_files)

    def _write_drop_file(self, st: State, groups: list[DropGroup]) -> None:
        """Persist ``groups`` as one drop file and apply them (writer lock held)."""
        no = self._alloc_file_no()
        self._put_drop_file(no, encode_drops(no, groups))
        if self._remote is not None:  # live only once the manifest names it
            try:
                self._write_manifest(st.segments, st.tables, drop_files=[*st.drop_files, no])
            except BaseException as exc:
                self._abandon_drop_file(no, exc)
                raise
            self._settled(drop_nos=[no])
        for g in groups:
            st.drops.add_group(g)
        st.drop_files.append(no)
        if any(g.items is None for g in groups):  # a clear changes which segments count
            self._state = State(st.segments, st.tables, st.drops, st.drop_files)
        self._changed()

    def drop(self, batches: DropBatches) -> None:
        """Remove exactly the listed (key, version) pairs; effective at once, durable on return.

        Recorded in a drop file (hidden from reads immediately), removed physically by the
        next compaction that rewrites the segments holding them. Missing pairs are harmless.
        """
        groups_in: dict[EntryKind, set[tuple[bytes, int]]] = {}
        for table, rows in batches.items():
            if not isinstance(table, EntryKind):
                raise InvalidKeyError(f"table must be an EntryKind, got {type(table).__name__}")
            items = groups_in.setdefault(table, set())
            for key, version in rows:
                items.add((as_bytes(key), check_version(version)))
        with self._write_lock:
            st = self._live()
            upto = self._next_seq - 1
            present = {t for s in st.segments for t in s.tables}
            groups = [DropGroup(t, upto, tuple(sorted(items)))
                      for t, items in sorted(groups_in.items()) if items and t in present]
            if not groups:
                return
            self._write_drop_file(st, groups)
        self._maybe_compact()

    def clear_table(self, table: EntryKind) -> None:
        """Delete every entry of ``table`` (a durable clear record; files rewritten later)."""
        with self._write_lock:
            st = self._live()
            if table not in st.tables:
                self._write_manifest(st.segments, st.tables | {table})
                st = self._state = State(st.segments, st.tables | {table}, st.drops, st.drop_files)
            if any(table in s.tables and s.seq > st.drops.cleared.get(table, -1) for s in st.segments):
                self._write_drop_file(st, [DropGroup(table, self._next_seq - 1, None)])
        self._maybe_compact()


def _with_nexts(rows: list[tuple[bytes, int, bytes | None]], nexts: Mapping[bytes, int]
                ) -> Iterator[tuple[bytes, int, bytes | None, int]]:
    """``rows`` (key asc, version desc) with each key's successor on its first row."""
    last: bytes | None = None
    get = nexts.get
    for k, v, val in rows:
        if k != last:
            last = k
            yield k, v, val, get(k, 0)
        else:
            yield k, v, val, 0
