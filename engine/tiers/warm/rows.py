"""Row-level work of warm range scans, done a chunk at a time with C-level list operations.

A Python loop over scan rows costs ~10 bytecodes per row (slice, compare, decode, build an
entry). Here every step is one pass over a whole chunk - ``map`` with ``itemgetter`` slices,
``compress``, ``set``/``dict`` for per-key de-duplication, one numpy pass for versions - so
no bytecode runs per row (bench_warm: scan).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import compress, count, islice, repeat
from operator import itemgetter, ne, not_
from typing import Any

import numpy as np

from ...types import EntryKind, RawEntry
from .db import upper_bound_ro, verify_stop
from .format import (
    ESCAPED_NUL,
    NUL,
    PAST_VERSIONS,
    SCAN_SKIP_LIMIT,
    SUFFIX_LEN,
    TAG_TOMBSTONE,
    TAG_VALUE,
    TERMINATOR,
    decode_value,
)

__all__ = ["decode_items", "decode_pairs", "decode_rows", "select_fwd", "select_rev"]

_version_of = itemgetter(slice(-8, None))  # physical key -> ~version
_escaped_key = itemgetter(slice(None, -SUFFIX_LEN))  # physical key -> escape(key)
_untag = itemgetter(slice(1, None))
_tag = itemgetter(slice(0, 1))
_first = itemgetter(0)
_second = itemgetter(1)
_tuple_new = tuple.__new__


def decode_rows(eks: list[bytes], sfx: list[bytes], vs: Sequence[bytes], table: EntryKind) -> list[RawEntry]:
    """One :class:`RawEntry` per row, from the rows' escaped keys, ``~version`` suffixes and
    tagged values, decoded column by column.

    Each column is one C-level pass (``map`` over ``itemgetter`` slices, one numpy pass for
    the versions, ``min``/``max`` to prove every tag is a value tag, one ``tuple.__new__`` per
    entry) instead of ~10 bytecodes per row (bench_warm: scan). O(rows).

    Raises:
        CorruptionError: a value with a bad tag.
    """
    n = len(eks)
    if not n:
        return []
    if 0 in b"".join(eks):  # some user key holds 00: unescape those
        eks = [k.replace(ESCAPED_NUL, NUL) if 0 in k else k for k in eks]
    versions = (~np.frombuffer(b"".join(sfx), dtype=">u8")).tolist()
    vals: list[bytes | None] = list(map(_untag, vs))
    # Every value starts with TAG_VALUE exactly when the smallest and largest both do.
    if min(vs)[:1] != TAG_VALUE or max(vs)[:1] != TAG_VALUE:
        for i in compress(count(), map(TAG_VALUE.__ne__, map(_tag, vs))):
            if vs[i] == TAG_TOMBSTONE:
                vals[i] = None
            else:
                decode_value(vs[i], f"table {table} key {eks[i]!r}")  # raises: a bad tag
    return list(map(_tuple_new, repeat(RawEntry, n), zip(eks, versions, vals)))


def _live(ks: list[bytes], ss: list[bytes] | None,
          vs: list[bytes]) -> tuple[list[bytes], list[bytes] | None, list[bytes]]:
    """The rows of ``ks``/``ss``/``vs`` whose tagged value is not a tombstone (``ss`` None:
    no suffixes kept). O(rows) in C."""
    if TAG_TOMBSTONE not in vs:
        return ks, ss, vs
    keep = list(map(TAG_TOMBSTONE.__ne__, vs))
    return (list(compress(ks, keep)), None if ss is None else list(compress(ss, keep)),
            list(compress(vs, keep)))


def select_fwd(cf: Any, lo: bytes | None, hi: bytes | None, inv_read: bytes,
               want: int, live_only: bool = False,
               suffixes: bool = True) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """The first ``want`` keys ascending from ``lo`` (< ``hi``) at their newest version whose
    ``~version`` is >= ``inv_read``: their escaped keys, ``~version`` suffixes and tagged values.
    With ``live_only``, keys whose newest visible version is a tombstone are left out and do
    not count toward ``want`` (a caller that returns only live rows then reads one page, not
    a second one for the rows the tombstones took). Without ``suffixes`` the second list
    comes back empty (a caller that needs no versions saves a pass per chunk).

    Rows come from one bounded iterator in chunks (``islice``), and each chunk is filtered by
    whole-list C-level operations, no bytecode per row: keep the visible rows (``compress``),
    then each key's first of them (a key's versions are contiguous and newest first, so its
    visible ones are too: a row is a key's first when its key differs from the row before);
    a chunk of distinct, visible keys - one version per key, the usual warm shape - is taken
    whole. A chunk that ends in a run of more than ``SCAN_SKIP_LIMIT`` rows of one key is
    jumped over with a seek. O(log n + want + skipped versions).
    """
    ro = upper_bound_ro(hi)
    sel_k: list[bytes] = []  # escaped keys of the rows taken
    sel_s: list[bytes] = []  # their ~version suffixes
    sel_v: list[bytes] = []  # their tagged values
    last_vk: bytes | None = None  # escaped key of the last visible row read (it was taken)
    from_key = lo
    while True:
        it = cf.items(from_key=from_key, read_opt=ro)
        reseek = None
        rows_per_key = 1.0  # rows read per key taken so far: sizes the next chunk
        last_raw: bytes | None = None
        while len(sel_k) < want:
            taken = len(sel_k)
            rows = list(islice(it, int((want - taken) * rows_per_key) + SCAN_SKIP_LIMIT))
            if not rows:  # the end of the range, or a block RocksDB could not read
                verify_stop(cf, ro, last_raw if last_raw is not None else from_key,
                            last_raw is not None, None)
                break
            # Two itemgetter passes, not zip(*rows): zip's argument iterators are GC-tracked
            # objects, and the collections they triggered tripled the cost of the split.
            ks = list(map(_first, rows))
            last_raw = ks[-1]
            vs = list(map(_second, rows))
            ss = list(map(_version_of, ks))
            if min(ss) >= inv_read:  # every row visible
                vks, vss, vvs = ks, ss, vs
            else:  # keys are cut from the visible rows only (half the rows at an old version)
                vis = list(map(inv_read.__le__, ss))
                vks = list(compress(ks, vis))
                vss = list(compress(ss, vis)) if suffixes else ss
                vvs = list(compress(vs, vis))
            if vks:
                vps = list(map(_escaped_key, vks))
                # A key's visible versions are contiguous, newest first: take each key's first,
                # i.e. every visible row whose key differs from the visible row before it.
                if vps[0] != last_vk and len(set(vps)) == len(vps):
                    tk, ts, tv = vps, vss, vvs
                else:
                    prev = [last_vk]
                    prev += vps
                    new = list(map(ne, vps, prev))
                    tk, tv = list(compress(vps, new)), list(compress(vvs, new))
                    ts = list(compress(vss, new)) if suffixes else vss
                if live_only:
                    tk, lts, tv = _live(tk, ts if suffixes else None, tv)
                    ts = lts if lts is not None else ts
                sel_k += tk
                if suffixes:
                    sel_s += ts
                sel_v += tv
                last_vk = vps[-1]
            rows_per_key = min(len(rows) / max(len(sel_k) - taken, 1), 4.0)
            if len(ks) > SCAN_SKIP_LIMIT:
                run_key = _escaped_key(ks[-1])
                if _escaped_key(ks[-1 - SCAN_SKIP_LIMIT]) == run_key:
                    # A long run of one key: if its last row read is visible, the key was
                    # taken (jump past it); else jump to its newest visible version.
                    reseek = run_key + (PAST_VERSIONS if ss[-1] >= inv_read else TERMINATOR + inv_read)
                    break
        if reseek is None or len(sel_k) >= want:
            break
        from_key = reseek
    if len(sel_k) > want:
        return sel_k[:want], sel_s[:want], sel_v[:want]
    return sel_k, sel_s, sel_v


def decode_items(eks: list[bytes], vs: Sequence[bytes], table: EntryKind) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` of every row that holds a value (tombstones left out), from escaped keys
    and tagged values; no :class:`RawEntry`, no version decoding. O(rows).

    Raises:
        CorruptionError: a value with a bad tag.
    """
    if not eks:
        return []
    if 0 in b"".join(eks):
        eks = [k.replace(ESCAPED_NUL, NUL) if 0 in k else k for k in eks]
    if min(vs)[:1] == TAG_VALUE and max(vs)[:1] == TAG_VALUE:
        return list(zip(eks, map(_untag, vs)))
    live = list(map(TAG_VALUE.__eq__, map(_tag, vs)))
    for i in compress(count(), map(not_, live)):
        if vs[i] != TAG_TOMBSTONE:  # a tombstone is left out; anything else is corrupt
            decode_value(vs[i], f"table {table} key {eks[i]!r}")  # raises
    return list(zip(compress(eks, live), map(_untag, compress(vs, live))))


