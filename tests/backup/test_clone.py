"""Writable clones at a version (issue 13): engine.clone, store.clone, ``tierdb clone``.

Clones share the source's immutable files (cold segments, drop files, RocksDB SSTs) by hard
link; these tests check reads against the source at every version, isolation both ways, a
source GC + compaction with a live clone, clones of clones, and the typed errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import engine
from engine.cli import main as cli_main

from .test_backup import KEYS, LAYOUTS, S, T, fill, histories, quiet


def reads_at(store: engine.Store, version: int) -> list:
    return [list(store.range(T, version=version)), list(store.range(S, version=version)),
            list(store.range(T, version=version, reverse=True, prefix=b"k01"))]


def shared_segments(src: Path, clone: Path) -> list[Path]:
    """The clone's cold segments that are the same inode as one of the source's."""
    inodes = {p.stat().st_ino for p in (src / "cold").glob("*.seg")}
    return [p for p in (clone / "cold").glob("*.seg") if p.stat().st_ino in inodes]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_clone_reads_equal_source_at_every_version(tmp_path: Path, layout: str) -> None:
    src = tmp_path / "src"
    with engine.open(src, layout=quiet(layout)) as s:
        fill(s, 16)
        top = s.version
        expect = {u: reads_at(s, u) for u in range(top + 1)}
        hist = histories(s)
        for v in (5, 11, top):
            dest = tmp_path / f"clone{v}"
            result = s.clone(dest, version=v)
            assert result["version"] == v and result["source_version"] == top
            if "cold" in layout:
                assert result["linked_files"] > 0 and result["linked_bytes"] > 0
            if v == 5:  # versions above 5 had reached warm (and cold): they are trimmed
                assert result["trimmed_versions"]["warm"] > 0
                assert ("cold" not in layout) or result["trimmed_versions"]["cold"] > 0
            with engine.open(dest) as c:
                assert c.version == v
                assert c.layout.name == layout
                for u in range(v + 1):
                    assert reads_at(c, u) == expect[u], (v, u)
                assert histories(c) == {k: h for k, h in
                                        ((k, [x for x in hh if x[0] <= v]) for k, hh in hist.items()) if h}
                with pytest.raises(engine.FutureVersionError):
                    c.get(T, KEYS[0], version=v + 1)
                c.check()


def test_clone_and_source_are_isolated_both_ways(tmp_path: Path) -> None:
    src = tmp_path / "src"
    s = engine.open(src, layout=quiet())
    fill(s, 12)
    v = s.version - 3
    s.clone(tmp_path / "c", version=v)
    before_src = {u: reads_at(s, u) for u in range(s.version + 1)}
    c = engine.open(tmp_path / "c", layout=quiet())
    before_clone = {u: reads_at(c, u) for u in range(v + 1)}
    # the clone diverges: writes, deletes, and moves everything down (its own segments)
    with c.begin() as tx:
        for k in KEYS[:50]:
            tx.set(T, k, b"clone-only")
        tx.remove(T, KEYS[60])
    assert tx.version == v + 1
    c.flush(); c.demote(policy="age"); c.compact()
    c.erase(T, KEYS[1])
    # the source keeps going too
    with s.begin() as tx:
        for k in KEYS[100:150]:
            tx.set(T, k, b"source-only")
    s.flush(); s.demote(policy="age"); s.compact()
    for u in range(v + 1):
        assert reads_at(s, u) == before_src[u]
        if u < v:
            got = reads_at(c, u)
            assert [r for r in got[0] if r[0] != KEYS[1]] == [r for r in before_clone[u][0] if r[0] != KEYS[1]]
    assert s.get(T, KEYS[0]) != b"clone-only" and c.get(T, KEYS[0]) == b"clone-only"
    assert c.get(T, KEYS[100]) != b"source-only"
    assert s.history(T, KEYS[1]), "erase in the clone leaves the source's history"
    s.check(); c.check()
    c.close(); s.close()


def test_source_gc_and_compaction_keep_a_live_clone_readable(tmp_path: Path) -> None:
    src = tmp_path / "src"
    s = engine.open(src, layout=quiet(), retention=engine.Retention(history_versions=4))
    fill(s, 12)
    s.demote(policy="age")
    v = s.version - 1
    floor = s.history_floor()
    assert floor < v
    expect = {u: reads_at(s, u) for u in range(floor, v + 1)}
    s.clone(tmp_path / "c", version=v)
    shared = shared_segments(src, tmp_path / "c")
    assert shared, "the clone shares cold segments with the source"
    # The source moves on: its GC removes versions the clone still has, and compaction
    # rewrites (and unlinks) the segments the clone shares.
    fill(s, 12, seed=9)
    s.demote(policy="age")
    s.gc()
    s.compact()
    gone = [p for p in shared if p.stat().st_nlink == 1]
    assert gone, "the source dropped its names for shared segments"
    with pytest.raises(engine.HistoryUnavailable):
        s.get(T, KEYS[0], version=floor)
    s.close()
    with engine.open(tmp_path / "c", layout=quiet()) as c:
        for u, rows in expect.items():
            assert reads_at(c, u) == rows
        c.check()


def test_clone_of_a_clone_and_deleting_a_clone(tmp_path: Path) -> None:
    src = tmp_path / "src"
    with engine.open(src, layout=quiet()) as s:
        fill(s, 12)
        v1 = s.version - 2
        expect = {u: reads_at(s, u) for u in range(v1 + 1)}
        engine_clone = s.clone(tmp_path / "c1", version=v1)
        assert engine_clone["linked_files"] > 0
    with engine.open(tmp_path / "c1", layout=quiet()) as c1:
        with c1.begin() as tx:
            tx.set(T, b"c1", b"one")
        v_extra = tx.version
        expect_c1 = reads_at(c1, v_extra)
    v2 = v1 - 3
    result = engine.clone(tmp_path / "c1", tmp_path / "c2", version=v2)
    assert result["version"] == v2
    assert shared_segments(src, tmp_path / "c2"), "a clone of a clone shares the original's segments"
    # deleting the middle clone leaves both ends readable
    import shutil

    shutil.rmtree(tmp_path / "c1")
    with engine.open(tmp_path / "c2", layout=quiet()) as c2:
        assert c2.version == v2
        for u in range(v2 + 1):
            assert reads_at(c2, u) == expect[u]
        c2.check()
    with engine.open(src, layout=quiet()) as s:
        for u in range(v1 + 1):
            assert reads_at(s, u) == expect[u]
        s.check()
    assert expect_c1[0] != expect[v1][0]


def test_clone_bad_input_is_typed_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    with engine.open(src, layout=quiet(), retention=engine.Retention(history_versions=3)) as s:
        fill(s, 10)
        s.gc()
        top = s.version
        with pytest.raises(engine.FutureVersionError):
            s.clone(tmp_path / "c", version=top + 1)
        with pytest.raises(engine.HistoryUnavailable):
            s.clone(tmp_path / "c", version=1)
        with pytest.raises(engine.InvalidVersionError):
            s.clone(tmp_path / "c", version=-1)
        busy = tmp_path / "busy"
        busy.mkdir()
        (busy / "x").write_text("x")
        with pytest.raises(engine.DestinationExistsError):
            s.clone(busy)
        with pytest.raises(engine.BackupError):
            s.clone(src / "inner")
        assert not (tmp_path / "c").exists() and not (src / "inner").exists()
    with pytest.raises(engine.FormatError):
        engine.clone(tmp_path / "busy", tmp_path / "c")
    with pytest.raises(engine.FormatError):
        engine.clone(tmp_path / "missing", tmp_path / "c")
    assert not (tmp_path / "c").exists() and not (tmp_path / "missing").exists()
    with engine.open(None) as mem, pytest.raises(engine.BackupError):
        mem.clone(tmp_path / "c")
    assert cli_main(["clone", str(src), str(tmp_path / "c"), "--version", str(top + 5)]) == 2
    assert not (tmp_path / "c").exists()
    assert cli_main(["clone", str(src), str(tmp_path / "c"), "--version", str(top)]) == 0
    with engine.open(tmp_path / "c") as c:
        assert c.version == top


def test_clone_of_a_store_open_in_another_process_is_a_typed_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    with engine.open(src, layout=quiet()) as s:
        fill(s, 3, move=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, engine
            s = engine.open({str(src)!r})
            print("open", flush=True)
            sys.stdin.readline()
            s.close()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        with pytest.raises(engine.LockedError, match="store.clone"):
            engine.clone(src, tmp_path / "c")
        assert not (tmp_path / "c").exists()
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    engine.clone(src, tmp_path / "c")  # closed there: now it works
    with engine.open(tmp_path / "c") as c:
        assert c.get(S, b"round") == b"2"


def test_a_clone_of_a_store_with_a_change_feed_feeds_from_its_version(tmp_path: Path) -> None:
    """A clone is a new store: its change feed starts at the clone's version (changes are
    what happened to this store; the source's consumers are not cloned)."""
    with engine.open(tmp_path / "src", layout=quiet(), changefeed=True) as s:
        fill(s, 6)
        s.consumer("audit").ack(2)
        v = s.version - 2
        assert s.clone(tmp_path / "c", version=v)["not_cloned"] == []
    with engine.open(tmp_path / "c") as c:
        assert c.consumers() == {}
        with pytest.raises(engine.errors.ChangesTrimmed):
            list(c.changes(after=v - 1))
        with c.begin() as tx:
            tx.set(T, b"after", b"x")
        assert [(ch.version, ch.writes) for ch in c.changes(after=v)] == [(v + 1, {T: [(b"after", b"x")]})]


