"""Export/import of a fold as an artifact directory (slipstream-kv.md D1-D4)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import queue
import threading
from pathlib import Path

import pytest

import engine
from engine.errors import CorruptionError
from engine.kv import (
    ArtifactInvalid,
    BatchConfig,
    ExportRequest,
    KvEntry,
    KvError,
    LocalConnection,
    OperationFailed,
    Put,
    StoreFold,
    VersionToken,
    WatchCursor,
    WatchScope,
    export_fold,
    import_artifact,
    watch_applied,
)
from engine.kv import artifact as art

from .conftest import wait_for


def make_fold(path: Path, n: int = 20, cursor: int = 42) -> StoreFold:
    f = StoreFold.open(path, layout="warm")
    f.apply([Put(KvEntry(f"k.{i:03d}", f"v{i}".encode() * (i + 1), VersionToken.from_u64(i + 1)))
             for i in range(n)] + [Put(KvEntry("empty", b"", VersionToken.from_u64(n + 1)))],
            WatchCursor.from_u64(cursor))
    return f


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    with make_fold(tmp_path / "src") as f:
        return export_fold(f, tmp_path / "art")


def test_d1_round_trip(tmp_path: Path, artifact: Path) -> None:
    m = json.loads((artifact / "MANIFEST.json").read_text())
    assert m["cursor_hex"] == VersionToken.from_u64(42).hex() and m["backend"] == "tierdb-fold"
    assert [f["path"] for f in m["files"]] == ["data/fold.tkv"]
    cursor = import_artifact(artifact, tmp_path / "imported")
    assert cursor == WatchCursor.from_u64(42)
    with make_fold(tmp_path / "again") as want, StoreFold.open(tmp_path / "imported") as got:
        assert got.cursor() == want.cursor() and got.state() == want.state()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".slipstream-")]


def test_d1_import_plus_tail_replay_equals_continuous_fold(tmp_path: Path) -> None:
    store = engine.open(None)
    conn = LocalConnection(store)
    conn.connect()
    b = conn.store("feed")
    try:
        for i in range(30):
            b.put(f"k.{i % 7}", str(i).encode())
        with StoreFold.open(tmp_path / "a", layout="warm") as fa:
            stop = threading.Event()
            exports: queue.Queue[ExportRequest] = queue.Queue()
            t = threading.Thread(target=watch_applied, args=(b.watcher(), WatchScope.All()), kwargs=dict(
                reader=b, store=fa, exports=exports, batch=BatchConfig(window=0.005),
                parse=lambda u: u, apply=lambda us: None, shutdown=stop))
            t.start()
            assert wait_for(lambda: fa.count() == 7)
            reply: concurrent.futures.Future[Path] = concurrent.futures.Future()
            exports.put(ExportRequest(tmp_path / "mid", reply))
            assert reply.result(10) == tmp_path / "mid"
            bad: concurrent.futures.Future[Path] = concurrent.futures.Future()
            exports.put(ExportRequest(tmp_path / "mid", bad))          # not empty: reported
            with pytest.raises(OperationFailed):
                bad.result(10)
            for i in range(30, 60):
                if i % 5 == 0:
                    b.delete(f"k.{i % 7}")
                else:
                    b.put(f"k.{i % 7}", str(i).encode())
            assert wait_for(lambda: fa.state() == {e.key: e.value for e in b.scan()})
            stop.set()
            t.join(10)
            continuous = fa.state()
        import_artifact(tmp_path / "mid", tmp_path / "b")
        with StoreFold.open(tmp_path / "b") as fb:
            stop = threading.Event()
            t = threading.Thread(target=watch_applied, args=(b.watcher(), WatchScope.All()), kwargs=dict(
                reader=b, store=fb, parse=lambda u: u, apply=lambda us: None, shutdown=stop))
            t.start()
            assert wait_for(lambda: fb.state() == continuous)
            stop.set()
            t.join(10)
    finally:
        conn.shutdown()
        store.close()


def test_d2_export_refuses_non_empty_destination(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "precious").write_text("keep me")
    with make_fold(tmp_path / "src") as f:
        with pytest.raises(OperationFailed):
            export_fold(f, dest)
        assert [p.name for p in dest.iterdir()] == ["precious"]
        empty = tmp_path / "empty"
        empty.mkdir()
        export_fold(f, empty)                     # an empty directory is fine
        assert (empty / "MANIFEST.json").exists()


def test_d2_crash_before_rename_leaves_only_hidden_stage(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(stage: Path, dest: Path) -> None:
        assert (stage / "MANIFEST.json").exists()         # the manifest was written last
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(art, "_publish", crash)
    with make_fold(tmp_path / "src") as f, pytest.raises(KeyboardInterrupt):
        export_fold(f, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()
    stages = [p.name for p in tmp_path.iterdir() if p.name.startswith(".slipstream-artifact-")]
    assert len(stages) == 1


def _copy(src: Path, dst: Path) -> Path:
    import shutil
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _edit_manifest(a: Path, **changes: object) -> None:
    m = json.loads((a / "MANIFEST.json").read_text())
    for k, v in changes.items():
        if v is _DELETE:
            del m[k]
        else:
            m[k] = v
    (a / "MANIFEST.json").write_text(json.dumps(m))


_DELETE = object()


def _flip_byte(a: Path) -> None:
    p = a / "data" / "fold.tkv"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x40
    p.write_bytes(bytes(data))


def _set_path(a: Path, path: str) -> None:
    m = json.loads((a / "MANIFEST.json").read_text())
    m["files"].append({"path": path, "size": 0, "blake2b": "0" * 64})
    (a / "MANIFEST.json").write_text(json.dumps(m))


def _doctor_cursor(a: Path) -> None:
    _edit_manifest(a, cursor_hex=VersionToken.from_u64(43).hex())


CASES = {
    "flipped byte": _flip_byte,
    "missing file": lambda a: (a / "data" / "fold.tkv").unlink(),
    "extra file": lambda a: (a / "data" / "extra").write_bytes(b"x"),
    "extra top-level file": lambda a: (a / "README").write_bytes(b"x"),
    "symlink": lambda a: os.symlink("fold.tkv", a / "data" / "link"),
    "path ../x": lambda a: _set_path(a, "../x"),
    "path /abs": lambda a: _set_path(a, "/abs"),
    "path data/../x": lambda a: _set_path(a, "data/../x"),
    "path a\\b": lambda a: _set_path(a, "data\\b"),
    "path data/": lambda a: _set_path(a, "data/"),
    "path nondata/x": lambda a: _set_path(a, "nondata/x"),
    "path data/./x": lambda a: _set_path(a, "data/./x"),
    "wrong backend": lambda a: _edit_manifest(a, backend="append-log"),
    "wrong schema": lambda a: _edit_manifest(a, schema_version=2),
    "wrong version": lambda a: _edit_manifest(a, backend_version="2"),
    "unknown field": lambda a: _edit_manifest(a, extra=1),
    "missing field": lambda a: _edit_manifest(a, created_at_unix=_DELETE),
    "bad json": lambda a: (a / "MANIFEST.json").write_text("{not json"),
    "bad cursor_hex": lambda a: _edit_manifest(a, cursor_hex="zz"),
    "long cursor_hex": lambda a: _edit_manifest(a, cursor_hex="00" * 11),
    "doctored cursor": _doctor_cursor,
    "wrong size": lambda a: _edit_manifest(a, files=[{**json.loads(
        (a / "MANIFEST.json").read_text())["files"][0], "size": 1}]),
    "no manifest": lambda a: (a / "MANIFEST.json").unlink(),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_d3_invalid_artifacts_rejected_leaving_nothing(tmp_path: Path, artifact: Path, case: str) -> None:
    bad = _copy(artifact, tmp_path / "bad")
    CASES[case](bad)
    dest = tmp_path / "dest"
    with pytest.raises(ArtifactInvalid) as ei:
        import_artifact(bad, dest)
    assert isinstance(ei.value, CorruptionError)
    assert not dest.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".slipstream-import-")]


def test_d3_flipped_byte_names_the_file(tmp_path: Path, artifact: Path) -> None:
    bad = _copy(artifact, tmp_path / "bad")
    _flip_byte(bad)
    with pytest.raises(CorruptionError, match="data/fold.tkv") as ei:
        import_artifact(bad, tmp_path / "dest")
    assert ei.value.path == "data/fold.tkv"


def test_d4_import_into_non_empty_destination_refused(tmp_path: Path, artifact: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "x").write_text("mine")
    before = {p.name: p.read_bytes() for p in (artifact / "data").iterdir()}
    with pytest.raises(ArtifactInvalid):
        import_artifact(artifact, dest)
    assert [p.name for p in dest.iterdir()] == ["x"]
    assert {p.name: p.read_bytes() for p in (artifact / "data").iterdir()} == before
    import_artifact(artifact, tmp_path / "ok")   # the artifact is still intact and importable


def test_d4_empty_fold_round_trips(tmp_path: Path) -> None:
    with StoreFold.open(tmp_path / "e", layout="warm") as f:
        export_fold(f, tmp_path / "art")
    assert import_artifact(tmp_path / "art", tmp_path / "imp").is_none
    with StoreFold.open(tmp_path / "imp") as g:
        assert g.state() == {} and g.cursor().is_none


# -- issue 12: check first, create nothing on failure; payload keys are KV keys ----------


def _artifact_with_keys(a: Path, keys: list[str]) -> Path:
    """A well-formed artifact (hashes and cursor right) whose payload holds ``keys``."""
    (a / "data").mkdir(parents=True)
    cursor = WatchCursor.from_u64(7)
    art.write_payload(a / "data" / "fold.tkv", iter([(k, b"v") for k in sorted(keys)]), cursor)
    size, digest = art._hash_file(a / "data" / "fold.tkv")
    (a / "MANIFEST.json").write_text(json.dumps({
        "schema_version": 1, "backend": "tierdb-fold", "backend_version": "1",
        "cursor_hex": cursor.token.hex(), "created_at_unix": 0,
        "files": [{"path": "data/fold.tkv", "size": size, "blake2b": digest}]}))
    return a


@pytest.mark.parametrize("case", sorted(CASES))
def test_failed_import_creates_no_parent_directories(tmp_path: Path, artifact: Path, case: str) -> None:
    bad = _copy(artifact, tmp_path / "bad")
    CASES[case](bad)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ArtifactInvalid):
        import_artifact(bad, tmp_path / "new" / "deeper" / "dest")
    assert sorted(p.name for p in tmp_path.iterdir()) == before   # no "new" left behind


def test_import_creates_missing_parents_on_success(tmp_path: Path, artifact: Path) -> None:
    dest = tmp_path / "new" / "deeper" / "dest"
    assert import_artifact(artifact, dest) == WatchCursor.from_u64(42)
    with StoreFold.open(dest) as f:
        assert f.count() == 21
    assert [p.name for p in dest.parent.iterdir()] == ["dest"]   # no stage left


def test_import_failing_after_the_checks_removes_the_parents_it_made(
        tmp_path: Path, artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*a: object, **k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(StoreFold, "apply_entries", broken)
    (tmp_path / "have").mkdir()
    with pytest.raises(OSError, match="No space"):
        import_artifact(artifact, tmp_path / "have" / "new" / "dest")
    assert list((tmp_path / "have").iterdir()) == []   # "new" and the stage are gone again


def test_import_into_a_path_under_a_file_is_refused(tmp_path: Path, artifact: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ArtifactInvalid, match="not a directory"):
        import_artifact(artifact, tmp_path / "file" / "sub" / "dest")
    assert (tmp_path / "file").read_text() == "x"


@pytest.mark.parametrize("key", ["", "has space", ".lead", "trail.", "a..b", "star*", "gt>",
                                 "\u00e9t\u00e9", "tab\tkey"])
def test_import_rejects_invalid_kv_keys(tmp_path: Path, key: str) -> None:
    bad = _artifact_with_keys(tmp_path / "bad", ["good.key", key])
    with pytest.raises(ArtifactInvalid, match="not a valid KV key") as ei:
        import_artifact(bad, tmp_path / "p" / "dest")
    assert isinstance(ei.value, KvError)
    assert ei.value.path == "data/fold.tkv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def test_import_of_valid_crafted_keys_works(tmp_path: Path) -> None:
    good = _artifact_with_keys(tmp_path / "good", ["a", "a.b", "x-y_z=/1"])
    import_artifact(good, tmp_path / "dest")
    with StoreFold.open(tmp_path / "dest") as f:
        assert f.keys() == ["a", "a.b", "x-y_z=/1"]


def test_import_checks_name_and_layout_before_anything(tmp_path: Path, artifact: Path) -> None:
    with pytest.raises(OperationFailed):
        import_artifact(artifact, tmp_path / "n" / "dest", name="bad name")
    with pytest.raises(ValueError):
        import_artifact(artifact, tmp_path / "n" / "dest", layout="nonsense")
    with pytest.raises(ValueError):
        import_artifact(artifact, tmp_path / "n" / "dest", layout="memory")
    assert not (tmp_path / "n").exists()
