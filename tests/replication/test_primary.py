"""The primary on its own single-node server: a server that goes away makes commits fail
with a typed error and apply nothing; a restarted primary resumes its stream."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kv.conftest import NatsServer, running_nats_server

import engine
from engine.replication import ReplicationUnavailable

from .conftest import T1, all_histories, wait_until

pytestmark = pytest.mark.nats


@pytest.fixture
def server() -> Iterator[NatsServer]:
    with running_nats_server("tierdb-repl-single-") as srv:
        yield srv


def test_server_down_commit_fails_typed_and_applies_nothing(server: NatsServer, tmp_path: Path) -> None:
    p = engine.open(tmp_path / "p", layout="warm")
    p.replicate([server.url], "down", replicas=1, ack="sync", timeout=2.0)
    for i in range(5):
        with p.begin() as tx:
            tx.set(T1, b"k%d" % i, b"v")
    server.stop()
    conn = p._replication.link.conn
    assert wait_until(lambda: not conn.is_healthy(), 10)
    with pytest.raises(ReplicationUnavailable):
        with p.begin() as tx:
            tx.set(T1, b"lost", b"x")
    assert p.version == 5 and p.get(T1, b"lost") is None
    server.start()                       # same port and directory: the stream is back
    def commit() -> bool:
        try:
            with p.begin() as tx:
                tx.set(T1, b"after", b"y")
        except (ReplicationUnavailable, engine.ConflictError):
            return False
        return True
    assert wait_until(commit, 30, 0.2)
    assert p.version == 6 and p.get(T1, b"after") == b"y" and p.get(T1, b"lost") is None
    r = engine.open_replica(tmp_path / "r", servers=[server.url], stream="down", layout="warm")
    try:
        assert r.wait_for(6, 20)
        assert all_histories(r) == all_histories(p)
    finally:
        r.close()
        p.close()


def test_restarted_primary_resumes_its_stream(server: NatsServer, tmp_path: Path) -> None:
    p = engine.open(tmp_path / "p")
    p.replicate([server.url], "again", replicas=1, ack="sync")
    for i in range(10):
        with p.begin() as tx:
            tx.set(T1, b"k%d" % (i % 3), b"v%d" % i)
    p.close()
    p = engine.open(tmp_path / "p")
    with p.begin() as tx:                # not replicating: a local commit the stream never saw
        tx.set(T1, b"local", b"only")
    with pytest.raises(engine.replication.ReplicaDiverged):
        p.replicate([server.url], "again", replicas=1, ack="sync")
    p.close()
    shutil.rmtree(tmp_path / "p")
    q = engine.open(tmp_path / "q")
    with pytest.raises(engine.replication.ForeignStream):   # another store's stream
        q.replicate([server.url], "again", replicas=1)
    q.close()
    r = engine.open_replica(tmp_path / "r", servers=[server.url], stream="again")
    try:
        assert r.wait_for(10, 20) and r.version == 10
    finally:
        r.close()


def test_reopened_primary_continues_and_replicas_see_one_history(server: NatsServer, tmp_path: Path) -> None:
    p = engine.open(tmp_path / "p")
    p.replicate([server.url], "cont", replicas=1, ack="async")
    for i in range(30):
        with p.begin() as tx:
            tx.set(T1, b"k%d" % (i % 4), b"v%d" % i)
    p.close()                            # close ships what async replication held
    p = engine.open(tmp_path / "p")
    p.replicate([server.url], "cont", replicas=1, ack="sync")
    for i in range(30, 40):
        with p.begin() as tx:
            tx.set(T1, b"k%d" % (i % 4), b"v%d" % i)
    r = engine.open_replica(tmp_path / "r", servers=[server.url], stream="cont")
    try:
        assert r.wait_for(40, 20)
        assert all_histories(r) == all_histories(p)
    finally:
        r.close()
        p.close()


def test_scheduled_snapshots_trim_the_stream(server: NatsServer, tmp_path: Path) -> None:
    p = engine.open(tmp_path / "p", layout="memory")
    prim = p.replicate([server.url], "sched", replicas=1, ack="sync", snapshot_interval=0.2)
    try:
        for i in range(20):
            with p.begin() as tx:
                tx.set(T1, b"k%d" % (i % 3), b"v%d" % i)
        assert wait_until(lambda: (prim.last_snapshot or {}).get("version") == 20, 20)
        r = engine.open_replica(tmp_path / "r", servers=[server.url], stream="sched")
        try:
            assert r.version == 20             # loaded from the snapshot: no commit is left
            assert all_histories(r) == all_histories(p)
        finally:
            r.close()
    finally:
        p.close()
