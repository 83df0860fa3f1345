"""``tierdb backup``, ``tierdb restore``, ``tierdb clone``, and ``tierdb check`` on a backup.

Added to the ``tierdb`` parser by engine/cli.py (:func:`add_backup_commands`). Progress goes
to stderr through the command's tqdm reporter (bytes).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..cli_args import version_arg
from .backup import check_backup, restore_backup
from .clone import clone
from .manifest import BACKUP_NAME, DATA_DIR
from .targets import is_url

__all__ = ["add_backup_commands", "check_command", "is_backup"]

Command = Callable[[argparse.Namespace], int]


def _options(items: list[str] | None) -> dict[str, Any]:
    """``KEY=VALUE`` strings -> obstore storage options."""
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"bad --option {item!r}: give KEY=VALUE")
        out[key] = value
    return out


def _print(result: dict[str, Any]) -> None:
    print(json.dumps(result, indent=2, sort_keys=True, default=str))


def is_backup(path: str) -> bool:
    """Does ``path`` look like a backup (rather than a store)? URLs are always backups here."""
    if is_url(path):
        return True
    p = Path(path)
    return not (p / "TIERDB").exists() and ((p / BACKUP_NAME).exists() or (p / DATA_DIR).is_dir())


def check_command(store_check: Command, progress: Callable[..., Any]) -> Command:
    """``tierdb check PATH``: a backup is verified file by file, a store as before."""

    def run(args: argparse.Namespace) -> int:
        if not is_backup(args.path):
            return store_check(args)
        bar = progress("check", "B")
        try:
            result = check_backup(args.path, progress=bar, **_options(getattr(args, "option", None)))
        finally:
            bar.close()
        _print(result)
        return 0

    return run


def add_backup_commands(sub: Any, progress: Callable[..., Any]) -> None:
    """Add ``backup``, ``restore`` and ``clone`` to the ``tierdb`` subcommands."""

    def cmd_backup(args: argparse.Namespace) -> int:
        from ..cli import _open
        from ..errors import LockedError

        opts = _options(args.option)
        try:
            store = _open(args.path)
        except LockedError as exc:
            raise LockedError(f"{exc}. An open store is backed up online from the process that "
                              "has it open: store.backup(dest)") from None
        with store:
            bar = progress("backup", "B")
            try:
                result = store.backup(args.dest, progress=bar, **opts)
            finally:
                bar.close()
        _print(result)
        return 0

    def cmd_restore(args: argparse.Namespace) -> int:
        bar = progress("restore", "B")
        try:
            result = restore_backup(args.src, args.path, progress=bar, cold_url=args.cold_url,
                                    cold_storage_options=_options(args.cold_option),
                                    **_options(args.option))
        finally:
            bar.close()
        _print(result)
        return 0

    def cmd_clone(args: argparse.Namespace) -> int:
        opts = _options(args.option)
        _print(clone(args.src, args.dest, version=args.version, cold_url=args.cold_url,
                     cold_storage_options=_options(args.cold_option),
                     **({"storage_options": opts} if opts else {})))
        return 0

    def with_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--option", action="append", metavar="KEY=VALUE",
                        help="object-store option for a URL (endpoint, region, allow_http=true, ...)")

    def with_cold_url(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--cold-url", default=None,
                        help="put the new store's cold tier in this empty object-store prefix "
                             "(default: local, in the store directory)")
        sp.add_argument("--cold-option", action="append", metavar="KEY=VALUE",
                        help="object-store option for --cold-url")

    sp = sub.add_parser("backup", help="write a consistent, checksummed backup of a store "
                                       "(a directory or an object-store URL)")
    sp.add_argument("path", help="store directory")
    sp.add_argument("dest", help="new or empty directory, or s3:// gs:// az:// file:// memory:// URL")
    with_options(sp)
    sp.set_defaults(func=cmd_backup)

    sp = sub.add_parser("restore", help="rebuild a store from a backup (every byte verified)")
    sp.add_argument("src", help="backup directory or URL")
    sp.add_argument("path", help="new or empty directory for the restored store")
    with_options(sp)
    with_cold_url(sp)
    sp.set_defaults(func=cmd_restore)

    sp = sub.add_parser("clone", help="create a writable store whose history ends at a version, "
                                      "sharing immutable files with the source")
    sp.add_argument("src", help="source store directory (not open in another process)")
    sp.add_argument("dest", help="new or empty directory for the clone")
    sp.add_argument("--version", type=version_arg, default=None,
                    help="the clone's last version (default: the source's current version)")
    with_cold_url(sp)
    sp.add_argument("--option", action="append", metavar="KEY=VALUE",
                    help="object-store option for the source's cold_url")
    sp.set_defaults(func=cmd_clone)
