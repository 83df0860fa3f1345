"""The primary side: ship every commit to the stream, in version order, fenced.

``ack="sync"``: committers queue their transactions; whoever holds the store's commit lock
leads every queued commit as one group (:meth:`Primary.commit_group`, the way a group commit
shares an fsync). The leader conflict-checks each commit against the store and against the
group's earlier commits, numbers the survivors, publishes them pipelined with chained
``Nats-Expected-Last-Sequence`` headers, and applies the acknowledged prefix in version
order once JetStream's quorum stored it. So a group costs one quorum round trip however
many commits it holds. A wrong last sequence means another store claimed the stream (a
promotion): the commits raise :class:`FencedError` and are applied nowhere. A commit the
stream did not acknowledge raises :class:`ReplicationUnavailable` and is applied nowhere
(the next group first applies any of them that reached the stream after all).

``ack="async"``: the hook only queues the encoded commit; a shipper thread publishes the
queue in pipelined groups (one round trip per group, expected sequences chained) and
:meth:`Primary.lag` counts the commits not yet acknowledged. Commits applied locally but not
shipped when the machine dies are lost to the replicas (that is the trade).

Notes: thread safety
    The hooks run under the store's commit lock; the shipper and snapshot calls run on
    their own threads. ``close()`` may be called from any thread.
"""

from __future__ import annotations

import copy
import logging
import os
import socket
import threading
import time
from collections import deque
from typing import Any

from ..errors import ClosedError, ConflictError, FencedError, ReadOnlyError
from ..mvcc.oracle import Oracle
from .apply import Applier, load_claims, resume_seq, scratch_dir, write_store_snapshot
from .errors import (
    CommitTooLarge,
    ForeignStream,
    ReplicaDiverged,
    ReplicationUnavailable,
)
from .format import KIND_CLAIM, decode_message, encode_claim, encode_commit_parts
from .lease import LeaseKeeper, check_lease
from .link import Link, WrongLastSequence
from .state import ReplicationState, load_state, save_state

__all__ = ["ACK_MODES", "Primary", "claim_stream", "start_primary"]

log = logging.getLogger("tierdb.replication")
ACK_MODES = ("sync", "async")
_GROUP = 512             # most commits one round trip ships (sync groups and async)
_GROUP_BYTES = 8 << 20   # most message bytes one sync group puts in flight
_HEADROOM = 1024         # bytes the NATS protocol adds to a payload (headers, subject)


def _check_args(ack: object, replicas: object) -> None:
    if ack not in ACK_MODES:
        raise ValueError(f"ack must be one of {', '.join(ACK_MODES)}, got {ack!r}")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or not 1 <= replicas <= 5:
        raise ValueError(f"replicas must be an int from 1 to 5, got {replicas!r}")


class _Waiter:
    """One commit waiting in a sync group: its transaction and batches in, its version (or
    error) and commit-log end out. ``done`` is set under the commit lock."""

    __slots__ = ("batches", "data", "done", "durability", "end", "error", "ts", "tx", "version")

    def __init__(self, tx: Any, batches: Any, durability: str) -> None:
        self.tx, self.batches, self.durability = tx, batches, durability
        self.version, self.ts, self.end = 0, 0.0, 0
        self.data: list[bytes] = []      # its messages (one, or the parts of a large commit)
        self.error: BaseException | None = None
        self.done = False


def _own_copy(exc: BaseException) -> BaseException:
    """A copy of ``exc`` for one more waiting thread (one exception object raised in several
    threads would share a traceback)."""
    try:
        return copy.copy(exc)
    except Exception:  # noqa: BLE001 - an exception type that cannot be copied: share it
        return exc


