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
import contextlib
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, BinaryIO, Final, TypeVar

from ..kv.errors import KvError, RevisionMismatch
from ..kv.errors import Timeout as KvTimeout
from ..kv.nats import NatsConnection, NatsConnectionConfig
from .errors import (
    ForeignStream,
    ReplicationError,
    ReplicationUnavailable,
    StreamNotFound,
)
from .wire import SyncPublisher, usable

__all__ = ["Link", "WrongLastSequence", "check_stream_name"]

T = TypeVar("T")
_STREAM_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
EXPECTED_LAST_SEQ: Final = "Nats-Expected-Last-Sequence"
BATCH_ID: Final = "Nats-Batch-Id"
BATCH_SEQUENCE: Final = "Nats-Batch-Sequence"
BATCH_COMMIT: Final = "Nats-Batch-Commit"
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
        self.atomic = False     # the stream takes atomic batches (learnt by info())
        # The commit path's publisher: blocking, on its own socket (None: nats-py's loop).
        self._fast = SyncPublisher(self.servers, timeout=timeout, name=f"tierdb-commits-{stream}") \
            if usable(self.servers) else None
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
        if self._fast is not None:
            self._fast.close()
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
        self.atomic = bool(getattr(info.config, "allow_atomic", False))
        return int(info.state.first_seq), int(info.state.last_seq)

    def ensure_stream(self, replicas: int) -> tuple[int, int]:
        """Create the stream if it is absent (file storage, ``replicas`` copies), allowing
        atomic batches; turn atomic batches on for a stream created without them (servers
        older than 2.12 ignore it: :meth:`publish_many` then publishes one at a time)."""
        js = self.js

        async def go() -> None:
            import dataclasses

            from nats.js import api
            from nats.js.errors import APIError, NotFoundError
            try:
                info = await js.stream_info(self.stream)
            except NotFoundError:
                info = None
            if info is not None:
                if list(info.config.subjects or []) == [self.all_subjects] and \
                        not getattr(info.config, "allow_atomic", False):
                    with contextlib.suppress(APIError):
                        await js.update_stream(dataclasses.replace(info.config, allow_atomic=True))
                return
            await js.add_stream(api.StreamConfig(
                name=self.stream, subjects=[self.all_subjects], num_replicas=replicas,
                storage=api.StorageType.FILE, retention=api.RetentionPolicy.LIMITS,
                discard=api.DiscardPolicy.NEW, deny_delete=True, allow_rollup_hdrs=False,
                allow_atomic=True, description="tierdb replication stream (engine.replication)"))
        self.run(go(), "create stream")
        return self.info()

    def publish(self, subject: str, data: bytes, expected_last_seq: int) -> int:
        """Publish one message with the expected-last-sequence guard through nats-py (whose
        bound is :attr:`timeout` at the time of the call); return its sequence.

        Raises: WrongLastSequence, ReplicationUnavailable (outcome unknown).
        """
        return self._publish_batch([(subject, data)], expected_last_seq, fast=False)

    def publish_many(self, items: list[tuple[str, bytes]], expected_last_seq: int) -> list[int | BaseException]:
        """Publish ``items`` in order after the stream's sequence ``expected_last_seq``.

        On a stream that allows atomic batches (nats-server >= 2.12; :meth:`ensure_stream`
        turns it on) the items are one batch: one round trip, and either every item is
        stored, contiguously after ``expected_last_seq``, or none is (a wrong last sequence
        refuses the whole batch, so a message of another writer can never land between two
        of ours). Otherwise they go one at a time, each after the previous one's ack.

        Returns the sequence of each item, or for the first item that failed and every item
        after it, the error (WrongLastSequence, ReplicationUnavailable) that stopped it.
        """
        if len(items) > 1 and self.atomic or len(items) == 1 and self._fast is not None:
            try:
                last = self._publish_batch(items, expected_last_seq)
            except ReplicationError as exc:
                return [exc] * len(items)
            return list(range(last - len(items) + 1, last + 1))
        out: list[int | BaseException] = []
        for subject, data in items:
            try:
                expected_last_seq = self.publish(subject, data, expected_last_seq)
            except ReplicationError as exc:
                return out + [exc] * (len(items) - len(out))
            out.append(expected_last_seq)
        return out

    def _publish_batch(self, items: list[tuple[str, bytes]], expected_last_seq: int, *,
                       fast: bool = True) -> int:
        """One JetStream atomic batch (ADR-50): the first message carries the expected last
        sequence, the last one commits and is the only request (a single message is a plain
        guarded publish). Returns the last sequence. Goes through the blocking publisher
        (engine/replication/wire.py) when ``fast`` and the servers allow it, else through
        nats-py."""
        batch = uuid.uuid4().hex
        n = len(items)
        framed: list[tuple[str, dict[str, str], bytes]] = []
        for i, (subject, data) in enumerate(items, 1):
            headers = {BATCH_ID: batch, BATCH_SEQUENCE: str(i)} if n > 1 else {}
            if i == 1:
                headers[EXPECTED_LAST_SEQ] = str(expected_last_seq)
            if i == n and n > 1:
                headers[BATCH_COMMIT] = "1"
            framed.append((subject, headers, data))
        if fast and self._fast is not None:
            ack = self._fast.request(framed)
        else:
            ack = self._request_on_loop(framed)
        err = ack.get("error")
        if err:
            what = f"publish of {n} refused by stream {self.stream!r}: {err.get('description')}"
            if err.get("err_code") in _WRONG_LAST:
                raise WrongLastSequence(what)
            raise ReplicationUnavailable(what)
        if ack.get("stream") != self.stream or n > 1 and (
                ack.get("batch") != batch or int(ack.get("count", 0)) != n):
            raise ReplicationUnavailable(f"stream {self.stream!r} answered a publish of {n} "
                                         f"with {ack}")
        return int(ack["seq"])

    def _request_on_loop(self, framed: list[tuple[str, dict[str, str], bytes]]) -> dict[str, Any]:
        nc = self.conn._nc
        bound = self.timeout

        async def go() -> dict[str, Any]:
            if not nc.is_connected:
                # nats-py would buffer the messages and send them after a reconnect, turning
                # a failed commit into one that lands later; refuse instead (certainly unsent)
                return {"unsent": True}
            for subject, headers, data in framed[:-1]:
                await nc.publish(subject, data, headers=headers)
            subject, headers, data = framed[-1]
            msg = await nc.request(subject, data, timeout=bound, headers=headers)
            return dict(json.loads(msg.data))
        ack = self.run(go(), "publish", bound + 1.0)
        if ack.get("unsent"):
            raise ReplicationUnavailable(f"not connected to NATS ({self.servers}); not sent")
        return ack

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

    def put_snapshot(self, fh: BinaryIO, size: int, replicas: int) -> None:
        """Store the snapshot read from ``fh`` (``size`` bytes) as the bucket's object,
        streamed in chunks."""
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
            await obs.put(SNAPSHOT_OBJECT, fh)
        self.run(go(), "write snapshot", _transfer_bound(self.timeout, size))

    def get_snapshot(self, fh: BinaryIO) -> bool:
        """Write the snapshot object into ``fh`` (streamed; its SHA-256 is checked by the
        object store); False when there is none."""
        js = self.js

        async def go() -> int | None:
            from nats.js.errors import (
                BucketNotFoundError,
                NotFoundError,
                ObjectNotFoundError,
            )
            try:
                obs = await js.object_store(self.bucket)
                info = await obs.get_info(SNAPSHOT_OBJECT)
            except (BucketNotFoundError, ObjectNotFoundError, NotFoundError):
                return None
            return int(info.size or 0)
        size = self.run(go(), "read snapshot")
        if size is None:
            return False

        async def fetch() -> None:
            obs = await js.object_store(self.bucket)
            await obs.get(SNAPSHOT_OBJECT, writeinto=fh)   # type: ignore[arg-type]
        self.run(fetch(), "read snapshot", _transfer_bound(self.timeout, size))
        return True


def _transfer_bound(timeout: float, size: int) -> float:
    """How long a snapshot transfer of ``size`` bytes may take: a minute, plus a second per
    2 MB (a slow link still finishes; a dead one still fails)."""
    return max(timeout, 60.0) + size / 2e6
