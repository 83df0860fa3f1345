"""The replica side: a read-only store that follows a stream, and failover.

:func:`open_replica` opens (or creates) a local store, marks it read-only, brings it to the
stream's retained tail (from the snapshot bucket when the stream no longer holds the
store's next commit) and starts a follower: an ordered push consumer whose deliveries cross
a bounded queue to an apply thread. Each commit is applied at its original version and
commit time in one local commit, and that version is the position (see ``apply.py``), so a
crash never re-applies or skips. A bad message (checksum, foreign, gap) stops the follower
with a typed error; nothing partial is applied.

Notes: thread safety
    Reads are the store's (any thread). ``lag``, ``wait_for``, ``promote`` and ``close`` may
    be called from any thread; ``promote`` is serialized.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from typing import Any

from ..errors import ClosedError
from ..store import Store
from .apply import Applier, load_claims, resume_seq, stream_commit
from .errors import ReplicaDiverged, ReplicationError, ReplicationUnavailable
from .format import decode_message
from .lease import LeaseKeeper, LeaseWatcher, check_lease
from .link import Link, WrongLastSequence
from .primary import Primary, _check_args, claim_stream
from .state import ReplicationState, load_state, save_state

__all__ = ["Follower", "ReplicaStore", "open_replica"]

log = logging.getLogger("tierdb.replication")
_QUEUE = 1024


class Follower:
    """Follows the stream in the background and applies it to the store."""

    def __init__(self, store: ReplicaStore, link: Link, applier: Applier) -> None:
        self.store = store
        self.link = link
        self.applier = applier
        self.error: BaseException | None = None
        self._q: queue.Queue[tuple[int, int, bytes]] = queue.Queue(maxsize=_QUEUE)
        self._known_last = applier.seq
        self._stop = threading.Event()
        self._cv = threading.Condition()
        self._sub: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        async def cb(msg: Any) -> None:
            md = msg.metadata
            item = (int(md.sequence.stream), int(md.num_pending or 0), bytes(msg.data or b""))
            while not self._stop.is_set():
                try:
                    self._q.put_nowait(item)
                    return
                except queue.Full:
                    await asyncio.sleep(0.005)   # backpressure: apply is behind
        self._sub = self.link.subscribe(self.applier.seq + 1, cb)
        self._thread = threading.Thread(target=self._run, name="tierdb-repl-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                seq, pending, data = self._q.get(timeout=0.1)
            except queue.Empty:
                continue
            self._known_last = max(self._known_last, seq + pending)
            try:
                self.applier.handle(seq, data)
            except (ReplicationError, ValueError, ClosedError, OSError) as exc:
                if self._stop.is_set():
                    return
                self.error = exc
                log.error("replica of stream %s stopped applying: %s", self.link.stream, exc)
                with self._cv:
                    self._cv.notify_all()
                self._stop.set()
                return
            with self._cv:
                self._cv.notify_all()

    def stop(self) -> None:
        self._stop.set()
        if self._sub is not None:
            self.link.unsubscribe(self._sub)
            self._sub = None
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def lag(self) -> int:
        try:
            _, last = self.link.info()
            self._known_last = max(self._known_last, last)
        except ReplicationError:
            pass
        return max(0, self._known_last - self.applier.seq)

    def wait_for(self, version: int, timeout: float | None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self.store.version < version:
                if self.error is not None:
                    raise self.error
                left = None if end is None else end - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(0.1 if left is None else min(left, 0.1))
        return True

    def status(self) -> dict[str, Any]:
        return {"role": "replica", "stream": self.link.stream, "version": self.store.version,
                "applied_seq": self.applier.seq, "lag": max(0, self._known_last - self.applier.seq),
                "error": None if self.error is None else f"{type(self.error).__name__}: {self.error}",
                "lineage": (self.applier.lineage or b"").hex()}

    def close(self) -> None:
        self.stop()
        self.link.close()


class ReplicaStore(Store):
    """A :class:`~engine.Store` that follows a replication stream (read-only until
    :meth:`promote`). Create one with :func:`engine.open_replica`."""

    _follower: Follower | None = None
    _node: bytes = b""                # this store's writer id (REPLICATION file)
    _promote_lock: threading.Lock
    _watcher: LeaseWatcher | None = None   # auto_promote: watches the primary's lease
    _auto_promote: float | None = None

    def close(self) -> None:
        w = self._watcher
        if w is not None:
            w.stop()
        super().close()

    def lag(self) -> int:
        """Stream messages not yet applied here (0 = caught up with what the stream holds;
        after :meth:`promote`, the primary's unacknowledged commits)."""
        rep = self._replication
        return 0 if rep is None else int(rep.lag())

    def wait_for(self, version: int, timeout: float | None = None) -> bool:
        """Block until :attr:`version` >= ``version`` (True) or ``timeout`` passed (False).

        Read-your-writes across machines: pass the version the primary's commit returned.
        Raises: the follower's error if it stopped (CorruptMessage, VersionGap, ...).
        """
        f = self._follower
        if f is None or self._read_only is None:
            return self.version >= version
        return f.wait_for(version, timeout)

    @property
    def replication_error(self) -> BaseException | None:
        """Why the follower stopped applying (None while it runs)."""
        f = self._follower
        return None if f is None else f.error

    def replication_status(self) -> dict[str, Any]:
        rep = self._replication
        return {} if rep is None else dict(rep.status())

    def promote(self, *, ack: str = "sync", replicas: int = 3, timeout: float = 30.0,
                snapshot_interval: float | None = None, lease: float | None = None,
                _keeper: LeaseKeeper | None = None) -> ReplicaStore:
        """Become the stream's primary: catch up to the stream's end, publish a claim (from
        then on the old primary's commits fail with FencedError), and accept writes that
        are shipped with ``ack``. Returns this store.

        ``lease``: hold the primary lease (seconds; see engine/replication/lease.py) so that
        replicas opened with ``auto_promote`` take over when this store stops renewing it;
        defaults to this replica's own ``auto_promote`` period. A failed promotion leaves
        the store a following replica.

        Raises: the follower's error if it stopped; ReplicationUnavailable when the stream
        cannot be reached or keeps moving for ``timeout`` seconds.
        """
        _check_args(ack, replicas)
        lease = check_lease(lease, "lease") if lease is not None else self._auto_promote
        watcher = self._watcher
        if watcher is not None and _keeper is None:
            watcher.stop()      # a manual promotion: stop watching before taking over
        with self._promote_lock:
            f = self._follower
            if f is None or self._read_only is None:
                raise ValueError("this store is already a primary")
            if f.error is not None:
                raise f.error
            f.stop()
            link, applier = f.link, f.applier
            end = time.monotonic() + timeout
            # Short attempts: a request in flight on a connection to a dead node gets no
            # answer at all, so waiting the link's full bound per call would only add to the
            # failover time; the loop retries on the reconnected connection instead.
            bound, link.timeout = link.timeout, min(link.timeout, 2.0)
            try:
                seq = self._claim(link, applier, end, timeout)
            except BaseException:
                follower = Follower(self, link, applier)   # not promoted: keep following
                self._follower = self._replication = follower
                try:
                    follower.start()
                except ReplicationError as exc:
                    follower.error = exc                    # wait_for() reports it
                raise
            finally:
                link.timeout = bound
            state = load_state(self.path) or ReplicationState(link.stream, "replica", self._node.hex())
            state.role, state.lineage, state.promoted_at = "primary", applier.lineage.hex(), self.version  # type: ignore[union-attr]
            save_state(self.path, state)
            prim = Primary(self, link, lineage=applier.lineage, node=self._node, last_seq=seq,  # type: ignore[arg-type]
                           ack=ack, replicas=replicas, snapshot_interval=snapshot_interval)
            with self._commit_lock:
                self._replication = None
                prim.install()
                self._read_only = None
            self._follower = None
            self._watcher = None
            log.info("store %s promoted to primary of stream %s at version %d", self.path,
                     link.stream, self.version)
        if _keeper is not None:
            prim.adopt_lease(_keeper)
        elif lease is not None:
            prim.adopt_lease(LeaseKeeper(link, self._node, lease, replicas, lambda: self.version))
        return self

    def _claim(self, link: Link, applier: Applier, end: float, timeout: float) -> int:
        """Catch up to the stream's end and publish the claim there; retry until ``end``."""
        while True:
            try:
                _, last = link.info()
                applier.catch_up(link, last)
                if applier.lineage is None:
                    raise ReplicationError(f"stream {link.stream!r} has no primary yet; nothing to promote")
                return claim_stream(link, applier.lineage, self._node, self.version, last, "promote")
            except WrongLastSequence:
                if time.monotonic() > end:
                    raise ReplicationUnavailable(
                        f"stream {link.stream!r} kept moving for {timeout:g} s: the old "
                        "primary is still committing; stop it or retry") from None
            except ReplicationUnavailable:
                # a NATS node or the stream leader is gone: the cluster elects another
                # (seconds); a claim that did land is caught up by the next round, where
                # it shows as our own message before ``last``
                if time.monotonic() > end:
                    raise
                time.sleep(0.2)


def open_replica(path: str | os.PathLike[str] | None, *, servers: list[str], stream: str,
                 layout: Any = None, timeout: float = 10.0, follow: bool = True,
                 auto_promote: float | None = None, **options: Any) -> ReplicaStore:
    """Open (or create) a read-only replica of ``stream`` at ``path`` and follow it.

    ``auto_promote``: seconds. Watch the primary's lease (a primary started with
    ``store.replicate(..., lease=...)``) and promote this replica when the lease has not
    been renewed for that long (automatic failover; among several watching replicas one
    wins). See engine/replication/lease.py.

    Raises: StreamNotFound (no such stream), ForeignStream (not this store's stream, or not
    a tierdb stream), ReplicaDiverged (the local store is not a replica of that stream),
    ReplicationUnavailable (NATS unreachable).
    """
    store = ReplicaStore(path, layout=layout, **options)
    store._promote_lock = threading.Lock()
    try:
        state = load_state(store.path)
        if state is not None and state.stream != stream:
            raise ReplicaDiverged(f"store {path} replicates stream {state.stream!r}, not {stream!r}")
        if state is not None and state.role == "primary":
            # A (deposed) primary may hold commits the stream never received (ack="async"),
            # which following would silently build on: refuse rather than fork.
            raise ReplicaDiverged(
                f"store {path} was the primary of stream {stream!r}; it cannot become a replica "
                "(it may hold commits the stream never received): open a new replica directory, "
                "or resume it as primary with store.replicate() if it still holds the claim")
        if state is None:
            if store.version > 0:
                raise ReplicaDiverged(f"store {path} already holds commits of its own; a replica "
                                      "starts empty: choose a new directory")
            state = ReplicationState(stream, "replica", os.urandom(8).hex(), "", list(servers))
            save_state(store.path, state)
        store._node = state.node_id
        link = Link(servers, stream, timeout=timeout)
        link.connect()
        try:
            _start_following(store, link, state, follow)
        except BaseException:
            link.close()
            raise
        period = check_lease(auto_promote, "auto_promote")
        if period is not None and follow:
            store._auto_promote = period

            def take_over(keeper: LeaseKeeper) -> None:
                store.promote(timeout=max(30.0, 4 * period), _keeper=keeper)
            store._watcher = LeaseWatcher(link, store._node, period, 3, lambda: store.version,
                                          take_over)
    except BaseException:
        store.close()
        raise
    return store


def _check_same_history(store: ReplicaStore, link: Link, first: int, last: int) -> None:
    """Before following from the store's version v: if the stream still holds commit v, it
    must be the store's own commit v (same commit time, same values). A store restored from
    a backup of an ``ack="async"`` primary may hold commits the stream never received, and a
    promoted replica may have written other commits at those versions since: following
    would build on a forked history. Raises ReplicaDiverged."""
    v = store.version
    found = stream_commit(link, v, first, last)
    if found is None:
        return                          # trimmed below a snapshot: nothing to compare with
    t, batches = found
    local_t = store.commit_time(v)
    rows = [(table, key, value) for table, rs in batches.items() for key, value in rs][:1000]
    if local_t is not None and abs(local_t - t) < 0.002 and all(
            store.get(table, key, version=v) == value for table, key, value in rows):
        return
    raise ReplicaDiverged(
        f"store {store.path} is at version {v}, but the stream {link.stream!r} holds another "
        f"commit {v} (committed at {t:.3f}, this store's at {local_t}): the store's history "
        "is not the stream's (a backup of an ack='async' primary holding commits that were "
        "never shipped?). Open the replica in a new directory")


def _start_following(store: ReplicaStore, link: Link, state: ReplicationState, follow: bool) -> None:
    first, last = link.info()
    claims = load_claims(link)
    lineage = state.lineage_id
    if claims and lineage is None:
        lineage = decode_message(link.get(claims[0][0])[1], claims[0][0]).lineage  # type: ignore[index]
    store._read_only = (f"this store is a read-only replica of stream {link.stream!r}: write "
                        "on the primary, or promote() this replica")

    def remember(lin: bytes) -> None:
        state.lineage = lin.hex()
        save_state(store.path, state)

    if store.version > 0 and lineage is not None:
        _check_same_history(store, link, first, last)
    applier = Applier(store, link.stream, lineage, None, 0)
    applier.on_lineage = remember
    if lineage is not None and not state.lineage:
        remember(lineage)
    # Does the stream still hold the store's next commit? If not (trimmed below a snapshot,
    # or every commit trimmed), apply the snapshot's versions above the store's first.
    head = link.first_after(link.commit_subject, 1)
    head_v = None if head is None else decode_message(head[1], head[0]).version
    if head_v is None or head_v > store.version + 1:
        applier.load_snapshot(link)
        if head_v is not None and head_v > store.version + 1:
            raise ReplicaDiverged(
                f"stream {link.stream!r} starts at version {head_v} and no snapshot covers "
                f"version {store.version + 1}: delete this replica and open it again (it will "
                "start from the newest snapshot)")
        first, last = link.info()
    start = resume_seq(link, store.version, first, last)
    applier.seq = start - 1
    # the writer of the commits from ``start`` on: the newest claim before it (claims are
    # never trimmed); the snapshot's writer when none precedes it
    applier.writer = next((w for s, w, _ in reversed(claims) if s < start), applier.writer)
    follower = Follower(store, link, applier)
    store._follower = follower
    store._replication = follower
    if follow:
        follower.start()
