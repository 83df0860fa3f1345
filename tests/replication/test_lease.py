"""Automatic failover through the primary lease, on the real 3-node cluster: a replica that
watches the lease promotes itself when the primary dies or stalls, exactly one of several
wins, the others follow it, and a primary that never held a lease is never replaced."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

import engine

from .conftest import T1, Cluster, all_histories, wait_until
from .test_failover import T, _acked, _check_acked, _start_primary, _stop

pytestmark = pytest.mark.nats


def _writable(store: engine.Store) -> bool:
    return store._read_only is None


def test_replicas_promote_one_of_them_when_the_primary_dies(cluster: Cluster, stream_name: str,
                                                            tmp_path: Path) -> None:
    log = tmp_path / "primary.log"
    child = _start_primary(cluster, tmp_path / "p", stream_name, log, "4", "2.0")
    rs: list[engine.Store] = []
    try:
        rs = [engine.open_replica(tmp_path / f"r{i}", servers=cluster.urls, stream=stream_name,
                                  auto_promote=2.0) for i in range(2)]
        assert wait_until(lambda: len(_acked(log)) >= 100, 60)
        time.sleep(1.5)                    # both replicas have seen the lease move
        assert not any(_writable(r) for r in rs)
        child.kill()                       # kill -9: the lease stops moving
        child.wait(10)
        acked = _acked(log)
        assert wait_until(lambda: any(_writable(r) for r in rs), 30)
        time.sleep(4.5)                    # the winner renews: nobody else takes over
        winners = [r for r in rs if _writable(r)]
        assert len(winners) == 1, [r.replication_status() for r in rs]  # type: ignore[attr-defined]
        new, other = winners[0], next(r for r in rs if r is not winners[0])
        assert new.replication_status()["lease"]["lost"] is False  # type: ignore[attr-defined]
        _check_acked(new, acked)
        with new.begin() as tx:
            tx.set(T, b"after", b"failover")
        assert other.wait_for(new.version, 20)  # type: ignore[attr-defined]
        assert all_histories(other) == all_histories(new)
    finally:
        _stop(child)
        for r in rs:
            r.close()


def test_a_stalled_primary_is_replaced_and_fenced(cluster: Cluster, stream_name: str,
                                                  tmp_path: Path) -> None:
    log = tmp_path / "primary.log"
    child = _start_primary(cluster, tmp_path / "p", stream_name, log, "2", "2.0")
    r = None
    try:
        r = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name,
                                auto_promote=2.0)
        assert wait_until(lambda: len(_acked(log)) >= 50, 60)
        child.send_signal(signal.SIGSTOP)  # alive but silent: its lease lapses
        assert wait_until(lambda: _writable(r), 30)
        pv = r.version
        with r.begin() as tx:
            tx.set(T, b"k0", b"new")
        child.send_signal(signal.SIGCONT)
        assert child.wait(60) == 3, log.read_text()[-1000:]   # its next commit: FencedError
        assert max(_acked(log)) <= pv
        assert r.get(T, b"k0") == b"new" and r.version == pv + 1
    finally:
        _stop(child)
        if r is not None:
            r.close()


def test_no_lease_no_promotion_and_a_manual_promotion_takes_the_lease(
        cluster: Cluster, stream_name: str, tmp_path: Path) -> None:
    p = engine.open(tmp_path / "p")
    p.replicate(cluster.urls, stream_name, replicas=3, ack="sync")     # no lease
    watcher = engine.open_replica(tmp_path / "w", servers=cluster.urls, stream=stream_name,
                                  auto_promote=1.5)
    manual = engine.open_replica(tmp_path / "m", servers=cluster.urls, stream=stream_name)
    try:
        with p.begin() as tx:
            tx.set(T1, b"a", b"1")
        p.close()
        time.sleep(3.5)
        assert not _writable(watcher)      # never promotes on a lease it has not seen
        manual.wait_for(1, 20)
        manual.promote(lease=1.5)          # takes the lease and renews it
        with manual.begin() as tx:
            tx.set(T1, b"b", b"2")
        assert watcher.wait_for(2, 20)
        time.sleep(3.5)                    # the lease moves: the watcher stays a replica
        assert not _writable(watcher) and watcher.get(T1, b"b") == b"2"
        manual.close()                     # the new primary goes away: its lease lapses
        assert wait_until(lambda: _writable(watcher), 20)
        with watcher.begin() as tx:
            tx.set(T1, b"c", b"3")
        assert watcher.version == 3
    finally:
        watcher.close()
        manual.close()