class Primary:
    """A store's link to its stream as the stream's only writer."""

    def __init__(self, store: Any, link: Link, *, lineage: bytes, node: bytes, last_seq: int,
                 ack: str, replicas: int, snapshot_interval: float | None = None) -> None:
        self.store = store
        self.link = link
        self.lineage = lineage
        self.node = node
        self.ack = ack
        self.replicas = replicas
        self._last_seq = last_seq
        self._shipped = store.version     # newest version the stream acknowledged
        self._fenced: str | None = None
        self._uncertain = False
        self._closing = False      # set by stop_commits (the store is closing)
        self._lease: LeaseKeeper | None = None   # the primary lease, when replicas auto-promote
        self._max = max(1024, link.max_payload - _HEADROOM)
        self._cv = threading.Condition()
        self._queue: deque[tuple[int, list[bytes]]] = deque()
        self._stop = False
        self._snap_lock = threading.Lock()
        # Sync groups: _waiting (queued commits), _leading (a thread leads a group) and
        # each waiter's done flag change under _wcv; a group runs under the commit lock.
        self._wcv = threading.Condition()
        self._waiting: deque[_Waiter] = deque()
        self._leading = False
        self._threads: list[threading.Thread] = []
        self.counters = {"published": 0, "groups": 0, "snapshots": 0}
        self.last_snapshot: dict[str, Any] | None = None
        self._snapshot_interval = snapshot_interval

    # -- installation ---------------------------------------------------------------------

    def install(self) -> None:
        """Attach to the store; the caller holds the commit lock."""
        store = self.store
        if store.version != self._shipped:
            raise ReplicaDiverged(f"store moved to version {store.version} while attaching to "
                                  f"stream {self.link.stream!r} at {self._shipped}; retry")
        store._replication = self
        if self.ack == "sync":
            store._group_commit = self.commit_group
        else:
            store._pre_apply = self.enqueue
        if self.ack == "async":
            t = threading.Thread(target=self._ship_loop, name="tierdb-repl-shipper", daemon=True)
            t.start()
            self._threads.append(t)
        if self._snapshot_interval:
            t = threading.Thread(target=self._snapshot_loop, name="tierdb-repl-snapshots", daemon=True)
            t.start()
            self._threads.append(t)

    # -- sync ---------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._fenced is not None:
            raise FencedError(self._fenced)
        if self._closing:
            raise ClosedError("the store is closing; its replication link no longer ships commits")

    def adopt_lease(self, keeper: LeaseKeeper) -> None:
        """Keep renewing the primary lease ``keeper`` holds until :meth:`close`."""
        self._lease = keeper

    def stop_commits(self) -> None:
        """From now on commits raise ClosedError (``Store.close`` calls this before
        :meth:`close`: a commit must never slip through unshipped while the store closes)."""
        with self.store._commit_lock:
            self._closing = True

    def _encode(self, version: int, ts: float, batches: Any) -> list[bytes]:
        """The commit's messages: one, or parts (one atomic batch) when it is larger than a
        message may be. Raises CommitTooLarge, with nothing applied."""
        msgs = encode_commit_parts(self.link.stream, self.lineage, self.node, version, ts,
                                   batches, self._max)
        if len(msgs) > 1 and not self.link.atomic:
            raise CommitTooLarge(
                f"commit {version} is larger than the {self._max} bytes one JetStream message "
                f"may carry (max_payload), and stream {self.link.stream!r} cannot take it in "
                "parts: its servers have no atomic batches (nats-server before 2.12). Split the "
                "transaction, raise max_payload or upgrade nats-server. Nothing was applied.")
        if len(msgs) > _GROUP:
            raise CommitTooLarge(
                f"commit {version} needs {len(msgs)} messages of {self._max} bytes, above the "
                f"{_GROUP} one atomic batch of this store may hold; split the transaction or "
                "raise max_payload. Nothing was applied.")
        return msgs

    def _fence(self, why: str) -> FencedError:
        self._fenced = (f"this store is no longer the primary of stream {self.link.stream!r}: {why}; "
                        "the commit was applied nowhere. Open the store as a replica "
                        "(engine.open_replica) or discard it")
        return FencedError(self._fenced)

    def commit_group(self, tx: Any, batches: Any, durability: str) -> tuple[int, int]:
        """The ``ack="sync"`` commit step (``Store._group_commit``): queue this commit, then
        take the commit lock; whoever holds it leads every commit queued so far as one group
        (:meth:`_lead`), so concurrent committers share a quorum round trip. Returns
        ``(version, commit-log end)``; raises what the commit got (ConflictError, FencedError,
        ReplicationUnavailable, ...) with nothing of it applied."""
        w = _Waiter(tx, batches, durability)
        with self._wcv:
            self._waiting.append(w)
            # Wait while another thread leads: it may take this commit into its group. A
            # follower never queues on the commit lock, so it returns (and can queue its
            # next commit) as soon as its group is done, not after the next group's trip.
            while not w.done and self._leading:
                self._wcv.wait()
            if not w.done:
                self._leading = True
        if not w.done:
            try:
                with self.store._commit_lock:
                    while not w.done:
                        self._lead()
            finally:
                with self._wcv:
                    self._leading = False
                    self._wcv.notify_all()
        if w.error is not None:
            raise w.error
        return w.version, w.end

    def _lead(self) -> None:
        """Under the commit lock: check, publish and apply the queued commits (at most
        ``_GROUP`` of them, or ``_GROUP_BYTES`` of messages; the rest wait for the next
        round). Every commit taken is done when this returns, with a version or an error."""
        with self._wcv:
            group = [self._waiting.popleft() for _ in range(min(_GROUP, len(self._waiting)))]
        taken = len(group)
        try:
            taken = self._run_group(group)
        except BaseException as exc:  # the store closed, fenced, unreachable stream, ...
            for w in group:
                if not w.done:
                    w.error = _own_copy(exc)
                    w.done = True
            if not isinstance(exc, Exception):
                raise
        finally:
            with self._wcv:
                if taken < len(group):
                    self._waiting.extendleft(reversed(group[taken:]))
                self._wcv.notify_all()     # the group's committers return

    def _run_group(self, group: list[_Waiter]) -> int:
        """Check every commit of ``group`` against the store and the group's earlier commits,
        number the survivors consecutively, publish them (one atomic batch: all or none;
        against servers without atomic batches one at a time, so a prefix), then apply the
        acknowledged ones in version order. A commit that fails its check, or is not
        acknowledged, gets its error and applies nothing. Returns how many of ``group`` were
        taken (the rest did not fit ``_GROUP`` messages or ``_GROUP_BYTES``)."""
        store = self.store
        store._check_open()
        self._check_usable()
        if self._uncertain or store.version != self._shipped:
            self._repair_locked()          # applies what reached the stream; may fence us
        oracle = store._oracle
        pending = Oracle.overlay(oracle.next_version)
        staged: list[_Waiter] = []
        size = msgs = 0
        taken = len(group)
        for i, w in enumerate(group):
            tx = w.tx
            serializable = tx.isolation == "serializable"
            try:
                for o in (oracle, pending):
                    o.check(tx.read_version, tx._writes.keys(), tx._reads, tx._ranges,
                            tx._read_all, serializable)
                w.version, w.ts = pending.next_version, time.time()
                w.data = self._encode(w.version, w.ts, w.batches)
            except (ConflictError, CommitTooLarge) as exc:
                w.error, w.done = exc, True
                continue
            msgs += len(w.data)
            size += sum(map(len, w.data))
            if staged and (msgs > _GROUP or size > _GROUP_BYTES):
                taken = i
                break
            pending.register(pending.allocate(), frozenset(tx._writes), 0)
            staged.append(w)
        if not staged:
            return taken
        link = self.link
        results = self._publish([m for w in staged for m in w.data])
        self.counters["groups"] += 1
        at = 0
        for i, w in enumerate(staged):
            mine, at = results[at:at + len(w.data)], at + len(w.data)
            bad = next((r for r in mine if not isinstance(r, int)), None)
            if bad is not None:
                self._refused(staged[i:], bad)
                return taken
            self._last_seq, self._shipped = mine[-1], w.version  # type: ignore[assignment]
            self.counters["published"] += 1
            try:
                w.end = store._apply_locked(w.tx, w.version, w.ts, w.batches, w.durability)
            except Exception as exc:  # noqa: BLE001 - any local failure: the stream has it
                # In the stream, not applied here (a local disk error): the next commit
                # applies it, and the later ones of this group, from the stream.
                self._uncertain = True
                w.error, w.done = exc, True
                for later in staged[i + 1:]:
                    later.error = ReplicationUnavailable(
                        f"commit {later.version} reached stream {link.stream!r} but commit "
                        f"{w.version} before it could not be applied here ({exc}); the next "
                        "commit applies both from the stream")
                    later.done = True
                return taken
            w.done = True
        return taken

    def _publish(self, msgs: list[bytes]) -> list[int | BaseException]:
        """Publish commit messages after :attr:`_last_seq` (one atomic batch)."""
        subject = self.link.commit_subject
        try:
            return self.link.publish_many([(subject, m) for m in msgs], self._last_seq)
        except ReplicationUnavailable as exc:
            return [exc] * len(msgs)

    def _refused(self, rest: list[_Waiter], why: BaseException) -> None:
        """The stream did not acknowledge ``rest[0]`` (nor, then, anything after it): fail
        them all, applying nothing. A wrong last sequence means another store claimed the
        stream (fenced) or a publish of ours whose acknowledgement was lost landed after all;
        otherwise the outcome is unknown and the next commit learns what reached the stream."""
        self._uncertain = True
        stream = self.link.stream
        if isinstance(why, WrongLastSequence):
            try:
                self._resync()
            except FencedError:
                for w in rest:
                    w.error, w.done = FencedError(self._fenced or "fenced"), True
                return
            except ReplicationUnavailable:
                pass
            for w in rest:
                w.error = ReplicationUnavailable(
                    f"commit {w.version} was refused: stream {stream!r} holds a later message "
                    "of this store's; nothing was applied, retry")
                w.done = True
            return
        for w in rest:
            w.error = ReplicationUnavailable(
                f"commit {w.version} was not acknowledged by stream {stream!r} ({why!r}); it was "
                "not applied here, retry it (the next commit checks whether it reached the "
                "stream)")
            w.done = True

    def _resync(self) -> None:
        """Learn the stream's end: the newest claim must be ours; adopt its last sequence and
        the newest commit's version."""
        link = self.link
        _, last = link.info()
        claim = link.last(link.claim_subject)
        if claim is not None and decode_message(claim[1], claim[0]).writer != self.node:
            raise self._fence(f"store {decode_message(claim[1], claim[0]).writer.hex()} claimed it")
        top = link.last(link.commit_subject)
        if top is not None:
            m = decode_message(top[1], top[0])
            if m.writer != self.node and (claim is None or top[0] > claim[0]):
                raise self._fence(f"store {m.writer.hex()} wrote commit {m.version}")
            self._shipped = max(self._shipped, m.version) if m.writer == self.node else self._shipped
        self._last_seq = last

    def _repair_locked(self) -> None:
        """After an unacknowledged publish or a failed local apply (under the commit lock):
        apply whatever of this store's commits reached the stream after all, then continue
        from the stream's end. The commits applied are registered in the conflict window,
        so the group's checks see them. Raises FencedError if another store took over."""
        self._resync()
        link, store = self.link, self.store
        first, last = link.info()
        applier = Applier(store, link.stream, self.lineage, self.node,
                          resume_seq(link, store.version, first, last) - 1)
        while applier.seq < last:
            r = link.get(applier.seq + 1)
            if r is None or r[0] > last:
                break
            applier.handle(r[0], r[1], locked=True)
        self._last_seq, self._shipped, self._uncertain = last, store.version, False

    # -- async --------------------------------------------------------------------------------

    def enqueue(self, version: int, ts: float, batches: Any) -> None:
        """The async hook (under the commit lock): queue the encoded commit."""
        self._check_usable()
        data = self._encode(version, ts, batches)
        with self._cv:
            self._queue.append((version, data))
            self._cv.notify_all()

    def _ship_loop(self) -> None:
        link = self.link
        while True:
            with self._cv:
                while not self._queue and not self._stop:
                    self._cv.wait()
                if not self._queue and self._stop:
                    return
                group: list[tuple[int, list[bytes]]] = []
                msgs = 0
                for v, data in self._queue:   # at most _GROUP messages, at least one commit
                    if group and msgs + len(data) > _GROUP:
                        break
                    group.append((v, data))
                    msgs += len(data)
            results = self._publish([m for _, data in group for m in data])
            done = 0
            trouble: BaseException | None = None
            at = 0
            for v, data in group:
                mine, at = results[at:at + len(data)], at + len(data)
                trouble = next((r for r in mine if not isinstance(r, int)), None)
                if trouble is not None:
                    break
                self._last_seq, self._shipped = mine[-1], v  # type: ignore[assignment]
                done += 1
            with self._cv:
                for _ in range(done):
                    self._queue.popleft()
                self.counters["published"] += done
                self.counters["groups"] += 1
                self._cv.notify_all()
            if trouble is None:
                continue
            # A wrong last sequence, a timeout or a lost connection: the stream's end decides
            # (a claim by another store fences this one; otherwise resume after what landed).
            while not self._stop:
                time.sleep(0.2)
                try:
                    self._resync()
                    break
                except FencedError:
                    log.error("async replication of stream %s fenced: %s", link.stream, self._fenced)
                    with self._cv:
                        self._cv.notify_all()
                    return
                except ReplicationUnavailable:
                    continue
            with self._cv:
                while self._queue and self._queue[0][0] <= self._shipped:
                    self._queue.popleft()

    def lag(self) -> int:
        """Commits applied here that the stream has not acknowledged yet."""
        return max(0, self.store.version - self._shipped)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued commit is acknowledged (True) or ``timeout`` passed."""
        end = time.monotonic() + timeout
        with self._cv:
            while self._queue and self._fenced is None:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(min(left, 0.1))
        if self._fenced is not None:
            raise FencedError(self._fenced)
        return True

    # -- snapshots ----------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Write the store's state to the snapshot bucket, then trim the stream's commits
        below it. Returns ``{"version", "bytes", "records", "trimmed_below_seq"}``."""
        with self._snap_lock:
            self._check_usable()
            store = self.store
            if self.ack == "async":
                self.flush()
            with scratch_dir(store) as d, open(d / "snapshot", "w+b") as fh:
                with store.snapshot() as snap:   # holds the version against GC while dumping
                    v = snap.version
                    if v > self._shipped:
                        raise ReplicationUnavailable(f"version {v} is not acknowledged by the stream yet")
                    records = write_store_snapshot(store, v, fh, self.link.stream, self.lineage,
                                                   self.node)
                size = fh.tell()
                fh.seek(0)
                self.link.put_snapshot(fh, size, self.replicas)
            first, last = self.link.info()
            cut = resume_seq(self.link, v, first, last)
            self.link.purge_commits_below(cut)
            self.counters["snapshots"] += 1
            self.last_snapshot = {"version": v, "bytes": size, "records": records,
                                  "trimmed_below_seq": cut}
            return self.last_snapshot

    def _snapshot_loop(self) -> None:
        interval = float(self._snapshot_interval or 0)
        last_v = -1
        while True:
            with self._cv:
                if self._stop:
                    return
                self._cv.wait(interval)
                if self._stop:
                    return
            if self.store.version != last_v and self._fenced is None:
                try:
                    last_v = int(self.snapshot()["version"])
                except Exception as exc:  # noqa: BLE001 - a scheduled snapshot retries later
                    log.warning("scheduled replication snapshot failed: %s", exc)

    # -- status and shutdown ------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {"role": "primary", "stream": self.link.stream, "ack": self.ack,
                "version": self.store.version, "shipped_version": self._shipped,
                "lag": self.lag(), "last_seq": self._last_seq, "fenced": self._fenced is not None,
                "node": self.node.hex(), "lineage": self.lineage.hex(),
                "lease": None if self._lease is None else {
                    "period": self._lease.period, "revision": self._lease.rev, "lost": self._lease.lost},
                **self.counters}

    def close(self) -> None:
        """Ship what async replication still holds (bounded), stop threads, disconnect."""
        if self.ack == "async" and self._fenced is None:
            try:
                self.flush(timeout=10.0)
            except FencedError:
                pass
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        for t in self._threads:
            t.join(timeout=15)
        if self._lease is not None:
            self._lease.stop()    # the lease lapses: replicas that watch it take over
        store = self.store
        with store._commit_lock:   # no commit is between its check and its publish
            if store._replication is self and not self._closing:
                # detached from a store that stays open: it commits locally from now on
                store._pre_apply = store._group_commit = None
                store._replication = None
        self.link.close()


