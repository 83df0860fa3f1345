"""Errors of the views layer: GraphReFly's ``StorageError`` and ``RestoreError`` variants.

Every class derives from :class:`engine.errors.EngineError`. GraphReFly models these as
enum variants; here each variant is a subclass, and each variant is also reachable as an
attribute of its family (``StorageError.BackendError``, ``RestoreError.PhaseFailed``), so
code ported from the Rust or TypeScript API reads the same. Where a built-in exception
fits, the class inherits it too (``CodecError`` is a ``ValueError``).

Each class carries a ``code``: the TypeScript error code, for logs and interop.
"""

from __future__ import annotations

from typing import ClassVar

from ..errors import EngineError

__all__ = [
    "AttachStorageError",
    "BackendError",
    "BackendNoListSupport",
    "BaselineMissing",
    "CodecError",
    "CodecMismatch",
    "FrameCodecMismatch",
    "FrameSeqGap",
    "GraphRestoreError",
    "NameMismatch",
    "OverwriteSinkRejected",
    "PhaseFailed",
    "RestoreError",
    "StorageError",
    "TornWriteMidStream",
    "UnknownNode",
    "UnknownSubgraph",
    "WalTierRequired",
]


# --------------------------------------------------------------------------- storage

# Variants look alike but each has its own message, attributes and built-in base: no shared factory.


class StorageError(EngineError):
    """A storage tier (view) failed: listing, codec or backend (store) trouble."""

    code: ClassVar[str] = "storage-error"

    # Variant aliases, filled in below once the subclasses exist.
    BackendNoListSupport: ClassVar[type[BackendNoListSupport]]
    CodecMismatch: ClassVar[type[CodecMismatch]]
    CodecError: ClassVar[type[CodecError]]
    BackendError: ClassVar[type[BackendError]]


class BackendNoListSupport(StorageError, NotImplementedError):
    """The store behind ``tier`` refuses range scans, so keys cannot be listed.

    A real tierdb store always lists; this arises only through a store wrapper whose
    ``range`` raises ``NotImplementedError`` (or that has no ``range`` at all).
    """

    code: ClassVar[str] = "backend-no-list-support"

    def __init__(self, tier: str) -> None:
        super().__init__(
            f"storage tier {tier!r}: the store does not support listing keys (range scans); "
            "use a store that implements range()"
        )
        self.tier = tier


class CodecMismatch(StorageError):
    """Data was written with codec ``found`` but is being read with codec ``expected``."""

    code: ClassVar[str] = "codec-mismatch"

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(
            f"codec mismatch: expected {expected!r}, data was written with {found!r}; "
            "open the tier with the codec that wrote it"
        )
        self.expected = expected
        self.found = found


class CodecError(StorageError, ValueError):
    """A value could not be encoded (``kind="encode"``) or decoded (``kind="decode"``)."""

    code: ClassVar[str] = "codec-error"

    def __init__(self, kind: str, message: str) -> None:
        if kind not in ("encode", "decode"):
            raise ValueError(f"CodecError kind must be 'encode' or 'decode', got {kind!r}")
        super().__init__(f"{kind} failed: {message}")
        self.kind = kind
        self.message = message


