"""Atomicity across views: SIGKILL a child during flush_together loops; after reopening,
every store version shows all three views at the same round, or none of that round.

The store's commit log makes one commit all-or-nothing; this test proves that the view
layer puts a flush_together into exactly one commit (and that durability "normal"
keeps every round the child reported as committed).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import engine
from engine.views import append_log_storage, kv_storage, snapshot_storage

from .conftest import DURABLE_LAYOUTS

CHILD = Path(__file__).with_name("crash_child.py")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def run_and_kill(path: Path, layout: str, kill_after: int) -> int:
    """Start the child, kill -9 it after it reports ``kill_after`` rounds; return the last round seen."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), layout],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    last = 0
    seen = 0
    deadline = time.monotonic() + 30
    try:
        assert proc.stdout is not None
        while seen < kill_after:
            line = proc.stdout.readline()
            if not line:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"child exited early: {err}")
            last = int(line.split()[0])
            seen += 1
            assert time.monotonic() < deadline, "child too slow"
        os.kill(proc.pid, signal.SIGKILL)  # lands somewhere inside the next round
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    return last


def check_consistent(store: engine.Store, last_reported: int) -> int:
    snap = snapshot_storage(store, "snap")
    kv = kv_storage(store, "kv")
    log = append_log_storage(store, "log")
    final = kv.load("round")
    assert final is not None and final >= last_reported  # committed rounds survive kill -9
    assert snap.load()["round"] == final
    assert log.load_entries().entries == [x for i in range(1, final + 1) for x in (i, -i)]
    assert kv.load(f"k{final}") == final and kv.load(f"k{final + 1}") is None
    assert store.version == final  # exactly one commit per round
    for v in range(1, store.version + 1):  # every version: all views at one round
        r = kv.load("round", version=v)
        assert r == v
        assert snap.load(version=v)["round"] == r
        assert len(log.load_entries(version=v).entries) == 2 * r
        assert kv.list("k", version=v) == sorted(f"k{i}" for i in range(1, r + 1))
    return final


@pytest.mark.parametrize("layout", DURABLE_LAYOUTS)
def test_sigkill_during_flush_together(layout: str, tmp_path: Path) -> None:
    path = tmp_path / "db"
    rng = random.Random(layout)
    done = 0
    for _attempt in range(3):
        last = run_and_kill(path, layout, kill_after=rng.randint(3, 40))
        store = engine.open(path, layout=layout)
        try:
            final = check_consistent(store, last)
        finally:
            store.close()
        assert final >= done + 1  # each child run made progress on top of the last
        done = final
