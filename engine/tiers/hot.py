"""The hot tier: every version of every key in memory.

Layout per table: a ``dict`` from key to its versions for O(1) point lookup, and a lazily
sorted key index for ranges. A key with one version (the common case: keys are flushed to
warm as they age) is stored as a plain ``(version, value)`` tuple; a key with several
versions is a :class:`_Chain` (two parallel lists, versions ascending, and its ``latest``
pair). New keys are appended to a ``pending`` list and merged into the ``SortedList`` only
when a range or a flush needs order; removed keys stay in the ``SortedList`` as "dead" until
half of it is dead, then it is rebuilt. Both keep ``set`` and flush eviction at one dict
operation per key instead of a ``SortedList`` insert or removal each (bench_peers "load").

Clean copies (a bounded cache of latest values): when a flush removes a key whose every
version went to warm, the hot tier may keep that key's newest version in a separate
``clean`` dict, within ``clean_budget`` bytes (oldest evicted first). Only point reads
(``lookup``, ``get_or``, ``lookup_many``) consult it, and only after the key's own versions
here: a clean copy is an identical copy of warm's newest version of the key, which DESIGN.md
invariant 2 allows (as after a move interrupted between copy and delete), so every answer
is the one warm would give. Ranges, ``iter_versions``, ``get_all_versions`` and the byte
budget of unflushed data (:attr:`HotTier.bytes`) ignore them. Whoever removes a key's
newest version below the hot tier (a forced drop, an erase) calls :meth:`forget_clean`.

A clean copy also answers reads *older* than itself, in part: movement sets
:attr:`HotTier.settled_through` to the cutoff C of the last "history" demotion, after which
a key whose newest version c is <= C keeps c in warm and every older version in cold. A
read below c of a key whose clean copy is such a c therefore has nothing to find in warm:
``get_or`` answers :data:`~engine.tiers.base.BOTTOM_ONLY` and the cascade skips warm's seek
(bench_peers "get old": half of the old reads are of rewritten keys).

Notes: thread safety
    One writer at a time (``set``/``drop``/``clear_table`` take ``self._lock``); point reads
    take no lock. An in-order ``set`` on a :class:`_Chain` appends the value before the
    version, so a reader that sees a version index also sees its value, then replaces the
    chain's ``latest`` pair (a version is published to readers only after its ``set``
    returned). Every other change to a key (first version, a second version, out-of-order
    insert, drop) builds a new tuple or chain and swaps it in with one dict store. Range pages
    and the key index take the lock because ``SortedList`` iteration is not safe against
    concurrent inserts.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import compress, islice, repeat
from operator import itemgetter
from typing import Any, Union

from sortedcontainers import SortedList

from ..errors import ClosedError, CorruptionError, InvalidKeyError
from ..types import Bound, EntryKind, RangeBatch, RangeCursor, RawEntry, as_bytes
from .base import BOTTOM_ONLY, DropBatches, SetBatches, finish_page

_KEY0 = itemgetter(0)  # RawEntry -> key
_VALUE2 = itemgetter(2)  # RawEntry -> value

__all__ = ["HotTier"]

# Rough per-version bookkeeping cost (list slots, int, bytes header) used in byte accounting.
_VERSION_OVERHEAD = 64
_KEY_OVERHEAD = 120


class _Chain:
    """Versions ascending and their values; ``latest`` is ``(newest version, its value)``.

    ``latest`` is one tuple replaced whole, so a reader gets a consistent pair with a single
    load: most reads are at or above the newest version and need nothing else.
    """

    __slots__ = ("versions", "values", "latest")

    def __init__(self, versions: list[int], values: list[bytes | None]) -> None:
        self.versions = versions
        self.values = values
        self.latest = (versions[-1], values[-1])


# A key's versions: one (version, value) pair, or a chain of two or more.
_Entry = Union[tuple[int, "bytes | None"], _Chain]


def _parts(c: _Entry) -> tuple[list[int], list[bytes | None]]:
    """``(versions ascending, values)`` of a key's entry (fresh lists for a pair)."""
    if c.__class__ is tuple:
        return [c[0]], [c[1]]  # type: ignore[index]
    return c.versions, c.values  # type: ignore[union-attr]


def _make(versions: list[int], values: list[bytes | None]) -> _Entry:
    return (versions[0], values[0]) if len(versions) == 1 else _Chain(versions, values)