def test_clone_after_a_flush_cut_short_holds_nothing_above_its_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flush that wrote its chunks to warm but failed before its watermark leaves versions
    above the flushed watermark in warm (fault injected on the watermark write). A clone at
    a version between the watermark and those versions must not inherit them: its own next
    commits reuse those version numbers."""
    with engine.open(tmp_path / "src", layout=quiet()) as s:
        fill(s, 4, move=False)
        s.flush()
        fill(s, 3, seed=4, move=False)
        top = s.version
        warm = next(t for t in s._tiers if t.name == "warm")
        real = warm.write_entries

        def no_watermark(batches: object, **kw: object) -> None:
            if kw.get("meta"):
                raise engine.StorageIOError("injected: watermark write failed")
            real(batches, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(warm, "write_entries", no_watermark)
        with pytest.raises(engine.StorageIOError, match="injected"):
            s.flush()
        monkeypatch.setattr(warm, "write_entries", real)
        assert any(ver > top - 2 for table in warm.tables() for ver in
                   (e.version for e in warm.iter_versions(table)))
        expect = {u: reads_at(s, u) for u in range(top - 2 + 1)}
        s.clone(tmp_path / "c", version=top - 2)
    with engine.open(tmp_path / "c", layout=quiet()) as c:
        assert c.version == top - 2
        for u, rows in expect.items():
            assert reads_at(c, u) == rows
        with c.begin() as tx:
            tx.set(S, b"round", b"clone")
        c.flush()
        assert reads_at(c, top - 1)[0] == expect[top - 2][0], "version top-1 is the clone's own"
        c.check()


def test_clone_onto_another_file_system_copies(tmp_path: Path) -> None:
    """Hard links cannot cross file systems: the clone is copied there (nothing shared) and
    reads the same."""
    import os
    import shutil
    import uuid

    other = Path("/dev/shm")
    if not other.is_dir() or os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.skip("needs a second file system (/dev/shm)")
    dest = other / f"tierdb-clone-{uuid.uuid4().hex}"
    try:
        with engine.open(tmp_path / "src", layout=quiet()) as s:
            fill(s, 8)
            v = s.version - 1
            expect = {u: reads_at(s, u) for u in range(v + 1)}
            r = s.clone(dest, version=v)
        assert r["linked_bytes"] == 0 and r["copied_bytes"] > 0
        assert not any(p.stat().st_nlink > 1 for p in dest.rglob("*") if p.is_file())
        with engine.open(dest, layout=quiet()) as c:
            for u, rows in expect.items():
                assert reads_at(c, u) == rows
            c.check()
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_history_the_source_collected_is_unavailable_in_clone_and_restore(tmp_path: Path) -> None:
    """The source's GC removed versions below its floor F. A clone at v >= F (opened with the
    same retention, whose floor relative to v is lower than F, or with none) and a restored
    backup raise HistoryUnavailable below F instead of answering from partial history;
    pinned versions stay readable."""
    ret = engine.Retention(history_versions=5)
    with engine.open(tmp_path / "src", layout=quiet(), retention=ret, gc_interval=0) as s:
        with s.begin() as tx:
            tx.set(T, b"pinned-era", b"p")
        s.pin(1, "first")
        for i in range(30):
            with s.begin() as tx:
                tx.set(T, b"k", b"v%d" % i)
        s.flush()
        s.gc()
        floor = s.history_floor()
        assert floor > 10
        s.clone(tmp_path / "c", version=floor)
        s.backup(tmp_path / "bk")
        expect_floor = reads_at(s, floor)
    engine.restore_backup(tmp_path / "bk", tmp_path / "r")
    for path, retention in ((tmp_path / "c", ret), (tmp_path / "c", None), (tmp_path / "r", None)):
        with engine.open(path, retention=retention) as c:
            assert c.history_floor() == floor
            with pytest.raises(engine.HistoryUnavailable):
                c.get(T, b"k", version=floor - 2)
            assert reads_at(c, floor) == expect_floor
            assert c.get(T, b"pinned-era", version=1) == b"p"  # the pin came along
