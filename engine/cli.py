"""The ``tierdb`` command: inspect and edit stores, run the demo.

Keys and values are given as UTF-8 text or as ``0x``-prefixed hex. Output shows printable
UTF-8 as text and everything else as ``0x`` hex. Exit codes: 0 ok, 1 not found (``get``),
2 bad input or a store error.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import EngineError
from .cli_args import version_arg
from .types import EntryKind

__all__ = ["main"]


class CliError(Exception):
    """Bad command-line input; printed without a traceback, exit code 2."""


def parse_bytes(text: str, what: str) -> bytes:
    """``0x``-hex or UTF-8 text -> bytes."""
    if text.startswith(("0x", "0X")):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise CliError(f"bad {what} encoding {text!r}: after 0x give an even number of hex digits") from None
    return text.encode("utf-8")


def show_bytes(data: bytes | None) -> str:
    if data is None:
        return "<deleted>"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + data.hex()
    if text.isprintable() and not text.startswith(("0x", "0X")):
        return text
    return "0x" + data.hex()


def parse_table(text: str) -> EntryKind:
    try:
        return EntryKind.parse(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def parse_time(text: str) -> float:
    """Seconds since the epoch, or an ISO-8601 time (naive = UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"bad --at time {text!r}: give epoch seconds or ISO-8601 like 2026-11-22T10:00:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def _open(path: str, *, create: bool = False, layout: str | None = None) -> Any:
    from . import open as engine_open

    p = Path(path)
    if not create and not (p / "TIERDB").exists():
        raise CliError(f"no tierdb store at {path} (use `tierdb put --create` or `tierdb demo` to make one)")
    return engine_open(p, layout=layout)


def _read_version(store: Any, args: argparse.Namespace) -> int | None:
    if getattr(args, "at", None) is not None:
        if args.version is not None:
            raise CliError("give either --version or --at, not both")
        v = store.version_at(parse_time(args.at))
        if v == 0:
            raise CliError(f"no commit at or before {args.at}")
        return int(v)
    return args.version


class _Progress:
    """Maintenance progress on stderr through tqdm: call it with (done, total or None).

    tqdm is optional (the ``bench`` and ``test`` extras install it); without it, or when
    stderr is not a terminal, nothing is shown.
    """

    def __init__(self, label: str, unit: str = "item") -> None:
        self.label = label
        self.unit = unit
        self.bar: Any = None

    def __call__(self, done: int, total: int | None = None) -> None:
        if self.bar is None:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(desc=self.label, total=total, unit=self.unit, file=sys.stderr, disable=None,
                            leave=False, dynamic_ncols=True, unit_scale=self.unit == "B")
        if total is not None and self.bar.total != total:
            self.bar.total = total
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _progress(label: str, unit: str = "item") -> _Progress:
    """A maintenance progress reporter (see :class:`_Progress`)."""
    return _Progress(label, unit)


# -- commands ------------------------------------------------------------------------------


def cmd_put(args: argparse.Namespace) -> int:
    table = parse_table(args.table)
    key = parse_bytes(args.key, "key")
    value = parse_bytes(args.value, "value")
    with _open(args.path, create=args.create, layout=args.layout) as store:
        with store.begin() as tx:
            tx.set(table, key, value)
        print(tx.version)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    table = parse_table(args.table)
    key = parse_bytes(args.key, "key")
    with _open(args.path) as store:
        with store.begin() as tx:
            tx.remove(table, key)
        print(tx.version)
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    table = parse_table(args.table)
    key = parse_bytes(args.key, "key")
    with _open(args.path) as store:
        value = store.get(table, key, version=_read_version(store, args))
    if value is None:
        print("(not found)", file=sys.stderr)
        return 1
    print(show_bytes(value))
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    table = parse_table(args.table)
    start = parse_bytes(args.start, "start key") if args.start is not None else None
    end = parse_bytes(args.end, "end key") if args.end is not None else None
    prefix = parse_bytes(args.prefix, "prefix") if args.prefix is not None else None
    with _open(args.path) as store:
        n = 0
        for k, v in store.range(table, start, end, version=_read_version(store, args),
                                reverse=args.reverse, prefix=prefix):
            if args.limit is not None and n >= args.limit:
                break
            if args.json:
                print(json.dumps({"key": show_bytes(k), "value": show_bytes(v)}))
            else:
                print(f"{show_bytes(k)}\t{show_bytes(v)}")
            n += 1
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    table = parse_table(args.table)
    key = parse_bytes(args.key, "key")
    with _open(args.path) as store:
        rows = store.history(table, key)
        for v, val in rows:
            t = store.commit_time(v)
            when = datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds") if t else "-"
            print(f"{v}\t{when}\t{show_bytes(val)}")
    return 0 if rows else 1


def cmd_changes(args: argparse.Namespace) -> int:
    """The change feed as JSON lines: ``{"version", "time", "writes": {table: [{"key",
    "value"}]}}``; keys and values as elsewhere (text or 0x hex), a tombstone is ``null``."""
    from .errors import LockedError

    tables = [parse_table(t) for t in args.table] if args.table else None

    def emit(changes: Any) -> None:
        for ch in changes:
            print(json.dumps({
                "version": ch.version, "time": ch.time,
                "writes": {str(t): [{"key": show_bytes(k), "value": None if v is None else show_bytes(v)}
                                    for k, v in rows] for t, rows in ch.writes.items()},
            }), flush=args.follow)

    try:
        store = _open(args.path)
    except LockedError:
        # Another process has the store open: read the feed's files (append-only, checksummed)
        # without the lock; that process's newest commits may still be buffered there.
        from .mvcc.feedreader import read_feed_files

        print("tierdb: the store is open in another process; reading its change feed files "
              "(the newest commits appear once that process writes them)", file=sys.stderr)
        emit(read_feed_files(args.path, args.after, tables=tables, wait=args.follow, timeout=args.timeout))
        return 0
    with store:
        emit(store.changes(args.after, tables=tables, wait=args.follow, timeout=args.timeout))
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    with _open(args.path) as store:
        print(json.dumps(store.stats(), indent=2, sort_keys=True, default=str))
    return 0


_WITH_PROGRESS = ("flush", "demote", "gc")  # the maintenance calls that report progress


def _maintenance(name: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        with _open(args.path) as store:
            fn = getattr(store, name)
            if name in _WITH_PROGRESS:
                progress = _progress(name)
                try:
                    result = fn(progress=progress)
                finally:
                    progress.close()
            else:
                result = fn()
            print(json.dumps(result, indent=2, sort_keys=True, default=str))
        return 0
    return run


def cmd_demo(args: argparse.Namespace) -> int:
    from . import open as engine_open

    path = Path(args.path)
    if path.exists():
        if not (path / "TIERDB").exists() and any(path.iterdir()):
            raise CliError(f"{path} exists and is not a tierdb store; choose another --path")
        shutil.rmtree(path)
    table = EntryKind.source(1)
    print(f"tierdb demo: creating a store under {path} (layout {args.layout or 'default'})")
    with engine_open(path, layout=args.layout) as store:
        print(f"layout: {store.layout.name}")
        versions = []
        for round_no in range(5):
            with store.begin() as tx:
                for i in range(200):
                    tx.set(table, b"user:%04d" % i, json.dumps(
                        {"id": i, "round": round_no, "name": f"user {i}"}).encode())
                if round_no == 3:
                    tx.remove(table, b"user:0007")
            versions.append(tx.version)
            print(f"  committed round {round_no} as version {tx.version}")
        first = versions[0]
        assert first is not None  # a committed transaction has a version
        store.pin(first, "first-load")
        print(f"  pinned version {versions[0]} as 'first-load'")
        key = b"user:0007"
        print(f"\ntime travel on {key.decode()}:")
        for v in versions:
            print(f"  as of version {v}: {show_bytes(store.get(table, key, version=v))}")
        print(f"  history: {[(v, show_bytes(val)) for v, val in store.history(table, key)]}")
        n_old = sum(1 for _ in store.range(table, version=versions[0]))
        n_new = sum(1 for _ in store.range(table))
        print(f"\nrows visible at version {versions[0]}: {n_old}; at version {store.version}: {n_new}")
        flushed = store.flush()
        demoted = store.demote()
        print(f"flush: {flushed}")
        print(f"demote: {demoted}")
        print(f"after movement, {key.decode()} as of version {versions[1]}: "
              f"{show_bytes(store.get(table, key, version=versions[1]))}")
        store.check()
        print("check: ok")
        st = store.stats()
        print("\nper-tier stats:")
        for name, tier_stats in st["tiers"].items():
            shown = {k: tier_stats[k] for k in ("keys", "versions", "bytes") if k in tier_stats}
            print(f"  {name:5s} {shown}")
    print(f"\nthe store is left in {path}; try: tierdb history {path} user:0007 --table source:1")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tierdb", description="tierdb: a versioned, tiered key-value store")
    sub = p.add_subparsers(dest="command", required=True)

    def with_path(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("path", help="store directory")

    def with_table(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--table", default="multi", help="table: multi, source:<id> or operator:<id> (default multi)")

    def with_version(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--version", type=version_arg, default=None, help="read as of this commit version")
        sp.add_argument("--at", default=None, help="read as of a wall-clock time (epoch seconds or ISO-8601)")

    d = sub.add_parser("demo", help="create a demo store, commit, time travel, print per-tier stats")
    d.add_argument("--path", default="demo-data", help="where to create the demo store (default ./demo-data)")
    d.add_argument("--layout", default=None, help="layout preset (default hot+warm+cold)")
    d.set_defaults(func=cmd_demo)

    sp = sub.add_parser("put", help="write one key")
    with_path(sp); sp.add_argument("key"); sp.add_argument("value"); with_table(sp)
    sp.add_argument("--create", action="store_true", help="create the store if it does not exist")
    sp.add_argument("--layout", default=None, help="layout for a new store")
    sp.set_defaults(func=cmd_put)

    sp = sub.add_parser("delete", help="delete one key (writes a tombstone)")
    with_path(sp); sp.add_argument("key"); with_table(sp)
    sp.set_defaults(func=cmd_delete)

    sp = sub.add_parser("get", help="read one key")
    with_path(sp); sp.add_argument("key"); with_table(sp); with_version(sp)
    sp.set_defaults(func=cmd_get)

    sp = sub.add_parser("scan", help="list keys in a range")
    with_path(sp); with_table(sp); with_version(sp)
    sp.add_argument("--start", default=None); sp.add_argument("--end", default=None)
    sp.add_argument("--prefix", default=None); sp.add_argument("--reverse", action="store_true")
    sp.add_argument("--limit", type=int, default=None); sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_scan)

    sp = sub.add_parser("history", help="every retained version of a key")
    with_path(sp); sp.add_argument("key"); with_table(sp)
    sp.set_defaults(func=cmd_history)

    sp = sub.add_parser("changes", help="the change feed as JSON lines (stores opened with changefeed=True)")
    with_path(sp)
    sp.add_argument("--after", type=version_arg, default=0, help="print commits above this version (default 0)")
    sp.add_argument("--table", action="append", default=None,
                    help="only this table's writes (repeatable; multi, source:<id>, operator:<id>)")
    sp.add_argument("--follow", action="store_true", help="keep waiting for new commits")
    sp.add_argument("--timeout", type=float, default=None,
                    help="with --follow: stop after this many seconds without a new commit")
    sp.set_defaults(func=cmd_changes)

    sp = sub.add_parser("stats", help="per-tier statistics as JSON")
    with_path(sp); sp.set_defaults(func=cmd_stats)

    for name, help_text in (("flush", "move hot data to the warm tier"),
                            ("demote", "move old versions to the cold tier"),
                            ("gc", "garbage-collect versions no read point needs"),
                            ("compact", "compact the persistent tiers"),
                            ("check", "verify a store's (or a backup's) checksums and invariants")):
        sp = sub.add_parser(name, help=help_text)
        with_path(sp); sp.set_defaults(func=_maintenance(name))
        if name == "check":  # a store, or a backup directory / URL (engine/backup/cli.py)
            from .backup.cli import check_command
            sp.add_argument("--option", action="append", metavar="KEY=VALUE",
                            help="object-store option when PATH is a backup URL")
            sp.set_defaults(func=check_command(_maintenance(name), _progress))

    from .backup.cli import add_backup_commands
    add_backup_commands(sub, _progress)

    from .replication.cli import add_replication_commands
    add_replication_commands(sub)

    sub.add_parser("bench", add_help=False,
                   help="benchmark layouts beside peers (tierdb bench --help; tierdb bench compare OLD NEW)")

    try:
        from .views.cli import add_graph_commands
    except ImportError:
        pass  # the views package is optional at this layer
    else:
        add_graph_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:
        from .bench.command import main as bench_main

        return bench_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"tierdb: error: {exc}", file=sys.stderr)
        return 2
    except EngineError as exc:
        print(f"tierdb: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