class _Table:
    __slots__ = ("chains", "keys", "pending", "dead", "bytes", "nversions", "clean", "clean_bytes")

    def __init__(self) -> None:
        self.chains: dict[bytes, _Entry] = {}
        self.keys: SortedList = SortedList()   # sorted; may hold dead keys, lacks pending ones
        self.pending: list[bytes] = []         # keys in chains but not yet in ``keys``
        self.dead: set[bytes] = set()          # keys in ``keys`` but no longer in chains
        self.bytes = 0
        self.nversions = 0
        # Clean copies: the newest version of flushed keys, also stored in warm, kept for
        # point reads only (see HotTier "Clean copies"). Insertion order = eviction order.
        self.clean: dict[bytes, tuple[int, bytes | None]] = {}
        self.clean_bytes = 0

    def sorted_keys(self) -> SortedList:
        """The key index with pending keys merged in (call under the tier lock).

        Amortised O(log n) per key added since the last call; dead keys may remain.
        """
        if self.pending:
            self.keys.update(self.pending)
            self.pending = []
        return self.keys

    def forget(self, key: bytes) -> None:
        """Record that ``key`` left ``chains`` (call under the tier lock). O(1) amortised."""
        self.forget_many((key,))

    def forget_many(self, keys: Iterable[bytes]) -> None:
        """Record that ``keys`` left ``chains`` (under the tier lock). O(len(keys)) amortised."""
        dead = self.dead
        dead.update(keys)
        if len(dead) > 1024 and len(dead) * 2 > len(self.chains) + len(dead):
            # Mostly dead (a flush emptied the table): rebuild from the live keys.
            self.keys = SortedList(self.chains)
            self.pending = []
            self.dead = set()


_NO_TABLE: tuple[None, None] = (None, None)
# RawEntry built in C from a ready tuple (NamedTuple's own __new__ is a Python function):
# the flush builds one per flushed version.
_new_entry = tuple.__new__
_FIRST: Any = itemgetter(0)
_SECOND: Any = itemgetter(1)
_TUPLE_ONLY = {tuple}
_CONCAT: Any = tuple.__add__


def _entry_size(key: bytes, value: bytes | None) -> int:
    return len(key) + (len(value) if value is not None else 0) + _VERSION_OVERHEAD


def _check_batches(batches: SetBatches) -> dict[EntryKind, list[tuple[bytes, bytes | None]]]:
    """Validate and normalise every row before anything is written (DESIGN.md section 5).

    Raises InvalidKeyError for a non-EntryKind table or a key/value that is not bytes-like.
    """
    out: dict[EntryKind, list[tuple[bytes, bytes | None]]] = {}
    for table, rows in batches.items():
        if table.__class__ is not EntryKind:
            raise InvalidKeyError(f"table must be an EntryKind, got {type(table).__name__}")
        rows = list(rows)
        if not all(type(k) is bytes and (v is None or type(v) is bytes) for k, v in rows):
            rows = [(as_bytes(k), None if v is None else as_bytes(v, "value")) for k, v in rows]
        out[table] = rows
    return out


