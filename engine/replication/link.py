"""The NATS side of replication: one JetStream stream (and its snapshot bucket) per store.

Reuses the KV package's connection plumbing (:class:`engine.kv.nats.NatsConnection`: the
event-loop thread, bounded calls, reconnects). Subjects: ``tierdb.<stream>.commit`` (one
message per commit) and ``tierdb.<stream>.claim`` (who is primary from there on). Every
publish carries ``Nats-Expected-Last-Sequence``, so exactly one writer can extend the stream.

Notes: thread safety
    A link may be used from any thread; calls are serialized onto the loop thread.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

from ..kv.errors import KvError, RevisionMismatch
from ..kv.errors import Timeout as KvTimeout
from ..kv.nats import NatsConnection, NatsConnectionConfig
from .errors import ForeignStream, ReplicationError, ReplicationUnavailable, StreamNotFound

__all__ = ["Link", "WrongLastSequence", "check_stream_name"]

T = TypeVar("T")
_STREAM_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EXPECTED_LAST_SEQ: Final = "Nats-Expected-Last-Sequence"
_WRONG_LAST: Final = (10071, 10164)
SNAPSHOT_OBJECT: Final = "snapshot"


class WrongLastSequence(ReplicationError):
    """The stream's last sequence was not the one expected: someone else wrote to it."""


def check_stream_name(stream: object) -> str:
    if not isinstance(stream, str) or not _STREAM_RE.match(stream):
        raise ValueError(f"stream must be 1-64 characters of A-Z a-z 0-9 _ -, got {stream!r}")
    return stream


