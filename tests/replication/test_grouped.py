"""Grouped publishing with ack="sync": concurrent commits share one quorum round trip.

The commits of a group are queued behind the commit lock (the test holds it while threads
queue, so one leader takes them all), checked against the store and against the group's
earlier commits, published pipelined and applied in version order. Conflicts inside a
group, fencing, and acknowledgements lost for part of a group are checked on a real
3-node cluster; the lost acknowledgements are injected by wrapping the real publish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.replication import ReplicationUnavailable
from engine.types import Bound

from .conftest import T1, Cluster, all_histories, primary_and_replica, wait_until

pytestmark = pytest.mark.nats

Body = Callable[[Any], None]


def commit_as_one_group(store: engine.Store, bodies: list[tuple[str, Body]]) -> list[Any]:
    """Run each ``(isolation, body)`` as a transaction in its own thread, every commit
    queued (in list order) while the test holds the commit lock, so that one leader takes
    them as one group. Returns each commit's version, or the exception it raised."""
    prim = store._replication
    out: list[Any] = [None] * len(bodies)

    def run(i: int, isolation: str, body: Body) -> None:
        tx = store.begin(isolation=isolation)
        try:
            body(tx)
            out[i] = tx.commit()
        except Exception as exc:  # noqa: BLE001 - the caller asserts on it
            out[i] = exc

    threads: list[threading.Thread] = []
    with store._commit_lock:
        for i, (isolation, body) in enumerate(bodies):
            t = threading.Thread(target=run, args=(i, isolation, body))
            t.start()
            threads.append(t)
            assert wait_until(lambda: len(prim._waiting) == i + 1, 10, 0.001), \
                f"commit {i} was not queued: {out[i]!r}"
    for t in threads:
        t.join(30)
    return out


def setter(key: bytes, value: bytes) -> Body:
    return lambda tx: tx.set(T1, key, value)


@pytest.mark.parametrize("layout", ["hot+warm+cold", "warm"])
def test_concurrent_sync_commits_share_round_trips(cluster: Cluster, stream_name: str,
                                                   tmp_path: Path, layout: str) -> None:
    p = engine.open(tmp_path / "p", layout=layout, durability="sync")
    p.replicate(cluster.urls, stream_name, replicas=3, ack="sync")
    r = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name, layout=layout)
    prim = p._replication
    try:
        groups = prim.counters["groups"]
        got = commit_as_one_group(p, [("snapshot", setter(b"g%d" % i, b"v%d" % i)) for i in range(8)])
        assert got == list(range(1, 9))                 # queue order = version order
        assert prim.counters["groups"] == groups + 1    # one round trip for eight commits
        assert [p.get(T1, b"g%d" % i) for i in range(8)] == [b"v%d" % i for i in range(8)]

        errors: list[BaseException] = []

        def worker(w: int) -> None:
            try:
                for i in range(30):
                    with p.begin() as tx:
                        tx.set(T1, b"w%d-%d" % (w, i % 5), b"%d" % i)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
        before = dict(prim.counters)
        threads = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [] and p.version == 8 + 240
        published = prim.counters["published"] - before["published"]
        rounds = prim.counters["groups"] - before["groups"]
        assert published == 240 and rounds < published   # commits shared round trips
        assert r.wait_for(p.version, 30)
        assert all_histories(r) == all_histories(p)
        assert all(r.commit_time(v) == p.commit_time(v) for v in range(1, p.version + 1))
    finally:
        r.close()
        p.close()


