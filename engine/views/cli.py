"""``tierdb graph log`` and ``tierdb graph show``: inspect graph checkpoints in a store.

Both commands assume the conventional layout of :func:`engine.views.graph_storage`: a
snapshot tier and a WAL kv tier both named after the graph (sharing the keyspace
``--keyspace``, default the graph name) in table ``--table`` (default ``multi``).

* ``tierdb graph log PATH --name G``: every retained baseline and frame with the store
  version that committed it and that commit's wall-clock time.
* ``tierdb graph show PATH --name G [--version V]``: the graph as of store version V
  (default latest), rebuilt from the baseline and frames read at V, as JSON.

The main CLI (``engine/cli.py``) calls :func:`add_graph_commands` on its subparsers;
``run_graph_command(args)`` runs a parsed command and returns the exit code.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ..cli_args import table_arg, version_arg
from ..errors import EngineError
from ..store import MARKER_NAME
from ..types import EntryKind
from .checkpoint import GraphCheckpointRecord, graph_storage
from .errors import CodecError
from .graph import Graph
from .keys import encode_view_key, keyspace_prefix
from .restore import RestoreOptions, restore_snapshot
from .wal import WALFrame, graph_wal_prefix, parse_frame_seq

__all__ = ["add_graph_commands", "graph_log", "graph_show", "main", "run_graph_command"]



class GraphCliError(Exception):
    """A usage problem (bad path, bad table) reported as exit code 2."""


def add_graph_commands(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``graph log`` and ``graph show`` on an argparse subparsers object."""
    graph = subparsers.add_parser("graph", help="inspect graph checkpoints (baselines and WAL frames)")
    gsub = graph.add_subparsers(dest="graph_command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("path", help="store directory")
        sp.add_argument("--name", required=True, help="graph name")
        sp.add_argument("--table", type=table_arg, default=EntryKind.MULTI,
                        help="table of the graph's tiers (default multi)")
        sp.add_argument("--keyspace", default=None, help="keyspace of the graph's tiers (default: the name)")

    log = gsub.add_parser("log", help="baselines and frames with store versions and commit times")
    common(log)
    log.add_argument("--json", action="store_true", help="one JSON object per line")
    log.set_defaults(func=run_graph_command)

    show = gsub.add_parser("show", help="the graph as of a store version, as JSON")
    common(show)
    show.add_argument("--version", type=version_arg, default=None, help="store version (default latest)")
    show.add_argument("--meta", action="store_true", help="wrap the snapshot with restore details")
    show.set_defaults(func=run_graph_command)
    assert isinstance(graph, argparse.ArgumentParser)
    return graph


def _open(path: str) -> Any:
    import engine

    if not (Path(path) / MARKER_NAME).exists():
        raise GraphCliError(f"no tierdb store at {path}")
    return engine.open(path)


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


def graph_log(store: Any, name: str, *, table: EntryKind = EntryKind.MULTI,
              keyspace: str | None = None) -> list[dict[str, Any]]:
    """Every retained baseline and frame of graph ``name``, ordered by store version.

    Each event is ``{"version", "time", "type": "baseline"|"frame", "seq", ...}``.
    """
    snap, wal = graph_storage(store, name, table=table, keyspace=keyspace)
    prefix = keyspace_prefix(snap.keyspace)
    codec = snap.codec
    events: list[dict[str, Any]] = []
    for version, value in store.history(table, encode_view_key(prefix, name)):
        if not value:
            continue
        event: dict[str, Any] = {"version": version, "type": "baseline"}
        try:
            rec = GraphCheckpointRecord.from_json(codec.decode(value))
            event.update(seq=rec.seq, mode=rec.mode, nodes=len(rec.snapshot.get("nodes", {}) or {}),
                         timestamp_ns=rec.timestamp_ns)
        except CodecError as exc:
            event.update(seq=None, error=str(exc))
        events.append(event)
    wal_prefix = graph_wal_prefix(name) + "/"
    for key in wal.list(wal_prefix):
        for version, value in store.history(table, encode_view_key(prefix, key)):
            if not value:
                continue
            event = {"version": version, "type": "frame", "seq": parse_frame_seq(key)}
            try:
                frame = WALFrame.from_json(codec.decode(value))
                event.update(lifecycle=frame.lifecycle, kind=frame.kind, path=frame.path)
            except CodecError as exc:
                event.update(error=str(exc))
            events.append(event)
    events.sort(key=lambda e: (e["version"], e["type"] != "baseline", e["seq"] or 0))
    for event in events:
        event["time"] = _iso(store.commit_time(event["version"]))
    return events


def graph_show(store: Any, name: str, *, version: int | None = None, table: EntryKind = EntryKind.MULTI,
               keyspace: str | None = None) -> dict[str, Any]:
    """Rebuild graph ``name`` as of ``version`` and return ``{"snapshot", "result"...}``."""
    snap, wal = graph_storage(store, name, table=table, keyspace=keyspace)
    at = store.version if version is None else version
    raw = snap.load(version=at)
    if raw is None:
        from .errors import BaselineMissing

        raise BaselineMissing(f"graph {name!r} has no baseline at version {at}")
    graph = Graph.from_snapshot(GraphCheckpointRecord.from_json(raw).snapshot)
    result = restore_snapshot(graph, snap, wal, RestoreOptions(version=at))
    return {
        "name": name,
        "version": at,
        "final_seq": result.final_seq,
        "replayed_frames": result.replayed_frames,
        "skipped_frames": result.skipped_frames,
        "snapshot": graph.snapshot(),
    }


def run_graph_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run a parsed ``graph log`` / ``graph show`` command; return the exit code."""
    out = sys.stdout if out is None else out
    try:
        with _open(args.path) as store:
            if args.graph_command == "log":
                events = graph_log(store, args.name, table=args.table, keyspace=args.keyspace)
                if not events:
                    print(f"no checkpoints of graph {args.name!r}", file=sys.stderr)
                for e in events:
                    if args.json:
                        print(json.dumps(e, sort_keys=True), file=out)
                    elif e["type"] == "baseline":
                        print(f"v{e['version']:<8} {e['time']:<29} baseline  seq={e['seq']} "
                              f"nodes={e.get('nodes', '?')}", file=out)
                    else:
                        print(f"v{e['version']:<8} {e['time']:<29} frame     seq={e['seq']} "
                              f"{e.get('lifecycle', '?')} {e.get('kind', '?')} {e.get('path', '')}", file=out)
                return 0
            shown = graph_show(store, args.name, version=args.version, table=args.table,
                               keyspace=args.keyspace)
            doc = shown if args.meta else shown["snapshot"]
            print(json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False), file=out)
            return 0
    except GraphCliError as exc:
        print(f"tierdb: error: {exc}", file=sys.stderr)
        return 2
    except EngineError as exc:
        print(f"tierdb: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point: ``python -m engine.views.cli graph log PATH --name G``."""
    parser = argparse.ArgumentParser(prog="tierdb")
    sub = parser.add_subparsers(dest="command", required=True)
    add_graph_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
