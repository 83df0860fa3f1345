"""Range scans of the warm tier: bounded iterator pages that keep the newest visible version
of each key, and the maintenance walk over every stored version.

Forward pages (the store's common scan) filter and decode rows a chunk at a time with
C-level list operations (:func:`scan_fwd`, :func:`decode_rows`); reverse pages walk rows
one by one (a key's versions arrive oldest first there).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from itertools import chain
from typing import Any

import rocksdict

from ...errors import ClosedError
from ...types import (
    MAX_VERSION,
    Bound,
    EntryKind,
    RangeBatch,
    RangeCursor,
    RawEntry,
    as_bytes,
    check_version,
)
from ..base import DEFAULT_BATCH_SIZE, finish_page
from .db import WarmDB, verify_stop
from .format import (
    ESCAPED_NUL,
    ITER_CHUNK,
    NUL,
    PAST_VERSIONS,
    TERMINATOR,
    decode_key,
    decode_value,
    key_prefix,
    pack_inv,
)
from .rows import decode_items, decode_pairs, decode_rows, select_fwd, select_rev

_from_bytes = int.from_bytes
_raw_entry = RawEntry


def scan_fwd(cf: Any, lo: bytes | None, hi: bytes | None, inv_read: bytes, batch_size: int,
             table: EntryKind) -> tuple[list[RawEntry], bool]:
    """Up to ``batch_size`` keys ascending from ``lo`` (< ``hi``) at their newest version whose
    ``~version`` is >= ``inv_read``, and whether another such key follows."""
    eks, sfx, vs = select_fwd(cf, lo, hi, inv_read, batch_size + 1)  # one more: exact has_more
    if len(eks) > batch_size:
        return decode_rows(eks[:batch_size], sfx[:batch_size], vs[:batch_size], table), True
    return decode_rows(eks, sfx, vs, table), False


def scan_rev(cf: Any, lo: bytes | None, hi: bytes | None, inv_read: bytes, batch_size: int,
             table: EntryKind) -> tuple[list[RawEntry], bool]:
    """As :func:`scan_fwd`, descending from ``hi`` (exclusive) to ``lo``."""
    eks, sfx, vs = select_rev(cf, lo, hi, inv_read, batch_size + 1)
    if len(eks) > batch_size:
        return decode_rows(eks[:batch_size], sfx[:batch_size], vs[:batch_size], table), True
    return decode_rows(eks, sfx, vs, table), False


def pairs_fwd(cf: Any, lo: bytes | None, hi: bytes | None, inv_read: bytes, batch_size: int,
              table: EntryKind) -> tuple[list[tuple[bytes, bytes | None]], bool]:
    """As :func:`scan_fwd`, rows as ``(key, value or None)`` pairs."""
    eks, _, vs = select_fwd(cf, lo, hi, inv_read, batch_size + 1, suffixes=False)
    if len(eks) > batch_size:
        return decode_pairs(eks[:batch_size], vs[:batch_size], table), True
    return decode_pairs(eks, vs, table), False


def pairs_rev(cf: Any, lo: bytes | None, hi: bytes | None, inv_read: bytes, batch_size: int,
              table: EntryKind) -> tuple[list[tuple[bytes, bytes | None]], bool]:
    """As :func:`scan_rev`, rows as ``(key, value or None)`` pairs."""
    eks, _, vs = select_rev(cf, lo, hi, inv_read, batch_size + 1)
    if len(eks) > batch_size:
        return decode_pairs(eks[:batch_size], vs[:batch_size], table), True
    return decode_pairs(eks, vs, table), False


class RangeScans(WarmDB):
    """``range_next``, ``range_rev_next``, ``scan_items`` and ``iter_versions``."""

    # -- ranges ------------------------------------------------------------------------------

    @staticmethod
    def _low(start: Bound, cursor: RangeCursor, reverse: bool) -> bytes | None:
        if not reverse and cursor.last_key is not None:
            return cursor.last_key.replace(NUL, ESCAPED_NUL) + PAST_VERSIONS
        if start.key is None:
            return None
        return start.key.replace(NUL, ESCAPED_NUL) + (TERMINATOR if start.inclusive else PAST_VERSIONS)

    @staticmethod
    def _high(end: Bound, cursor: RangeCursor, reverse: bool) -> bytes | None:
        if reverse and cursor.last_key is not None:
            return cursor.last_key.replace(NUL, ESCAPED_NUL) + TERMINATOR
        if end.key is None:
            return None
        return end.key.replace(NUL, ESCAPED_NUL) + (PAST_VERSIONS if end.inclusive else TERMINATOR)

    def _page(
        self,
        table: EntryKind,
        cursor: RangeCursor,
        start: Bound,
        end: Bound,
        version: int,
        batch_size: int,
        reverse: bool,
        pairs: bool = False,
    ) -> RangeBatch:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        cf = self._cfs.get(table)  # raises ClosedError after close
        if cursor.exhausted:
            return RangeBatch.empty()
        if cf is None:
            check_version(version)  # bad input raises even for a missing table
            cursor.exhausted = True
            return RangeBatch.empty()
        try:
            inv_read = pack_inv(MAX_VERSION - version)
        except (struct.error, TypeError):
            check_version(version)
            raise
        lo = self._low(start, cursor, reverse)
        hi = self._high(end, cursor, reverse)
        if lo is not None and hi is not None and lo >= hi:
            out: list[Any] = []
            has_more = False
        else:
            try:
                if pairs:
                    out, has_more = (pairs_rev if reverse else pairs_fwd)(cf, lo, hi, inv_read, batch_size, table)
                elif reverse:
                    out, has_more = self._scan_rev(cf, lo, hi, inv_read, batch_size, table)
                else:
                    out, has_more = self._scan_fwd(cf, lo, hi, inv_read, batch_size, table)
            except rocksdict.DbClosedError as e:
                raise ClosedError(f"warm tier {self.path} is closed") from e
        return finish_page(cursor, out, has_more)

    _scan_fwd = staticmethod(scan_fwd)

    _scan_rev = staticmethod(scan_rev)

    def range_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                   version: int, batch_size: int) -> RangeBatch:
        """Next <= ``batch_size`` keys ascending at their newest version <= ``version``.

        One bounded iterator per page; O(log n + batch + skipped versions).
        """
        return self._page(table, cursor, start, end, version, batch_size, False)

    def range_rev_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                       version: int, batch_size: int) -> RangeBatch:
        """As :meth:`range_next`, in descending key order."""
        return self._page(table, cursor, start, end, version, batch_size, True)

    def range_pairs_next(self, table: EntryKind, cursor: RangeCursor, start: Bound, end: Bound,
                         version: int, batch_size: int, reverse: bool = False) -> RangeBatch:
        """As :meth:`range_next` (or :meth:`range_rev_next`), the page's entries as
        ``(key, value or None)`` pairs: no :class:`RawEntry` and no version decoding (a
        merged scan's rows, bench_peers "scan old")."""
        return self._page(table, cursor, start, end, version, batch_size, reverse, True)

    def scan_items(self, table: EntryKind, start: Bound, end: Bound, version: int, *,
                   reverse: bool = False, page: int = DEFAULT_BATCH_SIZE) -> Iterator[tuple[bytes, bytes]]:
        """Row by row, what :meth:`scan_item_pages` returns a page at a time."""
        return chain.from_iterable(self.scan_item_pages(table, start, end, version, reverse=reverse,
                                                        page=page))

    def scan_item_pages(self, table: EntryKind, start: Bound, end: Bound, version: int, *,
                        reverse: bool = False, page: int = DEFAULT_BATCH_SIZE
                        ) -> Iterator[list[tuple[bytes, bytes]]]:
        """``(key, value)`` of every key in ``start..end`` whose newest version <= ``version``
        holds a value (tombstoned keys left out), ascending (descending if ``reverse``).

        The scan fast path for a caller that reads this tier alone (e.g. a store whose only
        tier is warm): no :class:`RawEntry` and no version decoding per row. Pages of ``page``
        keys through short-lived iterators (none is held across a ``yield``), so, like
        :meth:`iter_versions`, the walk is not one snapshot against concurrent writes; each
        page is. Arguments are checked when called. O(log n + rows) per page.

        Raises:
            InvalidKeyError / InvalidVersionError: bad ``version``; ValueError: ``page`` < 1.
            ClosedError: the tier is (or gets) closed.
        """
        if page < 1:
            raise ValueError(f"page must be >= 1, got {page}")
        self._cfs.get(table)  # raises ClosedError after close
        try:
            inv_read = pack_inv(MAX_VERSION - version)
        except (struct.error, TypeError):
            check_version(version)
            raise
        lo = self._low(start, RangeCursor(), reverse)
        hi = self._high(end, RangeCursor(), reverse)
        if reverse:
            return self._items_rev(table, lo, hi, inv_read, page)
        return self._items_fwd(table, lo, hi, inv_read, page)

    def _items_fwd(self, table: EntryKind, lo: bytes | None, hi: bytes | None, inv_read: bytes,
                   page: int) -> Iterator[list[tuple[bytes, bytes]]]:
        while lo is None or hi is None or lo < hi:
            cf = self._cfs.get(table)
            if cf is None:
                return
            try:
                eks, _, vs = select_fwd(cf, lo, hi, inv_read, page, True, suffixes=False)
            except rocksdict.DbClosedError as e:
                raise ClosedError(f"warm tier {self.path} is closed") from e
            if eks:
                lo = eks[-1] + PAST_VERSIONS  # the escaped key: past every version of it
            items = decode_items(eks, vs, table)
            if items:
                yield items
            if len(eks) < page:
                return

    def _items_rev(self, table: EntryKind, lo: bytes | None, hi: bytes | None, inv_read: bytes,
                   page: int) -> Iterator[list[tuple[bytes, bytes]]]:
        while lo is None or hi is None or lo < hi:
            cf = self._cfs.get(table)
            if cf is None:
                return
            try:
                eks, _, vs = select_rev(cf, lo, hi, inv_read, page, True)
            except rocksdict.DbClosedError as e:
                raise ClosedError(f"warm tier {self.path} is closed") from e
            if eks:
                hi = eks[-1] + TERMINATOR  # the escaped key: below every version of it
            items = decode_items(eks, vs, table)
            if items:
                yield items
            if len(eks) < page:
                return

    # -- maintenance -------------------------------------------------------------------------

    def iter_versions(self, table: EntryKind, start: bytes | None = None) -> Iterator[RawEntry]:
        """Every stored version of ``table``, key ascending, version descending, from ``start``.

        Pages through short-lived iterators (none is held across a ``yield``), so it is not a
        consistent snapshot against concurrent writes. O(n) over the whole walk.
        """
        cf = self._cfs.get(table)
        if cf is None:
            return
        from_key: bytes | None = key_prefix(as_bytes(start)) if start is not None else None
        where = f"table {table}"
        ro = rocksdict.ReadOptions()
        while True:
            rows: list[RawEntry] = []
            last = None
            for k, v in cf.items(from_key=from_key, read_opt=ro):
                ek, ver = decode_key(k)
                rows.append(_raw_entry(ek, ver, decode_value(v, where)))
                last = k
                if len(rows) == ITER_CHUNK:
                    break
            if len(rows) < ITER_CHUNK:
                verify_stop(cf, ro, last if last is not None else from_key, last is not None, self.path)
            if last is None:
                return
            yield from rows
            if len(rows) < ITER_CHUNK:
                return
            from_key = last + NUL  # the smallest key after `last`
            cf = self._cfs.get(table)
            if cf is None:
                return
