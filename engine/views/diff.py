"""Snapshot diffs and their decomposition into WAL frames (spec 11.2, 11.3).

``diff_snapshots`` compares two ``GraphPersistSnapshot`` objects at the top level only
(GraphReFly's Rust behaviour): value changes of nodes present in both, added and removed
nodes, mounted and unmounted subgraph names. Changes of ``type``, ``status`` or ``deps``
and anything inside a subgraph are not detected; :func:`replay_on_snapshot` lets the
attach wiring notice when frames cannot express a change and write a baseline instead.

Frame payloads (``change.change``)::

    {"kind": "graph.add", "nodeId": name, "slice": slice}        spec / "graph.spec"
    {"kind": "graph.remove", "nodeId": name}                     spec / "graph.spec"
    {"kind": "graph.mount", "path": name, "subgraphId": name}    spec / "graph.spec"
    {"kind": "graph.unmount", "path": name}                      spec / "graph.spec"
    {"kind": "node.set", "path": path, "value": value}           data / "graph.value"
    {"kind": "node.invalidate", "path": path}                    data / "graph.value"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from .graph import PATH_SEP, SENTINEL, copy_json, json_equal
from .wal import BaseChange, WALFrame, stamp_frame

__all__ = [
    "SNAPSHOT_VERSION",
    "GraphSnapshotDiff",
    "ValueChange",
    "decompose_diff_to_frames",
    "diff_snapshots",
    "replay_on_snapshot",
]

SNAPSHOT_VERSION: Final = 1
"""Format version of checkpoint records, and ``change.version`` of generated frames."""

STRUCTURE_SPEC: Final = "graph.spec"
STRUCTURE_VALUE: Final = "graph.value"


@dataclass(frozen=True, slots=True)
class ValueChange:
    """Node ``path`` now holds ``to``; ``to is SENTINEL`` means it was invalidated.

    GraphReFly writes ``to = None`` for "invalidated"; in Python ``None`` is JSON
    ``null``, a legal value, so tierdb uses :data:`SENTINEL` to keep the two apart.
    """

    path: str
    to: Any

    @property
    def invalidated(self) -> bool:
        """True when the node went to sentinel."""
        return self.to is SENTINEL


@dataclass(slots=True)
class GraphSnapshotDiff:
    """A top-level structural diff; ``nodes_added_slices`` is parallel to ``nodes_added``."""

    nodes_added: list[str] = field(default_factory=list)
    nodes_added_slices: list[dict[str, Any]] = field(default_factory=list)
    nodes_removed: list[str] = field(default_factory=list)
    value_changes: list[ValueChange] = field(default_factory=list)
    subgraphs_added: list[str] = field(default_factory=list)
    subgraphs_removed: list[str] = field(default_factory=list)

    def is_empty(self) -> bool:
        """True when nothing changed."""
        return not (
            self.nodes_added
            or self.nodes_removed
            or self.value_changes
            or self.subgraphs_added
            or self.subgraphs_removed
        )


def _nodes(snapshot: Mapping[str, Any]) -> Mapping[str, Any]:
    nodes = snapshot.get("nodes") or {}
    if not isinstance(nodes, Mapping):
        raise TypeError("snapshot 'nodes' must be a mapping")
    return nodes


def _subgraphs(snapshot: Mapping[str, Any]) -> Mapping[str, Any]:
    subs = snapshot.get("subgraphs") or {}
    if not isinstance(subs, Mapping):
        raise TypeError("snapshot 'subgraphs' must be a mapping")
    return subs


def _value(slc: Any) -> Any:
    return slc.get("value", SENTINEL) if isinstance(slc, Mapping) else SENTINEL


def diff_snapshots(before: Mapping[str, Any], after: Mapping[str, Any]) -> GraphSnapshotDiff:
    """Diff two snapshots at the top level. O(nodes + subgraphs)."""
    diff = GraphSnapshotDiff()
    b_nodes, a_nodes = _nodes(before), _nodes(after)
    for name, a_slice in a_nodes.items():
        if name in b_nodes:
            if not json_equal(_value(b_nodes[name]), _value(a_slice)):
                diff.value_changes.append(ValueChange(name, copy_json(_value(a_slice))))
        else:
            diff.nodes_added.append(name)
            diff.nodes_added_slices.append(copy_json(dict(a_slice)))
    diff.nodes_removed.extend(name for name in b_nodes if name not in a_nodes)
    b_subs, a_subs = _subgraphs(before), _subgraphs(after)
    diff.subgraphs_added.extend(name for name in a_subs if name not in b_subs)
    diff.subgraphs_removed.extend(name for name in b_subs if name not in a_subs)
    return diff


def decompose_diff_to_frames(
    diff: GraphSnapshotDiff, t_ns: int, base_seq: int
) -> tuple[list[WALFrame], int]:
    """Turn ``diff`` into checksummed frames numbered from ``base_seq + 1``.

    Order: adds, removes, mounts, unmounts, then value changes. Every frame gets
    ``frame_t_ns = t_ns``, ``change.version = 1``, ``change.t_ns = t_ns``, no
    ``change.seq``, and ``format_version = 1``.

    Returns:
        ``(frames, last_seq)``; ``last_seq == base_seq`` when there are none.

    Raises:
        CodecError: a value is not canonical-JSON encodable.
    """
    items: list[tuple[str, str, str, dict[str, Any]]] = []
    for name, slc in zip(diff.nodes_added, diff.nodes_added_slices, strict=True):
        items.append(("spec", STRUCTURE_SPEC, name, {"kind": "graph.add", "nodeId": name, "slice": slc}))
    for name in diff.nodes_removed:
        items.append(("spec", STRUCTURE_SPEC, name, {"kind": "graph.remove", "nodeId": name}))
    for name in diff.subgraphs_added:
        items.append(("spec", STRUCTURE_SPEC, name, {"kind": "graph.mount", "path": name, "subgraphId": name}))
    for name in diff.subgraphs_removed:
        items.append(("spec", STRUCTURE_SPEC, name, {"kind": "graph.unmount", "path": name}))
    for vc in diff.value_changes:
        if vc.invalidated:
            payload: dict[str, Any] = {"kind": "node.invalidate", "path": vc.path}
        else:
            payload = {"kind": "node.set", "path": vc.path, "value": vc.to}
        items.append(("data", STRUCTURE_VALUE, vc.path, payload))

    frames: list[WALFrame] = []
    seq = base_seq
    for lifecycle, structure, path, payload in items:
        seq += 1
        change = BaseChange(
            structure=structure,
            version=SNAPSHOT_VERSION,
            t_ns=t_ns,
            lifecycle=lifecycle,
            change=payload,
        )
        frames.append(
            stamp_frame(
                WALFrame(lifecycle=lifecycle, path=path, change=change, frame_seq=seq, frame_t_ns=t_ns)
            )
        )
    return frames, seq


def _locate(snapshot: dict[str, Any], path: str) -> tuple[dict[str, Any] | None, str]:
    """The (sub)snapshot holding the last segment of ``path``, and that segment."""
    *mounts, last = path.split(PATH_SEP)
    current: dict[str, Any] | None = snapshot
    for seg in mounts:
        if current is None:
            break
        current = current.get("subgraphs", {}).get(seg)
    return current, last


# Reads frames like restore.apply_wal_frame but edits a snapshot dict, not a live Graph.
def _apply(snapshot: dict[str, Any], frame: WALFrame) -> None:
    payload = frame.change.change
    if not isinstance(payload, Mapping):
        return
    kind = payload.get("kind")
    if frame.lifecycle == "spec":
        if kind in ("graph.add", "graph.remove"):
            node_id = payload.get("nodeId")
            if not isinstance(node_id, str) or not node_id:
                return
            owner, name = _locate(snapshot, node_id)
            if owner is None:
                return
            nodes = owner.setdefault("nodes", {})
            if kind == "graph.add":
                slc = payload.get("slice")
                if name in nodes or not isinstance(slc, Mapping) or slc.get("type") != "state":
                    return
                new: dict[str, Any] = {"type": "state", "status": "sentinel"}
                if "value" in slc:
                    new = {"type": "state", "status": "live", "value": copy_json(slc["value"])}
                nodes[name] = new
            else:
                nodes.pop(name, None)
        elif kind in ("graph.mount", "graph.unmount"):
            path = payload.get("path")
            if not isinstance(path, str) or not path:
                return
            owner, name = _locate(snapshot, path)
            if owner is None:
                return
            subs = owner.get("subgraphs", {})
            if kind == "graph.mount":
                if name not in subs:
                    sub_id = payload.get("subgraphId") or name
                    owner.setdefault("subgraphs", {})[name] = {"name": str(sub_id), "nodes": {}}
            elif name in subs:
                del subs[name]
                if not subs:
                    owner.pop("subgraphs", None)
    elif frame.lifecycle == "data" and kind in ("node.set", "node.invalidate"):
        path = payload.get("path")
        if not isinstance(path, str) or not path:
            return
        owner, name = _locate(snapshot, path)
        node = None if owner is None else owner.get("nodes", {}).get(name)
        if node is None:
            return
        if kind == "node.set":
            if "value" in payload:
                node["value"] = copy_json(payload["value"])
                node["status"] = "live"
        else:
            node.pop("value", None)
            node["status"] = "sentinel"


def replay_on_snapshot(snapshot: Mapping[str, Any], frames: Sequence[WALFrame]) -> dict[str, Any]:
    """Apply ``frames`` to a copy of ``snapshot`` with the replay rules of restore.

    Frames are grouped by lifecycle (spec, data, ownership) and applied in
    ``frame_seq`` order inside each group, exactly as :func:`restore_snapshot` does
    with a reference :class:`Graph`. Checksums are not verified here.
    """
    out: dict[str, Any] = copy_json(dict(snapshot))
    ordered = sorted(frames, key=lambda f: f.frame_seq)
    for lifecycle in ("spec", "data"):
        for frame in ordered:
            if frame.lifecycle == lifecycle:
                _apply(out, frame)
    return out
