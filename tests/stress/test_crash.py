"""Crash tests: SIGKILL a committing child process at random moments (DESIGN.md invariant 6).

A child (``store_crash_child.py``) commits in a loop and prints each acknowledged version.
The parent kills it with SIGKILL, reopens the store and checks that

* every acknowledged commit is present in full, at its version;
* no commit is partial: every recovered version 1..N carries exactly one manifest, and the
  data rows at that version are exactly the manifest's items (so versions are gap-free);
* recovery resumes above every recovered version: the parent's own commit gets N + 1, and
  the next child's commits continue above it.

The same store is reused across trials, so each reopen also replays earlier torn tails.
``LAYOUTS`` lists the layouts exercised; more trials run under ``pytest -m stress``.
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
from engine import EntryKind

LAYOUTS = ["memory", "warm", "hot+warm+cold"]

CHILD = Path(__file__).with_name("store_crash_child.py")
A = EntryKind.source(1)
B = EntryKind.operator(2)
M = EntryKind.source(99)
TABLES = {"A": A, "B": B}
DATA_KEYS = [(t, b"k%02d" % i) for t in TABLES for i in range(16)]


def parse_manifest(value: bytes) -> tuple[str, list[tuple[str, bytes, int | None]]]:
    tag, _, desc = value.decode().partition("|")
    items = []
    for item in desc.split(","):
        t, k, pad = item.split("/")
        items.append((t, k.encode(), None if pad == "-" else int(pad)))
    return tag, items


class Checker:
    """Verifies a reopened store against what the children reported."""

    def __init__(self) -> None:
        self.checked_upto = 0     # versions 1..checked_upto were verified in an earlier trial
        self.reported: dict[int, bytes] = {}

    def verify(self, store: engine.Store, new_reports: dict[int, bytes], context: str) -> None:
        n = store.version
        self.reported.update(new_reports)
        if self.reported:
            assert n >= max(self.reported), f"{context}: acknowledged commits lost (store at {n})"
        # one manifest per version, every version 1..n
        manifests: dict[int, bytes] = {}
        for wid, _ in store.range(M):
            for v, val in store.history(M, wid):
                assert val is not None
                assert v not in manifests, f"{context}: two manifests at version {v}"
                manifests[v] = val
        missing = [v for v in range(1, n + 1) if v not in manifests]
        assert not missing, f"{context}: versions without a manifest (gap or partial commit): {missing[:10]}"
        assert max(manifests) == n
        # every acknowledged commit is there, with the manifest it reported
        for v, manifest in new_reports.items():
            assert manifests[v] == manifest, f"{context}: version {v} holds another commit"
        # data rows at each version are exactly that version's manifest items
        rows_at: dict[int, dict[tuple[str, bytes], bytes | None]] = {}
        for t, k in DATA_KEYS:
            for v, val in store.history(TABLES[t], k):
                if v > self.checked_upto:
                    rows_at.setdefault(v, {})[(t, k)] = val
        for v in range(self.checked_upto + 1, n + 1):
            tag, items = parse_manifest(manifests[v])
            want = {(t, k): (None if pad is None else tag.encode() + b"#" * pad) for t, k, pad in items}
            got = rows_at.get(v, {})
            assert got == want, f"{context}: version {v} is partial or mixed: {got} != {want}"
            # and a point read as of v agrees (the read path, not just history)
            t, k = items[0][0], items[0][1]
            assert store.get(TABLES[t], k, version=v) == want[(t, k)]
        self.checked_upto = n

    def parent_commit(self, store: engine.Store, trial: int) -> int:
        before = store.version
        manifest = f"p{trial}.0.1|A/k00/5".encode()
        with store.begin() as tx:
            tx.set(M, b"parent", manifest)
            tx.set(A, b"k00", f"p{trial}.0.1".encode() + b"#" * 5)
        assert tx.version == before + 1, "a new commit must land right above the recovered versions"
        self.reported[tx.version] = manifest
        self.checked_upto = tx.version
        return tx.version


def run_child_and_kill(path: Path, layout: str, durability: str, run: str, threads: int,
                       rng: random.Random) -> tuple[dict[int, bytes], str]:
    """Start a child, SIGKILL it at a random moment, return its acknowledged commits."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(path), layout, durability, run, str(threads),
         str(rng.randrange(1 << 30))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        bufsize=0)  # unbuffered: communicate() reads the fd directly, a read-ahead buffer would be lost
    try:
        first = b""
        if rng.random() < 0.15:
            time.sleep(rng.uniform(0.0, 0.3))  # sometimes during start-up / recovery
        else:
            first = proc.stdout.readline()       # wait until it commits, then a little more
            if not first:
                proc.wait(timeout=30)
                raise AssertionError(f"child exited early: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(rng.uniform(0.0, 0.2))
        proc.send_signal(signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"child did not die by SIGKILL: {err.decode()[-2000:]}"
    out = first + rest
    reports: dict[int, bytes] = {}
    for line in out.split(b"\n")[:-1]:  # a cut-off last line is not an acknowledgement
        v, sep, manifest = line.partition(b" ")
        assert sep and v.isdigit(), f"unexpected child output line {line[:200]!r}"
        assert int(v) not in reports, f"version {v} acknowledged twice"
        reports[int(v)] = manifest
    return reports, err.decode()


def crash_trials(tmp_path: Path, layout: str, durability: str, trials: int, seed: int,
                 threads: int = 1) -> dict[str, int]:
    rng = random.Random(seed)
    path = tmp_path / "db"
    checker = Checker()
    acknowledged = torn = 0
    for trial in range(trials):
        context = f"seed={seed} trial={trial} layout={layout} durability={durability}"
        prev_top = max(checker.reported, default=0)
        reports, _err = run_child_and_kill(path, layout, durability, str(trial), threads, rng)
        if reports:
            assert min(reports) > prev_top, f"{context}: the child reused a version"
        acknowledged += len(reports)
        store = engine.open(path)
        try:
            torn += store.recovery.get("torn_tail") is not None
            checker.verify(store, reports, context)
            checker.parent_commit(store, trial)
            assert store.check()["ok"]
        finally:
            store.close()
    # a final clean reopen sees everything, including the last parent commit
    store = engine.open(path)
    try:
        checker.checked_upto = 0
        checker.verify(store, {}, f"seed={seed} final")
        assert store.version == max(checker.reported)
    finally:
        store.close()
    return {"acknowledged": acknowledged, "torn": torn}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_kill9_normal_durability(tmp_path, layout):
    stats = crash_trials(tmp_path, layout, "normal", trials=20, seed=20241)
    assert stats["acknowledged"] > 0


@pytest.mark.parametrize("layout", LAYOUTS)
def test_kill9_sync_durability_group_commit(tmp_path, layout):
    stats = crash_trials(tmp_path, layout, "sync", trials=6, seed=777, threads=3)
    assert stats["acknowledged"] > 0


@pytest.mark.stress
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("durability,threads", [("normal", 1), ("normal", 4), ("sync", 4)])
def test_kill9_soak(tmp_path, layout, durability, threads):
    seed = int(os.environ.get("TIERDB_CRASH_SEED", random.randrange(1 << 30)))
    stats = crash_trials(tmp_path, layout, durability, trials=int(os.environ.get("TIERDB_CRASH_TRIALS", "150")),
                         seed=seed, threads=threads)
    assert stats["acknowledged"] > 0