def claim_stream(link: Link, lineage: bytes, node: bytes, version: int, expected_last: int,
                 reason: str) -> int:
    """Publish a claim (this node is primary from here on); return its sequence.

    Raises: WrongLastSequence (someone else wrote after ``expected_last``).
    """
    info = {"reason": reason, "host": socket.gethostname(), "pid": os.getpid()}
    data = encode_claim(link.stream, lineage, node, version, time.time(), info)
    return link.publish(link.claim_subject, data, expected_last)


def start_primary(store: Any, *, servers: list[str], stream: str, replicas: int = 3,
                  ack: str = "sync", timeout: float = 10.0,
                  snapshot_interval: float | None = None, lease: float | None = None) -> Primary:
    """``store.replicate(...)``: attach ``store`` to ``stream`` as its primary.

    A fresh stream is created and claimed (if the store already holds commits, a snapshot
    is written so replicas can start). An existing stream must be this store's own, last
    claimed by it; commits it holds above the store's version (acknowledged by JetStream but
    lost locally by a crash) are applied first.
    """
    _check_args(ack, replicas)
    lease = check_lease(lease, "lease")
    if store._replication is not None:
        raise ValueError("this store is already replicating (or is a replica); close it first")
    if store._read_only is not None:
        raise ReadOnlyError(store._read_only)
    state = load_state(store.path)
    if state is not None and state.stream != stream:
        raise ValueError(f"store {store.path} replicates to stream {state.stream!r}, not {stream!r}")
    if state is not None and state.role != "primary":
        raise ReadOnlyError(f"store {store.path} is a replica of stream {state.stream!r}; open it "
                            "with engine.open_replica and promote() it to make it primary")
    link = Link(servers, stream, timeout=timeout)
    link.connect()
    try:
        _, last = link.ensure_stream(replicas)
        node = state.node_id if state is not None else os.urandom(8)
        claim = link.last(link.claim_subject)
        if claim is None:
            if last != 0:
                raise ForeignStream(f"stream {stream!r} holds messages but no tierdb claim: it "
                                    "is written by something else; use a stream of its own")
            lineage = os.urandom(16)
            try:
                seq = claim_stream(link, lineage, node, store.version, 0, "genesis")
            except WrongLastSequence:
                raise FencedError(f"another store claimed the new stream {stream!r} first") from None
            save_state(store.path, ReplicationState(stream, "primary", node.hex(), lineage.hex(),
                                                    list(servers)))
            prim = Primary(store, link, lineage=lineage, node=node, last_seq=seq, ack=ack,
                           replicas=replicas, snapshot_interval=snapshot_interval)
        else:
            m = decode_message(claim[1], claim[0])
            if m.kind != KIND_CLAIM or m.stream != stream:
                raise ForeignStream(f"stream {stream!r}'s claim message is not a tierdb claim for it")
            if state is None or state.lineage_id != m.lineage:
                raise ForeignStream(
                    f"stream {stream!r} already replicates another store (lineage "
                    f"{m.lineage.hex()}); open this store on a new stream, or open a replica of it")
            if m.writer != node:
                raise FencedError(
                    f"stream {stream!r} was claimed by store {m.writer.hex()} at version "
                    f"{m.version} (a promotion): this store is no longer its primary. Open it "
                    "as a replica (engine.open_replica) or discard it")
            # Our own stream: apply commits it acknowledged that this store lost (kill -9
            # between JetStream's ack and the local apply), then check that we are level.
            claims = load_claims(link)
            first, last = link.info()
            start = resume_seq(link, store.version, first, last)
            writer = next((w for s, w, _ in reversed(claims) if s < start), None)
            applier = Applier(store, stream, m.lineage, writer, start - 1)
            applier.catch_up(link, last)
            top = link.last(link.commit_subject)
            if top is not None and decode_message(top[1], top[0]).version > store.version:
                raise ReplicaDiverged(f"stream {stream!r} ends above version {store.version}")
            if top is not None and decode_message(top[1], top[0]).version < store.version:
                raise ReplicaDiverged(
                    f"store is at version {store.version} but stream {stream!r} ends at "
                    f"{decode_message(top[1], top[0]).version}: commits made with ack='async' "
                    "were lost before shipping. Re-seed: open a replica from the stream, or "
                    "replicate this store to a new stream")
            prim = Primary(store, link, lineage=m.lineage, node=node, last_seq=last, ack=ack,
                           replicas=replicas, snapshot_interval=snapshot_interval)
        with store._commit_lock:
            prim.install()
    except BaseException:
        link.close()
        raise
    if lease is not None:
        # replicas opened with auto_promote take over when this lease stops moving
        prim.adopt_lease(LeaseKeeper(link, prim.node, lease, replicas, lambda: store.version))
    if claim is None and store.version > 0:
        prim.snapshot()   # replicas of a store with history start from this snapshot
    return prim
