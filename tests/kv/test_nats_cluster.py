"""A 3-node loopback JetStream cluster (nats-jetstream-kv.md 7, scenarios 23-26; A16).

R3 bucket: one node down keeps reads and writes going; two down gives errors within the
bound (no hangs); after restarting the nodes every acknowledged write is present.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

from engine.kv import (
    KvError,
    NatsConnection,
    NatsConnectionConfig,
    OperationFailed,
    StoreConfig,
)

from .conftest import ClusterNode, free_port, nats_binary, wait_for

pytestmark = pytest.mark.nats


def test_cluster_r3_survives_one_node_and_fails_fast_without_quorum() -> None:
    binary, why = nats_binary()
    if binary is None:
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="tierdb-nats-cluster-"))
    clients = [free_port() for _ in range(3)]
    routes = [free_port() for _ in range(3)]
    nodes = [ClusterNode(binary, root, i + 1, clients[i], routes) for i in range(3)]
    conn = NatsConnection(NatsConnectionConfig(
        servers=[f"nats://127.0.0.1:{p}" for p in clients], timeout=4.0, reconnect_wait=0.2))
    try:
        for n in nodes:
            n.start()
        assert wait_for(lambda: all(b"Server is ready" in n.log.read_bytes() for n in nodes if n.log.exists()), 20)
        conn.connect()

        def make() -> object:
            try:
                return conn.store_with_config(StoreConfig("r3", num_replicas=3))
            except KvError:
                return None
        assert wait_for(lambda: (b := make()) is not None and bool(b), timeout=30, interval=0.5)
        b = conn.store("r3")
        acked: dict[str, bytes] = {}
        for i in range(10):
            b.put(f"k{i}", b"v1")
            acked[f"k{i}"] = b"v1"

        # which node is the client on? kill another one first, then a second one
        nodes[2].kill()
        assert wait_for(lambda: _try_put(b, "one-down", acked), timeout=30, interval=0.5)
        assert b.get("k1").value == b"v1"

        nodes[1].kill()
        t0 = time.monotonic()
        errors = 0
        for i in range(3):
            try:
                b.put(f"lost{i}", b"x")
                acked[f"lost{i}"] = b"x"      # acknowledged: must survive
            except (OperationFailed, KvError):
                errors += 1
        assert errors >= 1
        assert time.monotonic() - t0 < 3 * 4.0 + 5     # each call bounded; nothing hangs

        nodes[1].start()
        nodes[2].start()
        def intact() -> bool:
            try:
                return all(b.get(k) is not None and b.get(k).value == v for k, v in acked.items())
            except KvError:
                return False
        assert wait_for(intact, timeout=60, interval=0.5)
    finally:
        conn.shutdown()
        for n in nodes:
            n.kill()
        shutil.rmtree(root, ignore_errors=True)


def _try_put(b: object, key: str, acked: dict[str, bytes]) -> bool:
    try:
        b.put(key, b"ok")  # type: ignore[attr-defined]
    except KvError:
        return False
    acked[key] = b"ok"
    return True


def test_r3_on_single_node_is_operation_failed(nats_server: object) -> None:
    c = NatsConnection(NatsConnectionConfig(servers=[nats_server.url], timeout=10.0))  # type: ignore[attr-defined]
    c.connect()
    try:
        with pytest.raises(OperationFailed):
            c.store_with_config(StoreConfig("r3single", num_replicas=3))
    finally:
        c.shutdown()


def test_no_thread_leak_after_shutdown(nats_server: object) -> None:
    before = set(threading.enumerate())
    for _ in range(3):
        c = NatsConnection(NatsConnectionConfig(servers=[nats_server.url], timeout=10.0))  # type: ignore[attr-defined]
        c.connect()
        w = c.store("leak").watch_all()
        c.shutdown()
        assert w.ended
    assert wait_for(lambda: set(threading.enumerate()) <= before, timeout=5)