def decode_pairs(eks: list[bytes], vs: Sequence[bytes], table: EntryKind) -> list[tuple[bytes, bytes | None]]:
    """``(key, value or None)`` of every row (None for a tombstone), from escaped keys and
    tagged values: a merged scan's row without a :class:`RawEntry` or a decoded version.
    O(rows), in C but for tombstones.

    Raises:
        CorruptionError: a value with a bad tag.
    """
    if not eks:
        return []
    if 0 in b"".join(eks):
        eks = [k.replace(ESCAPED_NUL, NUL) if 0 in k else k for k in eks]
    vals: list[bytes | None] = list(map(_untag, vs))
    if min(vs)[:1] != TAG_VALUE or max(vs)[:1] != TAG_VALUE:
        for i in compress(count(), map(TAG_VALUE.__ne__, map(_tag, vs))):
            if vs[i] == TAG_TOMBSTONE:
                vals[i] = None
            else:
                decode_value(vs[i], f"table {table} key {eks[i]!r}")  # raises: a bad tag
    return list(zip(eks, vals))


def select_rev(cf: Any, lo: bytes | None, hi: bytes | None, inv_read: bytes,
               want: int, live_only: bool = False) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """As :func:`select_fwd`, descending from ``hi`` (exclusive) down to ``lo`` (inclusive).

    Walking backwards, a key's versions arrive oldest first, so its visible ones come first
    and its answer is the *last* visible row of the key: a visible row is kept when the next
    visible row has another key. The last visible row of a chunk waits for the next chunk
    (its key may go on there). ``lo`` is checked by key comparison (rocksdict's lower-bound
    option sets the upper bound). A chunk ending in a run of more than ``SCAN_SKIP_LIMIT``
    rows of one key takes that key's answer with one bounded forward seek and jumps below
    the key. O(log n + want + skipped versions).
    """
    ro = upper_bound_ro(hi)
    sel_k: list[bytes] = []
    sel_s: list[bytes] = []
    sel_v: list[bytes] = []
    pend: tuple[bytes, bytes, bytes] | None = None  # the last visible row read, not yet taken
    from_key = hi
    done = False
    while not done:
        it = cf.items(backwards=True, from_key=from_key, read_opt=ro)
        rows_per_key = 1.0
        last_raw: bytes | None = None
        while len(sel_k) < want:
            taken = len(sel_k)
            rows = list(islice(it, int((want - taken) * rows_per_key) + SCAN_SKIP_LIMIT))
            if not rows:  # the start of the table, or a block RocksDB could not read
                verify_stop(cf, ro, last_raw if last_raw is not None else from_key,
                            last_raw is not None, None, reverse=True)
                done = True
                break
            ks = list(map(_first, rows))
            last_raw = ks[-1]
            if lo is not None and ks[-1] < lo:  # the range ends in this chunk
                done = True
                del ks[sum(map(lo.__le__, ks)):]  # descending: the rows >= lo are a prefix
                if not ks:
                    break
            vs = list(map(_second, rows[:len(ks)]))
            ps = list(map(_escaped_key, ks))
            ss = list(map(_version_of, ks))
            if min(ss) >= inv_read:
                vps, vss, vvs = ps, ss, vs
            else:
                vis = list(map(inv_read.__le__, ss))
                vps = list(compress(ps, vis))
                vss = list(compress(ss, vis))
                vvs = list(compress(vs, vis))
            if pend is not None:
                vps.insert(0, pend[0])
                vss.insert(0, pend[1])
                vvs.insert(0, pend[2])
                pend = None
            if vps:
                last = list(map(ne, vps, vps[1:]))  # row i is its key's last visible row
                tk, ts, tv = list(compress(vps, last)), list(compress(vss, last)), list(compress(vvs, last))
                if live_only:
                    tk, lts, tv = _live(tk, ts, tv)
                    ts = lts if lts is not None else ts
                sel_k += tk
                sel_s += ts
                sel_v += tv
                pend = (vps[-1], vss[-1], vvs[-1])
            rows_per_key = min(len(ks) / max(len(sel_k) - taken, 1), 4.0)
            if done:
                break
            if len(ps) > SCAN_SKIP_LIMIT and ps[-1 - SCAN_SKIP_LIMIT] == ps[-1]:
                # A long run of one key: take its answer with a bounded forward seek to its
                # newest visible version, then go on below the key.
                key = ps[-1]
                if pend is not None and pend[0] == key:
                    pend = None
                for k, v in cf.items(from_key=key + TERMINATOR + inv_read,
                                     read_opt=upper_bound_ro(key + PAST_VERSIONS)):
                    if not (live_only and v == TAG_TOMBSTONE):
                        sel_k.append(key)
                        sel_s.append(k[-8:])
                        sel_v.append(v)
                    break
                from_key = key + TERMINATOR  # seek_for_prev lands on the key below
                break
        else:
            break  # want reached
        if len(sel_k) >= want:
            break
    if pend is not None and len(sel_k) < want and not (live_only and pend[2] == TAG_TOMBSTONE):
        sel_k.append(pend[0])
        sel_s.append(pend[1])
        sel_v.append(pend[2])
    if len(sel_k) > want:
        return sel_k[:want], sel_s[:want], sel_v[:want]
    return sel_k, sel_s, sel_v
