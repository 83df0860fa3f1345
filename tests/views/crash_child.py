"""Child process for test_crash.py: flush_together of three views in a loop until killed.

Usage: python crash_child.py STORE_PATH LAYOUT
Prints "<round> <version>" after each committed round.
"""

from __future__ import annotations

import sys

import engine
from engine.views import (
    append_log_storage,
    flush_together,
    kv_storage,
    snapshot_storage,
)


def main() -> None:
    path, layout = sys.argv[1], sys.argv[2]
    store = engine.open(path, layout=layout)
    snap = snapshot_storage(store, "snap", debounce_ms=1)
    kv = kv_storage(store, "kv", debounce_ms=1)
    log = append_log_storage(store, "log", debounce_ms=1)
    start = kv.load("round") or 0
    i = start
    while True:
        i += 1
        snap.save({"round": i, "pad": "x" * (i % 97)})
        kv.save("round", i)
        kv.save(f"k{i}", i)
        log.append_entries([i, -i])
        version = flush_together(snap, kv, log)
        print(i, version, flush=True)


if __name__ == "__main__":
    main()
