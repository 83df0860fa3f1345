"""Graph checkpoints: baseline records and the attach wiring (spec 11.1, 11.4).

``attach_snapshot_storage(graph, pairs)`` observes a graph and, once per wave, writes
to every ``(snapshot_tier, wal_tier)`` pair either

* a **full baseline** ``GraphCheckpointRecord(name, "full", snapshot, seq, now_ns, 1)``
  (no WAL tier, first flush, or the emission count crossed a multiple of the snapshot
  tier's ``compact_every``, default 10), with ``seq`` the current WAL seq; or
* **WAL frames** for ``diff_snapshots(last, current)`` under
  ``wal_frame_key(graph_wal_prefix(name), frame_seq)``.

tierdb commits a wave's writes in **one store commit** (``flush_together`` of every
tier whose write trigger fired, per store), so a checkpoint and its frames land in one
version. Debounced tiers keep their writes buffered until :meth:`StorageHandle.flush_all`
(or until their own ``compact_every`` fires).

tierdb extension: when the frames of a wave would not rebuild the graph exactly
(a change inside a mounted subgraph, a mount of a non-empty subgraph: the top-level
diff cannot express them), a full baseline is written instead, so restore is exact.

Notes: thread safety. The handle is driven by the graph's waves; use both from one
thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..types import EntryKind
from .base import ViewBase, flush_together
from .codec import Codec
from .diff import (
    SNAPSHOT_VERSION,
    decompose_diff_to_frames,
    diff_snapshots,
    replay_on_snapshot,
)
from .errors import CodecError
from .graph import Graph, json_equal
from .kv import KvStorage, kv_storage
from .protocols import StoreLike
from .snapshot import SnapshotStorage, snapshot_storage
from .wal import graph_wal_prefix, parse_frame_seq, wal_frame_key

__all__ = [
    "DEFAULT_COMPACT_EVERY",
    "SNAPSHOT_VERSION",
    "GraphCheckpointRecord",
    "StorageHandle",
    "attach_snapshot_storage",
    "graph_storage",
]

DEFAULT_COMPACT_EVERY = 10


@dataclass(frozen=True, slots=True)
class GraphCheckpointRecord:
    """A baseline: the whole graph snapshot plus the WAL high-water mark ``seq``."""

    name: str
    mode: str
    snapshot: dict[str, Any]
    seq: int
    timestamp_ns: int
    format_version: int = SNAPSHOT_VERSION

    def to_json(self) -> dict[str, Any]:
        """The JSON object a snapshot tier stores."""
        return {
            "name": self.name,
            "mode": self.mode,
            "snapshot": self.snapshot,
            "seq": self.seq,
            "timestamp_ns": self.timestamp_ns,
            "format_version": self.format_version,
        }

    @classmethod
    def from_json(cls, obj: Any) -> GraphCheckpointRecord:
        """Parse a stored record (a record instance passes through).

        Raises:
            CodecError: kind ``decode``: not a checkpoint record.
        """
        if isinstance(obj, GraphCheckpointRecord):
            return obj
        if not isinstance(obj, Mapping):
            raise CodecError("decode", f"checkpoint record must be an object, got {type(obj).__name__}")
        try:
            rec = cls(
                name=obj["name"],
                mode=obj["mode"],
                snapshot=obj["snapshot"],
                seq=obj["seq"],
                timestamp_ns=obj["timestamp_ns"],
                format_version=obj.get("format_version", SNAPSHOT_VERSION),
            )
        except KeyError as exc:
            raise CodecError("decode", f"checkpoint record is missing field {exc.args[0]!r}") from None
        if not isinstance(rec.name, str) or not isinstance(rec.mode, str):
            raise CodecError("decode", "checkpoint record name and mode must be str")
        if not isinstance(rec.snapshot, Mapping):
            raise CodecError("decode", "checkpoint record snapshot must be an object")
        for what in ("seq", "timestamp_ns", "format_version"):
            v = getattr(rec, what)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise CodecError("decode", f"checkpoint record {what} must be a non-negative int")
        return rec


@dataclass(slots=True)
class _PairState:
    snapshot_tier: Any
    wal_tier: Any | None
    wal_prefix: str
    seq: int
    compact_every: int
    flush_count: int = 0
    last_snapshot: dict[str, Any] | None = None
    baselines: int = 0
    frames: int = 0


def _stage_snapshot(tier: Any, rec: dict[str, Any]) -> bool:
    """Buffer ``rec`` in ``tier``; True when the tier wants flushing now."""
    if isinstance(tier, ViewBase):
        return bool(tier._stage_save(rec))  # type: ignore[attr-defined]
    tier.save(rec)  # a foreign tier applies its own trigger
    return False


def _stage_frames(tier: Any, items: dict[str, Any]) -> bool:
    if isinstance(tier, ViewBase):
        return bool(tier._stage_many(items))  # type: ignore[attr-defined]
    for key, value in items.items():
        tier.save(key, value)
    return False


@dataclass(slots=True)
class _Stats:
    waves: int = 0
    commits: list[int] = field(default_factory=list)


class StorageHandle:
    """What :func:`attach_snapshot_storage` returns: flush, compact, dispose, detach."""

    def __init__(
        self,
        graph: Graph,
        pairs: list[_PairState],
        *,
        filter: Callable[[str], bool] | None,
        on_error: Callable[[BaseException], None] | None,
        pin_checkpoints: bool,
        clock: Callable[[], int],
    ) -> None:
        self._graph = graph
        self._pairs = pairs
        self._filter = filter
        self._on_error = on_error
        self._pin = pin_checkpoints
        self._clock = clock
        self._disposed = False
        self._scheduled = False
        self._emissions = 0
        self._force_full = False
        self._stats = _Stats()
        self._unsubscribe: Callable[[], None] | None = graph.observe(self._on_message)

    # ------------------------------------------------------------------ public

    @property
    def disposed(self) -> bool:
        """True after :meth:`dispose` or :meth:`detach`."""
        return self._disposed

    @property
    def commits(self) -> list[int]:
        """Store versions committed by this handle, oldest first."""
        return list(self._stats.commits)

    @property
    def last_version(self) -> int | None:
        """The newest store version committed by this handle."""
        return self._stats.commits[-1] if self._stats.commits else None

    @property
    def seq(self) -> int:
        """The WAL seq of the first pair (the high-water mark of its frames)."""
        return self._pairs[0].seq if self._pairs else 0

    def pin_name(self, version: int) -> str:
        """The pin name ``pin_checkpoints=True`` uses for ``version``."""
        return f"graph:{self._graph.name}@{version}"

    def unpin_checkpoints(self, before: int | None = None) -> int:
        """Release this graph's checkpoint pins below ``before`` (all when ``None``).

        Returns:
            How many pins were released, in every store of every pair.
        """
        prefix = f"graph:{self._graph.name}@"
        released = 0
        seen: list[Any] = []
        for st in self._pairs:
            store = getattr(st.snapshot_tier, "store", None)
            if store is None or any(s is store for s in seen):
                continue
            seen.append(store)
            for name, version in store.pins().items():
                if name.startswith(prefix) and (before is None or version < before):
                    released += bool(store.unpin(name))
        return released

    def dispose(self) -> None:
        """Stop writing (a flag; the observer stays subscribed until :meth:`detach`)."""
        self._disposed = True

    def detach(self) -> None:
        """Dispose and unsubscribe from the graph. Idempotent."""
        self.dispose()
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def flush_all(self) -> list[int]:
        """Commit every buffered write of every pair (one commit per store).

        Returns:
            The committed versions.

        Raises:
            StorageError: the first error met, after trying every store.
        """
        if self._disposed:
            return []
        tiers: list[Any] = []
        for st in self._pairs:
            tiers.append(st.snapshot_tier)
            if st.wal_tier is not None:
                tiers.append(st.wal_tier)
        return self._commit(tiers, raise_first=True)

    def checkpoint(self, *, full: bool = False) -> list[int]:
        """Write the graph's current state now (a baseline if ``full``), then flush all.

        ``full=True`` is the checkpoint-level "compact": it forces a ``mode: "full"``
        baseline, after which restore needs no earlier frame.
        """
        if self._disposed:
            return []
        self._force_full = self._force_full or full
        self._write_wave(0)
        return self.flush_all()

    def compact(self) -> list[int]:
        """Force a full baseline of the current state and commit it."""
        return self.checkpoint(full=True)

    # ------------------------------------------------------------------ wiring

    def _on_message(self, path: str, tier: int) -> None:
        if self._disposed or not 3 <= tier <= 5:
            return
        if self._filter is not None and not self._filter(path):
            return
        self._emissions += 1
        if not self._scheduled:
            self._scheduled = True
            self._graph.after_wave(self._on_wave_end)

    def _on_wave_end(self) -> None:
        self._scheduled = False
        emissions, self._emissions = self._emissions, 0
        if self._disposed:
            return
        self._stats.waves += 1
        fired = self._write_wave(emissions)
        for st in self._pairs:
            pair = [t for t in (st.snapshot_tier, st.wal_tier) if isinstance(t, ViewBase)]
            # A pair commits as a unit: when one of its tiers fires, the other's buffered
            # data (a pending baseline or frames) lands in the same version, so a version
            # never holds frames whose baseline is still buffered. A write-through tier
            # still holding data (a failed earlier commit) retries now as well.
            if any(any(f is t for f in fired) for t in pair) or any(
                t.write_through and t.has_pending for t in pair
            ):
                for tier in pair:
                    if tier.has_pending and not any(f is tier for f in fired):
                        fired.append(tier)
        if fired:
            self._commit(fired, raise_first=False)

    def _write_wave(self, emissions: int) -> list[Any]:
        """Stage this wave's baseline or frames; return the tiers that want a flush now."""
        snapshot = self._graph.snapshot()
        now = int(self._clock())
        force_full, self._force_full = self._force_full, False
        fired: list[Any] = []
        for st in self._pairs:
            prev = st.flush_count
            st.flush_count = prev + emissions
            crossed = prev // st.compact_every != st.flush_count // st.compact_every
            full = force_full or st.wal_tier is None or st.last_snapshot is None or crossed
            if not full:
                assert st.last_snapshot is not None
                diff = diff_snapshots(st.last_snapshot, snapshot)
                if diff.is_empty():
                    if not json_equal(st.last_snapshot, snapshot):
                        full = True  # a change the top-level diff cannot see
                else:
                    frames, last_seq = decompose_diff_to_frames(diff, now, st.seq)
                    if not json_equal(replay_on_snapshot(st.last_snapshot, frames), snapshot):
                        full = True  # frames would not rebuild this state exactly
                    else:
                        assert st.wal_tier is not None
                        items = {
                            wal_frame_key(st.wal_prefix, f.frame_seq): f.to_json() for f in frames
                        }
                        if _stage_frames(st.wal_tier, items):
                            fired.append(st.wal_tier)
                        st.seq = last_seq
                        st.frames += len(frames)
            if full:
                rec = GraphCheckpointRecord(
                    name=self._graph.name,
                    mode="full",
                    snapshot=snapshot,
                    seq=st.seq,
                    timestamp_ns=now,
                    format_version=SNAPSHOT_VERSION,
                )
                if _stage_snapshot(st.snapshot_tier, rec.to_json()):
                    fired.append(st.snapshot_tier)
                st.baselines += 1
            st.last_snapshot = snapshot  # fresh copy per wave, never mutated
        return fired

    def _commit(self, tiers: Sequence[Any], *, raise_first: bool) -> list[int]:
        """flush_together per store; pin versions on request; report errors."""
        groups: list[list[Any]] = []
        for tier in tiers:
            if not isinstance(tier, ViewBase):
                continue
            for group in groups:
                if group[0].store is tier.store:
                    if not any(t is tier for t in group):
                        group.append(tier)
                    break
            else:
                groups.append([tier])
        versions: list[int] = []
        first_error: BaseException | None = None
        for group in groups:
            try:
                version = flush_together(*group)
                if version is not None:
                    versions.append(version)
                    self._stats.commits.append(version)
                    if self._pin:
                        group[0].store.pin(version, self.pin_name(version))
            except Exception as exc:  # reported below; the data stays buffered for a retry
                if first_error is None:
                    first_error = exc
                if self._on_error is not None and not raise_first:
                    self._on_error(exc)
        if first_error is not None and (raise_first or self._on_error is None):
            raise first_error
        # Foreign (non-view) tiers flush on their own schedule; flush_all asks them too.
        if raise_first:
            for tier in tiers:
                if not isinstance(tier, ViewBase):
                    tier.flush()
        return versions


