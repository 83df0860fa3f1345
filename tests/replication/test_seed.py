"""Seeding a replica from a backup: a restored store is another node, follows the stream
from its own version, and is refused when its history is not the stream's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import engine
from engine.replication import ReplicaDiverged, ReplicationUnavailable
from engine.replication.state import load_state

from .conftest import T1, Cluster, all_histories, primary_and_replica, wait_until

pytestmark = pytest.mark.nats


def _commits(store: engine.Store, start: int, n: int, tag: bytes) -> None:
    for i in range(start, start + n):
        with store.begin() as tx:
            tx.set(T1, b"k%d" % (i % 7), tag + b"%d" % i)


def test_a_restored_backup_of_the_primary_follows_as_a_new_replica(
        cluster: Cluster, stream_name: str, tmp_path: Path) -> None:
    p = engine.open(tmp_path / "p")
    p.replicate(cluster.urls, stream_name, replicas=3, ack="sync")
    try:
        _commits(p, 0, 30, b"v")
        p.backup(tmp_path / "bk")
        _commits(p, 30, 20, b"v")
        engine.restore_backup(tmp_path / "bk", tmp_path / "restored")
        mine, theirs = load_state(tmp_path / "restored"), load_state(tmp_path / "p")
        assert mine is not None and theirs is not None
        assert (mine.role, mine.stream, mine.lineage) == ("replica", stream_name, theirs.lineage)
        assert mine.node != theirs.node             # another node, never a co-primary
        r = engine.open_replica(tmp_path / "restored", servers=cluster.urls, stream=stream_name)
        try:
            assert r.wait_for(50, 20)
            assert all_histories(r) == all_histories(p)
            r.promote()
            with pytest.raises(engine.FencedError):
                _commits(p, 50, 1, b"zombie")
            _commits(r, 50, 1, b"new")
            assert r.version == 51 and p.version == 50
        finally:
            r.close()
    finally:
        p.close()


def test_a_backup_holding_commits_the_stream_never_got_is_refused(
        cluster: Cluster, stream_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ack="async" primary applies 3 commits it cannot ship; a backup taken then holds
    them. A replica is promoted and writes other commits at those versions. The restored
    backup must not follow the stream on top of its own versions."""
    with primary_and_replica(cluster, stream_name, tmp_path, ack="async") as (p, r):
        _commits(p, 0, 10, b"v")
        assert p._replication.flush(20) and r.wait_for(10, 20)

        def unreachable(msgs: list[bytes]) -> list[Any]:
            return [ReplicationUnavailable("injected: the network is gone")] * len(msgs)
        monkeypatch.setattr(p._replication, "_publish", unreachable)
        _commits(p, 10, 3, b"unshipped")
        assert p.version == 13 and p.replication_lag() == 3
        p.backup(tmp_path / "bk")
        r.promote()
        _commits(r, 10, 3, b"other")
        assert wait_until(lambda: p._replication._fenced is not None, 20)
        engine.restore_backup(tmp_path / "bk", tmp_path / "restored")
        with pytest.raises(ReplicaDiverged, match="another commit 13"):
            engine.open_replica(tmp_path / "restored", servers=cluster.urls, stream=stream_name)
        # a backup of the new primary is fine
        r.backup(tmp_path / "bk2")
        engine.restore_backup(tmp_path / "bk2", tmp_path / "restored2")
        r2 = engine.open_replica(tmp_path / "restored2", servers=cluster.urls, stream=stream_name)
        try:
            _commits(r, 13, 2, b"more")
            assert r2.wait_for(15, 20) and all_histories(r2) == all_histories(r)
        finally:
            r2.close()
