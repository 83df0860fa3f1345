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
# The background flush keeps this many newest versions in hot. > 0 exercises a known defect
# (a lagging flush moves the recovered version back after kill -9; see
# test_torture.test_lagging_flush_does_not_move_the_recovered_version_back, xfail strict),
# so the default is 0 until it is fixed: set TIERDB_TORTURE_FLUSH_LAG=5 to reproduce it.
FLUSH_LAG = int(os.environ.get("TIERDB_TORTURE_FLUSH_LAG", "0"))
# Under durability "none" a background flush copies versions the commit log has not written
# yet into warm; after kill -9 they outlive the recovered version and mix with new commits
# (test_torture.test_none_durability_flush_does_not_outlive_the_recovered_version, xfail
# strict). Until it is fixed, "none" stores with hot and warm flush only on store.flush()
# (which writes the log first); TIERDB_TORTURE_NONE_BG_FLUSH=1 reproduces it in the loop.
NONE_BG_FLUSH = os.environ.get("TIERDB_TORTURE_NONE_BG_FLUSH", "0") == "1"

# "memory" with a path: hot tier + commit log only.
LAYOUTS = ["memory", "warm", "hot+warm", "hot+warm+cold", "warm+cold"]
DURABILITIES = ["sync", "normal", "none"]


def open_store(path: str | os.PathLike[str], layout: str, durability: str, *,
               background: bool = True) -> engine.Store:
    """Open with small budgets and fast timers so movement and GC run all the time."""
    bg_flush = durability != "none" or NONE_BG_FLUSH or layout not in ("hot+warm", "hot+warm+cold")
    lay = engine.Layout.parse(layout, background=background,
                              hot_bytes=(128 << 10) if bg_flush else (256 << 20),
                              flush_interval=0.05 if bg_flush else 0.0, flush_lag_versions=FLUSH_LAG,
                              demotion_age_versions=30, demote_interval=0.1,
                              block_size=4096, hot_cache_bytes=0)
    return engine.open(path, layout=lay, durability=durability,
                       retention=engine.Retention(history_versions=HISTORY_VERSIONS),
                       gc_interval=0.1 if background else 3600.0)
