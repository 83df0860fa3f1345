"""The commit path's blocking NATS publisher against a real single-node server: guarded
publishes and batches, typed failures when the server is gone, reconnection after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kv.conftest import NatsServer, running_nats_server

from engine.replication import ReplicationUnavailable
from engine.replication.link import Link, WrongLastSequence
from engine.replication.wire import SyncPublisher, usable

from .conftest import wait_until

pytestmark = pytest.mark.nats


@pytest.fixture
def server() -> Iterator[NatsServer]:
    with running_nats_server("tierdb-repl-wire-") as srv:
        yield srv


def test_only_plain_urls_use_the_blocking_publisher() -> None:
    assert usable(["nats://127.0.0.1:4222", "nats://n2", "127.0.0.1:5000"])
    for url in ("tls://n1:4222", "nats://user:pw@n1:4222", "nats://tok@n1:4222", "ws://n1:80"):
        assert not usable(["nats://127.0.0.1:4222", url]), url
    assert Link(["nats://user:pw@127.0.0.1:1"], "s")._fast is None
    assert Link(["nats://127.0.0.1:1"], "s")._fast is not None


def test_guarded_publishes_and_batches(server: NatsServer) -> None:
    link = Link([server.url], "wire", timeout=3.0)
    link.connect()
    try:
        link.ensure_stream(1)
        assert link._fast is not None and link.atomic
        subj = link.commit_subject
        assert link.publish_many([(subj, b"a")], 0) == [1]
        assert link.publish_many([(subj, b"b"), (subj, b"c"), (subj, b"d")], 1) == [2, 3, 4]
        for items in ([(subj, b"e")], [(subj, b"e"), (subj, b"f")]):
            got = link.publish_many(items, 1)         # stale expected sequence: refused
            assert all(isinstance(g, WrongLastSequence) for g in got), got
        big = bytes(range(256)) * 3000              # 768 KB in one message
        assert link.publish_many([(subj, big)], 4) == [5]
        assert link.info() == (1, 5)
        assert [link.get(s)[1] for s in range(1, 6)] == [b"a", b"b", b"c", b"d", big]  # type: ignore[index]
    finally:
        link.close()


def test_no_stream_and_no_server_are_typed_and_it_reconnects(server: NatsServer) -> None:
    pub = SyncPublisher([server.url], timeout=2.0, name="t")
    try:
        with pytest.raises(ReplicationUnavailable, match="503"):
            pub.request([("tierdb.nostream.commit", {}, b"x")])
        link = Link([server.url], "back", timeout=2.0)
        link.connect()
        link.ensure_stream(1)
        subj = link.commit_subject
        assert pub.request([(subj, {}, b"1")])["seq"] == 1
        server.stop()
        with pytest.raises(ReplicationUnavailable):
            pub.request([(subj, {}, b"2")])
        with pytest.raises(ReplicationUnavailable, match="nothing was sent"):
            pub.request([(subj, {}, b"3")])
        server.start()                              # same port and directory
        acks: list[dict[str, object]] = []

        def sent() -> bool:
            try:
                acks.append(pub.request([(subj, {}, b"4")]))
            except ReplicationUnavailable:
                return False                        # the server is still starting
            return True
        assert wait_until(sent, 20, 0.1) and acks[0]["seq"] == 2
        link.close()
    finally:
        pub.close()
