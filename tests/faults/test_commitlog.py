"""Commit-log faults: damaged records, torn tails and failing writes (DESIGN.md invariants 6, 7).

The store under test is the durable hot + commit log layout (``layout="memory"`` with a
path). Faults are made by editing the log files on disk between runs, or by patching
``os.write`` / ``os.ftruncate`` inside ``engine.mvcc.commitlog`` (fault injection is the
only thing mocked here).
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import zlib
from pathlib import Path
from unittest import mock

import pytest

import engine
from engine import EntryKind
from engine.errors import CorruptionError, StorageIOError
from engine.mvcc import commitlog
from engine.mvcc.commitlog import LOG_HEADER, REC_HEADER

T = EntryKind.MULTI
U = EntryKind.operator(5)


def commit_n(store, n, start=1):
    """Commit ``n`` transactions; commit v writes k<v>, u<v> (table U) and 'last' = v."""
    for v in range(start, start + n):
        with store.begin() as tx:
            tx.set(T, b"k%d" % v, b"value-%d" % v * 3)
            tx.set(U, b"u%d" % v, b"%d" % v)
            tx.set(T, b"last", b"%d" % v)
            if v > 1:
                tx.remove(T, b"k%d" % (v - 1))
        assert tx.version == v


def assert_commits(store, n):
    """Exactly commits 1..n are present, each in full, at their versions."""
    assert store.version == n
    for v in range(1, n + 1):
        assert store.get(T, b"k%d" % v, version=v) == b"value-%d" % v * 3
        assert store.get(U, b"u%d" % v, version=v) == b"%d" % v
        assert store.get(T, b"last", version=v) == b"%d" % v
        if v > 1:
            assert store.get(T, b"k%d" % (v - 1), version=v) is None
    assert store.get(T, b"k%d" % (n + 1)) is None
    assert store.get(U, b"u%d" % (n + 1)) is None
    assert [k for k, _ in store.range(U)] == sorted(b"u%d" % v for v in range(1, n + 1))
    assert store.check()["ok"]


def log_files(path: Path) -> list[Path]:
    return sorted((path / "log").glob("commit-*.log"))


def records(f: Path) -> list[tuple[int, int]]:
    """(offset, total length) of every record in a log file, parsed independently."""
    data = f.read_bytes()
    out = []
    pos = LOG_HEADER.size
    while pos < len(data):
        length, crc = REC_HEADER.unpack_from(data, pos)
        end = pos + REC_HEADER.size + length
        assert end <= len(data)
        assert zlib.crc32(data[pos + REC_HEADER.size:end]) == crc
        out.append((pos, end - pos))
        pos = end
    return out


def flip(f: Path, offset: int, mask: int = 0xFF) -> None:
    data = bytearray(f.read_bytes())
    data[offset] ^= mask
    f.write_bytes(bytes(data))


@pytest.fixture
def pristine(tmp_path):
    """A closed durable store with 12 commits in one log file."""
    path = tmp_path / "pristine"
    s = engine.open(path, layout="memory")
    commit_n(s, 12)
    s.close()
    return path


def clone(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


# -- damaged records ---------------------------------------------------------------------------


def _offsets_in_record(off, length):
    """Positions to damage: every header byte and a spread of payload bytes."""
    picks = set(range(off, off + REC_HEADER.size))
    picks.update(off + REC_HEADER.size + d for d in (0, 1, 8, 16, 19, 20, length // 2 - 8))
    picks.add(off + length - 1)
    return sorted(p for p in picks if off <= p < off + length)


@pytest.mark.parametrize("index", [0, 5, 10])  # first, middle, second to last of 12
def test_damaged_middle_record_raises_corruption_naming_file_and_offset(pristine, tmp_path, index):
    f0 = log_files(pristine)[0]
    recs = records(f0)
    assert len(recs) == 12
    off, length = recs[index]
    for i, pos in enumerate(_offsets_in_record(off, length)):
        for mask in (0x01, 0x80):
            path = clone(pristine, tmp_path / f"c{i}-{mask}")
            f = log_files(path)[0]
            flip(f, pos, mask)
            damaged = f.read_bytes()
            with pytest.raises(CorruptionError) as ei:
                engine.open(path)
            err = ei.value
            assert Path(err.path) == f, (pos, mask)
            assert err.offset == off, (pos, mask)
            assert str(f) in str(err) and f"offset {off}" in str(err)
            assert f.read_bytes() == damaged, "a failed open must not modify the log"
            shutil.rmtree(path)


def test_damaged_file_header_raises_corruption(pristine, tmp_path):
    for pos in (0, 7, 8, 12, 15):
        path = clone(pristine, tmp_path / f"h{pos}")
        f = log_files(path)[0]
        flip(f, pos, 0x10)
        with pytest.raises(CorruptionError) as ei:
            engine.open(path)
        assert Path(ei.value.path) == f and ei.value.offset == 0


def test_repaired_byte_opens_with_everything(pristine, tmp_path):
    path = clone(pristine, tmp_path / "c")
    f = log_files(path)[0]
    off, _ = records(f)[6]
    flip(f, off + 12)
    with pytest.raises(CorruptionError):
        engine.open(path)
    flip(f, off + 12)  # undo the damage: nothing was lost by the failed open
    s = engine.open(path)
    assert_commits(s, 12)
    assert s.recovery["torn_tail"] is None
    s.close()


@pytest.fixture
def rotated(tmp_path, monkeypatch):
    """A closed store whose log spans several files (rotation forced by a tiny threshold)."""
    monkeypatch.setattr(commitlog, "ROTATE_BYTES", 600)
    path = tmp_path / "rotated"
    s = engine.open(path, layout="memory")
    commit_n(s, 30)
    s.close()
    files = log_files(path)
    assert len(files) >= 4
    return path


def test_damage_at_the_end_of_an_older_file_is_corruption_not_a_torn_tail(rotated, tmp_path):
    files = log_files(rotated)
    for which in (0, len(files) - 2):
        path = clone(rotated, tmp_path / f"r{which}")
        f = log_files(path)[which]
        off, length = records(f)[-1]
        flip(f, off + length - 1)
        with pytest.raises(CorruptionError) as ei:
            engine.open(path)
        assert Path(ei.value.path) == f and ei.value.offset == off
        # a cut, too
        path = clone(rotated, tmp_path / f"t{which}")
        f = log_files(path)[which]
        os.truncate(f, off + 3)
        with pytest.raises(CorruptionError) as ei:
            engine.open(path)
        assert Path(ei.value.path) == f and ei.value.offset == off


def test_rotated_log_recovers_in_order(rotated, monkeypatch):
    s = engine.open(rotated)
    assert_commits(s, 30)
    commit_n(s, 5, start=31)
    s.close()
    s = engine.open(rotated)
    assert_commits(s, 35)
    s.close()


# -- torn tails --------------------------------------------------------------------------------


def _check_torn_recovery(path: Path, cut_offset: int, n_before: int) -> None:
    s = engine.open(path)
    try:
        torn = s.recovery["torn_tail"]
        assert torn is not None
        assert Path(torn["file"]) == log_files(path)[-1]
        assert torn["offset"] == cut_offset
        assert s.recovery["records"] == n_before
        assert_commits(s, n_before)
        commit_n(s, 3, start=n_before + 1)  # new commits land right above the recovered ones
        assert_commits(s, n_before + 3)
    finally:
        s.close()
    s = engine.open(path)
    try:
        assert s.recovery["torn_tail"] is None  # the tail was truncated, not left to rot
        assert_commits(s, n_before + 3)
    finally:
        s.close()


def test_truncated_tail_at_many_offsets_is_recovered(pristine, tmp_path):
    f0 = log_files(pristine)[0]
    off, length = records(f0)[-1]
    cuts = sorted(set(range(off + 1, off + REC_HEADER.size + 2)) | set(range(off + 1, off + length, 7))
                  | {off + length - 1})
    assert len(cuts) >= 20
    # a cut exactly at the record boundary leaves a clean (shorter) log, not a torn one
    path = clone(pristine, tmp_path / "boundary")
    os.truncate(log_files(path)[0], off)
    s = engine.open(path)
    assert s.recovery["torn_tail"] is None
    assert_commits(s, 11)
    s.close()
    for cut in cuts:
        path = clone(pristine, tmp_path / f"cut{cut}")
        os.truncate(log_files(path)[0], cut)
        _check_torn_recovery(path, off, 11)
        shutil.rmtree(path)


def test_damaged_last_record_is_a_torn_tail(pristine, tmp_path):
    f0 = log_files(pristine)[0]
    off, length = records(f0)[-1]
    for pos in (off + REC_HEADER.size, off + length - 1, off + 5):
        path = clone(pristine, tmp_path / f"d{pos}")
        flip(log_files(path)[0], pos)
        _check_torn_recovery(path, off, 11)


@pytest.mark.parametrize("garbage", [b"\x00" * 4096, b"\x00" * 3, b"\xff" * 100])
def test_garbage_after_the_last_record_is_a_torn_tail(pristine, tmp_path, garbage):
    path = clone(pristine, tmp_path / "g")
    f = log_files(path)[0]
    size = f.stat().st_size
    with open(f, "ab") as fh:
        fh.write(garbage)
    _check_torn_recovery(path, size, 12)


def test_torn_tail_in_the_newest_of_several_files(rotated, tmp_path):
    path = clone(rotated, tmp_path / "x")
    last = log_files(path)[-1]
    recs = records(last)
    assert recs
    n_lost = 1
    off, _ = recs[-1]
    os.truncate(last, off + 9)
    _check_torn_recovery(path, off, 30 - n_lost)


# -- failing writes ----------------------------------------------------------------------------


class FailingWrites:
    """Replacement for ``os.write`` in the commit log: fail the next writes with ``err``.

    ``partial``: let the first failing call write this many bytes (a short write) before the
    next call raises, as a disk filling up mid-record does.
    """

    def __init__(self, err: int, partial: int = 0, fail_truncate: bool = False) -> None:
        self.err = err
        self.partial = partial
        self.fail_truncate = fail_truncate
        self.calls = 0
        self.real_write = os.write
        self.real_ftruncate = os.ftruncate

    def write(self, fd, data):
        self.calls += 1
        if self.partial and self.calls == 1:
            return self.real_write(fd, bytes(data)[: self.partial])
        raise OSError(self.err, os.strerror(self.err))

    def ftruncate(self, fd, length):
        if self.fail_truncate:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return self.real_ftruncate(fd, length)

    def __enter__(self):
        self._patches = [mock.patch.object(commitlog.os, "write", self.write),
                         mock.patch.object(commitlog.os, "ftruncate", self.ftruncate)]
        for p in self._patches:
            p.start()
        return self

    def __exit__(self, *exc):
        for p in self._patches:
            p.stop()


def _failing_commit(store, fault):
    tx = store.begin()
    tx.set(T, b"doomed", b"x" * 300)
    tx.set(U, b"doomed", b"y")
    tx.set(T, b"last", b"doomed")
    with fault, pytest.raises(StorageIOError) as ei:
        tx.commit()
    assert isinstance(ei.value, OSError)
    assert ei.value.__cause__.errno == fault.err
    assert tx.closed
    return ei.value


def _assert_no_doomed(store):
    assert store.get(T, b"doomed") is None
    assert store.get(U, b"doomed") is None
    assert store.history(T, b"doomed") == []
    assert store.get(T, b"last") != b"doomed"


@pytest.mark.parametrize("err", [errno.EIO, errno.ENOSPC])
@pytest.mark.parametrize("partial", [0, 5, 100], ids=lambda p: f"partial{p}")
def test_failed_log_write_is_not_visible_and_store_recovers(tmp_path, err, partial):
    path = tmp_path / "db"
    s = engine.open(path, layout="memory")
    commit_n(s, 5)
    size_before = log_files(path)[0].stat().st_size
    _failing_commit(s, FailingWrites(err, partial))
    assert log_files(path)[0].stat().st_size == size_before  # the short write was rolled back
    assert s.version == 5
    _assert_no_doomed(s)
    assert_commits(s, 5)
    # the fault cleared: the store goes on, without a gap in versions
    commit_n(s, 3, start=6)
    assert_commits(s, 8)
    _assert_no_doomed(s)
    s.close()
    s = engine.open(path)
    assert s.recovery["torn_tail"] is None
    assert_commits(s, 8)
    _assert_no_doomed(s)
    s.close()


def test_failed_rollback_of_a_short_write_makes_the_log_refuse_commits(tmp_path):
    path = tmp_path / "db"
    s = engine.open(path, layout="memory")
    commit_n(s, 5)
    _failing_commit(s, FailingWrites(errno.ENOSPC, partial=40, fail_truncate=True))
    assert s.version == 5
    _assert_no_doomed(s)
    # the log holds a partial record it could not remove: further commits must not land after it
    with pytest.raises(StorageIOError):
        with s.begin() as tx:
            tx.set(T, b"after", b"1")
    assert s.version == 5 and s.get(T, b"after") is None
    assert_commits(s, 5)
    s.close()
    s = engine.open(path)
    assert s.recovery["torn_tail"] is not None  # the partial record, reported and dropped
    assert_commits(s, 5)
    _assert_no_doomed(s)
    commit_n(s, 2, start=6)
    s.close()
    s = engine.open(path)
    assert_commits(s, 7)
    s.close()


@pytest.mark.parametrize("partial", [0, 7])
def test_failed_first_write_of_a_fresh_log(tmp_path, partial):
    """The very first commit creates the log file; its header write fails."""
    path = tmp_path / "db"
    s = engine.open(path, layout="memory")
    _failing_commit(s, FailingWrites(errno.ENOSPC, partial))
    assert s.version == 0
    _assert_no_doomed(s)
    commit_n(s, 3)
    s.close()
    s = engine.open(path)
    assert_commits(s, 3)
    _assert_no_doomed(s)
    s.close()


def test_failed_drain_in_durability_none_keeps_earlier_commits(tmp_path, monkeypatch):
    """``"none"`` buffers records; a failed drain must not lose the buffered earlier commits."""
    monkeypatch.setattr(commitlog, "_NONE_BUFFER", 600)
    path = tmp_path / "db"
    s = engine.open(path, layout="memory", durability="none")
    commit_n(s, 3)  # buffered, below the drain threshold
    _failing_commit(s, FailingWrites(errno.EIO))  # this commit's record triggers the drain
    assert s.version == 3
    _assert_no_doomed(s)
    commit_n(s, 4, start=4)
    s.close()
    s = engine.open(path)
    assert_commits(s, 7)
    _assert_no_doomed(s)
    s.close()


def test_failed_fsync_in_sync_mode_refuses_further_commits(tmp_path):
    path = tmp_path / "db"
    s = engine.open(path, layout="memory", durability="sync")
    commit_n(s, 2)

    def bad_sync(fd):
        raise OSError(errno.EIO, "Input/output error")

    with mock.patch.object(commitlog.os, "fdatasync", bad_sync):
        with pytest.raises(StorageIOError, match="may not be durable"):
            with s.begin() as tx:
                tx.set(T, b"unsure", b"1")
    # after a failed fsync nothing more may be acknowledged (the kernel may have dropped pages)
    with pytest.raises(StorageIOError):
        with s.begin() as tx:
            tx.set(T, b"later", b"1")
    assert s.get(T, b"later") is None
    s.close()
    s = engine.open(path)
    assert s.version in (2, 3)  # the record reached the OS; whether it is on disk is unknown
    assert s.get(T, b"later") is None
    for v in (1, 2):
        assert s.get(T, b"last", version=v) == b"%d" % v
    assert s.get(T, b"unsure") == (b"1" if s.version == 3 else None)
    s.close()


def test_sync_commit_on_a_none_store_reaches_the_file(tmp_path):
    """begin(durability="sync") must write and fsync its record even when the store buffers."""
    path = tmp_path / "db"
    s = engine.open(path, layout="memory", durability="none")
    commit_n(s, 3)  # buffered in memory
    assert records(log_files(path)[0]) == []
    with s.begin(durability="sync") as tx:
        tx.set(T, b"important", b"1")
    assert len(records(log_files(path)[0])) == 4  # everything up to and including it
    # a copy of the directory taken now (as a crash would leave it) has the commit
    snap = clone(path, tmp_path / "copy")
    (snap / "LOCK").unlink()
    s.close()
    c = engine.open(snap)
    assert c.version == 4 and c.get(T, b"important") == b"1"
    c.close()
