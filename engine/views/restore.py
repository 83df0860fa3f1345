"""Replay: rebuild a graph from a baseline plus WAL frames (spec section 10).

``restore_snapshot(graph, snapshot_tier, wal_tier, options)``:

1. **Baseline**: load the snapshot tier (at ``options.version``) and ``graph.restore``
   it. A load error is ``PhaseFailed("spec", 0, ...)``; no record, or a mode other than
   ``"full"``, is ``BaselineMissing``.
2. **Collect**: list WAL keys under ``graph_wal_prefix(baseline.name) + "/"``, keep
   ``baseline.seq < seq <= target_seq``, load those frames (at the same version), sort
   by ``frame_seq``.
3. **Verify** checksums. A bad frame at the tail (judged after the ``target_seq`` cut) is
   skipped by default; a bad frame mid-stream aborts (``TornWriteMidStream``) unless
   ``on_torn_write(frame_seq, reason)`` says otherwise. A frame whose stored bytes do not
   even decode is treated as torn too (reason ``"decode-failed"``).
4. **Apply** frames per lifecycle in ``REPLAY_ORDER``, each lifecycle inside one
   ``graph.batch()``; a failure is ``PhaseFailed`` and earlier phases stay applied.

Every read happens at one store version: ``options.version`` or, when it is ``None``,
the store's version when the restore starts, so a concurrent writer cannot tear the
restore.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import FutureVersionError, HistoryUnavailable
from ..types import check_version
from .checkpoint import GraphCheckpointRecord
from .errors import (
    BaselineMissing,
    CodecError,
    FrameSeqGap,
    PhaseFailed,
    TornWriteMidStream,
)
from .graph import PATH_SEP, SENTINEL
from .wal import (
    REPLAY_ORDER,
    WALFrame,
    graph_wal_prefix,
    parse_frame_seq,
    verify_wal_frame_checksum,
)

__all__ = [
    "PhaseStat",
    "RestoreOptions",
    "RestoreResult",
    "TornWritePolicy",
    "apply_wal_frame",
    "restore_snapshot",
]

REASON_CHECKSUM = "checksum-mismatch"
REASON_DECODE = "decode-failed"


class TornWritePolicy(enum.StrEnum):
    """What to do with a frame that fails verification."""

    SKIP = "skip"
    ABORT = "abort"


@dataclass(frozen=True, slots=True)
class RestoreOptions:
    """Options of :func:`restore_snapshot`.

    Attributes:
        target_seq: replay frames up to this seq (``None``: all).
        version: the store version to read baseline and frames at (time travel).
        on_torn_write: ``(frame_seq, reason) -> TornWritePolicy`` for bad frames.
        strict_frame_seq: raise ``FrameSeqGap`` when frame seqs are not contiguous.
    """

    target_seq: int | None = None
    version: int | None = None
    on_torn_write: Callable[[int, str], TornWritePolicy] | None = None
    strict_frame_seq: bool = False

    def __post_init__(self) -> None:
        if self.target_seq is not None:
            if isinstance(self.target_seq, bool) or not isinstance(self.target_seq, int):
                raise TypeError(f"target_seq must be None or an int, got {type(self.target_seq).__name__}")
            if self.target_seq < 0:
                raise ValueError(f"target_seq must be >= 0, got {self.target_seq}")
        if self.version is not None:
            check_version(self.version)
        if self.on_torn_write is not None and not callable(self.on_torn_write):
            raise TypeError("on_torn_write must be callable")


@dataclass(frozen=True, slots=True)
class PhaseStat:
    """Frames replayed in one lifecycle."""

    lifecycle: str
    frames: int


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """Outcome of a restore; ``phases`` lists non-empty lifecycles in replay order."""

    replayed_frames: int
    skipped_frames: int
    final_seq: int
    phases: list[PhaseStat] = field(default_factory=list)
    version: int | None = None
    """The store version everything was read at (``None`` for a store-less tier)."""


@dataclass(slots=True)
class _Collected:
    seq: int
    frame: WALFrame | None  # None: the stored bytes did not decode


def _fix_version(tier: Any, version: int | None) -> int | None:
    if version is not None:
        return version
    store = getattr(tier, "store", None)
    if store is None:
        return None
    return int(store.version)


def _load_baseline(graph: Any, snapshot_tier: Any, version: int | None) -> GraphCheckpointRecord:
    try:
        raw = snapshot_tier.load(version=version)
    except (FutureVersionError, HistoryUnavailable):
        raise
    except Exception as exc:
        raise PhaseFailed("spec", 0, f"baseline load failed: {exc}") from exc
    if raw is None:
        raise BaselineMissing(
            "no baseline in the snapshot tier" + (f" at version {version}" if version is not None else "")
        )
    try:
        record = GraphCheckpointRecord.from_json(raw)
    except CodecError as exc:
        raise PhaseFailed("spec", 0, f"baseline decode failed: {exc}") from exc
    if record.mode != "full":
        raise BaselineMissing(f"the snapshot tier holds a {record.mode!r} record, not a full baseline")
    try:
        graph.restore(record.snapshot)
    except Exception as exc:
        raise PhaseFailed("spec", 0, f"baseline restore failed: {exc}") from exc
    return record


def _collect(
    wal_tier: Any, name: str, baseline_seq: int, target_seq: int | None, version: int | None
) -> list[_Collected]:
    prefix = graph_wal_prefix(name) + "/"
    try:
        keys = wal_tier.list(prefix, version=version)
    except (FutureVersionError, HistoryUnavailable):
        raise
    except Exception as exc:
        raise PhaseFailed("spec", 0, f"WAL frame enumeration failed: {exc}") from exc
    out: list[_Collected] = []
    for key in keys:
        seq = parse_frame_seq(key)
        if seq <= baseline_seq or (target_seq is not None and seq > target_seq):
            continue
        try:
            raw = wal_tier.load(key, version=version)
        except CodecError:
            out.append(_Collected(seq, None))
            continue
        except (FutureVersionError, HistoryUnavailable):
            raise
        except Exception as exc:
            raise PhaseFailed("data", seq, f"WAL frame load failed: {exc}") from exc
        if raw is None:
            continue
        try:
            frame = raw if isinstance(raw, WALFrame) else WALFrame.from_json(raw)
        except CodecError:
            out.append(_Collected(seq, None))
            continue
        out.append(_Collected(frame.frame_seq, frame))
    out.sort(key=lambda c: c.seq)
    return out


def _check_gaps(collected: list[_Collected], baseline_seq: int) -> None:
    expected = baseline_seq + 1
    for item in collected:
        if item.seq != expected:
            raise FrameSeqGap(expected, item.seq)
        expected += 1


def _verify(collected: list[_Collected], on_torn_write: Any) -> tuple[list[WALFrame], int]:
    verified: list[WALFrame] = []
    skipped = 0
    last = len(collected) - 1
    for i, item in enumerate(collected):
        reason = REASON_DECODE
        if item.frame is not None:
            try:
                if verify_wal_frame_checksum(item.frame):
                    verified.append(item.frame)
                    continue
            except CodecError:
                pass  # a checksum that cannot be computed counts as a mismatch
            reason = REASON_CHECKSUM
        if on_torn_write is not None:
            policy = TornWritePolicy(on_torn_write(item.seq, reason))
        else:
            policy = TornWritePolicy.SKIP if i == last else TornWritePolicy.ABORT
        if policy is TornWritePolicy.ABORT:
            raise TornWriteMidStream(item.seq, reason)
        skipped += 1
    return verified, skipped


def _split(path: str) -> tuple[str, str]:
    head, sep, last = path.rpartition(PATH_SEP)
    return (head if sep else ""), last


def _container(graph: Any, parent_path: str) -> Any | None:
    return graph if not parent_path else graph.subgraph(parent_path)


def apply_wal_frame(graph: Any, frame: WALFrame) -> None:
    """Apply one frame idempotently (spec 10.2). Unknown kinds and ownership are ignored."""
    payload = frame.change.change
    if not isinstance(payload, Mapping):
        return
    kind = payload.get("kind")
    if frame.lifecycle == "spec":
        if kind in ("graph.add", "graph.remove"):
            node_id = payload.get("nodeId")
            if not isinstance(node_id, str) or not node_id:
                return
            exists = graph.resolve(node_id) is not None
            parent_path, name = _split(node_id)
            owner = _container(graph, parent_path)
            if owner is None:
                return
            if kind == "graph.add":
                slc = payload.get("slice")
                if exists or not isinstance(slc, Mapping) or slc.get("type") != "state":
                    return
                owner.state(name, slc.get("value", SENTINEL))
            elif exists:
                owner.remove(name)
        elif kind in ("graph.mount", "graph.unmount"):
            path = payload.get("path")
            if not isinstance(path, str) or not path:
                return
            parent_path, name = _split(path)
            owner = _container(graph, parent_path)
            if owner is None:
                return
            mounted = owner.subgraph(name) is not None
            if kind == "graph.mount" and not mounted:
                sub_id = payload.get("subgraphId") or name
                owner.mount(name, type(graph)(str(sub_id)))
            elif kind == "graph.unmount" and mounted:
                owner.unmount(name)
    elif frame.lifecycle == "data":
        path = payload.get("path")
        if not isinstance(path, str) or not path or graph.resolve(path) is None:
            return
        if kind == "node.set" and "value" in payload:
            graph.set(path, payload["value"])
        elif kind == "node.invalidate":
            graph.invalidate(path)
        # node.versionBump (TypeScript only) is decoded and ignored.
    # ownership frames are ignored.


def restore_snapshot(
    graph: Any,
    snapshot_tier: Any,
    wal_tier: Any,
    options: RestoreOptions | None = None,
) -> RestoreResult:
    """Rebuild ``graph`` from the baseline and WAL frames, as of ``options.version``.

    Raises:
        BaselineMissing: no full baseline (at that version).
        PhaseFailed: loading or applying a phase failed.
        TornWriteMidStream: a bad frame with policy ABORT (the baseline is applied).
        FrameSeqGap: with ``strict_frame_seq``, a missing frame (the baseline is applied).
        FutureVersionError, HistoryUnavailable: ``version`` is not readable.
    """
    opts = options if options is not None else RestoreOptions()
    if not isinstance(opts, RestoreOptions):
        raise TypeError(f"options must be RestoreOptions, got {type(opts).__name__}")
    if snapshot_tier is None or wal_tier is None:
        raise TypeError("restore_snapshot needs a snapshot tier and a WAL tier (both required)")
    snap_version = _fix_version(snapshot_tier, opts.version)
    wal_version = snap_version
    if opts.version is None and getattr(wal_tier, "store", None) is not getattr(snapshot_tier, "store", None):
        wal_version = _fix_version(wal_tier, None)

    baseline = _load_baseline(graph, snapshot_tier, snap_version)
    collected = _collect(wal_tier, baseline.name, baseline.seq, opts.target_seq, wal_version)
    if opts.strict_frame_seq:
        _check_gaps(collected, baseline.seq)
    verified, skipped = _verify(collected, opts.on_torn_write)

    phases: list[PhaseStat] = []
    replayed = 0
    final_seq = baseline.seq
    for lifecycle in REPLAY_ORDER:
        frames = [f for f in verified if f.lifecycle == lifecycle]
        if not frames:
            continue
        current = frames[0].frame_seq
        try:
            with graph.batch():
                for frame in frames:
                    current = frame.frame_seq
                    apply_wal_frame(graph, frame)
        except Exception as exc:
            raise PhaseFailed(lifecycle, current, f"applying frame {current} failed: {exc}") from exc
        replayed += len(frames)
        final_seq = max(final_seq, max(f.frame_seq for f in frames))
        phases.append(PhaseStat(lifecycle, len(frames)))
    return RestoreResult(replayed, skipped, final_seq, phases, snap_version)
