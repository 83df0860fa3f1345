"""Failover on a real 3-node JetStream cluster with an R3 stream.

The primary runs in a child process committing with ack="sync" and logging every
acknowledged version. (1) kill -9 the primary and one NATS node mid-load, promote a
replica: every acknowledged commit is there at its version with its value, and the history
(time travel at random versions included) equals the dead primary's own store. (2) SIGSTOP
the primary, promote, SIGCONT: its next commit raises FencedError and nothing it wrote after
the promotion is visible anywhere.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import engine
from engine.replication import ReplicaDiverged

from .conftest import Cluster, all_histories, primary_and_replica, wait_until

pytestmark = pytest.mark.nats
HERE = Path(__file__).parent
T = engine.EntryKind.source(1)


def _acked(log: Path) -> dict[int, int]:
    out: dict[int, int] = {}
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].isdigit():
            out[int(parts[0])] = int(parts[1])
    return out


def _start_primary(cluster: Cluster, path: Path, stream: str, log: Path,
                   *extra: str) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, str(HERE / "primary_child.py"), str(path),
                              ",".join(cluster.urls), stream, str(log), *extra],
                             stdout=subprocess.DEVNULL, stderr=open(log.with_suffix(".err"), "wb"))
    ok = wait_until(lambda: log.exists() and b"READY" in log.read_bytes() or child.poll() is not None, 30)
    assert ok and child.poll() is None, log.with_suffix(".err").read_text()[-3000:]
    return child


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.send_signal(signal.SIGCONT)
        child.kill()
        child.wait(10)


def _check_acked(store: engine.Store, acked: dict[int, int]) -> None:
    for v, c in acked.items():
        key, val = b"k%d" % (c % 50), b"v%d" % c
        assert store.get(T, key, version=v) == val, (v, c)
        assert (v, val) in store.history(T, key)


def test_kill9_primary_and_a_node_then_promote_loses_no_acknowledged_commit(
        cluster: Cluster, stream_name: str, tmp_path: Path) -> None:
    _kill9_round(cluster, stream_name, tmp_path, victim=2)


@pytest.mark.stress
def test_kill9_failover_soak(cluster: Cluster, tmp_path: Path) -> None:
    """Many rounds, a different NATS node each time (it sometimes leads the stream)."""
    rounds = int(os.environ.get("TIERDB_REPL_SOAK_ROUNDS", "9"))
    for i in range(rounds):
        _kill9_round(cluster, f"soak{i}x{os.getpid()}", tmp_path / f"r{i}", victim=i % 3)


def _kill9_round(cluster: Cluster, stream_name: str, tmp_path: Path, victim: int) -> None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    log = tmp_path / "primary.log"
    child = _start_primary(cluster, tmp_path / "p", stream_name, log)
    replica = None
    try:
        replica = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name)
        assert wait_until(lambda: len(_acked(log)) >= 300, 60), log.read_text()[-500:]
        child.kill()                       # kill -9 the primary and one NATS node, mid-load
        cluster.nodes[victim].kill()
        child.wait(10)
        acked = _acked(log)
        replica.promote(timeout=60)
        pv = replica.version
        assert pv >= max(acked)
        with replica.begin() as tx:        # the new primary commits (R3 on two nodes)
            tx.set(T, b"after", b"failover")
        assert replica.version == pv + 1
        _check_acked(replica, acked)
        old = engine.open(tmp_path / "p")  # the dead primary's own store (durability normal)
        try:
            assert old.version >= max(acked)
            mine = all_histories(old)
            theirs = {k: [(v, x) for v, x in h if v <= old.version]
                      for k, h in all_histories(replica).items()}
            assert mine == {k: h for k, h in theirs.items() if h}
            for v in random.Random(9).sample(range(1, old.version + 1), 20):
                assert list(old.range(T, version=v)) == list(replica.range(T, version=v))
        finally:
            old.close()
    finally:
        _stop(child)
        if replica is not None:
            replica.close()
        cluster.heal()


def test_resumed_old_primary_is_fenced_and_its_writes_are_nowhere(
        cluster: Cluster, stream_name: str, tmp_path: Path) -> None:
    log = tmp_path / "primary.log"
    child = _start_primary(cluster, tmp_path / "p", stream_name, log)
    replica = other = None
    try:
        replica = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name)
        assert wait_until(lambda: len(_acked(log)) >= 100, 60)
        child.send_signal(signal.SIGSTOP)
        replica.promote(timeout=60)
        pv = replica.version
        for i in range(5):
            with replica.begin() as tx:
                tx.set(T, b"k%d" % i, b"new%d" % i)
        child.send_signal(signal.SIGCONT)
        assert child.wait(60) == 3, log.read_text()[-1000:]
        lines = log.read_text().splitlines()
        assert lines[-1].startswith("FENCED")
        acked = _acked(log)
        assert max(acked) <= pv
        _check_acked(replica, acked)
        old = engine.open(tmp_path / "p")
        try:
            assert old.version <= pv          # nothing after the promotion applied locally
            hist = all_histories(replica)
            mine = all_histories(old)
            assert mine == {k: h for k, h in ((k, [(v, x) for v, x in h if v <= old.version])
                                              for k, h in hist.items()) if h}
        finally:
            old.close()
        old = engine.open(tmp_path / "p")
        try:
            with pytest.raises(engine.FencedError):  # it cannot take the stream back
                old.replicate(cluster.urls, stream_name, replicas=3)
        finally:
            old.close()
        with pytest.raises(ReplicaDiverged):         # nor follow it (it could have forked)
            engine.open_replica(tmp_path / "p", servers=cluster.urls, stream=stream_name)
        other = engine.open_replica(tmp_path / "r2", servers=cluster.urls, stream=stream_name)
        assert other.wait_for(pv + 5, 20)
        assert all_histories(other) == all_histories(replica)
        assert [other.get(T, b"k%d" % i) for i in range(5)] == [b"new%d" % i for i in range(5)]
    finally:
        _stop(child)
        for s in (replica, other):
            if s is not None:
                s.close()


def test_async_primary_reports_lag_and_is_fenced_after_a_promotion(
        cluster: Cluster, stream_name: str, tmp_path: Path) -> None:
    with primary_and_replica(cluster, stream_name, tmp_path, ack="async") as (p, r):
        for i in range(200):
            with p.begin() as tx:
                tx.set(T, b"k%d" % (i % 7), b"v%d" % i)
        assert 0 <= p.replication_lag() <= 200
        assert p._replication.flush(20) and p.replication_lag() == 0
        assert r.wait_for(200, 20)
        r.promote()
        with r.begin() as tx:
            tx.set(T, b"k0", b"new")
        # the old primary applies locally, then its shipper meets the claim: fenced
        with pytest.raises(engine.FencedError):
            for _ in range(200):
                with p.begin() as tx:
                    tx.set(T, b"zombie", b"1")
                time.sleep(0.05)
        assert r.get(T, b"zombie") is None and r.get(T, b"k0") == b"new"
        with pytest.raises(engine.FencedError):
            p.replication_snapshot()
