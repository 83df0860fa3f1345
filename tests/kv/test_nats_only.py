"""NATS-specific behaviour of the NATS backend (nats-jetstream-kv.md section 12).

Only what the local backend has no analogue of: bucket limits and discard policies, bucket
TTL, the payload limit, a dead server, and raw server quirks tierdb works around.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from engine.kv import (
    DiscardPolicy,
    NatsConnection,
    NatsConnectionConfig,
    NotConnected,
    OperationFailed,
    StoreConfig,
    Timeout,
    WatchCursor,
)

from .conftest import NatsServer, nats_binary, wait_for

pytestmark = pytest.mark.nats


@pytest.fixture
def conn(nats_server: NatsServer):
    c = NatsConnection(NatsConnectionConfig(servers=[nats_server.url], timeout=10.0))
    c.connect()
    yield c
    c.shutdown()


def _name() -> str:
    import uuid
    return f"n{uuid.uuid4().hex[:12]}"


def test_12_discard_new_rejects_new_keys_keeps_old(conn: NatsConnection) -> None:
    b = conn.store_with_config(StoreConfig(_name(), max_bytes=4096))
    b.put("a", b"x" * 1000)
    b.put("b", b"x" * 1000)
    with pytest.raises(OperationFailed):
        for i in range(10):
            b.put(f"new{i}", b"x" * 1000)
    assert b.get("a").value == b"x" * 1000
    b.put("a", b"y" * 1000)          # an overwrite at history 1 still fits
    assert b.purge("b") is True      # and a purge still works
    assert b.get("a").value == b"y" * 1000


def test_12_discard_old_never_rejects_and_first_seq_advances(conn: NatsConnection) -> None:
    b = conn.store_with_config(StoreConfig(_name(), max_bytes=4096, discard=DiscardPolicy.OLD))
    first = b.first_seq()
    for i in range(20):
        b.put(f"k{i}", b"x" * 500)
    assert b.first_seq() > first
    with pytest.raises(Exception, match="below first_seq"):
        b.watch_all_from(WatchCursor.from_u64(1))


def test_13_bucket_max_age_removes_key(conn: NatsConnection) -> None:
    b = conn.store_with_config(StoreConfig(_name(), max_age=1.0))
    b.put("k", b"v")
    assert wait_for(lambda: b.get("k") is None, timeout=10, interval=0.2)


def test_19_value_over_max_payload_is_operation_failed(conn: NatsConnection) -> None:
    b = conn.store(_name())
    with pytest.raises(OperationFailed):
        b.put("big", b"x" * (2 << 20))
    assert b.get("big") is None


def test_14_prefix_listing_is_not_substring_matching(conn: NatsConnection) -> None:
    b = conn.store(_name())
    b.put("fresh", b"1")
    b.put("h.1", b"2")
    assert b.keys("h.") == ["h.1"]


def test_28_dead_server_times_out_and_health_follows_events() -> None:
    binary, why = nats_binary()
    if binary is None:
        pytest.skip(why)
    d = Path(tempfile.mkdtemp(prefix="tierdb-nats-dead-"))
    srv = NatsServer(binary, d)
    srv.start()
    c = NatsConnection(NatsConnectionConfig(servers=[srv.url], timeout=2.0))
    try:
        with pytest.raises(NotConnected):
            c.store("x")
        c.connect()
        b = c.store("dead")
        b.put("k", b"v")
        assert c.is_healthy()
        assert srv.proc is not None
        srv.proc.kill()
        srv.proc.wait()
        assert wait_for(lambda: not c.is_healthy(), timeout=10)
        t0 = time.monotonic()
        with pytest.raises(Timeout):
            b.get("k")
        assert time.monotonic() - t0 < 5
    finally:
        t0 = time.monotonic()
        c.shutdown()
        assert time.monotonic() - t0 < 20
        assert not c.is_healthy()
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def test_connect_failure_is_connection_failed() -> None:
    from engine.kv import ConnectionFailed

    from .conftest import free_port
    c = NatsConnection(NatsConnectionConfig(servers=[f"nats://127.0.0.1:{free_port()}"],
                                            timeout=5.0, connect_timeout=1.0))
    with pytest.raises(ConnectionFailed):
        c.connect()
    assert not c.is_healthy()
    c.shutdown()
