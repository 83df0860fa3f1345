"""KvTtl.put_with_ttl on both backends (issue 12).

Local: an expired key reads as absent at once (get, entry, keys, scan, create/update), the
connection's reaper turns the expiry into a PURGE marker that watches deliver, and the
expired revision's bytes are dropped. NATS: per-message TTL on 2.11+ servers (the tests'
2.15.1), rounded up to whole seconds, with server-placed markers so watches see the expiry;
``capabilities().ttl`` is truthful on each server version.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import engine
from engine.kv import (
    LocalConnection,
    NotConnected,
    OperationFailed,
    Purge,
    Put,
    RevisionMismatch,
    StoreConfig,
    WatchScope,
)
from engine.kv.nats import nats_ttl_header, server_supports_ttl
from engine.kv.ttl import TTL_PREFIX, check_ttl

from .conftest import Backend, NatsServer, drain, quiet, wait_for


def _ttl(backend: Backend) -> float:
    # NATS counts whole seconds (minimum 1) and expires within about a second after
    return 0.3 if backend.kind == "local" else 1.0


def _gone(b, key: str) -> bool:
    return b.get(key) is None


# -- both backends ----------------------------------------------------------------------


def test_capabilities_and_ttl_writer(backend: Backend) -> None:
    assert backend.conn.capabilities().ttl is True
    b = backend.bucket()
    assert b.ttl_writer() is b


def test_expired_key_reads_as_absent_everywhere(backend: Backend) -> None:
    b = backend.bucket()
    b.put("keep.a", b"1")
    # 3 TTLs: present when read just after, even on a busy machine
    v = b.ttl_writer().put_with_ttl("tmp.x", b"soon gone", 3 * _ttl(backend))
    assert b.get("tmp.x").value == b"soon gone" and b.get("tmp.x").version == v
    assert b.keys() == ["keep.a", "tmp.x"]
    assert wait_for(lambda: _gone(b, "tmp.x"), timeout=10)
    assert b.entry("tmp.x") is None
    assert b.keys() == ["keep.a"] and b.keys("tmp.") == []
    assert [e.key for e in b.scan()] == ["keep.a"]
    with pytest.raises(RevisionMismatch):
        b.update("tmp.x", b"cas on the expired revision", v)
    b.create("tmp.x", b"again")                # absent: create succeeds
    assert b.get("tmp.x").value == b"again"


def test_watch_delivers_the_expiry_as_a_purge(backend: Backend) -> None:
    b = backend.bucket()
    b.put("other", b"o")
    with b.watch(WatchScope.Prefix("t.")) as w:
        v = b.put_with_ttl("t.k", b"v", _ttl(backend))
        got = drain(w, 2, timeout=15)
        assert isinstance(got[0], Put) and got[0].entry.value == b"v" and got[0].version == v
        assert isinstance(got[1], Purge) and got[1].key == "t.k"
        assert got[1].version.as_u64() > v.as_u64()
        assert quiet(w, 0.2) == []
    assert b.get("t.k") is None
    assert [type(u) for u in b.history("t.k")] == [Purge]   # the value's revision is gone


def test_put_with_ttl_rolls_up_history_and_a_later_write_cancels_it(backend: Backend) -> None:
    b = backend.bucket(max_history=5)
    b.put("k", b"1")
    b.put("k", b"2")
    # 3 TTLs: the history must still hold the value when it is read just after (a busy
    # machine can take a whole second between the two calls)
    v = b.put_with_ttl("k", b"ttl", 3 * _ttl(backend))
    assert [(type(u), u.version) for u in b.history("k")] == [(Put, v)]
    b.put("k", b"kept")                             # an ordinary write: no TTL any more
    b.put_with_ttl("other", b"x", _ttl(backend))   # an expiry to wait for
    assert wait_for(lambda: _gone(b, "other"), timeout=10)
    time.sleep(0.2)
    assert b.get("k").value == b"kept"
    # the superseded TTL revision still leaves the history at its TTL (NATS removes the
    # message; locally the reaper drops the revision); reads never saw a difference
    assert wait_for(lambda: [u.entry.value for u in b.history("k") if isinstance(u, Put)] == [b"kept"],
                    timeout=15)
    assert b.get("k").value == b"kept" and b.keys() == ["k"]


@pytest.mark.parametrize("ttl", [0, -1, float("nan"), float("inf"), True, "1", None, 2.0 ** 40])
def test_invalid_ttl_rejected_before_io(backend: Backend, ttl: object) -> None:
    b = backend.bucket()
    with pytest.raises(OperationFailed, match="ttl"):
        b.put_with_ttl("k", b"v", ttl)  # type: ignore[arg-type]
    with pytest.raises(OperationFailed):
        b.put_with_ttl("bad key", b"v", 1.0)
    assert b.history("k") == []


# -- local backend ----------------------------------------------------------------------


@pytest.fixture
def local():
    store = engine.open(None)
    conn = LocalConnection(store)
    conn.connect()
    yield store, conn
    conn.shutdown()
    store.close()


def _ttl_rows(store, conn) -> list[bytes]:
    return [k for k, _ in store.range(conn.meta_table, prefix=TTL_PREFIX)]


def test_local_absent_at_once_without_the_reaper(local) -> None:
    store, conn = local
    b = conn.store("b")
    conn._reaper.start = lambda: None   # no reaper: only the readers' own clock check is left
    b.put_with_ttl("a.x", b"v", 0.05)
    b.put("a.y", b"w")
    time.sleep(0.06)
    assert b.get("a.x") is None and b.entry("a.x") is None
    assert b.keys("a.") == ["a.y"] and [e.key for e in b.scan("a.")] == ["a.y"]
    # not reaped yet: the stored revision is still there, and a new state-sync watch
    # already reports the key as purged
    assert [type(u) for u in b.history("a.x")] == [Put]
    with b.watch_prefix("a.") as w:
        first = drain(w, 2)
    assert {(type(u), u.key) for u in first} == {(Purge, "a.x"), (Put, "a.y")}
    assert conn.reap_expired() == 1
    assert [type(u) for u in b.history("a.x")] == [Purge]
    assert _ttl_rows(store, conn) == []
    assert conn.reap_expired() == 0


def test_local_expired_bytes_are_dropped(tmp_path: Path) -> None:
    store = engine.open(tmp_path / "db", layout=engine.Layout.parse("hot+warm", background=False))
    conn = LocalConnection(store)
    conn.connect()
    try:
        b = conn.store("b")
        secret = b"expiring-secret-value"
        b.put_with_ttl("k", secret, 0.1)
        store.flush()                   # into RocksDB too
        assert wait_for(lambda: [type(u) for u in b.history("k")] == [Purge])
        store.gc()
        store.compact()
        for tier in store._tiers:
            for table in tier.tables():
                for e in tier.iter_versions(table):
                    assert e.value is None or secret not in e.value, (tier.name, table)
    finally:
        conn.shutdown()
        store.close()


def test_local_ttl_survives_reopen_and_is_reaped_by_the_next_connection(tmp_path: Path) -> None:
    path = tmp_path / "db"
    store = engine.open(path, layout=engine.Layout.parse("warm", background=False))
    conn = LocalConnection(store)
    conn.connect()
    b = conn.store("b")
    conn._reaper.start = lambda: None   # no reaper thread in this test
    b.put_with_ttl("k", b"v", 0.2)
    b.put_with_ttl("later", b"v", 3600)
    conn.shutdown()
    store.close()
    time.sleep(0.25)
    store = engine.open(path, layout=engine.Layout.parse("warm", background=False))
    conn = LocalConnection(store)
    try:
        conn.connect()            # finds the pending index rows and starts the reaper
        b = conn.store("b")
        assert b.get("k") is None
        assert wait_for(lambda: [type(u) for u in b.history("k")] == [Purge])
        assert b.get("later").value == b"v"
        assert len(_ttl_rows(store, conn)) == 1
    finally:
        conn.shutdown()
        store.close()


def test_local_writes_over_a_ttl_remove_its_index_row(local) -> None:
    store, conn = local
    b = conn.store("b")
    for write in (lambda: b.put("k", b"x"), lambda: b.delete("k"), lambda: b.purge("k"),
                  lambda: b.put_with_ttl("k", b"y", 3600)):
        b.put_with_ttl("k", b"v", 3600)
        assert len(_ttl_rows(store, conn)) == 1
        write()
        assert len(_ttl_rows(store, conn)) <= 1
    assert len(_ttl_rows(store, conn)) == 1      # the last write was itself a TTL
    b.put("k", b"plain")
    assert _ttl_rows(store, conn) == []


def test_local_superseded_ttl_revision_is_dropped_at_its_expiry(local) -> None:
    store, conn = local
    b = conn.store_with_config(StoreConfig("h", max_history=5))
    conn._reaper.start = lambda: None   # no reaper thread in this test
    b.put_with_ttl("k", b"secret", 0.05)
    b.put("k", b"kept")
    assert len(_ttl_rows(store, conn)) == 1          # not evicted: the row stays
    time.sleep(0.06)
    assert b.get("k").value == b"kept"
    assert conn.reap_expired() == 0                  # no marker: the key is live
    assert conn._reaper.counters["superseded"] == 1
    assert [u.entry.value for u in b.history("k")] == [b"kept"]
    assert _ttl_rows(store, conn) == []
    feed = [v for _, v in store.range(conn.feed_table)]
    assert not any(b"secret" in v for v in feed)
    with b.watch_all() as w:                          # state-sync: just the live value
        assert [(type(u), u.key) for u in drain(w, 1)] == [(Put, "k")]
        assert quiet(w, 0.1) == []


def test_local_stale_index_row_is_dropped_by_the_reaper(local) -> None:
    store, conn = local
    b = conn.store("b")
    conn._reaper.start = lambda: None   # no reaper thread in this test
    b.put_with_ttl("k", b"v", 0.05)
    # a row whose key does not hold that TTL (as left by a crash between versions)
    from engine.kv.ttl import index_key
    with store.begin() as tx:
        tx.set(conn.meta_table, index_key(1, "b", "nothing"), b"\0" * 8)
    time.sleep(0.06)
    assert conn.reap_expired() == 1
    assert _ttl_rows(store, conn) == []
    assert conn._reaper.counters["stale"] == 1
    assert b.history("nothing") == []


def test_local_watch_applied_fold_forgets_expired_keys(local) -> None:
    import threading

    from engine.kv import BatchConfig, StoreFold, watch_applied
    _, conn = local
    b = conn.store("feed")
    b.put("a", b"1")
    b.put_with_ttl("t", b"2", 0.2)
    fold = StoreFold(engine.open(None))
    stop = threading.Event()
    th = threading.Thread(target=watch_applied, args=(b.watcher(), WatchScope.All()), kwargs={
        "reader": b, "store": fold, "batch": BatchConfig(window=0.005), "parse": lambda u: u,
        "apply": lambda us: None, "shutdown": stop})
    th.start()
    try:
        assert wait_for(lambda: fold.count() > 0)
        assert wait_for(lambda: fold.state() == {"a": b"1"})
    finally:
        stop.set()
        th.join(10)
        fold.store.close()


def test_check_ttl_and_nats_header_rounding() -> None:
    assert check_ttl(1) == 1.0 and check_ttl(0.001) == 0.001
    assert nats_ttl_header(0.2) == "1" and nats_ttl_header(1.0) == "1"
    assert nats_ttl_header(1.01) == "2" and nats_ttl_header(59.5) == "60"
    for ttl in (0.2, 1.0, 1.01, 59.5):
        assert int(nats_ttl_header(ttl)) >= math.ceil(ttl)   # never earlier than asked


def test_server_supports_ttl_by_version() -> None:
    assert not server_supports_ttl("2.9.10") and not server_supports_ttl("2.10.22")
    assert server_supports_ttl("2.11.0") and server_supports_ttl("2.15.1")
    assert server_supports_ttl("3.0.0-beta.1")
    assert not server_supports_ttl(None) and not server_supports_ttl("")


# -- NATS on a server without TTLs (2.9.10, when installed) -------------------------------

OLD_NATS = [p for p in (Path("/usr/sbin/nats-server"), Path("/usr/bin/nats-server")) if p.exists()]


def _old_nats_binary() -> Path | None:
    for p in OLD_NATS:
        try:
            out = subprocess.run([str(p), "--version"], capture_output=True, text=True, timeout=10,
                                 check=False)
        except OSError:
            continue
        if "v2.9." in out.stdout + out.stderr or "v2.10." in out.stdout + out.stderr:
            return p
    return None


@pytest.mark.nats
def test_capabilities_truthful_on_a_server_without_ttl() -> None:
    binary = _old_nats_binary()
    if binary is None:
        pytest.skip("no nats-server 2.9/2.10 binary installed (Debian's nats-server package is 2.9.10)")
    from engine.kv import NatsConnection, NatsConnectionConfig
    d = Path(tempfile.mkdtemp(prefix="tierdb-nats-old-"))
    srv = NatsServer(binary, d)
    srv.start()
    conn = NatsConnection(NatsConnectionConfig(servers=[srv.url], timeout=10.0))
    try:
        conn.connect()
        assert conn.server_version().startswith(("2.9.", "2.10."))
        assert conn.capabilities().ttl is False
        b = conn.store_with_config(StoreConfig("oldsrv", max_history=2))   # no marker TTL asked
        assert b.ttl_writer() is None
        with pytest.raises(OperationFailed, match="2.11"):
            b.put_with_ttl("k", b"v", 1)
        assert b.history("k") == []                  # nothing was sent
        b.put("k", b"v")
        assert b.get("k").value == b"v"
    finally:
        conn.shutdown()
        srv.stop()
        shutil.rmtree(d, ignore_errors=True)


def _reaper_threads() -> int:
    import threading
    return sum(1 for t in threading.enumerate() if t.name == "tierdb-kv-ttl")


def test_local_one_reaper_thread_per_connection_and_none_after_shutdown() -> None:
    import threading
    store = engine.open(None)
    conn = LocalConnection(store)
    conn.connect()
    before = _reaper_threads()
    b = conn.store("b")
    barrier = threading.Barrier(8)

    def writer(i: int) -> None:
        barrier.wait()
        b.put_with_ttl(f"k{i}", b"v", 0.1)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _reaper_threads() == before + 1
    assert wait_for(lambda: b.keys() == [] and all(
        [type(u) for u in b.history(f"k{i}")] == [Purge] for i in range(8)))
    conn.shutdown()
    assert _reaper_threads() == before
    with pytest.raises(NotConnected):
        b.put_with_ttl("k", b"v", 1)   # and no thread is started
    assert _reaper_threads() == before
    conn.connect()                     # nothing pending: still no thread
    assert _reaper_threads() == before
    conn.shutdown()
    store.close()


def test_local_reaped_ttl_stays_gone_across_reopen(tmp_path: Path) -> None:
    # default layout: the reaper's forced drop of a hot-tier revision can come back from the
    # commit log on reopen (store-level, issue 12 "erase"); the reaper removes it again and
    # reads never show it
    path = tmp_path / "db"
    store = engine.open(path)
    conn = LocalConnection(store)
    conn.connect()
    b = conn.store("b")
    b.put_with_ttl("k", b"secret", 0.05)
    assert wait_for(lambda: [type(u) for u in b.history("k")] == [Purge])
    conn.shutdown()
    store.close()
    store = engine.open(path)
    conn = LocalConnection(store)
    conn.connect()
    try:
        b = conn.store("b")
        assert b.get("k") is None and b.entry("k") is None and b.keys() == []
        assert wait_for(lambda: [type(u) for u in b.history("k")] == [Purge])
        assert _ttl_rows(store, conn) == []
    finally:
        conn.shutdown()
        store.close()
