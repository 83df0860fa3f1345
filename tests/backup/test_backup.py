"""Online backups (issue 13): store.backup, engine.check_backup, engine.restore_backup, and
the ``tierdb backup`` / ``restore`` / ``check`` commands. Real files throughout; faults are
injected only where a real one cannot be produced on demand."""

from __future__ import annotations

import os
import random
import threading
from pathlib import Path

import pytest

import engine
from engine.backup import targets
from engine.backup.capture import STAGING_PREFIX
from engine.backup.manifest import BACKUP_NAME
from engine.cli import main as cli_main

T = engine.EntryKind.MULTI
S = engine.EntryKind.source(7)
KEYS = [b"k%04d" % i for i in range(300)]

LAYOUTS = ["hot+warm+cold", "warm+cold", "hot+warm", "warm"]


def quiet(layout: str = "hot+warm+cold") -> engine.Layout:
    """A layout without background movement: tests move data on purpose."""
    return engine.Layout.parse(layout, background=False) if layout not in ("warm", "memory") \
        else engine.Layout.parse(layout)


def fill(store: engine.Store, rounds: int, seed: int = 1, move: bool = True) -> None:
    """Commit ``rounds`` rounds of writes and deletes over two tables, moving data down
    through every tier on the way (so history sits in hot, warm and cold)."""
    rng = random.Random(seed)
    for r in range(rounds):
        with store.begin() as tx:
            for k in rng.sample(KEYS, 60):
                if rng.random() < 0.1:
                    tx.remove(T, k)
                else:
                    tx.set(T, k, b"r%d-" % r + k * rng.randint(1, 4))
            tx.set(S, b"round", b"%d" % r)
        if move and r % 4 == 1:
            store.flush()
        if move and r % 4 == 3:
            store.demote()


def histories(store: engine.Store, upto: int | None = None) -> dict:
    out = {}
    for t in (T, S):
        for k in KEYS + [b"round"]:
            h = [(v, val) for v, val in store.history(t, k) if upto is None or v <= upto]
            if h:
                out[(str(t), k)] = h
    return out


