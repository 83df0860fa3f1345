"""Warm tier faults: foreign or newer directories are refused untouched, a second process gets
LockedError, and injected write failures surface as StorageIOError without a trace."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from unittest import mock

import pytest
import rocksdict

from engine.errors import CorruptionError, FormatError, LockedError, StorageIOError
from engine.tiers import WarmTier
from engine.tiers.warm import FORMAT_VERSION, MARKER, MARKER_MAGIC, MARKER_NAME
from engine.types import Bound, EntryKind, RawEntry

T = EntryKind.MULTI
REPO = Path(__file__).resolve().parents[2]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (relative path -> bytes), directories included as b""."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root) + "/"] = b""
        for f in filenames:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = Path(p).read_bytes()
    return out


def write_marker(path: Path, version: int, *, damage: bool = False) -> None:
    import zlib

    head = MARKER_MAGIC + version.to_bytes(4, "big")
    crc = zlib.crc32(head) ^ (1 if damage else 0)
    (path / MARKER_NAME).write_bytes(MARKER.pack(MARKER_MAGIC, version, crc))


# --- refusing what is not ours ----------------------------------------------------------------


def test_non_empty_foreign_dir_refused_untouched(tmp_path):
    d = tmp_path / "stuff"
    (d / "sub").mkdir(parents=True)
    (d / "notes.txt").write_bytes(b"hello")
    (d / "sub" / "CURRENT").write_bytes(b"MANIFEST-000001\n")
    before = snapshot(d)
    with pytest.raises(FormatError, match="not a tierdb warm store"):
        WarmTier(d)
    assert snapshot(d) == before
    assert issubclass(FormatError, CorruptionError)


def test_plain_rocksdb_refused_untouched(tmp_path):
    d = tmp_path / "rocks"
    o = rocksdict.Options(raw_mode=True)
    o.create_if_missing(True)
    db = rocksdict.Rdict(str(d), o)
    db.put(b"k", b"v")
    db.close()
    del db
    before = snapshot(d)
    with pytest.raises(FormatError):
        WarmTier(d)
    assert snapshot(d) == before


def test_newer_format_refused_untouched(tmp_path):
    d = tmp_path / "w"
    with WarmTier(d) as t:
        t.set(1, {T: [(b"a", b"1")]})
    write_marker(d, FORMAT_VERSION + 1)
    before = snapshot(d)
    with pytest.raises(FormatError, match="newer"):
        WarmTier(d)
    assert snapshot(d) == before
    write_marker(d, FORMAT_VERSION)
    with WarmTier(d) as t:
        assert t.get(T, b"a", 1) == b"1"


def test_damaged_marker_refused_untouched(tmp_path):
    d = tmp_path / "w"
    WarmTier(d).close()
    write_marker(d, FORMAT_VERSION, damage=True)
    before = snapshot(d)
    with pytest.raises(FormatError, match="damaged"):
        WarmTier(d)
    assert snapshot(d) == before


def test_path_that_is_a_file_refused(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"x")
    with pytest.raises(FormatError, match="not a directory"):
        WarmTier(f)
    assert f.read_bytes() == b"x"


def test_unknown_column_family_refused(tmp_path):
    d = tmp_path / "w"
    WarmTier(d).close()
    o = rocksdict.Options(raw_mode=True)
    db = rocksdict.Rdict(str(d), o)  # rocksdict opens every existing CF by itself
    db.create_column_family("not-a-table", rocksdict.Options(raw_mode=True))
    db.close()
    del db
    with pytest.raises(FormatError, match="not-a-table"):
        WarmTier(d)


def test_creation_interrupted_after_marker_opens_as_new(tmp_path):
    d = tmp_path / "w"
    d.mkdir()
    write_marker(d, FORMAT_VERSION)  # a crash right after stamping: no RocksDB yet
    with WarmTier(d) as t:
        t.set(1, {T: [(b"a", b"1")]})
    with WarmTier(d) as t:
        assert t.get(T, b"a", 1) == b"1"
        t.check()


# --- the RocksDB lock -------------------------------------------------------------------------


def test_second_process_gets_locked_error(tmp_path):
    d = tmp_path / "w"
    t = WarmTier(d)
    try:
        t.set(1, {T: [(b"a", b"1")]})
        code = textwrap.dedent(f"""
            from engine.tiers import WarmTier
            from engine.errors import LockedError
            try:
                WarmTier({str(d)!r})
            except LockedError as e:
                print("LockedError:", e)
            else:
                print("opened")
        """)
        r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                           timeout=60, check=False)
        assert r.stdout.startswith("LockedError:"), r.stdout + r.stderr
        assert "already open" in r.stdout
        assert t.get(T, b"a", 1) == b"1"  # the holder is unaffected
        t.set(2, {T: [(b"a", b"2")]})
    finally:
        t.close()
    with WarmTier(d) as again:
        assert again.get(T, b"a", 2) == b"2"
        again.check()


def test_second_opener_in_same_process_gets_locked_error(tmp_path):
    with WarmTier(tmp_path / "w"), pytest.raises(LockedError):
        WarmTier(tmp_path / "w")


# --- injected write failures ------------------------------------------------------------------


class FailingWrites:
    """Stands in for the tier's Rdict: ``write`` fails like a full disk, the rest passes through.

    A plain class rather than ``Mock(wraps=...)``: mocks form reference cycles, and RocksDB
    keeps its LOCK until the last handle is freed, so a cycle would block the reopen below.
    """

    def __init__(self, db: object, message: str) -> None:
        self._db = db
        self._message = message

    def write(self, *args: object, **kwargs: object) -> None:
        raise Exception(self._message)  # noqa: TRY002 - rocksdict raises bare Exception

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def failing_db(t: WarmTier, message: str = "IO error: No space left on device"):
    return mock.patch.object(t, "_db", FailingWrites(t._db, message))


@pytest.mark.parametrize("op", ["set", "write_entries", "drop", "clear_table"])
def test_write_failure_is_storage_io_error_and_invisible(tmp_path, op):
    with WarmTier(tmp_path / "w") as t:
        t.set(1, {T: [(b"a", b"1")]}, meta={b"m": b"1"})
        assert t.get(T, b"a", 1) == b"1"  # caches this thread's iterator
        with failing_db(t):
            with pytest.raises(StorageIOError, match="No space left") as ei:
                if op == "set":
                    t.set(2, {T: [(b"a", b"2"), (b"b", b"2")]}, meta={b"m": b"2"})
                elif op == "write_entries":
                    t.write_entries({T: [RawEntry(b"a", 2, b"2"), RawEntry(b"b", 2, b"2")]},
                                    meta={b"m": b"2"})
                elif op == "drop":
                    t.drop({T: [(b"a", 1)]})
                else:
                    t.clear_table(T)
            assert isinstance(ei.value, OSError)
            assert "retry" in str(ei.value)
            # The traceback's frames hold RocksDB handles, and RocksDB frees its LOCK only
            # when the last handle dies: drop it so the reopen below can take the lock.
            del ei
            # Nothing of it is visible, and the tier stays readable.
            assert t.get(T, b"a", 9) == b"1"
            assert t.get(T, b"b", 9) is None
            assert t.get_meta(b"m") == b"1"
            assert t.get_all_versions(T, b"a") == [(1, b"1")]
        # The fault cleared: writes work again.
        t.set(3, {T: [(b"a", b"3")]}, meta={b"m": b"3"})
        assert t.get(T, b"a", 9) == b"3" and t.get_meta(b"m") == b"3"
        t.check()
    with WarmTier(tmp_path / "w") as t:
        assert t.get_all_versions(T, b"a") == [(3, b"3"), (1, b"1")]


def test_open_failure_is_storage_io_error(tmp_path):
    d = tmp_path / "w"
    with mock.patch("engine.tiers.warm.db.rocksdict.Rdict", side_effect=Exception("IO error: EIO")), \
            pytest.raises(StorageIOError, match="EIO"):
        WarmTier(d)
    with WarmTier(d) as t:  # the stamped, half-created directory opens fine afterwards
        t.set(1, {T: [(b"a", b"1")]})


# --- unlogged flush writes ----------------------------------------------------------------------


def test_unlogged_writes_are_durable_after_the_next_synced_write(tmp_path):
    # write_entries(logged=False) skips RocksDB's WAL; a later synced write (or
    # flush_wal(sync=True)) must first persist them, so a kill -9 right after it loses nothing.
    d = tmp_path / "w"
    code = textwrap.dedent(f"""
        import os, signal
        from engine.tiers import WarmTier
        from engine.types import EntryKind, RawEntry
        T, S = EntryKind.MULTI, EntryKind.source(1)
        t = WarmTier({str(d)!r})
        t.write_entries({{T: [RawEntry(b"a", 1, b"1"), RawEntry(b"t", 1, None)],
                          S: [RawEntry(b"s", 2, b"2")]}}, sync=False, logged=False)
        t.write_entries({{}}, sync=True, meta={{b"flushed": b"2"}})
        t.write_entries({{T: [RawEntry(b"b", 3, b"3")]}}, sync=False, logged=False)
        t.flush_wal(sync=True)
        t.write_entries({{T: [RawEntry(b"c", 4, b"4")]}}, sync=False, logged=False)
        print("ready", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.stdout.strip() == "ready", r.stdout + r.stderr
    with WarmTier(d) as t:
        assert t.get_meta(b"flushed") == b"2"
        assert t.lookup(T, b"a", 9) == RawEntry(b"a", 1, b"1")
        assert t.lookup(T, b"t", 9) == RawEntry(b"t", 1, None)
        assert t.get(EntryKind.source(1), b"s", 9) == b"2"
        assert t.get(T, b"b", 9) == b"3"
        assert t.get(T, b"c", 9) in (None, b"4")  # never synced: may be lost, never wrong
        t.check()


def test_unlogged_writes_survive_close_and_are_read_at_once(tmp_path):
    d = tmp_path / "w"
    with WarmTier(d) as t:
        t.write_entries({T: [RawEntry(b"a", 1, b"1")]}, sync=False, logged=False)
        assert t.get(T, b"a", 1) == b"1"
        assert list(t.scan_items(T, Bound.UNBOUNDED, Bound.UNBOUNDED, 1)) == [(b"a", b"1")]
    with WarmTier(d) as t:
        assert t.get(T, b"a", 1) == b"1"