def attach_snapshot_storage(
    graph: Graph,
    pairs: Sequence[tuple[Any, Any | None]],
    *,
    filter: Callable[[str], bool] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    pin_checkpoints: bool = False,
    clock: Callable[[], int] | None = None,
) -> StorageHandle:
    """Checkpoint ``graph`` into each ``(snapshot_tier, wal_tier_or_None)`` pair.

    Args:
        filter: ``filter(path)`` false -> messages of that node do not trigger a write.
        on_error: receives flush errors; without it they propagate out of the call that
            ended the wave (``graph.set`` ...). Either way the data stays buffered and the
            next flush retries it.
        pin_checkpoints: pin every committed checkpoint version (``store.pin``) so that
            restore as of it survives garbage collection.
        clock: nanosecond wall clock (default ``time.time_ns``).

    Each pair's ``seq`` starts at the highest frame seq already in its WAL, so frames
    written after a re-attach continue above the old tail.
    """
    states: list[_PairState] = []
    prefix = graph_wal_prefix(graph.name)
    for index, pair in enumerate(pairs):
        try:
            snap, wal = pair
        except (TypeError, ValueError):
            raise TypeError(f"pair {index} must be (snapshot_tier, wal_tier_or_None), got {pair!r}") from None
        high = 0
        if wal is not None:
            for key in wal.list(prefix + "/"):
                high = max(high, parse_frame_seq(key))
        compact_every = getattr(snap, "compact_every", None) or DEFAULT_COMPACT_EVERY
        states.append(_PairState(snap, wal, prefix, high, int(compact_every)))
    return StorageHandle(
        graph,
        states,
        filter=filter,
        on_error=on_error,
        pin_checkpoints=pin_checkpoints,
        clock=clock or time.time_ns,
    )


def graph_storage(
    store: StoreLike,
    name: str,
    *,
    table: EntryKind | None = None,
    keyspace: str | None = None,
    codec: Codec | None = None,
    debounce_ms: float | None = None,
    compact_every: int | None = None,
) -> tuple[SnapshotStorage, KvStorage]:
    """The conventional ``(snapshot tier, WAL kv tier)`` pair of graph ``name``.

    Both tiers are named ``name`` and share one keyspace (default ``name``), so the
    baseline is stored under key ``name`` and the frames under ``name/wal/<seq>``, as
    GraphReFly lays them out over one backend. ``compact_every`` (the baseline cadence
    of :func:`attach_snapshot_storage`) goes to the snapshot tier only. ``tierdb graph
    log`` / ``graph show`` read this layout.
    """
    # Options spelled out rather than **ViewOptions: compact_every goes to the snapshot tier only.
    snap = snapshot_storage(
        store, name, table=table, keyspace=keyspace, codec=codec,
        debounce_ms=debounce_ms, compact_every=compact_every,
    )
    wal = kv_storage(store, name, table=table, keyspace=keyspace, codec=codec, debounce_ms=debounce_ms)
    return snap, wal
