"""The read side of the router: the point-read cascade and merged range cursors.

Point reads (:meth:`Router.lookup`) ask tiers from hot to cold; the first tier holding a
version <= the read version answers, a tombstone included. Only "not found" falls through.

Range reads merge one cursor per tier (:class:`MergedScan`). Each tier stream keeps a small
buffer of the rows it returned; a key is emitted only when every live stream has a buffered
head (or is drained), so nothing beyond the slowest tier's horizon is emitted, and the
smallest head (largest, in reverse) is taken with its highest version. A stream is drained
only when its tier reports no more rows (its physical page came back short), never because
rows were filtered. Because a stream never advances past a row it has not emitted, a
continuation can neither lose nor repeat a key.

Notes: thread safety
    Readers run concurrently with commits and with movement. Movement copies a band into
    the lower tier before removing it from the higher one, and defers that removal until
    every scan that started before the copy has finished (:class:`ScanEpochs`), so a merged
    scan never misses a row that moved behind its back.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import suppress
from itertools import chain, compress, repeat
from operator import is_not, itemgetter
from typing import Any

from ..tiers.base import BOTTOM_ONLY, TierStorage
from ..types import Bound, EntryKind, RangeBatch, RangeCursor, RawEntry

__all__ = ["MergedScan", "Router", "ScanEpochs", "ScanIterator"]


class ScanIterator(chain):
    """The iterator a range scan returns: ``(key, value)`` rows, read a page at a time.

    It is an :func:`itertools.chain` over a generator of pages (lists of rows), so stepping
    from one row to the next runs no Python code at all - only moving to the next page does.
    A scan generator that yielded row by row paid one frame resumption per row and per
    nested generator (four of them from the store down to warm): more than the row's share
    of the page work itself (bench_peers: scan).

    :meth:`close` ends the scan early and releases what it holds (its read point, its scan
    epoch) even when it was never started; dropping an unfinished iterator does the same
    once it is garbage.
    """

    __slots__ = ("_pages", "_release")

    _pages: Iterator[Any]
    _release: Callable[[], object] | None

    def close(self) -> None:
        """Stop the scan and release its read point. Idempotent."""
        self._pages.close()  # type: ignore[attr-defined]
        release, self._release = self._release, None
        if release is not None:
            release()

    def __del__(self) -> None:
        with suppress(Exception):  # a finalizer must not raise (store closed, ...)
            self.close()

    def __enter__(self) -> ScanIterator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scan_iterator(pages: Iterator[list[Any]], release: Callable[[], object] | None = None) -> ScanIterator:
    """A :class:`ScanIterator` over ``pages``; ``release`` runs once, when the pages end or
    the iterator is closed (or collected), whichever comes first."""
    it: ScanIterator = ScanIterator.from_iterable(pages)  # type: ignore[assignment]
    it._pages = pages
    it._release = release
    return it


class ScanEpochs:
    """Counts live scans per epoch so removals can wait until older scans are gone.

    ``enter()``/``exit(epoch)`` bracket a scan; ``bump()`` starts a new epoch and returns it;
    ``defer(fn)`` runs ``fn`` once no scan of an epoch before the current one is live.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._epoch = 0
        self._live: dict[int, int] = {}
        self._deferred: list[tuple[int, Callable[[], None]]] = []

    def enter(self) -> int:
        with self._lock:
            e = self._epoch
            self._live[e] = self._live.get(e, 0) + 1
            return e

    def exit(self, epoch: int) -> None:
        with self._lock:
            c = self._live[epoch] - 1
            if c:
                self._live[epoch] = c
            else:
                del self._live[epoch]
            ready = self._take_ready()
        for fn in ready:
            fn()

    def _take_ready(self) -> list[Callable[[], None]]:
        if not self._deferred:
            return []
        oldest = min(self._live) if self._live else self._epoch + 1
        ready = [fn for e, fn in self._deferred if oldest >= e]
        if ready:
            self._deferred = [(e, fn) for e, fn in self._deferred if oldest < e]
        return ready

    def defer(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` now if no older scan is live, else when the last one exits."""
        with self._lock:
            self._epoch += 1
            self._deferred.append((self._epoch, fn))
            ready = self._take_ready()
        for f in ready:
            f()

    def pending(self) -> int:
        with self._lock:
            return len(self._deferred)

    def run_pending(self) -> None:
        with self._lock:
            ready = self._take_ready()
        for fn in ready:
            fn()


class _Stream:
    __slots__ = ("tier", "cursor", "buf", "pos", "table", "start", "end", "version", "chunk", "size",
                 "fetch")

    def __init__(self, tier: TierStorage, table: EntryKind, start: Bound, end: Bound,
                 version: int, chunk: int, reverse: bool, pairs: bool = False) -> None:
        self.tier = tier
        self.cursor = RangeCursor()
        self.buf: list[RawEntry] = []  # the current page; rows before ``pos`` are consumed
        self.pos = 0
        self.table, self.start, self.end = table, start, end
        self.version, self.chunk = version, chunk
        self.size = chunk  # rows per fetch (a share of ``chunk`` while several tiers merge)
        self.fetch = tier.range_rev_next if reverse else tier.range_next
        if pairs:  # rows as (key, value or None): the tier's own pages when it has them
            self.fetch = _pairs_fetch(tier, reverse)

    def fill(self) -> bool:
        """Make sure an unconsumed row is buffered; False when the tier is drained."""
        while self.pos >= len(self.buf):
            if self.cursor.exhausted:
                return False
            self.buf = self.fetch(self.table, self.cursor, self.start, self.end, self.version,
                                  self.size).entries
            self.pos = 0
        return True


FIRST_PEEK = 16  # rows of a merged scan's first page from its top tier (see _first_fill)

_KEY = itemgetter(0)
_VAL = itemgetter(1)  # of a (key, value) pair
_ENTRY_VALUE = itemgetter(2)  # of a RawEntry


def _pairs_fetch(tier: TierStorage, reverse: bool) -> Callable[..., RangeBatch]:
    """A page fetch of ``tier`` whose entries are ``(key, value or None)`` pairs."""
    own = getattr(tier, "range_pairs_next", None)
    if own is not None:
        def fetch(table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound, version: int,
                  size: int) -> RangeBatch:
            return own(table, cursor, start, end, version, size, reverse)  # type: ignore[no-any-return]
        return fetch
    plain = tier.range_rev_next if reverse else tier.range_next

    def converted(table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound, version: int,
                  size: int) -> RangeBatch:
        page = plain(table, cursor, start, end, version, size)
        es = page.entries
        return RangeBatch(list(zip(map(_KEY, es), map(_ENTRY_VALUE, es))), page.has_more)  # type: ignore[arg-type]
    return converted


class MergedScan:
    """Iterator of the winning :class:`RawEntry` per key across tiers (tombstones included).

    Merges page by page: every live stream holds a page; the horizon is the nearest of the
    pages' last keys among streams that may still return more (nothing beyond it is emitted
    yet); the rows up to the horizon are merged with one C-level stable sort and
    de-duplicated with a dict (the upper tier's row of a key wins: by band order it is the
    newest; identical copies during a move are equal). :meth:`pages` yields the merged rows a
    batch at a time. O(rows log tiers), with the per-row work in C.
    """

    def __init__(self, tiers: Sequence[TierStorage], table: EntryKind, start: Bound, end: Bound,
                 version: int, reverse: bool, chunk: int, pairs: bool = False) -> None:
        # ``pairs``: rows are (key, value or None) tuples, not RawEntry (item_pages: no version).
        # Each stream's fetch size is set on its first fill (_first_fill): a share of ``chunk``.
        self._streams = [_Stream(t, table, start, end, version, chunk, reverse, pairs) for t in tiers]
        self._pairs = pairs
        self._reverse = reverse
        self._lone: _Stream | None = None  # set once the merge is down to one stream

    def __iter__(self) -> Iterator[RawEntry]:
        for page in self.pages():
            yield from page

    def _first_fill(self) -> list[_Stream]:
        """Fill every stream once, sharing ``chunk`` rows among the tiers below the top one
        in tier order (each takes its share of what the tiers before it left), so a merged
        page is about ``chunk`` rows, not up to ``chunk`` per tier; the top tier gets a short
        first page. Returns the streams that have rows."""
        streams = self._streams
        budget = streams[0].chunk if streams else 0
        live: list[_Stream] = []
        for i, s in enumerate(streams):
            share = max(budget // (len(streams) - i), 1)
            peek = i == 0 and len(streams) > 1
            # The top tier (hot: recent writes, often few and elsewhere in the key space)
            # is peeked at with a short first page that leaves the batch to the tiers below.
            s.size = min(share, FIRST_PEEK) if peek else share
            filled = s.fill()
            s.size = share
            if filled:
                live.append(s)
                if not peek:
                    budget -= len(s.buf)
        return live

    def pages(self) -> Generator[list[Any], None, None]:
        """Merged rows a batch at a time: RawEntry rows, or (key, value) pairs with ``pairs``."""
        reverse = self._reverse
        streams = self._first_fill()
        while len(streams) > 1:
            # The horizon: no stream that may return more rows has buffered past it.
            lasts = [s.buf[-1][0] for s in streams if not s.cursor.exhausted]
            if lasts:
                horizon = min(lasts) if not reverse else max(lasts)
            rows: list[Any] = []
            for s in streams:
                buf, pos = s.buf, s.pos
                if not lasts:
                    cut = len(buf)
                elif reverse:  # keys descending: take while key >= horizon
                    cut = pos
                    n = len(buf)
                    while cut < n and buf[cut][0] >= horizon:
                        cut += 1
                else:
                    cut = bisect_right(buf, horizon, pos, len(buf), key=_KEY)
                if cut > pos:
                    rows.extend(buf[pos:cut] if pos or cut < len(buf) else buf)
                    s.pos = cut
            # Stable sort on the key alone (no key tuple per row): a key's rows stay in tier
            # order, upper tier first, and band order makes the upper tier's row the newest.
            # Reversed, a dict keeps the last row per key, i.e. the upper tier's.
            rows.sort(key=_KEY, reverse=reverse)
            rows.reverse()
            merged = list(dict(zip(map(_KEY, rows), rows)).values())
            merged.reverse()
            if merged:
                yield merged
            streams = [s for s in streams if s.fill()]
        # One stream left (or none): no merging needed, hand its pages straight through.
        self._lone = streams[0] if streams else None
        for s in streams:
            s.size = s.chunk
            while s.fill():
                page = s.buf if s.pos == 0 else s.buf[s.pos:]
                s.pos = len(s.buf)
                yield page

    def item_pages(self) -> Iterator[list[tuple[bytes, bytes]]]:
        """The live ``(key, value)`` pairs of the merged scan (tombstoned keys left out), a
        page (list) at a time.

        When the merge comes down to one stream whose tier has ``scan_item_pages`` (warm),
        the rest of the range is read through it: no :class:`RawEntry` per row.
        """
        self._lone = None
        fast_streams = [s for s in self._streams if getattr(s.tier, "scan_item_pages", None) is not None]
        if len(fast_streams) == 1:
            # If every other tier has nothing in the range (hot after a flush; cold skipped
            # at recent versions), read the whole range through the fast tier's pages,
            # without a first page of RawEntry.
            lone = fast_streams[0]
            for s in self._streams:
                if s is not lone:
                    s.size = min(max(s.chunk // len(self._streams), 1), FIRST_PEEK)
            if not any(s.fill() for s in self._streams if s is not lone):
                yield from lone.tier.scan_item_pages(  # type: ignore[attr-defined]
                    lone.table, lone.start, lone.end, lone.version, reverse=self._reverse,
                    page=lone.chunk)
                return
        pages = self.pages()
        for page in pages:
            live: list[tuple[bytes, bytes]]
            if self._pairs:
                vals = list(map(_VAL, page))
                live = page if None not in vals else list(compress(page, map(is_not, vals, repeat(None))))
            else:
                live = [(k, val) for k, _, val in page if val is not None]
            if live:
                yield live
            ls = self._lone
            if ls is not None and not ls.cursor.exhausted and ls.cursor.last_key is not None:
                fast = getattr(ls.tier, "scan_item_pages", None)
                if fast is not None:
                    pages.close()
                    after = Bound.excluded(ls.cursor.last_key)
                    if self._reverse:
                        yield from fast(ls.table, ls.start, after, ls.version, reverse=True, page=ls.chunk)
                    else:
                        yield from fast(ls.table, after, ls.end, ls.version, page=ls.chunk)
                    return


_MISSING: Any = object()  # "no version <= v in this tier": ask the next one


def _get_or(tier: TierStorage) -> Callable[[EntryKind, bytes, int, Any], Any]:
    """The tier's three-way point read (value / None for a tombstone / ``missing``):
    its own ``get_or`` when it has one (no :class:`RawEntry` per read), else one built on
    ``lookup``."""
    fast = getattr(tier, "get_or", None)
    if fast is not None:
        return fast  # type: ignore[no-any-return]
    lookup = tier.lookup

    def get_or(table: EntryKind, key: bytes, version: int, missing: Any) -> Any:
        e = lookup(table, key, version)
        return missing if e is None else e.value

    return get_or


class Router:
    """Reads across an ordered list of tiers (hot first). See the module docstring."""

    def __init__(self, tiers: Sequence[TierStorage]) -> None:
        if not tiers:
            raise ValueError("a router needs at least one tier")
        self.tiers: list[TierStorage] = list(tiers)
        self.epochs = ScanEpochs()
        # Reads at versions >= this never need the last (cold) tier: every key cold holds
        # also has, in the tiers above, a version <= any such read version. Maintained by
        # "history" demotion; None when unknown (e.g. after an "age" demotion).
        self.cold_skip_from: int | None = None
        self._upper = self.tiers[:-1]
        # Point-read chains: (lookup of every tier but the last, get of the last tier).
        self._chain_all = ([_get_or(t) for t in self.tiers[:-1]], self.tiers[-1].get)
        self._chain_upper = ([_get_or(t) for t in self._upper[:-1]], self._upper[-1].get) if self._upper else None
        # Old reads (below cold_skip_from) ask cold, after the tiers above warm, whether it can
        # answer alone (ColdTier.get_final) before paying warm's seek: see get().
        last = self.tiers[-1]
        self._final = getattr(last, "get_final", None) if len(self.tiers) > 1 and last.name == "cold" \
            else None
        self._final_many = getattr(last, "get_final_many", None) if self._final is not None else None
        # Point reads answered per tier (approximate under threads: no lock on the hot path).
        self.reads_served = [0] * len(self.tiers)
        self.scans = 0

    def tiers_for(self, version: int) -> list[TierStorage]:
        """The tiers a read at ``version`` must consult, hot first."""
        skip = self.cold_skip_from
        if skip is not None and version >= skip and len(self.tiers) > 1 and self.tiers[-1].name == "cold":
            return self._upper
        return self.tiers

    def lookup(self, table: EntryKind, key: bytes, version: int) -> RawEntry | None:
        """The newest version <= ``version`` from the first tier that has one."""
        for i, tier in enumerate(self.tiers_for(version)):
            e = tier.lookup(table, key, version)
            if e is not None:
                self.reads_served[i] += 1
                return e
        return None

    def get(self, table: EntryKind, key: bytes, version: int) -> bytes | None:
        """The value at ``version`` through the cascade (the last tier answers with ``get``).

        Reads below ``cold_skip_from`` (old reads, after a "history" demotion) ask cold
        right after the tiers above warm: cold answers alone when it knows the version that
        superseded its newest version <= ``version`` and that one is above ``version`` (it
        recorded the successor on demotion), which saves warm's seek; otherwise the cascade
        goes on as usual (warm, then cold).
        """
        skip = self.cold_skip_from
        final = None
        if skip is not None and self._chain_upper is not None and self.tiers[-1].name == "cold":
            if version >= skip:
                lookups, last_get = self._chain_upper
            else:
                lookups, last_get = self._chain_all
                final = self._final
        else:
            lookups, last_get = self._chain_all
        i = 0
        probe_at = len(lookups) - 1  # warm's position: cold is asked just before it
        for get_or in lookups:
            if i == probe_at and final is not None:
                val = final(table, key, version, _MISSING)
                if val is not _MISSING:
                    self.reads_served[-1] += 1
                    return val  # type: ignore[no-any-return]
            val = get_or(table, key, version, _MISSING)
            if val is not _MISSING:
                if val is BOTTOM_ONLY:  # the tiers in between hold nothing <= version
                    i = len(lookups)
                    break
                self.reads_served[i] += 1
                return val  # type: ignore[no-any-return]
            i += 1
        self.reads_served[i] += 1
        return last_get(table, key, version)

    def get_many(self, table: EntryKind, keys: list[bytes], version: int) -> list[bytes | None]:
        """``[get(table, k, version) for k in keys]`` through the cascade, a batch per tier.

        Each tier is asked once for every key still unanswered (its ``lookup_many`` /
        ``get_many`` when it has one, else one call per key). O(len(keys) * tiers).
        """
        out: list[bytes | None] = [None] * len(keys)
        tiers = self.tiers_for(version)
        pending = list(range(len(keys)))
        bottom: list[int] = []  # keys only the bottom tier can answer (BOTTOM_ONLY)
        last = len(tiers) - 1
        skip = self.cold_skip_from
        final_many = self._final_many if skip is not None and version < skip \
            and tiers is self.tiers else None
        for ti, tier in enumerate(tiers):
            if ti == last and bottom:
                pending = sorted(pending + bottom)
            if not pending:
                continue
            if ti == last - 1 and final_many is not None:
                # Old read: keys cold answers alone skip warm (see get()).
                ks = [keys[i] for i in pending] if len(pending) != len(keys) else keys
                unknown: list[int] = []
                for i, val in zip(pending, final_many(table, ks, version, _MISSING)):
                    if val is _MISSING:
                        unknown.append(i)
                    else:
                        out[i] = val
                self.reads_served[last] += len(pending) - len(unknown)
                pending = unknown
                if not pending:
                    continue
            ks = [keys[i] for i in pending] if len(pending) != len(keys) else keys
            if ti == last:
                many = getattr(tier, "get_many", None)
                vals = many(table, ks, version) if many is not None else [tier.get(table, k, version) for k in ks]
                for i, val in zip(pending, vals):
                    out[i] = val
                self.reads_served[ti] += len(pending)
                break
            rest: list[int] = []
            skipped = len(bottom)
            three_way = getattr(tier, "get_or_many", None)
            if three_way is not None:
                for i, val in zip(pending, three_way(table, ks, version, _MISSING)):
                    if val is _MISSING:
                        rest.append(i)
                    elif val is BOTTOM_ONLY:
                        bottom.append(i)
                    else:
                        out[i] = val
            else:
                many = getattr(tier, "lookup_many", None)
                found = many(table, ks, version) if many is not None else [tier.lookup(table, k, version) for k in ks]
                for i, e in zip(pending, found):
                    if e is None:
                        rest.append(i)
                    else:
                        out[i] = e.value
            self.reads_served[ti] += len(pending) - len(rest) - (len(bottom) - skipped)
            pending = rest
        return out

    def scan(self, table: EntryKind, start: Bound, end: Bound, version: int, reverse: bool,
             chunk: int) -> Iterator[RawEntry]:
        """Merged scan across tiers, registered with the scan epochs while it runs."""
        for page in self.scan_pages(table, start, end, version, reverse, chunk):
            yield from page

    def scan_items(self, table: EntryKind, start: Bound, end: Bound, version: int, reverse: bool,
                   chunk: int, release: Callable[[], object] | None = None) -> ScanIterator:
        """The live ``(key, value)`` pairs of a merged scan (see :meth:`MergedScan.item_pages`)
        as a :class:`ScanIterator`; ``release`` is called once when the scan is exhausted or
        closed."""
        return scan_iterator(self._item_pages(table, start, end, version, reverse, chunk, release),
                             release)

    def _item_pages(self, table: EntryKind, start: Bound, end: Bound, version: int, reverse: bool,
                    chunk: int, release: Callable[[], object] | None) -> Iterator[list[tuple[bytes, bytes]]]:
        try:
            epoch = self.epochs.enter()
            self.scans += 1
            try:
                yield from MergedScan(self.tiers_for(version), table, start, end, version, reverse,
                                      chunk, pairs=True).item_pages()
            finally:
                self.epochs.exit(epoch)
        finally:
            if release is not None:
                release()

    def scan_pages(self, table: EntryKind, start: Bound, end: Bound, version: int, reverse: bool,
                   chunk: int) -> Iterator[list[RawEntry]]:
        """:meth:`scan` a merged batch at a time (for callers that filter rows in bulk)."""
        epoch = self.epochs.enter()
        self.scans += 1
        try:
            yield from MergedScan(self.tiers_for(version), table, start, end, version, reverse, chunk).pages()
        finally:
            self.epochs.exit(epoch)

    def history(self, table: EntryKind, key: bytes) -> list[tuple[int, bytes | None]]:
        """Every stored version of ``key`` across tiers, newest first (deduplicated)."""
        if len(self.tiers) == 1:
            return self.tiers[0].get_all_versions(table, key)
        seen: dict[int, bytes | None] = {}
        for tier in self.tiers:
            for v, val in tier.get_all_versions(table, key):
                seen.setdefault(v, val)
        return sorted(seen.items(), key=lambda kv: kv[0], reverse=True)

    def tables(self) -> list[EntryKind]:
        out: set[EntryKind] = set()
        for t in self.tiers:
            out.update(t.tables())
        return sorted(out)

    def stats(self) -> dict[str, Any]:
        out = {t.name: t.stats() for t in self.tiers}
        if len(self.tiers) > 1:
            for t, n in zip(self.tiers, self.reads_served):
                out[t.name]["reads_served"] = n
        return out
