"""Argument types shared by the ``tierdb`` command and its ``graph`` subcommands."""

from __future__ import annotations

import argparse

from .types import EntryKind

__all__ = ["version_arg", "table_arg"]


def version_arg(text: str) -> int:
    """argparse type: a non-negative commit version."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad version {text!r}: give a non-negative integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"bad version {text!r}: versions are >= 0")
    return v


def table_arg(text: str) -> EntryKind:
    """argparse type: ``multi``, ``source:<id>`` or ``operator:<id>``."""
    try:
        return EntryKind.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