class HotTier:
    """In-memory multi-version tier (see module docstring for layout and thread safety).

    Complexity: point reads O(1) at the newest version, O(log v) below it (v = versions of
    the key); ``set`` O(1) per write (new keys are sorted lazily); range pages
    O(log n + batch) plus the merge of keys added since the last range.
    """

    name = "hot"

    def __init__(self, clean_budget: int = 0) -> None:
        self._tables: dict[EntryKind, _Table] = {}
        self.clean_budget = clean_budget  # bytes of clean copies to keep (0: none)
        # Set by movement: every key whose newest version c is <= this keeps c in the tier
        # below and all its older versions in the bottom tier (0: unknown, never skip).
        self.settled_through = 0
        # The table the last get() used, read and written as one tuple (atomic under the
        # GIL); reset whenever a table object is replaced or removed.
        self._last: tuple[EntryKind | None, _Table | None] = _NO_TABLE
        self._lock = threading.RLock()
        self._closed = False

    # -- reads -------------------------------------------------------------------------

    def _entry(self, table: EntryKind, key: bytes) -> _Entry | None:
        t = self._tables.get(table)
        if t is None:
            if self._closed:
                raise ClosedError("hot tier is closed")
            return None
        return t.chains.get(key)

    def lookup(self, table: EntryKind, key: bytes, version: int) -> RawEntry | None:
        if type(key) is not bytes:
            key = as_bytes(key)
        t = self._tables.get(table)
        if t is None:
            if self._closed:
                raise ClosedError("hot tier is closed")
            return None
        c = t.chains.get(key)
        if c is not None:
            if c.__class__ is tuple:
                lv, lval = c  # type: ignore[misc]
                if lv <= version:
                    return RawEntry(key, lv, lval)
            else:
                lv, lval = c.latest  # type: ignore[union-attr]
                if lv <= version:
                    return RawEntry(key, lv, lval)
                vs = c.versions  # type: ignore[union-attr]
                i = bisect_right(vs, version, 0, len(vs))
                if i:
                    return RawEntry(key, vs[i - 1], c.values[i - 1])  # type: ignore[union-attr]
        cc = t.clean.get(key)
        if cc is not None and cc[0] <= version:
            return RawEntry(key, cc[0], cc[1])
        return None

    def get_or(self, table: EntryKind, key: bytes, version: int, missing: Any) -> Any:
        """As :meth:`lookup`, three-way without a :class:`RawEntry`: the value, None for a
        tombstone, or ``missing`` when no version <= ``version`` is here. O(1) at the newest
        version (the read cascade's fast path)."""
        last = self._last
        if last[0] is table:
            t = last[1]
        else:
            t = self._tables.get(table)
            if t is None:
                if self._closed:
                    raise ClosedError("hot tier is closed")
                return missing
            self._last = (table, t)
        try:
            c = t.chains.get(key)  # type: ignore[union-attr]
        except (TypeError, ValueError):  # an unhashable bytes-like key (bytearray, ...)
            return self.get_or(table, as_bytes(key), version, missing)
        if c is not None:
            if c.__class__ is tuple:
                if c[0] <= version:  # type: ignore[index,operator]
                    return c[1]  # type: ignore[index]
            else:
                lv, lval = c.latest  # type: ignore[union-attr]
                if lv <= version:
                    return lval
                vs = c.versions  # type: ignore[union-attr]
                i = bisect_right(vs, version, 0, len(vs))
                if i:
                    return c.values[i - 1]  # type: ignore[union-attr]
        else:
            if type(key) is not bytes:
                return self.get_or(table, as_bytes(key), version, missing)  # raises for str etc.
        cc = t.clean.get(key)  # type: ignore[union-attr]
        if cc is not None:
            if cc[0] <= version:
                return cc[1]
            if cc[0] <= self.settled_through:  # older versions are all in the bottom tier
                return BOTTOM_ONLY
        return missing

    def get(self, table: EntryKind, key: bytes, version: int) -> bytes | None:
        # The store's point-read fast path (bench_store "get"): no helper calls.
        last = self._last  # (table, _Table) of the previous read: skips an EntryKind hash
        if last[0] is table:
            t = last[1]
        else:
            t = self._tables.get(table)
            if t is None:
                if self._closed:
                    raise ClosedError("hot tier is closed")
                return None
            self._last = (table, t)
        try:
            c = t.chains.get(key)  # type: ignore[union-attr]  # t is set on both paths
        except (TypeError, ValueError):  # an unhashable bytes-like key (bytearray, ...)
            c = t.chains.get(as_bytes(key))  # type: ignore[union-attr]
        if c is None:
            if type(key) is not bytes:
                as_bytes(key)  # a str/int/None key must raise, not read as "absent"
            return None
        if c.__class__ is tuple:
            return c[1] if c[0] <= version else None  # type: ignore[index,operator]
        lv, lval = c.latest  # type: ignore[union-attr]
        if lv <= version:
            return lval
        vs = c.versions  # type: ignore[union-attr]
        i = bisect_right(vs, version, 0, len(vs))  # len first bounds the read (thread-safety note)
        return c.values[i - 1] if i else None  # type: ignore[union-attr]

    def lookup_many(self, table: EntryKind, keys: Sequence[bytes], version: int
                    ) -> list[RawEntry | None]:
        """``[lookup(table, k, version) for k in keys]``. O(len(keys)). (The read cascade's
        batch step is :meth:`get_or_many`.)"""
        return list(map(self.lookup, repeat(table), keys, repeat(version)))

    def get_or_many(self, table: EntryKind, keys: Sequence[bytes], version: int, missing: Any) -> list[Any]:
        """``[get_or(table, k, version, missing) for k in keys]``: the batch cascade step
        without a :class:`RawEntry` per answer. Dict probes run in C (``map``). O(len(keys))."""
        t = self._tables.get(table)
        if t is None:
            if self._closed:
                raise ClosedError("hot tier is closed")
            return [missing] * len(keys)
        out: list[Any] = [missing] * len(keys)
        if t.clean:  # clean copies first: a key's own versions below override them
            settled = self.settled_through
            for i, cc in enumerate(map(t.clean.get, keys)):
                if cc is not None:
                    if cc[0] <= version:
                        out[i] = cc[1]
                    elif cc[0] <= settled:
                        out[i] = BOTTOM_ONLY
        if t.chains:
            get_or = self.get_or
            for i, c in enumerate(map(t.chains.get, keys)):
                if c is None:
                    continue
                if c.__class__ is tuple:
                    if c[0] <= version:  # type: ignore[index,operator]
                        out[i] = c[1]  # type: ignore[index]
                else:
                    val = get_or(table, keys[i], version, missing)
                    if val is not missing:
                        out[i] = val
        return out

    def get_many(self, table: EntryKind, keys: Sequence[bytes], version: int) -> list[bytes | None]:
        """``[get(table, k, version) for k in keys]`` in one call. O(len(keys))."""
        t = self._tables.get(table)
        if t is None:
            if self._closed:
                raise ClosedError("hot tier is closed")
            return [None] * len(keys)
        cget = t.chains.get
        get = self.get
        out: list[bytes | None] = []
        append = out.append
        for key in keys:
            c = cget(key)
            if c is None:
                append(None)
            elif c.__class__ is tuple:
                append(c[1] if c[0] <= version else None)  # type: ignore[index,operator]
            else:
                append(get(table, key, version))
        return out

    def contains(self, table: EntryKind, key: bytes, version: int) -> bool:
        return self.get(table, key, version) is not None

    def get_all_versions(self, table: EntryKind, key: bytes) -> list[tuple[int, bytes | None]]:
        if type(key) is not bytes:
            key = as_bytes(key)
        c = self._entry(table, key)
        if c is None:
            return []
        vs, vals = _parts(c)
        return [(vs[i], vals[i]) for i in range(len(vs) - 1, -1, -1)]

    def newest_version(self, table: EntryKind, key: bytes) -> int | None:
        """The newest stored version of ``key`` (any value), or None. O(1)."""
        if type(key) is not bytes:
            key = as_bytes(key)
        c = self._entry(table, key)
        if c is None:
            return None
        return c[0] if c.__class__ is tuple else c.latest[0]  # type: ignore[index,union-attr]

    def _page(
        self,
        table: EntryKind,
        cursor: RangeCursor,
        start: Bound,
        end: Bound,
        version: int,
        batch_size: int,
        reverse: bool,
    ) -> RangeBatch:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if cursor.exhausted:
            return RangeBatch.empty()
        t = self._tables.get(table)
        if t is None or not t.chains:  # no table, or every key flushed (the index may still
            if self._closed:           # list them as dead until its next rebuild)
                raise ClosedError("hot tier is closed")
            cursor.exhausted = True
            return RangeBatch.empty()
        lo, lo_inc = start.key, start.inclusive
        hi, hi_inc = end.key, end.inclusive
        if cursor.last_key is not None:
            if reverse:
                hi, hi_inc = cursor.last_key, False
            else:
                lo, lo_inc = cursor.last_key, False
        out: list[RawEntry] = []
        has_more = False
        with self._lock:
            if lo is not None and hi is not None and (lo > hi or (lo == hi and not (lo_inc and hi_inc))):
                keys_iter: Iterator[bytes] = iter(())
            else:
                keys_iter = t.sorted_keys().irange(lo, hi, (lo_inc, hi_inc), reverse=reverse)
            cget = t.chains.get
            for key in keys_iter:
                c = cget(key)
                if c is None:
                    continue  # a dead key (removed, still in the index)
                if c.__class__ is tuple:
                    lv, lval = c  # type: ignore[misc]
                    if lv > version:
                        continue
                    if len(out) == batch_size:
                        has_more = True
                        break
                    out.append(_new_entry(RawEntry, (key, lv, lval)))
                    continue
                lv, lval = c.latest  # type: ignore[union-attr]
                if lv <= version:
                    if len(out) == batch_size:
                        has_more = True
                        break
                    out.append(_new_entry(RawEntry, (key, lv, lval)))
                    continue
                vs = c.versions  # type: ignore[union-attr]
                i = bisect_right(vs, version)
                if i == 0:
                    continue  # every version is newer than the read: skip, keep scanning
                if len(out) == batch_size:
                    has_more = True
                    break
                out.append(_new_entry(RawEntry, (key, vs[i - 1], c.values[i - 1])))  # type: ignore[union-attr]
        return finish_page(cursor, out, has_more)

    def range_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                   version: int, batch_size: int) -> RangeBatch:
        return self._page(table, cursor, start, end, version, batch_size, False)

    def range_rev_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                       version: int, batch_size: int) -> RangeBatch:
        return self._page(table, cursor, start, end, version, batch_size, True)

    def range_pairs_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                         version: int, batch_size: int, reverse: bool = False) -> RangeBatch:
        """As :meth:`range_next` / :meth:`range_rev_next`, entries as ``(key, value or None)``."""
        page = self._page(table, cursor, start, end, version, batch_size, reverse)
        es = page.entries
        if es:
            return RangeBatch(list(zip(map(_KEY0, es), map(_VALUE2, es))), page.has_more)  # type: ignore[arg-type]
        return page

    def tables(self) -> list[EntryKind]:
        return sorted(self._tables)

    def iter_versions(self, table: EntryKind, start: bytes | None = None) -> Iterator[RawEntry]:
        """Every stored version in (key asc, version desc) order, 256 keys per lock hold."""
        t = self._tables.get(table)
        if t is None:
            return
        last: bytes | None = None
        while True:
            with self._lock:
                keys = t.sorted_keys()
                if last is None:
                    it = keys.irange(start, None) if start is not None else iter(keys)
                else:
                    it = keys.irange(last, None, (False, True))
                rows: list[RawEntry] = []
                n = 0
                for k in it:
                    last = k
                    n += 1
                    c = t.chains.get(k)
                    if c is not None:
                        vs, vals = _parts(c)
                        rows.extend(RawEntry(k, vs[i], vals[i]) for i in range(len(vs) - 1, -1, -1))
                    if n == 256:
                        break
            yield from rows
            if n < 256:
                return

    def iter_versions_up_to(self, watermark: int, chunk_entries: int = 50_000
                            ) -> Iterator[tuple[EntryKind, list[RawEntry]]]:
        """Every stored version <= ``watermark`` as ``(table, rows)`` chunks.

        Rows are in (key asc, version desc) order; a key's versions never straddle two
        chunks. The lock is held per chunk, not for the whole walk (nor while the caller
        consumes a chunk). A chunk of single-version keys all <= ``watermark`` (a load
        being flushed) is built in C. O(keys + versions).
        """
        for table in list(self._tables):
            t = self._tables.get(table)
            if t is None:
                continue
            last: bytes | None = None
            done = False
            while not done:
                with self._lock:
                    keys = t.sorted_keys()
                    it = keys.irange(last, None, (False, True)) if last is not None else iter(keys)
                    batch = list(islice(it, chunk_entries))
                    done = len(batch) < chunk_entries
                    if batch:
                        last = batch[-1]
                    rows = self._rows_up_to(t, batch, watermark)
                if rows:
                    yield table, rows

    @staticmethod
    def _rows_up_to(t: _Table, batch: list[bytes], watermark: int) -> list[RawEntry]:
        """The versions <= ``watermark`` of ``batch``'s keys (sorted), newest first per key."""
        items = list(map(t.chains.get, batch))
        if None in items:  # dead keys (removed, still indexed)
            batch = list(compress(batch, items))
            items = list(filter(None, items))
        if not batch:
            return []
        if set(map(type, items)) == _TUPLE_ONLY and max(map(_FIRST, items)) <= watermark:
            # (key,) + (version, value), made a RawEntry: no bytecode per row.
            return list(map(_new_entry, repeat(RawEntry), map(_CONCAT, zip(batch), items)))
        rows: list[RawEntry] = []
        append = rows.append
        for k, c in zip(batch, items):
            if c.__class__ is tuple:
                if c[0] <= watermark:  # type: ignore[index,operator]
                    append(_new_entry(RawEntry, (k,) + c))  # type: ignore[operator]
                continue
            vs = c.versions  # type: ignore[union-attr]
            if vs[0] > watermark:
                continue
            i = bisect_right(vs, watermark)
            vals = c.values  # type: ignore[union-attr]
            for j in range(i - 1, -1, -1):
                append(RawEntry(k, vs[j], vals[j]))
        return rows

    # -- writes ------------------------------------------------------------------------

    def _table(self, table: EntryKind) -> _Table:
        t = self._tables.get(table)
        if t is None:
            if self._closed:
                raise ClosedError("hot tier is closed")
            t = self._tables[table] = _Table()
        return t

    def ensure_table(self, table: EntryKind) -> None:
        with self._lock:
            self._table(table)

    def clear_table(self, table: EntryKind) -> None:
        with self._lock:
            if self._closed:
                raise ClosedError("hot tier is closed")
            if table in self._tables:
                self._tables[table] = _Table()
                self._last = _NO_TABLE

    def set(self, version: int, batches: SetBatches) -> None:
        """Write every row of every table at ``version``, all or nothing.

        Every table, key and value is validated before the first change (bad input leaves
        the tier as it was). O(rows).

        Raises: InvalidKeyError, ClosedError.
        """
        self.apply(version, _check_batches(batches))

    def apply(self, version: int, batches: Mapping[EntryKind, Sequence[tuple[bytes, bytes | None]]]) -> None:
        """:meth:`set` for rows already validated as ``bytes`` keys and ``bytes | None``
        values (the store's commit path: the transaction validated them). O(rows)."""
        with self._lock:
            if self._closed:
                raise ClosedError("hot tier is closed")
            for table, rows in batches.items():
                t = self._table(table)
                chains = t.chains
                if rows and self._insert_new(t, version, rows):
                    continue
                cget = chains.get
                new_keys: list[bytes] = []
                add_key = new_keys.append
                # Counters are summed in locals and stored once per table (bench "load").
                nbytes = 0
                nvers = 0
                try:
                    for key, value in rows:
                        c = cget(key)
                        if c is None:
                            chains[key] = (version, value)
                            add_key(key)
                            nbytes += len(key) + (len(value) if value is not None else 0)
                            nvers += 1
                            continue
                        if c.__class__ is tuple:
                            cv, cval = c  # type: ignore[misc]
                            if cv < version:
                                chains[key] = _Chain([cv, version], [cval, value])
                                nbytes += len(key) + (len(value) if value is not None else 0) + _VERSION_OVERHEAD
                                nvers += 1
                                continue
                        else:
                            vs = c.versions  # type: ignore[union-attr]
                            if vs[-1] < version:
                                c.values.append(value)  # type: ignore[union-attr]  # value first: thread-safety note
                                vs.append(version)
                                c.latest = (version, value)  # type: ignore[union-attr]
                                nbytes += len(key) + (len(value) if value is not None else 0) + _VERSION_OVERHEAD
                                nvers += 1
                                continue
                        # Out of order or the same version rewritten: rebuild the entry.
                        pvs, pvals = _parts(c)
                        nvs, nvals = list(pvs), list(pvals)
                        i = bisect_right(nvs, version)
                        if i and nvs[i - 1] == version:  # same version rewritten: replace
                            old = nvals[i - 1]
                            nvals[i - 1] = value
                            nbytes += (len(value) if value is not None else 0) - (
                                len(old) if old is not None else 0)
                        else:
                            nvs.insert(i, version)
                            nvals.insert(i, value)
                            nbytes += _entry_size(key, value)
                            nvers += 1
                        chains[key] = _make(nvs, nvals)
                finally:
                    if new_keys:
                        dead = t.dead
                        if dead:  # a key removed and written again is still in the index
                            for k in new_keys:
                                if k in dead:
                                    dead.discard(k)
                                else:
                                    t.pending.append(k)
                        else:
                            t.pending.extend(new_keys)
                        nbytes += len(new_keys) * (_VERSION_OVERHEAD + _KEY_OVERHEAD)
                    t.bytes += nbytes
                    t.nversions += nvers

    @staticmethod
    def _insert_new(t: _Table, version: int, rows: Sequence[tuple[bytes, bytes | None]]) -> bool:
        """The all-new-keys fast path of :meth:`apply` (a load, or keys written again after
        a flush): every dict and index update in C. False (nothing done) when any key is
        already here. O(rows)."""
        keys, values = zip(*rows)
        chains = t.chains
        if not chains.keys().isdisjoint(keys):
            return False
        n0 = len(chains)
        chains.update(zip(keys, zip(repeat(version), values)))
        added = len(chains) - n0
        if added != len(keys):  # a key repeated within the batch: the last row won
            keys = tuple(dict.fromkeys(keys))
            values = tuple(chains[k][1] for k in keys)  # type: ignore[index]
        if t.dead:
            dead = t.dead
            for k in keys:
                if k in dead:
                    dead.discard(k)
                else:
                    t.pending.append(k)
        else:
            t.pending.extend(keys)
        t.bytes += (sum(map(len, keys)) + sum(map(len, filter(None, values)))
                    + len(keys) * (_VERSION_OVERHEAD + _KEY_OVERHEAD))
        t.nversions += len(keys)
        return True

    def _remove_versions(self, t: _Table, key: bytes, keep: Any) -> None:
        """Keep only the versions ``v`` of ``key`` with ``keep(v)`` true (under the lock)."""
        c = t.chains.get(key)
        if c is None:
            return
        vs, vals = _parts(c)
        nvs: list[int] = []
        nvals: list[bytes | None] = []
        for v, val in zip(vs, vals):
            if keep(v):
                nvs.append(v)
                nvals.append(val)
            else:
                t.bytes -= _entry_size(key, val)
                t.nversions -= 1
        if nvs:
            if len(nvs) != len(vs):
                t.chains[key] = _make(nvs, nvals)
        else:
            del t.chains[key]
            t.bytes -= _KEY_OVERHEAD
            t.forget(key)

    def drop(self, batches: DropBatches) -> None:
        with self._lock:
            if self._closed:
                raise ClosedError("hot tier is closed")
            for table, rows in batches.items():
                t = self._tables.get(table)
                if t is None:
                    continue
                by_key: dict[bytes, set[int]] = {}
                for key, version in rows:
                    by_key.setdefault(bytes(key), set()).add(version)
                for key, versions in by_key.items():
                    self._remove_versions(t, key, lambda v, vs=versions: v not in vs)  # type: ignore[misc]

    def drop_through(self, table: EntryKind, keys: Iterable[bytes], watermark: int) -> int:
        """Remove every version <= ``watermark`` of ``keys`` (the upper copy after a flush).

        Equivalent to :meth:`drop` of exactly those versions, without building them: the
        common case (a single-version key, flushed) is one dict removal, and the counters
        are updated once per call. Returns how many of the keys replaced an older clean
        copy (keys flushed before: their older versions below may now be superseded).
        O(keys).
        """
        with self._lock:
            if self._closed:
                raise ClosedError("hot tier is closed")
            t = self._tables.get(table)
            if t is None:
                return 0
            chains = t.chains
            cget = chains.get
            keep = self.clean_budget > 0
            clean = t.clean
            keys = list(keys)
            fast = self._drop_flushed_fast(t, keys, watermark, keep)
            if fast is not None:
                return fast
            cpop = clean.pop
            gone: list[bytes] = []
            gone_vals: list[bytes | None] = []
            replaced = 0  # bytes of older clean copies replaced by newer ones
            rewrites = 0
            for key in keys:
                c = cget(key)
                if c is None:
                    continue
                if c.__class__ is tuple:
                    if c[0] <= watermark:  # type: ignore[index,operator]
                        del chains[key]
                        gone.append(key)
                        gone_vals.append(c[1])  # type: ignore[index]
                        if keep:
                            old = cpop(key, None)  # re-inserted: newest copies are evicted last
                            if old is not None:
                                rewrites += 1
                                replaced += _entry_size(key, old[1]) + _KEY_OVERHEAD
                            clean[key] = c  # type: ignore[assignment]
                    continue
                vs = c.versions  # type: ignore[union-attr]
                i = bisect_right(vs, watermark)
                if not i:
                    continue
                vals = c.values  # type: ignore[union-attr]
                t.bytes -= sum(_entry_size(key, v) for v in vals[:i])
                t.nversions -= i
                if i < len(vs):
                    chains[key] = _make(vs[i:], vals[i:])
                    # An older clean copy would now answer reads between it and the newer
                    # versions left here, hiding the versions just flushed: drop it.
                    old = cpop(key, None)
                    if old is not None:
                        rewrites += 1
                        replaced += _entry_size(key, old[1]) + _KEY_OVERHEAD
                else:
                    del chains[key]
                    t.bytes -= _KEY_OVERHEAD
                    t.forget(key)
                    if keep:
                        old = cpop(key, None)
                        if old is not None:
                            rewrites += 1
                            replaced += _entry_size(key, old[1]) + _KEY_OVERHEAD
                        clean[key] = (vs[-1], vals[-1])
                        t.clean_bytes += _entry_size(key, vals[-1]) + _KEY_OVERHEAD
            if gone:
                nb = (sum(map(len, gone)) + sum(map(len, filter(None, gone_vals)))
                      + len(gone) * (_VERSION_OVERHEAD + _KEY_OVERHEAD))
                t.bytes -= nb
                t.nversions -= len(gone)
                t.forget_many(gone)
                if keep:
                    t.clean_bytes += nb
            if keep:
                t.clean_bytes -= replaced
                self._evict_clean(t)
            return rewrites

    def _drop_flushed_fast(self, t: _Table, keys: list[bytes], watermark: int, keep: bool) -> int | None:
        """:meth:`drop_through` when every key is a single version <= ``watermark`` (a load
        being flushed), all in C; None (nothing done) otherwise. Under the lock."""
        chains, clean = t.chains, t.clean
        items = list(map(chains.get, keys))
        if not items or None in items or set(map(type, items)) != _TUPLE_ONLY \
                or max(map(_FIRST, items)) > watermark or len(set(keys)) != len(keys):
            return None
        deque(map(chains.pop, keys), 0)
        vals = list(map(_SECOND, items))
        nb = (sum(map(len, keys)) + sum(map(len, filter(None, vals)))
              + len(keys) * (_VERSION_OVERHEAD + _KEY_OVERHEAD))
        t.bytes -= nb
        t.nversions -= len(keys)
        t.forget_many(keys)
        if not keep:
            return 0
        olds = list(map(clean.pop, keys, repeat(None)))
        rewrites = len(olds) - olds.count(None)
        if rewrites:
            t.clean_bytes -= sum(_entry_size(k, o[1]) + _KEY_OVERHEAD
                                 for k, o in zip(keys, olds) if o is not None)
        clean.update(zip(keys, items))  # type: ignore[arg-type]
        t.clean_bytes += nb
        self._evict_clean(t)
        return rewrites

    def _evict_clean(self, t: _Table) -> None:
        """Drop the oldest clean copies until they fit ``clean_budget`` (under the lock)."""
        over = t.clean_bytes - self.clean_budget
        if over <= 0:
            return
        clean = t.clean
        # Evict in batches sized from the average entry (no Python call per key).
        avg = max(1, t.clean_bytes // max(1, len(clean)))
        while over > 0 and clean:
            doomed = list(islice(clean, over // avg + 1))  # insertion order: oldest first
            vals = [clean.pop(k)[1] for k in doomed]
            freed = (sum(map(len, doomed)) + sum(map(len, filter(None, vals)))
                     + len(doomed) * (_VERSION_OVERHEAD + _KEY_OVERHEAD))
            t.clean_bytes -= freed
            over -= freed

    def forget_clean(self, table: EntryKind | None = None) -> None:
        """Drop every clean copy (of ``table``, or of all tables). Call whenever a key's
        newest version may be removed from a lower tier (forced drops, erase). O(1)."""
        with self._lock:
            for name, t in self._tables.items():
                if table is None or name == table:
                    t.clean = {}
                    t.clean_bytes = 0

    # -- maintenance -------------------------------------------------------------------

    def check(self) -> None:
        with self._lock:
            for table, t in self._tables.items():
                keys = t.sorted_keys()
                if len(keys) - len(t.dead) != len(t.chains) or any(k in t.chains for k in t.dead):
                    raise CorruptionError(f"hot tier {table}: key index and chains disagree")
                nv = 0
                nbytes = 0
                for k in keys:
                    if k in t.dead:
                        continue
                    c = t.chains.get(k)
                    if c is None:
                        raise CorruptionError(f"hot tier {table}: key {k!r} indexed but missing")
                    if c.__class__ is not tuple:
                        if len(c.versions) < 2 or len(c.versions) != len(c.values):  # type: ignore[union-attr]
                            raise CorruptionError(f"hot tier {table}: bad chain for key {k!r}")
                        if c.latest != (c.versions[-1], c.values[-1]):  # type: ignore[union-attr]
                            raise CorruptionError(f"hot tier {table}: stale latest entry for key {k!r}")
                    vs, vals = _parts(c)
                    if any(a >= b for a, b in zip(vs, vs[1:])):
                        raise CorruptionError(f"hot tier {table}: versions of {k!r} not ascending")
                    nv += len(vs)
                    nbytes += _KEY_OVERHEAD + sum(_entry_size(k, v) for v in vals)
                if nv != t.nversions or nbytes != t.bytes:
                    raise CorruptionError(f"hot tier {table}: counters drifted")
                if t.clean_bytes != sum(_entry_size(k, v) + _KEY_OVERHEAD for k, (_, v) in t.clean.items()):
                    raise CorruptionError(f"hot tier {table}: clean-copy counter drifted")

    def stats(self) -> dict[str, Any]:
        tables = list(self._tables.values())
        return {
            "tier": "hot",
            "tables": len(tables),
            "keys": sum(len(t.chains) for t in tables),
            "versions": sum(t.nversions for t in tables),
            "bytes": sum(t.bytes for t in tables),
            "clean_keys": sum(len(t.clean) for t in tables),
            "clean_bytes": sum(t.clean_bytes for t in tables),
        }

    @property
    def bytes(self) -> int:
        """Approximate resident bytes (keys, values and per-version overhead). O(tables)."""
        return sum(t.bytes for t in self._tables.values())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._tables.clear()
            self._last = _NO_TABLE