class BackendError(StorageError):
    """The store failed while a tier read or committed; ``source`` is the engine error."""

    code: ClassVar[str] = "backend-error"

    def __init__(self, message: str, source: BaseException | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        if source is not None:
            self.__cause__ = source


StorageError.BackendNoListSupport = BackendNoListSupport
StorageError.CodecMismatch = CodecMismatch
StorageError.CodecError = CodecError
StorageError.BackendError = BackendError


# --------------------------------------------------------------------------- restore


class RestoreError(EngineError):
    """``restore_snapshot`` could not rebuild the graph."""

    code: ClassVar[str] = "restore-error"

    PhaseFailed: ClassVar[type[PhaseFailed]]
    TornWriteMidStream: ClassVar[type[TornWriteMidStream]]
    BaselineMissing: ClassVar[type[BaselineMissing]]
    CodecMismatch: ClassVar[type[FrameCodecMismatch]]
    WalTierRequired: ClassVar[type[WalTierRequired]]
    FrameSeqGap: ClassVar[type[FrameSeqGap]]


class PhaseFailed(RestoreError):
    """Loading or applying ``lifecycle`` failed at ``frame_seq`` (0 = the baseline)."""

    code: ClassVar[str] = "phase-failed"

    def __init__(self, lifecycle: str, frame_seq: int, message: str) -> None:
        super().__init__(f"restore phase {lifecycle!r} failed at frame_seq {frame_seq}: {message}")
        self.lifecycle = str(lifecycle)
        self.frame_seq = frame_seq
        self.message = message


class TornWriteMidStream(RestoreError):
    """A WAL frame failed verification and the torn-write policy said ABORT.

    The baseline is applied; no frame is.
    """

    code: ClassVar[str] = "torn-write-mid-stream"

    def __init__(self, frame_seq: int, reason: str) -> None:
        super().__init__(
            f"WAL frame {frame_seq} is torn ({reason}) and is not the last frame; restore "
            "aborted after the baseline. Restore with target_seq below it, or pass "
            "on_torn_write returning TornWritePolicy.SKIP to skip it"
        )
        self.frame_seq = frame_seq
        self.reason = reason


class BaselineMissing(RestoreError):
    """The snapshot tier holds no full baseline (at the requested version)."""

    code: ClassVar[str] = "baseline-missing"

    def __init__(self, message: str = "no full baseline in the snapshot tier") -> None:
        super().__init__(
            message + "; attach_snapshot_storage writes one on its first flush"
        )


class FrameCodecMismatch(RestoreError):
    """``RestoreError.CodecMismatch``: defined for parity with GraphReFly, never raised."""

    code: ClassVar[str] = "codec-mismatch"

    def __init__(self, frame_seq: int, expected: str, found: str) -> None:
        super().__init__(
            f"WAL frame {frame_seq}: codec mismatch, expected {expected!r}, found {found!r}"
        )
        self.frame_seq = frame_seq
        self.expected = expected
        self.found = found


class WalTierRequired(RestoreError):
    """Unreachable in tierdb (the WAL tier is a required argument); kept for parity."""

    code: ClassVar[str] = "wal-tier-required"

    def __init__(self) -> None:
        super().__init__("restore needs a WAL tier")


class FrameSeqGap(RestoreError):
    """``strict_frame_seq=True`` found ``found_seq`` where ``expected_seq`` was due."""

    code: ClassVar[str] = "frame-seq-gap"

    def __init__(self, expected_seq: int, found_seq: int) -> None:
        super().__init__(
            f"WAL frame sequence has a gap: expected frame {expected_seq}, found {found_seq}; "
            "frames are missing from the WAL (restore with strict_frame_seq=False to apply "
            "what is there)"
        )
        self.expected_seq = expected_seq
        self.found_seq = found_seq


RestoreError.PhaseFailed = PhaseFailed
RestoreError.TornWriteMidStream = TornWriteMidStream
RestoreError.BaselineMissing = BaselineMissing
RestoreError.CodecMismatch = FrameCodecMismatch
RestoreError.WalTierRequired = WalTierRequired
RestoreError.FrameSeqGap = FrameSeqGap


# --------------------------------------------------------------------------- graph restore


class GraphRestoreError(EngineError):
    """``Graph.restore`` refused a snapshot that does not fit the graph."""

    code: ClassVar[str] = "graph-restore-error"


class NameMismatch(GraphRestoreError, ValueError):
    """The snapshot was taken of a graph with another name."""

    code: ClassVar[str] = "name-mismatch"

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(
            f"snapshot is of graph {found!r}, cannot restore it into graph {expected!r}"
        )
        self.expected = expected
        self.found = found


class UnknownNode(GraphRestoreError, LookupError):
    """The snapshot names a node the graph does not have."""

    code: ClassVar[str] = "unknown-node"

    def __init__(self, path: str) -> None:
        super().__init__(
            f"snapshot names node {path!r}, which this graph does not have; create it "
            "first (or build the graph with Graph.from_snapshot)"
        )
        self.path = path


class UnknownSubgraph(GraphRestoreError, LookupError):
    """The snapshot names a mounted subgraph the graph does not have."""

    code: ClassVar[str] = "unknown-subgraph"

    def __init__(self, path: str) -> None:
        super().__init__(
            f"snapshot names subgraph {path!r}, which is not mounted in this graph; mount it "
            "first (or build the graph with Graph.from_snapshot)"
        )
        self.path = path


# --------------------------------------------------------------------------- attach


class AttachStorageError(EngineError):
    """Attaching storage sinks to a reactive structure was refused."""

    code: ClassVar[str] = "attach-storage-error"

    OverwriteSinkRejected: ClassVar[type[OverwriteSinkRejected]]


class OverwriteSinkRejected(AttachStorageError, ValueError):
    """An OVERWRITE append-log tier was given as a per-wave delta sink."""

    code: ClassVar[str] = "overwrite-sink-rejected"

    def __init__(self, sink_index: int) -> None:
        super().__init__(
            f"sink {sink_index} is an OVERWRITE append-log tier: a log ships per-wave deltas, "
            "which it would shrink to the last wave; use AppendLogMode.APPEND"
        )
        self.sink_index = sink_index


AttachStorageError.OverwriteSinkRejected = OverwriteSinkRejected
