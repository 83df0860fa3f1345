"""A replica keeps following when the NATS node it is connected to dies (R3 stream)."""

from __future__ import annotations

from pathlib import Path

import pytest

import engine

from .conftest import T1, Cluster, all_histories

pytestmark = pytest.mark.nats


def test_replica_follows_through_the_loss_of_its_nats_node(cluster: Cluster, stream_name: str,
                                                           tmp_path: Path) -> None:
    p = engine.open(tmp_path / "p", layout="memory")
    r = None
    try:
        p.replicate(cluster.urls, stream_name, replicas=3, ack="sync")
        r = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name)
        for i in range(20):
            with p.begin() as tx:
                tx.set(T1, b"k%d" % (i % 5), b"a%d" % i)
        assert r.wait_for(20, 20)
        url = r._follower.link.conn._nc.connected_url.netloc
        victim = next(n for n in cluster.nodes if url.endswith(f":{n.client}"))
        victim.kill()
        done = 20
        for i in range(40):               # the primary may need a retry while leaders move
            for _ in range(100):
                try:
                    with p.begin() as tx:
                        tx.set(T1, b"k%d" % (i % 5), b"b%d" % i)
                    done += 1
                    break
                except (engine.replication.ReplicationError, engine.ConflictError):
                    continue
        assert p.version >= 60
        assert r.wait_for(p.version, 60), r.replication_error
        assert all_histories(r) == all_histories(p)
    finally:
        if r is not None:
            r.close()
        p.close()
        cluster.heal()
