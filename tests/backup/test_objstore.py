"""Backups to and from object stores (memory://, file://, and S3 on a real HTTP endpoint:
moto's ThreadedMotoServer on loopback, always stopped), and backups/clones of a store whose
cold tier lives in an object store (cold_url)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.backup import capture as capture_mod
from engine.backup.manifest import BACKUP_NAME
from engine.backup.objstore import ObjectTarget
from engine.tiers.cold.objstore import ObjectStoreClient

from .test_backup import KEYS, T, fill, histories, quiet

BUCKET = "tierdb-backups"


class S3:
    """A moto S3 server on a free loopback port (restartable: moto keeps its state in this
    process)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._cls = ThreadedMotoServer
        self.server: Any = None
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.options = {"endpoint": self.endpoint, "allow_http": "true", "access_key_id": "test",
                        "secret_access_key": "test", "region": "us-east-1"}

    def start(self) -> None:
        self.server = self._cls(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def url(self) -> str:
        return f"s3://{BUCKET}/{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    pytest.importorskip("moto.server")
    import boto3

    srv = S3()
    srv.start()
    try:
        boto3.client("s3", endpoint_url=srv.endpoint, aws_access_key_id="test",
                     aws_secret_access_key="test", region_name="us-east-1").create_bucket(Bucket=BUCKET)
        yield srv
    finally:
        srv.stop()


def where(kind: str, tmp_path: Path, s3: S3 | None) -> tuple[str, dict[str, Any]]:
    if kind == "memory":
        return f"memory://bk-{uuid.uuid4().hex}", {}
    if kind == "file":
        return f"file://{tmp_path}/objects-{uuid.uuid4().hex[:8]}", {}
    assert s3 is not None
    return s3.url(), dict(s3.options)


@pytest.mark.parametrize("kind", ["memory", "file", "s3"])
def test_backup_to_an_object_store(tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    s3 = request.getfixturevalue("s3") if kind == "s3" else None
    url, opts = where(kind, tmp_path, s3)
    with engine.open(tmp_path / "src", layout=quiet()) as s:
        fill(s, 8)
        result = s.backup(url, **opts)
        expect = histories(s)
        with pytest.raises(engine.DestinationExistsError):
            s.backup(url, **opts)  # the prefix is not empty any more
    assert engine.check_backup(url, **opts)["version"] == result["version"]
    engine.restore_backup(url, tmp_path / "restored", **opts)
    with engine.open(tmp_path / "restored") as r:
        assert histories(r) == expect
    # a changed byte in any object is named by check
    client = ObjectStoreClient(url, opts or None)
    names = [i.name for i in client.list("")]
    assert BACKUP_NAME in names and any(n.endswith(".seg") for n in names)
    for name in (BACKUP_NAME, next(n for n in names if n.endswith(".seg"))):
        original = client.get(name).data
        damaged = bytearray(original)
        damaged[len(damaged) // 2] ^= 0x10
        client.put(name, bytes(damaged))
        with pytest.raises(engine.CorruptionError) as ei:
            engine.check_backup(url, **opts)
        assert name.rsplit("/", 1)[-1] in str(ei.value)
        client.put(name, original)
    assert engine.check_backup(url, **opts)["ok"]


def test_s3_server_stopped_mid_backup(tmp_path: Path, s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    """The S3 server goes away in the middle of a backup: the backup fails with a typed
    error after bounded retries; once the server is back, what it left is not a backup
    check() accepts, the source store is intact, and a new backup succeeds."""
    url = s3.url()
    real_put = ObjectTarget.put
    puts = {"n": 0}

    def put_then_stop(self: ObjectTarget, rel: str, src: Path, tick: Any) -> tuple[int, str]:
        puts["n"] += 1
        if puts["n"] == 4:
            s3.stop()
        return real_put(self, rel, src, tick)

    with engine.open(tmp_path / "src", layout=quiet()) as s:
        fill(s, 8)
        expect = histories(s)
        monkeypatch.setattr(ObjectTarget, "put", put_then_stop)
        try:
            with pytest.raises(engine.StorageIOError):
                s.backup(url, **s3.options)
        finally:
            s3.start()
        monkeypatch.setattr(ObjectTarget, "put", real_put)
        left = ObjectStoreClient(url, s3.options).list("")
        assert left and BACKUP_NAME not in {i.name for i in left}
        with pytest.raises(engine.CorruptionError, match="not a complete"):
            engine.check_backup(url, **s3.options)
        assert histories(s) == expect
        s.check()
        url2 = s3.url()
        s.backup(url2, **s3.options)
    assert engine.check_backup(url2, **s3.options)["ok"]


def test_backup_and_clone_of_a_store_with_its_cold_tier_in_an_object_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cold tier lives at a cold_url: a backup downloads the manifest's objects while a
    compaction retires them (the hold defers their deletion until the copy is done), restores
    to a local cold tier or a new cold_url, and clones never reuse the source's prefix."""
    cold_url = f"memory://cold-{uuid.uuid4().hex}"
    layout = engine.Layout.parse("hot+warm+cold", background=False, cold_url=cold_url)
    s = engine.open(tmp_path / "src", layout=layout)
    fill(s, 16)
    s.demote(policy="age")
    cold = next(t for t in s._tiers if t.name == "cold")
    client = ObjectStoreClient(cold_url)
    before = {i.name for i in client.list("seg/")}
    assert len(before) >= 2
    real_download = capture_mod._download_cold
    seen: dict[str, Any] = {}

    def compact_first(rc: Any, dst: Path, img: Any) -> None:
        cold.compact(full=True)  # retires every held segment object while the backup holds it
        seen["during"] = {i.name for i in client.list("seg/")}
        real_download(rc, dst, img)

    monkeypatch.setattr(capture_mod, "_download_cold", compact_first)
    result = s.backup(tmp_path / "bk")
    monkeypatch.setattr(capture_mod, "_download_cold", real_download)
    assert before <= seen["during"], "held objects are not deleted mid-copy"
    expect = histories(s)
    v = result["version"]
    engine.restore_backup(tmp_path / "bk", tmp_path / "local")
    with engine.open(tmp_path / "local") as r:
        assert r.layout.cold_url is None and histories(r) == expect
        r.check()
    new_url = f"file://{tmp_path}/restored-cold"
    engine.restore_backup(tmp_path / "bk", tmp_path / "remote", cold_url=new_url)
    with engine.open(tmp_path / "remote") as r:
        assert r.layout.cold_url == new_url and histories(r) == expect
        r.check()
    c = s.clone(tmp_path / "clone", version=v - 4)
    assert c["cold_url"] is None
    with pytest.raises(engine.DestinationExistsError):
        s.clone(tmp_path / "clone2", cold_url=cold_url)  # never the source's prefix
    assert not (tmp_path / "clone2").exists()
    s.close()
    with engine.open(tmp_path / "clone") as c2:
        assert histories(c2) == histories_upto(expect, v - 4)
        with c2.begin() as tx:
            tx.set(T, KEYS[0], b"clone")
        c2.flush(); c2.demote(policy="age")
        c2.check()
    with engine.open(tmp_path / "src", layout=layout) as s2:
        assert histories(s2) == expect  # the clone wrote nothing into the source's prefix
    after = {i.name for i in client.list("seg/")}
    assert not (before & after), "released and unnamed: the retired objects are gone"


def histories_upto(h: dict, v: int) -> dict:
    out = {}
    for k, rows in h.items():
        kept = [r for r in rows if r[0] <= v]
        if kept:
            out[k] = kept
    return out


def _names(url: str, prefix: str = "") -> set[str]:
    return {i.name for i in ObjectStoreClient(url).list(prefix)}


def test_object_store_clone_shares_segments_by_reference(tmp_path: Path) -> None:
    """A clone of a cold_url store given its own cold_url copies no segment: its BASE names
    the source's objects, a ref at the source keeps them through the source's compaction,
    a clone of the clone keeps the original origin, and once the clones let go (their own
    compaction, or their prefix deleted) the source's next sweep deletes what nobody needs."""
    from engine.tiers.cold.shared import BASE_OBJECT, REFS_PREFIX, read_base

    src_url = f"memory://src-{uuid.uuid4().hex}"
    s = engine.open(tmp_path / "src", layout=engine.Layout.parse("hot+warm+cold", background=False,
                                                                 cold_url=src_url))
    fill(s, 16)
    s.demote(policy="age")
    v = s.version - 5
    expect = {u: [list(s.range(T, version=u))] for u in range(v + 1)}
    shared_segs = _names(src_url, "seg/")
    c1_url = f"memory://c1-{uuid.uuid4().hex}"
    r = s.clone(tmp_path / "c1", version=v, cold_url=c1_url)
    assert r["cold_url"] == c1_url and r["trimmed_versions"]["cold"] > 0
    assert BASE_OBJECT in _names(c1_url) and not _names(c1_url, "seg/"), "no segment copied"
    assert len(_names(src_url, REFS_PREFIX)) == 1
    # the source moves on and compacts: every segment the clone names stays
    fill(s, 8, seed=5)
    s.demote(policy="age")
    next(t for t in s._tiers if t.name == "cold").compact(full=True)
    s.close()
    s = engine.open(tmp_path / "src")  # the open-time sweep too
    assert shared_segs <= _names(src_url, "seg/")
    with engine.open(tmp_path / "c1") as c1:
        for u in range(v + 1):
            assert [list(c1.range(T, version=u))] == expect[u]
        c1.check()
        v2 = v - 2
        c1.clone(tmp_path / "c2", version=v2, cold_url=(c2_url := f"memory://c2-{uuid.uuid4().hex}"))
        with c1.begin() as tx:  # the clone's writes land in its own prefix only
            tx.set(T, b"c1-only", b"x")
        c1.flush(); c1.demote(policy="age")
        next(t for t in c1._tiers if t.name == "cold").compact(full=True)
    assert _names(src_url, "seg/") >= shared_segs and s.get(T, b"c1-only") is None
    with engine.open(tmp_path / "c1") as c1:  # c1 let go of the source's segments...
        assert c1.get(T, b"c1-only") == b"x"
    base = read_base(ObjectStoreClient(c1_url))
    assert base is not None and not any(n.startswith("seg/") for n in base)
    assert not (_names(c2_url, "seg/")), "a clone of a clone copies no segment either"
    with engine.open(tmp_path / "c2") as c2:  # ...but c2 still names them at their origin
        for u in range(v2 + 1):
            assert [list(c2.range(T, version=u))] == expect[u]
        c2.check()
    s.close()
    with engine.open(tmp_path / "src") as s2:
        assert shared_segs & _names(src_url, "seg/"), "kept while c2 references them"
    # deleting c2 (its prefix) releases its references: the source's next sweep collects
    for name in _names(c2_url):
        ObjectStoreClient(c2_url).delete(name)
    with engine.open(tmp_path / "src") as s2:
        assert not (shared_segs & _names(src_url, "seg/")), "nobody references them any more"
        assert not _names(src_url, REFS_PREFIX)
        assert [list(s2.range(T, version=v))] == expect[v]
        s2.check()


def test_s3_cold_tier_unreachable_mid_backup(tmp_path: Path, s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store's own cold tier is on S3 and the server stops while the backup downloads
    its objects: a typed error after bounded retries, no staging left, the holds released;
    after the restart the store is intact and backs up fine."""
    cold_url = s3.url()
    layout = engine.Layout.parse("hot+warm+cold", background=False, cold_url=cold_url)
    s = engine.open(tmp_path / "src", layout=layout, storage_options=s3.options)
    try:
        fill(s, 8)
        s.demote(policy="age")
        expect = histories(s)
        real_download = capture_mod._download_cold

        def stop_then_download(rc: Any, dst: Path, img: Any) -> None:
            s3.stop()
            real_download(rc, dst, img)

        monkeypatch.setattr(capture_mod, "_download_cold", stop_then_download)
        try:
            with pytest.raises(engine.StorageIOError):
                s.backup(tmp_path / "bk")
        finally:
            s3.start()
        monkeypatch.setattr(capture_mod, "_download_cold", real_download)
        assert not (tmp_path / "bk").exists()
        assert not list((tmp_path / "src").glob(".tierdb-staging-*"))
        cold = next(t for t in s._tiers if t.name == "cold")
        assert not cold._held
        assert histories(s) == expect
        s.check()
        s.backup(tmp_path / "bk2")
    finally:
        s.close()
    engine.restore_backup(tmp_path / "bk2", tmp_path / "r")
    with engine.open(tmp_path / "r") as r:
        assert histories(r) == expect
