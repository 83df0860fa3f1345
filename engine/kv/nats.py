"""The NATS JetStream KV backend (``nats-jetstream-kv.md`` section 10), synchronous.

:class:`NatsConnection` owns a daemon thread running an asyncio loop; every call submits a
coroutine to it (``asyncio.run_coroutine_threadsafe``) and waits at most
``NatsConnectionConfig.timeout`` (30 s) before raising :class:`Timeout`. ``nats-py`` is
imported lazily, inside this module's functions, so ``engine.kv`` imports without it.

Notes on the mapping (details in ``docs/KV.md``):

- revisions are stream sequences (8-byte big-endian tokens);
- ``keys``/``scan`` and every watch use one ordered push consumer (no acks) on the scope's
  filter subjects (several on one consumer for a union), with client-side scope filtering
  as well, so no key outside the scope is ever delivered and there is no 1000-key cut-off;
- resume uses ``BY_START_SEQUENCE`` at ``rev + 1`` and checks ``first_seq <= rev + 1``
  before and after creating the consumer, because the server silently clamps;
- an ``All`` watch runs the live floor guard (a gap in delivered revisions, and a periodic
  check, re-test the window; a trip raises :class:`WatchError`);
- TTLs (``put_with_ttl``) are per-message TTLs (``Nats-TTL``, whole seconds), offered only by
  2.11+ servers on streams that allow them; buckets created there also get server-placed
  limit markers, so an expiry reaches watches as a PURGE.

Notes: thread safety
    A connection and its buckets may be used from any number of threads (calls are
    serialized onto the loop thread). A :class:`NatsWatch` belongs to one consumer thread;
    ``close()`` is safe from any thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import logging
import math
import queue
import re
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from .bucket import BucketFacets, WatchIteration, expected_u64, watch_resume_rev
from .errors import (
    AlreadyExists,
    ConnectionFailed,
    CursorExpired,
    KvError,
    NotConnected,
    OperationFailed,
    RevisionMismatch,
    Timeout,
    WatchError,
)
from .names import validate_bucket, validate_key, validate_prefix
from .protocol import floor_guard_due, resume_window_ok
from .ttl import check_ttl
from .types import (
    Capabilities,
    Delete,
    DiscardPolicy,
    KvEntry,
    KvUpdate,
    Purge,
    Put,
    StorageType,
    StoreConfig,
    VersionToken,
    WatchCursor,
    WatchScope,
)

__all__ = [
    "NATS_CAPABILITIES",
    "NatsBucket",
    "NatsConnection",
    "NatsConnectionConfig",
    "NatsWatch",
    "server_supports_ttl",
]

log = logging.getLogger("tierdb.kv.nats")
T = TypeVar("T")

NATS_CAPABILITIES: Final = Capabilities(
    streaming_watch=True, prefix_watch=True, purge=True, cas=True, ttl=False,
    transactions=False, global_ordering=False)
NATS_TTL_CAPABILITIES: Final = Capabilities(
    streaming_watch=True, prefix_watch=True, purge=True, cas=True, ttl=True,
    transactions=False, global_ordering=False)
KV_OP: Final = "KV-Operation"
MARKER_REASON: Final = "Nats-Marker-Reason"
MSG_TTL: Final = "Nats-TTL"
ROLLUP: Final = "Nats-Rollup"
_CAS_CODES: Final = (10071, 10164)
TTL_MIN_SERVER: Final = (2, 11)
_VERSION_RE: Final = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def server_supports_ttl(version: str | None) -> bool:
    """Does a nats-server of ``version`` (``"2.15.1"``) honour per-message TTLs (2.11+)?

    Older servers accept the ``Nats-TTL`` header and silently ignore it (2.9.10 keeps the
    value forever), so the version is the only truthful test. Unknown -> False.
    """
    m = _VERSION_RE.match(version or "")
    return m is not None and (int(m.group(1)), int(m.group(2))) >= TTL_MIN_SERVER


def nats_ttl_header(ttl: float) -> str:
    """The ``Nats-TTL`` value for ``ttl`` seconds: whole seconds, rounded up, at least 1.

    The server refuses anything shorter than a second and counts whole seconds, so a value
    never expires before ``ttl``.
    """
    return str(max(1, math.ceil(ttl)))


@dataclass(frozen=True)
class NatsConnectionConfig:
    """Where and how to connect.

    ``servers``: every cluster URL (clients reconnect to a surviving node). ``timeout``:
    the bound of every call (30 s). ``floor_check_interval``: the periodic live floor check
    of ``All`` watches. ``watch_capacity``: the bounded queue between the loop and a watch
    consumer.
    """

    servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"])
    timeout: float = 30.0
    connect_timeout: float = 5.0
    reconnect_wait: float = 0.5
    floor_check_interval: float = 30.0
    watch_capacity: int = 256
    name: str | None = None
    # Buckets created on 2.11+ servers get server-placed limit markers that live this long
    # (seconds), so TTL and max_age expiries reach live watches as PURGE markers. None: no
    # markers (expiries are then silent, as on older servers). The server raises every
    # per-message TTL below this value to it on buckets with max_history > 1 (nats-server
    # #6741, #6818), so the default is its minimum, 1 s, which never raises a TTL.
    limit_marker_ttl: float | None = 1.0


def _kv_errors() -> tuple[Any, Any, Any]:
    import nats.errors
    import nats.js.errors
    return nats, nats.errors, nats.js.errors


def _map_error(exc: BaseException, what: str) -> KvError:
    """Translate a nats-py exception into the KV error family (section 11)."""
    _, nerr, jerr = _kv_errors()
    if isinstance(exc, KvError):
        return exc
    if isinstance(exc, (nerr.TimeoutError, asyncio.TimeoutError, TimeoutError)):
        return Timeout(f"{what}: no answer from NATS within the bound ({exc!r})")
    if isinstance(exc, jerr.KeyWrongLastSequenceError):
        return RevisionMismatch(f"{what}: wrong last sequence ({exc.description})")
    if isinstance(exc, jerr.APIError) and getattr(exc, "err_code", None) in _CAS_CODES:
        return RevisionMismatch(f"{what}: wrong last sequence ({exc.description})")
    if isinstance(exc, (nerr.ConnectionClosedError, nerr.NoServersError)):
        return NotConnected(f"{what}: the NATS connection is closed ({exc!r})")
    if isinstance(exc, (jerr.Error, nerr.Error, OSError)):
        return OperationFailed(f"{what}: NATS refused or failed the operation: {exc!r}")
    raise exc


class NatsConnection:
    """A :class:`~engine.kv.api.Connection` to NATS JetStream KV.

    Nothing happens until :meth:`connect`; calls before it raise :class:`NotConnected`.
    """

    def __init__(self, config: NatsConnectionConfig | None = None) -> None:
        self.config = config or NatsConnectionConfig()
        if not self.config.servers:
            raise ValueError("NatsConnectionConfig.servers must name at least one server URL")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc: Any = None
        self._js: Any = None
        self._healthy = False
        self._connected = False
        self._state_lock = threading.Lock()
        self._watches: set[NatsWatch] = set()

    # -- loop plumbing ---------------------------------------------------------------------

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        t = threading.Thread(target=run, name="tierdb-kv-nats-loop", daemon=True)
        t.start()
        ready.wait()
        self._loop, self._thread = loop, t
        return loop

    def _submit(self, coro: Coroutine[Any, Any, T], what: str, timeout: float | None = None) -> T:
        loop = self._loop
        if loop is None or not self._connected:
            coro.close()
            raise NotConnected(f"{what}: NatsConnection is not connected; call connect() first")
        fut = asyncio.run_coroutine_threadsafe(coro, loop)
        bound = self.config.timeout if timeout is None else timeout
        try:
            return fut.result(timeout=bound)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise Timeout(f"{what}: no answer within {bound:g} s") from None
        except concurrent.futures.CancelledError:
            raise NotConnected(f"{what}: the connection was shut down during the call") from None
        except KvError:
            raise
        except Exception as exc:
            raise _map_error(exc, what) from exc

    # -- Connection ------------------------------------------------------------------------

    def connect(self) -> None:
        """Connect (idempotent). Raises ConnectionFailed when no server answers."""
        with self._state_lock:
            if self._connected:
                return
            nats, _, _ = _kv_errors()
            loop = self._loop or self._start_loop()
            cfg = self.config

            async def on_disconnect() -> None:
                self._healthy = False

            async def on_reconnect() -> None:
                self._healthy = True

            async def on_closed() -> None:
                self._healthy = False

            async def on_error(exc: Exception) -> None:
                log.debug("nats client error: %r", exc)

            async def go() -> Any:
                return await nats.connect(
                    servers=list(cfg.servers), connect_timeout=cfg.connect_timeout,
                    # finite for the initial connect (nats-py would retry it forever with
                    # -1); raised to "forever" below once connected
                    allow_reconnect=True, max_reconnect_attempts=1,
                    reconnect_time_wait=cfg.reconnect_wait, name=cfg.name,
                    disconnected_cb=on_disconnect, reconnected_cb=on_reconnect,
                    closed_cb=on_closed, error_cb=on_error)

            fut = asyncio.run_coroutine_threadsafe(go(), loop)
            try:
                nc = fut.result(timeout=cfg.timeout)
            except concurrent.futures.TimeoutError:
                fut.cancel()
                self._stop_loop()
                raise ConnectionFailed(f"could not connect to {cfg.servers} within {cfg.timeout:g} s") from None
            except Exception as exc:
                self._stop_loop()
                raise ConnectionFailed(f"could not connect to NATS at {cfg.servers}: {exc!r}") from exc
            nc.options["max_reconnect_attempts"] = -1   # keep reconnecting to any server
            self._nc = nc
            self._js = nc.jetstream(timeout=cfg.timeout)
            self._connected = True
            self._healthy = True

    def shutdown(self) -> None:
        """Close watches, drain and close the client, stop the loop thread. Idempotent."""
        with self._state_lock:
            if self._loop is None:
                return
            for w in list(self._watches):
                w.close()
            nc = self._nc
            if nc is not None and self._connected:
                async def close() -> None:
                    try:
                        await asyncio.wait_for(nc.drain(), timeout=min(5.0, self.config.timeout))
                    except Exception:
                        log.debug("nats drain failed during shutdown", exc_info=True)
                    if not nc.is_closed:
                        await nc.close()
                fut = asyncio.run_coroutine_threadsafe(close(), self._loop)
                try:
                    fut.result(timeout=self.config.timeout)
                except (concurrent.futures.TimeoutError, Exception):
                    log.warning("NATS connection did not close cleanly", exc_info=True)
            self._connected = False
            self._healthy = False
            self._nc = self._js = None
            self._stop_loop()

    def _stop_loop(self) -> None:
        loop, t = self._loop, self._thread
        if loop is None or t is None:
            return

        async def cancel_rest() -> None:
            me = asyncio.current_task()
            rest = [x for x in asyncio.all_tasks() if x is not me]
            for x in rest:
                x.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(cancel_rest(), loop).result(timeout=5)
        except Exception:
            log.debug("cancelling NATS tasks failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        t.join(timeout=10)
        if not t.is_alive():
            loop.close()
        self._loop = self._thread = None

    def is_healthy(self) -> bool:
        """The last connection event (connect/reconnect vs disconnect/close); no I/O."""
        return self._connected and self._healthy

    def server_version(self) -> str | None:
        """The version of the server this connection talks to now (None before connect)."""
        nc = self._nc
        if nc is None or not self._connected:
            return None
        info = getattr(nc, "_server_info", None) or {}
        v = info.get("version")
        return str(v) if v else None

    def capabilities(self) -> Capabilities:
        """What the connected server offers: ``ttl`` only on 2.11+ (False before connect)."""
        return NATS_TTL_CAPABILITIES if server_supports_ttl(self.server_version()) else NATS_CAPABILITIES

    def store(self, name: str) -> NatsBucket:
        return self.store_with_config(StoreConfig(validate_bucket(name)))

    def store_with_config(self, config: StoreConfig) -> NatsBucket:
        """Open the bucket; create it with ``config`` only on BucketNotFound (no reconciliation)."""
        if not isinstance(config, StoreConfig):
            raise TypeError(f"config must be a StoreConfig, got {type(config).__name__}")
        js = self._js
        markers = self.config.limit_marker_ttl if server_supports_ttl(self.server_version()) else None

        async def go() -> Any:
            _, _, jerr = _kv_errors()
            from nats.js import api
            try:
                return await js.key_value(config.name)
            except jerr.BucketNotFoundError:
                pass
            storage = api.StorageType.FILE if config.storage is StorageType.PERSISTENT \
                else api.StorageType.MEMORY
            try:
                kv = await js.create_key_value(
                    bucket=config.name, history=config.max_history, ttl=config.max_age,
                    max_bytes=config.max_bytes, storage=storage, replicas=config.num_replicas,
                    limit_marker_ttl=markers)
            except jerr.BadRequestError as exc:
                if getattr(exc, "err_code", None) == 10058:   # raced with a different config
                    return await js.key_value(config.name)
                raise
            if config.discard is DiscardPolicy.OLD:
                info = await js.stream_info(f"KV_{config.name}")
                cfg = info.config
                cfg.discard = api.DiscardPolicy.OLD
                await js.update_stream(cfg)
            return kv

        kv = self._submit(go(), f"open bucket {config.name!r}")
        return NatsBucket(self, kv, config.name)

    def __repr__(self) -> str:
        return f"<NatsConnection {self.config.servers} {'connected' if self._connected else 'idle'}>"


def _op_of(msg: Any) -> str | None:
    """``"DEL"``, ``"PURGE"``, None for a Put, or ``"?"`` for an unknown marker reason."""
    return _op_of_headers(msg.header)


def _op_of_headers(hdr: Any) -> str | None:
    if not hdr:
        return None
    op = hdr.get(KV_OP)
    if op is not None:
        return str(op)
    reason = hdr.get(MARKER_REASON)
    if reason is None:
        return None
    if reason in ("MaxAge", "Purge"):
        return "PURGE"
    if reason == "Remove":
        return "DEL"
    return "?"


def _update_of(op: str | None, key: str, data: bytes, seq: int) -> KvUpdate:
    token = VersionToken.from_u64(seq)
    if op == "DEL":
        return Delete(key, token)
    if op == "PURGE":
        return Purge(key, token)
    return Put(KvEntry(key, bytes(data or b""), token))


class NatsBucket(BucketFacets["NatsWatch"]):
    """One NATS KV bucket: a :class:`KvStore` that is its own reader/writer/watcher/purger.

    Extensions (both backends): :meth:`history`, :meth:`stats`, :meth:`purge_deletes`,
    :meth:`first_seq`.
    """

    def __init__(self, conn: NatsConnection, kv: Any, name: str) -> None:
        self._conn = conn
        self._kv = kv
        self._name = name
        self._stream = f"KV_{name}"
        self._pre = f"$KV.{name}."
        self._ttl_ok: bool | None = None

    @property
    def name(self) -> str:
        return self._name

    def _allows_ttl(self) -> bool:
        """The server is 2.11+ and this bucket's stream allows per-message TTLs (cached)."""
        if self._ttl_ok is None:
            ok = server_supports_ttl(self._conn.server_version())
            if ok:
                ok = bool(getattr(self._status().config, "allow_msg_ttl", False))
            self._ttl_ok = ok
        return self._ttl_ok

    def ttl_writer(self) -> NatsBucket | None:
        """``self`` where TTLs work (2.11+ server, stream with ``allow_msg_ttl``), else None.

        Older servers accept a TTL header and ignore it, so no TTL writer is offered there.
        """
        return self if self._allows_ttl() else None

    def _run(self, coro: Coroutine[Any, Any, T], what: str) -> T:
        return self._conn._submit(coro, f"{what} in bucket {self._name!r}")

    # -- reads -----------------------------------------------------------------------------

    async def _last(self, key: str) -> tuple[str | None, bytes, int] | None:
        """The last message of ``key``: ``(op, data, revision)``; None when it has none.

        Reads the raw stream message so that server-placed markers (``Nats-Marker-Reason``,
        2.11+) count as markers too (nats-py's ``get`` only knows ``KV-Operation``).
        """
        _, _, jerr = _kv_errors()
        js = self._conn._js
        try:
            msg = await js.get_msg(self._stream, subject=f"{self._pre}{key}",
                                   direct=bool(getattr(self._kv, "_direct", False)))
        except jerr.NotFoundError:
            return None
        return _op_of_headers(msg.headers), bytes(msg.data or b""), int(msg.seq)

    def _get_put(self, key: str) -> tuple[bytes, int] | None:
        """The latest Put of ``key`` (value, revision); None for markers and missing keys."""
        last = self._run(self._last(key), f"get {key!r}")
        if last is None or last[0] is not None:
            return None
        return last[1], last[2]

    def get(self, key: str) -> KvEntry | None:
        e = self._get_put(validate_key(key))
        if e is None or not e[0]:
            return None
        return KvEntry(key, e[0], VersionToken.from_u64(e[1]))

    def entry(self, key: str) -> KvEntry | None:
        e = self._get_put(validate_key(key))
        if e is None:
            return None
        return KvEntry(key, e[0], VersionToken.from_u64(e[1]))

    def _subjects(self, prefixes: list[str]) -> list[str]:
        return [f"{self._pre}{p}>" for p in prefixes]

    async def _list_last(self, prefix: str) -> list[tuple[str, str | None, bytes, int]]:
        """Last message per subject under ``prefix``: (key, op, data, seq), in seq order."""
        from nats.js import api
        js = self._conn._js
        out: list[tuple[str, str | None, bytes, int]] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        n = len(self._pre)

        async def cb(msg: Any) -> None:
            meta = msg.metadata
            out.append((msg.subject[n:], _op_of(msg), msg.data, meta.sequence.stream))
            if meta.num_pending == 0 and not done.done():
                done.set_result(None)

        cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT)
        sub = await js.subscribe(self._subjects([prefix])[0], stream=self._stream, cb=cb,
                                 ordered_consumer=True, config=cfg)
        try:
            info = await sub.consumer_info()
            if not (info.num_pending == 0 and (info.delivered.consumer_seq or 0) == 0):
                await done
        finally:
            await sub.unsubscribe()
        return out

    def scan(self, prefix: str = "") -> list[KvEntry]:
        """Every live entry under ``prefix`` (sorted by key); markers and empty values skipped."""
        validate_prefix(prefix)
        rows = self._run(self._list_last(prefix), f"scan {prefix!r}")
        out = [KvEntry(k, bytes(d), VersionToken.from_u64(seq))
               for k, op, d, seq in rows if op is None and d and k.startswith(prefix)]
        out.sort(key=lambda e: e.key)
        return out

    def keys(self, prefix: str = "") -> list[str]:
        return [e.key for e in self.scan(prefix)]

    def history(self, key: str) -> list[KvUpdate]:
        """Every retained revision of ``key``, oldest first (markers included)."""
        validate_key(key)
        kv = self._kv

        async def go() -> list[Any]:
            _, _, jerr = _kv_errors()
            try:
                return list(await kv.history(key))
            except jerr.NoKeysError:
                return []
        out: list[KvUpdate] = []
        for e in self._run(go(), f"history of {key!r}"):
            op = e.operation if e.operation in ("DEL", "PURGE") else None
            out.append(_update_of(op, key, e.value or b"", e.revision))
        return out

    def _status(self) -> Any:
        kv = self._kv

        async def go() -> Any:
            return (await kv.status()).stream_info
        return self._run(go(), "status")

    def stats(self) -> dict[str, int]:
        """``{"records", "bytes", "first_seq", "last_revision"}`` from the stream state."""
        st = self._status().state
        return {"records": st.messages, "bytes": st.bytes, "first_seq": st.first_seq,
                "last_revision": st.last_seq}

    def first_seq(self) -> int:
        return int(self._status().state.first_seq)

    # -- writes ----------------------------------------------------------------------------

    @staticmethod
    def _value(key: str, value: object) -> bytes:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise OperationFailed(f"value for key {key!r} must be bytes, got {type(value).__name__}")
        return bytes(value)

    def put(self, key: str, value: bytes) -> VersionToken:
        validate_key(key)
        data = self._value(key, value)
        return VersionToken.from_u64(self._run(self._kv.put(key, data), f"put {key!r}"))

    def create(self, key: str, value: bytes) -> VersionToken:
        validate_key(key)
        data = self._value(key, value)
        kv = self._kv

        async def go() -> int:
            _, _, jerr = _kv_errors()
            try:
                return int(await kv.create(key, data))
            except jerr.KeyWrongLastSequenceError:
                pass
            # nats-py retries over KV-Operation markers only; a server-placed marker (an
            # expiry on 2.11+) means "absent" too: CAS against its revision.
            last = await self._last(key)
            if last is not None and last[0] in ("DEL", "PURGE"):
                try:
                    return int(await kv.update(key, data, last=last[2]))
                except jerr.KeyWrongLastSequenceError:
                    pass
            raise AlreadyExists(f"key {key!r} already exists in bucket {self._name!r}; "
                                "use update() with its version")
        return VersionToken.from_u64(self._run(go(), f"create {key!r}"))

    def _cas(self, key: str, data: bytes, expected: VersionToken, what: str) -> VersionToken:
        want = expected_u64(key, expected, "NATS revisions are 8-byte tokens")
        if want == 0:
            # last=0 would mean "the subject has no messages": never what a caller holding a
            # version means, so refuse without sending.
            raise RevisionMismatch(f"key {key!r}: expected revision 0 never matches (revisions start at 1)")
        kv = self._kv

        async def go() -> int:
            return int(await kv.update(key, data, last=want))
        try:
            return VersionToken.from_u64(self._run(go(), f"{what} {key!r}"))
        except RevisionMismatch as exc:
            raise RevisionMismatch(f"key {key!r} in bucket {self._name!r} is not at the expected "
                                   f"revision {want}; re-read and retry ({exc})") from None

    def update(self, key: str, value: bytes, expected: VersionToken) -> VersionToken:
        validate_key(key)
        return self._cas(key, self._value(key, value), expected, "update")

    def delete(self, key: str) -> bool:
        validate_key(key)
        self._run(self._kv.delete(key), f"delete {key!r}")
        return True

    def delete_with_version(self, key: str, expected: VersionToken) -> VersionToken:
        validate_key(key)
        return self._cas(key, b"", expected, "delete_with_version")

    def purge(self, key: str) -> bool:
        validate_key(key)
        self._run(self._kv.purge(key), f"purge {key!r}")
        return True

    def put_with_ttl(self, key: str, value: bytes, ttl: float) -> VersionToken:
        """Put ``value`` that the server removes ``ttl`` seconds from now (2.11+).

        The TTL is rounded up to whole seconds (at least 1: the server's granularity) and
        the server removes the value about a second after that. Like a purge followed by a
        put in one message (``Nats-Rollup: sub``), the key's earlier revisions go, so the
        expiry leaves the key absent rather than revealing an older value; with limit
        markers (``NatsConnectionConfig.limit_marker_ttl``) the expiry reaches watches as a
        PURGE.

        Raises:
            OperationFailed: an invalid key, value or ``ttl``, or a server or bucket that
                does not honour TTLs (``ttl_writer()`` is None there).
        """
        validate_key(key)
        data = self._value(key, value)
        seconds = check_ttl(ttl)
        if not self._allows_ttl():
            raise OperationFailed(
                f"bucket {self._name!r}: per-message TTLs need nats-server 2.11+ and a stream that "
                f"allows them (server {self._conn.server_version()}); a TTL would be ignored here")
        js = self._conn._js
        headers = {MSG_TTL: nats_ttl_header(seconds), ROLLUP: "sub"}

        async def go() -> int:
            ack = await js.publish(f"{self._pre}{key}", data, headers=headers)
            return int(ack.seq)
        return VersionToken.from_u64(self._run(go(), f"put_with_ttl {key!r}"))

    def purge_deletes(self, older_than: float = 1800.0) -> int:
        """Remove DEL/PURGE markers older than ``older_than`` s entirely (younger ones stay
        as the key's only message). Returns how many keys were cleared."""
        js = self._conn._js

        async def go() -> int:
            rows = await self._list_last("")
            cleared = 0
            for key, op, _d, seq in rows:
                if op not in ("DEL", "PURGE"):
                    continue
                keep = 0
                if older_than > 0:
                    msg = await js.get_msg(self._stream, seq=seq)
                    created = getattr(msg, "time", None)
                    age = 0.0 if created is None else \
                        (datetime.datetime.now(datetime.UTC) - created).total_seconds()
                    keep = 1 if age < older_than else 0
                await js.purge_stream(self._stream, subject=f"{self._pre}{key}", keep=keep)
                cleared += keep == 0
            return cleared
        return self._run(go(), "purge_deletes")

    # -- watch -----------------------------------------------------------------------------

    def watch(self, scope: WatchScope, cursor: WatchCursor | None = None) -> NatsWatch:
        """State-sync watch of ``scope``, or a resume above ``cursor``.

        Raises:
            CursorExpired: ``first_seq > rev + 1`` before or after the consumer was created.
            OperationFailed: a cursor of 2**64-1 or without a u64 form.
        """
        w = NatsWatch(self, scope, watch_resume_rev(scope, cursor, "NATS cursors are 8-byte revisions"))
        if not scope.is_empty:
            self._conn._submit(w._start(), f"watch bucket {self._name!r}")
        return w

    def __repr__(self) -> str:
        return f"<NatsBucket {self._name!r}>"


