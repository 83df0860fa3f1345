"""GraphReFly's storage tiers as views over versioned store tables (DESIGN.md section 9).

Snapshot, append-log and kv tiers over an :class:`engine.Store` (a tier flush is one
store commit; ``flush_together`` commits several tiers in one version; every load takes
``version=``), WAL frames with SHA-256 checksums, and graph checkpoints (diff, attach,
restore as of any retained store version) with a small reference :class:`Graph`.
See docs/VIEWS.md.
"""

from __future__ import annotations

from .append_log import AppendCursor as AppendCursor
from .append_log import AppendLoadResult as AppendLoadResult
from .append_log import AppendLogMode as AppendLogMode
from .append_log import AppendLogStorage as AppendLogStorage
from .append_log import LoadEntriesOpts as LoadEntriesOpts
from .append_log import append_log_storage as append_log_storage
from .append_log import check_append_sinks as check_append_sinks
from .base import DEFAULT_TABLE as DEFAULT_TABLE
from .base import ViewBase as ViewBase
from .base import flush_together as flush_together
from .checkpoint import DEFAULT_COMPACT_EVERY as DEFAULT_COMPACT_EVERY
from .checkpoint import GraphCheckpointRecord as GraphCheckpointRecord
from .checkpoint import StorageHandle as StorageHandle
from .checkpoint import attach_snapshot_storage as attach_snapshot_storage
from .checkpoint import graph_storage as graph_storage
from .codec import BytesCodec as BytesCodec
from .codec import Codec as Codec
from .codec import JsonCodec as JsonCodec
from .codec import canonical_json as canonical_json
from .codec import canonical_json_bytes as canonical_json_bytes
from .diff import SNAPSHOT_VERSION as SNAPSHOT_VERSION
from .diff import GraphSnapshotDiff as GraphSnapshotDiff
from .diff import ValueChange as ValueChange
from .diff import decompose_diff_to_frames as decompose_diff_to_frames
from .diff import diff_snapshots as diff_snapshots
from .diff import replay_on_snapshot as replay_on_snapshot
from .errors import AttachStorageError as AttachStorageError
from .errors import BackendError as BackendError
from .errors import BackendNoListSupport as BackendNoListSupport
from .errors import BaselineMissing as BaselineMissing
from .errors import CodecError as CodecError
from .errors import CodecMismatch as CodecMismatch
from .errors import FrameCodecMismatch as FrameCodecMismatch
from .errors import FrameSeqGap as FrameSeqGap
from .errors import GraphRestoreError as GraphRestoreError
from .errors import NameMismatch as NameMismatch
from .errors import OverwriteSinkRejected as OverwriteSinkRejected
from .errors import PhaseFailed as PhaseFailed
from .errors import RestoreError as RestoreError
from .errors import StorageError as StorageError
from .errors import TornWriteMidStream as TornWriteMidStream
from .errors import UnknownNode as UnknownNode
from .errors import UnknownSubgraph as UnknownSubgraph
from .errors import WalTierRequired as WalTierRequired
from .graph import PATH_SEP as PATH_SEP
from .graph import SENTINEL as SENTINEL
from .graph import Graph as Graph
from .graph import Message as Message
from .graph import StateNode as StateNode
from .kv import KvStorage as KvStorage
from .kv import kv_storage as kv_storage
from .protocols import AppendLogStorageTier as AppendLogStorageTier
from .protocols import BaseStorageTier as BaseStorageTier
from .protocols import KvStorageTier as KvStorageTier
from .protocols import SnapshotStorageTier as SnapshotStorageTier
from .protocols import StoreLike as StoreLike
from .restore import PhaseStat as PhaseStat
from .restore import RestoreOptions as RestoreOptions
from .restore import RestoreResult as RestoreResult
from .restore import TornWritePolicy as TornWritePolicy
from .restore import apply_wal_frame as apply_wal_frame
from .restore import restore_snapshot as restore_snapshot
from .snapshot import SnapshotStorage as SnapshotStorage
from .snapshot import snapshot_storage as snapshot_storage
from .wal import REPLAY_ORDER as REPLAY_ORDER
from .wal import WAL_FRAME_SEQ_PAD as WAL_FRAME_SEQ_PAD
from .wal import WAL_KEY_SEGMENT as WAL_KEY_SEGMENT
from .wal import BaseChange as BaseChange
from .wal import Lifecycle as Lifecycle
from .wal import WALFrame as WALFrame
from .wal import WalTag as WalTag
from .wal import graph_wal_prefix as graph_wal_prefix
from .wal import verify_wal_frame_checksum as verify_wal_frame_checksum
from .wal import wal_frame_checksum as wal_frame_checksum
from .wal import wal_frame_key as wal_frame_key

__all__ = [
    # tiers
    "BaseStorageTier", "SnapshotStorageTier", "AppendLogStorageTier", "KvStorageTier", "StoreLike",
    "ViewBase", "SnapshotStorage", "AppendLogStorage", "KvStorage",
    "snapshot_storage", "append_log_storage", "kv_storage", "flush_together", "DEFAULT_TABLE",
    "AppendLogMode", "AppendCursor", "LoadEntriesOpts", "AppendLoadResult", "check_append_sinks",
    # codecs
    "Codec", "JsonCodec", "BytesCodec", "canonical_json", "canonical_json_bytes",
    # WAL
    "WALFrame", "BaseChange", "WalTag", "Lifecycle", "wal_frame_checksum",
    "verify_wal_frame_checksum", "wal_frame_key", "graph_wal_prefix", "REPLAY_ORDER",
    "WAL_FRAME_SEQ_PAD", "WAL_KEY_SEGMENT",
    # checkpoints
    "GraphCheckpointRecord", "SNAPSHOT_VERSION", "diff_snapshots", "GraphSnapshotDiff",
    "ValueChange", "decompose_diff_to_frames", "replay_on_snapshot", "attach_snapshot_storage",
    "StorageHandle", "graph_storage", "DEFAULT_COMPACT_EVERY",
    "restore_snapshot", "apply_wal_frame", "RestoreOptions", "TornWritePolicy", "RestoreResult",
    "PhaseStat",
    # graph
    "Graph", "StateNode", "SENTINEL", "Message", "PATH_SEP",
    # errors
    "StorageError", "BackendNoListSupport", "CodecMismatch", "CodecError", "BackendError",
    "RestoreError", "PhaseFailed", "TornWriteMidStream", "BaselineMissing", "FrameCodecMismatch",
    "WalTierRequired", "FrameSeqGap", "GraphRestoreError", "NameMismatch", "UnknownNode",
    "UnknownSubgraph", "AttachStorageError", "OverwriteSinkRejected",
]
