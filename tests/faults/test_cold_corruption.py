"""Corruption of cold-tier files: every damaged byte is reported, never answered.

For a small segment file, the manifest and a drop file, EVERY byte is flipped in turn (the
tier closed, the file patched, the tier reopened). Opening, each read, and ``check()`` must
either give exactly the right answer or raise :class:`CorruptionError` naming the damaged
file and an offset at or before the flipped byte; ``check()`` must always raise; no other
exception type may escape. A large segment gets random flips; truncations of every file kind
are refused at open.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from engine.errors import CorruptionError
from engine.tiers import ColdTier
from engine.types import Bound, EntryKind, RangeCursor

T = EntryKind.MULTI
S1 = EntryKind.source(1)
U = Bound.UNBOUNDED
TOP = (1 << 64) - 1


def _build_small(path: Path) -> dict:
    """A one-segment tier: two tables, several blocks, multi-version keys, tombstones."""
    with ColdTier(path, block_size=256, compact_trigger=None, dictionary=False) as t:
        t.write_entries({
            T: [e for i in range(12) for e in _versions(i)],
            S1: [_entry(b"s%02d" % i, 3, b"src-%d" % i) for i in range(6)],
        })
        expect = _snapshot(t)
        seg = t._state.segments[0].path
    return {"expect": expect, "segment": seg}


def _entry(k, v, val):
    from engine.types import RawEntry

    return RawEntry(k, v, val)


def _versions(i: int):
    k = b"key-%02d" % i
    return [_entry(k, 10 + i, b"value-%d-new" % i * 3), _entry(k, 5, None if i % 4 == 0 else b"old%d" % i),
            _entry(k, 1, b"")]


READS = [0, 1, 5, 7, 12, 30, TOP]


def _probes(t: ColdTier):
    """Every read the checks perform, as (name, thunk) pairs."""
    out = []
    for table, keys in ((T, [b"key-%02d" % i for i in range(12)] + [b"nope"]),
                        (S1, [b"s%02d" % i for i in range(6)])):
        for k in keys:
            for v in READS:
                out.append((("lookup", table, k, v), lambda k=k, v=v, table=table: t.lookup(table, k, v)))
            out.append((("versions", table, k), lambda k=k, table=table: t.get_all_versions(table, k)))
        for v in (5, TOP):
            for rev in (False, True):
                out.append((("scan", table, v, rev), lambda v=v, rev=rev, table=table: _scan(t, table, v, rev)))
        out.append((("iter", table), lambda table=table: list(t.iter_versions(table))))
    return out


def _scan(t, table, version, reverse):
    cur = RangeCursor()
    fn = t.range_rev_next if reverse else t.range_next
    out = []
    while True:
        b = fn(table, cur, U, U, version, 4)
        out.extend(b.entries)
        if not b.has_more:
            return out


def _snapshot(t: ColdTier) -> dict:
    return {name: thunk() for name, thunk in _probes(t)}


def _assert_names(err: CorruptionError, path: Path, pos: int | None) -> None:
    assert Path(str(err.path)) == path, (err.path, path, err)
    if pos is not None:
        assert err.offset is not None and 0 <= err.offset <= pos, (err.offset, pos, err)


def _exercise(tier_path: Path, damaged: Path, pos: int | None, expect: dict) -> None:
    """Open, read everything, check: right answers or CorruptionError; check() must raise."""
    try:
        t = ColdTier(tier_path)
    except CorruptionError as err:
        _assert_names(err, damaged, pos)
        return
    try:
        for name, thunk in _probes(t):
            try:
                got = thunk()
            except CorruptionError as err:
                _assert_names(err, damaged, pos)
            else:
                assert got == expect[name], (name, pos)
        with pytest.raises(CorruptionError) as ei:
            t.check()
        _assert_names(ei.value, damaged, pos)
    finally:
        t.close()


def _flip_each_byte(tier_path: Path, target: Path, expect: dict, positions=None) -> int:
    original = target.read_bytes()
    n = 0
    try:
        for pos in positions if positions is not None else range(len(original)):
            data = bytearray(original)
            data[pos] ^= 0xFF if pos % 2 else 0x01
            target.write_bytes(bytes(data))
            _exercise(tier_path, target, pos, expect)
            n += 1
    finally:
        target.write_bytes(original)
    return n


def test_flip_every_byte_of_a_small_segment(tmp_path):
    p = tmp_path / "cold"
    built = _build_small(p)
    seg = built["segment"]
    size = seg.stat().st_size
    assert 700 < size < 4000, size  # small enough to flip every byte, several blocks
    assert _flip_each_byte(p, seg, built["expect"]) == size
    with ColdTier(p) as t:  # restored: healthy again
        t.check()
        assert _snapshot(t) == built["expect"]


def test_flip_every_byte_of_the_manifest(tmp_path):
    p = tmp_path / "cold"
    built = _build_small(p)
    man = p / "MANIFEST"
    assert _flip_each_byte(p, man, built["expect"]) == man.stat().st_size


def test_flip_every_byte_of_a_drop_file(tmp_path):
    p = tmp_path / "cold"
    built = _build_small(p)
    with ColdTier(p, compact_trigger=None) as t:
        t.drop({T: [(b"key-03", 13), (b"key-04", 5)]})
        expect = _snapshot(t)
        dropfile = p / f"{t._state.drop_files[0]:012d}.drop"
    assert built["expect"] != expect
    assert _flip_each_byte(p, dropfile, expect) == dropfile.stat().st_size


def test_random_flips_over_a_large_segment(tmp_path):
    p = tmp_path / "cold"
    rng = random.Random(7)
    rows = [(b"user:%08d" % i, b'{"id":%d,"v":"%s"}' % (i, os.urandom(rng.randrange(5, 40)).hex().encode()))
            for i in range(40_000)]
    with ColdTier(p, block_size=8192, compact_trigger=None) as t:
        t.set(1, {T: rows})
        t.set(2, {T: [(k, None) for k, _ in rows[::97]]})
        t.compact(full=True)
        seg = t._state.segments[0].path
    original = seg.read_bytes()
    assert len(original) > 500_000
    sample = rng.sample(rows, 300)
    try:
        for _ in range(25):
            pos = rng.randrange(len(original))
            data = bytearray(original)
            data[pos] ^= 1 << rng.randrange(8)
            seg.write_bytes(bytes(data))
            try:
                t = ColdTier(p)
            except CorruptionError as err:
                _assert_names(err, seg, pos)
                continue
            try:
                for k, v in sample:
                    want = None if int(k[5:]) % 97 == 0 else v
                    try:
                        assert t.get(T, k, 1 if want is None else 2) == (v if want is None else want)
                    except CorruptionError as err:
                        _assert_names(err, seg, pos)
                with pytest.raises(CorruptionError) as ei:
                    t.check()
                _assert_names(ei.value, seg, pos)
            finally:
                t.close()
    finally:
        seg.write_bytes(original)
    with ColdTier(p) as t:
        t.check()


@pytest.mark.parametrize("which", ["segment", "manifest", "drop"])
def test_truncated_files_are_refused(tmp_path, which):
    p = tmp_path / "cold"
    _build_small(p)
    with ColdTier(p, compact_trigger=None) as t:
        t.drop({T: [(b"key-01", 11)]})
        target = {"segment": t._state.segments[0].path, "manifest": p / "MANIFEST",
                  "drop": p / f"{t._state.drop_files[0]:012d}.drop"}[which]
    original = target.read_bytes()
    for n in sorted({0, 1, 7, len(original) // 2, len(original) - 4, len(original) - 1}):
        target.write_bytes(original[:n])
        with pytest.raises(CorruptionError) as ei:
            ColdTier(p)
        assert Path(str(ei.value.path)) == target and ei.value.offset is not None
    target.write_bytes(original)
    with ColdTier(p) as t:
        t.check()


def test_missing_segment_is_refused(tmp_path):
    p = tmp_path / "cold"
    built = _build_small(p)
    os.unlink(built["segment"])
    with pytest.raises(CorruptionError) as ei:
        ColdTier(p)
    assert Path(str(ei.value.path)) == built["segment"]


def test_corruption_after_open_is_caught_by_reads_and_check(tmp_path):
    """A block damaged while the tier is open (and not cached) fails the read, not silently."""
    p = tmp_path / "cold"
    built = _build_small(p)
    seg = built["segment"]
    with ColdTier(p, cache_bytes=0) as t:
        data = bytearray(seg.read_bytes())
        data[40] ^= 0x55  # inside the first block's payload
        with open(seg, "r+b") as f:
            f.write(bytes(data))
        with pytest.raises(CorruptionError) as ei:
            t.get(T, b"key-00", TOP)
        _assert_names(ei.value, seg, 40)
        with pytest.raises(CorruptionError):
            t.check()
