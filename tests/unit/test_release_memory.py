"""Movement hands freed C-heap memory back to the OS (glibc malloc_trim) after big moves."""

from __future__ import annotations

import sys

import pytest

from engine.router import movement


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux") or movement._MALLOC_TRIM is None,
                    reason="glibc malloc_trim is Linux-only")
def test_release_freed_memory_returns_fragmented_heap():
    # 2 KiB objects come from glibc's heap (not Python's small-object arenas); keeping every
    # 64th one pins the heap top, so free() alone cannot give the rest back.
    blocks = [bytes(2048) + i.to_bytes(4, "little") for i in range(60_000)]
    keep = blocks[::64]
    del blocks
    before = _rss_mb()
    movement.release_freed_memory()
    after = _rss_mb()
    assert before - after > 50, (before, after)
    assert len(keep) == 938
