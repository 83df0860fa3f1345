"""SIGKILL a process folding a watch; after restarts no update is lost or applied twice (B5).

The child (``crash_child.py``) writes a feed and folds it with ``watch_applied`` into a
tierdb store whose commits carry data, cursor and an applied-update counter together. The
parent kills it at random moments, restarts it, and finally lets it finish.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import engine
from engine.kv import (
    LocalConnection,
    NatsConnection,
    NatsConnectionConfig,
    StoreFold,
    WatchCursor,
)

from .conftest import NatsServer

CHILD = Path(__file__).with_name("crash_child.py")
TOTAL = 1200  # long enough (>= 1.2 s of feed) that the first kill lands mid-run
ROOT = Path(__file__).resolve().parents[2]


def run_child(args: list[str]) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(CHILD), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.mark.parametrize("kind", ["local", pytest.param("nats", marks=pytest.mark.nats)])
def test_b5_sigkill_while_folding(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = "-"
    if kind == "nats":
        server: NatsServer = request.getfixturevalue("nats_server")
        url = server.url
    bucket = f"crash{uuid.uuid4().hex[:8]}"
    src, fold_path = tmp_path / "src", tmp_path / "fold"
    args = [kind, str(src), str(fold_path), bucket, url, str(TOTAL)]
    rng = random.Random(1234)
    kills = 0
    for _ in range(4):
        p = run_child(args)
        time.sleep(rng.uniform(0.3, 0.9))
        if p.poll() is not None:
            break
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        kills += 1
    p = run_child(args)
    try:
        out, _ = p.communicate(timeout=180)   # generous: the suite shares 2 cores with others
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        pytest.fail(f"the final child did not finish within 180 s: {out.decode()[-3000:]}")
    assert p.returncode == 0, out.decode()[-3000:]
    assert kills >= 1

    if kind == "local":
        store = engine.open(src)
        conn = LocalConnection(store)
    else:
        store = None
        conn = NatsConnection(NatsConnectionConfig(servers=[url], timeout=10.0))
    conn.connect()
    b = conn.store(bucket)
    try:
        expected = {f"k.{i:05d}": str(i).encode() for i in range(TOTAL)}
        assert {e.key: e.value for e in b.scan()} == expected
        last = max(e.version.as_u64() for e in b.scan())
        with StoreFold.open(fold_path) as fold:
            state = fold.state()
            count = int.from_bytes(fold.store.get(fold.table, b"applied-count"), "big")
            assert state == expected          # nothing lost
            assert count == TOTAL                                          # nothing applied twice
            assert fold.cursor() == WatchCursor.from_u64(last)
    finally:
        conn.shutdown()
        if store is not None:
            store.close()
