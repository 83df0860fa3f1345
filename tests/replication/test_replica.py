"""Replicas over a real 3-node JetStream cluster: following, read-only, snapshot bootstrap,
crash recovery of a replica, and bad input (each a typed error, nothing partial applied)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import engine
from engine.replication import (
    CommitTooLarge,
    CorruptMessage,
    ForeignStream,
    ReplicationError,
    StreamNotFound,
    VersionGap,
)
from engine.replication.format import encode_commit
from engine.replication.link import Link
from engine.replication.state import load_state

from .conftest import T1, T2, Cluster, all_histories

pytestmark = pytest.mark.nats
HERE = Path(__file__).parent


def _load(store: engine.Store, n: int, seed: int = 1) -> None:
    rnd = random.Random(seed)
    for i in range(n):
        with store.begin() as tx:
            for _ in range(rnd.randint(1, 3)):
                k = b"k%03d" % rnd.randrange(40)
                if rnd.random() < 0.15:
                    tx.remove(T1, k)
                else:
                    tx.set(T1, k, b"v%d" % i)
            if rnd.random() < 0.3:
                tx.set(T2, b"op%d" % rnd.randrange(5), os.urandom(rnd.randrange(0, 64)))


def test_replica_follows_reads_time_travel_and_refuses_writes(cluster: Cluster, stream_name: str,
                                                              tmp_path: Path) -> None:
    p = engine.open(tmp_path / "p", layout="hot+warm")
    p.replicate(cluster.urls, stream_name, replicas=3, ack="sync")
    _load(p, 60)
    r = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name)
    try:
        _load(p, 40, seed=2)
        assert r.wait_for(p.version, timeout=20)
        assert r.version == p.version == 100
        assert all_histories(r) == all_histories(p)
        for v in random.Random(3).sample(range(1, 101), 15):   # time travel at the same versions
            assert list(r.range(T1, version=v)) == list(p.range(T1, version=v))
            assert r.commit_time(v) == p.commit_time(v)
        assert r.lag() == 0
        with pytest.raises(engine.ReadOnlyError):
            with r.begin() as tx:
                tx.set(T1, b"x", b"y")
        with pytest.raises(engine.ReadOnlyError):
            r.erase(T1, b"k001")
        with pytest.raises(engine.FutureVersionError):
            r.get(T1, b"k001", version=101)
        assert r.version == 100
        state = load_state(tmp_path / "r")
        assert state is not None and state.role == "replica" and state.stream == stream_name
    finally:
        r.close()
        p.close()


def test_snapshot_bootstrap_equals_follow_from_start(cluster: Cluster, stream_name: str,
                                                     tmp_path: Path) -> None:
    p = engine.open(tmp_path / "p")
    p.replicate(cluster.urls, stream_name, replicas=3, ack="async")
    a = engine.open_replica(tmp_path / "a", servers=cluster.urls, stream=stream_name)
    try:
        _load(p, 150, seed=4)
        p.flush()
        p.demote()                       # some history in cold: the snapshot reads every tier
        snap = p.replication_snapshot()
        assert snap["version"] == 150
        _load(p, 50, seed=5)            # the tail after the snapshot
        assert p._replication.flush(20)
        link = Link(cluster.urls, stream_name)
        link.connect()
        try:
            first_commit = link.first_after(link.commit_subject, 1)
        finally:
            link.close()
        assert first_commit is not None and first_commit[0] > 150   # trimmed below the snapshot
        b = engine.open_replica(tmp_path / "b", servers=cluster.urls, stream=stream_name,
                                layout="hot+warm")
        try:
            assert a.wait_for(200, 20) and b.wait_for(200, 20)
            hp = all_histories(p)
            assert all_histories(a) == hp
            assert all_histories(b) == hp
            assert len(hp) > 40
        finally:
            b.close()
    finally:
        a.close()
        p.close()


def test_replica_killed_mid_apply_resumes_from_its_position(cluster: Cluster, stream_name: str,
                                                           tmp_path: Path) -> None:
    p = engine.open(tmp_path / "p", layout="memory")
    p.replicate(cluster.urls, stream_name, replicas=3, ack="async")
    _load(p, 800, seed=6)
    assert p._replication.flush(30)
    path = tmp_path / "r"
    child = subprocess.Popen([sys.executable, str(HERE / "replica_child.py"), str(path),
                              ",".join(cluster.urls), stream_name],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            seen = int(line)
            if seen >= 200:
                break
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert 200 <= seen < 800, child.stderr.read() if child.stderr else ""
    r = engine.open_replica(path, servers=cluster.urls, stream=stream_name, layout="hot+warm")
    try:
        assert r.version >= seen            # everything it reported applied survived
        _load(p, 20, seed=7)
        assert r.wait_for(820, 30), r.replication_error
        assert r.replication_error is None
        assert all_histories(r) == all_histories(p)
    finally:
        r.close()
        p.close()


def test_wrong_stream_name_is_stream_not_found(cluster: Cluster, stream_name: str, tmp_path: Path) -> None:
    with pytest.raises(StreamNotFound):
        engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name)
    r = engine.open(tmp_path / "r")      # the failed open left an empty, unlocked store
    assert r.version == 0
    r.close()
    with pytest.raises(ValueError):
        engine.open_replica(tmp_path / "x", servers=cluster.urls, stream="bad.name")


def test_stream_written_by_something_else_is_refused(cluster: Cluster, stream_name: str,
                                                     tmp_path: Path) -> None:
    link = Link(cluster.urls, stream_name)
    link.connect()
    try:
        link.ensure_stream(1)
        link.publish(link.commit_subject, b"not a tierdb message", 0)
    finally:
        link.close()
    with pytest.raises(ForeignStream):
        engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name)
    p = engine.open(tmp_path / "p")
    with pytest.raises(ForeignStream):
        p.replicate(cluster.urls, stream_name, replicas=1)
    with p.begin() as tx:              # still a working, unreplicated store
        tx.set(T1, b"a", b"1")
    assert p.version == 1 and p.replication_lag() == 0
    p.close()


@pytest.mark.parametrize("damage", ["checksum", "gap", "other-stream"])
def test_bad_message_stops_the_replica_with_nothing_applied(cluster: Cluster, stream_name: str,
                                                            tmp_path: Path, damage: str) -> None:
    p = engine.open(tmp_path / "p")
    prim = p.replicate(cluster.urls, stream_name, replicas=1, ack="sync")
    _load(p, 5, seed=8)
    r = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name)
    try:
        assert r.wait_for(5, 20)
        before = all_histories(r)
        batches = {T1: [(b"evil", b"1")], T2: [(b"evil", None)]}
        version = 7 if damage == "gap" else 6
        stream = "elsewhere" if damage == "other-stream" else stream_name
        data = bytearray(encode_commit(stream, prim.lineage, prim.node, version, 1.0, batches))
        if damage == "checksum":
            data[60] ^= 0xFF
        link = Link(cluster.urls, stream_name)
        link.connect()
        try:
            _, last = link.info()
            link.publish(link.commit_subject, bytes(data), last)
        finally:
            link.close()
        expected = {"checksum": CorruptMessage, "gap": VersionGap, "other-stream": ForeignStream}[damage]
        with pytest.raises(expected):
            r.wait_for(6, 20)
        assert isinstance(r.replication_error, expected)
        assert r.version == 5 and all_histories(r) == before and r.get(T1, b"evil") is None
        # the primary's next commit meets a message it did not write: a typed error, twice,
        # and nothing applied
        for _ in range(2):
            with pytest.raises((engine.FencedError, ReplicationError)):
                with p.begin() as tx:
                    tx.set(T1, b"after", b"x")
        assert p.version == 5 and p.get(T1, b"after") is None and p.get(T1, b"evil") is None
    finally:
        r.close()
        p.close()


@pytest.mark.parametrize("ack", ["sync", "async"])
def test_a_commit_larger_than_a_message_ships_in_parts(cluster: Cluster, stream_name: str,
                                                       tmp_path: Path, ack: str) -> None:
    """A 2.5 MiB commit (max_payload is 1 MiB) goes as parts of one atomic batch; a replica
    that follows live and one that catches up later both apply it whole, at its version."""
    p = engine.open(tmp_path / "p")
    p.replicate(cluster.urls, stream_name, replicas=1, ack=ack)
    live = engine.open_replica(tmp_path / "live", servers=cluster.urls, stream=stream_name)
    big = bytes(range(256)) * (10 << 10)
    try:
        with p.begin() as tx:
            tx.set(T1, b"small", b"1")
        with p.begin() as tx:
            tx.set(T1, b"big", big)
            for i in range(2000):
                tx.set(T2, b"row%05d" % i, b"%d" % i)
        with p.begin() as tx:
            tx.set(T1, b"next", b"2")
        if ack == "async":
            assert p._replication.flush(30)
        first, last = p._replication.link.info()
        assert last - first + 1 >= 1 + 3 + 2     # claim, 1 + >= 3 parts + 1 commits
        later = engine.open_replica(tmp_path / "later", servers=cluster.urls, stream=stream_name)
        try:
            for r in (live, later):
                assert r.wait_for(3, 20)
                assert r.get(T1, b"big") == big and r.get(T2, b"row01999") == b"1999"
                assert r.get(T1, b"next", version=2) is None
                assert all_histories(r) == all_histories(p)
        finally:
            later.close()
    finally:
        live.close()
        p.close()


def test_oversized_commit_without_atomic_batches_is_refused(cluster: Cluster, stream_name: str,
                                                            tmp_path: Path) -> None:
    """Servers without atomic batches (before 2.12) cannot take a commit in parts: it is
    refused before anything is applied, and the stream stays usable."""
    p = engine.open(tmp_path / "p")
    p.replicate(cluster.urls, stream_name, replicas=1, ack="sync")
    p._replication.link.atomic = False
    with p.begin() as tx:
        tx.set(T1, b"small", b"1")
    with pytest.raises(CommitTooLarge, match="atomic batches"):
        with p.begin() as tx:
            tx.set(T1, b"big", b"x" * (2 << 20))
    assert p.version == 1 and p.get(T1, b"big") is None
    with p.begin() as tx:               # the stream is intact: the next commit ships
        tx.set(T1, b"next", b"2")
    r = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name)
    try:
        assert r.wait_for(2, 20)
        assert r.get(T1, b"next") == b"2" and r.get(T1, b"big") is None
    finally:
        r.close()
        p.close()


def test_replica_with_change_feed_feeds_replicated_commits(cluster: Cluster, stream_name: str,
                                                          tmp_path: Path) -> None:
    p = engine.open(tmp_path / "p", changefeed=True)
    p.replicate(cluster.urls, stream_name, replicas=1, ack="sync")
    _load(p, 25, seed=11)
    r = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name, changefeed=True)
    try:
        assert r.wait_for(25, 20)
        mine = [(c.version, c.writes) for c in r.changes(0, wait=False)]
        theirs = [(c.version, c.writes) for c in p.changes(0, wait=False)]
        assert mine == theirs and len(mine) == 25
    finally:
        r.close()
        p.close()