class Link:
    """A connection to one replication stream. Nothing happens until :meth:`connect`."""

    def __init__(self, servers: list[str], stream: str, *, timeout: float = 10.0) -> None:
        if isinstance(servers, str) or not servers or not all(isinstance(s, str) for s in servers):
            raise ValueError(f"servers must be a non-empty list of NATS URLs, got {servers!r}")
        self.stream = check_stream_name(stream)
        self.servers = list(servers)
        self.timeout = timeout
        self.commit_subject = f"tierdb.{stream}.commit"
        self.claim_subject = f"tierdb.{stream}.claim"
        self.all_subjects = f"tierdb.{stream}.>"
        self.bucket = f"tierdb_snap_{stream}"
        self.conn = NatsConnection(NatsConnectionConfig(
            servers=self.servers, timeout=timeout, connect_timeout=min(5.0, timeout),
            reconnect_wait=0.2, name=f"tierdb-replication-{stream}"))

    # -- plumbing ------------------------------------------------------------------------

    def connect(self) -> None:
        try:
            self.conn.connect()
        except KvError as exc:
            raise ReplicationUnavailable(f"cannot reach NATS at {self.servers}: {exc}") from exc

    def close(self) -> None:
        self.conn.shutdown()

    def run(self, coro: Coroutine[Any, Any, T], what: str, timeout: float | None = None) -> T:
        """Run ``coro`` on the loop, bounded; map transport failures to replication errors."""
        try:
            return self.conn._submit(coro, f"{what} (stream {self.stream!r})",
                                     self.timeout if timeout is None else timeout)
        except RevisionMismatch as exc:
            raise WrongLastSequence(str(exc)) from exc
        except KvTimeout as exc:
            raise ReplicationUnavailable(f"{exc}; check the NATS servers (quorum)") from exc
        except KvError as exc:
            raise ReplicationUnavailable(str(exc)) from exc

    @property
    def js(self) -> Any:
        return self.conn._js

    @property
    def max_payload(self) -> int:
        nc = self.conn._nc
        return int(getattr(nc, "max_payload", 1 << 20) or (1 << 20))

    def on_loop(self, fn: Callable[[], Awaitable[T]]) -> asyncio.Future[T] | Any:
        loop = self.conn._loop
        assert loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), loop)  # type: ignore[arg-type]

    # -- the stream ----------------------------------------------------------------------

    def info(self) -> tuple[int, int]:
        """``(first_seq, last_seq)`` of the stream. Raises StreamNotFound, ForeignStream."""
        js = self.js

        async def go() -> Any:
            from nats.js.errors import NotFoundError
            try:
                return await js.stream_info(self.stream)
            except NotFoundError:
                return None
        info = self.run(go(), "stream info")
        if info is None:
            raise StreamNotFound(f"JetStream stream {self.stream!r} does not exist on {self.servers}: "
                                 "check the name, or start the primary (store.replicate) first")
        subjects = list(info.config.subjects or [])
        if subjects != [self.all_subjects]:
            raise ForeignStream(f"stream {self.stream!r} has subjects {subjects}, not "
                                f"[{self.all_subjects!r}]: it is not a tierdb replication stream")
        return int(info.state.first_seq), int(info.state.last_seq)

    def ensure_stream(self, replicas: int) -> tuple[int, int]:
        """Create the stream if it is absent (file storage, ``replicas`` copies)."""
        js = self.js

        async def go() -> None:
            from nats.js import api
            from nats.js.errors import NotFoundError
            try:
                await js.stream_info(self.stream)
                return
            except NotFoundError:
                pass
            await js.add_stream(api.StreamConfig(
                name=self.stream, subjects=[self.all_subjects], num_replicas=replicas,
                storage=api.StorageType.FILE, retention=api.RetentionPolicy.LIMITS,
                discard=api.DiscardPolicy.NEW, deny_delete=True, allow_rollup_hdrs=False,
                description="tierdb replication stream (engine.replication)"))
        self.run(go(), "create stream")
        return self.info()

    def publish(self, subject: str, data: bytes, expected_last_seq: int,
                timeout: float | None = None) -> int:
        """Publish with the expected-last-sequence guard; return the message's sequence.

        Raises: WrongLastSequence, ReplicationUnavailable (outcome unknown).
        """
        js = self.js
        bound = self.timeout if timeout is None else timeout

        nc = self.conn._nc

        async def go() -> int:
            if not nc.is_connected:
                # nats-py would buffer the message and send it after a reconnect, turning a
                # failed commit into one that lands later; refuse instead (certainly unsent)
                raise ReplicationUnavailable(f"not connected to NATS ({self.servers}); not sent")
            ack = await js.publish(subject, data, timeout=bound, stream=self.stream,
                                   headers={EXPECTED_LAST_SEQ: str(expected_last_seq)})
            return int(ack.seq)
        try:
            return self.run(go(), "publish", bound + 1.0)
        except ReplicationUnavailable as exc:
            if _wrong_last(exc.__cause__):
                raise WrongLastSequence(str(exc)) from exc
            raise

    def publish_many(self, items: list[tuple[str, bytes]], expected_last_seq: int) -> list[int | BaseException]:
        """Pipeline ``items`` (expected sequences chained from ``expected_last_seq``); the
        result per item is its sequence or the error it got. Stops at the first failure."""
        js = self.js
        bound = self.timeout

        async def go() -> list[int | BaseException]:
            # One request per message, all in flight at once: tasks start in creation order,
            # so the messages leave in order (a reordering would only cost a retry: the
            # caller re-learns the stream's end after any failure).
            tasks = [asyncio.ensure_future(js.publish(
                subject, data, timeout=bound, stream=self.stream,
                headers={EXPECTED_LAST_SEQ: str(expected_last_seq + i)}))
                for i, (subject, data) in enumerate(items)]
            acks = await asyncio.gather(*tasks, return_exceptions=True)
            return [a if isinstance(a, BaseException) else int(a.seq) for a in acks]
        return self.run(go(), "publish", bound * 2 + 1.0)

    def get(self, seq: int) -> tuple[int, bytes] | None:
        """The first message at or after ``seq`` (any subject of the stream), or None."""
        js = self.js

        async def go() -> tuple[int, bytes] | None:
            from nats.js.errors import NotFoundError
            try:
                m = await js.get_msg(self.stream, seq=max(1, seq), subject=self.all_subjects, next=True)
            except NotFoundError:
                return None
            return int(m.seq), bytes(m.data or b"")
        return self.run(go(), "read message")

    def first_after(self, subject: str, seq: int = 1) -> tuple[int, bytes] | None:
        """The first message on ``subject`` at or after ``seq``, or None."""
        js = self.js

        async def go() -> tuple[int, bytes] | None:
            from nats.js.errors import NotFoundError
            try:
                m = await js.get_msg(self.stream, seq=max(1, seq), subject=subject, next=True)
            except NotFoundError:
                return None
            return int(m.seq), bytes(m.data or b"")
        return self.run(go(), "read message")

    def last(self, subject: str) -> tuple[int, bytes] | None:
        """The newest message on ``subject``, or None."""
        js = self.js

        async def go() -> tuple[int, bytes] | None:
            from nats.js.errors import NotFoundError
            try:
                m = await js.get_last_msg(self.stream, subject)
            except NotFoundError:
                return None
            return int(m.seq), bytes(m.data or b"")
        return self.run(go(), "read message")

    def purge_commits_below(self, seq: int) -> None:
        """Remove every commit message with a sequence below ``seq`` (claims stay)."""
        js = self.js

        async def go() -> None:
            await js.purge_stream(self.stream, seq=seq, subject=self.commit_subject)
        if seq > 1:
            self.run(go(), "trim stream")

    def subscribe(self, start_seq: int, cb: Callable[[Any], Awaitable[None]]) -> Any:
        """An ordered push consumer on every subject of the stream from ``start_seq``."""
        js = self.js

        async def go() -> Any:
            from nats.js import api
            cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                     opt_start_seq=max(1, start_seq))
            return await js.subscribe(self.all_subjects, stream=self.stream, cb=cb,
                                      ordered_consumer=True, config=cfg)
        return self.run(go(), "follow stream")

    def unsubscribe(self, sub: Any) -> None:
        async def go() -> None:
            try:
                await sub.unsubscribe()
            except Exception:  # noqa: BLE001 - closing; the connection may already be gone
                pass
        try:
            self.run(go(), "stop following", 1.0)   # the server drops it anyway when idle
        except ReplicationError:
            pass

    # -- snapshots (JetStream object store) -----------------------------------------------

    def put_snapshot(self, data: bytes, replicas: int) -> None:
        js = self.js

        async def go() -> None:
            from nats.js import api
            from nats.js.errors import BucketNotFoundError
            try:
                obs = await js.object_store(self.bucket)
            except BucketNotFoundError:
                obs = await js.create_object_store(self.bucket, config=api.ObjectStoreConfig(
                    replicas=replicas, storage=api.StorageType.FILE,
                    description=f"tierdb snapshots of stream {self.stream}"))
            await obs.put(SNAPSHOT_OBJECT, data)
        self.run(go(), "write snapshot", max(self.timeout, 60.0))

    def get_snapshot(self) -> bytes | None:
        js = self.js

        async def go() -> bytes | None:
            from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectNotFoundError
            try:
                obs = await js.object_store(self.bucket)
                res = await obs.get(SNAPSHOT_OBJECT)
            except (BucketNotFoundError, ObjectNotFoundError, NotFoundError):
                return None
            return bytes(res.data or b"")
        return self.run(go(), "read snapshot", max(self.timeout, 60.0))


def _wrong_last(exc: BaseException | None) -> bool:
    while exc is not None:
        if getattr(exc, "err_code", None) in _WRONG_LAST:
            return True
        exc = exc.__cause__
    return False