def files_of(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("layout", LAYOUTS + ["memory"])
def test_backup_restore_roundtrip(tmp_path: Path, layout: str) -> None:
    src = tmp_path / "src"
    with engine.open(src, layout=quiet(layout)) as s:
        fill(s, 10)
        s.pin(3, "three")
        result = s.backup(tmp_path / "bk")
        assert result["version"] == s.version
        expect = histories(s)
        expect_pins = s.pins()
    assert not list(src.glob(STAGING_PREFIX + "*")), "the staging image is removed"
    info = engine.check_backup(tmp_path / "bk")
    assert info["ok"] and info["version"] == result["version"] and info["layout"] == layout
    restored = engine.restore_backup(tmp_path / "bk", tmp_path / "restored")
    assert restored["version"] == result["version"]
    with engine.open(tmp_path / "restored") as r:
        assert r.version == result["version"]
        assert r.layout.name == layout
        assert histories(r) == expect
        assert r.pins() == expect_pins
        r.check()
        with r.begin() as tx:  # a working store: it commits on from the backup's version
            tx.set(T, b"after", b"x")
        assert tx.version == result["version"] + 1


def test_backup_under_concurrent_commits_is_exact(tmp_path: Path) -> None:
    """A backup taken while another thread commits (and data moves down) restores to
    exactly the state at the version it reports: every key's whole history <= V, nothing
    above."""
    src = tmp_path / "src"
    s = engine.open(src, layout=quiet(), changefeed=True)
    fill(s, 6)
    stop = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        rng = random.Random(7)
        n = 0
        try:
            while not stop.is_set():
                with s.begin() as tx:
                    for k in rng.sample(KEYS, 20):
                        if rng.random() < 0.15:
                            tx.remove(T, k)
                        else:
                            tx.set(T, k, b"w%d" % n)
                n += 1
                if n % 25 == 0:
                    s.flush()
                if n % 60 == 0:
                    s.demote()
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            errors.append(exc)

    th = threading.Thread(target=writer)
    th.start()
    try:
        while s.version < 40 and th.is_alive():
            threading.Event().wait(0.01)
        seen: list[int] = []
        result = s.backup(tmp_path / "bk", progress=lambda done, total: seen.append(done))
        after = s.version
        while s.version < result["version"] + 20 and th.is_alive():  # commits go on past it
            threading.Event().wait(0.01)
        cloned = s.clone(tmp_path / "clone")  # a clone of "now", taken under commits too
    finally:
        stop.set()
        th.join()
    assert not errors, errors
    v = result["version"]
    assert v >= 40 and s.version > v and after >= v
    assert seen and seen[-1] == result["bytes"], "progress reaches the total"
    expect = histories(s, upto=v)
    feed = [(c.version, c.writes) for c in s.changes(after=0) if c.version <= v]
    expect_clone = histories(s, upto=cloned["version"])
    s.close()
    with engine.open(tmp_path / "clone") as c:
        assert c.version == cloned["version"] and histories(c) == expect_clone
    engine.restore_backup(tmp_path / "bk", tmp_path / "restored")
    with engine.open(tmp_path / "restored") as r:
        assert r.version == v
        assert histories(r) == expect
        # the change feed is restored as of v too: every commit up to v, nothing above
        assert [(c.version, c.writes) for c in r.changes(after=0)] == feed
        assert [c[0] for c in feed] == list(range(1, v + 1))
        with pytest.raises(engine.FutureVersionError):
            r.get(T, KEYS[0], version=v + 1)
        r.check()


def test_flipped_byte_anywhere_is_detected_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with engine.open(tmp_path / "src", layout=quiet()) as s:
        fill(s, 8)
        s.backup(tmp_path / "bk")
    bk = tmp_path / "bk"
    files = files_of(bk)
    assert len(files) >= 8 and any(p.suffix == ".seg" for p in files) and any(p.suffix == ".sst" for p in files)
    rng = random.Random(3)
    for p in files:
        original = p.read_bytes()
        if not original:
            continue
        data = bytearray(original)
        pos = rng.randrange(len(data))
        data[pos] ^= 1 << rng.randrange(8)
        p.write_bytes(bytes(data))
        try:
            with pytest.raises(engine.CorruptionError) as ei:
                engine.check_backup(bk)
            assert p.name in str(ei.value), (p, str(ei.value))
            if p.name == BACKUP_NAME or p.suffix == ".seg":
                assert cli_main(["check", str(bk)]) == 2
                err = capsys.readouterr().err
                assert "CorruptionError" in err and p.name in err
                with pytest.raises(engine.CorruptionError):  # restore refuses it, leaves nothing
                    engine.restore_backup(bk, tmp_path / "r")
                assert not (tmp_path / "r").exists()
                assert not [q for q in tmp_path.iterdir() if "restoring" in q.name]
        finally:
            p.write_bytes(original)
    assert engine.check_backup(bk)["ok"]
    assert cli_main(["check", str(bk)]) == 0


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with engine.open(tmp_path / "src", layout=quiet()) as s:
        fill(s, 3, move=False)
        busy = tmp_path / "busy"
        busy.mkdir()
        (busy / "keep.txt").write_text("mine")
        with pytest.raises(engine.DestinationExistsError):
            s.backup(busy)
        assert [p.name for p in busy.iterdir()] == ["keep.txt"]
        a_file = tmp_path / "file"
        a_file.write_text("x")
        with pytest.raises(engine.DestinationExistsError):
            s.backup(a_file)
        with pytest.raises(engine.BackupError):
            s.backup(tmp_path / "src" / "inside")
        assert not (tmp_path / "src" / "inside").exists()
        s.backup(tmp_path / "bk")
        empty = tmp_path / "empty"
        empty.mkdir()
        s.backup(empty)  # an existing empty directory is fine
        assert engine.check_backup(empty)["ok"]
    with engine.open(None) as mem, pytest.raises(engine.BackupError):
        mem.backup(tmp_path / "mem-bk")
    assert not (tmp_path / "mem-bk").exists()
    with pytest.raises(engine.DestinationExistsError):
        engine.restore_backup(tmp_path / "bk", busy)
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    with pytest.raises(engine.CorruptionError, match="not a complete tierdb backup"):
        engine.restore_backup(busy, tmp_path / "r")  # no BACKUP manifest
    assert not (tmp_path / "r").exists()


def test_interrupted_backup_leaves_nothing_check_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception in the middle of the copy: the call fails, the partial backup is
    removed, and even a partial backup whose removal never ran (a crash) fails check()."""
    real_copy = targets.copy_hashed
    calls = {"n": 0}

    def failing_copy(src: Path, dst: Path, tick: object = None) -> tuple[int, str]:
        calls["n"] += 1
        if calls["n"] == 6:
            raise engine.StorageIOError(f"injected fault while copying {src}")
        return real_copy(src, dst, tick)  # type: ignore[arg-type]

    with engine.open(tmp_path / "src", layout=quiet()) as s:
        fill(s, 8)
        monkeypatch.setattr(targets, "copy_hashed", failing_copy)
        with pytest.raises(engine.StorageIOError, match="injected"):
            s.backup(tmp_path / "bk")
        assert not (tmp_path / "bk").exists(), "the partial backup is removed"
        calls["n"] = 0
        monkeypatch.setattr(targets.DirTarget, "abort", lambda self: None)  # as if killed
        with pytest.raises(engine.StorageIOError, match="injected"):
            s.backup(tmp_path / "bk2")
        assert files_of(tmp_path / "bk2"), "the crash left a partial copy behind"
        with pytest.raises(engine.CorruptionError, match="not a complete"):
            engine.check_backup(tmp_path / "bk2")
        assert cli_main(["check", str(tmp_path / "bk2")]) == 2
        assert not list((tmp_path / "src").glob(STAGING_PREFIX + "*"))
        monkeypatch.setattr(targets, "copy_hashed", real_copy)
        # the store is unharmed and backs up fine afterwards
        s.backup(tmp_path / "bk3")
        assert engine.check_backup(tmp_path / "bk3")["version"] == s.version


def test_cli_backup_restore_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with engine.open(tmp_path / "src", layout=quiet()) as s:
        fill(s, 5)
        expect = histories(s)
    assert cli_main(["backup", str(tmp_path / "src"), str(tmp_path / "bk")]) == 0
    assert '"version"' in capsys.readouterr().out
    assert cli_main(["check", str(tmp_path / "bk")]) == 0
    assert cli_main(["restore", str(tmp_path / "bk"), str(tmp_path / "r")]) == 0
    assert cli_main(["restore", str(tmp_path / "bk"), str(tmp_path / "r")]) == 2
    assert "DestinationExistsError" in capsys.readouterr().err
    with engine.open(tmp_path / "r") as r:
        assert histories(r) == expect
    assert cli_main(["check", str(tmp_path / "r")]) == 0  # a store is still checked as a store


def test_stale_staging_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    """A backup killed mid-way leaves its staging image (hard links) in the store: the next
    backup, and the next open, remove it (it would otherwise keep erased bytes alive)."""
    with engine.open(tmp_path / "src", layout=quiet()) as s:
        fill(s, 2, move=False)
        stale = tmp_path / "src" / f"{STAGING_PREFIX}999999999-abc"
        (stale / "cold").mkdir(parents=True)
        s.backup(tmp_path / "bk")
        assert not stale.exists()
        (stale / "cold").mkdir(parents=True)
    with engine.open(tmp_path / "src", layout=quiet()):
        assert not stale.exists()
    assert sorted(os.listdir(tmp_path / "bk")) == ["BACKUP", "data"]
