"""``tierdb follow`` and ``tierdb replication-status`` (added to the ``tierdb`` parser)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import EngineError, LockedError

__all__ = ["add_replication_commands"]


def _servers(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out += [s for s in v.split(",") if s]
    return out


def cmd_follow(args: argparse.Namespace) -> int:
    from .replica import open_replica
    servers = _servers(args.nats)
    r = open_replica(Path(args.path), servers=servers, stream=args.stream, layout=args.layout)
    start = time.monotonic()
    last_v, last_t = r.version, start
    rate = 0.0
    try:
        while True:
            time.sleep(0.5)
            err = r.replication_error
            now = time.monotonic()
            v = r.version
            rate = (v - last_v) / max(1e-9, now - last_t)
            last_v, last_t = v, now
            if not args.quiet:
                sys.stderr.write(f"\rtierdb follow {args.stream}: applied version {v}  lag {r.lag()} "
                                 f"messages  {rate:,.0f} commits/s   ")
                sys.stderr.flush()
            if err is not None:
                sys.stderr.write("\n")
                print(f"tierdb: replica stopped applying: {type(err).__name__}: {err}", file=sys.stderr)
                return 2
            if args.until is not None and v >= args.until:
                break
            if args.seconds is not None and now - start >= args.seconds:
                break
    except KeyboardInterrupt:
        pass
    finally:
        if not args.quiet:
            sys.stderr.write("\n")
        version = r.version
        r.close()
    print(json.dumps({"stream": args.stream, "version": version}))
    return 0


def _stream_view(servers: list[str], stream: str, timeout: float) -> dict[str, Any]:
    from .format import decode_message
    from .lease import _Lease
    from .link import Link
    link = Link(servers, stream, timeout=timeout)
    link.connect()
    try:
        first, last = link.info()
        out: dict[str, Any] = {"first_seq": first, "last_seq": last}
        claim = link.last(link.claim_subject)
        if claim is not None:
            m = decode_message(claim[1], claim[0])
            out["primary_node"] = m.writer.hex()
            out["claimed_at_version"] = m.version
            out["claim"] = m.claim
        top = link.last(link.commit_subject)
        out["last_version"] = decode_message(top[1], top[0]).version if top is not None else None
        lease = _Lease(link, 1, timeout).read()   # automatic failover (lease.py), if used
        out["lease"] = None if lease is None else {"holder_node": lease[1], "revision": lease[0]}
        return out
    finally:
        link.close()


def cmd_status(args: argparse.Namespace) -> int:
    from ..store import open as engine_open
    from .state import load_state
    p = Path(args.path)
    if not (p / "TIERDB").exists():
        print(f"tierdb: error: no tierdb store at {args.path}", file=sys.stderr)
        return 2
    state = load_state(p)
    out: dict[str, Any] = {"path": str(p), "replication": None}
    if state is not None:
        out["replication"] = {"stream": state.stream, "role": state.role, "node": state.node,
                              "lineage": state.lineage, "servers": state.servers,
                              "promoted_at": state.promoted_at}
    try:
        s = engine_open(p)
    except LockedError:
        out["version"] = None
        out["note"] = "the store is open in another process (a running primary or follower)"
    else:
        out["version"] = s.version
        s.close()
    servers = _servers(args.nats) or (state.servers if state is not None else [])
    if state is not None and servers:
        try:
            view = _stream_view(servers, state.stream, args.timeout)
        except EngineError as exc:
            out["stream"] = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            out["stream"] = view
            if out.get("version") is not None and view.get("last_version") is not None:
                out["behind_versions"] = max(0, int(view["last_version"]) - int(out["version"]))
            if view.get("primary_node") is not None:
                out["is_current_primary"] = view["primary_node"] == state.node
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


def add_replication_commands(sub: Any) -> None:
    sp = sub.add_parser("follow", help="run a read-only replica of a NATS JetStream stream, with a live progress line")
    sp.add_argument("path", help="replica store directory (created if absent)")
    sp.add_argument("--nats", action="append", required=True,
                    help="NATS server URL (repeat, or comma-separate, for every cluster node)")
    sp.add_argument("--stream", required=True, help="the replication stream's name")
    sp.add_argument("--layout", default=None, help="layout for a new replica store")
    sp.add_argument("--until", type=int, default=None, help="stop once this version is applied")
    sp.add_argument("--seconds", type=float, default=None, help="stop after this many seconds")
    sp.add_argument("--quiet", action="store_true", help="no progress line")
    sp.set_defaults(func=cmd_follow)

    sp = sub.add_parser("replication-status", help="a store's replication role, position and stream state (JSON)")
    sp.add_argument("path", help="store directory")
    sp.add_argument("--nats", action="append", default=None,
                    help="NATS server URL(s) (default: the ones the store last used)")
    sp.add_argument("--timeout", type=float, default=3.0, help="bound of each NATS call (seconds)")
    sp.set_defaults(func=cmd_status)