_END: Final = object()


class NatsWatch(WatchIteration):
    """A watch on one ordered consumer; deliveries cross to the caller via a bounded queue."""

    def __init__(self, bucket: NatsBucket, scope: WatchScope, resume_rev: int | None) -> None:
        self._b = bucket
        self._scope = scope
        self._resume = resume_rev
        self._q: queue.Queue[object] = queue.Queue(maxsize=bucket._conn.config.watch_capacity)
        self._ended = scope.is_empty
        self._closing = False
        self._sub: Any = None
        self._task: asyncio.Task[None] | None = None
        self._frontier: int | None = None   # live phase: highest delivered revision
        self._guard = scope.is_all

    async def _first_seq(self) -> int:
        st = await self._b._kv.status()
        return int(st.stream_info.state.first_seq)

    async def _push(self, item: object) -> None:
        while not self._closing:
            try:
                self._q.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.005)   # backpressure: the consumer is behind

    async def _start(self) -> None:
        from nats.js import api
        b = self._b
        js = b._conn._js
        prefixes = self._scope.list_prefixes()
        subjects = b._subjects(prefixes)
        rev = self._resume
        if rev is None:
            cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.LAST_PER_SUBJECT)
            last_seq = int((await b._kv.status()).stream_info.state.last_seq)
        else:
            first = await self._first_seq()
            if not resume_window_ok(first, rev):
                raise CursorExpired(f"cursor {rev} of bucket {b.name!r} is below first_seq {first}; "
                                    "resync with a full watch")
            cfg = api.ConsumerConfig(deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
                                     opt_start_seq=rev + 1)
            self._frontier = rev
        if len(subjects) > 1:
            cfg.filter_subjects = subjects
        n = len(b._pre)
        initial = rev is None

        async def cb(msg: Any) -> None:
            nonlocal initial
            if self._closing:
                return
            meta = msg.metadata
            seq = int(meta.sequence.stream)
            key = msg.subject[n:]
            op = _op_of(msg)
            if initial:
                if meta.num_pending == 0:
                    initial = False
                    self._frontier = seq
            elif self._guard and self._frontier is not None:
                if floor_guard_due(self._frontier, seq):
                    first = await self._first_seq()
                    if not resume_window_ok(first, self._frontier):
                        await self._push(WatchError(
                            f"live watch of bucket {b.name!r} was overrun: first_seq {first} passed "
                            f"revision {self._frontier + 1} before it was delivered; restart from the "
                            "persisted cursor to resync"))
                        return
                self._frontier = max(self._frontier, seq)
            if op == "?" or not self._scope.matches(key):
                return   # unknown marker reason, or a key outside the scope (old servers)
            await self._push(_update_of(op, key, msg.data, seq))

        self._sub = await js.subscribe(subjects[0], stream=b._stream, cb=cb, ordered_consumer=True,
                                       config=cfg)
        if rev is not None:
            first = await self._first_seq()
            if not resume_window_ok(first, rev):
                await self._sub.unsubscribe()
                raise CursorExpired(f"cursor {rev} of bucket {b.name!r} expired while the consumer "
                                    f"was created (first_seq {first}); resync with a full watch")
        else:
            info = await self._sub.consumer_info()
            if info.num_pending == 0 and (info.delivered.consumer_seq or 0) == 0:
                initial = False
                self._frontier = last_seq
        if self._guard:
            self._task = asyncio.create_task(self._periodic_check())
        self._b._conn._watches.add(self)

    async def _periodic_check(self) -> None:
        interval = self._b._conn.config.floor_check_interval
        while not self._closing:
            await asyncio.sleep(interval)
            frontier = self._frontier
            if frontier is None:
                continue
            try:
                first = await self._first_seq()
            except Exception:
                log.debug("periodic floor check failed", exc_info=True)
                continue
            if not resume_window_ok(first, frontier):
                await self._push(WatchError(
                    f"live watch of bucket {self._b.name!r} was overrun while quiet: first_seq "
                    f"{first} > revision {frontier} + 1; restart from the persisted cursor"))
                return

    @property
    def ended(self) -> bool:
        return self._ended

    def next(self, timeout: float | None = None) -> KvUpdate | None:
        """The next update, or None after ``timeout`` seconds or when the watch ended.

        Raises:
            WatchError: the live floor guard tripped (the watch is then ended).
        """
        if self._ended and self._q.empty():
            return None
        try:
            item = self._q.get(timeout=timeout) if timeout is None or timeout > 0 \
                else self._q.get_nowait()
        except queue.Empty:
            return None
        if item is _END:
            self._ended = True
            return None
        if isinstance(item, BaseException):
            self.close()
            raise item
        assert isinstance(item, KvUpdate)
        return item

    def close(self) -> None:
        """Unsubscribe (bounded) and end the stream. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._ended = True
        conn = self._b._conn
        conn._watches.discard(self)
        sub, task = self._sub, self._task

        async def stop() -> None:
            if task is not None:
                task.cancel()
            if sub is not None:
                try:
                    await sub.unsubscribe()
                except Exception:
                    log.debug("unsubscribe failed while closing a watch", exc_info=True)
        if conn._loop is not None and conn._connected and (sub is not None or task is not None):
            try:
                conn._submit(stop(), "close watch", timeout=min(5.0, conn.config.timeout))
            except KvError:
                log.debug("closing a watch did not finish cleanly", exc_info=True)
        try:
            self._q.put_nowait(_END)
        except queue.Full:
            pass