def test_conflicts_inside_a_group_fail_only_the_later_commit(cluster: Cluster, stream_name: str,
                                                             tmp_path: Path) -> None:
    with primary_and_replica(cluster, stream_name, tmp_path) as (p, r):
        with p.begin() as tx:
            tx.set(T1, b"k1", b"a")
            tx.set(T1, b"k2", b"a")

        def read_k2_then_write(tx: Any) -> None:
            tx.get(T1, b"k2")
            tx.set(T1, b"k4", b"x")

        def scan_then_write(tx: Any) -> None:
            list(tx.range(T1, Bound.included(b"k5"), Bound.excluded(b"k6")))
            tx.set(T1, b"k9", b"x")

        def read_k7_then_write(tx: Any) -> None:
            tx.get(T1, b"k7")
            tx.set(T1, b"k8", b"ok")

        got = commit_as_one_group(p, [
            ("snapshot", setter(b"k1", b"w1")),
            ("snapshot", setter(b"k1", b"w2")),           # write-write with the commit above
            ("serializable", setter(b"k2", b"s1")),
            ("serializable", read_k2_then_write),         # read k2, which the group just wrote
            ("snapshot", setter(b"k5a", b"p")),
            ("serializable", scan_then_write),            # phantom: k5a is in its range
            ("snapshot", setter(b"big", b"x" * (3 << 20))),   # above max_payload: in parts
            ("serializable", read_k7_then_write),         # untouched by the group: commits
        ])
        assert [got[i] for i in (0, 2, 4, 6, 7)] == [2, 3, 4, 5, 6]
        for i in (1, 3, 5):
            assert type(got[i]) is engine.ConflictError, got[i]
        assert p.version == 6
        assert p.get(T1, b"k1") == b"w1" and p.get(T1, b"k2") == b"s1"
        assert p.get(T1, b"k4") is None and p.get(T1, b"k9") is None
        assert p.get(T1, b"k8") == b"ok" and p.get(T1, b"k5a") == b"p"
        assert p.get(T1, b"big") == b"x" * (3 << 20)
        assert r.wait_for(6, 20)
        assert all_histories(r) == all_histories(p)


def test_a_fenced_group_applies_nothing_anywhere(cluster: Cluster, stream_name: str,
                                                 tmp_path: Path) -> None:
    with primary_and_replica(cluster, stream_name, tmp_path) as (p, r):
        for i in range(3):
            with p.begin() as tx:
                tx.set(T1, b"k%d" % i, b"v")
        assert r.wait_for(3, 20)
        r.promote()
        got = commit_as_one_group(p, [("snapshot", setter(b"z%d" % i, b"zombie")) for i in range(4)])
        assert all(isinstance(g, engine.FencedError) for g in got), got
        assert p.version == 3 and all(p.get(T1, b"z%d" % i) is None for i in range(4))
        with pytest.raises(engine.FencedError):
            with p.begin() as tx:
                tx.set(T1, b"later", b"x")
        with r.begin() as tx:
            tx.set(T1, b"new", b"primary")
        assert r.version == 4 and all(r.get(T1, b"z%d" % i) is None for i in range(4))
        assert r.history(T1, b"z0") == []


@pytest.mark.parametrize("landed", [True, False], ids=["ack-lost", "never-sent"])
def test_unacknowledged_tail_of_a_group_applies_nothing_until_the_stream_says(
        cluster: Cluster, stream_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        landed: bool) -> None:
    """The stream acknowledges the first two commits of a group of five. The last three
    fail with ReplicationUnavailable and are not applied. If they reached the stream after
    all (their acknowledgements were lost) the next commit applies them first, at their
    versions; if they never left, the next commit takes the next version. Either way the
    store and its replica hold one history."""
    p = engine.open(tmp_path / "p")
    p.replicate(cluster.urls, stream_name, replicas=3, ack="sync")
    r = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name)
    link = p._replication.link
    real = link.publish_many
    calls = []

    def flaky(items: list[tuple[str, bytes]], expected: int) -> list[Any]:
        calls.append(len(items))
        if len(calls) > 1:
            return real(items, expected)
        sent = real(items if landed else items[:2], expected)
        return sent[:2] + [TimeoutError("injected: no acknowledgement")] * (len(items) - 2)
    monkeypatch.setattr(link, "publish_many", flaky)
    try:
        got = commit_as_one_group(p, [("snapshot", setter(b"k%d" % i, b"v%d" % i)) for i in range(5)])
        assert got[:2] == [1, 2] and calls == [5]
        assert all(isinstance(g, ReplicationUnavailable) for g in got[2:]), got
        assert p.version == 2 and all(p.get(T1, b"k%d" % i) is None for i in (2, 3, 4))
        with p.begin() as tx:
            tx.set(T1, b"next", b"n")
        if landed:
            assert tx.version == 6 and p.get(T1, b"k4", version=5) == b"v4"
            assert [p.get(T1, b"k%d" % i) for i in range(5)] == [b"v%d" % i for i in range(5)]
        else:
            assert tx.version == 3 and all(p.get(T1, b"k%d" % i) is None for i in (2, 3, 4))
        assert r.wait_for(p.version, 20)
        assert all_histories(r) == all_histories(p)
    finally:
        r.close()
        p.close()


