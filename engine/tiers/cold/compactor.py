"""Compaction wiring of the cold tier: when to compact (after writes, on demand), one
merge step run without the writer lock, the manifest swap, retiring files, folding drop files.

The policy and the merge itself are in compaction.py; this module drives them against the
tier's state.
"""

from __future__ import annotations

from ...errors import ClosedError
from ...types import EntryKind
from .compaction import carry_over, merge_table_nexts, plan
from .core import TierCore
from .drops import encode_drops
from .manifest import ReplacedNotDurable
from .reader import Segment
from .state import State
from .writer import SegmentWriter

MAX_DROP_FILES = 32
"""Live drop files tolerated before automatic compaction folds them into one."""


class Compactor(TierCore):
    """Compaction of :class:`~engine.tiers.cold.tier.ColdTier` (thread safety: at most one
    merge at a time under the compaction lock; writers wait only for the final swap)."""

    def _maybe_compact(self) -> None:
        trig = self.options.compact_trigger
        st = self._state
        if trig is None or st is None:
            return
        if len(st.segments) < trig and len(st.drop_files) <= MAX_DROP_FILES:
            return
        if not self._compact_lock.acquire(blocking=False):
            return  # another thread is compacting; it will see the new segments next round
        try:
            for _ in range(64):
                st = self._state
                if st is None or (len(st.segments) < trig and len(st.drop_files) <= MAX_DROP_FILES):
                    break
                try:
                    if not self._compact_step(False)["merged_segments"]:
                        break
                except ClosedError:
                    break  # closed meanwhile: the write itself is durable, nothing to do
        finally:
            self._compact_lock.release()

    def compact(self, full: bool = False) -> dict[str, int]:
        """Run one compaction step now and return what it did: merged_segments,
        output_segments, bytes_in, bytes_out, entries_out, drop_records_applied,
        drop_files_before/after, segments_after.

        ``full=True`` merges every segment and applies every drop record. Otherwise one
        size-tiered step runs; if the policy has nothing to merge while drop records are
        pending, they are applied by a full merge (an explicit call means "reclaim space
        now"; automatic compaction after writes never does that). Readers are never
        blocked; writers only during the final manifest swap.
        """
        with self._compact_lock:
            return self._compact_step(full, explicit=True)

    def _compact_step(self, full: bool, explicit: bool = False) -> dict[str, int]:
        opts = self.options
        with self._write_lock:
            st = self._live()
            old_first = list(reversed(st.segments))
            if full:
                run: tuple[int, int] | None = (0, len(old_first)) if old_first else None
                if run and len(old_first) == 1 and st.drops.is_empty():
                    run = None  # one segment, nothing to apply: already compact
            else:
                run = plan([s.file_size for s in old_first], min_merge=opts.compact_min_merge,
                           max_merge=opts.compact_max_merge, size_ratio=opts.compact_size_ratio,
                           max_segments=opts.compact_trigger)
                if run is None and explicit and old_first and not st.drops.is_empty():
                    run = (0, len(old_first))
            result = {"merged_segments": 0, "output_segments": 0, "bytes_in": 0, "bytes_out": 0,
                      "entries_out": 0, "drop_records_applied": 0,
                      "drop_files_before": len(st.drop_files), "drop_files_after": len(st.drop_files),
                      "segments_after": len(st.segments)}
            if run is None:
                if len(st.drop_files) > (1 if full else MAX_DROP_FILES):
                    self._consolidate_drops(st)
                    result["drop_files_after"] = len(self._live().drop_files)
                return result
            inputs = old_first[run[0]:run[1]]
            snap = st.drops.copy()
            out_no = self._alloc_file_no()
            out_seq = inputs[-1].seq
            size_hint = sum(s.raw_bytes for s in inputs)
        # Merge without the writer lock: readers and writers carry on.
        w = SegmentWriter(self.path, out_no, out_seq, block_size=opts.block_size,
                          zstd_level=opts.zstd_level, bloom_bits_per_key=opts.bloom_bits_per_key,
                          dictionary=opts.dictionary, size_hint=size_hint,
                          on_block=self._cache_filler(out_no))
        newest_first = inputs[::-1]
        try:
            for table in sorted({t for s in inputs for t in s.tables}):
                w.add_with_nexts(table, merge_table_nexts(newest_first, table, snap))
            ws = w.finish()
        except BaseException:  # remove the partial output (and its cached blocks), then re-raise
            w.abort()
            self._cache.discard_files([out_no])
            raise
        out_seg: Segment | None = None
        try:
            if ws is not None:
                out_seg = self._publish_segment(ws)
            with self._write_lock:
                st2 = self._live()
                gone = {s.file_no for s in inputs}
                remaining = [s for s in st2.segments if s.file_no not in gone]
                if out_seg is not None:
                    remaining.append(out_seg)
                remaining.sort(key=lambda s: -s.seq)
                min_other: dict[EntryKind, int] = {}
                for s in remaining:
                    if s is out_seg:
                        continue
                    for t in s.tables:
                        if s.seq < min_other.get(t, s.seq + 1):
                            min_other[t] = s.seq
                carry, applied = carry_over(st2.drops, snap, min_other)
                old_drop_files = list(st2.drop_files)
                floor = max(old_drop_files) if old_drop_files else self._manifest.drop_floor
                new_files: list[int] = []
                if not carry.is_empty():
                    cno = self._alloc_file_no()
                    self._put_drop_file(cno, encode_drops(cno, list(carry.groups())))
                    new_files.append(cno)
                try:
                    self._write_manifest(remaining, st2.tables, drop_floor=floor, drop_files=new_files)
                except ReplacedNotDurable:
                    # The new manifest is in place: its state is the live one (the output
                    # stays; the retired inputs are left for the next compaction to find).
                    self._state = State(tuple(remaining), st2.tables, carry, new_files)
                    self._changed()
                    raise
                except BaseException as exc:
                    for no in new_files:
                        self._abandon_drop_file(no, exc)
                    raise
                self._state = State(tuple(remaining), st2.tables, carry, new_files)
                self._changed()
        except BaseException as exc:  # the output is not live: remove it, then re-raise
            if ws is not None and (self._state is None or out_seg is None
                                   or out_seg not in self._state.segments):
                self._abandon_segment(ws, exc)
            raise
        self._settled([out_seg] if out_seg is not None else [], new_files)
        # The new manifest is durable: now the retired files may go.
        self._retire(inputs, old_drop_files)
        self._cache.discard_files(gone)
        bytes_in = sum(s.file_size for s in inputs)
        bytes_out = ws.file_size if ws is not None else 0
        c = self._counters
        c["compactions"] += 1
        c["compaction_bytes_in"] += bytes_in
        c["compaction_bytes_out"] += bytes_out
        result.update(merged_segments=len(inputs), output_segments=int(ws is not None),
                      bytes_in=bytes_in, bytes_out=bytes_out,
                      entries_out=ws.nentries if ws is not None else 0,
                      drop_records_applied=applied, drop_files_after=len(new_files),
                      segments_after=len(remaining))
        return result

    def _consolidate_drops(self, st: State) -> None:
        """Fold every live drop file into one (writer lock held)."""
        old = list(st.drop_files)
        no = self._alloc_file_no()
        self._put_drop_file(no, encode_drops(no, list(st.drops.groups())))
        try:
            self._write_manifest(st.segments, st.tables, drop_floor=max(old), drop_files=[no])
        except ReplacedNotDurable:
            raise
        except BaseException as exc:
            self._abandon_drop_file(no, exc)
            raise
        self._settled(drop_nos=[no])
        self._state = State(st.segments, st.tables, st.drops, [no])
        self._retire([], old)
