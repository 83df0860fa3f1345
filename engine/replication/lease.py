"""Automatic failover: the primary holds a lease; replicas that watch it promote themselves
when it stops being renewed.

The lease is key ``primary`` of the JetStream key-value bucket ``tierdb_lease_<stream>``
(history 1, as many copies as the stream), value canonical JSON ``{"node", "version",
"time"}``. The primary (``store.replicate(..., lease=T)``) renews it every T/3 seconds with
a compare-and-set on the revision it wrote last. A replica opened with
``engine.open_replica(..., auto_promote=T)`` reads it every T/4 seconds and notes when the
revision last changed, by its own monotonic clock: no clocks are compared across machines.
When the revision has not changed for T seconds, the replica takes the lease with a
compare-and-set on the revision it saw (so of several watching replicas exactly one wins),
keeps renewing it, and promotes itself. The promotion's claim in the stream fences the old
primary, so a wrong guess (a primary that was only slow, or cut off from NATS) costs a
failover, never a fork: the old primary's next commit raises FencedError.

A replica never promotes on a lease it has not seen: with no lease key (a primary started
without ``lease``) nothing happens automatically.

Notes: thread safety
    Each keeper and watcher is one daemon thread; ``stop()`` may be called from any thread.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .errors import ReplicationError
from .link import Link, WrongLastSequence

__all__ = ["LeaseKeeper", "LeaseWatcher", "check_lease"]

log = logging.getLogger("tierdb.replication")
KEY = "primary"


def check_lease(value: object, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.2 <= value <= 3600:
        raise ValueError(f"{what} must be None or seconds from 0.2 to 3600, got {value!r}")
    return float(value)


class _Lease:
    """The lease key of one stream (through the link's nats-py connection)."""

    def __init__(self, link: Link, replicas: int, period: float) -> None:
        self.link = link
        self.bucket = f"tierdb_lease_{link.stream}"
        self.replicas = replicas
        # Short attempts: a request in flight to a node that just died gets no answer at
        # all; waiting the link's whole bound would delay the failover by that much.
        self.bound = max(0.5, min(link.timeout, period))
        self._kv: Any = None

    def _bucket(self, create: bool) -> Any:
        if self._kv is not None:
            return self._kv
        js = self.link.js

        async def go() -> Any:
            from nats.js.errors import BucketNotFoundError
            try:
                return await js.key_value(self.bucket)
            except BucketNotFoundError:
                if not create:
                    return None
                return await js.create_key_value(bucket=self.bucket, history=1,
                                                 replicas=self.replicas,
                                                 description=f"tierdb primary lease of {self.link.stream}")
        self._kv = self.link.run(go(), "open lease bucket", max(self.bound, 5.0))
        return self._kv

    def read(self) -> tuple[int, str] | None:
        """``(revision, holder node hex)`` or None (no bucket or no key yet)."""
        kv = self._bucket(create=False)
        if kv is None:
            return None

        async def go() -> tuple[int, str] | None:
            from nats.js.errors import KeyDeletedError, KeyNotFoundError
            try:
                e = await kv.get(KEY)
            except (KeyNotFoundError, KeyDeletedError):
                return None
            try:
                node = str(json.loads(e.value or b"{}").get("node", ""))
            except ValueError:
                node = ""
            return int(e.revision or 0), node
        return self.link.run(go(), "read lease", self.bound)

    def write(self, node: bytes, version: int, last: int | None) -> int | None:
        """Compare-and-set the lease to ``node`` (``last``: the revision expected, 0 = the
        key must not exist, None = whatever is there). Returns the new revision, or None
        when another writer got there first."""
        kv = self._bucket(create=True)
        value = json.dumps({"node": node.hex(), "version": version, "time": time.time()},
                           sort_keys=True).encode()

        async def go() -> int:
            if last is None:
                return int(await kv.put(KEY, value))
            if last == 0:
                return int(await kv.create(KEY, value))
            return int(await kv.update(KEY, value, last=last))
        try:
            return self.link.run(go(), "write lease", self.bound)
        except WrongLastSequence:
            return None


class LeaseKeeper:
    """The primary's side: take the lease (``rev``: the revision already held, else take it
    whatever it holds) and renew it every ``period / 3`` seconds until :meth:`stop`."""

    def __init__(self, link: Link, node: bytes, period: float, replicas: int,
                 version: Callable[[], int], rev: int | None = None) -> None:
        self._lease = _Lease(link, replicas, period)
        self.node = node
        self.period = period
        self._version = version
        self.rev = rev             # None: not taken yet (the thread takes it, retrying)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tierdb-repl-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        first = self.rev is None
        while first or not self._stop.wait(self.period / 3):
            first = False
            try:
                # take it whatever it holds (this store just became primary), then renew
                rev = self._lease.write(self.node, self._version(), self.rev)
            except ReplicationError as exc:   # NATS unreachable: retry; the lease may lapse
                log.warning("cannot renew the primary lease of stream %s: %s",
                            self._lease.link.stream, exc)
                continue
            if rev is None and self.rev is not None:
                self.lost = True
                log.warning("the primary lease of stream %s was taken by another store; its "
                            "promotion fences this one", self._lease.link.stream)
                return
            self.rev = rev

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)


class LeaseWatcher:
    """A replica's side: watch the lease; when it has not moved for ``period`` seconds,
    take it and call ``promote(keeper)`` (which must adopt the keeper, or stop it if the
    promotion failed)."""

    def __init__(self, link: Link, node: bytes, period: float, replicas: int,
                 version: Callable[[], int], promote: Callable[[LeaseKeeper], None]) -> None:
        self._lease = _Lease(link, replicas, period)
        self._link = link
        self.node = node
        self.period = period
        self._replicas = replicas
        self._version = version
        self._promote = promote
        self.promoted = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tierdb-repl-lease-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seen: tuple[int, str] | None = None
        since = time.monotonic()
        while not self._stop.wait(self.period / 4):
            try:
                cur = self._lease.read()
            except ReplicationError:
                continue                      # NATS unreachable from here: no decision
            now = time.monotonic()
            if cur is None or cur != seen:
                seen, since = cur, now
                continue
            if cur[1] == self.node.hex() or now - since < self.period:
                continue
            try:
                rev = self._lease.write(self.node, self._version(), cur[0])
            except ReplicationError:
                continue
            if rev is None:                   # another replica took it first
                seen, since = None, now
                continue
            log.warning("primary lease of stream %s not renewed for %.1f s: promoting this "
                        "replica", self._link.stream, now - since)
            keeper = LeaseKeeper(self._link, self.node, self.period, self._replicas,
                                 self._version, rev=rev)
            try:
                self._promote(keeper)
            except Exception as exc:  # noqa: BLE001 - logged; the lease lapses, others may try
                keeper.stop()
                log.error("automatic promotion failed: %s", exc)
                seen, since = None, time.monotonic()
                continue
            self.promoted = True
            return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