def test_a_group_lands_whole_or_not_at_all(cluster: Cluster, stream_name: str) -> None:
    """The group's messages are one atomic batch: after another writer's message the whole
    batch is refused (a pipelined chain of expected sequences would let every message after
    the first land behind it). Without atomic batches (servers before 2.12) the messages go
    one at a time and a refusal stops at the first. A stream created without atomic
    batches gets them turned on."""
    from engine.replication.link import Link, WrongLastSequence

    link = Link(cluster.urls, stream_name, timeout=5.0)
    link.connect()
    try:
        async def old_style() -> None:
            from nats.js import api
            await link.js.add_stream(api.StreamConfig(
                name=stream_name, subjects=[link.all_subjects], num_replicas=3,
                storage=api.StorageType.FILE))
        link.run(old_style(), "create")
        assert link.info() == (0, 0) and link.atomic is False
        link.ensure_stream(3)
        assert link.atomic is True
        subj = link.commit_subject
        assert link.publish_many([(subj, b"a"), (subj, b"b")], 0) == [1, 2]
        assert link.publish(link.claim_subject, b"other writer", 2) == 3
        for atomic in (True, False):
            link.atomic = atomic
            got = link.publish_many([(subj, b"c"), (subj, b"d"), (subj, b"e")], 2)
            assert all(isinstance(g, WrongLastSequence) for g in got), got
            assert link.info() == (1, 3)
        link.atomic = True
        assert link.publish_many([(subj, b"c"), (subj, b"d"), (subj, b"e")], 3) == [4, 5, 6]
        link.atomic = False
        assert link.publish_many([(subj, b"f"), (subj, b"g")], 6) == [7, 8]
        assert [link.get(s)[1] for s in range(1, 9)] == [  # type: ignore[index]
            b"a", b"b", b"other writer", b"c", b"d", b"e", b"f", b"g"]
    finally:
        link.close()


def test_commits_racing_close_are_shipped_or_refused(cluster: Cluster, stream_name: str,
                                                      tmp_path: Path) -> None:
    """Four threads commit while the store closes: each commit either returns (and is in
    the stream) or raises; none is applied locally without being shipped, so the reopened
    store resumes replication on its stream and a new replica reaches its exact history."""
    import time

    p = engine.open(tmp_path / "p")
    p.replicate(cluster.urls, stream_name, replicas=3, ack="sync")
    done: list[int] = []
    errors: list[BaseException] = []

    def worker(w: int) -> None:
        for i in range(10_000):
            try:
                with p.begin() as tx:
                    tx.set(T1, b"w%d" % w, b"%d" % i)
                done.append(tx.version)  # type: ignore[arg-type]
            except engine.EngineError as exc:
                errors.append(exc)
                return
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(done) >= 50, 20)
    time.sleep(0.05)
    p.close()
    for t in threads:
        t.join(30)
    assert len(errors) == 4 and all(isinstance(e, engine.EngineError) for e in errors)
    p = engine.open(tmp_path / "p")
    try:
        assert p.version == max(done)
        p.replicate(cluster.urls, stream_name, replicas=3, ack="sync")   # level with its stream
        r = engine.open_replica(tmp_path / "r", servers=cluster.urls, stream=stream_name)
        try:
            assert r.wait_for(p.version, 20)
            assert all_histories(r) == all_histories(p)
        finally:
            r.close()
    finally:
        p.close()


def test_commits_continue_when_the_primarys_nats_node_dies(cluster: Cluster, stream_name: str,
                                                          tmp_path: Path) -> None:
    """The commit path's own connection goes to the first server; kill that node: commits
    fail with ReplicationUnavailable (nothing applied) until the publisher reconnects to a
    live node and the R3 stream has a leader on the two left, then go on; a replica ends
    with the primary's exact history."""
    p = engine.open(tmp_path / "p")
    p.replicate(cluster.urls, stream_name, replicas=3, ack="sync", timeout=3.0)
    r = engine.open_replica(tmp_path / "r", servers=cluster.urls[1:], stream=stream_name)
    try:
        for i in range(20):
            with p.begin() as tx:
                tx.set(T1, b"k%d" % (i % 5), b"%d" % i)
        cluster.nodes[0].kill()
        failed = 0

        def commit(i: int) -> bool:
            nonlocal failed
            try:
                with p.begin() as tx:
                    tx.set(T1, b"k%d" % (i % 5), b"%d" % i)
            except (ReplicationUnavailable, engine.ConflictError):
                failed += 1
                return False
            return True
        i = 20
        while i < 60:
            assert wait_until(lambda: commit(i), 60, 0.2), f"no commit {i} got through"
            i += 1
        assert r.wait_for(p.version, 30)
        assert all_histories(r) == all_histories(p)
        assert p.get(T1, b"k4") == b"59"
    finally:
        r.close()
        p.close()
        cluster.heal()
