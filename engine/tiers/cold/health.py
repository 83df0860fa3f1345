"""Verification and statistics of the cold tier: ``check`` and ``stats``."""

from __future__ import annotations

from typing import Any

from ...errors import CorruptionError, StorageIOError
from .compaction import merge_table
from .core import TierCore
from .drops import DropIndex, decode_drops
from .manifest import MANIFEST_NAME, SegmentRef, decode_manifest
from .remote import MANIFEST_OBJECT
from .state import State, drop_name
from .writer import ENTRY_OVERHEAD


class Health(TierCore):
    """``check`` and ``stats`` of :class:`~engine.tiers.cold.tier.ColdTier`."""

    def check(self) -> None:
        """Verify the manifest, every drop file, every segment block checksum and layout,
        and the cache accounting. O(total bytes). On an object store the objects themselves
        are read (not the range cache), one ranged GET per block.

        Raises:
            CorruptionError: names the file and offset of the first damaged record.
        """
        remote = self._remote
        with self._write_lock:
            st = self._live()
            mpath: object = self.path / MANIFEST_NAME
            if remote is not None:
                mpath = remote.display(MANIFEST_OBJECT)
                data = remote.client.get(MANIFEST_OBJECT).data
            else:
                try:
                    data = (self.path / MANIFEST_NAME).read_bytes()
                except OSError as exc:
                    raise StorageIOError(f"cannot read {mpath}: {exc}") from exc
            m = decode_manifest(data, mpath)
            want = [SegmentRef(s.file_no, s.seq, s.file_size, s.footer_crc) for s in st.segments]
            if m.segments != want or frozenset(m.tables) != st.tables or (
                    remote is not None and m.drop_files != sorted(st.drop_files)):
                raise CorruptionError("cold manifest on disk disagrees with the open tier",
                                      path=mpath, offset=0)
            rebuilt = DropIndex()
            for no in st.drop_files:
                if remote is not None:
                    groups = remote.get_drops(no)
                else:
                    p = self.path / drop_name(no)
                    try:
                        ddata = p.read_bytes()
                    except OSError as exc:
                        raise CorruptionError(f"cold drop file unreadable: {exc}", path=p, offset=0) from None
                    groups = decode_drops(ddata, p, no)
                for g in groups:
                    rebuilt.add_group(g)
            if rebuilt.nonempty() != st.drops.nonempty() or rebuilt.cleared != st.drops.cleared:
                raise CorruptionError("cold drop files disagree with the in-memory drop list",
                                      path=self.path, offset=None)
            segments = st.segments
        seqs = [s.seq for s in segments]
        if seqs != sorted(seqs, reverse=True) or len(set(seqs)) != len(seqs):
            raise CorruptionError("cold segments not in strictly descending seq order",
                                  path=mpath, offset=0)
        for seg in segments:
            if remote is None:
                seg.check()
            else:  # the object itself, not the range cache's copies of it
                remote.uncached_segment(seg.file_no, seg.file_size, seg.footer_crc, seg.seq).check()
        try:
            self._cache.check()
            if remote is not None:
                remote.ranges.check()
        except ValueError as exc:
            raise CorruptionError(f"cold block cache: {exc}") from None

    def _exact_counts(self, st: State) -> dict[str, int]:
        segs = st.segments
        if len(segs) == 1 and st.drops.is_empty():
            s = segs[0]
            return {"keys": s.nkeys, "versions": s.nentries, "bytes": s.file_size,
                    "bytes_raw": s.raw_bytes}
        keys = versions = 0
        live_raw: dict[int, int] = {}
        all_tables = sorted({t for s in segs for t in s.tables})
        for table in all_tables:
            last = None
            for k, _v, val, seq in merge_table(segs, table, st.drops):
                versions += 1
                if k != last:
                    keys += 1
                    last = k
                live_raw[seq] = live_raw.get(seq, 0) + len(k) + (len(val) if val is not None else 0) + ENTRY_OVERHEAD
        nbytes = 0
        for s in segs:
            lr = live_raw.get(s.seq, 0)
            nbytes += s.file_size if lr >= s.raw_bytes else (s.file_size * lr) // max(1, s.raw_bytes)
        return {"keys": keys, "versions": versions, "bytes": nbytes,
                "bytes_raw": sum(live_raw.values())}

    def stats(self) -> dict[str, Any]:
        """Counts and bytes.

        ``keys``/``versions``: distinct live keys and versions (drops applied); ``bytes``:
        on-disk bytes of live segments, each prorated by the share of its raw bytes still
        live (equals the file sizes when nothing is dropped or shadowed); ``bytes_on_disk``:
        the plain file sizes; ``bytes_raw``: live keys + values + 8 per version. Exact counts
        need a merge over all segments when there is more than one or any drop is pending:
        O(entries), cached until the next change.
        """
        st = self._live()
        gen = self._generation
        cached = self._stats_cache
        if cached is None or cached[0] != gen:
            cached = (gen, self._exact_counts(st))
            self._stats_cache = cached
        base = cached[1]
        cache = self._cache
        return {
            "tier": "cold",
            "tables": len(st.tables),
            **base,
            "bytes_on_disk": sum(s.file_size for s in st.segments),
            "segments": len(st.segments),
            "entries_stored": sum(s.nentries for s in st.segments),
            "drop_records": st.drops.count + len(st.drops.cleared),
            "drop_files": len(st.drop_files),
            "cache_hits": cache.hits,
            "cache_misses": cache.misses,
            "cache_bytes": cache.size,
            "cache_capacity": cache.capacity,
            "dictionary_segments": sum(1 for s in st.segments if s.has_dict),
            **self._counters,
            **self._remote_stats(),
        }

    def io_stats(self) -> dict[str, Any]:
        """Cache and object-store counters only, without the O(entries) exact counts of
        :meth:`stats` (which, on an object store with several segments, reads every block
        once per change). O(1)."""
        cache = self._cache
        return {"cache_hits": cache.hits, "cache_misses": cache.misses, **self._remote_stats()}

    def _remote_stats(self) -> dict[str, Any]:
        """Object-store counters (requests, bytes, retries) and the on-disk range cache's
        hits and misses; ``cache_hit_rate`` is the share of segment reads (blocks, and
        header/meta at open) answered by the block cache or the range cache without asking
        the object store."""
        remote = self._remote
        if remote is None:
            return {}
        out: dict[str, Any] = {"cold_url": remote.display("").rstrip("/"), **remote.stats()}
        # Every read is a block-cache hit, or goes to the range cache (hit or miss -> GET).
        hits = self._cache.hits + out["disk_cache_hits"]
        asked = hits + out["disk_cache_misses"]
        out["cache_hit_rate"] = round(hits / asked, 4) if asked else 0.0
        return out
