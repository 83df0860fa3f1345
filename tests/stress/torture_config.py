"""Shared settings of the torture harness: tables, keys, and how a store is opened.

The child (``torture_child.py``) and the parent (``test_torture.py``) open the store the
same way, so the parent's reopen sees the layout and retention the child used.
"""

from __future__ import annotations

import os

import engine
from engine import EntryKind

TABLES = {"a": EntryKind.source(1), "b": EntryKind.operator(2), "m": EntryKind.MULTI}
KEYS = [f"k{i:02d}" for i in range(20)]
HISTORY_VERSIONS = 150
# The background flush keeps this many newest versions in hot (a lagging flush: it once
# moved the recovered version back after kill -9, see
# test_torture.test_lagging_flush_does_not_move_the_recovered_version_back).
FLUSH_LAG = int(os.environ.get("TIERDB_TORTURE_FLUSH_LAG", "5"))

# "memory" with a path: hot tier + commit log only.
LAYOUTS = ["memory", "warm", "hot+warm", "hot+warm+cold", "warm+cold"]
DURABILITIES = ["sync", "normal", "none"]


def open_store(path: str | os.PathLike[str], layout: str, durability: str, *,
               background: bool = True) -> engine.Store:
    """Open with small budgets and fast timers so movement and GC run all the time."""
    lay = engine.Layout.parse(layout, background=background, hot_bytes=128 << 10,
                              flush_interval=0.05, flush_lag_versions=FLUSH_LAG,
                              demotion_age_versions=30, demote_interval=0.1,
                              block_size=4096, hot_cache_bytes=0)
    return engine.open(path, layout=lay, durability=durability,
                       retention=engine.Retention(history_versions=HISTORY_VERSIONS),
                       gc_interval=0.1 if background else 3600.0)
